"""Node execution (spec §5.1-§5.5, §9.6 handlebars): each node type run through a real Plan and Run.

`call` nodes talk to a real aiohttp server on 127.0.0.1 (the `local_server` fixture), never to a mock.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

import jq as libjq
import pytest
from aiohttp import web
from multidict import CIMultiDict

from mitm_datakit.http_client import HttpClient
from mitm_datakit.nodes.jq import with_input
from mitm_datakit.runtime import Run

from .conftest import LocalServer, echo_headers, status_of, value_of
from .support import DictGateway, run_config

BOUND = 5.0  # seconds: no test here should come close


async def run_bounded(config: Any, **kwargs: Any) -> Run:
    return await asyncio.wait_for(run_config(config, **kwargs), BOUND)


def failure_of(run: Run) -> tuple[str, str]:
    assert run.failure is not None, "the run was expected to fail"
    return run.failure.node.name, run.failure.message


def trace_of(run: Run) -> dict[str, Any]:
    return json.loads(run.render_trace())


def events_of(trace: dict[str, Any], name: str, action: str | None = None) -> list[dict[str, Any]]:
    return [e for e in trace["events"] if e["name"] == name and (action is None or e["action"] == action)]


# =============================================================================================
# jq
# =============================================================================================


async def test_jq_input_is_dot() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "S", "type": "static", "values": {"a": {"b": [10, 20]}}},
                {"name": "J", "type": "jq", "input": "S", "jq": ".a.b[1] + 1"},
            ]
        }
    )
    assert run.failure is None
    assert value_of(run, "J") == 21


async def test_jq_inputs_are_object_fields_and_variables() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "S", "type": "static", "values": {"x": 1, "y": "two"}},
                {
                    "name": "J",
                    "type": "jq",
                    "inputs": {"foo": "S.x", "a.b": "S.y"},
                    # 3.11+ style (.foo) and 3.9/3.10 style ($foo; `.` in a name becomes `_`).
                    "jq": '{dot: .foo, var: $foo, dotted: ."a.b", dotted_var: $a_b, keys: keys}',
                },
            ]
        }
    )
    assert run.failure is None
    assert value_of(run, "J") == {
        "dot": 1,
        "var": 1,
        "dotted": "two",
        "dotted_var": "two",
        "keys": ["a.b", "foo"],
    }


@pytest.mark.parametrize("name", ["my-key", "if", "__loc__", "9lives", "$x"])
async def test_jq_input_names_that_are_not_plain_identifiers(name: str) -> None:
    # Every name is a field of `.`; only names that make a jq variable are also bound as one.
    run = await run_bounded(
        {
            "nodes": [
                {"name": "S", "type": "static", "values": {"v": "val"}},
                {"name": "J", "type": "jq", "inputs": {name: "S.v"}, "jq": f".[{json.dumps(name)}]"},
            ]
        }
    )
    assert run.failure is None
    assert value_of(run, "J") == "val"


async def test_jq_without_input_sees_null() -> None:
    run = await run_bounded({"nodes": [{"name": "J", "type": "jq", "jq": ". | type"}]})
    assert value_of(run, "J") == "null"


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ('"my string"', "my string"),  # RF-16
        ("54321", 54321),
        ("true", True),
        ("{a: 1, b: 2}", {"a": 1, "b": 2}),
        ('[1, "x", null]', [1, "x", None]),
        ("null", None),
        ("1.5", 1.5),
    ],
)
async def test_jq_literal_programs(program: str, expected: Any) -> None:
    run = await run_bounded({"nodes": [{"name": "J", "type": "jq", "jq": program}]})
    assert run.failure is None
    assert status_of(run, "J") == "NODE_COMPLETE"
    assert value_of(run, "J") == expected


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ("1, 2, 3", 1),  # first result wins
        ("(.[] | select(. > 1))", 2),
        ("empty", None),  # zero results -> null
        ("(.[] | select(. > 100))", None),
    ],
)
async def test_jq_result_cardinality(program: str, expected: Any) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "S", "type": "static", "values": {"list": [1, 2, 3]}},
                {"name": "J", "type": "jq", "input": "S.list", "jq": program},
                # A dependent still runs after zero results: the output is null, not missing.
                {"name": "AFTER", "type": "jq", "input": "J", "jq": "{seen: .}"},
            ]
        }
    )
    assert run.failure is None
    assert value_of(run, "J") == expected
    assert value_of(run, "AFTER") == {"seen": expected}


@pytest.mark.parametrize(
    ("program", "message_part"),
    [
        ('error("boom")', "boom"),
        (".a + 1", "cannot be added"),
        (".a | tonumber", "cannot be parsed as a number"),
        (".a | keys", "has no keys"),
        ("null | ascii_downcase", "explode input must be a string"),
    ],
)
async def test_jq_runtime_error_is_node_error(program: str, message_part: str) -> None:
    run = await run_bounded(
        {
            "debug": True,
            "nodes": [
                {"name": "S", "type": "static", "values": {"a": "text"}},
                {"name": "J", "type": "jq", "input": "S", "jq": program},
            ],
        }
    )
    node, message = failure_of(run)
    assert node == "J"
    assert message.startswith("jq: ")
    assert message_part.lower() in message.lower()
    assert status_of(run, "J") == "NODE_ERROR"
    body = json.loads(run.error_body())
    assert body["node"] == {"index": 2, "name": "J", "type": "jq"}


async def test_jq_trailing_comma_object() -> None:
    # EX-01 relies on trailing commas in object constructors.
    run = await run_bounded(
        {
            "nodes": [
                {"name": "S", "type": "static", "values": {"author": "Yours Truly", "uuid": "u-1"}},
                {
                    "name": "JOIN",
                    "type": "jq",
                    "inputs": {"input1": "S.author", "input2": "S.uuid"},
                    "jq": "{\n  author: .input1,\n  uuid: .input2,\n}\n",
                },
            ]
        }
    )
    assert value_of(run, "JOIN") == {"author": "Yours Truly", "uuid": "u-1"}


async def test_jq_rf14_rf15_self_key_and_input_types() -> None:
    gateway = DictGateway(
        {"kong.router.service": {"id": "svc-1", "name": "svc"}, "kong.client.ip": "10.0.0.1"}
    )
    run = await run_bounded(
        {
            "nodes": [
                {"name": "SERVICE", "type": "property", "property": "kong.router.service"},
                {"name": "IP", "type": "property", "property": "kong.client.ip"},
                {"name": "FILTER_SERVICE", "type": "jq", "input": "SERVICE", "jq": ". | type"},
                {"name": "FILTER_IP", "type": "jq", "input": "IP", "jq": ". | type"},
                {
                    "name": "FILTER_SERVICE_AND_IP",
                    "type": "jq",
                    "inputs": {"service": "SERVICE", "ip": "IP"},
                    "jq": '{"$self": (. | type), "service": (.service | type), "ip": (.ip | type)}',
                },
            ]
        },
        gateway=gateway,
    )
    assert run.failure is None
    assert value_of(run, "FILTER_SERVICE") == "object"
    assert value_of(run, "FILTER_IP") == "string"
    assert value_of(run, "FILTER_SERVICE_AND_IP") == {"$self": "object", "service": "object", "ip": "string"}


async def test_jq_unconnected_named_input_is_null_field() -> None:
    # `inputs: {x: null}` is ignored (3.14.0.8); a connected input whose value is null is a null field.
    run = await run_bounded(
        {
            "nodes": [
                {"name": "S", "type": "static", "values": {"nothing": None}},
                {
                    "name": "J",
                    "type": "jq",
                    "inputs": {"a": "S.nothing", "b": None},
                    "jq": '[has("a"), .a, has("b")]',
                },
            ]
        }
    )
    assert value_of(run, "J") == [True, None, False]


async def test_jq_sees_bytes_body_as_text() -> None:
    run = await run_bounded(
        {"nodes": [{"name": "J", "type": "jq", "input": "request.body", "jq": "type"}]},
        request={"body": b"\xff\xfe raw"},
    )
    assert value_of(run, "J") == "string"


@pytest.mark.parametrize(
    "data",
    [
        None, 1, 1.5, 1e16, -0.0, 2**63, 2**64, 2**70, "é\u2028 \"q\"", "null", True,
        {"a": None}, {"a": float("nan")}, [float("inf"), float("-inf")], {1: "non-text key"},
        {"k": [1, {"x": "y"}], "deep": json.loads("[" * 300 + "]" * 300)},
    ],
    ids=repr,
)
def test_jq_with_input_reads_what_input_value_reads(data: Any) -> None:
    # with_input hands libjq orjson's text where it equals json.dumps's for jq; NaN, infinities, big integers and
    # what orjson refuses must reach the program exactly as input_value sends them.
    compiled = libjq.compile("[., [.. | numbers | isnan], [.. | numbers | tostring], type]")
    expected = _outcome(lambda: compiled.input_value(data).first())
    assert _outcome(lambda: with_input(compiled, data).first()) == expected


# A lone surrogate: libjq refuses json.dumps's escape; bytes inside a value: json.dumps refuses them.
@pytest.mark.parametrize(("data", "error"), [("\ud800", "ValueError"), ({"raw": b"bytes"}, "TypeError")])
def test_jq_with_input_fails_as_input_value_fails(data: Any, error: str) -> None:
    compiled = libjq.compile(".")
    expected = _outcome(lambda: compiled.input_value(data).first())
    assert expected[0] == error
    assert _outcome(lambda: with_input(compiled, data).first()) == expected


def _outcome(produce: Any) -> tuple[str, str]:
    """The result's repr, or the error's type and message (the two ways a jq run can end here)."""
    try:
        return "ok", repr(produce())
    except (ValueError, TypeError) as e:
        return type(e).__name__, str(e)


# =============================================================================================
# handlebars (extension, spec §9.6)
# =============================================================================================


async def test_handlebars_named_inputs() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "S", "type": "static", "values": {"name": "World", "n": 3}},
                {
                    "name": "H",
                    "type": "handlebars",
                    "inputs": {"name": "S.name", "count": "S.n"},
                    "template": "Hello {{name}} x{{count}}",
                },
            ]
        }
    )
    assert run.failure is None
    assert value_of(run, "H") == "Hello World x3"


async def test_handlebars_escapes_html_unless_triple_stash() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "S", "type": "static", "values": {"v": '<b>"A&B"</b>'}},
                {"name": "H", "type": "handlebars", "inputs": {"v": "S.v"}, "template": "{{v}}|{{{v}}}"},
            ]
        }
    )
    escaped, raw = value_of(run, "H").split("|")
    assert raw == '<b>"A&B"</b>'
    assert escaped.startswith("&lt;b&gt;")
    assert "&amp;" in escaped and "<" not in escaped


async def test_handlebars_lg04_over_zippopotam_like_body(local_server: LocalServer) -> None:
    local_server.json_route(
        "/br/93000-000",
        {
            "post code": "93000-000",
            "country": "Brazil",
            "country abbreviation": "BR",
            "places": [
                {
                    "place name": "Porto Alegre",
                    "longitude": "-51.2",
                    "state": "Rio Grande do Sul",
                    "latitude": "-30.0",
                }
            ],
        },
    )
    template = (
        "Coordinates for {{ first.places.0.[place name] }}, {{ first.places.0.state }}, {{ first.country }} "
        "are ({{ first.places.0.latitude }}, {{ first.places.0.longitude }}).\n"
    )
    run = await run_bounded(
        {
            "nodes": [
                {"name": "FIRST", "type": "call", "url": local_server.url("/br/93000-000")},
                {
                    "name": "MY_HEADERS",
                    "type": "jq",
                    "inputs": {"first": "FIRST.body"},
                    "output": "service_request.headers",
                    "jq": '{"X-Hello": "World", "X-Foo": "Bar", "X-Country": $first.country}',
                },
                {
                    "name": "MY_BODY",
                    "type": "handlebars",
                    "content_type": "text/plain",
                    "inputs": {"first": "FIRST.body"},
                    "output": "service_request.body",
                    "template": template,
                },
            ]
        }
    )
    assert run.failure is None
    expected = "Coordinates for Porto Alegre, Rio Grande do Sul, Brazil are (-30.0, -51.2).\n"
    assert value_of(run, "MY_BODY") == expected
    write = run.writes["service_request"]
    assert write.body == expected.encode()
    assert write.content_type is None  # a string body implies no content type
    assert write.header_ops == [("X-Hello", ["World"]), ("X-Foo", ["Bar"]), ("X-Country", ["Brazil"])]


async def test_handlebars_json_content_type_parses() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "S", "type": "static", "values": {"n": 7, "name": "x"}},
                {
                    "name": "H",
                    "type": "handlebars",
                    "content_type": "application/json",
                    "inputs": {"n": "S.n", "name": "S.name"},
                    "template": '{"n": {{n}}, "name": "{{name}}", "list": [1, 2]}',
                },
            ]
        }
    )
    assert run.failure is None
    assert value_of(run, "H") == {"n": 7, "name": "x", "list": [1, 2]}


async def test_handlebars_json_content_type_invalid_json_fails() -> None:
    run = await run_bounded(
        {
            "debug": True,
            "nodes": [
                {"name": "S", "type": "static", "values": {"name": "x"}},
                {
                    "name": "H",
                    "type": "handlebars",
                    "content_type": "application/json",
                    "inputs": {"name": "S.name"},
                    "template": "{ name: {{name}} ",
                },
            ],
        }
    )
    node, message = failure_of(run)
    assert node == "H"
    assert "not valid JSON" in message


async def test_handlebars_self_input_is_the_context() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "S", "type": "static", "values": {"who": "you"}},
                {"name": "H", "type": "handlebars", "input": "S", "template": "hi {{who}}"},
            ]
        }
    )
    assert value_of(run, "H") == "hi you"


# =============================================================================================
# exit
# =============================================================================================


@pytest.mark.parametrize("status", [200, 201, 302, 418, 599])
async def test_exit_status(status: int) -> None:
    run = await run_bounded({"nodes": [{"name": "EXIT", "type": "exit", "status": status}]})
    assert run.exit is not None
    assert run.exit.status == status
    assert run.exit.write.body == b""  # an unconnected body is an empty body


async def test_exit_default_status_is_200() -> None:
    run = await run_bounded({"nodes": [{"name": "EXIT", "type": "exit"}]})
    assert run.exit is not None and run.exit.status == 200


@pytest.mark.parametrize(
    ("body", "expected_bytes", "expected_type"),
    [
        ({"uuid": "u", "author": "Yours Truly"}, b'{"uuid":"u","author":"Yours Truly"}', "application/json"),
        ([1, 2], b"[1,2]", "application/json"),
        (12, b"12", "application/json"),
        ("plain text", b"plain text", None),
    ],
)
async def test_exit_body_encoding(body: Any, expected_bytes: bytes, expected_type: str | None) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "S", "type": "static", "values": {"body": body}},
                {"name": "EXIT", "type": "exit", "inputs": {"body": "S.body"}, "status": 200},
            ]
        }
    )
    assert run.exit is not None
    assert run.exit.write.body == expected_bytes
    assert run.exit.write.content_type == expected_type


async def test_exit_headers_with_null_removal() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "HEADERS",
                    "type": "static",
                    "values": {"X-Ignored": None, "X-Add-Me": "added", "X-N": 1},
                },
                {"name": "EXIT", "type": "exit", "inputs": {"headers": "HEADERS"}, "status": 200},
            ]
        }
    )
    assert run.exit is not None
    assert run.exit.write.header_ops == [("X-Ignored", None), ("X-Add-Me", ["added"]), ("X-N", ["1"])]


async def test_exit_nodewise_input_from_call(local_server: LocalServer) -> None:
    local_server.json_route("/api", {"from": "api"}, headers={"X-From-Api": "yes"})
    run = await run_bounded(
        {
            "nodes": [
                {"name": "CALL", "type": "call", "url": local_server.url("/api")},
                {"name": "EXIT", "type": "exit", "input": "CALL", "status": 200},
            ]
        }
    )
    assert run.failure is None and run.exit is not None
    write = run.exit.write
    assert json.loads(write.body or b"") == {"from": "api"}
    names = {name.lower(): vals for name, vals in write.header_ops}
    assert names["x-from-api"] == ["yes"]
    assert names["content-type"] == ["application/json; charset=utf-8"]
    assert "content-length" not in names  # framing headers are recomputed, never copied
    assert write.content_type is None  # the call's Content-Type is carried over


# =============================================================================================
# static
# =============================================================================================


async def test_static_values_and_outputs_by_key() -> None:
    values = {"key": "cache key", "ttl": 100, "flag": True, "nested": {"a": [1, 2]}, "nothing": None}
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "S",
                    "type": "static",
                    "values": values,
                    "outputs": {"nested": "GET_NESTED", "ttl": "GET_TTL"},
                },
                {"name": "GET_NESTED", "type": "jq", "jq": ".a"},
                {"name": "GET_TTL", "type": "jq", "jq": ". + 1"},
                {"name": "WHOLE", "type": "jq", "input": "S", "jq": "."},
                {"name": "FIELD", "type": "jq", "input": "S.key", "jq": "."},
            ]
        }
    )
    assert run.failure is None
    assert value_of(run, "S") == values
    assert value_of(run, "WHOLE") == values
    assert "nothing" in value_of(run, "WHOLE")  # null values are kept
    assert value_of(run, "GET_NESTED") == [1, 2]
    assert value_of(run, "GET_TTL") == 101
    assert value_of(run, "FIELD") == "cache key"


# =============================================================================================
# property
# =============================================================================================


async def test_property_get_ctx_shared() -> None:
    gateway = DictGateway({"kong.ctx.shared.my_property": {"a": 1}})
    run = await run_bounded(
        {
            "nodes": [
                {"name": "GET_PROPERTY", "type": "property", "property": "kong.ctx.shared.my_property"},
                {"name": "FILTER", "type": "jq", "input": "GET_PROPERTY", "jq": "."},  # RF-01
            ]
        },
        gateway=gateway,
    )
    assert value_of(run, "GET_PROPERTY") == {"a": 1}
    assert value_of(run, "FILTER") == {"a": 1}


async def test_property_get_unset_is_null() -> None:
    run = await run_bounded(
        {"nodes": [{"name": "UNSET_PROP", "type": "property", "property": "kong.ctx.shared.nope"}]}
    )
    assert run.failure is None
    assert status_of(run, "UNSET_PROP") == "NODE_COMPLETE"
    assert value_of(run, "UNSET_PROP") is None


@pytest.mark.parametrize(
    ("content_type", "stored"),
    [
        (None, "my string"),  # spec §5.4: plain characters
        ("text/plain", "my string"),
        ("application/octet-stream", "my string"),
        ("application/json", '"my string"'),  # quoted
    ],
)
async def test_property_set_content_type(content_type: str | None, stored: str) -> None:
    gateway = DictGateway()
    node: dict[str, Any] = {"name": "SET", "type": "property", "property": "kong.ctx.shared.s", "input": "J"}
    if content_type:
        node["content_type"] = content_type
    run = await run_bounded(
        {"nodes": [{"name": "J", "type": "jq", "jq": '"my string"'}, node]}, gateway=gateway
    )
    assert run.failure is None
    assert gateway.properties["kong.ctx.shared.s"] == stored


async def test_property_set_json_encodes_objects() -> None:
    gateway = DictGateway()
    run = await run_bounded(
        {
            "nodes": [
                {"name": "J", "type": "jq", "jq": '{nested: {message: "hi"}}'},
                {
                    "name": "SET",
                    "type": "property",
                    "property": "kong.ctx.shared.obj",
                    "content_type": "application/json",
                    "input": "J",
                },
            ]
        },
        gateway=gateway,
    )
    assert run.failure is None
    assert json.loads(gateway.properties["kong.ctx.shared.obj"]) == {"nested": {"message": "hi"}}


@pytest.mark.parametrize(
    ("stored", "content_type", "expected"),
    [
        ('"my string"', None, '"my string"'),  # GET without content type returns what is stored
        ('"my string"', "application/json", "my string"),
        ('{"nested": {"message": "hello"}}', "application/json", {"nested": {"message": "hello"}}),
        ('{"nested": 1}', "text/plain", '{"nested": 1}'),
        ({"native": True}, "application/json", {"native": True}),  # native values need no decoding
        (None, "application/json", None),
    ],
)
async def test_property_get_content_type(stored: Any, content_type: str | None, expected: Any) -> None:
    node: dict[str, Any] = {"name": "GET", "type": "property", "property": "kong.ctx.shared.s"}
    if content_type:
        node["content_type"] = content_type
    run = await run_bounded({"nodes": [node]}, gateway=DictGateway({"kong.ctx.shared.s": stored}))
    assert run.failure is None
    assert value_of(run, "GET") == expected


async def test_property_get_json_of_invalid_text_fails() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "GET",
                    "type": "property",
                    "property": "kong.ctx.shared.s",
                    "content_type": "application/json",
                }
            ]
        },
        gateway=DictGateway({"kong.ctx.shared.s": "not json"}),
    )
    node, message = failure_of(run)
    assert node == "GET"
    assert "kong.ctx.shared.s" in message and "JSON" in message


async def test_property_non_nil_get_unset_fails_rf25() -> None:
    gateway = DictGateway()
    run = await run_bounded(
        {
            "debug": True,
            "nodes": [
                {"name": "GET_SRC", "type": "property", "property": "kong.ctx.shared.src", "non_nil": True},
                {
                    "name": "SET_API_KEY",
                    "type": "property",
                    "property": "kong.ctx.shared.api_key",
                    "non_nil": True,
                    "input": "GET_SRC",
                },
            ],
        },
        gateway=gateway,
    )
    node, message = failure_of(run)
    assert node == "GET_SRC"
    assert "kong.ctx.shared.src" in message and "non_nil" in message
    assert "kong.ctx.shared.api_key" not in gateway.properties
    assert json.loads(run.error_body())["node"] == {"index": 1, "name": "GET_SRC", "type": "property"}


async def test_property_non_nil_get_set_value_passes() -> None:
    gateway = DictGateway({"kong.ctx.shared.src": "key-123"})
    run = await run_bounded(
        {
            "nodes": [
                {"name": "GET_SRC", "type": "property", "property": "kong.ctx.shared.src", "non_nil": True},
                {
                    "name": "SET",
                    "type": "property",
                    "property": "kong.ctx.shared.api_key",
                    "non_nil": True,
                    "input": "GET_SRC",
                },
            ]
        },
        gateway=gateway,
    )
    assert run.failure is None
    assert gateway.properties["kong.ctx.shared.api_key"] == "key-123"


async def test_property_non_nil_set_null_fails() -> None:
    gateway = DictGateway()
    run = await run_bounded(
        {
            "nodes": [
                {"name": "J", "type": "jq", "jq": "null"},
                {
                    "name": "SET",
                    "type": "property",
                    "property": "kong.ctx.shared.k",
                    "non_nil": True,
                    "input": "J",
                },
            ]
        },
        gateway=gateway,
    )
    node, message = failure_of(run)
    assert node == "SET"
    assert "null" in message
    assert "kong.ctx.shared.k" not in gateway.properties


async def test_property_set_without_non_nil_stores_null() -> None:
    gateway = DictGateway({"kong.ctx.shared.k": "old"})
    run = await run_bounded(
        {
            "nodes": [
                {"name": "J", "type": "jq", "jq": "null"},
                {"name": "SET", "type": "property", "property": "kong.ctx.shared.k", "input": "J"},
            ]
        },
        gateway=gateway,
    )
    assert run.failure is None
    assert "kong.ctx.shared.k" in gateway.properties and gateway.properties["kong.ctx.shared.k"] is None


@pytest.mark.parametrize("content_type", [None, "application/json"])
async def test_property_set_output_is_the_value_set(content_type: str | None) -> None:
    gateway = DictGateway()
    node: dict[str, Any] = {
        "name": "SET_TARGET",
        "type": "property",
        "property": "kong.service.target",
        "input": "EXTRACT_TARGET",
    }
    if content_type:
        node["content_type"] = content_type
    run = await run_bounded(
        {
            "nodes": [
                {"name": "EXTRACT_TARGET", "type": "jq", "jq": '"httpbin.konghq.com:80"'},
                node,
                {"name": "AFTER", "type": "jq", "input": "SET_TARGET", "jq": "{got: .}"},
            ]
        },
        gateway=gateway,
    )
    assert run.failure is None
    assert value_of(run, "SET_TARGET") == "httpbin.konghq.com:80"
    assert value_of(run, "AFTER") == {"got": "httpbin.konghq.com:80"}
    assert "kong.service.target" in gateway.properties


async def test_property_set_gateway_value_error_is_node_error() -> None:
    class Refusing(DictGateway):
        def set_property(self, name: str, value: Any) -> None:
            raise ValueError("expected host:port")

    run = await run_bounded(
        {
            "nodes": [
                {"name": "J", "type": "jq", "jq": '"no-port"'},
                {"name": "SET", "type": "property", "property": "kong.service.target", "input": "J"},
            ]
        },
        gateway=Refusing(),
    )
    node, message = failure_of(run)
    assert node == "SET"
    assert message == "property kong.service.target: expected host:port"


async def test_property_old_spelling_is_an_alias() -> None:
    gateway = DictGateway()
    run = await run_bounded(
        {
            "nodes": [
                {"name": "J", "type": "jq", "jq": '"https"'},
                {"name": "SET", "type": "property", "property": "kong.service.request_scheme", "input": "J"},
            ]
        },
        gateway=gateway,
    )
    assert run.failure is None
    assert gateway.properties == {"kong.service.request.scheme": "https"}


# =============================================================================================
# call (against a real local server)
# =============================================================================================


async def test_call_get(local_server: LocalServer) -> None:
    run = await run_bounded({"nodes": [{"name": "CALL", "type": "call", "url": local_server.url("/echo")}]})
    assert run.failure is None
    out = value_of(run, "CALL")
    assert out["status"] == 200
    assert out["body"]["method"] == "GET"
    assert out["body"]["path"] == "/echo"
    assert json.loads(out["raw_body"]) == out["body"]
    (recorded,) = local_server.requests_to("/echo")
    assert recorded.body == b""
    assert recorded.header("Host") == [f"127.0.0.1:{local_server.port}"]
    assert recorded.header("Content-Type") == []  # no body, no content type
    assert recorded.header("Cookie") == []


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_call_method(local_server: LocalServer, method: str) -> None:
    run = await run_bounded(
        {"nodes": [{"name": "CALL", "type": "call", "method": method, "url": local_server.url("/echo")}]}
    )
    assert run.failure is None
    assert [r.method for r in local_server.requests] == [method]


async def test_call_post_json_body_sets_content_type_rf10(local_server: LocalServer) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "POST",
                    "type": "call",
                    "url": local_server.url("/echo"),
                    "method": "POST",
                    "inputs": {"body": "ENTITY"},
                },
                {"name": "ENTITY", "type": "static", "values": {"id": 123, "name": "Datakit"}},
            ]
        }
    )
    assert run.failure is None
    (recorded,) = local_server.requests
    assert recorded.method == "POST"
    assert recorded.header("Content-Type") == ["application/json"]
    assert json.loads(recorded.body) == {"id": 123, "name": "Datakit"}
    assert recorded.header("Content-Length") == [str(len(recorded.body))]


async def test_call_given_content_type_is_not_duplicated(local_server: LocalServer) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "IN",
                    "type": "static",
                    "values": {"headers": {"content-type": "application/vnd.x+json"}, "body": {"a": 1}},
                },
                {
                    "name": "CALL",
                    "type": "call",
                    "method": "POST",
                    "url": local_server.url("/echo"),
                    "input": "IN",
                },
            ]
        }
    )
    assert run.failure is None
    (recorded,) = local_server.requests
    assert recorded.header("Content-Type") == ["application/vnd.x+json"]
    assert json.loads(recorded.body) == {"a": 1}


async def test_call_string_body_is_verbatim(local_server: LocalServer) -> None:
    # The 3.11/3.12 variant of EX-03: a raw string body with a form content type.
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "IN",
                    "type": "static",
                    "values": {
                        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                        "body": "grant_type=client_credentials",
                    },
                },
                {
                    "name": "CALL",
                    "type": "call",
                    "method": "POST",
                    "url": local_server.url("/echo"),
                    "input": "IN",
                },
            ]
        }
    )
    assert run.failure is None
    (recorded,) = local_server.requests
    assert recorded.body == b"grant_type=client_credentials"
    assert recorded.header("Content-Type") == ["application/x-www-form-urlencoded"]


async def test_call_form_body_ex03(local_server: LocalServer) -> None:
    local_server.json_route("/auth-token", {"token_type": "Bearer", "access_token": "abc"})
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "STATIC_INPUTS",
                    "type": "static",
                    "values": {
                        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                        "body": {"grant_type": "client_credentials", "client_id": "my_client_id"},
                    },
                },
                {
                    "name": "BUILD_HEADERS",
                    "type": "jq",
                    "inputs": {"headers": "STATIC_INPUTS.headers", "query": "request.query"},
                    "jq": '.headers * {\n  "X-Api-Key": (.query.api_key // "none")\n}\n',
                },
                {
                    "name": "AUTH_REQUEST",
                    "type": "call",
                    "inputs": {"headers": "BUILD_HEADERS", "body": "STATIC_INPUTS.body"},
                    "url": local_server.url("/auth-token"),
                    "method": "POST",
                },
                {
                    "name": "UPSTREAM_AUTH_HEADER",
                    "type": "jq",
                    "input": "AUTH_REQUEST.body",
                    "output": "service_request.headers",
                    "jq": '{\n  Authorization: (.token_type + " " + .access_token)\n}\n',
                },
            ]
        },
        request={"query": {"api_key": "k-42"}},
    )
    assert run.failure is None
    (recorded,) = local_server.requests
    assert recorded.method == "POST"
    assert recorded.header("Content-Type") == ["application/x-www-form-urlencoded"]
    assert recorded.header("X-Api-Key") == ["k-42"]
    assert parse_qs(recorded.body.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": ["my_client_id"],
    }
    assert run.writes["service_request"].header_ops == [("Authorization", ["Bearer abc"])]


async def test_call_query_merges_with_url_query(local_server: LocalServer) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "Q",
                    "type": "static",
                    "values": {"shared": "input", "extra": ["a", "b"], "flag": True, "n": 10, "gone": None},
                },
                {
                    "name": "CALL",
                    "type": "call",
                    "url": local_server.url("/echo?fixed=1&shared=url&bare&sp=a+b&gone=x"),
                    "inputs": {"query": "Q"},
                },
            ]
        }
    )
    assert run.failure is None
    (recorded,) = local_server.requests
    # The URL's own pairs stay as written (a bare key stays bare); the input wins on a shared key,
    # and its null removes the key.
    assert recorded.query_string == "fixed=1&bare&sp=a+b&shared=input&extra=a&extra=b&flag=true&n=10"


async def test_call_query_from_request_query(local_server: LocalServer) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "API",
                    "type": "call",
                    "url": local_server.url("/echo"),
                    "inputs": {"query": "request.query"},
                }
            ]
        },
        request={"query": {"b": "123", "a": "true", "s": "x y&z"}},
    )
    assert run.failure is None
    (recorded,) = local_server.requests
    assert parse_qs(recorded.query_string) == {"b": ["123"], "a": ["true"], "s": ["x y&z"]}


async def test_call_headers_null_clears_ex06(local_server: LocalServer) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "HEADERS", "type": "static", "values": {"X-Ignored": None, "X-Add-Me": "added"}},
                {
                    "name": "API",
                    "type": "call",
                    "url": local_server.url("/echo"),
                    "inputs": {"headers": "HEADERS"},
                },
                {"name": "EXIT", "type": "exit", "inputs": {"headers": "HEADERS"}, "status": 200},
            ]
        }
    )
    assert run.failure is None
    (recorded,) = local_server.requests
    assert recorded.header("X-Add-Me") == ["added"]
    assert recorded.header("X-Ignored") == []
    assert run.exit is not None
    assert run.exit.status == 200
    assert run.exit.write.header_ops == [("X-Ignored", None), ("X-Add-Me", ["added"])]
    assert run.exit.write.body == b""


async def test_call_array_header_sent_once_per_value(local_server: LocalServer) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "H", "type": "static", "values": {"X-Multi": ["first", "second"], "X-Bool": True}},
                {"name": "API", "type": "call", "url": local_server.url("/echo"), "inputs": {"headers": "H"}},
            ]
        }
    )
    assert run.failure is None
    (recorded,) = local_server.requests
    assert recorded.header("X-Multi") == ["first", "second"]
    assert recorded.header("X-Bool") == ["true"]


async def test_call_url_input_overrides_and_null_falls_back_rf13(local_server: LocalServer) -> None:
    local_server.json_route("/default", {"which": "default"})
    local_server.json_route("/dynamic", {"which": "dynamic"})
    config = {
        "nodes": [
            {
                "name": "DYNAMIC_URL",
                "type": "call",
                "url": local_server.url("/default"),
                "inputs": {"url": "request.body"},
            }
        ]
    }
    run = await run_bounded(config, request={"body": local_server.url("/dynamic")})
    assert run.failure is None
    assert value_of(run, "DYNAMIC_URL")["body"] == {"which": "dynamic"}
    run = await run_bounded(config, request={"body": None})
    assert run.failure is None
    assert value_of(run, "DYNAMIC_URL")["body"] == {"which": "default"}
    assert [r.path for r in local_server.requests] == ["/dynamic", "/default"]


async def test_call_url_from_jq_without_static_url(local_server: LocalServer) -> None:
    # EX-05 shape: the URL is built from a request header.
    local_server.json_route("/tenant-a/auth-token", {"ok": True})
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "BUILD_URL",
                    "type": "jq",
                    "input": "request.headers",
                    "jq": f'"{local_server.url("/")}" + .path + "/auth-token"',
                },
                {"name": "AUTH", "type": "call", "method": "POST", "inputs": {"url": "BUILD_URL"}},
            ]
        },
        request={"headers": {"path": "tenant-a"}},
    )
    assert run.failure is None
    assert [r.path for r in local_server.requests] == ["/tenant-a/auth-token"]


@pytest.mark.parametrize(
    "bad_url", ["not a url", "ftp://127.0.0.1/x", "http://", "http://[::1/x", "http://127.0.0.1:99999/"]
)
async def test_call_invalid_dynamic_url_fails(bad_url: str) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "CALL",
                    "type": "call",
                    "url": "http://127.0.0.1:9/",
                    "inputs": {"url": "request.body"},
                }
            ]
        },
        request={"body": bad_url},
    )
    node, message = failure_of(run)
    assert node == "CALL"
    assert message.startswith("call: invalid") and "URL" in message


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "nul\x00byte"])
async def test_call_header_injection_is_a_node_error(local_server: LocalServer, value: str) -> None:
    # A header value built from client data must fail the node, not crash it or reach the wire.
    run = await run_bounded(
        {
            "nodes": [
                {"name": "H", "type": "jq", "input": "request.body", "jq": '{"X-Evil": .}'},
                {"name": "API", "type": "call", "url": local_server.url("/echo"), "inputs": {"headers": "H"}},
            ]
        },
        request={"body": value},
    )
    node, message = failure_of(run)
    assert node == "API"
    assert message.startswith(f"invalid request to 127.0.0.1:{local_server.port}")
    assert "internal error" not in message
    assert local_server.requests == []


async def test_call_without_any_url_fails_at_run_time() -> None:
    run = await run_bounded(
        {"nodes": [{"name": "CALL", "type": "call", "inputs": {"url": "request.body"}}]},
        request={"body": None},
    )
    node, message = failure_of(run)
    assert node == "CALL"
    assert "no URL" in message


@pytest.mark.parametrize("code", [301, 400, 403, 404, 500, 503])
async def test_call_non_2xx_fails_with_values(local_server: LocalServer, code: int) -> None:
    run = await run_bounded(
        {
            "debug": True,
            "nodes": [{"name": "API", "type": "call", "url": local_server.url(f"/status/{code}")}],
        },
        trace=True,
    )
    node, message = failure_of(run)
    assert (node, message) == ("API", f"non-2XX response code: {code}")
    trace = trace_of(run)
    (fail,) = events_of(trace, "API", "fail")
    values = {v.get("key", v["type"]): v for v in fail["values"]}
    assert values["error"]["value"] == f"non-2XX response code: {code}"
    assert values["status"] == {"key": "status", "type": "number", "value": code}
    assert values["body"]["value"] == {"status": code}
    assert values["headers"]["value"]["X-Status-Header"] == "yes"
    assert json.loads(run.error_body())["error"] == f"non-2XX response code: {code}"


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
async def test_call_2xx_succeeds(local_server: LocalServer, code: int) -> None:
    local_server.text_route("/ok", "" if code == 204 else "fine", status=code)
    run = await run_bounded({"nodes": [{"name": "API", "type": "call", "url": local_server.url("/ok")}]})
    assert run.failure is None
    assert value_of(run, "API")["status"] == code


async def test_call_empty_response_body_is_null(local_server: LocalServer) -> None:
    local_server.text_route("/empty", "", content_type="application/json")
    run = await run_bounded({"nodes": [{"name": "API", "type": "call", "url": local_server.url("/empty")}]})
    assert run.failure is None
    assert value_of(run, "API")["body"] is None
    assert value_of(run, "API")["raw_body"] == ""


@pytest.mark.parametrize("content_type", ["application/json", "application/problem+json; charset=utf-8"])
async def test_call_invalid_json_fails(local_server: LocalServer, content_type: str) -> None:
    local_server.text_route("/bad", "{not json", content_type=content_type)
    run = await run_bounded(
        {"debug": True, "nodes": [{"name": "API", "type": "call", "url": local_server.url("/bad")}]},
        trace=True,
    )
    node, message = failure_of(run)
    assert node == "API"
    assert "invalid JSON" in message
    (fail,) = events_of(trace_of(run), "API", "fail")
    values = {v.get("key", v["type"]): v for v in fail["values"]}
    assert values["raw_body"]["value"] == "{not json"
    assert values["status"]["value"] == 200


async def test_call_non_json_body_stays_text(local_server: LocalServer) -> None:
    local_server.text_route("/xml", "<a>1</a>", content_type="application/xml")
    run = await run_bounded({"nodes": [{"name": "API", "type": "call", "url": local_server.url("/xml")}]})
    assert value_of(run, "API")["body"] == "<a>1</a>"


async def test_call_connection_refused(refused_url: str) -> None:
    run = await run_bounded({"debug": True, "nodes": [{"name": "API", "type": "call", "url": refused_url}]})
    node, message = failure_of(run)
    port = refused_url.split(":")[2].split("/")[0]
    assert node == "API"
    assert message.startswith(f"failed to connect to 127.0.0.1:{port}")
    assert "/nothing" not in message  # never the path, which may carry credentials


async def test_call_timeout(local_server: LocalServer) -> None:
    run = await run_bounded(
        {
            "nodes": [
                # 1 s: long enough for the request to arrive on a loaded machine; /slow holds for 10 s.
                {"name": "API", "type": "call", "url": local_server.url("/slow?token=s3cr3t"), "timeout": 1000}
            ]
        }
    )
    node, message = failure_of(run)
    assert node == "API"
    assert message == f"timeout calling 127.0.0.1:{local_server.port}"
    assert local_server.slow_started.is_set()


@pytest.mark.parametrize("chunked", [False, True])
async def test_call_body_over_max_body_fails(local_server: LocalServer, chunked: bool) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = 100
        await response.prepare(request)
        await response.write(b"x" * 100)
        await response.write_eof()
        return response

    local_server.route("/big", big)
    client = HttpClient(max_body=64)
    try:
        run = await run_bounded(
            {"nodes": [{"name": "API", "type": "call", "url": local_server.url("/big")}]}, http=client
        )
        node, message = failure_of(run)
        assert node == "API"
        assert "exceeds the limit" in message and "64" in message
        # A HEAD answer declares the length of a body it does not carry: nothing to refuse.
        local_server.text_route("/big-head", "z" * 100)
        run = await run_bounded(
            {
                "nodes": [
                    {"name": "API", "type": "call", "method": "HEAD", "url": local_server.url("/big-head")}
                ]
            },
            http=client,
        )
        assert run.failure is None
        assert value_of(run, "API")["body"] is None
        # Exactly at the limit is fine.
        local_server.text_route("/fits", "y" * 64)
        run = await run_bounded(
            {"nodes": [{"name": "API", "type": "call", "url": local_server.url("/fits")}]}, http=client
        )
        assert run.failure is None
        assert value_of(run, "API")["body"] == "y" * 64
    finally:
        await client.close()


async def test_call_response_headers_keep_casing_and_repeats(local_server: LocalServer) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        headers: CIMultiDict[str] = CIMultiDict()
        headers.add("X-CamelCase-Header", "v")
        headers.add("x-lower-only", "w")
        headers.add("X-Multi", "1")
        headers.add("X-Multi", "2")
        return web.Response(text="ok", headers=headers)

    local_server.route("/h", handler)
    run = await run_bounded({"nodes": [{"name": "API", "type": "call", "url": local_server.url("/h")}]})
    headers = value_of(run, "API")["headers"]
    assert headers["X-CamelCase-Header"] == "v"
    assert headers["x-lower-only"] == "w"
    assert headers["X-Multi"] == ["1", "2"]
    assert "x-camelcase-header" not in headers


async def test_call_raw_body(local_server: LocalServer) -> None:
    local_server.text_route("/j", '{ "spaced" : [1,  2] }', content_type="application/json")
    local_server.text_route("/bin", b"\xffok", content_type="application/octet-stream")
    run = await run_bounded(
        {
            "nodes": [
                {"name": "J", "type": "call", "url": local_server.url("/j")},
                {"name": "BIN", "type": "call", "url": local_server.url("/bin")},
                {"name": "RAW", "type": "jq", "input": "J.raw_body", "jq": "."},
            ]
        }
    )
    assert run.failure is None
    assert value_of(run, "J")["body"] == {"spaced": [1, 2]}
    assert value_of(run, "J")["raw_body"] == '{ "spaced" : [1,  2] }'
    assert value_of(run, "RAW") == '{ "spaced" : [1,  2] }'
    assert value_of(run, "BIN")["body"] == b"\xffok"  # not UTF-8: bytes kept
    assert value_of(run, "BIN")["raw_body"] == "\ufffdok"


async def test_call_rf03_field_fan_out(local_server: LocalServer) -> None:
    local_server.json_route("/my-json-api", {"k": "v"}, headers={"X-Api": "1"})
    run = await run_bounded(
        {
            "nodes": [
                {"name": "API", "type": "call", "url": local_server.url("/my-json-api")},
                {"name": "FILTER_BODY", "type": "jq", "input": "API.body", "jq": "."},
                {"name": "FILTER_HEADERS", "type": "jq", "input": "API.headers", "jq": '.["X-Api"]'},
                {"name": "FILTER_STATUS", "type": "jq", "input": "API.status", "jq": ". + 1"},
            ]
        }
    )
    assert run.failure is None
    assert value_of(run, "FILTER_BODY") == {"k": "v"}
    assert value_of(run, "FILTER_HEADERS") == "1"
    assert value_of(run, "FILTER_STATUS") == 201


async def test_call_request_headers_keep_casing(local_server: LocalServer) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "H", "type": "static", "values": {"X-Mixed-CASE": "1"}},
                {"name": "API", "type": "call", "url": local_server.url("/echo"), "inputs": {"headers": "H"}},
            ]
        }
    )
    assert run.failure is None
    assert "X-Mixed-CASE" in local_server.requests[0].header_names()
    assert echo_headers(value_of(run, "API")["body"])["x-mixed-case"] == ["1"]


async def test_call_framing_headers_from_input_are_not_sent(local_server: LocalServer) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "H",
                    "type": "static",
                    "values": {"Content-Length": "9999", "Transfer-Encoding": "gzip", "X-Ok": "1"},
                },
                {"name": "B", "type": "static", "values": {"body": "abc"}},
                {
                    "name": "API",
                    "type": "call",
                    "method": "POST",
                    "url": local_server.url("/echo"),
                    "inputs": {"headers": "H", "body": "B.body"},
                },
            ]
        }
    )
    assert run.failure is None
    (recorded,) = local_server.requests
    assert recorded.body == b"abc"
    assert recorded.header("Content-Length") == ["3"]
    assert recorded.header("X-Ok") == ["1"]
