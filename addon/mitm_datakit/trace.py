"""The debug trace of one request (spec §7.3, Kong 3.11-3.14 shape): node statuses and timed events.

Only built when `debug: true` and the request asks for it with `X-DataKit-Debug-Trace`.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from .redact import REDACTED, mask_headers, scrub
from .types import Value
from .values import type_name

if TYPE_CHECKING:
    from .plan import Plan, PlanNode

TRACE_HEADER = "X-DataKit-Debug-Trace"
TRACE_ON_VALUES = frozenset({"true", "yes", "on", "1", "enabled"})

_TYPE_NAMES = {"null": "any", "array": "any", "object": "map"}


def trace_requested(header_value: str | None) -> bool:
    return header_value is not None and header_value.strip().lower() in TRACE_ON_VALUES


def _typed(value: Value, key: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {} if key is None else {"key": key}
    name = type_name(value)
    entry["type"] = _TYPE_NAMES.get(name, name)
    entry["value"] = value
    return entry


class Trace:
    def __init__(self) -> None:
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        self.events: list[dict[str, Any]] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def event(
        self,
        node: PlanNode,
        action: str,
        *,
        value: Value = None,
        has_value: bool = False,
        fields: bool = False,
        error: str | None = None,
        duration: float | None = None,
    ) -> None:
        entry: dict[str, Any] = {"name": node.name, "type": node.type_name, "action": action, "at": self.elapsed()}
        if duration is not None:
            entry["duration"] = duration
        values: list[dict[str, Any]] = []
        if error is not None:
            values.append({"type": "error", "value": error})
        if has_value:
            if node.name == "vault" and isinstance(value, dict):
                value = {k: REDACTED for k in value}
            if fields and isinstance(value, dict):
                values.extend(_typed(v, k) for k, v in value.items())
            else:
                values.append(_typed(value))
        if values or action in ("run", "complete"):
            entry["values"] = values
        self.events.append(entry)

    def render(self, plan: Plan, statuses: list[str], status: str, errors: dict[int, str], secrets: list[str]) -> bytes:
        nodes = []
        for node in plan.nodes:
            entry: dict[str, Any] = {"name": node.name, "type": node.type_name, "status": statuses[node.id]}
            if node.id in errors:
                entry["error"] = errors[node.id]
            nodes.append(entry)
        ended = time.time()
        report = {
            "started_at": self.started_at,
            "ended_at": ended,
            "duration": ended - self.started_at,
            "status": status,
            "nodes": nodes,
            "events": mask_headers(self.events),
        }
        text = json.dumps(report, ensure_ascii=False, default=str)
        return scrub(text, secrets).encode("utf-8")
