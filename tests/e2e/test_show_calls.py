"""`datakit_show_calls`: each call node's exchange is a flow of its own, linked to its client flow, in what
mitmdump prints and saves (`-w`) and in mitmweb's flow list, with secrets masked; with the option off, only
the client flow exists."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
from harness import DATAKIT_SCRIPT, MITMDUMP, Proxy, _spawn, mitmdump_command, write_config
from mitmproxy import flowfilter, http, io

SECRET = "c4ll-s3cr3t-9f8e"
ENV = {"DK_CALLS_TOKEN": SECRET}

TWO_CALLS = """
resources:
  vault:
    token: "{vault://env/dk-calls-token}"
nodes:
- name: HEADERS
  type: jq
  inputs:
    token: vault.token
  jq: '{Authorization: ("Bearer " + .token), "X-Call": "auth"}'
- name: LOGIN
  type: static
  values:
    user: u1
- name: AUTH
  type: call
  method: POST
  url: %(stub)s/auth
  inputs:
    headers: HEADERS
    body: LOGIN
- name: FACT
  type: call
  url: %(stub)s/fact?lang=en
- name: JOIN
  type: jq
  inputs:
    auth: AUTH.status
    fact: FACT.body
  jq: '{auth: .auth, fact: .fact.fact}'
- name: EXIT
  type: exit
  inputs:
    body: JOIN
"""

ONE_CALL = """
nodes:
- name: FACT
  type: call
  url: %(stub)s/fact
- name: EXIT
  type: exit
  inputs:
    body: FACT.body
"""

REFUSED = """
nodes:
- name: DOWN
  type: call
  url: http://127.0.0.1:%(port)d/nothing-listens
