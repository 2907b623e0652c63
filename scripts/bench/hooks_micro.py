#!/usr/bin/env python3
"""The Datakit addon's own cost per flow, without a proxy around it: its `request` and `response` hooks called
on in-memory flows, timed with CPU time, next to the hand-written reference doing the same work.

    PYTHONPATH=addon .venv/bin/python scripts/bench/hooks_micro.py [--flows 20000] [--profile transform] [--no-record]

The proxy adds ~1-3 ms of its own per request and the box it runs on is shared, so whole-proxy numbers move by
several percent between runs; this isolates the part the engine controls, in µs per flow, to about ±1 µs.
Calls (fan-out) need a network and are left to scripts/bench.py. --profile prints cProfile's top functions for one
workload (inclusive µs per flow), to find what a flow pays for.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import importlib
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from mitmproxy import http
from mitmproxy.test import taddons, tflow

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_workloads as wl  # noqa: E402

from mitm_datakit.proxy.addon import Datakit  # noqa: E402  (from PYTHONPATH: the engine under test)

Hook = Callable[[http.HTTPFlow], "Awaitable[None] | None"]


def make_flow() -> http.HTTPFlow:
    """A flow as wrk's requests arrive in reverse mode: GET with Host and the benchmark's client header."""
    flow = tflow.tflow()
    flow.request.headers.clear()
    flow.request.headers["Host"] = "127.0.0.1:8080"
    flow.request.headers[wl.CLIENT_HEADER[0]] = wl.CLIENT_HEADER[1]
    flow.request.path = "/bench"
    return flow


def upstream_response() -> http.Response:
    return http.Response.make(200, wl.UPSTREAM_BODY, {"Content-Type": "application/json", "Server": "nginx"})


async def call(hook: Hook | None, flow: http.HTTPFlow) -> None:
    if hook is not None:
        result = hook(flow)
        if result is not None:  # mitmproxy awaits async hooks the same way
            await result


Prepared = list[tuple[http.HTTPFlow, http.Response]]


def prepare(flows: int) -> Prepared:
    """Flows and the upstream answers they will get, built before the clock starts."""
    return [(make_flow(), upstream_response()) for _ in range(flows)]


async def run_flows(request: Hook | None, response: Hook | None, prepared: Prepared) -> None:
    """What mitmproxy does per flow: the request hook, then, unless the flow was answered, the response hook."""
    for flow, reply in prepared:
        await call(request, flow)
        if flow.response is None:
            flow.response = reply
            await call(response, flow)


async def per_flow(request: Hook | None, response: Hook | None, flows: int) -> float:
    """CPU µs per flow over one batch."""
    prepared = prepare(flows)
    gc.collect()
    # The batch keeps every flow alive, which a proxy never does (mitmdump drops a flow after its response): a
    # full collection over those ~250k objects (~200 ms) would land in one batch or another by chance. Frozen,
    # they are out of the collector's sight and only what the hooks themselves allocate is measured.
    gc.freeze()
    start = time.process_time()
    await run_flows(request, response, prepared)
    elapsed = time.process_time() - start
    gc.unfreeze()
    return elapsed * 1e6 / flows


async def best_of(sides: list[tuple[Hook | None, Hook | None]], flows: int, repeat: int) -> list[float]:
    """The best batch of each side, batches interleaved: on a shared box, a slow spell hits both sides alike and
    the other batches measure the neighbours."""
    best = [float("inf")] * len(sides)
    for _ in range(repeat):
        for i, hooks in enumerate(sides):
            best[i] = min(best[i], await per_flow(*hooks, flows))
    return best


# workload -> (Datakit config, reference module, options for the reference)
WORKLOADS: dict[str, tuple[Callable[[], dict[str, Any]], str, dict[str, Any]]] = {
    "passthrough": (wl.passthrough_config, "noop", {}),
    "transform": (wl.transform_config, "ref_transform", {}),
    "mock": (wl.mock_config, "ref_mock", {}),
    "chain10": (lambda: wl.chain_config(10), "ref_chain", {"bench_chain": 10}),
    "chain50": (lambda: wl.chain_config(50), "ref_chain", {"bench_chain": 50}),
}


def hooks_of(addon: Any) -> tuple[Hook | None, Hook | None]:
    return getattr(addon, "request", None), getattr(addon, "response", None)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=5000, help="flows per batch")
    parser.add_argument("--repeat", type=int, default=5, help="batches per figure; the best counts")
    parser.add_argument("--profile", choices=sorted(WORKLOADS), help="cProfile one Datakit workload")
    parser.add_argument("--no-record", action="store_true",
                        help="run Datakit with datakit_record=false (the node record's price is the difference)")
    parser.add_argument("--only", choices=sorted(WORKLOADS),
                        help="measure one workload (to sample it: py-spy record -f raw -o OUT -- python ...)")
    args = parser.parse_args()
    datakit = Datakit()
    with taddons.context(datakit) as tctx, tempfile.TemporaryDirectory() as tmp:

        async def datakit_hooks(name: str) -> tuple[Hook | None, Hook | None]:
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(yaml.safe_dump(WORKLOADS[name][0](), sort_keys=False))
            tctx.configure(datakit, datakit_config=str(path), datakit_record=not args.no_record)
            await per_flow(*hooks_of(datakit), 500)  # warm-up: lazy imports (pybars), first-use caches
            return hooks_of(datakit)

        async def reference_hooks(name: str) -> tuple[Hook | None, Hook | None]:
            _, module_name, options = WORKLOADS[name]
            module = importlib.import_module(module_name)
            addon = module.addons[0] if hasattr(module, "addons") else module
            if options:
                if addon not in tctx.master.addons.chain:
                    tctx.master.addons.add(addon)  # registers its options
                tctx.configure(addon, **options)
            await per_flow(*hooks_of(addon), 500)
            return hooks_of(addon)

        if args.profile:
            hooks = await datakit_hooks(args.profile)
            prepared = prepare(args.flows)
            profiler = cProfile.Profile()
            profiler.enable()
            await run_flows(*hooks, prepared)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
            print(f"cProfile over {args.flows} flows (times are totals: divide by the flow count)\n{out.getvalue()}")
            return

        print(f"best of {args.repeat} x {args.flows} flows; CPU µs per flow (request hook, then response hook if the "
              "flow has no answer yet)")
        print(f"{'workload':<12} {'no hooks':>9} {'reference':>10} {'Datakit':>9} {'engine extra':>13}")
        nothing = (await best_of([(None, None)], args.flows, args.repeat))[0]
        for name in [args.only] if args.only else WORKLOADS:
            # Datakit holds one config at a time: its hooks below are bound to this workload's plan.
            sides = [await reference_hooks(name), await datakit_hooks(name)]
            reference, engine = await best_of(sides, args.flows, args.repeat)
            print(f"{name:<12} {nothing:9.1f} {reference:10.1f} {engine:9.1f} {engine - reference:13.1f}")


if __name__ == "__main__":
    asyncio.run(main())
