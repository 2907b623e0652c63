"""Every Kong property through a real mitmdump with a declarative file, and the examples in configs/
that use them (dynamic service discovery, entity properties, spec EX-11 and EX-12)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from harness import REPO_ROOT
from mitm_datakit import __version__

DEAD = "http://127.0.0.1:1"

# Stands in for an authentication plugin in front of Datakit: it trusts X-Caller and records the
# credential where Datakit's `kong.client.credential` reads it (docs/gateway.md).
AUTH_SCRIPT = """
from mitm_datakit.proxy.addon import Datakit


class HeaderAuth:
    def request(self, flow):
        caller = flow.request.headers.get("X-Caller")
        if caller:
            flow.metadata["kong.client.credential"] = {"id": caller}


addons = [HeaderAuth(), Datakit()]
"""


@pytest.fixture
def auth_script(tmp_path: Path) -> Path:
    path = tmp_path / "auth_then_datakit.py"
    path.write_text(AUTH_SCRIPT)
    return path


def example(name: str, ports: dict[int, str]) -> str:
    """A bundled config with its fixed stand-in addresses replaced by the test's servers."""
    text = (REPO_ROOT / "configs" / name).read_text()
    for port, url in ports.items():
        text = text.replace(f"http://127.0.0.1:{port}", url).replace(
            f"127.0.0.1:{port}", url.removeprefix("http://")
        )
    return text


def reader(properties: dict[str, str]) -> dict[str, Any]:
    """A datakit config answering with the value of every property, by key."""
    nodes: list[dict[str, Any]] = [
        {"name": key.upper(), "type": "property", "property": prop} for key, prop in properties.items()
    ]
    nodes.append({"name": "ALL", "type": "jq", "inputs": {key: key.upper() for key in properties}, "jq": "."})
    nodes.append({"name": "EXIT", "type": "exit", "inputs": {"body": "ALL"}})
    return {"nodes": nodes}


CLIENT_SIDE = {
    "client_ip": "kong.client.ip",
    "client_port": "kong.client.port",
    "forwarded_ip": "kong.client.forwarded_ip",
    "client_forwarded_port": "kong.client.forwarded_port",
    "protocol": "kong.client.protocol",
    "credential": "kong.client.credential",
    "consumer": "kong.client.consumer",
    "consumer_groups": "kong.client.consumer_groups",
    "realm": "kong.client.identity_realm_source",
    "principal": "kong.client.principal",
    "principal_id": "kong.client.principal.id",
    "request_port": "kong.request.port",
    "forwarded_host": "kong.request.forwarded_host",
    "forwarded_port": "kong.request.forwarded_port",
    "forwarded_scheme": "kong.request.forwarded_scheme",
    "route": "kong.router.route",
    "service": "kong.router.service",
    "route_id": "kong.route_id",
    "route_name": "kong.route_name",
    "service_id": "kong.service_id",
    "service_name": "kong.service_name",
    "version": "kong.version",
    "subsystem": "kong.nginx.subsystem",
    "node_id": "kong.node.id",
    "memory": "kong.node.memory_stats",
    "listen_host": "kong.configuration.listen_host",
    "admin_token": "kong.configuration.datakit_admin_token",
    "no_such_option": "kong.configuration.no_such_option",
    "shared": "kong.ctx.shared.unset",
    "plugin_ctx": "kong.ctx.plugin.unset",
}


