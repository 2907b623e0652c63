"""The Admin API's operations on the config file, with Kong's bodies and errors (no HTTP here:
`proxy/admin.py` serves them).

Every change is a new version of the whole file: the plugin is edited where the file declares it
(nested under a route or service, or at the top level), comments and layout kept. The caller checks
the new version as any reload would, and only then writes and serves it; an error maps back onto
the plugin's fields as Kong's `schema violation` 400.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config.loader import parse_document
from ..errors import ConfigError, ConfigIssue
from .admin_errors import AdminError, declarative_error, pretty, violation
from .deployment import DATAKIT, Deployment
from .document import EditableDocument
from .entities import Location, Plugin

SCOPES = (
    ("route", "routes"),
    ("service", "services"),
    ("consumer", "consumers"),
    ("consumer_group", "consumer_groups"),
)
READ_ONLY = ("id", "created_at", "updated_at")
EMPTY_DECLARATIVE = {"_format_version": "3.0"}


@dataclass(frozen=True)
class Change:
    """A new version of the file, and where the changed plugin sits in it (for error messages)."""

    text: str
    location: Location | None
    plugin_id: str | None = None


def not_found() -> AdminError:
    return AdminError(404, {"message": "Not found"})


def plugin_json(plugin: Plugin) -> dict[str, Any]:
    return dict(plugin.record)


def list_plugins(deployment: Deployment) -> dict[str, Any]:
    return {"data": [plugin_json(p) for p in deployment.kong.plugins], "next": None}


def find_plugin(deployment: Deployment, key: str) -> Plugin:
    plugin = deployment.kong.plugin(key)
    if plugin is None:
        raise not_found()
    return plugin


def create_plugin(
    deployment: Deployment, body: Any, *, as_json: bool, plugin_id: str | None = None
) -> Change:
    body = _checked_body(body, creating=True)
    new_id = plugin_id or body.get("id") or str(uuid.uuid4())
    if deployment.kong.plugin(new_id) is not None:
        raise AdminError(
            400,
            violation(
                3,
                "primary key violation",
                f"primary key violation on key '{{id=\"{new_id}\"}}'",
                {"id": new_id},
            ),
        )
    scope = _scope(deployment, body, current=None)
    _check_unique(deployment, body["name"], scope, ignore=None)
    entry = {
        "id": new_id,
        **{k: v for k, v in body.items() if k not in READ_ONLY},
        **_written(deployment, scope),
    }
    # A file that is one plugin has no routes or services to scope by and holds the only global
    # instance, so a creation that got here is into a declarative file.
    assert deployment.kong.form == "declarative"
    document = _editable(deployment, as_json)
    document.append("plugins", entry)
    return Change(document.dump(), ("plugins", len(document.root["plugins"]) - 1), new_id)


def update_plugin(deployment: Deployment, key: str, body: Any, *, as_json: bool, replace: bool) -> Change:
    """PATCH (replace=False) merges into the plugin, `config` one level deep; PUT replaces it."""
    plugin = find_plugin(deployment, key)
    if isinstance(body, Mapping) and not replace:
        body = {"name": plugin.name, **body}  # only datakit plugins can be changed here
    body = _checked_body(body, creating=replace)
    scope = _scope(deployment, body, current=None if replace else plugin)  # PUT: what it omits is gone
    name = body.get("name", plugin.name)
    _check_unique(deployment, name, scope, ignore=plugin)
    moved = scope != _scope_of(plugin)
    document = _editable(deployment, as_json)
    fields = {k: v for k, v in body.items() if k not in READ_ONLY and k not in dict(SCOPES)}
    if deployment.kong.form == "config":
        if not replace and set(fields) <= {"name", "config"} and name == DATAKIT and not moved:
            _merge_config(document.root, fields.get("config"))
            return Change(document.dump(), (), plugin.id)
        document.root = {"name": DATAKIT, "config": document.root}
    entry = document.get(plugin.location)
    if replace:
        entry = {"name": name, **fields}
    else:
        for field_name, value in fields.items():
            if (
                field_name == "config"
                and isinstance(value, Mapping)
                and isinstance(entry.get("config"), Mapping)
            ):
                _merge_config(entry["config"], value)
            else:
                entry[field_name] = value
    entry = {"id": plugin.id, **{k: v for k, v in entry.items() if k != "id"}}
    top_level = len(plugin.location) == 2  # `plugins[i]`: its scope is written in it, not implied by a parent
    if not moved:
        if replace and top_level:
            entry.update(_written(deployment, scope))
        document.set(plugin.location, _keep_layout(document.get(plugin.location), entry))
        return Change(document.dump(), plugin.location, plugin.id)
    assert plugin.location, "a file that is one plugin has nothing to scope it by"
    document.delete(plugin.location)
    unscoped = {k: v for k, v in entry.items() if k not in dict(SCOPES)}
    document.append("plugins", {**unscoped, **_written(deployment, scope)})
    return Change(document.dump(), ("plugins", len(document.root["plugins"]) - 1), plugin.id)


def delete_plugin(deployment: Deployment, key: str, *, as_json: bool) -> Change | None:
    """None when there is no such plugin: Kong answers 204 either way."""
    plugin = deployment.kong.plugin(key)
    if plugin is None:
        return None
    document = _editable(deployment, as_json)
    if plugin.location:
        document.delete(plugin.location)
    else:
        document.root = dict(EMPTY_DECLARATIVE)  # the file was this plugin alone
    return Change(document.dump(), None)


def replace_config(payload: Any, *, as_json: bool) -> Change:
    """DB-less `POST /config`: the body is the new declarative file (a map, or its text in `config`)."""
    if isinstance(payload, Mapping) and isinstance(payload.get("config"), str):
        payload = payload["config"]
    if isinstance(payload, str):
        try:
            document = parse_document(payload, source="config")
        except ConfigError as e:
            raise AdminError(400, declarative_error(e.issues)) from None
        text = payload
    elif isinstance(payload, Mapping):
        document = dict(payload)
        editable = EditableDocument("{}", as_json=as_json)
        editable.root = document
        text = editable.dump()
    else:
        raise AdminError(400, {"message": "expected a declarative config: a map, or its text in `config`"})
    if "_format_version" not in document:
        raise AdminError(
            400, declarative_error([ConfigIssue("required field missing", field="_format_version")])
        )
    return Change(text, None)


def entities_json(deployment: Deployment) -> dict[str, Any]:
    """`POST /config`'s answer: every entity loaded, by kind and id."""
    kong = deployment.kong
    groups = {
        "services": [s.record for s in kong.services],
        "routes": [r.record for r in kong.routes],
        "upstreams": [u.record for u in kong.upstreams.values()],
        "consumers": [c.record for c in kong.consumers],
        "plugins": [p.record for p in kong.plugins],
    }
    return {kind: {record["id"]: record for record in records} for kind, records in groups.items()}


