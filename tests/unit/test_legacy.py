"""The 3.9/3.10 dialect without mitmproxy (spec §9): config forms, ports, payloads, scheduler, nodes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from mitm_datakit.context import RunContext
from mitm_datakit.dialect import legacy_form, plan_config
from mitm_datakit.errors import ConfigError
from mitm_datakit.legacy.payload import PayloadError, Raw, decode, encode, query_string, to_json
from mitm_datakit.legacy.runtime import LegacyPlan, LegacyRun

from .support import DictGateway


def legacy(text: str) -> LegacyPlan:
    return LegacyPlan(yaml.safe_load(text))


async def run_legacy(
    config: str,
    http_client: Any,
    *,
    headers: dict[str, Any] | None = None,
    body: bytes = b"",
    query: str = "",
    gateway: DictGateway | None = None,
    tracing: bool = False,
) -> LegacyRun:
    plan = legacy(config)
    run = plan.new_run(RunContext("f" * 32, gateway or DictGateway(), http_client), tracing=tracing)
    run.start({"headers": headers or {}, "raw_content": body, "raw_query": query})
    await run.advance()
    return run


def outputs(run: LegacyRun, name: str) -> dict[str, Any] | None:
    return run.outputs[run.plan.by_name[name]]


# -- LG-08: the filter's own JSON-schema tests ---------------------------------------------------

VALID = {
    "empty-nodes": "nodes: []",
    "timeout-0": "nodes: [{type: call, url: 'http://x.test/', timeout: 0}]",
    "timeout-99999": "nodes: [{type: call, url: 'http://x.test/', timeout: 99999}]",
    "exit-100": "nodes: [{type: exit, status: 100}]",
    "exit-599": "nodes: [{type: exit, status: 599}]",
    "jq-variable": "nodes: [{name: API, type: call, url: 'http://x.test/'}, {type: jq, jq: '$api', inputs: {api: API.body}}]",
    "jq-no-filter": "nodes: [{name: JQ_COMMON, type: jq, jq: '1'}, {type: jq, input: JQ_COMMON}]",
    "jq-no-input": "nodes: [{type: jq, jq: '.'}]",
}

INVALID = {
    "no-nodes": ("{}", "missing field `nodes`"),
    "call-without-url": ("nodes: [{name: C, type: call}]", "call: 'url' is a required attribute"),
    "timeout-negative": ("nodes: [{type: call, url: 'http://x.test/', timeout: -1}]", "invalid value for `timeout`"),
    "exit-99": ("nodes: [{type: exit, status: 99}]", "invalid value for `status`"),
    "exit-status-text": ("nodes: [{type: exit, status: ok}]", "invalid value for `status`"),
    "template-not-string": ("nodes: [{type: handlebars, template: 1}]", "invalid value for `template`"),
    "content-type-not-string": (
        "nodes: [{type: property, property: kong.version, content_type: 1}]",
        "invalid value for `content_type`",
    ),
    "no-type": ("nodes: [{name: X}]", "missing field `type`"),
    "input-and-inputs": ("nodes: [{type: jq, input: request.body, inputs: {a: request.body}}]", "cannot be used together"),
    "output-and-outputs": (
        "nodes: [{type: jq, output: response.body, outputs: {a: response.body}}]",
        "cannot be used together",
    ),
    "non-string-reference": ("nodes: [{type: exit, inputs: {object: {key: value}}}]", "invalid map value"),
    "reserved-name": ("nodes: [{name: service_request, type: jq}]", "cannot use reserved node name"),
}


@pytest.mark.parametrize("text", VALID.values(), ids=VALID.keys())
def test_lg08_valid_configs(text):
    assert isinstance(plan_config(yaml.safe_load(text), "3.10").plan, LegacyPlan)


@pytest.mark.parametrize(("text", "message"), INVALID.values(), ids=INVALID.keys())
def test_lg08_invalid_configs(text, message):
    with pytest.raises(ConfigError, match=message):
        plan_config(yaml.safe_load(text), "3.10")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nodes: [{name: A, type: teleport}]", "failed checking configuration: in node `A` of type `teleport`: unknown node type"),
        ("nodes: [{name: A, type: jq}, {name: A, type: jq}]", "multiple definitions of node `A`"),
        ("nodes: [{name: A, type: jq, input: NOPE.x}]", "unknown node in link: NOPE.x"),
        ("nodes: [{name: A, type: jq, input: A}]", "node cannot connect to itself"),
        ("nodes: [{name: C, type: call, url: 'http://x.test/', inputs: {nope: request.body}}]", "invalid input port name C.nope"),
        ("nodes: [{name: J, type: jq, input: request.nope}]", "invalid output port name request.nope"),
        (
            "nodes: [{name: P, type: property, property: a.b, inputs: [request.body, request.query]}]",
            "too many inputs declared (node type supports 1 inputs)",
        ),
        (
            "nodes: [{name: C, type: call, url: 'http://x.test/', inputs: [{body: request.body}, {body: request.query}]}]",
            "C.body is already connected to request.body",
        ),
        ("nodes: [{name: C, type: call, url: 'not a url'}]", "call: 'url' is not a valid URL"),
        ("nodes: [{name: P, type: property}]", "Missing `property` attribute"),
        ("nodes: [{name: J, type: jq, jq: '{'}]", "jq: filter compilation failed"),
    ],
    ids=["type", "duplicate", "unknown-node", "self", "input-port", "output-port", "too-many", "connected-twice",
         "bad-url", "no-property", "jq-syntax"],
)
def test_semantic_errors_use_the_filters_wording(text, message):
    with pytest.raises(ConfigError) as raised:
        legacy(text)
    assert any(message in issue.message for issue in raised.value.issues), raised.value


# -- dialect selection -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"nodes": []}, "`nodes` is empty"),
        ({"nodes": [{"type": "jq"}]}, "node #1 has no name"),
        ({"nodes": [{"name": "A", "type": "jq", "inputs": ["request.body"]}]}, "node #1 writes `inputs` as a list"),
        ({"nodes": [{"name": "A", "type": "jq", "outputs": [{"a": "response.body"}]}]}, "writes `outputs` as a list"),
        ({"nodes": [{"name": "A", "type": "jq", "jq": "1"}]}, None),
    ],
)
def test_legacy_forms_are_detected(config, reason):
    found = legacy_form(config)
    assert found == reason if reason is None else reason in found


def test_compat_forces_a_dialect():
    config = {"nodes": [{"name": "A", "type": "jq", "jq": "1"}]}
    assert plan_config(config, "3.10").dialect == "3.10"
    assert plan_config(config, "auto").dialect == "3.11"
    with pytest.raises(ConfigError):
        plan_config({"nodes": []}, "3.11")


# -- ports (§9.2) ---------------------------------------------------------------------------------

def test_unnamed_inputs_bind_to_default_ports_in_order():
    plan = legacy(
        """
