"""Config files for the commands: load and plan one, and say where each problem is in the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import load_config_file
from ..config.positions import Position, SourceMap
from ..errors import ConfigError, ConfigIssue
from ..plan import Plan, build_plan


@dataclass(frozen=True)
class LocatedIssue:
    """A config problem with the file and, when the file could be parsed, its line and column."""

    file: str
    issue: ConfigIssue
    position: Position | None

    @property
    def message(self) -> str:
        # The loader prefixes its own messages with the file name, which the location already gives.
        return self.issue.message.removeprefix(f"{self.file}: ")

    def text(self) -> str:
        """`file:line:column: node #2 (JOIN), field 'jq': reason`, the form editors and CI logs link."""
        where = (
            self.file if self.position is None else f"{self.file}:{self.position.line}:{self.position.column}"
        )
        located = ConfigIssue(self.message, self.issue.node_index, self.issue.node_name, self.issue.field)
        return f"{where}: {located}"

    def as_json(self) -> dict[str, Any]:
        node = None
        if self.issue.node_index is not None:
            node = {"index": self.issue.node_index, "name": self.issue.node_name}
        return {
            "file": self.file,
            "line": self.position.line if self.position else None,
            "column": self.position.column if self.position else None,
            "node": node,
            "field": self.issue.field,
            "message": self.message,
        }


class InvalidConfigFile(Exception):
    """A config file that cannot become a Plan, with every problem located."""

    def __init__(self, issues: list[LocatedIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(issue.text() for issue in issues))


def plan_file(path: str) -> Plan:
    """Load and plan a config file; raise InvalidConfigFile with every problem and where it is."""
    try:
        return build_plan(load_config_file(path))
    except ConfigError as e:
        source = _source_map(path)
        raise InvalidConfigFile(
            [LocatedIssue(path, issue, source.locate(issue)) for issue in e.issues]
        ) from None


def _source_map(path: str) -> SourceMap:
    try:
        return SourceMap.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return SourceMap(None)  # the loader's issue already says why the file cannot be read
