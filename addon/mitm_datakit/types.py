"""Shared type names: Datakit's value types and the JSON-like values that flow along edges."""

from __future__ import annotations

import enum
from typing import Any, TypeAlias

# A value on an edge: what json.loads returns, plus `bytes` for a body that is not valid UTF-8
# (kept as bytes so that passing it through untouched loses nothing).
Value: TypeAlias = Any

SELF = "$self"


class DkType(enum.Enum):
    """Datakit's connection types (spec §3.3)."""

    ANY = "any"
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    OBJECT = "object"  # fields known at config time (a call node, the request node, a static node)
    MAP = "map"  # dynamic string keys (headers, query)

    def __str__(self) -> str:
        return self.value
