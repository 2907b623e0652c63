"""The exception tree of mitm-datakit.

    DatakitError
    ├── ConfigError      a config that cannot become a Plan; carries every ConfigIssue found
    └── NodeError        one node failed while a request ran the Plan
        └── InputTypeError   a value reached an input of the wrong type at run time
"""

from __future__ import annotations

from dataclasses import dataclass


class DatakitError(Exception):
    """Base class of every error this package raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config: which node (1-based index and name), which field, and why."""

    message: str
    node_index: int | None = None
    node_name: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = []
        if self.node_index is not None:
            label = f"node #{self.node_index}"
            if self.node_name:
                label += f" ({self.node_name})"
            where.append(label)
        if self.field:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ConfigError(DatakitError):
    """A config was rejected. `issues` lists every problem found, not only the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class NodeError(DatakitError):
    """A node failed. `message` is what Kong would put in the debug error body.

    `values` keeps the partial output a failed node still produced (a `call` that got a 403
    still has its status, headers and body), for the debug trace.
    """

    def __init__(self, message: str, *, values: dict[str, object] | None = None) -> None:
        self.message = message
        self.values = values
        super().__init__(message)


class InputTypeError(NodeError):
    """A value arrived at a typed input and could not be converted (spec §3.3 runtime check)."""
