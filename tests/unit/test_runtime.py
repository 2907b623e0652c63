"""The scheduler and a run's results: spec §3.3 runtime checks, §6.3 scheduling, §6.4 failures,
§7 trace, §8 RF cases.

Concurrency is proven by behaviour: the local server's /barrier answers only when all its callers arrived,
so sequential calls would get 504s. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from aiohttp import web

from mitm_datakit.context import RunContext
from mitm_datakit.http_client import HttpClient
from mitm_datakit.runtime import Run

from .conftest import LocalServer, status_of, value_of
from .support import DEFAULT_REQUEST, DictGateway, plan_of, run_config

BOUND = 5.0  # seconds; the server's /slow holds requests for longer, so an engine that waits on it fails
REQUEST_ID = "0" * 32  # what support.run_config uses


async def run_bounded(config: Any, **kwargs: Any) -> Run:
    return await asyncio.wait_for(run_config(config, **kwargs), BOUND)


def failure_of(run: Run) -> tuple[str, str]:
    assert run.failure is not None, "the run was expected to fail"
    return run.failure.node.name, run.failure.message


def trace_of(run: Run) -> dict[str, Any]:
    return json.loads(run.render_trace())


def node_entry(trace: dict[str, Any], name: str) -> dict[str, Any]:
    (entry,) = [n for n in trace["nodes"] if n["name"] == name]
    return entry


def actions_of(trace: dict[str, Any], name: str) -> list[str]:
    return [e["action"] for e in trace["events"] if e["name"] == name]


def barrier_url(server: LocalServer, key: str, n: int) -> str:
    return server.url(f"/barrier?key={key}&n={n}")


# =============================================================================================
# Scheduling: concurrency (spec §6.3)
# =============================================================================================


async def test_independent_calls_run_concurrently_rf12(local_server: LocalServer) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "CALL_FOO", "type": "call", "url": barrier_url(local_server, "rf12", 2)},
                {"name": "CALL_BAR", "type": "call", "url": barrier_url(local_server, "rf12", 2)},
                {
                    "name": "JOIN",
                    "type": "jq",
                    "inputs": {"foo": "CALL_FOO.body", "bar": "CALL_BAR.body"},
                    "jq": ".",
                },
            ]
        }
    )
    assert run.failure is None, run.failure
    assert value_of(run, "JOIN") == {
        "foo": {"key": "rf12", "arrived": 2},
        "bar": {"key": "rf12", "arrived": 2},
    }


async def test_three_calls_in_flight_at_once(local_server: LocalServer) -> None:
    nodes: list[dict[str, Any]] = [
        {"name": f"C{i}", "type": "call", "url": barrier_url(local_server, "three", 3)} for i in range(3)
    ]
    run = await run_bounded({"nodes": nodes})
    assert run.failure is None, run.failure
    assert [value_of(run, f"C{i}")["status"] for i in range(3)] == [200, 200, 200]


async def test_ready_nodes_start_while_a_call_is_in_flight(local_server: LocalServer) -> None:
    # LONG waits at the barrier for LATE, which can only start after FAST finished and BUILD_URL ran:
    # the scheduler must keep going while LONG is still in flight.
    local_server.json_route("/fast", {"next": "late"})
    run = await run_bounded(
        {
            "nodes": [
                {"name": "LONG", "type": "call", "url": barrier_url(local_server, "chain", 2)},
                {"name": "FAST", "type": "call", "url": local_server.url("/fast")},
                {
                    "name": "BUILD_URL",
                    "type": "jq",
                    "input": "FAST.body",
                    "jq": f'"{barrier_url(local_server, "chain", 2)}&from=" + .next',
                },
                {"name": "LATE", "type": "call", "inputs": {"url": "BUILD_URL"}},
            ]
        }
    )
    assert run.failure is None, run.failure
    assert value_of(run, "LONG")["status"] == 200
    assert value_of(run, "LATE")["status"] == 200
    paths = [(r.path, r.query_string) for r in local_server.requests]
    assert paths.index(("/fast", "")) < paths.index(("/barrier", "key=chain&n=2&from=late"))


async def test_dependent_call_waits_for_its_provider(local_server: LocalServer) -> None:
    local_server.json_route("/first", {"url": local_server.url("/second")})
    local_server.json_route("/second", {"ok": True})
    run = await run_bounded(
        {
            "nodes": [
                {"name": "SECOND", "type": "call", "inputs": {"url": "URL"}},
                {"name": "URL", "type": "jq", "input": "FIRST.body", "jq": ".url"},
                {"name": "FIRST", "type": "call", "url": local_server.url("/first")},
            ]
        }
    )
    assert run.failure is None
    assert [r.path for r in local_server.requests] == ["/first", "/second"]
    assert value_of(run, "SECOND")["body"] == {"ok": True}


# =============================================================================================
# Failure handling (spec §6.4)
# =============================================================================================


async def test_first_failure_cancels_slow_sibling(local_server: LocalServer) -> None:
    async def fail_after_slow(request: web.Request) -> web.StreamResponse:
        # Answer 403 only once SLOW's request is really in flight, so cancelling it is observable.
        await asyncio.wait_for(local_server.slow_started.wait(), BOUND)
        return web.json_response({"denied": True}, status=403)

    local_server.route("/fail", fail_after_slow)
    run = await run_bounded(
        {
            "debug": True,
            "nodes": [
                {"name": "API", "type": "call", "url": local_server.url("/fail")},
                {"name": "SLOW_API", "type": "call", "url": local_server.url("/slow")},
                {
                    "name": "FILTER",
                    "type": "jq",
                    "inputs": {"a": "API.body", "b": "SLOW_API.body"},
                    "jq": ".",
                },
            ],
        },
        trace=True,
    )
    assert failure_of(run) == ("API", "non-2XX response code: 403")
    assert run.plan_status == "PLAN_ERROR"
    # The server saw SLOW_API's connection go away: the request was really abandoned.
    await asyncio.wait_for(local_server.slow_disconnected.wait(), BOUND)
    trace = trace_of(run)
    assert node_entry(trace, "API") == {
        "name": "API",
        "type": "call",
        "status": "NODE_ERROR",
        "error": "non-2XX response code: 403",
    }
    assert node_entry(trace, "SLOW_API")["status"] == "NODE_CANCELED"
    assert node_entry(trace, "FILTER")["status"] == "NODE_CANCELED"
    assert actions_of(trace, "SLOW_API") == ["run", "cancel"]
    assert actions_of(trace, "FILTER") == ["cancel"]
    cancel = [e for e in trace["events"] if e["name"] == "SLOW_API"][-1]
    assert (
        cancel["at"] >= [e for e in trace["events"] if e["name"] == "API" and e["action"] == "fail"][0]["at"]
    )
    assert trace["status"] == "PLAN_ERROR"


async def test_failure_stops_nodes_that_were_not_started() -> None:
    gateway = DictGateway()
    run = await run_bounded(
        {
            "nodes": [
                {"name": "BAD", "type": "jq", "jq": 'error("stop here")'},
                {"name": "LATER", "type": "property", "property": "kong.ctx.shared.x", "input": "VALUE"},
                {"name": "VALUE", "type": "jq", "jq": "1"},
            ]
        },
        gateway=gateway,
    )
    assert failure_of(run) == ("BAD", "jq: stop here")
    assert gateway.properties == {}  # nothing after the failure ran
    run.close()
    assert status_of(run, "LATER") == "NODE_CANCELED"
    assert status_of(run, "VALUE") == "NODE_CANCELED"


async def test_failure_log_line() -> None:
    run = await run_bounded({"nodes": [{"name": "API", "type": "jq", "jq": 'error("boom")'}]})
    assert run.failure is not None
    assert run.failure.log_line() == 'node #1 (API) failed with error: "jq: boom"'


async def test_error_body_without_debug() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "OK", "type": "jq", "jq": "1"},
                {"name": "BAD", "type": "jq", "jq": 'error("secret detail")'},
            ]
        }
    )
    body = json.loads(run.error_body())
    assert body == {"message": "An unexpected error occurred", "request_id": REQUEST_ID}


async def test_error_body_with_debug(local_server: LocalServer) -> None:
    run = await run_bounded(
        {
            "debug": True,
            "nodes": [
                {"name": "FIRST", "type": "static", "values": {"a": 1}},
                {"name": "API", "type": "call", "url": local_server.url("/status/403")},
            ],
        }
    )
    assert json.loads(run.error_body()) == {
        "message": "node execution error",
        "request_id": REQUEST_ID,
        "error": "non-2XX response code: 403",
        "node": {"index": 2, "name": "API", "type": "call"},  # 1-based position in `nodes`
    }


async def test_request_id_comes_from_the_context() -> None:
    plan = plan_of({"nodes": [{"name": "BAD", "type": "jq", "jq": 'error("x")'}]})
    client = HttpClient()
    try:
        run = Run(plan, RunContext("f5e07609d55bd66508c8315b8cf6583a", DictGateway(), client))
        run.start(DEFAULT_REQUEST)
        await asyncio.wait_for(run.advance(), BOUND)
    finally:
        await client.close()
    assert json.loads(run.error_body())["request_id"] == "f5e07609d55bd66508c8315b8cf6583a"


# =============================================================================================
# exit
# =============================================================================================


async def test_exit_stops_the_plan() -> None:
    gateway = DictGateway()
    run = await run_bounded(
        {
            "nodes": [
                {"name": "EXIT", "type": "exit", "status": 201},
                {"name": "AFTER", "type": "jq", "jq": "1"},
                {"name": "SET", "type": "property", "property": "kong.ctx.shared.after", "input": "AFTER"},
            ]
        },
        gateway=gateway,
        service_response={"status": 200, "headers": {}, "body": None},
    )
    assert run.exit is not None and run.exit.status == 201
    assert run.finished and run.failure is None
    assert gateway.properties == {}
    assert status_of(run, "AFTER") == "NODE_PENDING"
    run.close()
    assert status_of(run, "AFTER") == "NODE_CANCELED"
    assert status_of(run, "SET") == "NODE_CANCELED"
    assert run.plan_status == "PLAN_COMPLETE"


async def test_exit_lets_calls_in_flight_finish_and_ignores_their_failure(
    local_server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    # EX-06 shape: a call listed before the exit is dispatched; the exit answers; the call's failure
    # is only logged.
    caplog.set_level(logging.WARNING, logger="mitm_datakit")
    run = await run_bounded(
        {
            "nodes": [
                {"name": "API", "type": "call", "url": local_server.url("/status/500")},
                {"name": "EXIT", "type": "exit", "status": 200},
            ]
        }
    )
    assert run.exit is not None and run.exit.status == 200
    assert run.failure is None
    assert status_of(run, "API") == "NODE_ERROR"
    assert [r.path for r in local_server.requests] == ["/status/500"]
    assert "non-2XX response code: 500" in caplog.text


async def test_exit_in_response_phase_runs_after_service_response() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "STATUS", "type": "jq", "input": "service_response.status", "jq": ". + 1"},
                {"name": "EXIT", "type": "exit", "inputs": {"body": "STATUS"}, "status": 299},
            ]
        },
        service_response={"status": 200, "headers": {}, "body": None, "raw_body": ""},
    )
    assert run.exit is not None
    assert (run.exit.status, run.exit.write.body) == (299, b"201")


# =============================================================================================
# Writes and phases
# =============================================================================================


async def test_writes_for_service_request_and_response() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "HDR",
                    "type": "jq",
                    "jq": '{"X-Up": "1", "X-Gone": null}',
                    "output": "service_request.headers",
                },
                {
                    "name": "Q",
                    "type": "static",
                    "values": {"page": 2, "tags": ["a", "b"]},
                    "output": "service_request.query",
                },
                {"name": "BODY", "type": "jq", "jq": "{sent: true}", "output": "service_request.body"},
                {
                    "name": "RESP",
                    "type": "jq",
                    "input": "service_response.body",
                    "jq": "{wrapped: .}",
                    "output": "response.body",
                },
                {"name": "RH", "type": "static", "values": {"X-Down": "d"}, "output": "response.headers"},
            ]
        },
        service_response={
            "status": 200,
            "headers": {"Content-Type": "text/plain"},
            "body": "upstream",
            "raw_body": "upstream",
        },
    )
    assert run.failure is None
    up = run.writes["service_request"]
    assert up.header_ops == [("X-Up", ["1"]), ("X-Gone", None)]
    assert up.query == {"page": 2, "tags": ["a", "b"]}
    assert json.loads(up.body or b"") == {"sent": True}
    assert up.content_type == "application/json"
    down = run.writes["response"]
    assert json.loads(down.body or b"") == {"wrapped": "upstream"}
    assert down.header_ops == [("X-Down", ["d"])]
    assert down.content_type == "application/json"
    assert run.plan_status == "PLAN_COMPLETE"


async def test_unconnected_service_request_body_keeps_the_message_body() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "H", "type": "static", "values": {"X-A": "1"}, "output": "service_request.headers"}
            ]
        }
    )
    assert run.writes["service_request"].body is None


async def test_response_phase_waits_for_service_response(local_server: LocalServer) -> None:
    # NG-08 is accepted in 3.13+: a call fed by service_response runs after proxying (EX-10 shape).
    local_server.json_route("/convert", {"converted": True})
    plan = plan_of(
        {
            "nodes": [
                {"name": "EARLY", "type": "jq", "jq": '"before"'},
                {
                    "name": "CALL",
                    "type": "call",
                    "method": "POST",
                    "url": local_server.url("/convert"),
                    "inputs": {"body": "service_response.body"},
                },
                {"name": "AFTER", "type": "jq", "input": "CALL.body", "output": "response.body", "jq": "."},
            ]
        }
    )
    assert plan.needs_response_phase
    client = HttpClient()
    try:
        run = Run(plan, RunContext(REQUEST_ID, DictGateway(), client))
        run.start(DEFAULT_REQUEST)
        await asyncio.wait_for(run.advance(), BOUND)
        assert status_of(run, "EARLY") == "NODE_COMPLETE"
        assert status_of(run, "CALL") == "NODE_PENDING"
        assert status_of(run, "AFTER") == "NODE_PENDING"
        assert "response" not in run.writes
        assert local_server.requests == []
        assert run.plan_status == "PLAN_RUNNING"
        run.provide_service_response({"status": 200, "headers": {}, "body": "<xml/>", "raw_body": "<xml/>"})
        await asyncio.wait_for(run.advance(), BOUND)
    finally:
        await client.close()
    assert run.failure is None
    (recorded,) = local_server.requests
    assert recorded.body == b"<xml/>"
    assert json.loads(run.writes["response"].body or b"") == {"converted": True}
    assert run.plan_status == "PLAN_COMPLETE"


async def test_access_phase_exit_skips_response_phase() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "EXIT", "type": "exit", "status": 204},
                {
                    "name": "LATE",
                    "type": "jq",
                    "input": "service_response.body",
                    "jq": ".",
                    "output": "response.body",
                },
            ]
        },
        service_response={"status": 200, "headers": {}, "body": "x"},
    )
    assert run.exit is not None and run.exit.status == 204
    assert status_of(run, "LATE") == "NODE_PENDING"
    assert "response" not in run.writes


# =============================================================================================
# Vault (spec §2.4)
# =============================================================================================


async def test_vault_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DK_UNIT_TOKEN", "tok-123")
    monkeypatch.setenv("MY_SECRET", "from-kebab")
    monkeypatch.setenv("DK_UNIT_JSON", '{"user": "alice", "n": 5}')
    run = await run_bounded(
        {
            "resources": {
                "vault": {
                    "token": "{vault://env/DK_UNIT_TOKEN}",
                    "kebab": "{vault://env/my-secret}",
                    "user": "{vault://env/DK_UNIT_JSON/user}",
                }
            },
            "nodes": [
                {
                    "name": "J",
                    "type": "jq",
                    "inputs": {"t": "vault.token", "k": "vault.kebab", "u": "vault.user"},
                    "jq": ".",
                }
            ],
        }
    )
    assert run.failure is None
    assert value_of(run, "J") == {"t": "tok-123", "k": "from-kebab", "u": "alice"}


async def test_vault_missing_variable_fails_the_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DK_UNIT_ABSENT", raising=False)
    run = await run_bounded(
        {
            "debug": True,
            "resources": {"vault": {"absent": "{vault://env/DK_UNIT_ABSENT}"}},
            "nodes": [
                {"name": "FINE", "type": "jq", "jq": "1"},
                {"name": "READER", "type": "jq", "inputs": {"s": "vault.absent"}, "jq": "."},
            ],
        }
    )
    assert failure_of(run) == (
        "READER",
        "vault secret not found: environment variable DK_UNIT_ABSENT is not set",
    )
    assert json.loads(run.error_body())["node"] == {"index": 2, "name": "READER", "type": "jq"}


async def test_vault_missing_but_unread_is_harmless(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DK_UNIT_ABSENT", raising=False)
    run = await run_bounded(
        {
            "resources": {"vault": {"absent": "{vault://env/DK_UNIT_ABSENT}"}},
            "nodes": [{"name": "J", "type": "jq", "jq": "1"}],
        }
    )
    assert run.failure is None


@pytest.mark.parametrize("backend", ["aws", "hcv", "my-vault"])
async def test_vault_other_backends_fail_at_run_time(backend: str) -> None:
    # Accepted at config time (plan_of does not raise); the reading node fails.
    run = await run_bounded(
        {
            "resources": {"vault": {"s": f"{{vault://{backend}/my-secret}}"}},
            "nodes": [{"name": "J", "type": "jq", "inputs": {"s": "vault.s"}, "jq": "."}],
        }
    )
    node, message = failure_of(run)
    assert node == "J"
    assert f"vault backend '{backend}' is not available" in message


@pytest.mark.parametrize(
    "secret",
    [
        "s3cr3t-T0ken-value",
        'with"quote\\back',  # JSON-escaped in the trace
        "sécret-ünïcode",
        'mixed"é\\secret',  # escaped and non-ASCII at once
    ],
)
async def test_secrets_never_leak_into_error_body_or_trace(
    monkeypatch: pytest.MonkeyPatch, local_server: LocalServer, secret: str
) -> None:
    monkeypatch.setenv("DK_UNIT_SECRET", secret)
    local_server.json_route("/sink", {"ok": True})
    run = await run_bounded(
        {
            "debug": True,
            "resources": {"vault": {"key": "{vault://env/DK_UNIT_SECRET}"}},
            "nodes": [
                {
                    "name": "BODY",
                    "type": "jq",
                    "inputs": {"k": "vault.key"},
                    "jq": '{"token": ("Bearer " + .k)}',
                },
                {
                    "name": "API",
                    "type": "call",
                    "method": "POST",
                    "url": local_server.url("/sink"),
                    "inputs": {"body": "BODY"},
                },
                {
                    "name": "LEAK",
                    "type": "jq",
                    "inputs": {"body": "API.body", "k": "vault.key"},
                    "jq": 'error("token was " + .k)',
                },
            ],
        },
        trace=True,
    )
    # The secret really was used (the trace's run event of API carries it before scrubbing)...
    assert json.loads(local_server.requests[0].body) == {"token": "Bearer " + secret}
    node, message = failure_of(run)
    assert node == "LEAK"
    assert message == "jq: token was ********"
    error_body = run.error_body()
    trace = run.render_trace()
    for text in (error_body, trace):
        for form in {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}:
            assert form.encode() not in text
    assert b"********" in trace
    vault_events = [e for e in json.loads(trace)["events"] if e["name"] == "vault"]
    assert vault_events[0]["values"] == [{"key": "key", "type": "string", "value": "********"}]


async def test_masked_headers_are_redacted_in_trace() -> None:
    run = await run_bounded(
        {"debug": True, "nodes": [{"name": "J", "type": "jq", "input": "request.headers", "jq": "keys"}]},
        request={
            "headers": {
                "Authorization": "Bearer very-private",
                "x-api-key": "key-private",
                "Cookie": "session=private-cookie",
                "X-Visible": "shown",
            }
        },
        trace=True,
    )
    trace = run.render_trace()
    for private in (b"very-private", b"key-private", b"private-cookie"):
        assert private not in trace
    assert b"shown" in trace
    request_event = next(e for e in json.loads(trace)["events"] if e["name"] == "request")
    headers = next(v for v in request_event["values"] if v["key"] == "headers")["value"]
    assert headers["Authorization"] == "********"
    assert headers["x-api-key"] == "********"
    assert headers["X-Visible"] == "shown"
    assert value_of(run, "J") == [
        "Authorization",
        "Cookie",
        "X-Visible",
        "x-api-key",
    ]  # the run itself is untouched


# =============================================================================================
# Trace shape (spec §7.3)
# =============================================================================================


async def test_trace_shape_on_success(local_server: LocalServer) -> None:
    run = await run_bounded(
        {
            "debug": True,
            "nodes": [
                {
                    "name": "API",
                    "type": "call",
                    "url": local_server.url("/echo"),
                    "inputs": {"query": "request.query"},
                },
                {"name": "FILTER", "type": "jq", "input": "API.status", "jq": "."},
            ],
        },
        request={"query": {"b": "123", "a": "true"}},
        trace=True,
    )
    trace = trace_of(run)
    assert set(trace) == {"started_at", "ended_at", "duration", "status", "nodes", "events"}
    assert trace["status"] == "PLAN_COMPLETE"
    assert isinstance(trace["started_at"], float) and trace["started_at"] > 1.6e9
    assert trace["ended_at"] >= trace["started_at"]
    assert trace["duration"] == pytest.approx(trace["ended_at"] - trace["started_at"])
    assert node_entry(trace, "API") == {"name": "API", "type": "call", "status": "NODE_COMPLETE"}
    assert node_entry(trace, "FILTER")["status"] == "NODE_COMPLETE"
    assert node_entry(trace, "request") == {"name": "request", "type": "request", "status": "NODE_COMPLETE"}
    for event in trace["events"]:
        assert {"name", "type", "action", "at"} <= set(event)
        assert event["action"] in {"run", "complete", "fail", "resume", "cancel", "skip"}
    ats = [e["at"] for e in trace["events"]]
    assert ats == sorted(ats) and ats[0] >= 0
    assert actions_of(trace, "API") == ["run", "resume", "complete"]
    run_event, resume, complete = [e for e in trace["events"] if e["name"] == "API"]
    assert {"key": "query", "type": "map", "value": {"b": "123", "a": "true"}} in run_event["values"]
    assert resume["duration"] >= 0
    assert {"key": "status", "type": "number", "value": 200} in complete["values"]
    (filter_complete,) = [e for e in trace["events"] if e["name"] == "FILTER" and e["action"] == "complete"]
    assert filter_complete["values"] == [{"type": "number", "value": 200}]


async def test_trace_shape_on_failure(local_server: LocalServer) -> None:
    run = await run_bounded(
        {"debug": True, "nodes": [{"name": "API", "type": "call", "url": local_server.url("/status/403")}]},
        trace=True,
    )
    trace = trace_of(run)
    assert trace["status"] == "PLAN_ERROR"
    assert actions_of(trace, "API") == ["run", "resume", "fail"]
    fail = [e for e in trace["events"] if e["name"] == "API"][-1]
    assert fail["values"][0] == {"type": "error", "value": "non-2XX response code: 403"}
    keys = [v.get("key") for v in fail["values"][1:]]
    assert {"headers", "body", "status"} <= set(keys)


# =============================================================================================
# Runtime type checks (spec §3.3, NG-09)
# =============================================================================================


async def test_ng09_jq_string_into_exit_headers() -> None:
    run = await run_bounded(
        {
            "debug": True,
            "nodes": [
                {"name": "HEADERS", "type": "jq", "jq": '"oops, not an object/map"'},
                {"name": "EXIT", "type": "exit", "inputs": {"headers": "HEADERS"}},
            ],
        }
    )
    assert run.exit is None
    assert failure_of(run) == ("EXIT", "invalid value for EXIT.headers: expected map, got string")
    assert json.loads(run.error_body())["node"] == {"index": 2, "name": "EXIT", "type": "exit"}


@pytest.mark.parametrize(
    ("program", "target", "failed", "message"),
    [
        ('"str"', "CALL.query", "CALL", "invalid value for CALL.query: expected map, got string"),
        ("[1, 2]", "CALL.headers", "CALL", "invalid value for CALL.headers: expected map, got array"),
        ("{a: 1}", "CALL.url", "CALL", "invalid value for CALL.url: expected string, got object"),
        # A bad value at an implicit sink is blamed on the node that produced it.
        (
            '"str"',
            "service_request.headers",
            "BAD",
            "invalid value for service_request.headers: expected map, got string",
        ),
        (
            "42",
            "service_request.query",
            "BAD",
            "invalid value for service_request.query: expected map, got number",
        ),
    ],
)
async def test_runtime_type_errors(program: str, target: str, failed: str, message: str) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "BAD", "type": "jq", "jq": program, "output": target},
                {"name": "CALL", "type": "call", "url": "http://127.0.0.1:9/never"},
            ]
        }
    )
    assert failure_of(run) == (failed, message)


async def test_sink_type_error_blames_the_provider_of_the_bad_value() -> None:
    # GOOD's edge into service_request comes first; the bad value is BAD's.
    run = await run_bounded(
        {
            "debug": True,
            "nodes": [
                {"name": "GOOD", "type": "jq", "jq": '{"X-A": "1"}', "output": "service_request.headers"},
                {"name": "BAD", "type": "jq", "jq": '"not a map"', "output": "service_request.query"},
            ],
        }
    )
    assert failure_of(run) == ("BAD", "invalid value for service_request.query: expected map, got string")
    assert json.loads(run.error_body())["node"] == {"index": 2, "name": "BAD", "type": "jq"}


async def test_number_into_string_input_is_converted(local_server: LocalServer) -> None:
    # number -> string is a convertible pair: a numeric url input becomes "12345", then an invalid URL.
    run = await run_bounded(
        {
            "nodes": [
                {"name": "N", "type": "jq", "jq": "12345"},
                {"name": "CALL", "type": "call", "inputs": {"url": "N"}},
            ]
        }
    )
    node, message = failure_of(run)
    assert node == "CALL"
    assert "'12345'" in message and "invalid URL" in message


# =============================================================================================
# Deep references and any -> object expansion
# =============================================================================================


@pytest.mark.parametrize("sent_name", ["Authorization", "authorization", "AUTHORIZATION"])
async def test_deep_header_reference_is_case_insensitive(sent_name: str) -> None:
    run = await run_bounded(
        {"nodes": [{"name": "TOKEN", "type": "jq", "input": "request.headers.authorization", "jq": "."}]},
        request={"headers": {sent_name: "Bearer t0k"}},
    )
    assert value_of(run, "TOKEN") == "Bearer t0k"


async def test_deep_reference_missing_key_is_null() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "TOKEN", "type": "jq", "input": "request.headers.authorization", "jq": ". == null"}
            ]
        },
        request={"headers": {"Host": "x"}},
    )
    assert value_of(run, "TOKEN") is True


async def test_deep_reference_into_body_and_query() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "NESTED", "type": "jq", "input": "request.body.user.name", "jq": "."},
                {"name": "QUERY", "type": "jq", "input": "request.query.foo", "jq": "."},
                {"name": "NOT_OBJECT", "type": "jq", "input": "request.body.user.name.first", "jq": "."},
            ]
        },
        request={"body": {"user": {"name": "ada"}}, "query": {"foo": "x"}},
    )
    assert run.failure is None
    assert value_of(run, "NESTED") == "ada"
    assert value_of(run, "QUERY") == "x"
    assert value_of(run, "NOT_OBJECT") is None


async def test_any_to_object_expansion_into_exit() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "JQ", "type": "jq", "jq": '{body: {made: "by jq"}, headers: {"X-From": "jq"}}'},
                {"name": "EXIT", "type": "exit", "input": "JQ", "status": 202},
            ]
        }
    )
    assert run.failure is None and run.exit is not None
    assert run.exit.status == 202
    assert json.loads(run.exit.write.body or b"") == {"made": "by jq"}
    assert run.exit.write.header_ops == [("X-From", ["jq"])]


async def test_any_to_object_expansion_missing_fields_are_unset() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "JQ", "type": "jq", "jq": '{body: "only body"}'},
                {"name": "EXIT", "type": "exit", "input": "JQ"},
            ]
        }
    )
    assert run.exit is not None
    assert run.exit.write.body == b"only body"
    assert run.exit.write.header_ops == []


@pytest.mark.parametrize(("program", "kind"), [('"a string"', "string"), ("[1]", "array"), ("7", "number")])
async def test_any_to_object_expansion_needs_an_object(program: str, kind: str) -> None:
    run = await run_bounded(
        {
            "debug": True,
            "nodes": [
                {"name": "JQ", "type": "jq", "jq": program},
                {"name": "EXIT", "type": "exit", "input": "JQ"},
            ],
        }
    )
    assert run.exit is None
    node, message = failure_of(run)
    assert node == "EXIT"
    assert message == f"expected an object with fields, got {kind}"


async def test_any_to_object_expansion_into_service_request_needs_an_object() -> None:
    run = await run_bounded(
        {"nodes": [{"name": "JQ", "type": "jq", "jq": '"nope"', "output": "service_request"}]}
    )
    assert failure_of(run) == ("JQ", "expected an object with fields, got string")
    assert "service_request" not in run.writes


async def test_any_to_object_expansion_into_service_request() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "JQ",
                    "type": "jq",
                    "jq": '{headers: {"X-A": "1"}, query: {q: "v"}, body: "text"}',
                    "output": "service_request",
                }
            ]
        }
    )
    assert run.failure is None
    write = run.writes["service_request"]
    assert (write.header_ops, write.query, write.body) == ([("X-A", ["1"])], {"q": "v"}, b"text")


# =============================================================================================
# Reference-page cases (spec §8.2) observable at engine level
# =============================================================================================


async def test_rf05_one_output_many_inputs() -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "GET_FOO", "type": "property", "property": "kong.ctx.shared.foo"},
                {"name": "FILTER_FOO", "type": "jq", "input": "GET_FOO", "jq": ".n"},
                {"name": "FILTER_FOO_TOO", "type": "jq", "input": "GET_FOO", "jq": ".n * 2"},
            ]
        },
        gateway=DictGateway({"kong.ctx.shared.foo": {"n": 21}}),
    )
    assert (value_of(run, "FILTER_FOO"), value_of(run, "FILTER_FOO_TOO")) == (21, 42)


@pytest.mark.parametrize("combine_position", [0, 1, 2])
async def test_rf06_combine_order_irrelevant(combine_position: int) -> None:
    nodes: list[dict[str, Any]] = [
        {"name": "GET_FOO", "type": "property", "property": "kong.ctx.shared.foo"},
        {"name": "GET_BAR", "type": "property", "property": "kong.ctx.shared.bar"},
    ]
    nodes.insert(
        combine_position,
        {
            "name": "COMBINE",
            "type": "jq",
            "inputs": {"foo": "GET_FOO", "bar": "GET_BAR"},
            "jq": ".foo * .bar",
        },
    )
    run = await run_bounded(
        {"nodes": nodes},
        gateway=DictGateway(
            {"kong.ctx.shared.foo": {"a": 1, "n": {"x": 1}}, "kong.ctx.shared.bar": {"b": 2, "n": {"y": 2}}}
        ),
    )
    assert value_of(run, "COMBINE") == {"a": 1, "b": 2, "n": {"x": 1, "y": 2}}


@pytest.mark.parametrize("entity_first", [True, False])
async def test_rf10_post_json_entity(local_server: LocalServer, entity_first: bool) -> None:
    entity = {"name": "ENTITY", "type": "static", "values": {"id": 123, "name": "Datakit"}}
    post = {
        "name": "POST",
        "type": "call",
        "url": local_server.url("/create-entity"),
        "method": "POST",
        "inputs": {"body": "ENTITY"},
    }
    local_server.json_route("/create-entity", {"created": True}, status=201)
    run = await run_bounded({"nodes": [entity, post] if entity_first else [post, entity]})
    assert run.failure is None
    (recorded,) = local_server.requests
    assert recorded.header("Content-Type") == ["application/json"]
    assert json.loads(recorded.body) == {"id": 123, "name": "Datakit"}
    assert value_of(run, "POST")["status"] == 201


RF17 = '{"X-Extra": ( .["X-Extra"] // "default value" ),}'
RF18 = 'with_entries(.key |= ascii_downcase) | {"X-Extra": ( .["x-extra"] // "default value" ),}'


@pytest.mark.parametrize(
    ("program", "headers", "expected"),
    [
        (RF17, {"X-Extra": "client"}, "client"),
        (RF17, {"x-extra": "client"}, "default value"),  # the documented pitfall: jq keys are case-sensitive
        (RF17, {}, "default value"),
        (RF18, {"X-Extra": "client"}, "client"),
        (RF18, {"x-extra": "client"}, "client"),
        (RF18, {"X-EXTRA": "client"}, "client"),
        (RF18, {}, "default value"),
    ],
)
async def test_rf17_rf18_extra_header(program: str, headers: dict[str, str], expected: str) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "ADD_HEADERS",
                    "type": "jq",
                    "input": "request.headers",
                    "output": "service_request.headers",
                    "jq": program,
                }
            ]
        },
        request={"headers": {"Host": "example.test", **headers}},
    )
    assert run.failure is None
    assert run.writes["service_request"].header_ops == [("X-Extra", [expected])]


async def test_rf19_lowercased_merge_sent_by_call(local_server: LocalServer) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "header_updates",
                    "type": "static",
                    "values": {"X-Foo": "123", "X-Custom": "my header", "X-Multi": ["first", "second"]},
                },
                {
                    "name": "merged_headers",
                    "type": "jq",
                    "inputs": {"original": "request.headers", "updates": "header_updates"},
                    "jq": (
                        "(.original | with_entries(.key |= ascii_downcase))"
                        " * (.updates | with_entries(.key |= ascii_downcase))"
                    ),
                },
                {
                    "name": "api",
                    "type": "call",
                    "url": local_server.url("/echo"),
                    "inputs": {"headers": "merged_headers"},
                },
            ]
        },
        request={"headers": {"Host": "example.test", "User-Agent": "client-ua", "X-FOO": "old"}},
    )
    assert run.failure is None
    (recorded,) = local_server.requests
    assert recorded.header("x-foo") == ["123"]
    assert recorded.header("x-multi") == ["first", "second"]
    assert recorded.header("x-custom") == ["my header"]
    assert recorded.header("user-agent") == ["client-ua"]
    sent = {name for name in recorded.header_names() if name.lower() in {"x-foo", "x-multi", "x-custom"}}
    assert sent == {"x-foo", "x-multi", "x-custom"}  # lower-cased by the jq merge


async def test_rf20_case_preserving_merge() -> None:
    program = (
        ". as $input | $input.original | with_entries({key: .key|ascii_downcase, value: .key}) as $keys | "
        "$input.updates | with_entries(.key = ($keys[.key|ascii_downcase] // .key)) as $updates | "
        "$input.original * $updates"
    )
    run = await run_bounded(
        {
            "nodes": [
                {"name": "updates", "type": "static", "values": {"x-foo": "123", "X-New": "n"}},
                {
                    "name": "merge",
                    "type": "jq",
                    "inputs": {"original": "request.headers", "updates": "updates"},
                    "jq": program,
                },
            ]
        },
        request={"headers": {"X-Foo": "old", "User-Agent": "ua"}},
    )
    assert value_of(run, "merge") == {"X-Foo": "123", "User-Agent": "ua", "X-New": "n"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("raw text", {"data": "raw text"}),
        ({"already": "object"}, {"already": "object"}),
        ([1, 2], {"data": [1, 2]}),
        (None, {"data": None}),
    ],
)
async def test_rf21_wrap_raw_body(body: Any, expected: Any) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "BODY",
                    "type": "jq",
                    "input": "request.body",
                    "jq": 'if type == "object" then . else { data: . } end',
                }
            ]
        },
        request={"body": body},
    )
    assert value_of(run, "BODY") == expected


async def test_rf22_exit_proxies_call(local_server: LocalServer) -> None:
    local_server.json_route("/", {"proxied": "call"}, headers={"X-Call": "c"})
    run = await run_bounded(
        {
            "nodes": [
                {"name": "CALL", "type": "call", "url": local_server.url("/")},
                {"name": "EXIT", "type": "exit", "input": "CALL"},
            ]
        }
    )
    assert run.exit is not None and run.exit.status == 200
    assert json.loads(run.exit.write.body or b"") == {"proxied": "call"}
    assert ("X-Call", ["c"]) in run.exit.write.header_ops


async def test_rf23_store_whole_request() -> None:
    gateway = DictGateway()
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "STORE_REQUEST",
                    "type": "property",
                    "property": "kong.ctx.shared.my_request",
                    "input": "request",
                }
            ]
        },
        gateway=gateway,
        request={"body": {"k": "v"}, "query": {"q": "1"}, "headers": {"X-H": "h"}},
    )
    assert run.failure is None
    stored = gateway.properties["kong.ctx.shared.my_request"]
    assert stored["body"] == {"k": "v"}
    assert stored["query"] == {"q": "1"}
    assert stored["headers"] == {"X-H": "h"}
    assert stored["method"] == "GET"


async def test_rf26_static_nodewise_into_call(local_server: LocalServer) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {
                    "name": "CALL_INPUTS",
                    "type": "static",
                    "values": {
                        "headers": {"X-Foo": "123", "X-Multi": ["first", "second"]},
                        "query": {"a": True, "b": 10},
                        "body": {"data": "my request body data"},
                    },
                },
                {
                    "name": "CALL",
                    "type": "call",
                    "url": local_server.url("/echo"),
                    "method": "POST",
                    "input": "CALL_INPUTS",
                },
            ]
        }
    )
    assert run.failure is None
    (recorded,) = local_server.requests
    assert recorded.query_string == "a=true&b=10"
    assert recorded.header("X-Foo") == ["123"]
    assert recorded.header("X-Multi") == ["first", "second"]
    assert json.loads(recorded.body) == {"data": "my request body data"}
    assert recorded.header("Content-Type") == ["application/json"]


async def test_rf27_static_field_into_property() -> None:
    gateway = DictGateway()
    run = await run_bounded(
        {
            "nodes": [
                {"name": "VALUE", "type": "static", "values": {"data": {"a": 1, "b": 2}}},
                {
                    "name": "PROPERTY",
                    "type": "property",
                    "property": "kong.ctx.shared.my_property",
                    "input": "VALUE.data",
                },
            ]
        },
        gateway=gateway,
    )
    assert run.failure is None
    assert gateway.properties == {"kong.ctx.shared.my_property": {"a": 1, "b": 2}}


@pytest.mark.parametrize(
    ("query", "expected"), [({"foo": "x"}, "x"), ({}, "my default value"), ({"bar": "y"}, "my default value")]
)
async def test_rf28_query_or_default(query: dict[str, str], expected: str) -> None:
    run = await run_bounded(
        {
            "nodes": [
                {"name": "VALUE", "type": "static", "values": {"default": "my default value"}},
                {
                    "name": "FILTER",
                    "type": "jq",
                    "inputs": {"query": "request.query", "default": "VALUE.default"},
                    "jq": ".query.foo // .default",
                },
            ]
        },
        request={"query": query},
    )
    assert value_of(run, "FILTER") == expected


async def test_rf29_shared_headers(local_server: LocalServer) -> None:
    local_server.json_route("/foo", {"f": 1})
    local_server.json_route("/bar", {"b": 1})
    run = await run_bounded(
        {
            "nodes": [
                {"name": "HEADERS", "type": "static", "values": {"X-Common": "we always need this header"}},
                {
                    "name": "CALL_FOO",
                    "type": "call",
                    "url": local_server.url("/foo"),
                    "inputs": {"headers": "HEADERS"},
                },
                {
                    "name": "CALL_BAR",
                    "type": "call",
                    "url": local_server.url("/bar"),
                    "inputs": {"headers": "HEADERS"},
                },
            ]
        }
    )
    assert run.failure is None
    assert sorted(r.path for r in local_server.requests) == ["/bar", "/foo"]
    for recorded in local_server.requests:
        assert recorded.header("X-Common") == ["we always need this header"]


async def test_ex01_combine_two_apis(local_server: LocalServer) -> None:
    local_server.json_route("/json", {"slideshow": {"author": "Yours Truly"}})
    local_server.json_route("/uuid", {"uuid": "0b0b0b0b-aaaa-bbbb-cccc-000000000000"})
    run = await run_bounded(
        {
            "nodes": [
                {"name": "AUTHOR", "type": "call", "url": local_server.url("/json")},
                {"name": "UUID", "type": "call", "url": local_server.url("/uuid")},
                {
                    "name": "JOIN",
                    "type": "jq",
                    "inputs": {"input1": "AUTHOR.body", "input2": "UUID.body"},
                    "jq": "{\n  author: .input1.slideshow.author,\n  uuid: .input2.uuid,\n}\n",
                },
                {"name": "EXIT", "type": "exit", "inputs": {"body": "JOIN"}, "status": 200},
            ]
        }
    )
    assert run.exit is not None
    assert run.exit.write.content_type == "application/json"
    assert json.loads(run.exit.write.body or b"") == {
        "author": "Yours Truly",
        "uuid": "0b0b0b0b-aaaa-bbbb-cccc-000000000000",
    }


async def test_http_client_is_reusable_across_runs(
    local_server: LocalServer, http_client: HttpClient
) -> None:
    for _ in range(3):
        run = await run_bounded(
            {"nodes": [{"name": "C", "type": "call", "url": local_server.url("/echo")}]}, http=http_client
        )
        assert run.failure is None
    assert len(local_server.requests) == 3
