"""Hostile input through the loader and through the mitmproxy glue (issue 8), with hypothesis.

Configs: the bundled examples and Kong's documented ones, mutated (fields dropped, retyped or renamed, nodes
renamed, duplicated or removed, edges rewired), give a Plan or a ConfigError whose every issue names a node or
a field. YAML text of the same configs with bytes flipped gives a Deployment or a ConfigError.

Flows: random requests and upstream answers (methods, query strings, header bytes, bodies that are not UTF-8,
compressed or claim to be, chunked, empty, large) go through the real `Datakit` addon on real mitmproxy flows
(`http.Request.make`, `tflow`, `taddons`: mitmproxy's own objects, not mocks) running a plan that touches
every implicit node, jq and handlebars. The hooks never raise; a failure is one log line naming the node,
never a traceback; a failed phase leaves the message it was about to change exactly as it was (never
half-written). tests/unit/test_fuzz.py covers the engine's codecs on their own.
"""

from __future__ import annotations

import copy
import gzip
import json
import logging
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.test import tflow

from mitm_datakit.config import load_config
from mitm_datakit.dialect import plan_config
from mitm_datakit.errors import ConfigError
from mitm_datakit.kong.deployment import load_deployment
from mitm_datakit.proxy.addon import Datakit
from mitm_datakit.proxy.flowmap import apply_write
from mitm_datakit.values import MessageWrite, header_ops

from .support import hook_done
from .test_schema import CONFIG_FILES, SPEC_EXAMPLES

with warnings.catch_warnings():
    # mitmproxy.master imports ldap3, which reads a deprecated pyasn1 name at import time (not ours).
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy.test import taddons

# The whole file runs in 10-20 s on two cores: 150 examples per property keeps it inside the CI budget.
HOSTILE = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# =============================================================================================
# Configs
# =============================================================================================


def _configs_in(value: Any) -> Iterator[dict[str, Any]]:
    """Every datakit `config` object in a document: a bare config, a plugin entity or a declarative file."""
    if isinstance(value, dict):
        if isinstance(value.get("nodes"), list):
            yield value
            return
        for item in value.values():
            yield from _configs_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _configs_in(item)


SEED_TEXTS = [p.read_text(encoding="utf-8") for p in CONFIG_FILES] + list(SPEC_EXAMPLES.values())
SEEDS = [config for text in SEED_TEXTS for config in _configs_in(load_config(text))]

IMPLICIT = ["request", "service_request", "service_response", "response", "vault"]
FIELDS = ["", ".body", ".headers", ".query", ".status", ".x", ".headers.authorization"]
ODD_VALUES = st.sampled_from(
    [None, True, 0, -1, 2**63, 1.5, "", "x", "A.body", "request.nope", "EXIT", [], [1], {}, {"a": 1},
     "\x00\n"]
)


