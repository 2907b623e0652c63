"""End-to-end test harness: real HTTP stand-in servers and a real `mitmdump` subprocess.

Everything binds to 127.0.0.1 on a port chosen by the kernel, so tests can run in parallel and never touch the
network. Every wait is bounded and polls a condition; nothing sleeps to "let things settle".

- `StubServer` is an aiohttp server on its own event loop in a background thread. It records every request and
  answers from routes registered per path (fixed responses, echo, delay, barrier, or a Python handler).
- `Proxy` is a running `mitmdump -s addon/datakit.py` in reverse mode, with its log captured by a reader thread.
- `run_mitmdump_expect_exit` starts mitmdump with a config that must be rejected and returns (returncode, output).
"""

from __future__ import annotations

import asyncio
import inspect
import json as jsonlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeAlias

import yaml
from aiohttp import web
from multidict import CIMultiDict

REPO_ROOT = Path(__file__).resolve().parents[2]
DATAKIT_SCRIPT = REPO_ROOT / "addon" / "datakit.py"
# Loaded next to the script under test; prints READY_MARKER once mitmdump's start-up error check has passed.
READY_ADDON = Path(__file__).resolve().with_name("_ready_addon.py")
READY_MARKER = "mitm-datakit-harness: ready"
# The venv that runs pytest also holds mitmdump.
MITMDUMP = Path(sys.executable).with_name("mitmdump")

LOOPBACK = "127.0.0.1"
_MISSING: Any = object()


# --------------------------------------------------------------------------------------------------------------
# StubServer
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StubRequest:
    """One request as the stub received it. Header names keep the casing that was sent on the wire."""

    method: str
    path: str  # decoded path, without the query string
    query_string: str  # raw, as sent
    query: dict[str, str | list[str]]  # repeated keys become lists
    header_list: list[tuple[str, str]]  # in wire order, original casing
    body: bytes
    http_version: str

    @property
    def headers(self) -> dict[str, str | list[str]]:
        """Headers as a dict with the casing of the first occurrence; repeated headers become lists."""
        return _group_pairs(self.header_list, fold_case=True)

    def header(self, name: str) -> str | None:
        """First value of a header, case-insensitively, or None."""
        lname = name.lower()
        return next((v for k, v in self.header_list if k.lower() == lname), None)

    def header_values(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.header_list if k.lower() == lname]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    def echo(self) -> dict[str, Any]:
        """The JSON document the echo endpoint answers with."""
        doc: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.text,
        }
        if self.body:
            try:
                doc["json"] = self.json()
            except ValueError:
                pass  # not JSON: "json" stays absent, so tests can tell "not JSON" from a JSON null
        return doc


def _group_pairs(pairs: Iterable[tuple[str, str]], *, fold_case: bool) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    first_key: dict[str, str] = {}
    for k, v in pairs:
        key = first_key.setdefault(k.lower() if fold_case else k, k)
        if key not in out:
            out[key] = v
        elif isinstance(prev := out[key], list):
            prev.append(v)
        else:
            out[key] = [prev, v]
    return out


@dataclass
class StubResponse:
    """What a route answers. Exactly one of `json`, `text`, `body` is normally given (`body` wins, then `text`)."""

    status: int = 200
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None
    json: Any = _MISSING
    text: str | None = None
    body: bytes | None = None
    delay: float = 0.0  # seconds to wait before answering (a "slow API")

    def to_web(self) -> web.Response:
        headers: CIMultiDict[str] = CIMultiDict(self.headers or {})
        if self.body is not None:
            payload = self.body
        elif self.text is not None:
            payload = self.text.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        elif self.json is not _MISSING:
            payload = jsonlib.dumps(self.json).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            payload = b""
        return web.Response(status=self.status, headers=headers, body=payload)


HandlerResult: TypeAlias = "StubResponse | tuple[int, Mapping[str, str] | None, Any] | dict[str, Any] | list[Any]"
Handler: TypeAlias = Callable[[StubRequest], "HandlerResult | Awaitable[HandlerResult]"]


def _coerce(result: Any) -> StubResponse:
    """Handlers may return a StubResponse, (status, headers, body) or a dict/list meaning a 200 JSON answer."""
    if isinstance(result, StubResponse):
        return result
    if isinstance(result, tuple):
        status, headers, body = result
        if body is None:
            return StubResponse(status, headers)
        if isinstance(body, bytes):
            return StubResponse(status, headers, body=body)
        if isinstance(body, str):
            return StubResponse(status, headers, text=body)
        return StubResponse(status, headers, json=body)
    if isinstance(result, (dict, list)):
        return StubResponse(json=result)
    raise TypeError(f"stub handler returned {type(result).__name__}; expected StubResponse, tuple, dict or list")


