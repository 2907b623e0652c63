"""The service behind the proxy misbehaves: down, resetting, closing mid-body, answering garbage, or slow.

One routing file, two services: `/good` goes to a healthy upstream, `/bad` to the faulty one, and a global
datakit plugin runs on both (a request header on the way in, the upstream's status on the way out). The
outcome of each fault is mitmproxy's, documented in docs/reliability.md: a 502 naming the reason, or, for a
slow upstream, its answer whenever it comes (mitmproxy has no response timeout; the service's `read_timeout`
is accepted and not applied). Meanwhile `/good` is answered correctly. Loopback only; every wait bounded.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from harness import StubServer, free_port

import faults
from faults import FaultServer, Ledger, Traffic

DEAD = "http://127.0.0.1:1"


def routing(good_url: str, bad_url: str) -> dict[str, Any]:
    datakit = {
        "nodes": [
            {
                "name": "IN",
                "type": "static",
                "values": {"X-Datakit": "in"},
                "output": "service_request.headers",
            },
            {
                "name": "OUT",
                "type": "jq",
                "input": "service_response.status",
                "jq": '{"X-Upstream-Status": (. | tostring)}',
                "output": "response.headers",
            },
        ]
    }
    return {
        "_format_version": "3.0",
        "services": [
            {"name": "good", "url": good_url, "routes": [{"name": "good", "paths": ["/good"]}]},
            {"name": "bad", "url": bad_url, "routes": [{"name": "bad", "paths": ["/bad"]}]},
        ],
        "plugins": [{"name": "datakit", "config": datakit}],
    }


def good_answer(response: httpx.Response) -> str | None:
    """The healthy upstream's echo, with both of the plugin's phases applied."""
    if response.status_code != 200:
        return f"expected 200, got {response.status_code} {response.text[:200]!r}"
    if response.headers.get("X-Upstream-Status") != "200":
        return "the response phase did not run"
    if response.json()["headers"].get("X-Datakit") != "in":
        return "the access phase did not run"
    return None


@pytest.fixture
def fault_servers() -> Iterator[list[FaultServer]]:
    servers: list[FaultServer] = []
    yield servers
    for server in servers:
        server.stop()


def down(fault_servers: list[FaultServer], stub_factory: Any) -> str:
    return f"http://127.0.0.1:{free_port()}"


def slow(fault_servers: list[FaultServer], stub_factory: Any) -> str:
    server: StubServer = stub_factory("slow", default_echo=False)
    server.delay("/*", 1.0, json={"slow": True})
    return server.url


def faulty(behaviour: faults.Behaviour) -> Any:
    def start(fault_servers: list[FaultServer], stub_factory: Any) -> str:
        server = FaultServer(behaviour).start()
        fault_servers.append(server)
        return server.url

    return start


def slow_answer(response: httpx.Response) -> str | None:
    if (response.status_code, response.headers.get("X-Upstream-Status")) != (200, "200"):
        return f"expected 200 after the delay, got {response.status_code} {response.text[:200]!r}"
    return None if response.json() == {"slow": True} else f"wrong body {response.text[:200]!r}"


@pytest.mark.parametrize(
    ("start_upstream", "check"),
    [
        (down, faults.bad_gateway("[Errno 111] Connect call failed")),
        (faulty(faults.reset), faults.bad_gateway("server closed connection")),
        (
            faulty(faults.close_mid_body),
            faults.bad_gateway("peer closed connection without sending complete message body"),
        ),
        (faulty(faults.not_http), faults.bad_gateway("Bad HTTP response line")),
        (faulty(faults.hang(1.0)), faults.bad_gateway("server closed connection")),
        (slow, slow_answer),
    ],
    ids=["down", "reset", "close-mid-body", "not-http", "hangs-then-closes", "slow"],
)
def test_an_upstream_fault_has_its_answer_and_other_services_are_served(
    mitmdump, upstream, stub_factory, fault_servers, reliability, start_upstream, check, request
):
    bad_url = start_upstream(fault_servers, stub_factory)
    proxy = mitmdump(routing(upstream.url, bad_url), upstream=DEAD)
    ledger = Ledger()
    with Traffic(proxy.url + "/good", good_answer, ledger) as traffic, concurrent.futures.ThreadPoolExecutor(
        3
    ) as pool, httpx.Client(trust_env=False, timeout=10) as client:
        traffic.wait_answered(5)
        bad = [pool.submit(ledger.send, client, proxy.url + "/bad", check) for _ in range(3)]
        traffic.wait_answered(ledger.answered + 10)
        for answer in bad:
            answer.result(timeout=15)
        traffic.wait_answered(ledger.answered + 5)
    ledger.report(reliability, f"upstream: {request.node.callspec.id}")
    assert ledger.lost == 0, ledger.problems