MUTATIONS = ["drop", "retype", "rename-field", "rename-node", "rewire", "duplicate", "remove"]


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A real config with one to four mutations of the kinds a hand-edited file goes through."""
    config = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        nodes = config["nodes"]
        if not nodes:
            break
        node = draw(st.sampled_from(nodes))
        if not isinstance(node, dict):
            continue
        names = [n["name"] for n in nodes if isinstance(n, dict) and isinstance(n.get("name"), str)]
        names += IMPLICIT + ["NOPE", ""]
        field = draw(st.sampled_from(sorted(node, key=str) + ["inputs", "outputs", "output", "input", "x"]))
        kind = draw(st.sampled_from(MUTATIONS))
        if kind == "drop":
            node.pop(field, None)
        elif kind == "retype":
            node[field] = draw(ODD_VALUES)
        elif kind == "rename-field":
            node[f"{field}{draw(st.sampled_from(['s', '_', 'X']))}"] = node.pop(field, None)  # a key may not be a str
        elif kind == "rename-node":
            node["name"] = draw(st.sampled_from(names + ["x" * 300, "has space", "1starts-with-digit"]))
        elif kind == "rewire":
            reference = draw(st.sampled_from(names)) + draw(st.sampled_from(FIELDS))
            port = draw(st.sampled_from(["body", "headers", "query", "url", "key", "token", "anything"]))
            target = draw(st.sampled_from(["inputs", "outputs"]))
            if not isinstance(node.get(target), dict):
                node[target] = {}
            node[target][port] = reference
        elif kind == "duplicate":
            nodes.append(copy.deepcopy(node))
        else:
            nodes.remove(node)
    return config


@HOSTILE
@given(mutated_configs(), st.sampled_from(["auto", "3.10", "3.11"]))
def test_mutated_real_configs_plan_or_name_node_and_field(reliability, config, compat):
    reliability.fuzz_cases(1)
    try:
        plan_config(config, compat)
    except ConfigError as e:
        assert e.issues
        for issue in e.issues:
            # A cycle names both nodes in its message; everything else says which field is wrong too.
            assert issue.node_index is not None or issue.field is not None, issue
            if issue.node_name:
                assert issue.node_name in str(issue)
            if issue.field:
                assert issue.field in str(issue)


YAML_SLIPS = [":", "-", " ", "\t", "\n", "{", "[", "'", "&a", "*a", "!!", "\x00"]


@st.composite
def mangled_texts(draw: st.DrawFn) -> str:
    """A real config file with a few bytes deleted, duplicated or replaced, as an editor slip makes them."""
    text = draw(st.sampled_from(SEED_TEXTS))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["delete", "duplicate", "insert"]))
        span = draw(st.integers(1, 12))
        if kind == "delete":
            text = text[:at] + text[at + span :]
        elif kind == "duplicate":
            text = text[:at] + text[at : at + span] + text[at:]
        else:
            text = text[:at] + draw(st.sampled_from(YAML_SLIPS)) + text[at:]
    return text


@HOSTILE
@given(mangled_texts())
def test_mangled_config_files_load_or_fail_with_issues(reliability, text):
    reliability.fuzz_cases(1)
    try:
        load_deployment(text, source="mangled.yaml")
    except ConfigError as e:
        assert e.issues and all(str(issue).strip() for issue in e.issues)


# =============================================================================================
# Flows through the addon
# =============================================================================================

VAULT_VARIABLE = "DK_HOSTILE_INPUT_TOKEN"

# request -> READ -> service_request; request -> TEMPLATE (handlebars) -> EXIT (when asked) and RESPOND;
# service_response -> RESPOND -> response; vault -> READ. `X-Fail: access|response` makes a phase fail, in the
# access phase with a message that carries client-controlled text (X-Why, the query's `echo`).
FLOW_CONFIG = f"""
resources:
  vault:
    token: "{{vault://env/{VAULT_VARIABLE}}}"
