"""A config file becomes a KongConfig: the entities it declares, checked as Kong checks them.

Three forms are accepted (docs/gateway.md):
- a Kong declarative file (`_format_version: "3.0"`, `services`, `routes`, `upstreams`, `targets`,
  `consumers`, `consumer_groups`, `plugins`), entities nested or top-level with references by name or
  id, as decK writes it;
- a bare Datakit `config` object (`nodes: ...`): one global datakit plugin;
- one plugin entity (`name: datakit`, `config: ...`): also global.

Every problem is collected and reported together, each naming its place in the file and its entity.
Plugin configs are checked later, when they become plans (`deployment.py`). The rules of each kind of
entity live in `services.py`, `upstreams.py`, `consumers.py` and `plugins.py`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from ..config.schema import Field, check_fields
from ..errors import ConfigError
from .consumers import build_consumer, build_consumer_group
from .entities import KongConfig, Location, Record, derived_id, display_location
from .issues import ScopedIssue
from .plugins import build_plugin, check_plugin_scopes
from .raw import RawEntity, UpstreamDraft, ref_key
from .schema import (
    CONSUMER,
    CONSUMER_GROUP,
    META_KEYS,
    NESTED,
    PLUGIN,
    ROUTE,
    SERVICE,
    TARGET,
    UNUSED_ENTITIES,
    UPSTREAM,
)
from .services import build_route, build_service
from .upstreams import build_target, build_upstream, finish_upstreams

FORMAT_VERSION = "3.0"
# Each kind: its fields, and how it is built. In build order: an entity refers to kinds built before it.
KINDS: dict[str, tuple[dict[str, Field], Callable[[Builder, RawEntity], None]]] = {
    "consumer_groups": (CONSUMER_GROUP, build_consumer_group),
    "services": (SERVICE, build_service),
    "routes": (ROUTE, build_route),
    "upstreams": (UPSTREAM, build_upstream),
    "targets": (TARGET, build_target),
    "consumers": (CONSUMER, build_consumer),
    "plugins": (PLUGIN, build_plugin),
}


def is_declarative(document: Mapping[str, Any]) -> bool:
    return "_format_version" in document or any(key in document for key in KINDS)


def parse_document(document: Mapping[str, Any], *, now: int) -> KongConfig:
    """Raise ConfigError listing every problem of the file's entities."""
    config, issues = read_document(document, now=now)
    if issues:
        raise ConfigError(list(issues))
    return config


def read_document(document: Mapping[str, Any], *, now: int) -> tuple[KongConfig, list[ScopedIssue]]:
    """The entities that could be read, and the problems of the others (all of them, not the first)."""
    builder = Builder(now)
    if is_declarative(document):
        builder.build(document)
    elif document.get("name") == "datakit":
        builder.config.form = "entity"
        build_plugin(builder, RawEntity("plugins", (), document, None))
    else:
        builder.config.form = "config"
        build_plugin(builder, RawEntity("plugins", (), {"name": "datakit", "config": dict(document)}, None))
    return builder.config, builder.issues


