"""Kong's Admin API subset through a real mitmdump: round trips, bad input, the token, and changes that
survive a restart because they were written to the config file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mitm_datakit.kong.entities import derived_id

DEAD = "http://127.0.0.1:1"
ADMIN = ("--set", "datakit_admin_listen=127.0.0.1:0")


def stamp(value: str) -> dict[str, Any]:
    """A datakit config that tells the upstream which plugin ran, in X-Plugin."""
    return {
        "nodes": [
            {
                "name": "H",
                "type": "static",
                "values": {"X-Plugin": value},
                "output": "service_request.headers",
            }
        ]
    }


def gateway_file(upstream_url: str) -> str:
    return f"""\
_format_version: "3.0"
# hand-written: this comment must survive the Admin API's edits
services:
- name: shop
  url: {upstream_url}
  routes:
  - name: cart
    paths: [/cart]
    plugins:
    - name: datakit
      instance_name: cart-stamp
      config: {yaml.safe_dump(stamp("cart"), default_flow_style=True).strip()}
  - name: items
    paths: [/items]
"""


def admin_url(proxy: Any) -> str:
    return proxy.wait_for_output(r"Admin API listening at (http://\S+)").group(1)


def plugin_on(client: httpx.Client, proxy: Any, path: str) -> str | None:
    return client.get(proxy.url + path).json()["headers"].get("X-Plugin")


@pytest.fixture
def admin() -> httpx.Client:
    with httpx.Client(trust_env=False, timeout=10) as c:
        yield c


def test_the_admin_api_is_off_by_default(mitmdump, upstream):
    proxy = mitmdump(gateway_file(upstream.url), upstream=DEAD)
    assert "Admin API" not in proxy.output()


def test_plugin_round_trip(mitmdump, upstream, client, admin):
    proxy = mitmdump(gateway_file(upstream.url), *ADMIN, upstream=DEAD)
    api = admin_url(proxy)
    assert api.startswith("http://127.0.0.1:")  # loopback unless told otherwise

    listed = admin.get(api + "/plugins").json()
    assert listed["next"] is None and [p["instance_name"] for p in listed["data"]] == ["cart-stamp"]
    assert listed["data"][0]["route"] == {"id": derived_id("routes", "cart")}

    created = admin.post(
        api + "/plugins",
        json={"name": "datakit", "route": {"id": derived_id("routes", "items")}, "config": stamp("items")},
    )
    assert created.status_code == 201
    plugin = created.json()
    assert plugin["route"] == {"id": derived_id("routes", "items")} and plugin["enabled"] is True
    assert plugin_on(client, proxy, "/items") == "items"
    assert admin.get(api + f"/plugins/{plugin['id']}").json() == plugin

    patched = admin.patch(api + "/plugins/cart-stamp", json={"config": {"debug": True}})
    assert patched.status_code == 200 and patched.json()["config"]["debug"] is True
    assert patched.json()["config"]["nodes"] == stamp("cart")["nodes"]
    replaced = admin.put(
        api + f"/plugins/{plugin['id']}", json={"name": "datakit", "config": stamp("global")}
    )
    assert replaced.status_code == 200 and replaced.json()["route"] is None  # PUT replaces, scope included
    assert plugin_on(client, proxy, "/items") == "global" and plugin_on(client, proxy, "/cart") == "cart"

    assert admin.delete(api + "/plugins/cart-stamp").status_code == 204
    assert admin.get(api + "/plugins/cart-stamp").status_code == 404
    assert admin.delete(api + "/plugins/cart-stamp").status_code == 204  # idempotent, as in Kong
    assert plugin_on(client, proxy, "/cart") == "global"

    text = Path(proxy.config_path).read_text()
    assert "# hand-written: this comment must survive" in text
    assert "Traceback" not in proxy.output()


def test_rejected_changes_change_nothing(mitmdump, upstream, client, admin):
    proxy = mitmdump(gateway_file(upstream.url), *ADMIN, upstream=DEAD)
    api, before = admin_url(proxy), Path(proxy.config_path).read_bytes()
    bad_config = {"nodes": [{"name": "F", "type": "jq", "jq": "{a:"}]}

    bad = admin.post(
        api + "/plugins",
        json={"name": "datakit", "route": {"id": derived_id("routes", "items")}, "config": bad_config},
    )
    assert bad.status_code == 400
    body = bad.json()
    assert body["code"] == 2 and body["name"] == "schema violation"
    assert body["message"].startswith("schema violation (config.nodes.1.jq: invalid jq program")
    assert body["fields"]["config"]["nodes"]["1"]["jq"].startswith("invalid jq program")

    answers = {
        "patch-bad-field": admin.patch(api + "/plugins/cart-stamp", json={"enabled": "sometimes"}),
        "not-json": admin.post(
            api + "/plugins", content=b"{nope", headers={"Content-Type": "application/json"}
        ),
        "other-plugin": admin.post(api + "/plugins", json={"name": "key-auth"}),
        "same-scope": admin.post(
            api + "/plugins",
            json={"name": "datakit", "route": {"id": derived_id("routes", "cart")}, "config": stamp("x")},
        ),
        "no-such-route": admin.post(
            api + "/plugins",
            json={"name": "datakit", "route": {"id": derived_id("routes", "x")}, "config": stamp("x")},
        ),
        "no-such-plugin": admin.patch(api + "/plugins/nope", json={"enabled": False}),
        "bad-file": admin.post(api + "/config", json={"_format_version": "3.0", "routes": [{"name": "r"}]}),
        "method": admin.delete(api + "/plugins"),
    }
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {
        "patch-bad-field": 400,
        "not-json": 400,
        "other-plugin": 400,
        "same-scope": 409,
        "no-such-route": 400,
        "no-such-plugin": 404,
        "bad-file": 400,
        "method": 405,
    }
    assert answers["patch-bad-field"].json()["message"] == "schema violation (enabled: expected a boolean)"
    assert answers["not-json"].json() == {"message": "Cannot parse JSON body"}
    assert answers["bad-file"].json()["code"] == 14
    assert Path(proxy.config_path).read_bytes() == before
    assert plugin_on(client, proxy, "/cart") == "cart" and plugin_on(client, proxy, "/items") is None


def test_the_token_is_required_and_never_shown(mitmdump, upstream, admin):
    proxy = mitmdump(
        gateway_file(upstream.url), *ADMIN, "--set", "datakit_admin_token=s3cret-token", upstream=DEAD
    )
    api = admin_url(proxy)
    assert admin.get(api + "/plugins").status_code == 401
    wrong = admin.get(api + "/plugins", headers={"Kong-Admin-Token": "guess"})
    assert wrong.status_code == 401 and wrong.json()["message"].startswith("Invalid credentials")
    assert admin.get(api + "/plugins", headers={"Kong-Admin-Token": "s3cret-token"}).status_code == 200
    assert "s3cret-token" not in proxy.output()


def test_changes_survive_a_restart(mitmdump, upstream, client, admin):
    proxy = mitmdump(gateway_file(upstream.url), *ADMIN, upstream=DEAD)
    created = admin.post(
        admin_url(proxy) + "/plugins",
        json={"name": "datakit", "route": {"id": derived_id("routes", "items")}, "config": stamp("items")},
    ).json()
    proxy.stop()

    again = mitmdump(Path(proxy.config_path), *ADMIN, upstream=DEAD)
    assert plugin_on(client, again, "/items") == "items"
    ids = [p["id"] for p in admin.get(admin_url(again) + "/plugins").json()["data"]]
    assert created["id"] in ids


def test_post_config_replaces_the_whole_file(mitmdump, upstream, stub_factory, client, admin):
    other = stub_factory("other", default_echo=True)
    proxy = mitmdump(gateway_file(upstream.url), *ADMIN, upstream=DEAD)
    new_file = {
        "_format_version": "3.0",
        "services": [{"name": "other", "url": other.url, "routes": [{"name": "all", "paths": ["/"]}]}],
        "plugins": [{"name": "datakit", "config": stamp("new")}],
    }
    answer = admin.post(admin_url(proxy) + "/config", json=new_file)
    assert answer.status_code == 201
    assert [s["name"] for s in answer.json()["services"].values()] == ["other"]
    assert client.get(proxy.url + "/cart").json()["headers"]["X-Plugin"] == "new"
    assert other.requests_to("/cart") and upstream.requests == []
    assert yaml.safe_load(Path(proxy.config_path).read_text()) == new_file


def test_a_bare_config_file_stays_bare_after_a_patch(mitmdump, upstream, client, admin):
    proxy = mitmdump(stamp("bare"), *ADMIN)
    api = admin_url(proxy)
    (plugin,) = admin.get(api + "/plugins").json()["data"]
    changed = admin.patch(
        api + f"/plugins/{plugin['id']}", json={"config": {"nodes": stamp("patched")["nodes"]}}
    )
    assert changed.status_code == 200
    assert client.get(proxy.url + "/").json()["headers"]["X-Plugin"] == "patched"
    assert yaml.safe_load(Path(proxy.config_path).read_text()) == stamp("patched")