nodes:
- name: READ
  type: jq
  inputs:
    body: request.body
    headers: request.headers
    query: request.query
    path: request.path
    raw_path: request.raw_path
    method: request.method
    key: vault.token
  jq: |
    def header($name): [.headers | to_entries[] | select(.key | ascii_downcase == $name) | .value] | first;
    if header("x-fail") == "access"
    then error("told to fail: " + (header("x-why") | tostring) + " " + (.query.echo // "" | tostring))
    else {{
      headers: {{"X-Body-Type": (.body | type), "X-Echo": (.query.echo // "none" | tostring),
                 "X-Key-Length": (.key | length | tostring)}},
      query: {{seen: "1", echo: .query.echo}},
      body: {{got: .body, path: .path, method: .method}}
    }} end
  output: service_request
- name: TEMPLATE
  type: handlebars
  inputs:
    body: request.body
    query: request.query
  template: "{{{{query.a}}}}|{{{{body}}}}"
- name: WANTS_EXIT
  type: jq
  input: request.headers
  jq: '[to_entries[] | select(.key | ascii_downcase == "x-exit")] | length > 0'
- name: CHOOSE
  type: branch
  input: WANTS_EXIT
  then: [EXIT]
- name: EXIT
  type: exit
  status: 203
  inputs:
    body: TEMPLATE
- name: RESPOND
  type: jq
  inputs:
    body: service_response.body
    headers: service_response.headers
    status: service_response.status
    note: TEMPLATE
  jq: |
    if ([.headers | to_entries[] | select(.key | ascii_downcase == "x-fail") | .value] | first) == "response"
    then error("upstream told to fail") else
    {{headers: {{"X-Upstream-Status": (.status | tostring), "X-Note": .note}}, body: {{upstream: .body}}}} end
  output: response
"""


class LogLines(logging.Handler):
    """The records the addon logs while one flow runs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def flow_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("hostile") / "flow.yaml"
    path.write_text(FLOW_CONFIG, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(VAULT_VARIABLE, "vault-value-of-some-length")
        yield path


token_chars = st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":")
header_names = st.text(token_chars, min_size=1, max_size=12).map(str.encode)
# What mitmproxy's HTTP/1 parser lets through from a client: any byte but CR, LF and NUL, UTF-8 or not.
header_values = st.binary(max_size=24).map(lambda b: bytes(c for c in b if c not in b"\r\n\0"))
random_headers = st.lists(st.tuples(header_names, header_values), max_size=6)
content_types = st.sampled_from(
    [None, b"application/json", b"application/json; charset=latin-1", b"application/x-www-form-urlencoded",
     b"text/plain; charset=utf-8", b"application/xml", b"multipart/form-data; boundary=x", b"\xff/\xfe"]
)
encodings = st.sampled_from(["identity", "gzip", "deflate", "gzip-lie", "br-lie", "chunked"])
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
bodies = st.binary(max_size=200) | json_like.map(lambda v: json.dumps(v).encode())
# Query strings as a client may write them: percent escapes (valid or not, CR/LF included), `+`, bare keys.
query_parts = st.sampled_from(
    ["a=1", "a", "=", "&", "%", "%0d%0a", "%ff", "+", "echo=", "echo=x%0D%0AX-Injected:%201", "echo=%1b[31m",
     "a[]=2", "é", ";", "#"]
)
query_strings = st.tuples(st.sampled_from(["&", ""]), st.lists(query_parts, max_size=6)).map(
    lambda joined: joined[0].join(joined[1])
)


def _message_fields(
    headers: list[tuple[bytes, bytes]], content_type: bytes | None, body: bytes, encoding: str
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Header fields and raw (on-the-wire) body for a message with `encoding`; `*-lie` claims an encoding
    the bytes are not in, `chunked` is what mitmproxy keeps of a chunked message (it de-chunks)."""
    framing = (b"content-encoding", b"transfer-encoding", b"content-length")
    fields = [(k, v) for k, v in headers if k.lower() not in framing]
    if content_type is not None:
        fields.append((b"Content-Type", content_type))
    raw = body
    if encoding == "gzip":
        fields.append((b"Content-Encoding", b"gzip"))
        raw = gzip.compress(body)
    elif encoding == "deflate":
        fields.append((b"Content-Encoding", b"deflate"))
        raw = zlib.compress(body)
    elif encoding.endswith("-lie"):
        fields.append((b"Content-Encoding", encoding.removesuffix("-lie").encode()))
    elif encoding == "chunked":
        fields.append((b"Transfer-Encoding", b"chunked"))
    return fields, raw


def make_request(method: str, query: str, headers: list[tuple[bytes, bytes]], raw: bytes) -> http.Request:
    request = http.Request.make(method, "http://service.test/items/1", b"", http.Headers(headers))
    request.path = "/items/./1" + (f"?{query}" if query else "")
    request.raw_content = raw
    return request


def make_response(status: int, headers: list[tuple[bytes, bytes]], raw: bytes) -> http.Response:
    response = http.Response.make(status, b"", http.Headers(headers))
    response.raw_content = raw
    return response


def _unsafe(fields: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in fields if any(c in k + v for c in b"\r\n\0") or b":" in k]


async def _run_flow(
    flow_config: Path,
    request: http.Request,
    upstream: http.Response,
    *,
    fail: str,
    exit_asked: bool,
) -> LogLines:
    """One flow through both hooks of a fresh addon, with every property of the module docstring checked;
    what the addon logged meanwhile."""
    addon = Datakit()
    lines = LogLines()
    logger = logging.getLogger("mitm_datakit")
    logger.addHandler(lines)
    try:
        with taddons.context(addon) as tctx:
            tctx.configure(addon, datakit_config=str(flow_config))
            flow = tflow.tflow(req=request)
            before = flow.request.get_state()
            await hook_done(addon.request(flow))
            _check_access(flow, before, lines, fail=fail, exit_asked=exit_asked)
            if flow.response is not None:
                return lines  # our own answer: the upstream is never asked
            flow.response = upstream
            upstream_before = upstream.get_state()
            await hook_done(addon.response(flow))
            _check_response(flow, upstream, upstream_before, lines, fail=fail)
            return lines
    finally:
        logger.removeHandler(lines)
        await addon.http.close()


def _check_no_traceback(lines: LogLines) -> None:
    for record in lines.records:
        assert record.exc_info is None, f"a traceback was logged: {record.getMessage()}"
        assert "internal error" not in record.getMessage()


def _check_one_failure_line(lines: LogLines, node: str) -> None:
    errors = [r for r in lines.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert f"({node}) failed with error" in message
    assert "\n" not in message and "\r" not in message, "one log line, whatever the client sent"


def _check_access(
    flow: http.HTTPFlow, before: dict[str, Any], lines: LogLines, *, fail: str, exit_asked: bool
) -> None:
    _check_no_traceback(lines)
    if fail == "access":
        assert flow.response is not None and flow.response.status_code == 500
        assert flow.request.get_state() == before, "a failed access phase leaves the request as it was"
        _check_one_failure_line(lines, "READ")
        return
    if exit_asked:
        assert flow.response is not None and flow.response.status_code == 203, flow.response
        assert flow.request.get_state() == before, "an exit answers; the request is not rewritten"
    else:
        assert flow.response is None
        request = flow.request
        assert request.headers["X-Key-Length"] == str(len("vault-value-of-some-length"))
        assert request.query.get("seen") == "1"
        assert request.headers["Content-Type"] == "application/json"
        assert int(request.headers["Content-Length"]) == len(request.raw_content or b"")
        assert "content-encoding" not in request.headers and "transfer-encoding" not in request.headers
        assert not _unsafe(request.headers.fields), "a header built from client data cannot split the request"
    if flow.response is not None:
        assert not _unsafe(flow.response.headers.fields)


def _check_response(
    flow: http.HTTPFlow,
    upstream: http.Response,
    upstream_before: dict[str, Any],
    lines: LogLines,
    *,
    fail: str,
) -> None:
    _check_no_traceback(lines)
    assert flow.response is not None
    assert upstream.get_state() == upstream_before, "the upstream's response object is never changed in place"
    if fail == "response":
        assert flow.response.status_code == 500
        _check_one_failure_line(lines, "RESPOND")
        return
    assert not [r for r in lines.records if r.levelno >= logging.ERROR]
    assert flow.response.headers["X-Upstream-Status"] == str(upstream.status_code)
    assert int(flow.response.headers["Content-Length"]) == len(flow.response.raw_content or b"")
    assert not _unsafe(flow.response.headers.fields)


@HOSTILE
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "X-ODD"]),
    query=query_strings,
    headers=random_headers,
    content_type=content_types,
    body=bodies,
    encoding=encodings,
    upstream_status=st.sampled_from([200, 204, 301, 404, 500, 599]),
    upstream_headers=random_headers,
    upstream_type=content_types,
    upstream_body=bodies,
    upstream_encoding=encodings,
    fail=st.sampled_from(["none", "none", "access", "response"]),
    exit_asked=st.booleans(),
    why=header_values,
)
async def test_random_flows_through_every_implicit_node(
    reliability, flow_config, method, query, headers, content_type, body, encoding, upstream_status,
    upstream_headers, upstream_type, upstream_body, upstream_encoding, fail, exit_asked, why,
):
    reliability.fuzz_cases(1)
    request_fields, raw = _message_fields(headers, content_type, body, encoding)
    request_fields = [(k, v) for k, v in request_fields if k.lower() not in (b"x-fail", b"x-exit", b"x-why")]
    request_fields.append((b"X-Why", why))
    if fail == "access":
        request_fields.append((b"X-Fail", b"access"))
    if exit_asked:
        request_fields.append((b"X-Exit", b"1"))
    response_fields, response_raw = _message_fields(
        upstream_headers, upstream_type, upstream_body, upstream_encoding
    )
    response_fields = [(k, v) for k, v in response_fields if k.lower() != b"x-fail"]
    if fail == "response":
        response_fields.append((b"X-Fail", b"response"))
    await _run_flow(
        flow_config,
        make_request(method, query, request_fields, raw),
        make_response(upstream_status, response_fields, response_raw),
        fail=fail,
        exit_asked=exit_asked,
    )


LARGE = bytes(range(256)) * (2 * 1024 * 1024 // 256)  # 2 MiB, every byte value, not UTF-8


@pytest.mark.parametrize(
    ("content_type", "body", "encoding"),
    [
        (None, b"", "identity"),
        (b"application/json", b"", "chunked"),
        (b"application/json", LARGE, "identity"),
        (b"application/octet-stream", LARGE, "gzip"),
        (b"text/plain", LARGE, "chunked"),
        (b"application/x-www-form-urlencoded", b"a=1&" * (1 << 19), "identity"),
        (b"application/json", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "identity"),
    ],
    ids=["empty", "empty-chunked-json", "huge-binary-as-json", "huge-gzip", "huge-chunked", "huge-form",
         "deep-json"],
)
async def test_empty_huge_and_deep_bodies(reliability, flow_config, content_type, body, encoding):
    reliability.fuzz_cases(1)
    fields, raw = _message_fields([], content_type, body, encoding)
    response_fields, response_raw = _message_fields([], content_type, body, encoding)
    await _run_flow(
        flow_config,
        make_request("POST", "a=1", fields, raw),
        make_response(200, response_fields, response_raw),
        fail="none",
        exit_asked=False,
    )


# =============================================================================================
# Header writes cannot split a message
# =============================================================================================


@pytest.mark.parametrize(
    ("name", "value", "expected_name", "expected_value"),
    [
        ("X-Echo", "a\r\nX-Injected: 1", b"X-Echo", b"a%0D%0AX-Injected: 1"),
        ("X-Echo", "nul\x00byte", b"X-Echo", b"nul%00byte"),
        ("X-Echo", "tab\tis fine", b"X-Echo", b"tab\tis fine"),
        ("X-Bad\r\nX-Injected", "1", b"X-Bad%0D%0AX-Injected", b"1"),
        ("X-Colon: x", "1", b"X-Colon%3A%20x", b"1"),
        ("X-Fine-Name_1", "caf\u00e9", b"X-Fine-Name_1", "caf\u00e9".encode()),
    ],
    ids=["crlf-value", "nul-value", "tab-value", "crlf-name", "separator-name", "plain"],
)
def test_header_writes_escape_what_would_split_the_message(name, value, expected_name, expected_value):
    """As OpenResty does for Kong (lua-nginx-module escapes CR, LF and NUL in values and non-token bytes in
    names as %XX): a value built from client input cannot add a header or end the head early."""
    request = http.Request.make("GET", "http://service.test/")
    apply_write(request, MessageWrite(header_ops({name: value}), None, None))
    assert (expected_name, expected_value) in request.headers.fields
    assert not [k for k, _ in request.headers.fields if k.lower().startswith(b"x-injected")]


@pytest.mark.parametrize(
    ("echo", "logged"),
    [
        ("a%0D%0A2026-01-01 forged line", r"a\r\n2026-01-01 forged line"),
        ("%1B[2J", r"\x1b[2J"),
        ("tab%09kept", "tab\tkept"),
    ],
    ids=["crlf", "terminal-escape", "tab"],
)
async def test_a_failure_stays_one_log_line_whatever_the_client_sent(reliability, flow_config, echo, logged):
    reliability.fuzz_cases(1)
    lines = await _run_flow(
        flow_config,
        make_request("GET", f"echo={echo}", [(b"X-Fail", b"access")], b""),
        make_response(200, [], b""),
        fail="access",
        exit_asked=False,
    )
    (error,) = [r.getMessage() for r in lines.records if r.levelno >= logging.ERROR]
    assert error.endswith(f'told to fail: null {logged}"')


@pytest.mark.parametrize("url", ["http://[oops/x", "http://[::1", "http://host:99999/", "http://host:port/"])
def test_a_service_url_that_does_not_parse_is_a_config_error(url):
    """Found by scripts/fuzz.py (atheris): `urlsplit` raised ValueError out of the loader for `http://[`."""
    text = f'_format_version: "3.0"\nservices:\n- name: s\n  url: "{url}"\n'
    with pytest.raises(ConfigError) as caught:
        load_deployment(text, source="kong.yaml")
    expected = f"services.1 (service \"s\"): field 'url': invalid url: {url}"
    assert [str(issue) for issue in caught.value.issues] == [expected]


@pytest.mark.parametrize(
    ("text", "field", "kind"),
    [
        ('_format_version: "3.0"\nservices:\n- name: 2024-01-01\n  url: http://a/\n', "services[0].name", "date"),
        ('_format_version: "3.0"\nconsumers:\n- username: !!binary aGk=\n', "consumers[0].username", "bytes"),
        ("nodes:\n- name: A\n  type: static\n  values: {a: [1, !!set {x}]}\n", "nodes[0].values.a[1]", "set"),
        ("nodes:\n- name: A\n  type: static\n  values: {2024-01-01: 1}\n", "nodes[0].values", "date"),
    ],
    ids=["unquoted-date-as-service-name", "binary-username", "set-in-values", "date-as-key"],
)
def test_yaml_values_that_json_has_no_type_for_are_config_errors(text, field, kind):
    """Found by scripts/fuzz.py (hypothesis): a date, `!!binary` or `!!set` reached code that expects JSON
    values, and a service named `2024-01-01` raised TypeError out of the loader."""
    with pytest.raises(ConfigError) as caught:
        load_deployment(text, source="kong.yaml")
    (issue,) = caught.value.issues
    assert issue.field == field
    assert issue.message == f"kong.yaml: a YAML {kind} is not a JSON value; quote it to keep it as text"


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("nodes:\n- name: S\n  type: static\n  values: &a {x: [1, *a]}\n", "nodes[0].values.x[1]",
         "kong.yaml: a YAML alias refers to a value that contains it; JSON has no such value"),
        ("nodes:\n- name: S\n  type: static\n  values: " + "[" * 3000 + "]" * 3000 + "\n", None,
         "kong.yaml: invalid YAML: nested too deeply"),
        # Shallow to the parser, 1,200 deep as a value: each alias wraps the one before it.
        ("nodes:\n- name: S\n  type: static\n  values:\n    a0: &a0 [1]\n"
         + "".join(f"    a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 1200)), None,
         "kong.yaml: invalid YAML: nested too deeply"),
    ],
    ids=["alias-inside-its-anchor", "nested-3000-deep", "aliases-nested-1200-deep"],
)
def test_yaml_that_would_recurse_forever_or_too_deep_is_a_config_error(text, field, message):
    """A value containing itself (`&a [*a]`) and very deep nesting each ended in RecursionError, a traceback in
    `datakit validate` instead of an error naming the file."""
    with pytest.raises(ConfigError) as caught:
        load_deployment(text, source="kong.yaml")
    (issue,) = caught.value.issues
    assert (issue.field, issue.message) == (field, message)
