"""The work each benchmark variant does, defined once for both sides of every comparison.

`scripts/bench.py` builds the Datakit configs from these definitions; the hand-written reference addons next to
this file (`ref_*.py`, loaded with `mitmdump -s`, which puts this folder on `sys.path`) import the very same jq
programs, template and values. So a ratio between a reference and its Datakit graph measures the engine, not a
difference in the work. Each `expected_*` value is what the client must receive; the benchmark checks it once per
variant before it measures, so a variant that answers quickly but wrongly cannot win.
"""

from __future__ import annotations

import json
from typing import Any

# -- the upstream (nginx) --------------------------------------------------------------------------------------

# 245 bytes of JSON, as in shared/perf-baseline.md; nginx answers every path with it.
UPSTREAM_BODY = (
    b'{"id":4711,"status":"ok","items":[{"id":1,"name":"alpha","price":12.5,"tags":["a","b"]},'
    b'{"id":2,"name":"beta","price":7.25,"tags":["c"]},{"id":3,"name":"gamma","price":3,"tags":[]}],'
    b'"owner":{"name":"bench","email":"bench@example.test"},"pad":""}'
)
assert len(UPSTREAM_BODY) == 245

# wrk sends this header on every request; the transform turns it into X-Bench-Client for the upstream, and nginx
# echoes what it received as X-Seen-Client, which is how the benchmark sees that the request was transformed.
CLIENT_HEADER = ("X-Client-Id", "bench-client")
SEEN_HEADER = "X-Seen-Client"

# -- (a) transform: request -> jq -> service_request.headers; service_response -> jq -> response.body -----------

REQUEST_JQ = '{"X-Bench-Client": (.["X-Client-Id"] // "anonymous"), "X-Bench-Transformed": "1"}'
RESPONSE_JQ = (
    "{id, status, count: (.items | length), total: ([.items[].price] | add), "
    "names: [.items[].name], owner: .owner.name}"
)
EXPECTED_TRANSFORM = {
    "id": 4711,
    "status": "ok",
    "count": 3,
    "total": 22.75,
    "names": ["alpha", "beta", "gamma"],
    "owner": "bench",
}

# -- (b) mock: static -> handlebars -> exit -----------------------------------------------------------------

MOCK_CONTEXT: dict[str, Any] = {
    "title": "Bench catalogue",
    "items": [
        {"id": 1, "label": "alpha"},
        {"id": 2, "label": "beta"},
        {"id": 3, "label": "gamma"},
        {"id": 4, "label": "delta"},
    ],
}
MOCK_TEMPLATE = (
    '{"title":"{{title}}","items":[{{#each items}}{{#if @index}},{{/if}}'
    '{"id":{{id}},"label":"{{label}}"}{{/each}}]}'
)
MOCK_HEADERS = {"Content-Type": "application/json"}
EXPECTED_MOCK = {
    "title": "Bench catalogue",
    "items": [{"id": 1, "label": "alpha"}, {"id": 2, "label": "beta"}, {"id": 3, "label": "gamma"},
              {"id": 4, "label": "delta"}],
}

# -- (c) fan-out: N independent calls joined by jq into an exit ---------------------------------------------

API_LATENCY_MS = 50
JOIN_JQ = "{count: length, ids: ([.[].id] | sort), values: ([.[].value] | sort)}"


def call_path(k: int) -> str:
    """The third-party stand-in answers /item/K with {"id": K, "value": "item-K"}."""
    return f"/item/{k}"


def join_input(k: int) -> str:
    return f"c{k}"


def expected_fanout(calls: int) -> dict[str, Any]:
    return {
        "count": calls,
        "ids": list(range(1, calls + 1)),
        "values": sorted(f"item-{k}" for k in range(1, calls + 1)),
    }


# -- (d) chain: static -> jq x (N-2) -> exit ----------------------------------------------------------------

CHAIN_SEED = {"n": 0}
CHAIN_STEP_JQ = ".n += 1"


def expected_chain(nodes: int) -> dict[str, Any]:
    return {"n": nodes - 2}


# -- Datakit configs ------------------------------------------------------------------------------------------


def passthrough_config() -> dict[str, Any]:
    """A loaded config with nothing to do for the flow: one static node that nothing reads.

    Datakit has no routes yet (a bare plugin config applies to every flow), so this is the cheapest graph that
    leaves the flow alone. It measures what the addon costs per flow when the plan does not touch it.
    """
    return {"nodes": [{"name": "UNUSED", "type": "static", "values": {"unused": True}}]}


def unrouted_plugin_config(upstream_url: str) -> dict[str, Any]:
    """A Kong declarative file whose route for the benchmark's path has no plugin: Datakit only routes the flow.

    The other route carries a datakit plugin (the passthrough graph) that this flow never runs: "a config is
    loaded, and there is nothing to do for this flow" taken literally, next to the bare plugin config above
    (which Kong applies to every flow, as a global plugin).
    """
    return {
        "_format_version": "3.0",
        "services": [{
            "name": "upstream",
            "url": upstream_url,
            "routes": [
                {"name": "bench", "paths": ["/bench"]},
                {"name": "api", "paths": ["/api"], "plugins": [{"name": "datakit", "config": passthrough_config()}]},
            ],
        }],
    }


def transform_config() -> dict[str, Any]:
    return {
        "nodes": [
            {"name": "REQ_HEADERS", "type": "jq", "input": "request.headers", "output": "service_request.headers",
             "jq": REQUEST_JQ},
            {"name": "RESP_BODY", "type": "jq", "input": "service_response.body", "output": "response.body",
             "jq": RESPONSE_JQ},
        ]
    }


def mock_config() -> dict[str, Any]:
    return {
        "nodes": [
            {"name": "DATA", "type": "static", "values": {"headers": MOCK_HEADERS, "context": MOCK_CONTEXT}},
            {"name": "RENDER", "type": "handlebars", "input": "DATA.context", "template": MOCK_TEMPLATE},
            {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "RENDER", "headers": "DATA.headers"}},
        ]
    }


def fanout_config(api_url: str, calls: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"name": f"CALL_{k}", "type": "call", "url": api_url + call_path(k)} for k in range(1, calls + 1)
    ]
    nodes.append({"name": "JOIN", "type": "jq", "jq": JOIN_JQ,
                  "inputs": {join_input(k): f"CALL_{k}.body" for k in range(1, calls + 1)}})
    nodes.append({"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "JOIN"}})
    return {"nodes": nodes}


def chain_config(nodes: int) -> dict[str, Any]:
    """`nodes` nodes in one line: a static seed, nodes-2 jq steps, an exit."""
    steps = nodes - 2
    graph: list[dict[str, Any]] = [{"name": "SEED", "type": "static", "values": CHAIN_SEED}]
    for k in range(1, steps + 1):
        graph.append({"name": f"STEP_{k}", "type": "jq", "jq": CHAIN_STEP_JQ,
                      "input": "SEED" if k == 1 else f"STEP_{k - 1}"})
    graph.append({"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": f"STEP_{steps}"}})
    return {"nodes": graph}


def json_bytes(value: Any) -> bytes:
    """How both sides encode a JSON answer (the engine's `json_dumps`: compact, UTF-8)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
