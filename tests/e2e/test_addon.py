"""The addon through a real mitmdump: start-up, errors, phases, writes, properties, secrets."""

from __future__ import annotations

import re

import httpx
import pytest
from faults import PROBE_ADDON, PROBE_PATH

# A loaded config that leaves every flow alone.
PASSTHROUGH = {"nodes": [{"name": "UNUSED", "type": "static", "values": {"unused": True}}]}

BAD_CONFIG = """
nodes:
- name: GET_FOO
  type: property
  property: kong.ctx.shared.foo
  output: FILTER
- name: GET_BAR
  type: property
  property: kong.ctx.shared.bar
  output: FILTER
- name: FILTER
  type: jq
  jq: "{a:"
- name: response
  type: exit
"""


def test_invalid_config_makes_mitmdump_exit_with_every_error(mitmdump_expect_exit):
    rc, output = mitmdump_expect_exit(BAD_CONFIG)
    assert rc != 0
    assert (
        'node #2 (GET_BAR), field \'output\': invalid connection ("GET_BAR" -> "FILTER"): '
        'conflicts with existing connection ("GET_FOO" -> "FILTER")'
    ) in output
    assert "node #3 (FILTER), field 'jq': invalid jq program" in output
    assert "node #4 (response), field 'name': \"response\" is a reserved node name" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nodes: [\n  - {name: A", "invalid YAML at line"),
        ("debug: true\n", "field 'nodes': required field missing"),
        ("nodes:\n- name: A\n  type: teleport\n", "node #1 (A), field 'type': unknown node type: teleport"),
    ],
    ids=["yaml-syntax", "no-nodes", "unknown-type"],
)
def test_unusable_config_files_are_rejected_at_start_up(mitmdump_expect_exit, text, expected):
    rc, output = mitmdump_expect_exit(text)
    assert rc != 0
    assert expected in output


def test_missing_config_file_is_rejected(mitmdump_expect_exit, tmp_path):
    rc, output = mitmdump_expect_exit(tmp_path / "does-not-exist.yaml")
    assert rc != 0
    assert "cannot read" in output and "does-not-exist.yaml" in output


def test_without_a_config_the_proxy_passes_traffic(mitmdump, upstream, client):
    proxy = mitmdump(None)
    assert client.get(proxy.url + "/plain").json()["path"] == "/plain"


@pytest.mark.parametrize("freeze, frozen", [([], True), (["--set", "datakit_gc_freeze=false"], False)])
def test_gc_freeze_moves_the_start_up_heap_out_of_the_collectors_sight(mitmdump, client, freeze, frozen):
    proxy = mitmdump(PASSTHROUGH, "-s", str(PROBE_ADDON), *freeze)
    assert client.get(proxy.url + "/plain").json()["path"] == "/plain"  # flows still pass
    probe = client.get(proxy.url + PROBE_PATH).json()
    assert (probe["frozen"] > 10_000) is frozen, probe  # mitmproxy's start-up heap is hundreds of thousands


def test_debug_error_body_names_the_failed_node(mitmdump, stub, client):
    stub.route("GET", "/status/403", json={"denied": True}, status=403)
    proxy = mitmdump(
        {
            "debug": True,
            "nodes": [
                {"name": "API", "type": "call", "url": f"{stub.url}/status/403"},
                {"name": "EXIT", "type": "exit", "inputs": {"body": "API.body"}},
            ],
        }
    )
    response = client.get(proxy.url + "/anything")
    assert response.status_code == 500
    body = response.json()
    assert body["message"] == "node execution error"
    assert body["error"] == "non-2XX response code: 403"
    assert body["node"] == {"index": 1, "name": "API", "type": "call"}
    assert response.headers["X-Kong-Request-Id"] == body["request_id"]


