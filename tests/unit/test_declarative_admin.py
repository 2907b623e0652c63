"""The Admin API's operations on config files (kong/admin.py): new file versions and Kong's errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from mitm_datakit.errors import ConfigError
from mitm_datakit.kong import admin
from mitm_datakit.kong.admin_errors import AdminError, rejected
from mitm_datakit.kong.deployment import Deployment, load_deployment

DECLARATIVE = """\
_format_version: "3.0"
# the orders API
services:
- name: orders
  url: http://orders.test
  routes:
  - name: list
    paths: [/orders]
    plugins:
    - name: datakit
      instance_name: list-dk   # keep me
      config:
        nodes:
        - {name: E, type: exit, status: 200}
  - name: other
    paths: [/other]
"""
BARE = "# a bare config\nnodes:\n- {name: E, type: exit, status: 200}\n"
NODES = {"nodes": [{"name": "E", "type": "exit", "status": 201}]}
ONE_PLUGIN = "_format_version: '3.0'\nplugins: [{name: datakit, config: {nodes: [{name: E, type: exit}]}}]"
TELEPORT = "_format_version: '3.0'\nplugins: [{name: datakit, config: {nodes: [{name: A, type: teleport}]}}]"


def load(text: str) -> Deployment:
    return load_deployment(text, source="kong.yaml")


def apply(change: admin.Change) -> Deployment:
    """What the server does with a change: load it, or turn its error into the Admin API's answer."""
    try:
        return load(change.text)
    except ConfigError as e:
        raise rejected(e, change.location) from None


def rejection(call: Any, *args: Any, **kwargs: Any) -> AdminError:
    with pytest.raises(AdminError) as raised:
        apply(call(*args, **kwargs))
    return raised.value


def test_create_writes_a_top_level_plugin_with_its_id_and_scope_by_name() -> None:
    dep = load(DECLARATIVE)
    other = dep.kong.route("other")
    assert other is not None
    change = admin.create_plugin(
        dep, {"name": "datakit", "route": {"id": other.id}, "config": NODES}, as_json=False
    )
    written = yaml.safe_load(change.text)["plugins"][0]
    assert written["route"] == "other" and written["id"] == change.plugin_id
    new = apply(change)
    plugin = new.kong.plugin(change.plugin_id or "")
    assert plugin is not None and plugin.route_id == other.id
    assert "# the orders API" in change.text and "# keep me" in change.text


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        (
            {"name": "datakit", "route": "list", "config": NODES},
            409,
            5,
            "UNIQUE violation detected on '{consumer=null",
        ),
        (
            {"name": "datakit", "service": {"id": "6e1d5e24-2c1a-4b3c-9f6a-3d9b1c7e8a01"}, "config": NODES},
            400,
            4,
            "does not reference an existing 'services' entity",
        ),
        ({"name": "key-auth"}, 400, 2, "schema violation (name: plugin 'key-auth' not enabled"),
        ({"config": NODES}, 400, 2, "schema violation (name: required field missing)"),
        (["not", "an", "object"], 400, None, "Cannot parse JSON body"),
    ],
    ids=["same-scope", "unknown-service", "other-plugin", "no-name", "not-an-object"],
)
def test_create_is_refused_before_anything_is_written(
    body: Any, status: int, code: int | None, message: str
) -> None:
    with pytest.raises(AdminError) as raised:
        admin.create_plugin(load(DECLARATIVE), body, as_json=False)
    assert raised.value.status == status and raised.value.body.get("code") == code
    assert message in raised.value.body["message"]


def test_a_bad_config_is_a_schema_violation_naming_the_field() -> None:
    bad = {"nodes": [{"name": "F", "type": "jq", "jq": "{a:"}, {"name": "G", "type": "teleport"}]}
    error = rejection(
        admin.create_plugin, load(DECLARATIVE), {"name": "datakit", "config": bad}, as_json=False
    )
    assert error.status == 400 and error.body["code"] == 2 and error.body["name"] == "schema violation"
    assert error.body["message"].startswith("2 schema violations (config.nodes.1.jq: invalid jq program")
    assert "config.nodes.2.type: unknown node type: teleport" in error.body["message"]
    assert error.body["fields"]["config"]["nodes"]["1"]["jq"].startswith("invalid jq program")


def test_an_envelope_field_error_names_the_field() -> None:
    error = rejection(
        admin.create_plugin,
        load(DECLARATIVE),
        {"name": "datakit", "enabled": "yes", "config": NODES},
        as_json=False,
    )
    assert error.body["message"] == "schema violation (enabled: expected a boolean)"


