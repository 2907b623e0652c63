"""Tools of the fault suite (issue 8), loopback only, every wait bounded.

- `FaultServer`, a raw TCP server that misbehaves on purpose: aiohttp's test server cannot reset a connection
  or close mid-body on demand; this one speaks just enough HTTP/1.1 by hand to do each fault exactly.
- `Ledger` counts the requests of one case (every request sent is answered as documented, or lost);
  `Traffic` sends good requests on other flows from background threads while a fault happens.
- `proxy_tasks` and `connections_to` measure, from outside the proxy, what a fault may leave behind.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol

import httpx
import yaml

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await asyncio.wait_for(reader.readexactly(int(line.split(b":")[1])), 5)
    return head


def _reset(writer: asyncio.StreamWriter) -> None:
    sock: socket.socket = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
    writer.transport.abort()


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    _reset(writer)


async def close_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"partial\":")
    await writer.drain()
    writer.close()


def drip(delay: float, chunks: int = 20) -> Behaviour:
    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {chunks}\r\n\r\n".encode())
        for _ in range(chunks):
            await writer.drain()
            await asyncio.sleep(delay)
            writer.write(b"x")
        await writer.drain()
        writer.close()

    return behave


def fixed(status: int, content_type: str, body: bytes) -> Behaviour:
    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    return behave


def chunked(size: int, chunk: int = 65536) -> Behaviour:
    """A body of `size` bytes without a declared length: the reader only finds out by reading."""

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
        for offset in range(0, size, chunk):
            part = min(chunk, size - offset)
            writer.write(b"%x\r\n%s\r\n" % (part, b"z" * part))
            await writer.drain()  # raises once the reader has given up and closed
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    return behave


async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers with something that is not HTTP."""
    await read_request(reader)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    writer.close()


def hang(seconds: float) -> Behaviour:
    """Read the request, then answer nothing for `seconds` (bounded), then close."""

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        try:
            await asyncio.wait_for(reader.read(1), seconds)  # returns b"" as soon as the peer goes away
        except asyncio.TimeoutError:
            pass
        writer.close()

    return behave


class FaultServer:
    """Serves one behaviour for every connection; counts connections and the ones the peer closed."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self.open_connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-server", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    def start(self) -> FaultServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(5)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self.connections += 1
        self.open_connections += 1
        try:
            await self.behaviour(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.CancelledError):
            pass
        finally:
            self.open_connections -= 1
            writer.transport.abort()  # no lingering socket, whatever state the behaviour left it in

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


# --------------------------------------------------------------------------------------------------------------
# Counting requests, good traffic meanwhile, and what is left behind
# --------------------------------------------------------------------------------------------------------------

PROBE_ADDON = Path(__file__).resolve().with_name("_probe_addon.py")
PROBE_PATH = "/__probe"  # keep in sync with _probe_addon.PROBE_PATH

# What is wrong with an answer, or None when it is the documented one.
Check = Callable[[httpx.Response], "str | None"]


class Tally(Protocol):
    """The session's reliability tally (tests/conftest.py), as far as fault cases use it."""

    def sent(self, n: int = 1) -> None: ...
    def answered(self, n: int = 1) -> None: ...
    def lost(self, n: int = 1) -> None: ...
    def fault(self, kind: str) -> None: ...


class Ledger:
    """Every request of a case, faulty or not: answered as documented, or lost (with what went wrong)."""

    def __init__(self) -> None:
        self.sent = 0
        self.answered = 0
        self.problems: list[str] = []
        self._lock = threading.Lock()

    def note(self, problem: str | None) -> None:
        with self._lock:
            self.sent += 1
            if problem is None:
                self.answered += 1
            elif len(self.problems) < 20:  # enough to see the pattern in a failure message
                self.problems.append(problem)

    def send(self, client: httpx.Client, url: str, check: Check) -> None:
        """One request, noted as answered (`check` finds nothing wrong) or lost."""
        try:
            response = client.get(url)
        except httpx.HTTPError as e:
            self.note(f"GET {url}: no answer ({type(e).__name__}: {e})")
            return
        problem = check(response)
        self.note(None if problem is None else f"GET {url}: {problem}")

    @property
    def lost(self) -> int:
        return self.sent - self.answered

    def report(self, tally: Tally, kind: str) -> None:
        """Add this case to the session's figures; the case must then assert `lost == 0`."""
        tally.sent(self.sent)
        tally.answered(self.answered)
        tally.lost(self.lost)
        if self.lost == 0:
            tally.fault(kind)


