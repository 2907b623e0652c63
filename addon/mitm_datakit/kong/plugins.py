"""Plugins of a declarative file, scoped by where they are nested or by the references they carry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .entities import Plugin, display_location
from .raw import RawEntity, ref_key

if TYPE_CHECKING:
    from .declarative import Builder

SCOPES = (
    ("route", "routes"),
    ("service", "services"),
    ("consumer", "consumers"),
    ("consumer_group", "consumer_groups"),
)


def build_plugin(b: Builder, entity: RawEntity) -> None:
    raw, name = entity.raw, entity.raw.get("name")
    plain = f"{name} plugin" if isinstance(name, str) else "plugin"
    record = b.record(entity, plain)
    owners: dict[str, Any] = {}
    parent_kind = entity.parent.kind[:-1] if entity.parent else None
    written: list[str] = []  # Kong's cache key names a parent by id, a reference as written
    for key, kind in SCOPES:
        if key == parent_kind and entity.parent is not None:
            owners[key] = b.built.get(entity.parent.at)
            written.append(_id_of(owners[key]) or "")
        else:
            given = raw.get(key)
            owners[key] = b.resolve(given, kind, entity, plain, key) if given is not None else None
            written.append(ref_key(given) or "")
    name_label = plugin_label(name, owners)
    if name == "datakit" and not isinstance(raw.get("config"), Mapping):
        problem = "required field missing" if raw.get("config") is None else "expected a map"
        b.report(entity.at, name_label, problem, "config")
    instance = record.get("instance_name")
    key = instance or ":".join(["plugins", str(name), *written])
    plugin_id = b.identify(entity, record, key, name_label, unique_key=bool(instance))
    ids = {key: _id_of(owner) for key, owner in owners.items()}
    record.update({key: {"id": value} if value else None for key, value in ids.items()})
    if isinstance(name, str):
        plugin = Plugin(
            plugin_id,
            name,
            record["enabled"],
            ids["route"],
            ids["service"],
            ids["consumer"],
            ids["consumer_group"],
            raw.get("config"),
            record,
            entity.at,
            name_label,
        )
        b.config.plugins.append(plugin)


def check_plugin_scopes(b: Builder) -> None:
    """Kong keeps one instance of a plugin per scope (its cache key); a second is an error."""
    first: dict[tuple[Any, ...], Plugin] = {}
    for plugin in b.config.plugins:
        scope = (
            plugin.name,
            plugin.route_id,
            plugin.service_id,
            plugin.consumer_id,
            plugin.consumer_group_id,
        )
        other = first.setdefault(scope, plugin)
        if other is not plugin:
            message = (
                f"another {plugin.name} plugin has the same scope (at {display_location(other.location)})"
            )
            b.report(plugin.location, plugin.label, message)


def plugin_label(name: Any, owners: Mapping[str, Any]) -> str:
    """`datakit plugin on route "orders"`: how messages name a plugin instance."""
    scopes = []
    for key, owner in owners.items():
        if owner is not None:
            shown = owner.get("name") if isinstance(owner, dict) else getattr(owner, "name", None)
            shown = shown or getattr(owner, "username", None) or _id_of(owner)
            scopes.append(f'{key.replace("_", " ")} "{shown}"')
    plugin = f"{name} plugin" if isinstance(name, str) else "plugin"
    return f"{plugin} on {' and '.join(scopes)}" if scopes else f"global {plugin}"


def _id_of(owner: Any) -> str | None:
    if owner is None:
        return None
    return str(owner["id"]) if isinstance(owner, dict) else str(owner.id)