class Barrier:
    """Paths that each answer only once every one of them has been requested.

    Proves that requests run concurrently without timing assertions: if the proxy called the paths one after
    another, the first would wait `timeout` seconds and answer 504. One-shot: once released it stays open.
    """

    def __init__(self, paths: Sequence[str], timeout: float) -> None:
        self.paths = tuple(paths)
        self.timeout = timeout
        self._arrived: set[str] = set()
        self._event = asyncio.Event()  # binds to the server's loop on first wait; tests only read it

    @property
    def arrived(self) -> frozenset[str]:
        return frozenset(self._arrived)

    @property
    def released(self) -> bool:
        return self._event.is_set()

    async def wait(self, path: str) -> bool:
        self._arrived.add(path)
        if self._arrived.issuperset(self.paths):
            self._event.set()
        try:
            await asyncio.wait_for(self._event.wait(), self.timeout)
        except TimeoutError:
            return False
        return True


@dataclass
class _Route:
    response: StubResponse | None = None
    handler: Handler | None = None
    echo: bool = False
    barrier: Barrier | None = None


class StubServer:
    """A real HTTP/1.1 server on 127.0.0.1 with per-path behaviour, recording every request.

    Routes are keyed by (METHOD, path); method "*" matches any method, and a path ending in "*" matches by prefix.
    Unknown paths get an echo (`default_echo=True`, handy for an upstream) or a 404 JSON error.
    Routes may be changed while the server runs; they take effect for the next request.
    """

    def __init__(self, *, default_echo: bool = False, name: str = "stub") -> None:
        self.name = name
        self.default_echo = default_echo
        self._routes: dict[tuple[str, str], _Route] = {}
        self._requests: list[StubRequest] = []
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> Self:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=f"{self.name}-loop", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=10)
        except BaseException:
            self.stop()
            raise
        return self

    async def _serve(self) -> None:
        # client_max_size: tests send large bodies on purpose; aiohttp's 1 MiB default would answer 413.
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        # Bind the socket ourselves so the kernel-chosen port is known without private aiohttp attributes.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((LOOPBACK, 0))
            self.port = sock.getsockname()[1]
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            sock.close()
            raise

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # -- behaviour ---------------------------------------------------------------------------------------------

    def route(
        self,
        method: str,
        path: str,
        *,
        json: Any = _MISSING,
        text: str | None = None,
        body: bytes | None = None,
        status: int = 200,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        delay: float = 0.0,
        handler: Handler | None = None,
    ) -> None:
        """Answer `method path` with a fixed response, or with `handler(request)` (sync or async)."""
        response = None if handler else StubResponse(status, headers, json, text, body, delay)
        self._set_route(method, path, _Route(response=response, handler=handler))

    def echo(self, path: str, method: str = "*") -> None:
        """Answer with JSON describing the request (see StubRequest.echo)."""
        self._set_route(method, path, _Route(echo=True))

    def delay(self, path: str, seconds: float, *, method: str = "*", **response: Any) -> None:
        """A slow endpoint: waits `seconds`, then answers like `route(...)` (default: empty 200)."""
        self.route(method, path, delay=seconds, **response)

    def barrier(
        self, *paths: str, timeout: float = 5.0, responses: Mapping[str, Any] | None = None
    ) -> Barrier:
        """Make `paths` answer only once all of them have been requested; 504 after `timeout` seconds.

        Released paths answer 200 with `responses[path]` as JSON, default `{"path": path, "barrier": "released"}`.
        """
        if len(paths) < 2:
            raise ValueError("a barrier needs at least two paths")
        gate = Barrier(paths, timeout)
        for p in paths:
            doc = (responses or {}).get(p, {"path": p, "barrier": "released"})
            self._set_route("*", p, _Route(response=StubResponse(json=doc), barrier=gate))
        return gate

    def clear_routes(self) -> None:
        with self._cond:
            self._routes.clear()

    def _set_route(self, method: str, path: str, route: _Route) -> None:
        # Tests change routes from their own thread while the server loop reads them: guard with the lock.
        with self._cond:
            self._routes[(method.upper(), path)] = route

    # -- what was received -------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[StubRequest]:
        with self._cond:
            return list(self._requests)

    def requests_to(self, path: str, method: str | None = None) -> list[StubRequest]:
        return [r for r in self.requests if r.path == path and (method is None or r.method == method.upper())]

    def clear_requests(self) -> None:
        with self._cond:
            self._requests.clear()

    def wait_for_requests(self, count: int, path: str | None = None, timeout: float = 5.0) -> list[StubRequest]:
        """Block until at least `count` requests (to `path`, if given) arrived; raise TimeoutError otherwise."""

        def matching() -> list[StubRequest]:
            return [r for r in self._requests if path is None or r.path == path]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= count, timeout):
                raise TimeoutError(f"{self.name}: {len(matching())} of {count} requests to {path or '*'} arrived")
            return matching()

    # -- request handling (server loop) ------------------------------------------------------------------------

    def _find_route(self, method: str, path: str) -> _Route | None:
        with self._cond:
            routes = dict(self._routes)
        for key in ((method, path), ("*", path)):
            if key in routes:
                return routes[key]
        # Longest prefix wins, so "/api/*" can be refined by "/api/v2/*".
        prefixes = [(p, r) for (m, p), r in routes.items() if p.endswith("*") and m in (method, "*")]
        for p, r in sorted(prefixes, key=lambda pr: -len(pr[0])):
            if path.startswith(p[:-1]):
                return r
        return None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        recorded = StubRequest(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            query=_group_pairs(request.query.items(), fold_case=False),
            header_list=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
            body=await request.read(),
            http_version=f"{request.version.major}.{request.version.minor}",
        )
        with self._cond:
            self._requests.append(recorded)
            self._cond.notify_all()

        route = self._find_route(request.method, request.path)
        if route is None:
            if self.default_echo:
                return web.json_response(recorded.echo())
            return web.json_response({"error": "no stub route", "method": request.method, "path": request.path},
                                     status=404)
        if route.barrier is not None and not await route.barrier.wait(request.path):
            return web.json_response({"error": "barrier timeout", "path": request.path,
                                      "arrived": sorted(route.barrier.arrived)}, status=504)
        if route.echo:
            return web.json_response(recorded.echo())
        if route.handler is not None:
            result = route.handler(recorded)
            response = _coerce(await result if inspect.isawaitable(result) else result)
        else:
            assert route.response is not None
            response = route.response
        if response.delay:
            await asyncio.sleep(response.delay)
        return response.to_web()