def test_every_readable_property(mitmdump, upstream, client, auth_script):
    proxy = mitmdump(
        {
            "_format_version": "3.0",
            "services": [
                {
                    "name": "props-service",
                    "url": f"{upstream.url}/api",
                    "routes": [
                        {
                            "name": "props",
                            "paths": ["/props"],
                            "plugins": [{"name": "datakit", "config": reader(CLIENT_SIDE)}],
                        }
                    ],
                }
            ],
        },
        "--set",
        "datakit_admin_token=do-not-show-me",
        upstream=DEAD,
        script=auth_script,
    )
    seen = client.get(
        proxy.url + "/props/x", headers={"Host": "props.example:1234", "X-Caller": "caller-a"}
    ).json()
    again = client.get(proxy.url + "/props/y").json()

    assert seen["client_ip"] == seen["forwarded_ip"] == "127.0.0.1"
    assert isinstance(seen["client_port"], int) and seen["client_port"] != proxy.port
    assert seen["protocol"] == seen["forwarded_scheme"] == "http"
    assert seen["credential"] == {"id": "caller-a"} and again["credential"] is None
    assert [seen[k] for k in ("consumer", "consumer_groups", "realm", "principal", "principal_id")] == [
        None
    ] * 5
    # The client's side of the request, not the upstream's: routing rewrote host, port and path.
    assert seen["request_port"] == seen["forwarded_port"] == seen["client_forwarded_port"] == proxy.port
    assert seen["forwarded_host"] == "props.example"

    route, service = seen["route"], seen["service"]
    assert route["name"] == seen["route_name"] == "props" and route["id"] == seen["route_id"]
    assert (
        route["paths"] == ["/props"]
        and route["strip_path"] is True
        and route["protocols"] == ["http", "https"]
    )
    assert route["service"] == {"id": service["id"]} and service["id"] == seen["service_id"]
    assert service["name"] == seen["service_name"] == "props-service"
    # A service given by `url` is stored as Kong stores it: protocol, host, port and path.
    assert (service["protocol"], service["host"], service["port"], service["path"]) == (
        "http",
        "127.0.0.1",
        upstream.port,
        "/api",
    )
    assert service["retries"] == 5 and service["read_timeout"] == 60000

    assert seen["version"] == __version__ and seen["subsystem"] == "http"
    assert uuid.UUID(seen["node_id"]) and seen["node_id"] == again["node_id"]
    assert seen["memory"]["pid"] > 0
    assert seen["listen_host"] == "127.0.0.1"
    assert seen["admin_token"] == "******" and "do-not-show-me" not in proxy.output()
    assert seen["no_such_option"] is None and seen["shared"] is None and seen["plugin_ctx"] is None
    assert upstream.requests == []  # the exit answered


def test_response_phase_properties(mitmdump, upstream, client):
    config = {
        "nodes": [
            {"name": "STATUS", "type": "property", "property": "kong.service.response.status"},
            {"name": "SOURCE", "type": "property", "property": "kong.response.source"},
            {
                "name": "HEADERS",
                "type": "jq",
                "inputs": {"status": "STATUS", "source": "SOURCE"},
                "jq": '{"X-Upstream-Status": .status, "X-Source": .source}',
                "output": "response.headers",
            },
            {"name": "CODE", "type": "static", "values": {"code": 203}},
            {
                "name": "SET_STATUS",
                "type": "property",
                "property": "kong.response.status",
                "input": "CODE.code",
            },
        ]
    }
    proxy = mitmdump(
        {
            "_format_version": "3.0",
            "services": [{"name": "s", "url": upstream.url, "routes": [{"name": "r", "paths": ["/"]}]}],
            "plugins": [{"name": "datakit", "config": config}],
        },
        upstream=DEAD,
    )
    response = client.get(proxy.url + "/resp")
    assert response.status_code == 203
    assert response.headers["X-Upstream-Status"] == "200" and response.headers["X-Source"] == "service"
    assert response.json()["path"] == "/resp"


def test_entity_properties_example_looks_consumers_up(mitmdump, upstream, client):
    proxy = mitmdump(example("kong-entity-properties.yaml", {18081: upstream.url}), upstream=DEAD)
    alice = client.get(proxy.url + "/whoami", headers={"X-Consumer": "alice"}).json()
    assert alice == {
        "route": "whoami",
        "paths": ["/whoami"],
        "service": {
            "name": "identity",
            "protocol": "http",
            "host": "127.0.0.1",
            "port": upstream.port,
            "path": "/api",
        },
        "consumer": "alice",
        "consumer_id": str(
            uuid.uuid5(uuid.uuid5(uuid.UUID("fd02801f-0957-4a15-a55a-c8d9606f30b5"), "consumers"), "alice")
        ),
        "groups": ["staff"],
    }
    assert client.get(proxy.url + "/whoami").json()["consumer"] == "anonymous"
    unknown = client.get(proxy.url + "/whoami", headers={"X-Consumer": "mallory"})
    assert unknown.status_code == 500
    proxy.wait_for_output(
        r"node #4 \(AUTHENTICATE\) failed with error: \"property kong.client.consumer: no consumer"
    )


