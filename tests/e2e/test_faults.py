"""Third-party APIs that misbehave on purpose: each fault has a defined answer, and the proxy keeps
serving other flows meanwhile (issue 8). Loopback only; every wait bounded.

Every request a case sends, faulty or good, is counted in the session's reliability figures
(docs/reliability.md): answered as documented, or lost.
"""

from __future__ import annotations

import concurrent.futures
import re
import socket
from collections.abc import Iterator

import httpx
import pytest
from harness import StubServer, wait_until

import faults
from faults import PROBE_ADDON, FaultServer, Ledger, Traffic, answers_json, connections_to, proxy_tasks

# One proxy, two kinds of flows: `?fault=1` calls the misbehaving API, every other request calls a good one.
CONFIG = """
debug: true
nodes:
- name: PICK
  type: jq
  input: request.query
  jq: 'if .fault then "{fault}/x" else "{good}/ok" end'
- name: API
  type: call
  timeout: {timeout}
  inputs:
    url: PICK
- name: EXIT
  type: exit
  inputs:
    body: API.body
"""
GOOD = {"ok": True}


@pytest.fixture
def fault_server() -> Iterator[list[FaultServer]]:
    servers: list[FaultServer] = []
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def good_api(stub: StubServer) -> StubServer:
    stub.route("GET", "/ok", json=GOOD)
    return stub


def failed_as(error: str) -> faults.Check:
    """The documented answer to a failed call: Kong's 500 naming the node and the reason (debug on)."""

    def check(response: httpx.Response) -> str | None:
        if response.status_code != 500:
            return f"expected 500, got {response.status_code} {response.text[:200]!r}"
        body = response.json()
        if body.get("node") != {"index": 2, "name": "API", "type": "call"}:
            return f"wrong node: {body!r}"
        if not re.fullmatch(error, body.get("error", "")):
            return f"error {body.get('error')!r} does not match {error!r}"
        return None

    return check


@pytest.mark.parametrize(
    ("behaviour", "timeout", "extra", "error"),
    [
        (faults.hang(10), 300, (), r"timeout calling 127\.0\.0\.1:\d+"),
        (faults.reset, 5000, (), r"request to 127\.0\.0\.1:\d+ failed: .*Connection reset by peer"),
        (
            faults.close_mid_body,
            5000,
            (),
            r"connection to 127\.0\.0\.1:\d+ closed before the response was complete",
        ),
        (faults.drip(0.2, chunks=20), 500, (), r"timeout calling 127\.0\.0\.1:\d+"),
        (
            faults.fixed(200, "application/json", b'{"broken": '),
            5000,
            (),
            r"invalid JSON body: .*\(status 200\)",
        ),
        (
            faults.fixed(200, "text/plain", b"y" * 5000),
            5000,
            ("--set", "datakit_max_body=1000"),
            r"response body of 5000 bytes exceeds the limit of 1000",
        ),
        (
            faults.chunked(8 * 1024 * 1024),
            5000,
            ("--set", "datakit_max_body=1000"),
            r"response body exceeds the limit of 1000 bytes",
        ),
    ],
    ids=["timeout", "reset", "close-mid-body", "drip", "invalid-json", "too-large", "too-large-chunked"],
)
def test_third_party_fault_fails_the_node_and_nothing_else(
    mitmdump, upstream, good_api, fault_server, reliability, behaviour, timeout, extra, error, request
):
    server = FaultServer(behaviour).start()
    fault_server.append(server)
    proxy = mitmdump(CONFIG.format(fault=server.url, good=good_api.url, timeout=timeout), *extra)
    ledger = Ledger()
    with Traffic(proxy.url + "/", answers_json(GOOD), ledger) as traffic, httpx.Client(
        trust_env=False, timeout=10
    ) as client:
        traffic.wait_answered(5)
        for _ in range(3):
            ledger.send(client, proxy.url + "/?fault=1", failed_as(error))
        # aiohttp sends an idempotent request once more when its connection is reset: one or two per request.
        assert 3 <= server.connections <= 6
        traffic.wait_answered(ledger.answered + 5)  # and the good flows still go on afterwards
    ledger.report(reliability, f"third-party API: {request.node.callspec.id}")
    assert ledger.lost == 0, ledger.problems
    # One log line per failure says which node failed and why.
    assert len(re.findall(r'datakit: node #2 \(API\) failed with error: "', proxy.output())) == 3
    assert upstream.requests == []


