"""Config files for the commands: load and plan one, and say where each problem is in the file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.positions import Position, SourceMap
from ..errors import ConfigError, ConfigIssue
from ..kong.deployment import Deployment, read_deployment
from ..kong.issues import ScopedIssue
from ..plan import Plan


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
        return f"{where}: {dataclasses.replace(self.issue, message=self.message)}"

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


def check_file(path: str, compat: str = "auto") -> Deployment:
    """Load a file exactly as the proxy does (bare config, plugin entity or declarative file, in the
    dialect `compat` picks); raise InvalidConfigFile with every problem and where it is."""
    try:
        return read_deployment(path, compat)
    except ConfigError as e:
        source = _source_map(path)
        raise InvalidConfigFile([LocatedIssue(path, issue, _locate(source, issue)) for issue in e.issues]) from None


def plan_file(path: str, compat: str = "auto") -> Plan:
    """The one 3.11+ plan of a file, for the commands that draw or run a plan."""
    deployment = check_file(path, compat)
    plans = list(deployment.plans.values())
    if len(plans) != 1:
        problem = "no enabled datakit plugin" if not plans else f"{len(plans)} datakit plugins; give a file with one"
        raise InvalidConfigFile([LocatedIssue(path, ConfigIssue(problem), None)])
    plan = plans[0]
    if not isinstance(plan, Plan):
        message = "a 3.9/3.10 config: convert it with `datakit validate --to-3.11` first"
        raise InvalidConfigFile([LocatedIssue(path, ConfigIssue(message), None)])
    return plan


def _locate(source: SourceMap, issue: ConfigIssue) -> Position | None:
    # Positions are known for a bare config's nodes; inside a declarative file the issue names its entity.
    return None if isinstance(issue, ScopedIssue) else source.locate(issue)


def _source_map(path: str) -> SourceMap:
    try:
        return SourceMap.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return SourceMap(None)  # the loader's issue already says why the file cannot be read