"""


def stop(proxy, client) -> None:
    """Stop mitmdump once the client has gone: the flow file is then complete, and Python 3.11 logs no
    cancelled-connection traceback for a connection still open at exit."""
    client.close()
    proxy.wait_for_output(r"client disconnect")
    proxy.stop()


def started(command: list[str], config: Path | None, env: dict[str, str] | None = None) -> Proxy:
    """A mitmdump or mitmweb started from a command the harness builds and this module changes."""
    proxy = Proxy(*_spawn(command, env), config)
    proxy._wait_ready(15.0)  # stops the process if it does not come up
    return proxy


def saved_flows(path: Path) -> list[http.HTTPFlow]:
    with path.open("rb") as f:
        return [flow for flow in io.FlowReader(f).stream() if isinstance(flow, http.HTTPFlow)]


def split(flows: list[http.HTTPFlow]) -> tuple[list[http.HTTPFlow], dict[str, http.HTTPFlow]]:
    """The client flows, and the call flows by node name."""
    clients = [flow for flow in flows if "datakit_call" not in flow.metadata]
    calls = {flow.metadata["datakit_call"]["node"]: flow for flow in flows if "datakit_call" in flow.metadata}
    return clients, calls


def run_two_calls(mitmdump, stub, client, tmp_path: Path, *extra: str):
    stub.echo("/auth")
    stub.route("GET", "/fact", json={"fact": "cats purr"}, headers={"X-Stub": "fact"})
    saved = tmp_path / "flows.out"
    proxy = mitmdump(TWO_CALLS % {"stub": stub.url}, "-w", str(saved), *extra, env=ENV)
    response = client.get(proxy.url + "/facts")
    assert response.json() == {"auth": 200, "fact": "cats purr"}
    stop(proxy, client)
    return proxy, saved


def test_each_call_is_a_flow_linked_to_its_client_flow(mitmdump, stub, client, tmp_path):
    _, saved = run_two_calls(mitmdump, stub, client, tmp_path, "--set", "datakit_show_calls=true")
    [parent], calls = split(saved_flows(saved))

    assert sorted(calls) == ["AUTH", "FACT"]
    assert sorted(parent.metadata["datakit_calls"]) == sorted(flow.id for flow in calls.values())
    for node, flow in calls.items():
        assert flow.metadata["datakit_call"] == {"parent": parent.id, "node": node}
        assert flow.comment == f"datakit call {node} for {parent.id}"
        assert flow.server_conn.address == ("127.0.0.1", stub.port)
        assert parent.request.timestamp_start <= flow.request.timestamp_start
        assert flow.request.timestamp_start <= flow.response.timestamp_start <= flow.response.timestamp_end
    assert parent.comment.startswith("datakit PLAN_COMPLETE")

    is_call = flowfilter.parse('~comment "datakit call"')
    assert [flow for flow in (parent, *calls.values()) if is_call(flow)] == list(calls.values())


def test_a_call_flow_holds_what_went_over_the_wire(mitmdump, stub, client, tmp_path):
    _, saved = run_two_calls(mitmdump, stub, client, tmp_path, "--set", "datakit_show_calls=true")
    _, calls = split(saved_flows(saved))
    [auth_seen] = stub.requests_to("/auth")
    [fact_seen] = stub.requests_to("/fact")

    auth = calls["AUTH"]
    assert (auth.request.method, auth.request.url) == ("POST", f"{stub.url}/auth")
    # Every header as the stub received it, in its order and casing, the secret one masked.
    masked = [(k, "********" if k.lower() == "authorization" else v) for k, v in auth_seen.header_list]
    assert auth.request.headers.fields == tuple((k.encode(), v.encode()) for k, v in masked)
    assert auth.request.content == auth_seen.body == b'{"user":"u1"}'
    assert auth.response.status_code == 200
    echoed = json.loads(auth.response.content)
    assert echoed["headers"]["Authorization"] == "********"  # the API echoed the token: scrubbed there too
    assert echoed["headers"]["X-Call"] == "auth"

    fact = calls["FACT"]
    assert (fact.request.method, fact.request.url) == ("GET", f"{stub.url}/fact?lang=en")
    assert fact_seen.query == {"lang": "en"}
    assert fact.request.headers["Host"] == fact_seen.header("Host")
    assert fact.response.json() == {"fact": "cats purr"}
    assert fact.response.headers["X-Stub"] == "fact"
    assert fact.error is None


def test_secrets_never_reach_the_saved_flows_or_the_dump(
    stub, upstream, client, tmp_path, mitm_confdir, reliability
):
    stub.echo("/auth")
    stub.route("GET", "/fact", json={"fact": "cats purr"})
    saved = tmp_path / "flows.out"
    config = write_config(TWO_CALLS % {"stub": stub.url}, tmp_path)
    # The harness runs mitmdump with flow_detail=0, which `--set` cannot override: here it prints whole flows.
    command = mitmdump_command(
        config, mode=f"reverse:{upstream.url}", script=DATAKIT_SCRIPT, confdir=mitm_confdir,
        extra_args=["-w", str(saved), "--set", "datakit_show_calls=true"],
    )
    proxy = started([arg.replace("flow_detail=0", "flow_detail=3") for arg in command], config, ENV)
    try:
        assert client.get(proxy.url + "/facts").status_code == 200
        stop(proxy, client)
    finally:
        proxy.stop()
    assert stub.requests_to("/auth")[0].header("Authorization") == f"Bearer {SECRET}"  # it was sent
    output = proxy.output()
    assert f"POST {stub.url}/auth" in output  # mitmdump prints call flows as any other, headers and bodies
    assert "Authorization: ********" in output
    assert f"GET {stub.url}/fact?lang=en" in output
    places = {"the flow file": saved.read_bytes().decode("latin-1"), "mitmdump's output": output}
    leaks = [where for where, text in places.items() if SECRET in text]
    reliability.secrets_checked(len(places), len(leaks))
    assert leaks == []


def test_with_the_option_off_only_the_client_flow_exists(mitmdump, stub, client, tmp_path):
    _, saved = run_two_calls(mitmdump, stub, client, tmp_path)
    [flow] = saved_flows(saved)
    assert "datakit_calls" not in flow.metadata
    assert "datakit_call" not in flow.metadata
    assert len(stub.requests) == 2  # the calls ran all the same


def test_a_call_that_got_no_answer_is_a_flow_with_its_error(mitmdump, client, tmp_path):
    saved = tmp_path / "flows.out"
    with socket.socket() as bound:  # bound, never listening: a connection is refused at once
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        proxy = mitmdump(REFUSED % {"port": port}, "-w", str(saved), "--set", "datakit_show_calls=true")
        assert client.get(proxy.url + "/").status_code == 500
        stop(proxy, client)
    [parent], calls = split(saved_flows(saved))

    down = calls["DOWN"]
    assert parent.metadata["datakit_calls"] == [down.id]
    assert down.metadata["datakit_call"] == {"parent": parent.id, "node": "DOWN"}
    assert down.request.url == f"http://127.0.0.1:{port}/nothing-listens"
    assert down.response is None
    assert down.error is not None
    assert down.error.msg.startswith(f"failed to connect to 127.0.0.1:{port}")
    assert parent.comment.endswith(f"DOWN failed: {down.error.msg}")


def test_mitmweb_lists_the_call_flows(stub, upstream, client, tmp_path, mitm_confdir):
    stub.route("GET", "/fact", json={"fact": "cats purr"})
    config = write_config(ONE_CALL % {"stub": stub.url}, tmp_path)
    with socket.socket() as probe:  # mitmweb logs the web port it was given (0), not the one it got: pick one
        probe.bind(("127.0.0.1", 0))
        web_port = probe.getsockname()[1]
    command = mitmdump_command(
        config, mode=f"reverse:{upstream.url}", script=DATAKIT_SCRIPT, confdir=mitm_confdir,
        extra_args=["--set", "datakit_show_calls=true", "--set", "web_open_browser=false",
                    "--web-host", "127.0.0.1", "--web-port", str(web_port)],
    )
    at = command.index("flow_detail=0")  # a mitmdump option: mitmweb has no dump output
    command = [str(MITMDUMP.with_name("mitmweb")), *command[1 : at - 1], *command[at + 1 :]]
    proxy = started(command, config)
    try:
        assert client.get(proxy.url + "/facts").status_code == 200
        listed: list[dict] = []
        for _ in range(100):  # the call flow is published by a task of its own: poll, bounded (10 s)
            listed = httpx.get(f"http://127.0.0.1:{web_port}/flows", trust_env=False, timeout=10).json()
            if len(listed) == 2:
                break
            time.sleep(0.1)
        stop(proxy, client)
    finally:
        proxy.stop()
    [parent] = [flow for flow in listed if flow["request"]["path"] == "/facts"]
    [call] = [flow for flow in listed if flow["request"]["path"] == "/fact"]
    assert call["comment"] == f"datakit call FACT for {parent['id']}"
    assert call["response"]["status_code"] == 200