# -- helpers ----------------------------------------------------------------------------------
def _checked_body(body: Any, *, creating: bool) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise AdminError(400, {"message": "Cannot parse JSON body: expected a JSON object"})
    name = body.get("name")
    if creating and name is None:
        raise AdminError(
            400,
            violation(
                2,
                "schema violation",
                "schema violation (name: required field missing)",
                {"name": "required field missing"},
            ),
        )
    if name is not None and name != DATAKIT:
        reason = f"plugin '{name}' not enabled; add it to the 'plugins' configuration property"
        raise AdminError(
            400, violation(2, "schema violation", f"schema violation (name: {reason})", {"name": reason})
        )
    return dict(body)


def _scope_of(plugin: Plugin) -> dict[str, str | None]:
    return {
        "route": plugin.route_id,
        "service": plugin.service_id,
        "consumer": plugin.consumer_id,
        "consumer_group": plugin.consumer_group_id,
    }


def _scope(
    deployment: Deployment, body: Mapping[str, Any], *, current: Plugin | None
) -> dict[str, str | None]:
    """The scope ids the body asks for (`{"id": ...}`, `{"name": ...}`, a string, or null); the
    plugin's own where the body does not say."""
    scope = _scope_of(current) if current else dict.fromkeys(dict(SCOPES))
    kong = deployment.kong
    for key, kind in SCOPES:
        if key not in body:
            continue
        ref = body[key]
        if ref is None:
            scope[key] = None
            continue
        wanted = (
            ref
            if isinstance(ref, str)
            else ref.get("id") or ref.get("name")
            if isinstance(ref, Mapping)
            else None
        )
        entity: Any = None
        if isinstance(wanted, str):
            if kind == "routes":
                entity = kong.route(wanted)
            elif kind == "services":
                entity = kong.service(wanted)
            elif kind == "consumers":
                entity = kong.consumer({"id": wanted, "username": wanted})
        if entity is None:
            message = f"the foreign key '{pretty(ref)}' does not reference an existing '{kind}' entity."
            raise AdminError(400, violation(4, "foreign key violation", message, {key: ref}))
        scope[key] = entity.id
    return scope


def _check_unique(
    deployment: Deployment, name: str, scope: Mapping[str, str | None], *, ignore: Plugin | None
) -> None:
    for plugin in deployment.kong.plugins:
        if plugin is not ignore and plugin.name == name and _scope_of(plugin) == dict(scope):
            key = {
                "consumer": scope["consumer"],
                "name": name,
                "route": scope["route"],
                "service": scope["service"],
            }
            shown = ",".join(f"{k}={pretty({'id': v} if v and k != 'name' else v)}" for k, v in key.items())
            message = f"UNIQUE violation detected on '{{{shown}}}'"
            raise AdminError(409, violation(5, "unique constraint violation", message, key))


def _written(deployment: Deployment, scope: Mapping[str, str | None]) -> dict[str, str]:
    """Scope references as a person would write them at the top level: by name where there is one."""
    kong = deployment.kong
    written: dict[str, str] = {}
    for key, value in scope.items():
        if value is None:
            continue
        entity: Any = (
            kong.route(value) if key == "route" else kong.service(value) if key == "service" else None
        )
        written[key] = (entity.name if entity is not None and entity.name else None) or value
    return written


def _editable(deployment: Deployment, as_json: bool) -> EditableDocument:
    return EditableDocument(deployment.text, as_json=as_json)


def _merge_config(target: Any, patch: Any) -> None:
    if isinstance(patch, Mapping):
        for key, value in patch.items():
            target[key] = value


def _keep_layout(old: Any, new: dict[str, Any]) -> Any:
    """Write `new` into the existing map object, so comments attached to kept keys stay."""
    for key in [k for k in old if k not in new]:
        del old[key]
    for key, value in new.items():
        old[key] = value
    return old