class Builder:
    """The state of one file being read: what is built so far, and what is wrong."""

    def __init__(self, now: int) -> None:
        self.now = now
        self.config = KongConfig(form="declarative")
        self.issues: list[ScopedIssue] = []
        self.built: dict[Location, Any] = {}  # where an entity was written -> what it became
        self.groups: list[Record] = []
        self.upstreams: list[UpstreamDraft] = []
        self.members: dict[str, list[Record]] = {}  # consumer key -> groups that list it
        self.seen: dict[tuple[str, str], Location] = {}  # (kind, id or endpoint key) -> declared at

    def report(self, at: Location, entity: str, message: str, field_name: str | None = None) -> None:
        self.issues.append(ScopedIssue(message, field=field_name, location=at, entity=entity))

    def build(self, document: Mapping[str, Any]) -> None:
        version = document.get("_format_version")
        if version != FORMAT_VERSION:
            found = "it is missing" if version is None else f"found {version!r}"
            self.report((), "", f'expected "{FORMAT_VERSION}" ({found})', "_format_version")
        for key, value in document.items():
            if key in UNUSED_ENTITIES and value:
                self.config.ignored.append(str(key))
            elif key not in META_KEYS and key not in KINDS and key not in UNUSED_ENTITIES:
                self.report((), "", "unknown field", str(key))
        entities: dict[str, list[RawEntity]] = {kind: [] for kind in KINDS}
        for kind in KINDS:
            self._walk(document, kind, (), None, entities)
        for kind, (_, build) in KINDS.items():
            for entity in entities[kind]:
                build(self, entity)
            if kind == "targets":
                finish_upstreams(self)
        check_plugin_scopes(self)

    def _walk(
        self,
        parent: Mapping[str, Any],
        kind: str,
        at: Location,
        owner: RawEntity | None,
        out: dict[str, list[RawEntity]],
    ) -> None:
        items = parent.get(kind)
        if items is None:
            return
        if not isinstance(items, list):
            self.report(at, "", "expected an array", kind)
            return
        for index, item in enumerate(items):
            where = (*at, kind, index)
            if not isinstance(item, Mapping):
                self.report(where, "", "expected a map")
                continue
            entity = RawEntity(kind, where, item, owner)
            out[kind].append(entity)
            for child in NESTED.get(kind, ()):
                if child in KINDS:  # credentials are nested too, but belong to plugins that do not run here
                    self._walk(item, child, where, entity, out)

    def record(self, entity: RawEntity, label: str) -> Record:
        """The entity's fields checked against Kong's schema, defaults filled in."""
        rules = KINDS[entity.kind][0]
        allowed = set(rules) | set(NESTED.get(entity.kind, ()))
        for key in entity.raw:
            if key not in allowed:
                self.report(entity.at, label, "unknown field", str(key))
        checked = check_fields(entity.raw, rules, lambda f, m: self.report(entity.at, label, m, f))
        # A copy: defaults are shared objects, and records leave this package (properties, Admin API).
        record = copy.deepcopy(checked)
        for key in ("url", *NESTED.get(entity.kind, ())):
            record.pop(key, None)
        return record

    def identify(
        self, entity: RawEntity, record: Record, key: str | None, label: str, *, unique_key: bool = True
    ) -> str:
        """Kong's id: the one given, else one derived from the endpoint key (lacking one, the place).

        A given id and a unique endpoint key (a name) may each be declared once per kind.
        """
        given = record.get("id")
        entity_id = given or derived_id(entity.kind, key or f"@{display_location(entity.at)}")
        record["id"] = entity_id
        for stamp in ("created_at", "updated_at"):
            if record.get(stamp) is None:
                record[stamp] = self.now
        for unique in dict.fromkeys(filter(None, (given, key if unique_key else None))):
            first = self.seen.setdefault((entity.kind, unique), entity.at)
            if first != entity.at:
                self.report(
                    entity.at, label, f"'{unique}' is declared twice (also at {display_location(first)})"
                )
        return str(entity_id)

    def resolve(self, value: Any, kind: str, entity: RawEntity, label: str, field_name: str) -> Any:
        """The entity a foreign key refers to, among those built so far; reported when there is none."""
        key = ref_key(value)
        found: Any = None
        if key is not None:
            if kind == "consumer_groups":
                found = next((g for g in self.groups if key in (g["id"], g.get("name"))), None)
            elif kind == "upstreams":
                found = next(
                    (u for u in self.upstreams if key in (u.record["id"], u.record.get("name"))), None
                )
            elif kind == "consumers":
                found = next(
                    (c for c in self.config.consumers if key in (c.id, c.username, c.custom_id)), None
                )
            else:
                found = getattr(self.config, kind[:-1])(key)  # KongConfig.service / .route
        if found is None:
            message = f"invalid reference '{field_name}: {key}' (no such entry in '{kind}')"
            self.report(entity.at, label, message, field_name)
        return found