def test_a_failing_flow_does_not_affect_the_next_one(mitmdump, stub, client):
    stub.route("GET", "/flaky", handler=lambda req: {"ok": req.header("X-Mode") != "fail"})
    proxy = mitmdump(
        f"""
nodes:
- name: API
  type: call
  url: {stub.url}/flaky
  inputs:
    headers: request.headers
- name: CHECK
  type: jq
  input: API.body
  jq: 'if .ok then . else error("told to fail") end'
- name: EXIT
  type: exit
  inputs:
    body: CHECK
"""
    )
    assert client.get(proxy.url + "/", headers={"X-Mode": "fail"}).status_code == 500
    assert client.get(proxy.url + "/").json() == {"ok": True}
    proxy.wait_for_output(r'node #2 \(CHECK\) failed with error: "jq: told to fail"')


def test_calls_run_concurrently(mitmdump, stub, client):
    """Each barrier path answers only once both were requested: sequential calls would time out (504)."""
    stub.barrier("/left", "/right", timeout=5.0)
    proxy = mitmdump(
        {
            "nodes": [
                {"name": "LEFT", "type": "call", "url": f"{stub.url}/left"},
                {"name": "RIGHT", "type": "call", "url": f"{stub.url}/right"},
                {"name": "JOIN", "type": "jq", "inputs": {"l": "LEFT.body", "r": "RIGHT.body"}, "jq": "[.l.path, .r.path]"},
                {"name": "EXIT", "type": "exit", "inputs": {"body": "JOIN"}},
            ]
        }
    )
    response = client.get(proxy.url + "/")
    assert response.status_code == 200
    assert response.json() == ["/left", "/right"]


def test_debug_trace_needs_debug_true(mitmdump, client, upstream):
    proxy = mitmdump({"nodes": [{"name": "X", "type": "jq", "jq": "1", "output": "service_request.headers"}]})
    response = client.get(proxy.url + "/a", headers={"X-DataKit-Debug-Trace": "true"})
    # X's output 1 is not a header map: without debug nothing more than the generic 500 is said.
    assert response.status_code == 500 and set(response.json()) == {"message", "request_id"}


@pytest.mark.parametrize("header_value", ["true", "yes", "on", "1", "enabled"])
def test_trace_header_values(mitmdump, client, upstream, header_value):
    proxy = mitmdump({"debug": True, "nodes": [{"name": "X", "type": "static", "values": {"a": 1}}]})
    trace = client.get(proxy.url + "/a", headers={"X-Datakit-Debug-Trace": header_value}).json()
    assert trace["status"] == "PLAN_COMPLETE"
    assert {"name": "X", "type": "static", "status": "NODE_COMPLETE"} in trace["nodes"]


def test_response_phase_rewrites_the_upstream_body_and_headers(mitmdump, upstream, client):
    upstream.route("GET", "/items", json={"items": [1, 2, 3]}, headers={"X-Upstream": "yes"})
    proxy = mitmdump(
        """
nodes:
- name: COUNT
  type: jq
  input: service_response.body
  jq: '{count: (.items | length), status: "ok"}'
  output: response.body
- name: TAG
  type: static
  values:
    X-Datakit: counted
  output: response.headers
"""
    )
    response = client.get(proxy.url + "/items")
    assert response.status_code == 200
    assert response.json() == {"count": 3, "status": "ok"}
    assert response.headers["X-Datakit"] == "counted"
    assert response.headers["X-Upstream"] == "yes"  # headers not written are kept
    assert response.headers["Content-Length"] == str(len(response.content))


def test_call_after_proxying_reads_the_service_response(mitmdump, stub, upstream, client):
    """NG-08 is accepted since 3.13: the call runs in the response phase (EX-10's shape)."""
    upstream.route("GET", "/order", json={"id": 7})
    stub.route("POST", "/enrich", handler=lambda req: {"id": req.json()["id"], "enriched": True})
    proxy = mitmdump(
        f"""
nodes:
- name: CALL
  type: call
  method: POST
  url: {stub.url}/enrich
  inputs:
    body: service_response.body
- name: OUT
  type: jq
  input: CALL.body
  output: response.body
  jq: .
"""
    )
    assert client.get(proxy.url + "/order").json() == {"id": 7, "enriched": True}
    assert len(upstream.requests_to("/order")) == 1


