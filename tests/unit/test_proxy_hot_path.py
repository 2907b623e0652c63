"""The per-request shortcuts of the proxy glue (issue 7) give exactly what the general paths gave: the cheap
message copy, the one-assignment exit response, the record's JSON encoder, and the request copied only when
something changes it."""

from __future__ import annotations

import contextlib
import gc
import gzip
import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mitmproxy import http
from mitmproxy.net.http import status_codes
from mitmproxy.test import tflow

with warnings.catch_warnings():
    # mitmproxy.addons imports ldap3, which uses names pyasn1 deprecated; not ours to fix.
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy.test import taddons

from mitm_datakit.proxy import summary
from mitm_datakit.proxy.addon import Datakit
from mitm_datakit.proxy.flowmap import (
    _apply_header_ops,
    _apply_header_ops_one_by_one,
    apply_write,
    body_value,
    copy_message,
    make_response,
    new_response,
    set_plain_body,
)
from mitm_datakit.redact import MASKED_HEADERS, mask_headers
from mitm_datakit.values import MessageWrite, XmlText, body_text, decode_body, json_dumps

from .support import hook_done


@pytest.mark.parametrize("message", [tflow.tflow().request, tflow.tflow(resp=True).response])
def test_copy_message_is_an_independent_equal_copy(message: http.Message):
    message.trailers = http.Headers([(b"X-Trailer", b"1")])
    message.stream = True  # set on the message object itself, outside its state
    state = message.get_state()

    copied = copy_message(message)
    assert copied.get_state() == message.get_state() == message.copy().get_state()
    assert copied.stream is True and type(copied.data) is type(message.data)
    copied.headers["X-New"] = "1"
    copied.trailers["X-Trailer"] = "2"  # type: ignore[index]
    copied.content = b"changed"
    assert message.get_state() == state


def _general_make_response(status: int, write: MessageWrite, extra: dict[str, str]) -> http.Response:
    """What make_response did before its shortcut: frame an empty body, then apply the write."""
    response = http.Response.make(status, b"", extra)
    apply_write(response, write)
    if write.body is None:
        response.content = b""
    return response


@pytest.mark.parametrize(
    "inputs",
    [
        {"body": "text", "headers": {"Content-Type": "text/plain"}},
        {"body": {"a": 1}},
        {"body": "x", "headers": {"Content-Encoding": "gzip", "X-Kong-Request-Id": "me", "x-a": ["1", "2"]}},
        {"body": "x", "headers": {"Server": None, "Transfer-Encoding": "chunked", "Content-Length": "99"}},
        {"body": b"\x00\xff", "headers": {"content-type": "application/octet-stream"}},
        {"body": None, "headers": {"content-type": "a/b"}},
    ],
)
def test_exit_response_is_built_as_the_general_path_builds_it(inputs: dict[str, Any]):
    write = MessageWrite.from_inputs(inputs, has_body=True)
    extra = {"X-Kong-Request-Id": "abc"}
    built, expected = make_response(201, write, extra), _general_make_response(201, write, extra)
    assert built.headers.fields == expected.headers.fields
    assert built.raw_content == expected.raw_content
    assert built.status_code == expected.status_code


@pytest.mark.parametrize(
    ("fields", "written"),
    [
        ([(b"Host", b"h")], {"X-Bench-Client": "bench-client", "X-Bench-Transformed": "1"}),
        ([(b"Host", b"h"), (b"X-A", b"1"), (b"x-a", b"2"), (b"X-B", b"3")], {"x-a": ["9"], "X-C": ["c1", "c2"], "x-b": None}),
        ([(b"X-A", b"1")], {"X-A": ["1", "2", "3"]}),
        ([(b"X-A", b"1"), (b"X-A", b"2")], {"x-a": []}),
        ([(b"X-A", b"1")], {"X-A": ["1", "2"], "x-a": "z"}),  # one header twice: the ops apply in turn
        ([(b"X-A", b"1")], {"bad name\n": "v\r\nx", "X-U": "\u00e9", "X-Absent": None}),
    ],
)
def test_header_writes_in_one_pass_match_mitmproxys_setters(fields: list[tuple[bytes, bytes]], written: dict[str, Any]):
    write = MessageWrite.from_inputs({"headers": written}, has_body=False)
    one_pass, one_by_one = http.Headers(list(fields)), http.Headers(list(fields))
    _apply_header_ops(one_pass, write)
    _apply_header_ops_one_by_one(one_by_one, write)
    assert one_pass.fields == one_by_one.fields


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [None, True, 3, 2.5, 1e16, 0.1, "é\"\n\u2028\x00", b"\xffraw", [1, "a", None], {"k": {"n": [1.0, False]}},
     {"Cookie": "c"}, (1, 2), 2**70, {1: "a", "b": {2: 3}}, XmlText("<a/>"), [[[[0]]]] * 2, _nested(300)],
)
def test_record_encoder_writes_what_json_writes(value: Any):
    plain = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=summary._plain)
    assert summary._encode(value) == plain.encode(value)


