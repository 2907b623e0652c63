"""The fault suite's mix (issue 8) for minutes instead of seconds: one real mitmdump under steady traffic
while third-party APIs and upstreams misbehave, clients vanish mid-call, the config is rewritten and Redis
goes away and comes back. Loopback only; bounded by --duration and --requests.

    .venv/bin/python scripts/soak.py --duration 600 --requests 200000

Every request is checked against the answer docs/reliability.md documents for its fault; at the end the
proxy's asyncio tasks and its connections to the APIs must be back at their baseline, and its log must hold
no "Addon error" or traceback. Prints the same counters as the test suite's reliability summary and exits
non-zero when a request was lost or something was left behind.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "e2e"), str(REPO / "tests")]

import faults  # noqa: E402
from faults import (  # noqa: E402
    PROBE_ADDON,
    Check,
    FaultServer,
    Ledger,
    bad_gateway,
    cache_graph,
    connections_to,
    json_or_text,
    proxy_tasks,
    unhandled_lines,
)
from harness import Proxy, StubServer, free_port, wait_until  # noqa: E402

MAX_BODY = 1000
FRESH = {"fresh": "data"}
GOOD_FLOWS = "none (good flows meanwhile)"


@dataclass(frozen=True)
class ThirdParty:
    """A route whose plugin calls a misbehaving API: the flow fails with Kong's 500 naming the node."""

    behaviour: faults.Behaviour
    timeout_ms: int
    error: str  # regex of the error the 500 carries


THIRD_PARTY = {
    "timeout": ThirdParty(faults.hang(5), 300, r"timeout calling 127\.0\.0\.1:\d+"),
    "reset": ThirdParty(
        faults.reset, 2000, r"request to 127\.0\.0\.1:\d+ failed: .*Connection reset by peer"
    ),
    "close-mid-body": ThirdParty(
        faults.close_mid_body, 2000, r"connection to 127\.0\.0\.1:\d+ closed before the response was complete"
    ),
    "drip": ThirdParty(faults.drip(0.05, chunks=20), 300, r"timeout calling 127\.0\.0\.1:\d+"),
    "invalid-json": ThirdParty(
        faults.fixed(200, "application/json", b'{"broken": '), 2000, r"invalid JSON body: .*\(status 200\)"
    ),
    "too-large": ThirdParty(
        faults.fixed(200, "text/plain", b"y" * (MAX_BODY * 5)),
        2000,
        rf"response body of {MAX_BODY * 5} bytes exceeds the limit of {MAX_BODY}",
    ),
}


