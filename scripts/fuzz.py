"""Fuzz the config loader and the flow mapping (issue 8), for longer than the unit suite does.

    .venv/bin/python scripts/fuzz.py                      # both targets, 60 s or 5000 cases, whichever first
    .venv/bin/python scripts/fuzz.py --target flow --seconds 600 --runs 1000000
    .venv/bin/python scripts/fuzz.py --engine atheris         # coverage-guided, needs `pip install atheris`

Targets:
  config  a bundled or documented config with bytes deleted, duplicated, replaced or inserted, loaded as a
          file is (`load_deployment`): it must give a Deployment or a ConfigError listing its issues.
  flow    a request and an upstream answer built from the input bytes (method, query string, header bytes,
          body, Content-Type, Content-Encoding/Transfer-Encoding, a phase told to fail) through the real
          Datakit addon on real mitmproxy flows, with a plan touching every implicit node, jq and handlebars:
          no exception escapes a hook, nothing is logged with a traceback, a failed access phase leaves the
          request as it was, and a header the plan writes can never split the message.

Engines: atheris (libFuzzer, coverage-guided) when it is installed, else hypothesis feeding random bytes in
batches. Both decode the bytes the same way. The run ends after --runs cases or --seconds, whichever comes
first, and prints how many cases ran; a failing case prints its traceback and the script exits non-zero
(atheris also writes the input to a crash-* file).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import logging
import os
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

with warnings.catch_warnings():
    # mitmproxy.master imports ldap3, which reads a deprecated pyasn1 name at import time (not ours).
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy import http
    from mitmproxy.test import taddons, tflow

if TYPE_CHECKING:
    from mitm_datakit.proxy.addon import Datakit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "addon"))

SEED_TEXTS = [p.read_text(encoding="utf-8") for p in sorted((REPO / "configs").glob("*.yaml"))]

FLOW_CONFIG = """
resources:
  vault:
    token: "{vault://env/DK_FUZZ_TOKEN}"
