"""A whole config file ready to serve (kong/deployment.py): which plan a flow runs, where it goes,
and how a bad plugin config is reported."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from mitm_datakit.errors import ConfigError
from mitm_datakit.kong.deployment import Deployment, load_deployment
from mitm_datakit.kong.router import RequestFacts


def exit_with(status: int) -> dict[str, Any]:
    return {"nodes": [{"name": "E", "type": "exit", "status": status}]}


def deployment(document: dict[str, Any]) -> Deployment:
    return load_deployment(yaml.safe_dump(document), source="kong.yaml")


def facts(path: str = "/", host: str = "client.test") -> RequestFacts:
    return RequestFacts("GET", host, path, "http", {})


def statuses(plugins: list[dict[str, Any]]) -> dict[str, int | None]:
    """Which plugin (told apart by its exit status) each route's flows run."""
    dep = deployment(
        {
            "_format_version": "3.0",
            "consumers": [{"username": "alice"}],
            "services": [
                {
                    "name": "s1",
                    "url": "http://one.test",
                    "routes": [{"name": "r1", "paths": ["/r1"]}, {"name": "r2", "paths": ["/r2"]}],
                },
                {"name": "s2", "url": "http://two.test", "routes": [{"name": "r3", "paths": ["/r3"]}]},
            ],
            "plugins": plugins,
        }
    )
    return {path: _status(dep, path) for path in ("/r1", "/r2", "/r3")}


def _status(dep: Deployment, path: str) -> int | None:
    selection = dep.select(facts(path))
    for plugin in dep.kong.plugins:
        if dep.plans.get(plugin.id) is selection.plan and selection.plan is not None:
            return int(plugin.config["nodes"][0]["status"])
    return None


GLOBAL = {"name": "datakit", "config": exit_with(200)}
ON_S1 = {"name": "datakit", "service": "s1", "config": exit_with(201)}
ON_R1 = {"name": "datakit", "route": "r1", "config": exit_with(202)}
ON_R1_S1 = {"name": "datakit", "route": "r1", "service": "s1", "config": exit_with(203)}


@pytest.mark.parametrize(
    ("plugins", "expected"),
    [
        ([GLOBAL], {"/r1": 200, "/r2": 200, "/r3": 200}),
        ([GLOBAL, ON_S1], {"/r1": 201, "/r2": 201, "/r3": 200}),
        ([GLOBAL, ON_S1, ON_R1], {"/r1": 202, "/r2": 201, "/r3": 200}),
        ([GLOBAL, ON_S1, ON_R1, ON_R1_S1], {"/r1": 203, "/r2": 201, "/r3": 200}),
        ([ON_R1], {"/r1": 202, "/r2": None, "/r3": None}),
        ([GLOBAL, {**ON_R1, "enabled": False}], {"/r1": 200, "/r2": 200, "/r3": 200}),  # the next one applies
        ([{**GLOBAL, "consumer": "alice"}], {"/r1": None, "/r2": None, "/r3": None}),
    ],
    ids=[
        "global",
        "service-over-global",
        "route-over-service",
        "route-and-service-first",
        "route-only",
        "disabled-falls-through",
        "consumer-scoped-never-applies",
    ],
)
def test_kongs_plugin_precedence(plugins: list[dict[str, Any]], expected: dict[str, int | None]) -> None:
    assert statuses(plugins) == expected


def test_a_bad_plugin_config_is_reported_with_its_plugin_node_and_field() -> None:
    with pytest.raises(ConfigError) as raised:
        deployment(
            {
                "_format_version": "3.0",
                "services": [
                    {
                        "name": "orders",
                        "url": "http://x",
                        "routes": [
                            {
                                "name": "list",
                                "paths": ["/"],
                                "plugins": [
                                    {
                                        "name": "datakit",
                                        "config": {"nodes": [{"name": "F", "type": "jq", "jq": "{a:"}]},
                                    }
                                ],
                            }
                        ],
                    }
                ],
            }
        )
    (message,) = [str(i) for i in raised.value.issues]
    assert message.startswith(
        "services.1.routes.1.plugins.1.config (datakit plugin on route \"list\"): "
        "node #1 (F), field 'jq': invalid jq program"
    )