# Upstream faults and the reason in mitmproxy's 502 ("slow" is not a fault of the answer: it comes late).
UPSTREAM = {
    "reset": (faults.reset, "server closed connection"),
    "close-mid-body": (faults.close_mid_body, "peer closed connection without sending complete message body"),
    "not-http": (faults.not_http, "Bad HTTP response line"),
}


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.ledgers: dict[str, Ledger] = {}
        self.disconnects = 0
        self.version = 1
        self.versions_written = {1}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.servers: list[FaultServer] = []
        self.stubs: list[StubServer] = []
        self.redis: Any = None
        self.proxy: Proxy | None = None

    # -- set-up ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.good = self._stub("good")
        self.good.route("GET", "/ok", json={"ok": True})
        self.good.route("GET", "/data", json=FRESH)
        self.upstream = self._stub("upstream", echo=True)
        self.slow = self._stub("slow")
        self.slow.delay("/*", 0.5, json={"slow": True})
        self.api = {kind: self._fault(case.behaviour) for kind, case in THIRD_PARTY.items()}
        self.held = self._fault(faults.hang(20))  # what vanishing clients were waiting on
        self.bad_upstreams = {kind: self._fault(behaviour) for kind, (behaviour, _) in UPSTREAM.items()}
        self.dead_port = free_port()
        if self.args.redis:
            from unit.redis_server import RedisServer

            (self.workdir / "redis").mkdir()
            self.redis = RedisServer(self.workdir / "redis").start()
        self.proxy = Proxy.start(
            self.config(), upstream="http://127.0.0.1:1", tmp_dir=self.workdir,
            extra_args=["-s", str(PROBE_ADDON), "--set", f"datakit_max_body={MAX_BODY}"],
        )

    def _stub(self, name: str, *, echo: bool = False) -> StubServer:
        self.stubs.append(StubServer(default_echo=echo, name=name).start())
        return self.stubs[-1]

    def _fault(self, behaviour: faults.Behaviour) -> FaultServer:
        self.servers.append(FaultServer(behaviour).start())
        return self.servers[-1]

    def config(self) -> dict[str, Any]:
        def route(name: str, url: str, plugin: dict[str, Any] | None = None) -> dict[str, Any]:
            entry: dict[str, Any] = {"name": name, "paths": [f"/{name}"]}
            if plugin is not None:
                entry["plugins"] = [{"name": "datakit", "config": plugin}]
            return {"name": name, "url": url, "routes": [entry]}

        def caller(url: str, timeout_ms: int) -> dict[str, Any]:
            return {"debug": True, "nodes": [
                {"name": "API", "type": "call", "url": url, "timeout": timeout_ms},
                {"name": "EXIT", "type": "exit", "inputs": {"body": "API.body"}},
            ]}

        good = {"nodes": [
            {"name": "V", "type": "static", "values": {"version": self.version}},
            {"name": "API", "type": "call", "url": f"{self.good.url}/ok"},
            {"name": "BODY", "type": "jq", "inputs": {"api": "API.body", "v": "V.version"},
             "jq": "{ok: .api.ok, version: .v}"},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "BODY"}},
        ]}
        services = [
            route("good", self.upstream.url, good),
            route("held", self.upstream.url, caller(f"{self.held.url}/x", 30000)),
        ]
        services += [
            route(f"api-{kind}", self.upstream.url, caller(f"{self.api[kind].url}/x", case.timeout_ms))
            for kind, case in THIRD_PARTY.items()
        ]
        services += [route(f"up-{kind}", server.url) for kind, server in self.bad_upstreams.items()]
        services += [route("up-down", f"http://127.0.0.1:{self.dead_port}"), route("up-slow", self.slow.url)]
        if self.redis is not None:
            graph = cache_graph(f"{self.good.url}/data", self.redis.port, bypass=True, ttl=5)
            services.append(route("cached", self.upstream.url, graph))
        return {"_format_version": "3.0", "services": services}

    # -- the mix -----------------------------------------------------------------------------------------
    def cases(self) -> list[tuple[str, str, Check, int]]:
        """(fault kind, path, check, weight): good flows are about half of the traffic."""
        table: list[tuple[str, str, Check, int]] = [(GOOD_FLOWS, "/good", self.good_answer, 20)]
        table += [(f"third-party API: {kind}", f"/api-{kind}", failed_call(case.error), 2)
                  for kind, case in THIRD_PARTY.items()]
        table += [
            (f"upstream: {kind}", f"/up-{kind}", bad_gateway(reason), 2)
            for kind, (_, reason) in UPSTREAM.items()
        ]
        table += [("upstream: down", "/up-down", bad_gateway("[Errno 111] Connect call failed"), 2),
                  ("upstream: slow", "/up-slow", slow_answer, 2)]
        if self.redis is not None:
            table.append(("Redis away and back (bypass_on_error)", "/cached", cache_answer, 4))
        return table

    def good_answer(self, response: httpx.Response) -> str | None:
        body = json_or_text(response)
        with self._lock:
            written = set(self.versions_written)
        if not isinstance(body, dict) or response.status_code != 200:
            return f"expected 200, got {response.status_code} {body!r}"
        if body.get("ok") is True and body.get("version") in written:
            return None
        return f"expected 200 ok from a written version, got {response.status_code} {body!r}"

    def worker(self, seed: int, deadline: float) -> None:
        rng = random.Random(seed)
        table = self.cases()
        weights = [weight for *_, weight in table]
        assert self.proxy is not None
        with httpx.Client(trust_env=False, timeout=30) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                if self.total_sent() >= self.args.requests:
                    return
                if rng.random() < 0.02:
                    self.vanish()
                    continue
                kind, path, check, _ = rng.choices(table, weights)[0]
                with self._lock:
                    ledger = self.ledgers.setdefault(kind, Ledger())
                ledger.send(client, self.proxy.url + path, check)

    def vanish(self) -> None:
        """A client that sends a request whose call hangs, then goes away before the answer."""
        assert self.proxy is not None
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5) as sock:
            sock.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
            self._stop.wait(0.1)
        with self._lock:
            self.disconnects += 1

    def total_sent(self) -> int:
        with self._lock:
            return sum(ledger.sent for ledger in self.ledgers.values())

    def chaos(self, deadline: float) -> None:
        """Every --reload-every seconds a new config version; every --redis-every seconds a Redis outage."""
        next_reload = time.monotonic() + self.args.reload_every
        next_outage = time.monotonic() + self.args.redis_every
        assert self.proxy is not None and self.proxy.config_path is not None
        while not self._stop.wait(0.2) and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_reload:
                with self._lock:
                    self.version += 1
                    self.versions_written.add(self.version)
                write_atomically(self.proxy.config_path, self.config())
                next_reload = now + self.args.reload_every
            if self.redis is not None and now >= next_outage:
                self.redis.stop()
                self._stop.wait(2)
                self.redis.start()
                next_outage = time.monotonic() + self.args.redis_every

    def run(self) -> int:
        self.start()
        assert self.proxy is not None
        with httpx.Client(trust_env=False, timeout=10) as probe:
            probe.get(self.proxy.url + "/good")  # warm: the call client and its pool exist
            baseline = proxy_tasks(probe, self.proxy.url)
        deadline = time.monotonic() + self.args.duration
        threads = [threading.Thread(target=self.worker, args=(self.args.seed + i, deadline))
                   for i in range(self.args.concurrency)]
        threads.append(threading.Thread(target=self.chaos, args=(deadline,)))
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join(self.args.duration + 120)
        except KeyboardInterrupt:
            self._stop.set()
            for thread in threads:
                thread.join(60)
        return self.report(baseline)

    def report(self, baseline: int) -> int:
        assert self.proxy is not None
        leftovers: list[str] = []
        held = [self.held, *self.api.values(), *self.bad_upstreams.values()]
        try:
            wait_until(lambda: all(connections_to(s.port) == 0 for s in held), timeout=30, interval=0.2)
        except TimeoutError:
            leftovers.append("connections: " + ", ".join(f"{s.port}={connections_to(s.port)}" for s in held))

        def tasks() -> int:
            with httpx.Client(trust_env=False, timeout=10) as probe:
                return proxy_tasks(probe, self.proxy.url)  # type: ignore[union-attr]

        try:
            wait_until(lambda: tasks() == baseline, timeout=30, interval=0.5)
        except TimeoutError:
            leftovers.append(f"asyncio tasks: {tasks()}, baseline {baseline}")
        self.stop()
        unhandled = unhandled_lines(self.proxy.output())

        sent = sum(ledger.sent for ledger in self.ledgers.values())
        answered = sum(ledger.answered for ledger in self.ledgers.values())
        survived = [kind for kind, ledger in self.ledgers.items() if kind != GOOD_FLOWS and ledger.lost == 0]
        if self.disconnects and not leftovers:
            survived.append("client disconnects while calls are in flight")
        if self.version > 1:
            survived.append(f"{self.version - 1} reloads under load")
        figures = {"requests_answered_correctly": answered, "requests_lost": sent - answered,
                   "requests_sent_under_faults": sent, "fault_kinds_survived": sorted(survived)}
        print("\n".join(f"{kind}: sent {ledger.sent}, answered {ledger.answered}, lost {ledger.lost}"
                        for kind, ledger in sorted(self.ledgers.items())))
        print(f"clients that vanished mid-call: {self.disconnects}; config versions: {self.version}")
        for kind, ledger in sorted(self.ledgers.items()):
            for problem in ledger.problems[:3]:
                print(f"LOST ({kind}): {problem}")
        for line in leftovers:
            print(f"LEFT BEHIND: {line}")
        for line in unhandled[:10]:
            print(f"UNHANDLED: {line}")
        print("===== reliability =====")
        for key, value in figures.items():
            print(f"{key}: {value}")
        ok = sent - answered == 0 and not leftovers and not unhandled
        return 0 if ok else 1

    def stop(self) -> None:
        """Stop everything that was started; safe to call twice."""
        if self.proxy is not None:
            self.proxy.stop()
        servers, self.servers = self.servers, []
        for server in servers:
            server.stop()
        stubs, self.stubs = self.stubs, []
        for stub in stubs:
            stub.stop()
        if self.redis is not None:
            self.redis.stop()