def test_other_plugins_can_be_deleted_but_not_changed() -> None:
    dep = load(DECLARATIVE + "plugins:\n- name: key-auth\n")
    key_auth = next(p for p in dep.kong.plugins if p.name == "key-auth")
    with pytest.raises(AdminError) as raised:
        admin.update_plugin(dep, key_auth.id, {"enabled": False}, as_json=False, replace=False)
    assert raised.value.status == 400 and "plugin 'key-auth' not enabled" in raised.value.body["message"]
    change = admin.delete_plugin(dep, key_auth.id, as_json=False)
    assert change is not None and [p.name for p in apply(change).kong.plugins] == ["datakit"]


def test_patch_merges_config_in_place_and_keeps_comments() -> None:
    dep = load(DECLARATIVE)
    change = admin.update_plugin(dep, "list-dk", {"config": {"debug": True}}, as_json=False, replace=False)
    new = apply(change)
    plugin = new.kong.plugin("list-dk")
    assert (
        plugin is not None and plugin.config["debug"] is True and plugin.config["nodes"][0]["status"] == 200
    )
    assert plugin.location == ("services", 0, "routes", 0, "plugins", 0)
    assert plugin.id == dep.kong.plugins[0].id  # written down, so it survives any later edit
    assert "# keep me" in change.text


def test_put_to_another_scope_moves_the_plugin_to_the_top_level() -> None:
    dep = load(DECLARATIVE)
    body = {"name": "datakit", "route": "other", "config": NODES}
    new = apply(admin.update_plugin(dep, "list-dk", body, as_json=False, replace=True))
    (plugin,) = new.kong.plugins
    assert plugin.location == ("plugins", 0) and plugin.route_id == new.kong.route("other").id  # type: ignore[union-attr]
    assert plugin.record["instance_name"] is None  # PUT replaces: what the body leaves out is gone


def test_patch_of_a_bare_config_stays_bare_until_it_cannot() -> None:
    dep = load(BARE)
    plugin_id = dep.kong.plugins[0].id
    config_only = admin.update_plugin(
        dep, plugin_id, {"config": {"debug": True}}, as_json=False, replace=False
    )
    assert "name: datakit" not in config_only.text and "# a bare config" in config_only.text
    assert apply(config_only).kong.form == "config"
    disabled = admin.update_plugin(dep, plugin_id, {"enabled": False}, as_json=False, replace=False)
    new = apply(disabled)
    assert new.kong.form == "entity" and new.kong.plugins[0].enabled is False and not new.plans


@pytest.mark.parametrize(("text", "remaining"), [(DECLARATIVE, 0), (BARE, 0)])
def test_delete(text: str, remaining: int) -> None:
    dep = load(text)
    change = admin.delete_plugin(dep, dep.kong.plugins[0].id, as_json=False)
    assert change is not None
    assert len(apply(change).kong.plugins) == remaining
    assert admin.delete_plugin(dep, "no-such-plugin", as_json=False) is None


@pytest.mark.parametrize(
    "payload",
    [
        {"_format_version": "3.0", "plugins": [{"name": "datakit", "config": NODES}]},
        {"config": ONE_PLUGIN},
        ONE_PLUGIN,
    ],
    ids=["map", "text-in-config", "text"],
)
def test_post_config_replaces_the_whole_file(payload: Any) -> None:
    new = apply(admin.replace_config(payload, as_json=False))
    assert [p.name for p in new.kong.plugins] == ["datakit"]
    assert set(admin.entities_json(new)["plugins"]) == {new.kong.plugins[0].id}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"plugins": []}, "_format_version"),
        ("_format_version: '3.0'\nroutes: [{name: r}]\n", "must set one of"),
        (
            TELEPORT,
            "plugins.1.config (global datakit plugin): node #1 (A), field 'type': unknown node type",
        ),
    ],
)
def test_post_config_errors_are_invalid_declarative_configuration(payload: Any, message: str) -> None:
    with pytest.raises(AdminError) as raised:
        apply(admin.replace_config(payload, as_json=False))
    assert raised.value.status == 400 and raised.value.body["code"] == 14
    assert raised.value.body["message"].startswith("declarative config is invalid: ")
    assert message in raised.value.body["message"]


def test_a_json_file_is_written_back_as_json() -> None:
    dep = load_deployment(json.dumps({"_format_version": "3.0"}), source="kong.json")
    change = admin.create_plugin(dep, {"name": "datakit", "config": NODES}, as_json=True)
    assert json.loads(change.text)["plugins"][0]["config"] == NODES
