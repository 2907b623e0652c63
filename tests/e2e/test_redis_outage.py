"""Redis goes away and comes back under a `cache` node with strategy redis (issue 8).

While Redis is down a cache node fails its flow with a 500 that names Redis and the reason (one log line),
or, with `bypass_on_error`, reads as a miss and the flow goes on without the cache; flows that do not use
the cache are answered throughout. Once Redis is back on the same port, caching works again at once: the
client replaces its dead pooled connections. Real redis-server on loopback; every wait bounded.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from harness import StubServer

from faults import Check, Ledger, Traffic, cache_graph, json_or_text

DEAD = "http://127.0.0.1:1"
FRESH = {"fresh": "data"}


def routing(upstream_url: str, cached: dict[str, Any]) -> dict[str, Any]:
    """`/cached` runs the cache graph; `/plain` is proxied to the upstream without touching the cache."""
    plugin = {"name": "datakit", "config": cached}
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "cached",
                "url": upstream_url,
                "routes": [{"name": "cached", "paths": ["/cached"], "plugins": [plugin]}],
            },
            {"name": "plain", "url": upstream_url, "routes": [{"name": "plain", "paths": ["/plain"]}]},
        ],
    }


def cache_says(outcome: str) -> Check:
    """The data API's body, answered from the cache ("hit") or after calling the API ("miss")."""

    def check(response: httpx.Response) -> str | None:
        seen = (response.status_code, response.headers.get("X-Cache"), json_or_text(response))
        return None if seen == (200, outcome, FRESH) else f"expected 200 {outcome} {FRESH}, got {seen}"

    return check


def redis_refused(port: int) -> Check:
    """A failed cache node: Kong's 500 naming the node and the reason (debug on)."""
    expected = {"node": "GET", "error": f"cache: cannot connect to Redis 127.0.0.1:{port}: Connection refused"}

    def check(response: httpx.Response) -> str | None:
        body = json_or_text(response)
        seen = {"node": body["node"]["name"], "error": body["error"]} if isinstance(body, dict) else body
        return None if (response.status_code, seen) == (500, expected) else f"expected 500 {expected}, got {body}"

    return check


def plain(response: httpx.Response) -> str | None:
    if response.status_code == 200 and response.json()["path"] == "/":
        return None
    return f"expected the upstream's echo, got {response.status_code} {response.text[:200]!r}"




@pytest.mark.parametrize("bypass", [False, True], ids=["fails-the-flow", "bypass-on-error"])
def test_redis_going_away_and_coming_back(
    mitmdump, upstream, stub: StubServer, redis_server, reliability, bypass
):
    stub.route("GET", "/data", json=FRESH)
    cached = cache_graph(f"{stub.url}/data", redis_server.port, bypass=bypass)
    proxy = mitmdump(routing(upstream.url, cached), upstream=DEAD)
    url = proxy.url + "/cached"
    ledger = Ledger()
    with Traffic(proxy.url + "/plain", plain, ledger) as traffic, httpx.Client(
        trust_env=False, timeout=10
    ) as client:
        traffic.wait_answered(5)
        ledger.send(client, url, cache_says("miss"))
        ledger.send(client, url, cache_says("hit"))

        redis_server.stop()
        outage = cache_says("miss") if bypass else redis_refused(redis_server.port)
        for _ in range(5):
            ledger.send(client, url, outage)
        traffic.wait_answered(ledger.answered + 10)

        redis_server.start()  # same port, empty (no persistence)
        ledger.send(client, url, cache_says("miss"))
        ledger.send(client, url, cache_says("hit"))
        traffic.wait_answered(ledger.answered + 5)

    ledger.report(reliability, f"Redis away and back ({'bypass_on_error' if bypass else 'no bypass'})")
    assert ledger.lost == 0, ledger.problems
    # Calls to the data API: the first miss, every request of the outage with bypass, the miss after.
    assert len(stub.requests_to("/data")) == (7 if bypass else 2)
    failures = re.findall(r"datakit: node #2 \(GET\) failed with error: .*", proxy.output())
    assert len(failures) == (0 if bypass else 5), failures