@pytest.mark.parametrize(
    "value",
    [None, True, 3, 2.5, 1e16, "é\"\n\u2028\x00", [1, "a", None], {"k": {"n": [1.0, False]}}, 2**70, {1: "a"},
     XmlText("<a/>"), _nested(300)],
)
def test_body_encoder_writes_what_the_json_encoder_writes(value: Any):
    assert json_dumps(value) == json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(value)


@pytest.mark.parametrize(("value", "error"), [(math.nan, ValueError), (b"raw", TypeError), ({(1, 2): 3}, TypeError)])
def test_body_encoder_refuses_what_the_json_encoder_refuses(value: Any, error: type[Exception]):
    reference = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    with pytest.raises(error) as expected:
        reference.encode(value)
    with pytest.raises(error) as caught:
        json_dumps(value)
    assert str(caught.value) == str(expected.value)


def test_record_encoder_writes_nan_and_infinities_as_null():
    assert summary._encode([math.nan, math.inf, -math.inf]) == "[null,null,null]"


def _general_body_value(message: http.Message) -> Any:
    """What body_value read before its one-pass header lookup: mitmproxy's own getters."""
    raw = message.get_content(strict=False) or b""
    try:
        return decode_body(raw, message.headers.get("content-type"))
    except ValueError:
        return body_text(raw)


@pytest.mark.parametrize(
    ("fields", "content"),
    [
        ([(b"Content-Type", b"application/json")], b'{"a": 1}'),
        ([(b"content-type", b"application/json"), (b"Content-Encoding", b"gzip")], gzip.compress(b'{"a": 2}')),
        ([(b"Content-Type", b"text/plain"), (b"CONTENT-TYPE", b"application/json")], b'{"a": 3}'),  # joined: text
        ([(b"Content-Type", b"application/json"), (b"Content-Encoding", b"")], b"[1]"),
        ([(b"Content-Type", b"application/json"), (b"content-encoding", b"bogus")], b"[2]"),  # not decodable
        ([(b"Content-Type", b"application/json")], b"{bad"),
        ([], b"\xff\xfe"),
        ([(b"X-Other", b"1")], b""),
    ],
)
def test_body_value_reads_the_headers_as_mitmproxys_getters_do(fields: list[tuple[bytes, bytes]], content: bytes):
    message = http.Response.make(200, b"", http.Headers(fields))
    message.raw_content = content
    assert body_value(message, decode_form=False) == _general_body_value(message)


@pytest.mark.parametrize("name", sorted(MASKED_HEADERS))
def test_every_masked_header_key_has_one_of_the_endings_the_record_scans_for(name: str):
    assert f'"{name}":'.endswith(summary._MASKED_KEY_ENDINGS)


@pytest.mark.parametrize(
    "value",
    [
        {"Authorization": "Bearer x", "Accept": "*/*"},
        {"headers": {"X-API-KEY": "k"}, "body": [{"set-cookie": "s"}]},
        [{"X-Consumer-Custom-Id": "c"}, {"monkey": 1}],
        {"x-credential-identifier": "i", "x-other-id": "o"},
        {"monkey": "banana", "user-id": 7, "username": "u"},  # endings only: nothing to mask
        {"text": '"authorization": inside a value'},
        {"Host": "h", "X-Client-Id": "c"},
    ],
)
def test_the_record_masks_exactly_what_mask_headers_masks(value: Any):
    assert summary._small_json(value, []) == summary._encode(mask_headers(value))


@pytest.mark.parametrize("seconds", [0.0, 0.0004999, 0.0123456, 1.9999996, 12.3456789, 1e-7])
def test_record_times_are_the_rounded_milliseconds(seconds: float):
    assert summary._ms(seconds) == pytest.approx(round(seconds * 1000, 3), abs=1e-9 + 0.001)
    assert len(repr(summary._ms(seconds)).partition(".")[2]) <= 3


@contextlib.contextmanager
def _configured(tmp_path: Path, config: dict[str, Any]) -> Iterator[Datakit]:
    addon = Datakit()
    with taddons.context(addon) as tctx:
        path = tmp_path / "flow.yaml"
        path.write_text(yaml.safe_dump(config))
        tctx.configure(addon, datakit_config=str(path))
        yield addon


async def _run_one(tmp_path: Path, config: dict[str, Any]) -> tuple[http.HTTPFlow, http.Request]:
    with _configured(tmp_path, config) as addon:
        flow = tflow.tflow()
        sent = flow.request
        await hook_done(addon.request(flow))
        return flow, sent


async def test_a_plan_that_changes_nothing_keeps_the_clients_request(tmp_path: Path):
    config = {"nodes": [{"name": "UNUSED", "type": "static", "values": {"a": 1}}]}
    flow, sent = await _run_one(tmp_path, config)
    assert flow.request is sent
    assert flow.comment.startswith("datakit PLAN_COMPLETE: 1/1 nodes ran")


