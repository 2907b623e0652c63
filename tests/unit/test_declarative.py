"""Kong declarative files into entities (kong/declarative.py): shapes, references, ids and errors."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from mitm_datakit.errors import ConfigError
from mitm_datakit.kong.declarative import parse_document
from mitm_datakit.kong.entities import KongConfig, derived_id

NODES = {"nodes": [{"name": "E", "type": "exit", "status": 200}]}


def parse(text: str) -> KongConfig:
    return parse_document(yaml.safe_load(text), now=1700000000)


def errors_of(document: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_document({"_format_version": "3.0", **document}, now=0)
    return [str(issue) for issue in raised.value.issues]


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ({"url": "http://a.test/api"}, ("http", "a.test", 80, "/api")),
        ({"url": "https://a.test"}, ("https", "a.test", 443, None)),
        ({"url": "http://a.test:8080/"}, ("http", "a.test", 8080, "/")),
        ({"host": "a.test"}, ("http", "a.test", 80, None)),
        (
            {"protocol": "https", "host": "a.test", "port": 8443, "path": "/v1"},
            ("https", "a.test", 8443, "/v1"),
        ),
    ],
)
def test_a_service_is_stored_as_kong_stores_it(service: dict[str, Any], expected: tuple[Any, ...]) -> None:
    config = parse_document({"_format_version": "3.0", "services": [{"name": "s", **service}]}, now=5)
    record = config.services[0].record
    assert (record["protocol"], record["host"], record["port"], record["path"]) == expected
    assert "url" not in record
    assert record["retries"] == 5 and record["connect_timeout"] == 60000 and record["enabled"] is True
    assert record["created_at"] == 5 and record["id"] == derived_id("services", "s")


def test_routes_nested_or_top_level_find_their_service_by_name_or_id() -> None:
    config = parse(
        """
_format_version: "3.0"
services:
- name: orders
  id: 6e1d5e24-2c1a-4b3c-9f6a-3d9b1c7e8a01
  url: http://orders.test
  routes:
  - name: nested
    paths: [/n]
routes:
- name: by-name
  service: orders
  paths: [/a]
- name: by-id
  service: {id: 6e1d5e24-2c1a-4b3c-9f6a-3d9b1c7e8a01}
  paths: [/b]
"""
    )
    assert [r.name for r in config.routes] == ["nested", "by-name", "by-id"]
    assert {r.service.name for r in config.routes if r.service} == {"orders"}
    nested = config.routes[0].record
    assert nested["service"] == {"id": "6e1d5e24-2c1a-4b3c-9f6a-3d9b1c7e8a01"}
    assert nested["strip_path"] is True and nested["preserve_host"] is False
    assert nested["protocols"] == ["http", "https"] and nested["hosts"] is None


def test_ids_are_kongs_deterministic_ones_and_stable() -> None:
    text = "_format_version: '3.0'\nservices: [{name: s, url: 'http://x', routes: [{name: r, paths: [/]}]}]\n"
    first, second = parse(text), parse(text)
    assert first.routes[0].id == second.routes[0].id == derived_id("routes", "r")


def test_plugins_are_scoped_by_where_they_are_declared() -> None:
    config = parse(
        f"""
_format_version: "3.0"
services:
- name: s
  url: http://s.test
  plugins:
  - {{name: datakit, config: {NODES}}}
  routes:
  - name: r
    paths: [/]
    plugins:
    - {{name: datakit, config: {NODES}}}
plugins:
- {{name: datakit, config: {NODES}}}
- {{name: datakit, route: r, service: s, enabled: false, config: {NODES}}}
- {{name: key-auth}}
"""
    )
    scopes = [(p.name, p.route_id is not None, p.service_id is not None, p.enabled) for p in config.plugins]
    assert sorted(scopes) == sorted(
        [
            ("datakit", False, False, True),
            ("datakit", True, True, False),
            ("key-auth", False, False, True),
            ("datakit", False, True, True),
            ("datakit", True, False, True),
        ]
    )
    labels = {p.label for p in config.plugins}
    assert {'datakit plugin on service "s"', 'datakit plugin on route "r"', "global datakit plugin"} <= labels
    route_plugin = next(p for p in config.plugins if p.label == 'datakit plugin on route "r"')
    assert route_plugin.record["route"] == {"id": config.routes[0].id}
    assert route_plugin.location == ("services", 0, "routes", 0, "plugins", 0)


def test_upstreams_collect_nested_and_top_level_targets() -> None:
    config = parse(
        """
_format_version: "3.0"
upstreams:
- name: pool
  host_header: pool.internal
  targets:
  - target: 127.0.0.1:9001
  - {target: 127.0.0.1:9002, weight: 5}
targets:
- {target: backend.local, upstream: pool}
"""
    )
    pool = config.upstreams["pool"]
    assert [(t.host, t.port, t.weight) for t in pool.targets] == [
        ("127.0.0.1", 9001, 100),
        ("127.0.0.1", 9002, 5),
        ("backend.local", 8000, 100),
    ]
    assert pool.host_header == "pool.internal" and pool.record["algorithm"] == "round-robin"


def test_consumers_and_their_groups() -> None:
    config = parse(
        """
_format_version: "3.0"
consumer_groups:
- name: gold
- name: silver
  consumers: [{username: bob}]
consumers:
- username: alice
  groups: [{name: gold}]