nodes:
- {name: C, type: call, url: 'http://x.test/', inputs: [request.body, request.headers]}
- {name: J, type: jq, input: request.headers, output: service_request.headers}
- {name: H, type: handlebars, inputs: [J], output: response.body}
"""
    )
    call = plan.nodes[plan.by_name["C"]]
    assert call.inputs == {"body": (0, "body"), "headers": (0, "headers")}
    jq = plan.nodes[plan.by_name["J"]]
    assert jq.in_ports == ["request.headers"]  # named after the peer: the variable is $request_headers
    assert jq.out_ports == ["service_request.headers"]  # named after the target
    handlebars = plan.nodes[plan.by_name["H"]]
    assert handlebars.inputs == {"J": (plan.by_name["J"], "service_request.headers")}


# -- payloads (§9.3) ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("data", "content_type", "expected"),
    [
        (b'{"a":1}', "application/json; charset=utf-8", {"a": 1}),
        (b"a=1&a=2&b=", "application/x-www-form-urlencoded", {"a": "2", "b": ""}),
        (b"plain", "text/plain", Raw(b"plain")),
        (b"plain", None, Raw(b"plain")),
    ],
)
def test_decode(data, content_type, expected):
    assert decode(data, content_type) == expected


def test_decode_invalid_json_is_an_error_payload():
    assert isinstance(decode(b"{", "application/json"), PayloadError)


@pytest.mark.parametrize(
    ("payload", "content_type", "expected"),
    [
        ("my string", None, b"my string"),
        ("my string", "application/json", b'"my string"'),
        ({"a": 1}, None, b'{"a":1}'),
        (Raw(b"\xff raw"), "application/json", b"\xff raw"),
    ],
)
def test_encode(payload, content_type, expected):
    assert encode(payload, content_type) == expected


def test_to_json_of_raw_needs_utf8():
    assert to_json(Raw(b"text")) == "text"
    with pytest.raises(ValueError):
        to_json(Raw(b"\xff"))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"a": ["1", 2], "b": None, "c": "x y"}, "a=1&a=2&b&c=x+y"),
        ("bare", "bare"),
        (Raw(b"q=1&r=2"), "q=1&r=2"),
    ],
)
def test_query_string(payload, expected):
    assert query_string(payload) == expected


# -- scheduler and nodes (§9.5, §9.6) -------------------------------------------------------------

async def test_non_2xx_is_not_an_error_and_the_error_port_stays_empty(local_server, http_client):
    local_server.json_route("/denied", {"denied": True}, status=403)
    run = await run_legacy(
        f"""