def test_exit_in_the_response_phase_replaces_the_whole_response(mitmdump, upstream, client):
    upstream.route("GET", "/x", text="upstream", status=404)
    proxy = mitmdump(
        """
nodes:
- name: STATUS
  type: jq
  input: service_response.status
  jq: '{upstream_status: .}'
- name: EXIT
  type: exit
  status: 203
  inputs:
    body: STATUS
"""
    )
    response = client.get(proxy.url + "/x")
    assert response.status_code == 203
    assert response.json() == {"upstream_status": 404}


def test_service_request_writes_query_body_and_headers(mitmdump, upstream, client):
    proxy = mitmdump(
        """
nodes:
- name: VALUES
  type: static
  values:
    query: {page: 2, tags: [a, b]}
    body: {rewritten: true}
    headers: {X-Added: "1", X-Remove: null}
  output: service_request
"""
    )
    client.post(proxy.url + "/p?old=1", content=b"plain text", headers={"X-Remove": "bye", "X-Keep": "k"})
    seen = upstream.requests_to("/p", "POST")[0]
    assert seen.query == {"page": "2", "tags": ["a", "b"]}
    assert seen.json() == {"rewritten": True}
    assert seen.header("Content-Type") == "application/json"
    assert seen.header("Content-Length") == str(len(seen.body))
    assert seen.header("X-Added") == "1"
    assert seen.header("X-Remove") is None
    assert seen.header("X-Keep") == "k"


def test_request_fields_reach_nodes(mitmdump, client):
    proxy = mitmdump(
        """
nodes:
- name: SHOW
  type: jq
  input: request
  jq: '{method, path, raw_path, query, scheme, version, port: (.port | type), body, ua: .headers["User-Agent"]}'
- name: EXIT
  type: exit
  inputs:
    body: SHOW
"""
    )
    response = client.post(
        proxy.url + "/a//%7Euser/./b?x=1&x=2&flag", data={"k": "v"}, headers={"User-Agent": "ua-test"}
    )
    shown = response.json()
    assert shown["method"] == "POST"
    assert shown["raw_path"] == "/a//%7Euser/b"
    assert shown["path"] == "/a/~user/b"
    assert shown["query"] == {"x": ["1", "2"], "flag": True}
    assert shown["scheme"] == "http"
    assert shown["version"] == 1.1
    assert shown["port"] == "number"
    assert shown["body"] == {"k": "v"}  # form bodies are decoded to maps
    assert shown["ua"] == "ua-test"


def test_property_target_changes_where_the_flow_goes_but_not_the_host_header(
    mitmdump, upstream, stub_factory, client
):
    other = stub_factory("other", default_echo=True)
    proxy = mitmdump(
        f"""
nodes:
- name: PICK
  type: jq
  input: request.headers
  jq: 'if .["X-Route"] == "other" then "127.0.0.1:{other.port}" else "127.0.0.1:{upstream.port}" end'
- name: SET_TARGET
  type: property
  property: kong.service.target
  input: PICK
"""
    )
    host_before = client.get(proxy.url + "/where").json()["headers"]["Host"]
    answer = client.get(proxy.url + "/where", headers={"X-Route": "other"}).json()
    assert len(other.requests_to("/where")) == 1
    assert answer["headers"]["Host"] == host_before  # Kong's set_target keeps the Host header