- username: bob
- custom_id: c-42
"""
    )
    assert [g["name"] for g in config.consumer({"username": "alice"}).groups] == ["gold"]  # type: ignore[union-attr]
    assert [g["name"] for g in config.consumer({"username": "bob"}).groups] == ["silver"]  # type: ignore[union-attr]
    assert config.consumer({"custom_id": "c-42"}) is not None
    assert config.consumer({"username": "nobody"}) is None


@pytest.mark.parametrize(
    ("text", "form"),
    [("nodes: [{name: E, type: exit}]", "config"), ("name: datakit\nconfig: {nodes: []}", "entity")],
)
def test_a_file_that_is_one_plugin_is_a_global_datakit_plugin(text: str, form: str) -> None:
    config = parse(text)
    (plugin,) = config.plugins
    assert config.form == form and not config.routes_traffic
    assert plugin.name == "datakit" and plugin.route_id is None and plugin.service_id is None
    assert plugin.id == derived_id("plugins", "plugins:datakit::::")


def test_unused_entity_kinds_are_noted_not_rejected() -> None:
    config = parse("_format_version: '3.0'\ncertificates: [{cert: x, key: y}]\nvaults: [{name: env}]\n")
    assert config.ignored == ["certificates", "vaults"]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            {"_format_version": "2.1"},
            "field '_format_version': expected \"3.0\" (found '2.1')",
            id="version",
        ),
        pytest.param({"servcies": []}, "field 'servcies': unknown field", id="unknown-top-level"),
        pytest.param(
            {
                "services": [
                    {
                        "name": "s",
                        "url": "http://x",
                        "routes": [{"name": "r", "strip_paths": True, "paths": ["/"]}],
                    }
                ]
            },
            "services.1.routes.1 (route \"r\"): field 'strip_paths': unknown field",
            id="unknown-route-field",
        ),
        pytest.param(
            {"routes": [{"name": "r"}]},
            "routes.1 (route \"r\"): must set one of 'methods', 'hosts', 'headers', 'paths' "
            "when 'protocols' is 'http'",
            id="route-without-criteria",
        ),
        pytest.param(
            {"routes": [{"name": "r", "paths": ["api"]}]},
            "field 'paths': should start with: / (fixed path) or ~/ (regex path)",
            id="relative-path",
        ),
        pytest.param(
            {"routes": [{"name": "r", "paths": ["~/(a"]}]}, "field 'paths': invalid regex", id="bad-regex"
        ),
        pytest.param(
            {"routes": [{"name": "r", "hosts": ["a.*.com"]}]}, "invalid wildcard", id="mid-wildcard"
        ),
        pytest.param(
            {"routes": [{"name": "r", "methods": ["get"]}]},
            "field 'methods': invalid value: get",
            id="method",
        ),
        pytest.param(
            {"routes": [{"name": "r", "headers": {"Host": ["a"]}}]},
            "cannot contain 'host' header, which must be specified in the 'hosts' attribute",
            id="host-header-route",
        ),
        pytest.param(
            {"routes": [{"name": "r", "service": "nope", "paths": ["/"]}]},
            "routes.1 (route \"r\"): field 'service': "
            "invalid reference 'service: nope' (no such entry in 'services')",
            id="dangling-reference",
        ),
        pytest.param(
            {"services": [{"name": "s", "url": "http://a"}, {"name": "s", "url": "http://b"}]},
            "services.2 (service \"s\"): 's' is declared twice (also at services.1)",
            id="duplicate-name",
        ),
        pytest.param(
            {"services": [{"name": "s", "url": "tcp://a:1"}]},
            "field 'protocol': protocol 'tcp' is not supported here: this proxy carries HTTP",
            id="stream-service",
        ),
        pytest.param(
            {"services": [{"name": "s"}]},
            "services.1 (service \"s\"): field 'host': required field missing",
            id="service-without-host",
        ),
        pytest.param(
            {"consumers": [{"tags": ["x"]}]},
            "consumers.1 (consumer): at least one of these fields must be non-empty: 'custom_id', 'username'",
            id="anonymous-consumer",
        ),
        pytest.param(
            {"upstreams": [{"name": "u", "targets": [{"target": "a:99999"}]}]},
            "upstreams.1.targets.1 (target): field 'target': Invalid target ('a:99999')",
            id="bad-target",
        ),
        pytest.param(
            {"plugins": [{"name": "datakit", "config": "nodes"}]},
            "plugins.1 (global datakit plugin): field 'config': expected a map",
            id="config-not-a-map",
        ),
        pytest.param(
            {"plugins": [{"name": "datakit", "config": NODES}, {"name": "datakit", "config": NODES}]},
            "plugins.2 (global datakit plugin): another datakit plugin has the same scope (at plugins.1)",
            id="same-scope-twice",
        ),
        pytest.param(
            {"plugins": [{"name": "datakit", "config": NODES, "enabled": "yes"}]},
            "field 'enabled': expected a boolean",
            id="plugin-field",
        ),
    ],
)
def test_problems_name_their_place_and_entity(document: dict[str, Any], expected: str) -> None:
    messages = errors_of(document)
    assert any(expected in m for m in messages), messages


def test_every_problem_of_a_file_is_reported() -> None:
    messages = errors_of({"routes": [{"name": "a"}, {"name": "b", "paths": ["x"]}], "bogus": 1})
    assert len(messages) == 3
