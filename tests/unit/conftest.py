"""Fixtures for engine unit tests: a real HTTP server on 127.0.0.1 for `call` nodes, and the shared client.

    async def test_get(local_server):
        local_server.json_route("/x", {"ok": True})
        run = await run_config({"nodes": [{"name": "C", "type": "call", "url": local_server.url("/x")}]})

The server runs inside the test's own event loop (aiohttp.web, port 0). Every wait it does is bounded,
so a broken engine makes a test fail, never hang.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from mitm_datakit.http_client import HttpClient

# How long the /slow endpoint holds a request, and how long /barrier waits for its peers, before giving up.
# Tests that rely on them finish far sooner (or fail on their own, tighter bound).
SLOW_HOLD = 10.0
BARRIER_WAIT = 3.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    """One request as the server received it: the raw query string, header names in their original
    casing, raw body bytes."""

    method: str
    path: str
    query_string: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        """Every value of a header, matched case-insensitively."""
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header_names(self) -> list[str]:
        return [k for k, _ in self.headers]


@dataclass
class _Barrier:
    arrived: int = 0
    event: asyncio.Event = field(default_factory=asyncio.Event)


class LocalServer:
    """A small programmable HTTP server. Built-in paths:

    - `/echo`: answers 200 JSON `{method, path, query, headers: [[name, value], ...], body}`;
    - `/status/<code>`: answers `<code>` with a JSON body `{"status": <code>}` and `X-Status-Header: yes`;
    - `/slow`: holds the request until the test ends (at most SLOW_HOLD s); sets `slow_started` on arrival
      and `slow_disconnected` when the client goes away before the answer;
    - `/barrier?key=K&n=N`: answers 200 only once N requests with key K arrived; 504 after BARRIER_WAIT s.

    Tests add their own paths with `route`, `json_route` and `text_route`.
    """

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {
            "/echo": self._echo,
            "/slow": self._slow,
            "/barrier": self._barrier,
        }
        self.requests: list[Recorded] = []
        self.slow_started = asyncio.Event()
        self.slow_disconnected = asyncio.Event()
        self._release = asyncio.Event()
        self._barriers: dict[str, _Barrier] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> LocalServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # handler_cancellation: a client that disconnects cancels its handler, so /slow can observe it.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        self._release.set()
        for barrier in self._barriers.values():
            barrier.event.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- configuration ---------------------------------------------------------------------------
    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, handler: Handler) -> None:
        self.handlers[path] = handler

    def json_route(
        self, path: str, data: Any, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.json_response(data, status=status, headers=headers)

        self.route(path, handler)

    def text_route(
        self,
        path: str,
        text: str | bytes,
        *,
        status: int = 200,
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        body = text.encode("utf-8") if isinstance(text, str) else text

        async def handler(request: web.Request) -> web.StreamResponse:
            all_headers = {"Content-Type": content_type, **(headers or {})}
            return web.Response(body=body, status=status, headers=all_headers)

        self.route(path, handler)

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    # -- handlers --------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query_string=request.raw_path.partition("?")[2],  # as sent, not decoded
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
                body=body,
            )
        )
        handler = self.handlers.get(request.path)
        if handler is not None:
            return await handler(request)
        if request.path.startswith("/status/"):
            code = int(request.path.rsplit("/", 1)[1])
            return web.json_response({"status": code}, status=code, headers={"X-Status-Header": "yes"})
        return web.json_response({"error": "no such path"}, status=404)

    async def _echo(self, request: web.Request) -> web.StreamResponse:
        recorded = self.requests[-1]
        return web.json_response(
            {
                "method": recorded.method,
                "path": recorded.path,
                "query": recorded.query_string,
                "headers": [list(h) for h in recorded.headers],
                "body": recorded.body.decode("utf-8", "replace"),
            }
        )

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        self.slow_started.set()
        try:
            await asyncio.wait_for(self._release.wait(), SLOW_HOLD)
        except asyncio.CancelledError:
            self.slow_disconnected.set()
            raise
        except TimeoutError:
            pass
        return web.json_response({"slow": True})

    async def _barrier(self, request: web.Request) -> web.StreamResponse:
        key = request.query.get("key", "default")
        wanted = int(request.query.get("n", "2"))
        barrier = self._barriers.setdefault(key, _Barrier())
        barrier.arrived += 1
        if barrier.arrived >= wanted:
            barrier.event.set()
        try:
            await asyncio.wait_for(barrier.event.wait(), BARRIER_WAIT)
        except TimeoutError:
            return web.json_response({"error": "barrier timeout", "arrived": barrier.arrived}, status=504)
        return web.json_response({"key": key, "arrived": barrier.arrived})


@pytest.fixture
async def local_server() -> AsyncIterator[LocalServer]:
    server = await LocalServer().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def http_client() -> AsyncIterator[HttpClient]:
    """The engine's outbound client; closed after the test (an open session would be a ResourceWarning)."""
    client = HttpClient()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: connecting is refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/nothing"
    finally:
        sock.close()


def echo_headers(echo: dict[str, Any]) -> dict[str, list[str]]:
    """Header values of an /echo body, by lower-cased name."""
    result: dict[str, list[str]] = {}
    for name, value in echo["headers"]:
        result.setdefault(name.lower(), []).append(value)
    return result


# -- helpers for reading a finished Run (imported by the test modules) ---------------------------


def value_of(run: Any, name: str) -> Any:
    """The output a node produced (None when it produced null or never ran)."""
    return run.values[run.plan.ids[name]]


def status_of(run: Any, name: str) -> str:
    return str(run.status[run.plan.ids[name]])
