"""CPU time spent inside one addon's `request` and `response` hooks, and in Python's garbage collector, per flow,
measured in a real proxy under load: load it with `-s` after the addon under test.

    mitmdump -s addon/datakit.py -s scripts/bench/hook_cpu.py --set hook_cpu_addon=datakit \\
        --set hook_cpu_report=/tmp/dk.txt ...        (the reference: --set hook_cpu_addon=reftransform)

Every `hook_cpu_every` flows after the first `hook_cpu_warmup` it writes one line to the report: process CPU, hook
CPU and collector CPU, each per flow, and the collections per 1,000 flows by generation. A hook that returns a
coroutine (a Datakit phase waiting on calls) is timed up to the return only; a collection that runs inside a
hook counts in both the hooks' and the collector's figure.

Why: in process (hooks_micro.py) the hooks run hot in the CPU's caches; inside mitmdump each request first passes
through about a millisecond of mitmproxy's own code, and the same hooks cost 2-3 times as much (docs/performance.md).
The wrapper's two clock reads add about 1 µs per hook call.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from mitmproxy import ctx, http


class HookCpu:
    def __init__(self) -> None:
        self.flows = 0
        self.hook_ns = 0
        self.gc_ns = 0
        self.collections = [0, 0, 0]
        self._gc_began = 0
        self._since_ns: int | None = None  # process CPU time when counting began

    def load(self, loader: Any) -> None:
        loader.add_option("hook_cpu_addon", str, "", "Name of the addon whose request/response hooks are timed.")
        loader.add_option("hook_cpu_report", str, "", "File the per-flow figures are appended to.")
        loader.add_option("hook_cpu_warmup", int, 2000, "Flows before the counters start.")
        loader.add_option("hook_cpu_every", int, 4000, "Flows between two report lines.")

    def running(self) -> None:
        target = ctx.master.addons.get(ctx.options.hook_cpu_addon)
        if target is None:
            raise ValueError(f"hook_cpu: no addon named {ctx.options.hook_cpu_addon!r}")
        for hook in ("request", "response"):
            original = getattr(target, hook, None)
            if original is not None:
                setattr(target, hook, self._timed(original))  # mitmproxy looks hooks up on every event
        gc.callbacks.append(self._on_gc)

    def _timed(self, hook: Any) -> Any:
        def timed(flow: http.HTTPFlow) -> Any:
            began = time.thread_time_ns()
            try:
                return hook(flow)
            finally:
                self.hook_ns += time.thread_time_ns() - began

        return timed

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_began = time.thread_time_ns()
        else:
            self.gc_ns += time.thread_time_ns() - self._gc_began
            self.collections[info["generation"]] += 1

    def response(self, flow: http.HTTPFlow) -> None:
        self.flows += 1
        counted = self.flows - ctx.options.hook_cpu_warmup
        if counted == 0:
            self.hook_ns = self.gc_ns = 0
            self.collections = [0, 0, 0]
            self._since_ns = time.process_time_ns()
        elif counted > 0 and counted % ctx.options.hook_cpu_every == 0 and self._since_ns is not None:
            cpu_us = (time.process_time_ns() - self._since_ns) / 1000 / counted
            per_1000 = ", ".join(f"{n * 1000 / counted:.1f}" for n in self.collections)
            line = (f"{counted} flows: process {cpu_us:.0f} µs/flow, hooks {self.hook_ns / counted / 1000:.1f}, "
                    f"collector {self.gc_ns / counted / 1000:.1f}; collections per 1,000 flows (gen 0, 1, 2): "
                    f"{per_1000}\n")
            with open(ctx.options.hook_cpu_report, "a", encoding="utf-8") as report:
                report.write(line)


addons = [HookCpu()]
