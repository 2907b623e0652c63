"""The benchmark's smoke form, so `scripts/bench.py` never rots: it must run and produce numbers.

Speed goals live in the benchmark itself (docs/performance.md), never here: this only checks that every point was
measured. Needs nginx and wrk (Debian packages; `.ci/run` installs them) and two CPUs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("bare", "dk_mock")  # cheap: no third-party API; dk_mock runs the Datakit addon end to end


def _missing_tools() -> list[str]:
    found = {"wrk": shutil.which("wrk"), "nginx": shutil.which("nginx") or Path("/usr/sbin/nginx").exists(),
             "taskset": shutil.which("taskset")}
    return [name for name, path in found.items() if not path]


@pytest.mark.e2e
@pytest.mark.skipif(bool(_missing_tools()), reason=f"benchmark tools not installed: {', '.join(_missing_tools())} "
                    "(apt-get install nginx wrk)")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the benchmark pins the proxy and the load to two CPUs")
def test_quick_benchmark_produces_numbers(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench.py"), "--quick", "--only", ",".join(VARIANTS),
         "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    report = json.loads(out.read_text())
    assert set(report["variants"]) == set(VARIANTS)
    for name, variant in report["variants"].items():
        assert variant["rss_before_kib"] > 0 and variant["rss_after_kib"] > 0, name
        assert set(variant["points"]) == {"1", "16", "64"}, name
        for conc, point in variant["points"].items():
            where = f"{name} at c={conc}"
            assert point["requests"] > 0 and point["rps"] > 0, where
            assert point["errors"] == 0, where
            assert 0 < point["p50_ms"] <= point["p99_ms"], where
            assert point["cpu_us_per_req"] > 0, where
    assert report["targets"], "the targets section is printed and saved even when most are n/a"