def test_disabled_plugins_are_still_checked() -> None:
    with pytest.raises(ConfigError, match="unknown node type"):
        deployment(
            {
                "_format_version": "3.0",
                "plugins": [
                    {
                        "name": "datakit",
                        "enabled": False,
                        "config": {"nodes": [{"name": "A", "type": "teleport"}]},
                    }
                ],
            }
        )


def test_a_bare_config_keeps_its_own_messages() -> None:
    with pytest.raises(ConfigError) as raised:
        load_deployment("nodes:\n- {name: A, type: teleport}\n", source="flow.yaml")
    assert str(raised.value.issues[0]).startswith("node #1 (A), field 'type': unknown node type: teleport")


def test_consumer_scoped_datakit_plugins_are_named_as_ignored() -> None:
    dep = deployment(
        {
            "_format_version": "3.0",
            "consumers": [{"username": "alice"}],
            "plugins": [{"name": "datakit", "consumer": "alice", "config": exit_with(200)}],
        }
    )
    assert dep.ignored == [
        'datakit plugin on consumer "alice" (consumer-scoped: no authentication plugin runs here)'
    ]


def test_other_plugins_are_named_once() -> None:
    dep = deployment(
        {
            "_format_version": "3.0",
            "plugins": [
                {"name": "key-auth"},
                {"name": "rate-limiting", "service": "s"},
                {"name": "key-auth", "route": "r"},
            ],
            "services": [{"name": "s", "url": "http://x", "routes": [{"name": "r", "paths": ["/"]}]}],
        }
    )
    assert dep.ignored == ["plugin key-auth (x2)", "plugin rate-limiting"]


@pytest.mark.parametrize(
    ("service", "route", "host", "expected"),
    [
        (
            {"url": "http://api.test:8080/v1"},
            {"paths": ["/p"]},
            "client.test",
            ("http", "api.test", 8080, "/v1/x", "api.test:8080"),
        ),
        (
            {"url": "https://api.test"},
            {"paths": ["/p"]},
            "client.test",
            ("https", "api.test", 443, "/x", "api.test"),
        ),
        (
            {"url": "http://api.test"},
            {"paths": ["/p"], "preserve_host": True},
            "client.test:81",
            ("http", "api.test", 80, "/x", "client.test:81"),
        ),
        (
            {"url": "http://api.test"},
            {"paths": ["/p"], "strip_path": False},
            "c",
            ("http", "api.test", 80, "/p/x", "api.test"),
        ),
        (
            {"host": "pool", "port": 80},
            {"paths": ["/p"]},
            "c",
            ("http", "10.0.0.1", 9001, "/x", "10.0.0.1:9001"),
        ),
    ],
    ids=["service-port", "https-default-port", "preserve-host", "no-strip", "upstream-entity"],
)
def test_destination(
    service: dict[str, Any], route: dict[str, Any], host: str, expected: tuple[Any, ...]
) -> None:
    dep = deployment(
        {
            "_format_version": "3.0",
            "upstreams": [{"name": "pool", "targets": [{"target": "10.0.0.1:9001"}]}],
            "services": [{"name": "s", **service, "routes": [{"name": "r", **route}]}],
        }
    )
    request = facts("/p/x", host)
    destination = dep.destination(dep.select(request), request)
    assert destination is not None
    assert (
        destination.scheme,
        destination.host,
        destination.port,
        destination.path,
        destination.host_header,
    ) == expected


def test_upstream_targets_take_turns_and_host_header_follows_upstream() -> None:
    dep = deployment(
        {
            "_format_version": "3.0",
            "upstreams": [
                {
                    "name": "pool",
                    "host_header": "pool.internal",
                    "targets": [{"target": "10.0.0.1:80"}, {"target": "10.0.0.2:80"}],
                }
            ],
            "services": [{"name": "s", "host": "pool", "routes": [{"name": "r", "paths": ["/"]}]}],
        }
    )
    request = facts("/")
    hosts = [dep.destination(dep.select(request), request) for _ in range(4)]
    assert [d.host for d in hosts if d] == ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2"]
    assert {d.host_header for d in hosts if d} == {"pool.internal"}


def test_an_upstream_without_targets_gives_no_destination() -> None:
    dep = deployment(
        {
            "_format_version": "3.0",
            "upstreams": [{"name": "empty"}],
            "services": [{"name": "s", "host": "empty", "routes": [{"name": "r", "paths": ["/"]}]}],
        }
    )
    assert dep.destination(dep.select(facts()), facts()) is None
