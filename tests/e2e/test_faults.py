"""Third-party APIs that misbehave on purpose: each fault has a defined answer, and the proxy keeps
serving other flows meanwhile (issue 8). Loopback only; every wait bounded."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

import faults
from faults import FaultServer

CONFIG = """
debug: true
nodes:
- name: API
  type: call
  url: {url}/x
  timeout: {timeout}
- name: EXIT
  type: exit
  inputs:
    body: API.body
"""


@pytest.fixture
def fault_server() -> Iterator[list[FaultServer]]:
    servers: list[FaultServer] = []
    yield servers
    for server in servers:
        server.stop()


@pytest.mark.parametrize(
    ("behaviour", "timeout", "extra", "error"),
    [
        (faults.hang(10), 300, (), r"timeout calling 127\.0\.0\.1:\d+"),
        (faults.reset, 5000, (), r"request to 127\.0\.0\.1:\d+ failed: .*Connection reset by peer"),
        (faults.close_mid_body, 5000, (), r"connection to 127\.0\.0\.1:\d+ closed before the response was complete"),
        (faults.drip(0.2, chunks=20), 500, (), r"timeout calling 127\.0\.0\.1:\d+"),
        (faults.fixed(200, "application/json", b'{"broken": '), 5000, (), r"invalid JSON body: .*\(status 200\)"),
        (
            faults.fixed(200, "text/plain", b"y" * 5000),
            5000,
            ("--set", "datakit_max_body=1000"),
            r"response body of 5000 bytes exceeds the limit of 1000",
        ),
    ],
    ids=["timeout", "reset", "close-mid-body", "drip", "invalid-json", "too-large"],
)
def test_third_party_fault_fails_the_node_and_nothing_else(
    mitmdump, upstream, client, fault_server, behaviour, timeout, extra, error
):
    server = FaultServer(behaviour).start()
    fault_server.append(server)
    proxy = mitmdump(CONFIG.format(url=server.url, timeout=timeout), *extra)
    response = client.get(proxy.url + "/anything")
    assert response.status_code == 500
    body = response.json()
    assert body["node"] == {"index": 1, "name": "API", "type": "call"}
    assert re.fullmatch(error, body["error"]), body["error"]
    assert "Traceback" not in proxy.output() and "Addon error" not in proxy.output()
    # One log line says which node failed and why.
    proxy.wait_for_output(r'datakit: node #1 \(API\) failed with error: ')


def test_a_hung_api_does_not_hold_up_other_flows(mitmdump, upstream, client, fault_server, stub_factory):
    """While one flow waits on a hung third party, flows that do not call it are answered."""
    server = FaultServer(faults.hang(10)).start()
    fault_server.append(server)
    fast = stub_factory("fast")
    fast.route("GET", "/ok", json={"ok": True})
    proxy = mitmdump(
        f"""
nodes:
- name: PICK
  type: jq
  input: request.query
  jq: 'if .slow then "{server.url}/x" else "{fast.url}/ok" end'
- name: API
  type: call
  timeout: 3000
  inputs:
    url: PICK
- name: EXIT
  type: exit
  inputs:
    body: API.body
"""
    )
    import concurrent.futures

    import httpx

    with concurrent.futures.ThreadPoolExecutor(2) as pool, httpx.Client(trust_env=False, timeout=10) as other:
        slow = pool.submit(other.get, proxy.url + "/?slow=1")
        answers = [client.get(proxy.url + "/").json() for _ in range(10)]
        assert answers == [{"ok": True}] * 10
        assert not slow.done()  # the hung call is still waiting: the others did not queue behind it
        assert slow.result(timeout=10).status_code == 500


def test_client_going_away_cancels_its_calls(mitmdump, upstream, client, fault_server):
    """A client that disconnects while its flow waits on a third party: the call is cancelled (the API
    sees its connection close long before the call's own 30 s timeout) and the proxy serves on."""
    import socket
    import time

    from harness import wait_until

    server = FaultServer(faults.hang(20)).start()
    fault_server.append(server)
    proxy = mitmdump(CONFIG.format(url=server.url, timeout=30000))
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET /anything HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: server.connections == 1, timeout=5)
    started = time.monotonic()
    wait_until(lambda: server.open_connections == 0, timeout=10)
    assert time.monotonic() - started < 10
    assert "Traceback" not in proxy.output() and "Addon error" not in proxy.output()
    server.behaviour = faults.fixed(200, "application/json", b'{"ok": true}')
    assert client.get(proxy.url + "/anything").json() == {"ok": True}