def json_or_text(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text[:200]


def answers_json(expected: object, status: int = 200) -> Check:
    def check(response: httpx.Response) -> str | None:
        body = json_or_text(response)
        if (response.status_code, body) != (status, expected):
            return f"expected {status} {expected!r}, got {response.status_code} {body!r}"
        return None

    return check


def bad_gateway(reason: str) -> Check:
    """mitmproxy's own answer when the upstream fails: 502, the reason in the body, no response phase
    (a plugin's response-phase header, `X-Upstream-Status` in these tests, is absent)."""

    def check(response: httpx.Response) -> str | None:
        if response.status_code != 502 or reason not in response.text:
            return f"expected 502 with {reason!r}, got {response.status_code} {response.text[:300]!r}"
        if "X-Upstream-Status" in response.headers:
            return "the response phase ran on mitmproxy's 502"
        return None

    return check


class Traffic:
    """Good requests on other flows while a fault happens, from `workers` threads with a client each.

    Bounded whatever happens: each worker stops after `limit` requests, and `__exit__` waits 30 s at most.
    Workers pause `pause` seconds between requests, so the traffic leaves the (shared) CPU to the fault.
    """

    def __init__(
        self,
        url: str,
        check: Check,
        ledger: Ledger,
        *,
        workers: int = 2,
        limit: int = 1000,
        pause: float = 0.01,
    ) -> None:
        self.url = url
        self.check = check
        self.ledger = ledger
        self.limit = limit
        self.pause = pause
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"traffic-{i}") for i in range(workers)]

    def _work(self) -> None:
        with httpx.Client(trust_env=False, timeout=10) as client:
            for _ in range(self.limit):
                self.ledger.send(client, self.url, self.check)
                if self._stop.wait(self.pause):
                    return

    def wait_answered(self, count: int, timeout: float = 15.0) -> None:
        """Until the ledger holds `count` correct answers; TimeoutError (with the problems) otherwise."""
        deadline = time.monotonic() + timeout
        while self.ledger.answered < count:
            if time.monotonic() > deadline or not any(t.is_alive() for t in self._threads):
                raise TimeoutError(
                    f"{self.ledger.answered} of {count} good answers; problems: {self.ledger.problems}"
                )
            self._stop.wait(0.01)

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


# mitmproxy logs an exception that escaped a hook as "Addon error: ..." followed by a traceback.
UNHANDLED = re.compile(r"Addon error|Traceback \(most recent call last\)")
# Python 3.11's asyncio (fixed in 3.12) logs this when mitmdump stops while a client connection is open:
# the stream callback asks a cancelled connection task for its exception. Shutdown noise, not a flow's failure.
SHUTDOWN_NOISE = re.compile(
    r"^Exception in callback StreamReaderProtocol\.connection_made\.<locals>\.callback\(.*?"
    r"^asyncio\.exceptions\.CancelledError$",
    re.MULTILINE | re.DOTALL,
)


def unhandled_lines(proxy_output: str) -> list[str]:
    """The lines of a proxy's log that show an unhandled exception (a handled failure is one log line)."""
    return [line for line in SHUTDOWN_NOISE.sub("", proxy_output).splitlines() if UNHANDLED.search(line)]


def proxy_tasks(client: httpx.Client, proxy_url: str) -> int:
    """asyncio tasks running in the proxy, as `_probe_addon.py` (loaded with `-s`) counts them."""
    response = client.get(proxy_url + PROBE_PATH)
    response.raise_for_status()
    return int(json.loads(response.content)["tasks"])


def connections_to(port: int) -> int:
    """Open TCP connections to 127.0.0.1:`port` (TIME-WAIT is not open: both sides have closed)."""
    out = subprocess.run(
        ["ss", "-Htn", "state", "connected", "dst", f"127.0.0.1:{port}"],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout
    return sum(1 for line in out.splitlines() if line.strip() and not line.startswith("TIME-WAIT"))


def cache_graph(data_url: str, redis_port: int, *, bypass: bool, ttl: int = 60) -> dict[str, object]:
    """EX-07's shape on Redis: look the key up; on a hit answer the cached body (`X-Cache: hit`), on a miss
    call the data API, store its body and answer it (`X-Cache: miss`)."""
    on_error = "true" if bypass else "false"
    return yaml.safe_load(f"""
debug: true
resources:
  cache: {{strategy: redis, redis: {{port: {redis_port}, connect_timeout: 500}}}}
nodes:
- {{name: KEY, type: static, values: {{key: outage}}}}
- {{name: GET, type: cache, input: KEY, bypass_on_error: {on_error}}}
- {{name: BRANCH, type: branch, input: GET.miss, then: [DATA, SET, MISS], else: [HIT]}}
- {{name: DATA, type: call, url: "{data_url}"}}
- name: SET
  type: cache
  inputs: {{key: KEY.key, data: DATA.body}}
  ttl: {ttl}
  bypass_on_error: {on_error}
- {{name: HEADERS, type: static, values: {{miss: {{X-Cache: miss}}, hit: {{X-Cache: hit}}}}}}
- {{name: MISS, type: exit, inputs: {{body: DATA.body, headers: HEADERS.miss}}}}
- {{name: HIT, type: exit, inputs: {{body: GET.data, headers: HEADERS.hit}}}}
""")
