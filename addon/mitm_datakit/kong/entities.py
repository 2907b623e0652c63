"""Kong entities as the gateway uses them, each with the `record` Kong would store and return.

A record is what `kong.router.route`, `kong.router.service` and `kong.client.consumer` read and what
the Admin API answers: every field of the entity, defaults filled in, foreign keys as `{"id": ...}`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Kong's namespace for the ids it derives for declarative entities that have none
# (kong/db/schema/others/declarative_config.lua): uuid5(uuid5(NAMESPACE, "<entity>s"), key).
_KONG_NAMESPACE = uuid.UUID("fd02801f-0957-4a15-a55a-c8d9606f30b5")

Record = dict[str, Any]
Location = tuple[str | int, ...]  # where an entity sits in the file: ("services", 0, "routes", 1)


def derived_id(kind: str, key: str) -> str:
    """The id Kong derives from an entity's endpoint key, so it stays the same across restarts."""
    return str(uuid.uuid5(uuid.uuid5(_KONG_NAMESPACE, kind), key))


def display_location(location: Location) -> str:
    """`services.1.routes.2`: dotted and 1-based, as Kong's own error paths are."""
    return ".".join(str(p + 1) if isinstance(p, int) else p for p in location)


@dataclass(frozen=True, eq=False)
class Service:
    id: str
    name: str | None
    protocol: str
    host: str
    port: int
    path: str | None
    enabled: bool
    record: Record


@dataclass(frozen=True, eq=False)
class Route:
    id: str
    name: str | None
    service: Service | None
    protocols: tuple[str, ...]
    methods: tuple[str, ...]
    hosts: tuple[str, ...]
    paths: tuple[str, ...]
    headers: tuple[tuple[str, tuple[str, ...]], ...]  # (lower-case name, accepted values)
    strip_path: bool
    preserve_host: bool
    regex_priority: int
    path_handling: str
    https_redirect_status_code: int
    record: Record


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    weight: int


@dataclass(frozen=True, eq=False)
class Upstream:
    id: str
    name: str
    targets: tuple[Target, ...]
    host_header: str | None
    record: Record


@dataclass(frozen=True, eq=False)
class Consumer:
    id: str
    username: str | None
    custom_id: str | None
    groups: tuple[Record, ...]
    record: Record


@dataclass(frozen=True, eq=False)
class Plugin:
    id: str
    name: str
    enabled: bool
    route_id: str | None
    service_id: str | None
    consumer_id: str | None
    consumer_group_id: str | None
    config: Any
    record: Record
    location: Location  # () for a file that is this plugin alone
    label: str  # `datakit plugin on route "orders"`, for messages

    @property
    def consumer_scoped(self) -> bool:
        return bool(self.consumer_id or self.consumer_group_id)


@dataclass
class KongConfig:
    """Everything one config file declares."""

    form: str  # "declarative", "config" (a bare Datakit config) or "entity" (one plugin entity)
    services: list[Service] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    upstreams: dict[str, Upstream] = field(default_factory=dict)  # by name
    consumers: list[Consumer] = field(default_factory=list)
    plugins: list[Plugin] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # declared, but without effect on this proxy

    @property
    def routes_traffic(self) -> bool:
        """A file that declares services or routes decides where every flow goes (and 404s the rest)."""
        return bool(self.services or self.routes)

    def plugin(self, key: str) -> Plugin | None:
        """By id or by `instance_name`, as the Admin API finds plugins."""
        return next((p for p in self.plugins if key in (p.id, p.record.get("instance_name"))), None)

    def route(self, key: str) -> Route | None:
        return next((r for r in self.routes if key in (r.id, r.name)), None)

    def service(self, key: str) -> Service | None:
        return next((s for s in self.services if key in (s.id, s.name)), None)

    def upstream(self, key: str) -> Upstream | None:
        return self.upstreams.get(key) or next((u for u in self.upstreams.values() if u.id == key), None)

    def consumer(self, query: Mapping[str, Any]) -> Consumer | None:
        """The consumer with the id, username or custom_id asked for, tried in that order."""
        for key in ("id", "username", "custom_id"):
            wanted = query.get(key)
            found = next(
                (c for c in self.consumers if wanted is not None and c.record.get(key) == wanted), None
            )
            if found is not None:
                return found
        return None
