"""Kong declarative files through a real mitmdump: routes pick services, flows go to their upstreams.

The reverse target of these proxies is a port nothing listens on: a flow that reached it would fail,
so every answer below proves the route, not mitmproxy's own destination, decided where it went.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

DEAD = "http://127.0.0.1:1"


def declarative(**entities: Any) -> dict[str, Any]:
    return {"_format_version": "3.0", **entities}


def header_writer(name: str, value: str) -> dict[str, Any]:
    """A datakit config that adds one header to the upstream request."""
    return {
        "nodes": [
            {"name": "H", "type": "static", "values": {name: value}, "output": "service_request.headers"}
        ]
    }


@pytest.fixture
def services(stub_factory):
    """Four echoing upstreams, each a service of its own."""
    return {name: stub_factory(name, default_echo=True) for name in ("a", "b", "c", "d")}


def test_routes_pick_services_by_path_host_method_and_header(mitmdump, services, client):
    a, b, c, d = services["a"], services["b"], services["c"], services["d"]
    proxy = mitmdump(
        declarative(
            services=[
                {"name": "a", "url": f"{a.url}/base", "routes": [{"name": "by-path", "paths": ["/api"]}]},
                {"name": "b", "url": b.url, "routes": [{"name": "by-host", "hosts": ["*.shop.example"]}]},
                {
                    "name": "c",
                    "url": c.url,
                    "routes": [
                        {"name": "by-method", "paths": ["/api"], "methods": ["POST"], "strip_path": False}
                    ],
                },
                {
                    "name": "d",
                    "url": d.url,
                    "routes": [{"name": "by-header", "paths": ["/api"], "headers": {"x-tenant": ["blue"]}}],
                },
            ]
        ),
        upstream=DEAD,
    )
    assert client.get(proxy.url + "/api/items?x=1").json()["path"] == "/base/items"
    assert a.requests_to("/base/items")[0].query == {"x": "1"}
    assert (
        client.get(proxy.url + "/anything", headers={"Host": "eu.shop.example"}).json()["path"] == "/anything"
    )
    assert client.post(proxy.url + "/api/items", content=b"{}").json()["path"] == "/api/items"
    assert client.get(proxy.url + "/api/items", headers={"X-Tenant": "BLUE"}).json()["path"] == "/items"
    assert [len(s.requests) for s in (a, b, c, d)] == [1, 1, 1, 1]


def test_no_matching_route_is_kongs_404(mitmdump, services, client):
    proxy = mitmdump(
        declarative(
            services=[{"name": "a", "url": services["a"].url, "routes": [{"name": "r", "paths": ["/api"]}]}]
        ),
        upstream=DEAD,
    )
    response = client.get(proxy.url + "/elsewhere")
    assert response.status_code == 404
    assert response.json()["message"] == "no Route matched with those values"
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["request_id"] == response.headers["X-Kong-Request-Id"]
    assert services["a"].requests == []


def test_preserve_host_sends_the_host_the_client_sent_even_in_reverse_mode(mitmdump, services, client):
    a, b = services["a"], services["b"]
    proxy = mitmdump(
        declarative(
            services=[
                {
                    "name": "kept",
                    "url": a.url,
                    "routes": [{"name": "kept", "hosts": ["api.example"], "preserve_host": True}],
                },
                {"name": "own", "url": b.url, "routes": [{"name": "own", "hosts": ["web.example"]}]},
            ]
        ),
        upstream=DEAD,
    )
    kept = client.get(proxy.url + "/", headers={"Host": "api.example:8443"}).json()
    own = client.get(proxy.url + "/", headers={"Host": "web.example"}).json()
    assert kept["headers"]["Host"] == "api.example:8443"
    assert own["headers"]["Host"] == f"127.0.0.1:{b.port}"  # the service's host and non-default port
    assert "keep_host_header=True" in proxy.output()  # said once, at start-up


def test_regular_proxy_mode_routes_too(mitmdump, services):
    a = services["a"]
    proxy = mitmdump(
        declarative(
            services=[
                {
                    "name": "shop",
                    "url": f"{a.url}/v2",
                    "routes": [{"name": "shop", "hosts": ["shop.example"], "paths": ["/cart"]}],
                }
            ]
        ),
        mode="regular",
    )
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=10) as through:
        answer = through.get("http://shop.example/cart/7")
        missing = through.get("http://other.example/cart/7")
    assert answer.json()["path"] == "/v2/7"
    assert answer.json()["headers"]["Host"] == f"127.0.0.1:{a.port}"
    assert missing.status_code == 404


def test_an_https_only_route_reached_over_http_answers_426(mitmdump, services, client):
    proxy = mitmdump(
        declarative(
            services=[
                {
                    "name": "a",
                    "url": services["a"].url,
                    "routes": [{"name": "tls", "paths": ["/"], "protocols": ["https"]}],
                }
            ]
        ),
        upstream=DEAD,
    )
    response = client.get(proxy.url + "/secure")
    assert response.status_code == 426
    assert response.json()["message"] == "Please use HTTPS protocol"
    assert services["a"].requests == []


def test_a_route_without_a_service_can_still_be_answered_by_its_plugin(mitmdump, client):
    mock = {"nodes": [{"name": "E", "type": "exit", "status": 418, "inputs": {"body": "request.path"}}]}
    proxy = mitmdump(
        declarative(
            routes=[
                {"name": "mock", "paths": ["/mock"], "plugins": [{"name": "datakit", "config": mock}]},
                {"name": "nowhere", "paths": ["/nowhere"]},
            ]
        ),
        upstream=DEAD,
    )
    mocked = client.get(proxy.url + "/mock/1")
    assert mocked.status_code == 418 and mocked.text == "/mock/1"
    nowhere = client.get(proxy.url + "/nowhere")
    assert nowhere.status_code == 503 and nowhere.json()["message"] == "no Service found with those values"


def test_an_upstream_entity_spreads_flows_over_its_targets(mitmdump, stub_factory, client):
    first, second = stub_factory("t1", default_echo=True), stub_factory("t2", default_echo=True)
    proxy = mitmdump(
        declarative(
            upstreams=[
                {
                    "name": "pool",
                    "targets": [
                        {"target": f"127.0.0.1:{first.port}"},
                        {"target": f"127.0.0.1:{second.port}"},
                    ],
                },
                {"name": "empty"},
            ],
            services=[
                {"name": "pooled", "host": "pool", "port": 80, "routes": [{"name": "p", "paths": ["/p"]}]},
                {"name": "dry", "host": "empty", "routes": [{"name": "d", "paths": ["/d"]}]},
            ],
        ),
        upstream=DEAD,
    )
    hosts = [client.get(proxy.url + "/p/x").json()["headers"]["Host"] for _ in range(4)]
    assert len(first.requests) == len(second.requests) == 2
    assert set(hosts) == {f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"}  # the target's host
    dry = client.get(proxy.url + "/d")
    assert dry.status_code == 503 and dry.json()["message"] == "failure to get a peer from the ring-balancer"


def test_datakit_plugins_are_scoped_with_kongs_precedence(mitmdump, services, client):
    a, b = services["a"], services["b"]
    proxy = mitmdump(
        declarative(
            services=[
                {
                    "name": "a",
                    "url": a.url,
                    "plugins": [{"name": "datakit", "config": header_writer("X-Plugin", "service")}],
                    "routes": [
                        {
                            "name": "own",
                            "paths": ["/own"],
                            "plugins": [{"name": "datakit", "config": header_writer("X-Plugin", "route")}],
                        },
                        {
                            "name": "disabled",
                            "paths": ["/disabled"],
                            "plugins": [
                                {
                                    "name": "datakit",
                                    "enabled": False,
                                    "config": header_writer("X-Plugin", "off"),
                                }
                            ],
                        },
                        {"name": "inherits", "paths": ["/inherits"]},
                    ],
                },
                {"name": "b", "url": b.url, "routes": [{"name": "global", "paths": ["/global"]}]},
            ],
            plugins=[
                {"name": "datakit", "config": header_writer("X-Plugin", "global")},
                {"name": "key-auth", "config": {"key_names": ["apikey"]}},
                {"name": "rate-limiting", "route": "own", "config": {"minute": 1}},
            ],
        ),
        upstream=DEAD,
    )

    def plugin_for(path: str) -> str:
        return client.get(proxy.url + path).json()["headers"]["X-Plugin"]

    assert [plugin_for(p) for p in ("/own", "/disabled", "/inherits", "/global")] == [
        "route",
        "service",
        "service",
        "global",
    ]
    # rate-limiting would have refused the second request to /own; it does not run here, and says so once.
    assert plugin_for("/own") == "route"
    warnings = [line for line in proxy.output().splitlines() if "ignored (they have no effect here)" in line]
    assert len(warnings) == 1 and "plugin key-auth" in warnings[0] and "plugin rate-limiting" in warnings[0]


def test_a_file_with_only_global_plugins_keeps_mitmproxys_destination(mitmdump, upstream, client):
    proxy = mitmdump(declarative(plugins=[{"name": "datakit", "config": header_writer("X-Global", "yes")}]))
    answer = client.get(proxy.url + "/anywhere").json()
    assert answer["path"] == "/anywhere" and answer["headers"]["X-Global"] == "yes"


def test_errors_in_a_declarative_file_stop_start_up_naming_plugin_node_and_field(mitmdump_expect_exit):
    rc, output = mitmdump_expect_exit(
        declarative(
            services=[
                {
                    "name": "orders",
                    "url": "http://127.0.0.1:9",
                    "routes": [
                        {
                            "name": "list",
                            "paths": ["/orders"],
                            "strip_paths": True,
                            "plugins": [
                                {
                                    "name": "datakit",
                                    "config": {
                                        "nodes": [
                                            {
                                                "name": "ROUTE",
                                                "type": "property",
                                                "property": "kong.router.route",
                                                "input": "request.body",
                                            }
                                        ]
                                    },
                                }
                            ],
                        }
                    ],
                }
            ]
        )
    )
    assert rc != 0
    assert "services.1.routes.1 (route \"list\"): field 'strip_paths': unknown field" in output
    assert (
        "services.1.routes.1.plugins.1.config (datakit plugin on route \"list\"): "
        "node #1 (ROUTE), field 'input': "
        "property kong.router.route is read-only"
    ) in output
    assert "Traceback" not in output