# --------------------------------------------------------------------------------------------------------------
# mitmdump
# --------------------------------------------------------------------------------------------------------------

_LISTENING = re.compile(r"listening at (?:\S+:)?(\d+)\.?\s*$")
Config: TypeAlias = "Mapping[str, Any] | str | Path | None"


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released): connecting to it is refused, and a server
    told to listen there (mitmweb's web UI, whose log does not say which port `0` became) gets it, unless
    another process takes it in between."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def write_config(config: Config, directory: Path, stem: str = "datakit") -> Path | None:
    """dict -> YAML file, str -> file with that exact text, Path -> used as is, None -> no config."""
    if config is None or isinstance(config, Path):
        return config
    directory.mkdir(parents=True, exist_ok=True)
    n = 0
    while (path := directory / f"{stem}-{n}.yaml").exists():
        n += 1
    text = config if isinstance(config, str) else yaml.safe_dump(dict(config), sort_keys=False)
    path.write_text(text)
    return path


def _subprocess_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}  # keep loopback traffic direct
    env["PYTHONUNBUFFERED"] = "1"  # the reader thread must see log lines as they are written
    env.update(extra or {})
    return env


def mitmdump_command(
    config_path: Path | None,
    *,
    mode: str,
    script: Path,
    confdir: Path | None,
    listen_port: int = 0,
    extra_args: Sequence[str] = (),
) -> list[str]:
    cmd = [str(MITMDUMP), "-s", str(script), "-s", str(READY_ADDON),
           "--mode", mode, "--listen-host", LOOPBACK, "--listen-port", str(listen_port),
           # flow_detail=0 drops per-flow lines but keeps warnings and errors, which tests grep for.
           "--set", "flow_detail=0"]
    if config_path is not None:
        cmd += ["--set", f"datakit_config={config_path}"]
    if confdir is not None:
        # A shared confdir means the CA is generated once per session, not once per test, and not in $HOME.
        cmd += ["--set", f"confdir={confdir}"]
    return cmd + list(extra_args)


