"""A request that goes away cancels its calls in flight (issue 8)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from mitm_datakit.context import RunContext
from mitm_datakit.http_client import HttpClient
from mitm_datakit.runtime import CANCELED, COMPLETE, Run

from .support import DEFAULT_REQUEST, DictGateway, plan_of


async def test_abort_cancels_the_calls_in_flight_and_their_connections():
    arrived = asyncio.Event()
    released = asyncio.Event()
    disconnected = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        arrived.set()
        try:
            await asyncio.wait_for(released.wait(), 10)
        except asyncio.CancelledError:
            disconnected.set()  # aiohttp cancels the handler when the client closes the connection
            raise
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = HttpClient()
    try:
        plan = plan_of({"nodes": [
            {"name": "SLOW", "type": "call", "url": f"http://127.0.0.1:{port}/slow"},
            {"name": "AFTER", "type": "jq", "input": "SLOW.body", "jq": "."},
        ]})
        run = Run(plan, RunContext("0" * 32, DictGateway(), client))
        run.start(DEFAULT_REQUEST)
        advancing = asyncio.ensure_future(run.advance())
        await asyncio.wait_for(arrived.wait(), 5)
        run.abort()
        await asyncio.wait_for(advancing, 5)
        assert run.status[plan.ids["SLOW"]] == CANCELED
        assert run.status[plan.ids["AFTER"]] != COMPLETE
        assert run.tasks == {}
        await asyncio.wait_for(disconnected.wait(), 5)  # the third party saw the call go away
    finally:
        released.set()
        await client.close()
        await runner.cleanup()
