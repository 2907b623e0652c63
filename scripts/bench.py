#!/usr/bin/env python3
"""Benchmark: what Datakit costs on top of mitmproxy, side by side with hand-written addons (issue 7).

    .venv/bin/python scripts/bench.py                      # the full matrix, ~20 minutes
    .venv/bin/python scripts/bench.py --quick              # smoke form: a few seconds per point, few variants
    .venv/bin/python scripts/bench.py --only bare,dk_pass --json out.json
    .venv/bin/python scripts/bench.py --soak               # RSS after 10,000 vs 100,000 requests
    .venv/bin/python scripts/bench.py --profile DIR        # py-spy stacks of each variant at 16 connections
    .venv/bin/python scripts/bench.py --addon-dir DIR      # measure another copy of the engine (a change)
    .venv/bin/python scripts/bench.py --list               # the variants

Everything runs on 127.0.0.1 and is started and stopped by this script: nginx as the upstream (one worker,
`return 200` with a 245-byte JSON body), a stand-in third-party API that answers after 50 ms
(`bench/slow_api.py`), and one proxy per variant (mitmdump, or the lean `datakit serve` server), all up for the
whole run. The proxies are pinned to CPU 0, everything else to CPU 1 (shared/perf-baseline.md). For each
concurrency (1, 16, 64), wrk (1 thread) visits the variants in turn, `--rounds` times: each segment is a warm-up,
then a measurement bounded in time (-d) and in responses (`bench/wrk_capped.lua`). A point takes req/s and CPU
from its best segment and latencies from its median one (see `summarize`). The proxy's CPU comes from /proc/PID/stat over the measured window, RSS from /proc/PID/status before
the first and after the last segment, and the CPU other processes took on the proxy's core from /proc/stat.
Each variant's answer is checked before anything is measured, so a fast wrong answer cannot win.
Needs nginx and wrk (Debian: `apt-get install nginx wrk`), and py-spy for --profile.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "scripts" / "bench"
sys.path.insert(0, str(BENCH))
import bench_workloads as wl  # noqa: E402  (lives next to the reference addons, which import it too)

VENV_BIN = Path(sys.executable).parent
MITMDUMP = VENV_BIN / "mitmdump"
LOOPBACK = "127.0.0.1"
PROXY_CPU = "0"  # the proxy alone on one core; load generator, nginx and the API stand-in on the other
LOAD_CPU = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# A bound on the responses per point, far above anything a single-core proxy does (~1,000-2,000/s here), so a
# variant that fails fast cannot run away; the time bound (-d) is what ends a point. (A wrk that reached its cap
# stops sending but exits only when -d is over, so a capped point would understate req/s: measure() refuses it.)
CAP_PER_SECOND = 20_000
MIB = 1024
# Soak: wrk slices of this many seconds, and a bound on the whole soak of one variant.
SOAK_SLICE = 5.0
SOAK_LIMIT = 1800
# Between points, the box counts as quiet when all CPUs together ran tasks for less than this per second.
QUIET_CPU_SECONDS = 0.1


# --------------------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------------------


class Service:
    """A child process in its own process group, stopped (group and all) when the benchmark leaves."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None,
                 stdout_pipe: bool = False) -> None:
        self.name = name
        self.log = log
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if stdout_pipe else self._log_file,
            stderr=self._log_file, env=env, start_new_session=True, cwd=REPO,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def read_line(self, timeout: float) -> str:
        """One line of a piped stdout, or '' after `timeout` seconds."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().decode() if ready else ""

    def log_tail(self, lines: int = 30) -> str:
        self._log_file.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log_file.close()


@contextlib.contextmanager
def service(*args: Any, **kwargs: Any) -> Iterator[Service]:
    started = Service(*args, **kwargs)
    try:
        yield started
    finally:
        started.stop()


def pinned(cpu: str, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *cmd]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def child_env(addon_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}  # loopback stays direct
    # First on the path, ahead of the venv's editable install: the engine under test is addon_dir's.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(addon_dir), env.get("PYTHONPATH")]))
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime: fields 14 and 15 of the whole line


def core_task_seconds(cpu: str) -> float:
    """Time one CPU ("0", "1") or all of them ("") spent running tasks (user, nice, system), from /proc/stat.

    Interrupt and softirq time are left out: loopback networking runs there, and it is our own traffic.
    """
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            user, nice, system = (int(x) for x in line.split()[1:4])
            return (user + nice + system) / CLK_TCK
    raise RuntimeError(f"no cpu{cpu} in /proc/stat")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch(url: str, timeout: float = 5.0) -> Response:
    request = urllib.request.Request(url, headers=dict([wl.CLIENT_HEADER]))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as r:
            return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


# --------------------------------------------------------------------------------------------------------------
# The fixed parts: nginx and the third-party stand-in
# --------------------------------------------------------------------------------------------------------------

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen {host}:{port};
        location / {{
            default_type application/json;
            # Echo the header the transform writes, so a check can see what the upstream received.
            add_header {seen} $http_x_bench_client always;
            return 200 '{body}';
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx(workdir: Path) -> Iterator[tuple[str, int]]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, host=LOOPBACK, port=port, seen=wl.SEEN_HEADER,
                                      body=wl.UPSTREAM_BODY.decode()))
    cmd = pinned(LOAD_CPU, [binary, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "nginx-error.log")])
    with service("nginx", cmd, workdir / "nginx.log") as srv:
        url = f"http://{LOOPBACK}:{port}"
        wait_ready(srv, lambda: fetch(url + "/").body == wl.UPSTREAM_BODY, 10)
        yield url, srv.pid


@contextlib.contextmanager
def slow_api(workdir: Path) -> Iterator[tuple[str, int]]:
    cmd = pinned(LOAD_CPU, [sys.executable, str(BENCH / "slow_api.py"), "--latency-ms", str(wl.API_LATENCY_MS)])
    with service("slow_api", cmd, workdir / "slow_api.log", stdout_pipe=True) as srv:
        line = srv.read_line(10)
        if not line.startswith("listening "):
            raise RuntimeError(f"the API stand-in did not start:\n{srv.log_tail()}")
        yield f"http://{LOOPBACK}:{int(line.split()[1])}", srv.pid


def wait_ready(srv: Service, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not srv.alive():
            raise RuntimeError(f"{srv.name} exited with rc={srv.proc.returncode}:\n{srv.log_tail()}")
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{srv.name} not ready after {timeout:.0f}s:\n{srv.log_tail()}")


# --------------------------------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Env:
    upstream: str
    api: str
    workdir: Path
    addon_dir: Path  # holds datakit.py and mitm_datakit/: the checkout's, or a scratch copy to compare
    helper_pids: tuple[int, ...]  # nginx and the API stand-in: their CPU is ours, not the neighbours'


Check = Callable[[Response], "str | None"]


def expect_upstream(r: Response) -> str | None:
    if r.status != 200 or r.body != wl.UPSTREAM_BODY:
        return f"expected nginx's body unchanged, got {r.status} {r.body[:200]!r}"
    return None


def expect_json(value: Any, *, transformed_request: bool = False) -> Check:
    def check(r: Response) -> str | None:
        try:
            got = json.loads(r.body)
        except ValueError:
            got = None
        if r.status != 200 or got != value:
            return f"expected 200 {value!r}, got {r.status} {r.body[:300]!r}"
        if transformed_request and r.headers.get(wl.SEEN_HEADER.lower()) != wl.CLIENT_HEADER[1]:
            return f"the upstream did not receive X-Bench-Client (headers {r.headers})"
        return None

    return check


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    check: Check
    server: str = "mitmdump"  # "mitmdump" or "lean" (python -m mitm_datakit.proxy.lean)
    script: Path | None = None  # a reference addon (mitmdump -s)
    config: Callable[[Env], dict[str, Any]] | None = None  # a Datakit config: runs the Datakit addon
    options: Callable[[Env], list[str]] = lambda env: []
    concurrencies: tuple[int, ...] = (1, 16, 64)
    needs_api: bool = False
    quick: bool = False  # part of the default --quick selection


def _datakit(name: str, what: str, config: Callable[[Env], dict[str, Any]], check: Check, **kw: Any) -> Variant:
    return Variant(name, what, check, config=config, **kw)


def _fanout(calls: int) -> list[Variant]:
    check = expect_json(wl.expected_fanout(calls))
    what = f"{calls} concurrent calls (50 ms API) -> jq -> exit"
    return [
        Variant(f"ref_fan{calls}", f"reference: {what}", check, script=BENCH / "ref_fanout.py", needs_api=True,
                options=lambda env: ["--set", f"bench_api={env.api}", "--set", f"bench_calls={calls}"]),
        _datakit(f"dk_fan{calls}", f"Datakit: {what}", lambda env: wl.fanout_config(env.api, calls), check,
                 needs_api=True, quick=calls == 2),
    ]


def _chain(nodes: int, concurrencies: tuple[int, ...]) -> list[Variant]:
    check = expect_json(wl.expected_chain(nodes))
    what = f"{nodes}-node chain: static -> {nodes - 2} x jq -> exit"
    return [
        Variant(f"ref_chain{nodes}", f"reference: {what}", check, script=BENCH / "ref_chain.py",
                options=lambda env: ["--set", f"bench_chain={nodes}"], concurrencies=concurrencies),
        _datakit(f"dk_chain{nodes}", f"Datakit: {what}", lambda env: wl.chain_config(nodes), check,
                 concurrencies=concurrencies),
    ]


PAIR_CONCURRENCIES = (16, 64)  # where both proxies are CPU-bound, so CPU per request is capacity
TRANSFORMED = expect_json(wl.EXPECTED_TRANSFORM, transformed_request=True)
MOCKED = expect_json(wl.EXPECTED_MOCK)
VARIANTS: list[Variant] = [
    Variant("bare", "mitmdump, no addon", expect_upstream, quick=True),
    Variant("noop", "mitmdump + `def request(flow): pass`", expect_upstream, script=BENCH / "noop.py", quick=True),
    _datakit("dk_pass", "Datakit, config with nothing to do for the flow", lambda env: wl.passthrough_config(),
             expect_upstream, quick=True),
    _datakit("dk_unrouted", "Datakit, declarative file: the flow's route has no datakit plugin",
             lambda env: wl.unrouted_plugin_config(env.upstream), expect_upstream),
    Variant("lean_pass", "datakit serve (lean master), same passthrough config", expect_upstream, server="lean",
            config=lambda env: wl.passthrough_config(), quick=True),
    Variant("ref_transform", "reference: request->jq->headers, response->jq->body", TRANSFORMED,
            script=BENCH / "ref_transform.py", quick=True),
    _datakit("dk_transform", "Datakit: request->jq->service_request.headers, service_response->jq->response.body",
             lambda env: wl.transform_config(), TRANSFORMED, quick=True),
    # The reference against itself in a second proxy (A/A): how far apart a pair's two sides read when nothing differs.
    Variant("ref_transform_twin", "the transform reference again, in a proxy of its own (A/A)", TRANSFORMED,
            script=BENCH / "ref_transform.py", concurrencies=PAIR_CONCURRENCIES),
    # The node record (flow.metadata["datakit"], the datakit view) is on by default; this is its price (issue 6).
    _datakit("dk_transform_norec", "Datakit: the transform graph with datakit_record=false",
             lambda env: wl.transform_config(), TRANSFORMED, options=lambda env: ["--set", "datakit_record=false"]),
    # datakit_gc_freeze (our extension, on by default) against off: the measurement behind the default (decisions.md).
    _datakit("dk_transform_nofreeze", "Datakit: the transform graph with datakit_gc_freeze=false",
             lambda env: wl.transform_config(), TRANSFORMED, options=lambda env: ["--set", "datakit_gc_freeze=false"]),
    Variant("lean_transform", "datakit serve, same transform graph", TRANSFORMED, server="lean",
            config=lambda env: wl.transform_config()),
    Variant("ref_mock", "reference: handlebars render -> answer", MOCKED, script=BENCH / "ref_mock.py", quick=True),
    _datakit("dk_mock", "Datakit: static -> handlebars -> exit", lambda env: wl.mock_config(), MOCKED, quick=True),
    *_fanout(1),
    *_fanout(2),
    *_fanout(4),
    # Per-node cost comes from the slope between chain lengths; throughput-bound points (16) are enough there.
    *_chain(10, (16,)),
    *_chain(25, (16,)),
    *_chain(50, (1, 16, 64)),
]
BY_NAME = {v.name: v for v in VARIANTS}


def proxy_command(variant: Variant, env: Env, port: int) -> list[str]:
    common = ["--mode", f"reverse:{env.upstream}", "--listen-host", LOOPBACK, "--listen-port", str(port),
              "--set", f"confdir={env.workdir / 'confdir'}", "-q"]
    config_args: list[str] = []
    if variant.config is not None:
        path = env.workdir / f"{variant.name}.yaml"
        path.write_text(yaml.safe_dump(variant.config(env), sort_keys=False))
        config_args = ["--set", f"datakit_config={path}"]
    if variant.server == "lean":
        cmd = [sys.executable, "-m", "mitm_datakit.proxy.lean", *common, *config_args]
    else:
        # -q and flow_detail=0, as the baseline: per-flow log lines cost 3-5 % and are not what we measure.
        cmd = [str(MITMDUMP), *common, "--set", "flow_detail=0", *config_args]
        script = env.addon_dir / "datakit.py" if variant.config is not None else variant.script
        if script is not None:
            cmd[1:1] = ["-s", str(script)]
    return pinned(PROXY_CPU, cmd + variant.options(env))


# --------------------------------------------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Point:
    concurrency: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_req: float
    errors: int
    # Share of the window the proxy was on CPU, and the CPU other processes (other test runs on the box) used
    # meanwhile, anywhere, in % of one core. When `other_pct` is high, the numbers measure the neighbours too:
    # with two vCPUs (possibly hyperthreads of one core), a busy neighbour slows the proxy even on its own CPU.
    busy_pct: float
    other_pct: float

    def row(self) -> str:
        err = f"  ERRORS {self.errors}" if self.errors else ""
        return (f"{self.concurrency:>4} {self.rps:>9.1f} {self.p50_ms:>8.2f} {self.p99_ms:>8.2f} "
                f"{self.cpu_us_per_req:>9.0f} {self.busy_pct:>5.0f} {self.other_pct:>5.0f}{err}")


def start_wrk(url: str, concurrency: int, seconds: float, cap: int) -> subprocess.Popen[str]:
    cmd = pinned(LOAD_CPU, ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
                            "-s", str(BENCH / "wrk_capped.lua"), url, "--", str(cap)])
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wrk_result(proc: subprocess.Popen[str], seconds: float) -> dict[str, Any]:
    try:
        # wrk stops itself after -d; the timeout only catches a wrk that hangs.
        out, err = proc.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError("wrk did not end") from None
    for line in out.splitlines():
        if line.startswith("WRK_RESULT "):
            return json.loads(line.removeprefix("WRK_RESULT "))
    raise RuntimeError(f"wrk failed (rc={proc.returncode}):\n{out}\n{err}")


def wrk(url: str, concurrency: int, seconds: float, cap: int) -> dict[str, Any]:
    return wrk_result(start_wrk(url, concurrency, seconds, cap), seconds)


def wait_quiet(limit: float) -> float:
    """Wait until the box is idle between points (other test runs share it); returns the seconds waited.

    Nothing of ours runs between points, so any task time now is someone else's. Gives up after `limit` seconds:
    the point's `other_pct` then shows how much the neighbours took.
    """
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = core_task_seconds("")
        time.sleep(1.0)
        if core_task_seconds("") - before < QUIET_CPU_SECONDS:
            break
    return time.monotonic() - start


def children_cpu_seconds() -> float:
    """CPU of the finished children (wrk runs, py-spy), from getrusage."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(targets: list[tuple[Service, str]], concurrency: int, env: Env, warmup: float,
            seconds: float) -> list[Point]:
    """Load each (proxy, url) with its own wrk, all at the same time; one point per proxy.

    One target is the ordinary measurement. Two targets share CPU 0 for the same seconds (see PAIRS): each
    gets about half of it, and whatever the host does meanwhile happens to both, so the ratio of their CPU per
    request holds even when the machine's speed drifts.
    """
    warm = [start_wrk(url, concurrency, warmup, int(warmup * CAP_PER_SECOND) + 1000) for _, url in targets]
    for proc in warm:
        wrk_result(proc, warmup)
    pids = [srv.pid for srv, _ in targets]

    def ours() -> float:
        return sum(map(cpu_seconds, pids)) + sum(map(cpu_seconds, env.helper_pids)) + children_cpu_seconds()

    before, ours_before, box_before, start = list(map(cpu_seconds, pids)), ours(), core_task_seconds(""), time.monotonic()
    cap = int(seconds * CAP_PER_SECOND)
    results = [wrk_result(proc, seconds) for proc in [start_wrk(url, concurrency, seconds, cap) for _, url in targets]]
    cpus, window = [cpu_seconds(pid) - b for pid, b in zip(pids, before)], time.monotonic() - start
    other_pct = max(0.0, 100 * ((core_task_seconds("") - box_before) - (ours() - ours_before)) / window)
    points = []
    for (_, url), result, cpu in zip(targets, results, cpus):
        requests = result["requests"]
        if requests >= cap:  # wrk then idles until -d ends: req/s would be wrong
            raise RuntimeError(f"{url}: {cap} responses in {seconds} s reached the cap; raise CAP_PER_SECOND")
        duration = result["duration_us"] / 1e6
        errors = sum(result[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
        points.append(Point(concurrency, requests, duration, requests / duration if duration else 0.0,
                            result["p50_us"] / 1000, result["p99_us"] / 1000,
                            cpu * 1e6 / requests if requests else float("nan"), errors,
                            busy_pct=100 * cpu / window, other_pct=other_pct))
    return points


@dataclass
class Measured:
    variant: Variant
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    points: dict[int, Point] = field(default_factory=dict)  # per concurrency: the summary of its segments
    segments: dict[int, list[Point]] = field(default_factory=dict)  # per concurrency: one per round, in order
    extra: dict[str, Any] = field(default_factory=dict)


def summarize(samples: list[Point]) -> Point:
    """Segments of one variant at one concurrency -> one point: the median of each metric; requests, seconds and
    errors summed. (Ratios are not taken between these medians: see `paired_ratios`.)"""
    values = {f.name: statistics.median(getattr(p, f.name) for p in samples) for f in dataclasses.fields(Point)}
    values.update(concurrency=samples[0].concurrency, requests=sum(p.requests for p in samples),
                  seconds=sum(p.seconds for p in samples), errors=sum(p.errors for p in samples))
    return Point(**values)


@contextlib.contextmanager
def running_proxy(variant: Variant, env: Env) -> Iterator[tuple[Service, str]]:
    port = free_port()
    cmd = proxy_command(variant, env, port)
    with service(variant.name, cmd, env.workdir / f"{variant.name}.log", env=child_env(env.addon_dir)) as srv:
        url = f"http://{LOOPBACK}:{port}/bench"
        problem: list[str] = []

        def ready() -> bool:
            problem[:] = [p for p in [variant.check(fetch(url))] if p]
            return True  # connected: the check decides

        wait_ready(srv, ready, 30)
        if problem:
            raise RuntimeError(f"{variant.name} answers wrongly: {problem[0]}\n{srv.log_tail()}")
        yield srv, url


# Comparisons measured with both proxies under load at the same time (see measure): (a, b) gives a's CPU per
# request next to b's. The targets are judged on these; the solo segments give absolute req/s and latencies.
PAIRS: tuple[tuple[str, str], ...] = (
    ("dk_pass", "noop"),
    ("dk_unrouted", "noop"),
    ("dk_transform", "ref_transform"),
    ("dk_transform", "dk_transform_norec"),
    ("dk_transform", "dk_transform_nofreeze"),
    ("ref_transform_twin", "ref_transform"),
    ("dk_mock", "ref_mock"),
    ("lean_pass", "dk_pass"),
    ("lean_transform", "dk_transform"),
    ("lean_pass", "bare"),
    ("dk_fan1", "ref_fan1"),
    ("dk_fan2", "ref_fan2"),
    ("dk_fan4", "ref_fan4"),
    ("dk_fan4", "dk_fan2"),  # two more calls: the marginal cost of a call node
    ("ref_fan4", "ref_fan2"),
    ("dk_chain50", "ref_chain50"),
    ("dk_chain25", "dk_chain10"),  # per-node cost, twice, for linearity
    ("dk_chain50", "dk_chain25"),
    ("ref_chain50", "ref_chain10"),
)

Paired = dict[tuple[str, str, int], list[tuple[Point, Point]]]


def run_matrix(variants: list[Variant], env: Env, args: argparse.Namespace) -> tuple[dict[str, Measured], Paired]:
    """Every variant's proxy runs for the whole matrix: solo segments first, then the pairs of PAIRS.

    Solo: wrk visits the variants in turn, `rounds` times per concurrency. The box is shared, and its speed swings
    by up to 2x over seconds to minutes (the host's other tenants), so solo numbers of one variant spread widely.
    Pairs: both proxies of a comparison under load at once, `rounds` times; their CPU-per-request ratio is what
    the targets are judged on. An idle proxy costs nothing, so keeping them all up disturbs nothing.
    """
    with contextlib.ExitStack() as stack:
        proxies = {v.name: stack.enter_context(running_proxy(v, env)) for v in variants}
        measured = {v.name: Measured(v, rss_before_kib=rss_kib(proxies[v.name][0].pid)) for v in variants}
        segments: dict[tuple[str, int], list[Point]] = {}
        for conc in args.concurrency:
            group = [v for v in variants if conc in v.concurrencies]
            for round_no in range(1, args.rounds + 1):
                announce(f"-- c={conc} round {round_no}/{args.rounds}", wait_quiet(args.quiet_wait))
                for variant in group:
                    srv, url = proxies[variant.name]
                    profiler = start_profiler(srv.pid, variant.name, args) if args.profile else None
                    try:
                        point, = measure([(srv, url)], conc, env, args.warmup, args.seconds)
                    finally:
                        if profiler is not None:
                            finish_profiler(profiler)
                    segments.setdefault((variant.name, conc), []).append(point)
                    print(f"  {variant.name:<19}{point.row()}", flush=True)
        paired: Paired = {}
        for conc in () if args.profile else (c for c in PAIR_CONCURRENCIES if c in args.concurrency):
            group = [(a, b) for a, b in PAIRS if a in proxies and b in proxies
                     and conc in BY_NAME[a].concurrencies and conc in BY_NAME[b].concurrencies]
            for round_no in range(1, args.rounds + 1 if group else 1):
                announce(f"-- pairs, c={conc} round {round_no}/{args.rounds}", wait_quiet(args.quiet_wait))
                for a, b in group:
                    pa, pb = measure([proxies[a], proxies[b]], conc, env, args.warmup, args.seconds)
                    paired.setdefault((a, b, conc), []).append((pa, pb))
                    print(f"  {a} + {b}: CPU us/req {pa.cpu_us_per_req:,.0f} / {pb.cpu_us_per_req:,.0f} = "
                          f"{pb.cpu_us_per_req / pa.cpu_us_per_req:.3f}x capacity, other {pa.other_pct:.0f}%"
                          + (f"  ERRORS {pa.errors + pb.errors}" if pa.errors + pb.errors else ""), flush=True)
        for v in variants:
            m = measured[v.name]
            m.rss_after_kib = rss_kib(proxies[v.name][0].pid)
            for conc in (c for c in args.concurrency if c in v.concurrencies):
                m.segments[conc] = segments[(v.name, conc)]
                m.points[conc] = summarize(m.segments[conc])
    return measured, paired


def announce(line: str, waited: float) -> None:
    print(line + (f" (waited {waited:.0f} s for the box to be quiet)" if waited > 2 else ""), flush=True)


def start_profiler(pid: int, name: str, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """py-spy samples the proxy while wrk measures (raw = collapsed stacks; summarize with bench/stacks.py).

    py-spy pauses the proxy for each sample (--nonblocking truncates about a third of the stacks), so the numbers
    of a profiled run are a little high; the profile is for attribution, the plain run for the numbers.
    """
    out = Path(args.profile) / f"{name}.txt"
    duration = int(args.warmup + args.seconds) + 2
    cmd = pinned(LOAD_CPU, [args.py_spy, "record", "-p", str(pid), "-r", "200", "-d", str(duration),
                            "-f", "raw", "-o", str(out)])
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def finish_profiler(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def soak_variant(variant: Variant, env: Env, counts: tuple[int, int]) -> Measured:
    """RSS after counts[0] and after counts[1] requests at 64 connections (issue 7: no growth per request).

    wrk runs in slices of SOAK_SLICE seconds, the last one capped at the requests still missing (a capped wrk stops
    sending but only exits at the end of its -d), until the count is reached or SOAK_LIMIT seconds have passed.
    """
    measured = Measured(variant)
    with running_proxy(variant, env) as (srv, url):
        measured.rss_before_kib = rss_kib(srv.pid)
        done = 0
        deadline = time.monotonic() + SOAK_LIMIT
        for target in counts:
            while done < target:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{variant.name}: {done:,} of {target:,} requests after {SOAK_LIMIT} s")
                done += wrk(url, 64, seconds=SOAK_SLICE, cap=target - done)["requests"]
            measured.extra[f"rss_kib_after_{target}"] = rss_kib(srv.pid)
            measured.extra[f"requests_at_{target}"] = done
            print(f"  {variant.name:<15} {done:>8} requests  RSS {rss_kib(srv.pid) / MIB:7.1f} MiB", flush=True)
        measured.rss_after_kib = rss_kib(srv.pid)
    return measured


# --------------------------------------------------------------------------------------------------------------
# Targets (issue 7)
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    status: str  # PASS, FAIL or n/a
    detail: str


def rounds_of(results: dict[str, Measured], name: str, conc: int) -> list[Point]:
    m = results.get(name)
    return m.segments.get(conc, []) if m else []


def solo_ratios(results: dict[str, Measured], num: str, den: str, conc: int) -> list[float]:
    """num/den req/s from the solo segments, one ratio per round (the two measured in the same round)."""
    return [a.rps / b.rps for a, b in zip(rounds_of(results, num, conc), rounds_of(results, den, conc)) if b.rps]


def solo_ratio(results: dict[str, Measured], num: str, den: str, conc: int) -> float | None:
    """The median over rounds of solo_ratios."""
    ratios = solo_ratios(results, num, den, conc)
    return statistics.median(ratios) if ratios else None


def together(paired: Paired, a: str, b: str, conc: int, of: Callable[[Point, Point], float]) -> float | None:
    """The median over rounds of of(a, b) for a pair measured together (PAIRS)."""
    rounds = paired.get((a, b, conc), [])
    return statistics.median(of(pa, pb) for pa, pb in rounds) if rounds else None


def capacity(pa: Point, pb: Point) -> float:
    """How many times b's CPU per request a's is: the req/s ratio of the two proxies, each alone on a core."""
    return pb.cpu_us_per_req / pa.cpu_us_per_req


def _errors(results: dict[str, Measured], paired: Paired, *names: str) -> int:
    solo = sum(p.errors for n in names if n in results for p in results[n].points.values())
    both = sum(pa.errors + pb.errors for (a, b, _), rounds in paired.items() if {a, b} & set(names)
               for pa, pb in rounds)
    return solo + both


def ratio_target(results: dict[str, Measured], paired: Paired, name: str, num: str, den: str,
                 minimum: float | None) -> Target:
    """num/den >= minimum, judged on the pairs measured together at 16 and 64 connections; the solo req/s ratios
    are shown next to them (at 1 connection they are all there is, and are not judged: see docs/performance.md)."""
    parts, ok, judged = [], True, False
    for conc in (1, 16, 64):
        both, solo = together(paired, num, den, conc, capacity), solo_ratio(results, num, den, conc)
        if both is None and solo is None:
            continue
        solo_text = f"solo req/s {solo:.3f}x" if solo is not None else "no solo segments"
        if both is None:
            parts.append(f"c={conc}: {solo_text} (not judged)")
            continue
        judged = True
        good = minimum is None or both >= minimum
        ok &= good
        parts.append(f"c={conc}: {both:.3f}x together ({solo_text}){'' if good else ' BELOW'}")
    if not parts:
        return Target(name, "n/a", f"{num} and {den} not measured")
    if _errors(results, paired, num, den):
        return Target(name, "FAIL", f"{num} or {den} had errors; " + "; ".join(parts))
    if minimum is None or not judged:  # a ratio the issue sets no goal for, or no pair measured
        return Target(name, "info" if minimum is None else "n/a", f"{num}/{den}: " + "; ".join(parts))
    return Target(name, "PASS" if ok else "FAIL", f"{num}/{den} >= {minimum}: " + "; ".join(parts))


def evaluate(results: dict[str, Measured], paired: Paired) -> list[Target]:
    return [
        ratio_target(results, paired, "passthrough", "dk_pass", "noop", 0.98),
        # The same, for a flow whose route has no datakit plugin: shown beside the target, not instead of it.
        ratio_target(results, paired, "passthrough, route without the plugin", "dk_unrouted", "noop", None),
        ratio_target(results, paired, "(a) transform", "dk_transform", "ref_transform", 0.95),
        ratio_target(results, paired, "(b) mock", "dk_mock", "ref_mock", 0.95),
        # Keeping the node record costs at most 3 % of throughput (issue 6).
        ratio_target(results, paired, "node record kept vs off (transform)", "dk_transform", "dk_transform_norec",
                     0.97),
        ratio_target(results, paired, "gc freeze on vs off (transform)", "dk_transform", "dk_transform_nofreeze", None),
        noise_target(paired, "ref_transform_twin", "ref_transform"),
        ratio_target(results, paired, "lean server vs mitmdump (passthrough)", "lean_pass", "dk_pass", 1.5),
        ratio_target(results, paired, "lean server vs mitmdump (transform)", "lean_transform", "dk_transform", None),
        ratio_target(results, paired, "lean server vs bare mitmdump", "lean_pass", "bare", None),
        *(ratio_target(results, paired, f"Datakit vs reference, {work}", f"dk_{work}", f"ref_{work}", None)
          for work in ("fan1", "fan2", "fan4", "chain50")),
        fanout_target(results, paired),
        per_call_target(paired),
        latency_target(results),
        chain_target(paired),
    ]


def fanout_target(results: dict[str, Measured], paired: Paired) -> Target:
    """2 calls at 64 connections: >= 0.6x bare mitmdump's req/s (solo segments, same round) and p99 < 250 ms."""
    name = "(c) fan-out 2 calls, c=64"
    ratio = solo_ratio(results, "dk_fan2", "bare", 64)
    if ratio is None:
        return Target(name, "n/a", "dk_fan2 or bare not measured at c=64")
    p99, bare_p99 = results["dk_fan2"].points[64].p99_ms, results["bare"].points[64].p99_ms
    ok = ratio >= 0.6 and p99 < 250 and not _errors(results, paired, "dk_fan2")
    # Solo segments follow the box's speed; the hand-written addon in the same rounds tells a slow box from a slow
    # engine.
    rounds = ", ".join(f"{r:.3f}" for r in solo_ratios(results, "dk_fan2", "bare", 64))
    reference = solo_ratio(results, "ref_fan2", "bare", 64)
    beside = ""
    if reference is not None:
        beside = (f"; the hand-written addon in the same rounds: {reference:.3f}x, p99 "
                  f"{results['ref_fan2'].points[64].p99_ms:.0f} ms")
    return Target(name, "PASS" if ok else "FAIL",
                  f"dk_fan2/bare = {ratio:.3f}x req/s (>= 0.6; rounds {rounds}); p99 {p99:.0f} ms (< 250; bare "
                  f"mitmdump's: {bare_p99:.0f} ms){beside}")


def noise_target(paired: Paired, twin: str, original: str) -> Target:
    """Two proxies running the same addon, paired as the targets are: the median and the range of their ratio over
    the rounds. A target's ratio closer to its line than this spread is decided by the rounds' luck as much as by
    the code."""
    parts = []
    for conc in PAIR_CONCURRENCIES:
        rounds = [capacity(pa, pb) for pa, pb in paired.get((twin, original, conc), [])]
        if rounds:
            parts.append(f"c={conc}: median {statistics.median(rounds):.3f}x, "
                         f"rounds {min(rounds):.3f}-{max(rounds):.3f}x")
    name = "measurement noise: the transform reference vs its twin (A/A)"
    if not parts:
        return Target(name, "n/a", f"{twin} and {original} not measured together")
    return Target(name, "info", f"{twin}/{original}, the same addon on both sides: " + "; ".join(parts))


def per_call_target(paired: Paired) -> Target:
    """The marginal CPU of a call node: (4 calls - 2 calls) / 2, measured together; the reference's the same way."""
    name = "(c) CPU per call node, c=64"

    def per_call(prefix: str) -> float | None:
        return together(paired, f"{prefix}_fan4", f"{prefix}_fan2", 64,
                        lambda a, b: (a.cpu_us_per_req - b.cpu_us_per_req) / 2)

    datakit, reference = per_call("dk"), per_call("ref")
    if datakit is None:
        return Target(name, "n/a", "dk_fan4 + dk_fan2 not measured together at c=64")
    detail = f"(dk_fan4 - dk_fan2) / 2 = {datakit:.0f} us (<= ~250)"
    if reference is not None:
        detail += f"; hand-written aiohttp addon: {reference:.0f} us"
    return Target(name, "PASS" if datakit <= 250 else "FAIL", detail)


def latency_target(results: dict[str, Measured]) -> Target:
    name = "(c) 4 concurrent calls latency, c=1"
    pairs = list(zip(rounds_of(results, "dk_fan1", 1), rounds_of(results, "dk_fan4", 1)))
    if not pairs:
        return Target(name, "n/a", "dk_fan1/dk_fan4 not measured at c=1")
    gap = statistics.median(b.p50_ms - a.p50_ms for a, b in pairs)
    one, four = results["dk_fan1"].points[1].p50_ms, results["dk_fan4"].points[1].p50_ms
    return Target(name, "PASS" if gap <= 2 else "FAIL",
                  f"p50 {four:.2f} ms vs 1 call {one:.2f} ms: {gap:+.2f} ms (median of the rounds' gaps, <= 2)")


def chain_target(paired: Paired) -> Target:
    """Per-node cost from chains measured together at c=16: 10->25 and 25->50 nodes; linear when they agree."""
    name = "(d) chain cost linear in node count"

    def slope(a: str, b: str, nodes: int) -> float | None:
        return together(paired, a, b, 16, lambda pa, pb: (pa.cpu_us_per_req - pb.cpu_us_per_req) / nodes)

    low, high = slope("dk_chain25", "dk_chain10", 15), slope("dk_chain50", "dk_chain25", 25)
    if low is None or high is None:
        return Target(name, "n/a", "dk_chain10/25/50 not measured together at c=16")
    detail = f"Datakit per node: {low:.1f} us (10->25 nodes), {high:.1f} us (25->50)"
    reference = slope("ref_chain50", "ref_chain10", 40)
    if reference is not None:
        detail += f"; the same jq steps hand-written: {reference:.1f} us per step"
    # Linear: the second slope is not steeper than the first beyond noise (25 %, or 5 us on a small slope).
    ok = high <= max(low * 1.25, low + 5)
    return Target(name, "PASS" if ok else "FAIL", detail)


def soak_targets(results: dict[str, Measured], counts: tuple[int, int]) -> list[Target]:
    targets = []
    for name, m in results.items():
        first, last = m.extra[f"rss_kib_after_{counts[0]}"], m.extra[f"rss_kib_after_{counts[1]}"]
        growth = (last - first) / MIB
        targets.append(Target(f"RSS {name}", "PASS" if growth <= 10 else "FAIL",
                              f"{first / MIB:.1f} MiB after {counts[0]:,} -> {last / MIB:.1f} MiB after "
                              f"{counts[1]:,} requests ({growth:+.1f} MiB, <= 10)"))
    return targets


# --------------------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())

    def version(cmd: list[str]) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
            return (done.stdout + done.stderr).strip().splitlines()[0]
        return "?"

    from mitmproxy.version import VERSION

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(), "cpu": model, "kernel": platform.release(), "python": platform.python_version(),
        "mitmproxy": VERSION, "nginx": version(["nginx", "-v"]), "wrk": version(["wrk", "-v"]),
        "load_average": os.getloadavg(),
    }


def engine_version(addon_dir: Path) -> str:
    """The commit the measured engine comes from, and whether its files differ from it."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(addon_dir), *args], capture_output=True, text=True, timeout=10,
                              check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return f"{addon_dir} (not a git checkout)"
    return f"{addon_dir} at {commit}{' + uncommitted changes' if git('status', '--porcelain', '--', '.') else ''}"


def print_results(results: dict[str, Measured]) -> None:
    print("\nvariant             conc     req/s   p50 ms   p99 ms CPU us/req busy% other%   RSS MiB before -> after")
    for name, m in results.items():
        rss = f"{m.rss_before_kib / MIB:.1f} -> {m.rss_after_kib / MIB:.1f}"
        for i, point in enumerate(m.points.values()):
            print(f"{name:<19} {point.row()}   {rss if i == 0 else ''}")


def print_markdown(results: dict[str, Measured], targets: list[Target]) -> None:
    """The table and targets as Markdown, for docs/performance.md."""
    print("| variant | conc | req/s | p50 ms | p99 ms | CPU µs/req | other load % | RSS MiB before → after |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, m in results.items():
        rss = f"{m.rss_before_kib / MIB:.1f} → {m.rss_after_kib / MIB:.1f}"
        for i, p in enumerate(m.points.values()):
            print(f"| {name if i == 0 else ''} | {p.concurrency} | {p.rps:,.0f} | {p.p50_ms:.1f} | {p.p99_ms:.1f} | "
                  f"{p.cpu_us_per_req:,.0f} | {p.other_pct:.0f} | {rss if i == 0 else ''} |")
    print("\n| status | target | measured |\n|---|---|---|")
    for t in targets:
        print(f"| {t.status} | {t.name} | {t.detail} |")


def print_targets(targets: list[Target]) -> None:
    print("\ntargets (issue 7; ratios from this run)")
    for t in targets:
        print(f"  {t.status:<5} {t.name}: {t.detail}")


def to_json(results: dict[str, Measured], paired: Paired, targets: list[Target],
            args: argparse.Namespace) -> dict[str, Any]:
    return {
        "machine": machine(),
        "settings": {"warmup_s": args.warmup, "seconds": args.seconds, "concurrency": args.concurrency,
                     "rounds": args.rounds, "engine": engine_version(args.addon_dir.resolve()),
                     "cpu_pinning": {"proxy": PROXY_CPU, "load": LOAD_CPU},
                     "mode": "soak" if args.soak else "profile" if args.profile else "quick" if args.quick else "full"},
        "variants": {
            name: {"what": m.variant.what, "rss_before_kib": m.rss_before_kib, "rss_after_kib": m.rss_after_kib,
                   "points": {str(c): vars(p) for c, p in m.points.items()},
                   "segments": {str(c): [vars(p) for p in ps] for c, ps in m.segments.items()}, **m.extra}
            for name, m in results.items()
        },
        "paired": [{"a": a, "b": b, "concurrency": conc, "rounds": [[vars(pa), vars(pb)] for pa, pb in rounds]}
                   for (a, b, conc), rounds in paired.items()],
        "targets": [vars(t) for t in targets],
    }


def from_json(path: Path) -> tuple[dict[str, Measured], Paired]:
    """A saved run (--json) back into results, to print its table and targets again (--from-json)."""
    saved = json.loads(path.read_text())
    results: dict[str, Measured] = {}
    for name, v in saved["variants"].items():
        m = Measured(BY_NAME[name], rss_before_kib=v["rss_before_kib"], rss_after_kib=v["rss_after_kib"])
        m.points = {int(c): Point(**p) for c, p in v["points"].items()}
        m.segments = {int(c): [Point(**p) for p in ps] for c, ps in v.get("segments", {}).items()}
        m.extra = {k: x for k, x in v.items() if k.startswith(("rss_kib_after_", "requests_at_"))}
        results[name] = m
    paired: Paired = {(e["a"], e["b"], e["concurrency"]): [(Point(**pa), Point(**pb)) for pa, pb in e["rounds"]]
                      for e in saved.get("paired", [])}
    return results, paired


# --------------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke form: 1 round of 1 s warm-up + 2 s per point, few variants")
    parser.add_argument("--only", help="comma-separated variant names (see --list)")
    parser.add_argument("--json", metavar="OUT", help="also write every measured value to this JSON file")
    parser.add_argument("--soak", action="store_true", help="RSS after 10,000 and after 100,000 requests (c=64)")
    parser.add_argument("--profile", metavar="DIR", help="record py-spy stacks per variant at c=16 into DIR")
    parser.add_argument("--list", action="store_true", help="list the variants and exit")
    parser.add_argument("--from-json", type=Path, metavar="FILE",
                        help="print the table and targets of a run saved with --json, measuring nothing")
    parser.add_argument("--markdown", action="store_true", help="with --from-json: print them as Markdown")
    parser.add_argument("--addon-dir", type=Path, default=REPO / "addon",
                        help="the folder holding datakit.py and mitm_datakit/ to measure (default: this checkout's); "
                             "point it at a scratch copy to measure an engine change")
    parser.add_argument("--seconds", type=float, help="measured seconds per segment (default 3, quick 2)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per segment, whole (default 1)")
    parser.add_argument("--rounds", type=int,
                        help="solo segments per variant and concurrency, and measurements per pair (default 3, "
                             "quick 1)")
    parser.add_argument("--quiet-wait", type=float,
                        help="before each round, wait up to this many seconds for other processes to go idle "
                             "(default 30, quick 0)")
    args = parser.parse_args(argv)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            parser.error(f"unknown variant(s): {', '.join(unknown)} (see --list)")
        args.variants = [BY_NAME[n] for n in names]
    elif args.soak:
        args.variants = [BY_NAME[n] for n in ("dk_transform", "dk_mock", "dk_fan2")]
    else:
        args.variants = [v for v in VARIANTS if v.quick or not args.quick]
    args.seconds = args.seconds or (2.0 if args.quick else 10.0 if args.profile else 3.0)
    args.warmup = args.warmup if args.warmup is not None else 1.0
    args.rounds = args.rounds or (1 if args.quick or args.profile else 3)
    args.quiet_wait = args.quiet_wait if args.quiet_wait is not None else (0.0 if args.quick else 30.0)
    args.concurrency = (16,) if args.profile else (1, 16, 64)
    args.soak_counts = (1_000, 5_000) if args.quick else (10_000, 100_000)
    if args.profile:
        args.py_spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
        if not Path(args.py_spy).exists():
            parser.error("--profile needs py-spy (pip install py-spy into the venv)")
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    return args


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so every finally block stops its processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args(argv)
    if args.list:
        for v in VARIANTS:
            print(f"{v.name:<19} {v.what}")
        return 0
    if args.from_json:
        results, paired = from_json(args.from_json)
        soak_counts = next((counts for counts in (args.soak_counts, (1_000, 5_000), (10_000, 100_000))
                            if all(f"rss_kib_after_{counts[1]}" in m.extra for m in results.values())), None)
        if soak_counts:
            print_targets(soak_targets(results, soak_counts))
        elif args.markdown:
            print_markdown(results, evaluate(results, paired))
        else:
            print_results(results)
            print_targets(evaluate(results, paired))
        return 0
    missing = [tool for tool in ("nginx", "wrk", "taskset") if not (shutil.which(tool) or Path(f"/usr/sbin/{tool}")
                                                                   .exists())]
    if missing:
        print(f"bench: missing {', '.join(missing)} (Debian: apt-get install nginx wrk)", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2:
        print("bench: needs 2 CPUs (the proxy on one, the load on the other)", file=sys.stderr)
        return 2
    results: dict[str, Measured] = {}
    paired: Paired = {}
    with tempfile.TemporaryDirectory(prefix="datakit-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        upstream, nginx_pid = stack.enter_context(nginx(workdir))
        api, api_pid = stack.enter_context(slow_api(workdir)) if any(v.needs_api for v in args.variants) else ("", 0)
        env = Env(upstream, api, workdir, args.addon_dir.resolve(), tuple(p for p in (nginx_pid, api_pid) if p))
        print(f"engine {engine_version(env.addon_dir)}")
        print(f"upstream {upstream}  api {api or '-'}  proxy on CPU {PROXY_CPU}, load on CPU {LOAD_CPU}")
        if args.soak:
            print(f"soak: RSS after {args.soak_counts[0]:,} and {args.soak_counts[1]:,} requests at c=64")
            for variant in args.variants:
                results[variant.name] = soak_variant(variant, env, args.soak_counts)
            targets = soak_targets(results, args.soak_counts)
        else:
            print(f"{len(args.variants)} variants, {args.rounds} round(s) per concurrency, each segment "
                  f"{args.warmup:g} s warm-up + {args.seconds:g} s measured; the table shows medians")
            print("variant              conc     req/s   p50 ms   p99 ms CPU us/req busy% other%")
            results, paired = run_matrix(args.variants, env, args)
            print_results(results)
            targets = [] if args.profile else evaluate(results, paired)
    print_targets(targets)
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results, paired, targets, args), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
