"""Kong's Admin API error bodies: `schema violation` (code 2) naming the fields of the plugin that was
being changed, `invalid declarative configuration` (code 14) for a whole file, and the others."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, ConfigIssue
from .entities import Location, display_location
from .issues import ScopedIssue


class AdminError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message"))
        self.status = status
        self.body = body


def rejected(error: ConfigError, location: Location | None) -> AdminError:
    """A new version that does not load: a schema violation of the plugin, or of the whole file."""
    if location is None:
        return AdminError(400, declarative_error(error.issues))
    flat: dict[str, str] = {}
    for issue in error.issues:
        flat[".".join(_field_path(issue, location))] = issue.message
    messages = [f"{path}: {message}" for path, message in flat.items()]
    head = "schema violation" if len(messages) == 1 else f"{len(messages)} schema violations"
    return AdminError(400, violation(2, "schema violation", f"{head} ({'; '.join(messages)})", _nest(flat)))


def _field_path(issue: ConfigIssue, location: Location) -> list[str]:
    path: list[str] = []
    if isinstance(issue, ScopedIssue):
        inside = issue.location[: len(location)] == tuple(location)
        path = [
            str(p)
            for p in (issue.location[len(location) :] if inside else [display_location(issue.location)])
        ]
    else:
        path = ["config"]  # a bare config's own issue
    if issue.node_index is not None:
        path += ["nodes", str(issue.node_index)]
    if issue.field:
        path += issue.field.split(".")
    return path or ["@entity"]


def _nest(flat: Mapping[str, str]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for path, message in flat.items():
        node = nested
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else node
        node[last] = message
    return nested


def violation(code: int, name: str, message: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    return {"code": code, "name": name, "message": message, "fields": dict(fields)}


def declarative_error(issues: list[ConfigIssue]) -> dict[str, Any]:
    messages = [str(i) for i in issues]
    return violation(
        14,
        "invalid declarative configuration",
        "declarative config is invalid: " + "; ".join(messages),
        {"declarative": messages},
    )


def pretty(value: Any) -> str:
    """Lua-table style, as Kong prints keys in its messages: `{id="..."}`, `null`."""
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}={pretty(v)}" for k, v in value.items()) + "}"
    return "null" if value is None else json.dumps(value)
