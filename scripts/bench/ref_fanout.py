"""Reference for (c) fan-out: N concurrent GETs to the third-party stand-in, joined by jq, answered directly.

Uses aiohttp the way the engine does (one shared session created on mitmproxy's loop, no connection limit, no
cookie jar, no proxy from the environment, aiohttp's logging quiet), so the comparison measures the engine around
the calls and not two different clients. `--set bench_api=URL --set bench_calls=N`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import jq
from mitmproxy import ctx, http

import bench_workloads as wl

JOIN = jq.compile(wl.JOIN_JQ)


class RefFanout:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.urls: list[str] = []
        # mitmdump's root logger is at DEBUG and every record walks all addons; the engine quiets aiohttp too.
        logging.getLogger("aiohttp").setLevel(logging.WARNING)

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("bench_api", str, "", "Base URL of the third-party stand-in.")
        loader.add_option("bench_calls", int, 2, "Concurrent calls per request.")

    def configure(self, updated: set[str]) -> None:
        self.urls = [ctx.options.bench_api + wl.call_path(k) for k in range(1, ctx.options.bench_calls + 1)]

    async def fetch(self, url: str) -> Any:
        if self.session is None:  # created lazily: it must belong to the running loop
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
            )
        async with self.session.get(url, allow_redirects=False) as response:
            body = await response.read()
            if not 200 <= response.status <= 299:
                raise RuntimeError(f"{url}: status {response.status}")
            return json.loads(body)

    async def request(self, flow: http.HTTPFlow) -> None:
        bodies = await asyncio.gather(*(self.fetch(url) for url in self.urls))
        joined = JOIN.input_value({wl.join_input(k): b for k, b in enumerate(bodies, start=1)}).first()
        flow.response = http.Response.make(200, wl.json_bytes(joined), {"Content-Type": "application/json"})

    async def done(self) -> None:
        if self.session is not None:
            await self.session.close()


addons = [RefFanout()]