def test_target_and_scheme_change_where_the_flow_connects_but_not_its_host(mitmdump, stub_factory, client):
    backend = stub_factory("backend", default_echo=True)
    config = {
        "nodes": [
            {
                "name": "WHERE",
                "type": "static",
                "values": {"target": f"127.0.0.1:{backend.port}", "scheme": "http"},
            },
            {
                "name": "SET_TARGET",
                "type": "property",
                "property": "kong.service.target",
                "input": "WHERE.target",
            },
            {
                "name": "SET_SCHEME",
                "type": "property",
                "property": "kong.service.request.scheme",
                "input": "WHERE.scheme",
            },
        ]
    }
    proxy = mitmdump(
        {
            "_format_version": "3.0",
            "services": [
                {
                    "name": "s",
                    "url": "https://backend.internal/v1",
                    "routes": [{"name": "r", "paths": ["/"]}],
                    "plugins": [{"name": "datakit", "config": config}],
                }
            ],
        },
        upstream=DEAD,
    )
    answer = client.get(proxy.url + "/items").json()
    assert answer["path"] == "/v1/items"
    assert answer["headers"]["Host"] == "backend.internal"  # the service's, as Kong's set_target leaves it


def test_upstream_property_picks_targets_of_the_named_upstream(mitmdump, stub_factory, client):
    default, blue1, blue2 = (stub_factory(n, default_echo=True) for n in ("default", "blue1", "blue2"))
    config = {
        "debug": True,
        "nodes": [
            {"name": "POOL", "type": "jq", "input": "request.headers", "jq": '.["X-Pool"] // .["x-pool"]'},
            {
                "name": "SET_UPSTREAM",
                "type": "property",
                "property": "kong.service.upstream",
                "input": "POOL",
            },
        ],
    }
    proxy = mitmdump(
        {
            "_format_version": "3.0",
            "upstreams": [
                {
                    "name": "blue",
                    "targets": [{"target": f"127.0.0.1:{blue1.port}"}, {"target": f"127.0.0.1:{blue2.port}"}],
                }
            ],
            "services": [
                {
                    "name": "s",
                    "url": default.url,
                    "routes": [{"name": "r", "paths": ["/"]}],
                    "plugins": [{"name": "datakit", "config": config}],
                }
            ],
        },
        upstream=DEAD,
    )
    hosts = {
        client.get(proxy.url + "/", headers={"X-Pool": "blue"}).json()["headers"]["Host"] for _ in range(4)
    }
    assert len(blue1.requests) == len(blue2.requests) == 2 and default.requests == []
    assert hosts == {f"127.0.0.1:{default.port}"}  # the Host header stays the service's
    missing = client.get(proxy.url + "/", headers={"X-Pool": "nope"})
    assert missing.status_code == 500
    assert (
        missing.json()["error"] == "property kong.service.upstream: could not find an Upstream named 'nope'"
    )


def test_ex11_route_upstream_by_credential(mitmdump, stub_factory, client, auth_script):
    a, b, fallback = (stub_factory(n, default_echo=True) for n in ("a", "b", "default"))
    text = example("route-upstream-by-credential.yaml", {18091: a.url, 18092: b.url, 18093: fallback.url})
    proxy = mitmdump(text, upstream=DEAD, script=auth_script)
    for caller, server in (("caller-a", a), ("caller-b", b), ("caller-z", fallback)):
        client.get(proxy.url + f"/who/{caller}", headers={"X-Caller": caller})
        assert server.requests_to(f"/who/{caller}"), caller
    # Without a credential `.id` is null, and jq cannot index an object with null (libjq, as in Kong).
    assert client.get(proxy.url + "/who/nobody").status_code == 500
    proxy.wait_for_output(r'node #2 \(PICK_UPSTREAM\) failed with error: "jq: Cannot index object with null')


