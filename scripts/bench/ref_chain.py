"""Reference for (d) chain: the same jq step run N-2 times on a seed value, then answered directly.

`--set bench_chain=N` is the node count of the Datakit graph it is compared with (static + N-2 jq + exit); each
step has its own compiled program, as each jq node of the graph has.
"""

from __future__ import annotations

from typing import Any

import jq
from mitmproxy import ctx, http

import bench_workloads as wl


class RefChain:
    def __init__(self) -> None:
        self.steps: list[Any] = []  # compiled jq programs

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("bench_chain", int, 50, "Node count of the Datakit chain this reference mirrors.")

    def configure(self, updated: set[str]) -> None:
        if "bench_chain" in updated:
            self.steps = [jq.compile(wl.CHAIN_STEP_JQ) for _ in range(ctx.options.bench_chain - 2)]

    def request(self, flow: http.HTTPFlow) -> None:
        value = wl.CHAIN_SEED
        for step in self.steps:
            value = step.input_value(value).first()
        flow.response = http.Response.make(200, wl.json_bytes(value), {"Content-Type": "application/json"})


addons = [RefChain()]
