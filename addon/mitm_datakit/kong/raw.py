"""Entities as the file writes them, before they are checked and built (`declarative.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .entities import Location, Record, Target

# The HTTP scheme each Kong protocol travels on through mitmproxy.
HTTP_SCHEME = {
    "http": "http",
    "ws": "http",
    "grpc": "http",
    "https": "https",
    "wss": "https",
    "grpcs": "https",
}


@dataclass
class RawEntity:
    """One entity as written, where it was written, and the entity it is nested in."""

    kind: str  # "services", "routes", ... (its key in the file)
    at: Location
    raw: Mapping[str, Any]
    parent: RawEntity | None


@dataclass
class UpstreamDraft:
    """An upstream while its targets (nested or top-level) are being collected."""

    record: Record
    targets: list[Target] = field(default_factory=list)


def ref_key(value: Any) -> str | None:
    """A foreign key as written: `name-or-id`, `{id: ...}` or `{name: ...}`."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        key = value.get("id") or value.get("name") or value.get("username")
        return key if isinstance(key, str) else None
    return None


def label(kind: str, name: Any) -> str:
    """`route "orders"`, or just `route` for one without a name: how messages name an entity."""
    return f'{kind} "{name}"' if isinstance(name, str) else kind
