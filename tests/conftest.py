"""Suite-wide: the reliability tally (issue 8) that docs/reliability.md quotes.

Fault, fuzz and secret tests count what they did through the `reliability` fixture; at the end of the session the
totals are printed in pytest's summary and written to `reliability.json` in the pytest cache directory's parent
(the repo root), so the figures in docs/reliability.md come from the suite's own output, not from prose.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from unit.redis_server import RedisServer  # tests/ is on sys.path: this file's folder has no __init__.py

_REPORT = "reliability.json"


class ReliabilityTally:
    """Counters that only grow; `fault(kind)` records that the proxy survived one more kind of fault."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.fault_kinds: set[str] = set()

    def sent(self, n: int = 1) -> None:
        self.counts["requests_sent_under_faults"] += n

    def answered(self, n: int = 1) -> None:
        self.counts["requests_answered_correctly"] += n

    def lost(self, n: int = 1) -> None:
        self.counts["requests_lost"] += n

    def fault(self, kind: str) -> None:
        self.fault_kinds.add(kind)

    def fuzz_cases(self, n: int) -> None:
        self.counts["fuzz_cases_tried"] += n

    def secrets_checked(self, places: int, leaked: int) -> None:
        self.counts["secret_places_checked"] += places
        self.counts["secrets_leaked"] += leaked

    def as_dict(self) -> dict[str, object]:
        return {**{k: self.counts[k] for k in sorted(self.counts)}, "fault_kinds_survived": sorted(self.fault_kinds)}


_TALLY = ReliabilityTally()


@pytest.fixture(scope="session")
def reliability() -> ReliabilityTally:
    return _TALLY


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port (the cache tests, unit and e2e), its files in the test's folder."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory).start()
    try:
        yield server
    finally:
        server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not _TALLY.counts and not _TALLY.fault_kinds:
        return
    report = _TALLY.as_dict()
    terminalreporter.section("reliability")
    for key, value in report.items():
        terminalreporter.write_line(f"{key}: {value}")
    Path(config.rootpath, _REPORT).write_text(json.dumps(report, indent=2) + "\n")
