"""scripts/bench/hook_cpu.py, the benchmark's in-proxy hook timer, runs in a real mitmdump beside the addon it times
and reports per-flow figures; a wrong addon name stops the proxy at start-up instead of measuring nothing."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from harness import REPO_ROOT

HOOK_CPU = REPO_ROOT / "scripts" / "bench" / "hook_cpu.py"
TRANSFORM = {"nodes": [{"name": "SEEN_HOST", "type": "jq", "input": "request.headers", "jq": "{seen: .host}",
                        "output": "service_request.headers"}]}
LINE = re.compile(r"^(\d+) flows: process (\d+) µs/flow, hooks ([\d.]+), collector ([\d.]+); "
                  r"collections per 1,000 flows \(gen 0, 1, 2\): [\d.]+, [\d.]+, [\d.]+$")


def _options(report: Path, addon: str) -> list[str]:
    return ["-s", str(HOOK_CPU), "--set", f"hook_cpu_addon={addon}", "--set", f"hook_cpu_report={report}",
            "--set", "hook_cpu_warmup=2", "--set", "hook_cpu_every=5"]


def test_reports_the_hooks_cpu_per_flow(mitmdump, client: httpx.Client, tmp_path: Path) -> None:
    report = tmp_path / "hooks.txt"
    proxy = mitmdump(TRANSFORM, *_options(report, "datakit"))
    for _ in range(12):  # 2 of warm-up, then a line after 5 and after 10
        assert client.get(proxy.url + "/x").status_code == 200
    lines = report.read_text(encoding="utf-8").splitlines()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    assert [int(m.group(1)) for m in matches if m] == [5, 10]
    assert all(float(m.group(3)) > 0 for m in matches if m), "the Datakit hooks ran and were timed"


@pytest.mark.allow_addon_errors
def test_an_unknown_addon_name_stops_the_proxy(mitmdump_expect_exit, tmp_path: Path) -> None:
    rc, output = mitmdump_expect_exit(TRANSFORM, extra_args=_options(tmp_path / "hooks.txt", "nosuchaddon"))
    assert rc != 0
    assert "hook_cpu: no addon named 'nosuchaddon'" in output