nodes:
- {{name: CALL, type: call, url: '{local_server.url('/denied')}'}}
- {{name: ON_BODY, type: jq, inputs: {{b: CALL.body}}, jq: '$b'}}
- {{name: ON_ERROR, type: jq, inputs: {{e: CALL.error}}, jq: '$e'}}
""",
        http_client,
    )
    assert run.failure is None
    assert outputs(run, "ON_BODY") == {}  # jq with no output port keeps its result nowhere, but ran
    assert outputs(run, "ON_ERROR") is None  # never triggered
    call = outputs(run, "CALL")
    assert call["body"] == {"denied": True} and "error" not in call
    assert call["headers"]["content-type"].startswith("application/json")  # lower-cased names


async def test_a_failed_dispatch_fills_only_the_error_port(refused_url, http_client):
    run = await run_legacy(
        f"""
nodes:
- {{name: CALL, type: call, url: '{refused_url}'}}
- {{name: ON_BODY, type: jq, inputs: {{b: CALL.body}}, jq: '$b'}}
- {{name: ON_ERROR, type: jq, inputs: {{e: CALL.error}}, jq: '$e', output: response.body}}
""",
        http_client,
    )
    assert outputs(run, "ON_BODY") is None
    assert "failed to connect" in outputs(run, "ON_ERROR")["response.body"]


async def test_jq_results_go_to_ports_in_order_and_none_leaves_them_empty(http_client):
    run = await run_legacy(
        """
nodes:
- {name: MANY, type: jq, jq: '1, 2', outputs: {first: A, second: B}}
- {name: A, type: jq, jq: '$MANY_first'}
- {name: B, type: jq, jq: '$MANY_second'}
- {name: NONE, type: jq, jq: 'empty', output: C}
- {name: C, type: jq, jq: '1'}
""",
        http_client,
    )
    assert outputs(run, "MANY") == {"first": 1, "second": 2}
    assert outputs(run, "A") == {} and outputs(run, "B") == {}  # both ran
    assert outputs(run, "C") is None  # its only input never got a payload


async def test_jq_sees_inputs_as_variables_and_dot_as_null(http_client):
    run = await run_legacy(
        """
nodes:
- {name: J, type: jq, inputs: [{req: request.headers}, request.query], jq: '[., $req.foo, $request_query.a]', output: response.body}
""",
        http_client,
        headers={"Foo": "bar"},
        query="a=1",
    )
    assert outputs(run, "J") == {"response.body": [None, "bar", "1"]}


async def test_property_set_has_no_output_and_get_decodes_by_content_type(http_client):
    """LG-05's string round trip: plain vs JSON-encoded writes, plain vs decoded reads."""
    gateway = DictGateway()
    run = await run_legacy(
        """
nodes:
- {name: STR, type: jq, jq: '"my string"'}
- {name: SET_PLAIN, type: property, input: STR, property: kong.ctx.shared.my_string}
- {name: SET_ENCODED, type: property, input: STR, property: kong.ctx.shared.my_encoded, content_type: application/json}
- {name: AFTER_SET, type: jq, input: SET_PLAIN, jq: '1'}
- {name: GET_PLAIN, type: property, property: kong.ctx.shared.my_string}
- {name: GET_ENCODED, type: property, property: kong.ctx.shared.my_encoded}
- {name: GET_DECODED, type: property, property: kong.ctx.shared.my_encoded, content_type: application/json}
- {name: UNSET, type: property, property: kong.ctx.shared.nothing}
""",
        http_client,
        gateway=gateway,
    )
    assert gateway.properties == {"kong.ctx.shared.my_string": "my string", "kong.ctx.shared.my_encoded": '"my string"'}
    assert outputs(run, "AFTER_SET") is None  # a SET property has no output
    assert outputs(run, "GET_PLAIN") == {"value": Raw(b"my string")}
    assert outputs(run, "GET_ENCODED") == {"value": Raw(b'"my string"')}
    assert outputs(run, "GET_DECODED") == {"value": "my string"}
    assert outputs(run, "UNSET") == {"value": None}