nodes:
- name: READ
  type: jq
  inputs: {body: request.body, headers: request.headers, query: request.query, key: vault.token}
  jq: |
    if (.headers["X-Fail"] // "") == "access" then error("told to fail: " + (.query | tostring)) else
    {headers: {"X-Echo": (.query.echo // "" | tostring), "X-Type": (.body | type)},
     query: {seen: "1", echo: .query.echo}, body: {got: .body}} end
  output: service_request
- name: TEMPLATE
  type: handlebars
  inputs: {body: request.body, query: request.query}
  template: "{{query.a}}|{{body}}"
- name: RESPOND
  type: jq
  inputs: {body: service_response.body, headers: service_response.headers, note: TEMPLATE}
  jq: |
    if (.headers["X-Fail"] // "") == "response" then error("told to fail") else
    {headers: {"X-Note": .note, "X-Echo": (.headers["X-Echo"] // "")}, body: {upstream: .body}} end
  output: response
"""


class Bytes:
    """Reads choices, numbers and byte strings off the fuzz input; past its end every read gives zeros."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        value = self.data[self.at] if self.at < len(self.data) else 0
        self.at += 1
        return value

    def pick(self, options: list[str] | list[bytes]) -> str | bytes:
        return options[self.byte() % len(options)]

    def chunk(self, limit: int) -> bytes:
        size = min(self.byte() * 256 + self.byte(), limit)
        piece = self.data[self.at : self.at + size]
        self.at += size
        return piece


# -- config target -----------------------------------------------------------------------------------


def fuzz_config(data: bytes) -> None:
    from mitm_datakit.errors import ConfigError
    from mitm_datakit.kong.deployment import load_deployment

    source = Bytes(data)
    text = str(source.pick(SEED_TEXTS))
    for _ in range(1 + source.byte() % 4):
        at = (source.byte() * 256 + source.byte()) % (len(text) + 1)
        kind = source.byte() % 4
        span = 1 + source.byte() % 16
        if kind == 0:
            text = text[:at] + text[at + span :]
        elif kind == 1:
            text = text[:at] + text[at : at + span] + text[at:]
        elif kind == 2:
            text = text[:at] + source.chunk(16).decode("utf-8", "replace") + text[at + span :]
        else:
            text = text[:at] + source.chunk(16).decode("utf-8", "replace") + text[at:]
    try:
        load_deployment(text, source="fuzz.yaml")
    except ConfigError as e:
        assert e.issues and all(str(issue).strip() for issue in e.issues), "a ConfigError lists its issues"


# -- flow target -------------------------------------------------------------------------------------


class Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is not None or "\n" in record.getMessage():
            self.seen.append(record.getMessage())


def _message(source: Bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    headers = []
    for _ in range(source.byte() % 6):
        name = bytes(c for c in source.chunk(12) if 33 <= c <= 126 and c != ord(":")) or b"X-Empty"
        value = bytes(c for c in source.chunk(24) if c not in b"\r\n\0")
        headers.append((name, value))
    ours = (b"content-encoding", b"transfer-encoding", b"x-fail")  # set below, from the input's choices
    headers = [(k, v) for k, v in headers if k.lower() not in ours]
    content_type = source.pick([b"", b"application/json", b"application/x-www-form-urlencoded", b"text/plain",
                                b"application/json; charset=latin-1", b"multipart/form-data", b"\xff"])
    if content_type:
        headers.append((b"Content-Type", bytes(content_type)))
    body = source.chunk(4096)
    encoding = source.byte() % 5
    if encoding == 1:
        headers.append((b"Content-Encoding", b"gzip"))
        body = gzip.compress(body)
    elif encoding == 2:
        headers.append((b"Content-Encoding", b"deflate"))
        body = zlib.compress(body)
    elif encoding == 3:
        headers.append((b"Content-Encoding", b"br"))  # a lie: the bytes are not brotli
    elif encoding == 4:
        headers.append((b"Transfer-Encoding", b"chunked"))
    return headers, body


def _unsafe(headers: http.Headers) -> bool:
    return any(c in k + v for k, v in headers.fields for c in b"\r\n\0") or any(
        b":" in k for k, _ in headers.fields
    )


async def _flow(addon: Datakit, data: bytes, log: Tracebacks) -> None:
    source = Bytes(data)
    method = str(source.pick(["GET", "POST", "PUT", "DELETE", "X-ODD"]))
    query = source.chunk(64).decode("utf-8", "surrogateescape").replace("#", "")
    fields, raw = _message(source)
    fail = source.byte() % 4  # 1: access, 2: response
    if fail == 1:
        fields.append((b"X-Fail", b"access"))
    request = http.Request.make(method, "http://service.test/", b"", http.Headers(fields))
    request.path = "/p?" + query
    request.raw_content = raw
    flow = tflow.tflow(req=request)
    before = flow.request.get_state()
    if (pending := addon.request(flow)) is not None:  # a coroutine only while a call is in flight
        await pending
    assert not log.seen, log.seen
    if fail == 1:
        assert flow.response is not None and flow.response.status_code == 500
        assert flow.request.get_state() == before, "a failed access phase leaves the request as it was"
        return
    assert not _unsafe(flow.request.headers), "a written header splits the request"
    response_fields, response_raw = _message(source)
    if fail == 2:
        response_fields.append((b"X-Fail", b"response"))
    response = http.Response.make(200 + source.byte(), b"", http.Headers(response_fields))
    response.raw_content = response_raw
    upstream_before = response.get_state()
    flow.response = response
    if (pending := addon.response(flow)) is not None:  # a coroutine only while a call is in flight
        await pending
    assert not log.seen, log.seen
    assert response.get_state() == upstream_before, "the upstream's answer is never changed in place"
    assert flow.response is not None and not _unsafe(flow.response.headers)
    if fail == 2:
        assert flow.response.status_code == 500


def flow_target() -> Callable[[bytes], None]:
    """One addon and mitmproxy context for the whole run (as in mitmdump), on one event loop."""
    from mitm_datakit.proxy.addon import Datakit

    config = Path(tempfile.mkdtemp(prefix="dk-fuzz-")) / "flow.yaml"
    config.write_text(FLOW_CONFIG, encoding="utf-8")
    os.environ["DK_FUZZ_TOKEN"] = "fuzz-vault-value"
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    addon = Datakit()
    tctx = taddons.context(addon)  # sets mitmproxy's ctx.master, which the addon's options live on
    tctx.configure(addon, datakit_config=str(config))
    log = Tracebacks()
    logger = logging.getLogger("mitm_datakit")
    logger.addHandler(log)
    logger.propagate = False  # one line per handled failure would drown the summary

    def one(data: bytes) -> None:
        loop.run_until_complete(_flow(addon, data, log))

    return one


# -- engines -----------------------------------------------------------------------------------------


def build_target(name: str) -> Callable[[bytes], None]:
    if name == "config":
        return fuzz_config
    flow = flow_target()
    if name == "flow":
        return flow
    return lambda data: (fuzz_config if data[:1] < b"\x80" else flow)(data[1:])


class Budget:
    def __init__(self, runs: int, seconds: float) -> None:
        self.runs, self.seconds = runs, seconds
        self.cases = 0
        self.began = time.monotonic()

    def spent(self) -> bool:
        return self.cases >= self.runs or time.monotonic() - self.began >= self.seconds

    def report(self, engine: str, target: str) -> str:
        elapsed = time.monotonic() - self.began
        return f"fuzz: {engine}, target {target}: {self.cases} cases in {elapsed:.1f} s, no failure"


def run_atheris(target: Callable[[bytes], None], budget: Budget, name: str) -> None:
    import atheris  # type: ignore[import-not-found]

    def one(data: bytes) -> None:
        target(data)
        budget.cases += 1
        if budget.spent():
            # libFuzzer ends the process with exit(), which skips Python's own shutdown: report and leave now.
            print(budget.report("atheris", name), flush=True)
            os._exit(0)

    budget.began = time.monotonic()  # importing with instrumentation is not fuzzing time
    atheris.Setup([sys.argv[0], "-rss_limit_mb=4096", f"-max_total_time={int(budget.seconds) + 60}"], one)
    atheris.Fuzz()


def run_hypothesis(target: Callable[[bytes], None], budget: Budget, name: str) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    batch = settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))

    @batch
    @given(st.binary(max_size=8192))
    def one(data: bytes) -> None:
        if budget.spent():
            return  # the rest of this batch
        target(data)
        budget.cases += 1

    while not budget.spent():
        one()  # a fresh random batch each time; a failure is shrunk and raised with its input
    print(budget.report("hypothesis", name), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=["config", "flow", "all"], default="all")
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    parser.add_argument("--runs", type=int, default=5000, help="stop after this many cases")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after this long")
    args = parser.parse_args(argv)
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # type: ignore[import-not-found]  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    if engine == "atheris":
        import atheris  # type: ignore[import-not-found]

        # Coverage feedback from our own code only: instrumenting mitmproxy too makes every case far slower.
        with atheris.instrument_imports(include=["mitm_datakit"]):
            import mitm_datakit.kong.deployment
            import mitm_datakit.proxy.addon  # noqa: F401
    target = build_target(args.target)
    budget = Budget(args.runs, args.seconds)
    (run_atheris if engine == "atheris" else run_hypothesis)(target, budget, args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