@pytest.mark.parametrize(
    "config, waits",
    [
        ({"nodes": [{"name": "UNUSED", "type": "static", "values": {"a": 1}}]}, False),
        ({"nodes": [{"name": "BODY", "type": "jq", "input": "service_response.body", "jq": ".",
                     "output": "response.body"}]}, False),
        # nothing listens on port 9 of 127.0.0.1: the call fails fast, but it is in flight when the hook returns
        ({"nodes": [{"name": "CALL", "type": "call", "url": "http://127.0.0.1:9/"}]}, True),
    ],
)
async def test_a_hook_returns_a_coroutine_only_while_a_call_is_in_flight(tmp_path: Path, config, waits):
    with _configured(tmp_path, config) as addon:
        flow = tflow.tflow()
        pending = addon.request(flow)
        assert (pending is not None) is waits
        await hook_done(pending)
        if flow.response is None:
            flow.response = http.Response.make(200, b'{"a":1}', {"Content-Type": "application/json"})
            assert addon.response(flow) is None
        assert flow.comment.startswith("datakit PLAN_"), flow.comment  # the record is written either way
        await addon.http.close()


async def test_a_plan_that_changes_the_request_works_on_a_copy(tmp_path: Path):
    config = {
        "nodes": [
            {"name": "T", "type": "static", "values": {"t": "10.0.0.1:9000"}},
            {"name": "SET", "type": "property", "property": "kong.service.target", "input": "T.t"},
            {"name": "H", "type": "static", "values": {"X-Added": "1"}, "output": "service_request.headers"},
        ]
    }
    flow, sent = await _run_one(tmp_path, config)
    assert flow.request is not sent
    assert (flow.request.host, flow.request.port, flow.request.headers["X-Added"]) == ("10.0.0.1", 9000, "1")
    assert (sent.host, sent.port, "X-Added" in sent.headers) == ("address", 22, False)


async def test_a_failed_plan_leaves_the_request_as_the_client_sent_it(tmp_path: Path):
    config = {
        "nodes": [
            {"name": "T", "type": "static", "values": {"t": "10.0.0.1:9000"}},
            {"name": "SET", "type": "property", "property": "kong.service.target", "input": "T.t"},
            {"name": "FAIL", "type": "jq", "input": "SET", "jq": 'error("boom")'},
        ]
    }
    flow, sent = await _run_one(tmp_path, config)
    assert flow.request is sent
    assert (sent.host, sent.port) == ("address", 22)
    assert flow.response is not None and flow.response.status_code == 500


async def test_gc_freeze_follows_the_option_and_ends_with_the_addon():
    datakit = Datakit()
    try:
        with taddons.context(datakit) as tctx:
            assert gc.get_freeze_count() == 0  # nothing is frozen before the proxy runs
            datakit.running()
            assert gc.get_freeze_count() > 0
            tctx.configure(datakit, datakit_gc_freeze=False)
            assert gc.get_freeze_count() == 0
            tctx.configure(datakit, datakit_gc_freeze=True)
            assert gc.get_freeze_count() > 0
            datakit.done()
            assert gc.get_freeze_count() == 0  # a reloaded script's replaced objects can be collected again
    finally:
        gc.unfreeze()


def _general_plain_body(message: http.Message, body: bytes, content_type: str | None) -> None:
    """What set_plain_body replaced: drop the stale framing, then mitmproxy's own body and header setters."""
    message.headers.pop("content-encoding", None)
    message.headers.pop("transfer-encoding", None)
    message.content = body
    if content_type:
        message.headers["Content-Type"] = content_type


@pytest.mark.parametrize("content_type", [None, "application/json"])
@pytest.mark.parametrize(
    "fields",
    [
        [],
        [(b"Content-Length", b"99"), (b"Server", b"x")],
        [(b"content-type", b"text/plain"), (b"Transfer-Encoding", b"chunked"), (b"X-A", b"1")],
        [(b"Content-Encoding", b"gzip"), (b"content-length", b"5"), (b"Content-Type", b"a/b"),
         (b"content-type", b"c/d"), (b"Content-Length", b"7")],
    ],
)
def test_set_plain_body_frames_as_mitmproxys_setters_do(fields, content_type):
    ours = http.Response.make(200, b"")
    ours.headers.fields = tuple(fields)
    general = copy_message(ours)

    set_plain_body(ours, b"new body", content_type)
    _general_plain_body(general, b"new body", content_type)
    assert ours.headers.fields == general.headers.fields
    assert ours.raw_content == general.raw_content == b"new body"


@pytest.mark.parametrize("status", [200, 201, 404, 599])
def test_new_response_is_the_response_make_builds(status):
    headers = http.Headers([(b"X-A", b"1"), (b"content-length", b"4")])
    ours = new_response(status, headers, b"body")
    made = http.Response(b"HTTP/1.1", status, status_codes.RESPONSES.get(status, "").encode(),
                         headers, b"body", None, ours.timestamp_start, ours.timestamp_end)
    assert ours.get_state() == made.get_state()
    assert ours.timestamp_start == ours.timestamp_end
    assert type(ours.data) is type(made.data) and ours.stream is made.stream is False