def test_ex12_route_host_by_credential(mitmdump, stub_factory, upstream, client, auth_script):
    a, b, fallback = (stub_factory(n, default_echo=True) for n in ("a", "b", "default"))
    text = example("route-host-by-credential.yaml", {18091: a.url, 18092: b.url, 18093: fallback.url})
    proxy = mitmdump(text, script=auth_script)  # a bare config: mitmproxy's reverse target is the service
    hosts = set()
    for caller, server in (("caller-a", a), ("caller-b", b), ("caller-z", fallback)):
        answer = client.get(proxy.url + f"/to/{caller}", headers={"X-Caller": caller}).json()
        assert server.requests_to(f"/to/{caller}"), caller
        hosts.add(answer["headers"]["Host"])
    assert hosts == {f"127.0.0.1:{upstream.port}"} and upstream.requests == []


def test_dynamic_service_discovery_example(mitmdump, stub_factory, client):
    registry = stub_factory("registry")
    orders, users = stub_factory("orders", default_echo=True), stub_factory("users", default_echo=True)
    instances = {"orders": orders, "users": users}
    registry.route(
        "GET",
        "/v1/catalog",
        handler=lambda req: {
            "instances": [{"address": "127.0.0.1", "port": instances[str(req.query["service"])].port}]
        },
    )
    proxy = mitmdump(example("dynamic-service-discovery.yaml", {18500: registry.url}), upstream=DEAD)
    order = client.get(proxy.url + "/orders/17").json()
    user = client.get(proxy.url + "/users/me").json()
    assert order["path"] == "/17" and order["headers"]["Host"] == "orders.service.internal"
    assert user["path"] == "/me" and user["headers"]["Host"] == "users.service.internal"
    assert [r.query for r in registry.requests] == [{"service": "orders"}, {"service": "users"}]


def test_kong_yaml_example(mitmdump, stub_factory, client):
    orders = stub_factory("orders", default_echo=True)
    first, second = stub_factory("c1", default_echo=True), stub_factory("c2", default_echo=True)
    text = example("kong.yaml", {18081: orders.url, 18082: first.url, 18083: second.url})
    proxy = mitmdump(text, upstream=DEAD)

    order = client.get(proxy.url + "/orders/42").json()
    assert order["path"] == "/v1/42" and order["headers"]["X-Kong-Route"] == "orders"
    assert "X-Served-By" not in order["headers"]  # the service's instance applies, not the global one
    assert client.get(proxy.url + "/orders/mock/7").json() == {"id": 7, "status": "mocked"}
    assert orders.requests_to("/v1/mock/7") == []
    catalog = [client.get(proxy.url + "/items", headers={"Host": "catalog.example"}).json() for _ in range(2)]
    assert len(first.requests) == len(second.requests) == 1
    assert {c["headers"]["Host"] for c in catalog} == {"catalog.example"}  # preserve_host
    assert all(re.fullmatch(r"[0-9a-f-]{36}", c["headers"]["X-Served-By"]) for c in catalog)
    assert "ignored (they have no effect here): plugin key-auth" in proxy.output()


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            {"name": "UP", "type": "property", "property": "kong.service.upstream"},
            "node #1 (UP), field 'property': property kong.service.upstream is write-only",
        ),
        (
            {"name": "SVC", "type": "property", "property": "kong.router.service", "input": "request.body"},
            "node #1 (SVC), field 'input': property kong.router.service is read-only",
        ),
    ],
    ids=["get-of-write-only", "set-of-read-only"],
)
def test_wrong_property_directions_are_config_errors(mitmdump_expect_exit, node, message):
    rc, output = mitmdump_expect_exit(
        {"_format_version": "3.0", "plugins": [{"name": "datakit", "config": {"nodes": [node]}}]}
    )
    assert rc != 0 and f"plugins.1.config (global datakit plugin): {message}" in output