def failed_call(error: str) -> Check:
    def check(response: httpx.Response) -> str | None:
        body = json_or_text(response)
        if not isinstance(body, dict) or response.status_code != 500:
            return f"expected 500, got {response.status_code} {body!r}"
        if body.get("node", {}).get("name") == "API" and re.fullmatch(error, body.get("error", "")):
            return None
        return f"expected 500 from API matching {error!r}, got {response.status_code} {body!r}"

    return check


def slow_answer(response: httpx.Response) -> str | None:
    body = json_or_text(response)
    if (response.status_code, body) == (200, {"slow": True}):
        return None
    return f"expected 200 slow, got {response.status_code} {body!r}"


def cache_answer(response: httpx.Response) -> str | None:
    seen = (response.status_code, response.headers.get("X-Cache"), json_or_text(response))
    return None if seen[0] == 200 and seen[1] in ("hit", "miss") and seen[2] == FRESH else f"got {seen}"


def write_atomically(path: Path, document: dict[str, Any]) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(document, indent=1))  # JSON is YAML
    temp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of traffic (default 300)")
    parser.add_argument("--requests", type=int, default=100_000, help="stop after this many requests")
    parser.add_argument("--concurrency", type=int, default=16, help="clients sending at once (default 16)")
    parser.add_argument("--reload-every", type=float, default=20.0, help="seconds between config rewrites")
    parser.add_argument(
        "--redis-every", type=float, default=15.0, help="seconds between Redis outages of 2 s"
    )
    parser.add_argument("--no-redis", dest="redis", action="store_false", help="leave the cache node out")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.redis and shutil.which("redis-server") is None:
        print("redis-server not found: running without the cache node (--no-redis)", file=sys.stderr)
        args.redis = False
    with tempfile.TemporaryDirectory(prefix="datakit-soak-") as workdir:
        soak = Soak(args, Path(workdir))
        try:
            return soak.run()
        finally:
            soak.stop()


if __name__ == "__main__":
    sys.exit(main())