async def test_call_timeout_is_in_seconds(local_server, http_client):
    local_server.json_route("/fast", {"ok": True})
    run = await run_legacy(
        f"nodes: [{{name: CALL, type: call, url: '{local_server.url('/fast')}', timeout: 1}}]", http_client
    )
    assert outputs(run, "CALL")["body"] == {"ok": True}  # 1 s, not 1 ms


async def test_exit_body_and_content_type(http_client):
    run = await run_legacy(
        """
nodes:
- {name: J, type: jq, jq: '"text"'}
- {name: EXIT, type: exit, status: 100, inputs: {body: J}}
""",
        http_client,
    )
    assert run.exit is not None and run.exit.status == 100
    assert run.exit.write.body == b"text"  # a JSON string is sent as its text...
    assert run.exit.write.content_type == "application/json"  # ...with the JSON type appended


async def test_sinks_replace_headers_and_quote_json_strings(http_client):
    run = await run_legacy(
        """
nodes:
- {name: H, type: jq, jq: '{"x-only": "1"}', output: service_request.headers}
- {name: B, type: jq, jq: '"quoted"', output: service_request.body}
""",
        http_client,
    )
    write = run.writes["service_request"]
    assert write.replace_headers and write.header_ops == [("x-only", ["1"])]
    assert write.body == b'"quoted"' and write.content_type == "application/json"


async def test_failure_body_keeps_the_filters_spelling(http_client):
    run = await run_legacy("nodes: [{name: J, type: jq, jq: 'error(\"boom\")'}]", http_client)
    assert run.failure is not None and run.failure.message == "boom"
    assert json.loads(run.error_body()) == {"message": "An unexpected error ocurred", "request_id": "f" * 32}


async def test_tracing_replaces_the_500_with_the_trace_array(http_client):
    run = await run_legacy("debug: true\nnodes: [{name: J, type: jq, jq: 'error(\"boom\")'}]", http_client, tracing=True)
    assert run.failure is None  # no 500: the trace is the answer
    trace = json.loads(run.render_trace())
    assert isinstance(trace, list)
    assert {"action": "run", "name": "J", "type": "jq"}.items() <= trace[1].items()
    assert trace[-1]["action"] == "fail" and trace[-1]["values"] == [{"data_type": "fail", "value": "boom"}]


@pytest.mark.parametrize(("value", "on"), [("1", True), ("anything", True), ("0", False), ("false", False), ("OFF", False), (None, False)])
def test_trace_activation(value, on):
    assert legacy("debug: true\nnodes: []").wants_trace(value) is on
    assert legacy("nodes: []").wants_trace(value) is False


# -- conversion to 3.11+ (the migration path) -------------------------------------------------------

LG04 = """
debug: true
nodes:
- name: FIRST
  type: call
  url: https://api.zippopotam.us/br/93000-000
- name: MY_HEADERS
  type: jq
  inputs:
  - first: FIRST.body
  output: service_request.headers
  jq: |
    {"X-Country": $first.country}
- name: MY_BODY
  type: handlebars
  inputs:
  - first: FIRST.body
  output: service_request.body
  template: "Hi {{ first.country }}"
- type: call
  url: http://x.test/
  timeout: 2
  method: post
"""


def test_conversion_plans_in_the_current_dialect_and_says_what_changes():
    from mitm_datakit.legacy.convert import to_current

    converted, notes = to_current(yaml.safe_load(LG04))
    planned = plan_config(converted, "auto")
    assert planned.dialect == "3.11"
    by_name = {n["name"]: n for n in converted["nodes"]}
    assert by_name["MY_HEADERS"]["jq"].strip() == '{"X-Country": .first.country}'
    assert by_name["MY_HEADERS"]["inputs"] == {"first": "FIRST.body"}
    assert by_name["CALL_4"]["method"] == "POST" and by_name["CALL_4"]["timeout"] == 2000
    assert any("replaced the whole set" in n for n in notes)
    assert any("handlebars" in n for n in notes)
    assert any("non-2xx" in n for n in notes)
