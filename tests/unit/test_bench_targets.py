"""The benchmark's verdict lines (scripts/bench.py) from measured points: the A/A noise row and the fan-out target."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_under_test", REPO / "scripts" / "bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _point(bench: ModuleType, *, rps: float = 1000.0, cpu: float = 1000.0, p99: float = 100.0) -> object:
    return bench.Point(64, int(rps * 3), 3.0, rps, p99 / 2, p99, cpu, 0, 99.0, 0.0)


def _measured(bench: ModuleType, name: str, rounds: list[tuple[float, float]]) -> object:
    """A variant measured alone at 64 connections, one (req/s, p99 ms) per round."""
    measured = bench.Measured(bench.BY_NAME[name])
    measured.segments[64] = [_point(bench, rps=rps, p99=p99) for rps, p99 in rounds]
    measured.points[64] = bench.summarize(measured.segments[64])
    return measured


def test_noise_row_gives_the_median_and_range_of_the_twin_pairs(bench: ModuleType) -> None:
    # capacity(a, b) is b's CPU per request over a's
    paired = {("ref_transform_twin", "ref_transform", 16): [(_point(bench, cpu=c), _point(bench, cpu=1000.0))
                                                            for c in (1000.0, 1050.0, 980.0)]}
    target = bench.noise_target(paired, "ref_transform_twin", "ref_transform")
    assert target.status == "info"
    assert "c=16: median 1.000x, rounds 0.952-1.020x" in target.detail
    assert "c=64" not in target.detail
    assert bench.noise_target({}, "ref_transform_twin", "ref_transform").status == "n/a"


@pytest.mark.parametrize(
    ("fan2", "status", "shown"),
    [
        # rounds 0.62, 0.70, 0.58 of bare: median 0.62; p99 median 240
        ([(620.0, 240.0), (700.0, 230.0), (580.0, 260.0)], "PASS", "0.620x req/s (>= 0.6; rounds 0.620, 0.700, 0.580)"),
        ([(620.0, 240.0), (700.0, 260.0), (580.0, 270.0)], "FAIL", "p99 260 ms (< 250"),
        ([(500.0, 200.0), (590.0, 200.0), (700.0, 200.0)], "FAIL", "0.590x req/s"),
    ],
)
def test_fanout_target_judges_dk_and_shows_the_reference_beside_it(
    bench: ModuleType, fan2: list[tuple[float, float]], status: str, shown: str
) -> None:
    results = {
        "bare": _measured(bench, "bare", [(1000.0, 150.0)] * 3),
        "dk_fan2": _measured(bench, "dk_fan2", fan2),
        "ref_fan2": _measured(bench, "ref_fan2", [(640.0, 210.0), (590.0, 220.0), (600.0, 230.0)]),
    }
    target = bench.fanout_target(results, {})
    assert target.status == status
    assert shown in target.detail
    assert "the hand-written addon in the same rounds: 0.600x, p99 220 ms" in target.detail
