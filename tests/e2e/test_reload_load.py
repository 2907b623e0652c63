"""A reload while hundreds of requests are in flight (issue 8): none is lost, each is answered wholly by
the config it started on, and the flows that start after the reload run the new one.

The upstream holds every request of the first wave until the new config is loaded, so the reload
happens with all of them in flight by construction, not by timing. Loopback only; every wait bounded.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
from harness import StubRequest, StubResponse

from faults import Ledger
from test_reload import versioned, write_atomically  # the same versioned routing file as the reload tests

DEAD = "http://127.0.0.1:1"
IN_FLIGHT = 250  # requests held at the upstream while the config changes
AFTER = 50  # requests sent once the new config serves


def stamped(version: str) -> Any:
    """The answer of a flow that ran wholly on `version`: the upstream saw it, the response phase added it."""

    def check(response: httpx.Response) -> str | None:
        headers = response.headers
        seen = (response.status_code, headers.get("X-Echo-Version"), headers.get("X-Version-Out"))
        return None if seen == (200, version, version) else f"expected 200 {version}/{version}, got {seen}"

    return check


async def send_all(url: str, count: int, check: Any, ledger: Ledger) -> None:
    """`count` requests at once over as many connections (bounded: 60 s each at most)."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(trust_env=False, timeout=60, limits=limits) as client:

        async def one(i: int) -> None:
            try:
                response = await client.get(f"{url}?i={i}")
            except httpx.HTTPError as e:
                ledger.note(f"request {i}: no answer ({type(e).__name__}: {e})")
            else:
                problem = check(response)
                ledger.note(None if problem is None else f"request {i}: {problem}")

        await asyncio.gather(*(one(i) for i in range(count)))


def test_a_reload_with_hundreds_of_requests_in_flight_loses_none(mitmdump, upstream, reliability):
    gate = threading.Event()

    async def held(request: StubRequest) -> StubResponse:
        for _ in range(6000):  # 60 s at most
            if gate.is_set():
                break
            await asyncio.sleep(0.01)
        echoed = request.header("X-Version-In") or ""
        return StubResponse(headers={"X-Echo-Version": echoed}, json={"ok": True})

    upstream.route("GET", "/load", handler=held)
    proxy = mitmdump(versioned(upstream.url, "v1"), upstream=DEAD)
    ledger = Ledger()
    first_wave = threading.Thread(
        target=lambda: asyncio.run(send_all(proxy.url + "/load", IN_FLIGHT, stamped("v1"), ledger))
    )
    first_wave.start()
    try:
        upstream.wait_for_requests(IN_FLIGHT, path="/load", timeout=60)  # all of them are in flight now
        write_atomically(proxy.config_path, versioned(upstream.url, "v2"))
        proxy.wait_for_output(r"datakit: loaded (.|\n)*datakit: loaded ", timeout=15)
    finally:
        gate.set()
        first_wave.join(90)
    assert not first_wave.is_alive()
    asyncio.run(send_all(proxy.url + "/load", AFTER, stamped("v2"), ledger))

    ledger.report(reliability, f"reload with {IN_FLIGHT} requests in flight")
    assert ledger.sent == IN_FLIGHT + AFTER
    assert ledger.lost == 0, ledger.problems
    assert "datakit: file changed" not in proxy.output()  # the new file was valid: no warning