def test_a_hung_api_does_not_hold_up_other_flows(mitmdump, upstream, good_api, fault_server, reliability):
    """While flows wait on a hung third party, flows that do not call it are answered."""
    server = FaultServer(faults.hang(10)).start()
    fault_server.append(server)
    # The calls' 6 s timeout leaves the good flows ample time to show they are not queued behind the hung ones.
    proxy = mitmdump(CONFIG.format(fault=server.url, good=good_api.url, timeout=6000))
    ledger = Ledger()
    client = httpx.Client(trust_env=False, timeout=10)
    with concurrent.futures.ThreadPoolExecutor(4) as pool, client:
        hung = [
            pool.submit(ledger.send, client, proxy.url + "/?fault=1", failed_as(r"timeout calling .*"))
            for _ in range(4)
        ]
        wait_until(lambda: server.connections == 4, timeout=5)
        with Traffic(proxy.url + "/", answers_json(GOOD), ledger) as traffic:
            traffic.wait_answered(20)
            assert not any(call.done() for call in hung)  # the others did not queue behind the hung calls
        for call in hung:
            call.result(timeout=10)
    ledger.report(reliability, "third-party API: hung")
    assert ledger.lost == 0, ledger.problems


@pytest.mark.parametrize("clients", [1, 30])
def test_clients_going_away_cancel_their_calls_and_leave_nothing_behind(
    mitmdump, upstream, good_api, fault_server, reliability, clients
):
    """Clients that disconnect while their flows wait on a third party: the calls are cancelled (the API
    sees its connections close long before the calls' own 30 s timeout), the proxy's asyncio tasks and its
    connections to the API are back at their baseline, and other flows are answered throughout."""
    server = FaultServer(faults.hang(20)).start()
    fault_server.append(server)
    config = CONFIG.format(fault=server.url, good=good_api.url, timeout=30000)
    proxy = mitmdump(config, "-s", str(PROBE_ADDON))
    ledger = Ledger()
    with httpx.Client(trust_env=False, timeout=10) as client:
        ledger.send(client, proxy.url + "/", answers_json(GOOD))  # warm: the call client and its pool exist
    with httpx.Client(trust_env=False, timeout=10) as probe:  # a new connection per probe, as at the end
        baseline = proxy_tasks(probe, proxy.url)
    assert connections_to(server.port) == 0

    with Traffic(proxy.url + "/", answers_json(GOOD), ledger) as traffic:
        sockets = [socket.create_connection(("127.0.0.1", proxy.port), timeout=5) for _ in range(clients)]
        try:
            for sock in sockets:
                sock.sendall(b"GET /?fault=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_until(lambda: server.open_connections == clients, timeout=10)
            assert connections_to(server.port) == clients
            traffic.wait_answered(ledger.answered + 10)  # served while the calls hang
        finally:
            for sock in sockets:
                sock.close()
        wait_until(lambda: server.open_connections == 0, timeout=10)
        traffic.wait_answered(ledger.answered + 10)

    # A client that went away has no answer to check: it is not counted as sent.
    wait_until(lambda: connections_to(server.port) == 0, timeout=10)

    def tasks_at_baseline() -> bool:
        with httpx.Client(trust_env=False, timeout=10) as probe:
            return proxy_tasks(probe, proxy.url) == baseline

    wait_until(tasks_at_baseline, timeout=10, interval=0.2)
    ledger.report(reliability, "client disconnects while calls are in flight")
    assert ledger.lost == 0, ledger.problems
    assert server.connections == clients  # nothing retried a cancelled call
    server.behaviour = faults.fixed(200, "application/json", b'{"ok": true}')
    with httpx.Client(trust_env=False, timeout=10) as client:
        assert client.get(proxy.url + "/?fault=1").json() == {"ok": True}


@pytest.mark.allow_addon_errors
def test_an_exception_that_escapes_an_addon_is_caught_by_the_suite(mitmdump, upstream, client, tmp_path):
    """The check every e2e test gets at teardown (conftest.py), shown on a script whose hook raises: mitmproxy
    logs it and goes on as if the hook did nothing; the log lines the check looks for are there."""
    broken = tmp_path / "broken_addon.py"
    broken.write_text("def request(flow):\n    raise RuntimeError('escaped')\n")
    proxy = mitmdump({"nodes": [{"name": "EXIT", "type": "exit", "status": 201}]}, "-s", str(broken))
    assert client.get(proxy.url + "/").status_code == 201
    proxy.wait_for_output(r"RuntimeError: escaped")
    assert any("Addon error" in line for line in faults.unhandled_lines(proxy.output()))