class _OutputReader:
    """Collects a subprocess's merged stdout/stderr in a thread, so the pipe never fills and blocks mitmdump."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._proc = proc
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._run, name="mitmdump-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def text(self) -> str:
        with self._cond:
            return "".join(self._lines)

    def wait_for(self, predicate: Callable[[str, bool], bool], timeout: float) -> bool:
        """Wait until predicate(output, eof) holds; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate("".join(self._lines), self._done), timeout)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


class MitmdumpError(RuntimeError):
    """mitmdump did not come up; the message carries its output."""


def _spawn(cmd: Sequence[str], env: Mapping[str, str] | None) -> tuple[subprocess.Popen[str], _OutputReader]:
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=_subprocess_env(env), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
    )
    return proc, _OutputReader(proc)


def _terminate(proc: subprocess.Popen[str], reader: _OutputReader, timeout: float = 5.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    reader.join(timeout)
    return proc.returncode


class Proxy:
    """A running mitmdump. Start with `Proxy.start(...)` (or the `mitmdump` fixture); always `stop()` it."""

    def __init__(self, proc: subprocess.Popen[str], reader: _OutputReader, config_path: Path | None) -> None:
        self._proc = proc
        self._reader = reader
        self.config_path = config_path
        self.ports: list[int] = []  # one per listener, in log order; `port` is the first

    @classmethod
    def start(
        cls,
        config: Config,
        *,
        upstream: str,
        tmp_dir: Path,
        extra_args: Sequence[str] = (),
        mode: str | None = None,
        script: Path = DATAKIT_SCRIPT,
        confdir: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 15.0,
    ) -> Proxy:
        config_path = write_config(config, tmp_dir)
        cmd = mitmdump_command(config_path, mode=mode or f"reverse:{upstream}", script=script,
                               confdir=confdir, extra_args=extra_args)
        proxy = cls(*_spawn(cmd, env), config_path)
        proxy._wait_ready(timeout)
        return proxy

    def _wait_ready(self, timeout: float) -> None:
        # mitmdump logs "listening at" *before* its start-up error check (which may still exit with rc=1), so
        # wait for the marker our ready addon prints after that check, or for the process to end.
        ready = self._reader.wait_for(lambda out, eof: READY_MARKER in out or eof, timeout)
        out = self.output()
        if not ready or READY_MARKER not in out:
            rc = _terminate(self._proc, self._reader)
            why = f"exited with rc={rc}" if ready else f"was not ready after {timeout:.0f}s"
            raise MitmdumpError(f"mitmdump {why}:\n{self.output()}")
        self.ports = [int(m.group(1)) for m in map(_LISTENING.search, out.splitlines()) if m]
        if not self.ports:
            self.stop()
            raise MitmdumpError(f"mitmdump is ready but logged no 'listening at' line:\n{out}")

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def output(self) -> str:
        """mitmdump's log (stdout and stderr merged) so far."""
        return self._reader.text()

    def wait_for_output(self, pattern: str | re.Pattern[str], timeout: float = 5.0) -> re.Match[str]:
        """Block until the log matches `pattern` (regex); raise TimeoutError with the log otherwise."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        if not self._reader.wait_for(lambda out, eof: bool(rx.search(out)) or eof, timeout) or not (
            m := rx.search(self.output())
        ):
            raise TimeoutError(f"mitmdump log never matched {rx.pattern!r}:\n{self.output()}")
        return m

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code. Safe to call twice."""
        return _terminate(self._proc, self._reader, timeout)


def run_mitmdump_expect_exit(
    config: Config,
    timeout: float = 15.0,
    *,
    tmp_dir: Path,
    upstream: str = "http://127.0.0.1:1",
    extra_args: Sequence[str] = (),
    script: Path = DATAKIT_SCRIPT,
    confdir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """Start mitmdump with a config that must be rejected; return (returncode, output) once it exits.

    Raises MitmdumpError (with the output) if it is still running after `timeout` seconds.
    """
    cmd = mitmdump_command(write_config(config, tmp_dir), mode=f"reverse:{upstream}", script=script,
                           confdir=confdir, extra_args=extra_args)
    proc, reader = _spawn(cmd, env)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _terminate(proc, reader)
        raise MitmdumpError(f"mitmdump still running after {timeout:.0f}s; expected it to exit:\n{reader.text()}")
    reader.join(timeout)
    return proc.returncode, reader.text()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll `predicate` until true; raise TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


__all__ = [
    "DATAKIT_SCRIPT", "REPO_ROOT", "Barrier", "MitmdumpError", "Proxy", "StubRequest", "StubResponse",
    "StubServer", "run_mitmdump_expect_exit", "wait_until", "write_config",
]