def test_ctx_shared_and_client_ip_properties(mitmdump, client):
    proxy = mitmdump(
        """
nodes:
- name: IP
  type: property
  property: kong.client.ip
- name: STORE
  type: property
  property: kong.ctx.shared.seen_ip
  input: IP
- name: READ_BACK
  type: jq
  inputs:
    ip: IP
    stored: STORE
  jq: .
- name: EXIT
  type: exit
  inputs:
    body: READ_BACK
"""
    )
    assert client.get(proxy.url + "/").json() == {"ip": "127.0.0.1", "stored": "127.0.0.1"}


def test_response_status_property_overrides_the_upstream_status(mitmdump, upstream, client):
    proxy = mitmdump(
        """
nodes:
- name: CODE
  type: jq
  jq: "418"
- name: SET_STATUS
  type: property
  property: kong.response.status
  input: CODE
"""
    )
    response = client.get(proxy.url + "/tea")
    assert response.status_code == 418
    assert response.json()["path"] == "/tea"


def test_vault_secret_is_used_but_never_shown(mitmdump, stub, client):
    secret = "s3cr3t-value-9f8e7d"
    stub.route("GET", "/protected", status=401, json={"error": "bad key"})
    proxy = mitmdump(
        f"""
debug: true
resources:
  vault:
    token: "{{vault://env/dk-test-token}}"
nodes:
- name: HEADERS
  type: jq
  inputs:
    key: vault.token
  jq: '{{"Authorization": ("Bearer " + .key), "X-Echo": .key}}'
- name: API
  type: call
  url: {stub.url}/protected
  inputs:
    headers: HEADERS
""",
        env={"DK_TEST_TOKEN": secret},
    )
    error = client.get(proxy.url + "/")
    trace = client.get(proxy.url + "/", headers={"X-DataKit-Debug-Trace": "on"})
    seen = stub.requests_to("/protected")[0]
    assert seen.header("Authorization") == f"Bearer {secret}"
    assert error.status_code == 500 and trace.status_code == 500
    for text in (error.text, trace.text, proxy.output()):
        assert secret not in text
    assert "********" in trace.text


def test_missing_vault_variable_fails_only_at_request_time(mitmdump, client):
    proxy = mitmdump(
        {
            "debug": True,
            "resources": {"vault": {"token": "{vault://env/DK_UNSET_VARIABLE}"}},
            "nodes": [{"name": "USE", "type": "jq", "input": "vault.token", "jq": ".", "output": "response.body"}],
        }
    )
    body = client.get(proxy.url + "/").json()
    assert body["node"]["name"] == "USE"
    assert "DK_UNSET_VARIABLE is not set" in body["error"]


def test_upstream_down_with_an_exit_still_answers_in_lazy_mode(mitmdump, client):
    proxy = mitmdump(
        {"nodes": [{"name": "EXIT", "type": "exit", "status": 201, "inputs": {"body": "request.query"}}]},
        "--set",
        "connection_strategy=lazy",
        upstream="http://127.0.0.1:1",
    )
    response = client.get(proxy.url + "/?mock=1")
    assert response.status_code == 201
    assert response.json() == {"mock": "1"}


def test_request_id_is_fresh_per_request(mitmdump, client):
    proxy = mitmdump({"nodes": [{"name": "E", "type": "exit", "inputs": {"body": "request.query"}}]})
    ids = {client.get(proxy.url + "/").headers["X-Kong-Request-Id"] for _ in range(3)}
    assert len(ids) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_client_sees_the_same_proxy_for_many_flows(mitmdump, stub, client):
    """A bounded burst through one proxy: every flow gets its own, correct answer."""
    stub.route("GET", "/n", handler=lambda req: {"n": int(req.query["n"])})
    proxy = mitmdump(
        f"""
nodes:
- name: API
  type: call
  url: {stub.url}/n
  inputs:
    query: request.query
- name: EXIT
  type: exit
  inputs:
    body: API.body
"""
    )
    with httpx.Client(trust_env=False, timeout=10) as c:
        answers = [c.get(proxy.url + f"/?n={i}").json()["n"] for i in range(40)]
    assert answers == list(range(40))
