"""Kong 3.9/3.10 documentation examples (spec §9.8, LG-01 to LG-06) run as 3.9/3.10 ran them, through a
real mitmdump. The public APIs they call are local stand-ins."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

LG01 = """
debug: true
nodes:
- name: BUILD_AUTH_HEADERS
  type: jq
  jq: |
    {{
        "Authorization": "Basic YGA8NNu8877lkOmNsagsdWAyZXQ=",
    }}
- name: BUILD_AUTH_BODY
  type: handlebars
  template: |
      grant_type=client_credentials
- name: AUTH_CALL
  type: call
  inputs:
  - headers: BUILD_AUTH_HEADERS
  - body: BUILD_AUTH_BODY
  url: {url}/token
  method: post
- name: BUILD_UPSTREAM_AUTH_HEADERS
  type: jq
  inputs:
  - auth: AUTH_CALL
  output: service_request.headers
  jq: |
    {{
    "Authorization":$auth.token_type + " " +    $auth.access_token
    }}
"""


def test_lg01_replaces_the_upstream_headers(mitmdump, stub, upstream, client):
    stub.route("POST", "/token", json={"token_type": "Bearer", "access_token": "t0k"})
    proxy = mitmdump(LG01.format(url=stub.url))
    proxy.wait_for_output(r"dialect 3\.10 \(the config uses a 3\.9/3\.10 form: node #3 writes `inputs` as a list\)")
    assert client.get(proxy.url + "/anything", headers={"X-Client": "gone"}).status_code == 200
    token = stub.requests_to("/token", "POST")[0]
    assert token.text == "grant_type=client_credentials\n"
    assert token.header("Authorization") == "Basic YGA8NNu8877lkOmNsagsdWAyZXQ="
    assert token.header("Content-Type") is None  # 3.9/3.10 added none for a call body
    seen = upstream.requests_to("/anything")[0]
    assert seen.header("Authorization") == "Bearer t0k"
    assert seen.header("X-Client") is None  # the whole header set was replaced


LG02 = """
debug: true
nodes:
- name: MY_HEADERS
  type: jq
  inputs:
  - req: request.headers
  jq: |
    {{
      "X-My-Call-Header": $req.apikey // "default value"
    }}
- name: CALL
  type: call
  inputs:
  - headers: MY_HEADERS
  url: {url}/anything
- name: EXIT
  type: exit
  inputs:
  - body: CALL.body
  status: 200
"""


def test_lg02_lower_cased_header_lookup(mitmdump, stub, client):
    stub.echo("/anything")
    proxy = mitmdump(LG02.format(url=stub.url))
    assert client.get(proxy.url + "/", headers={"ApiKey": "mykey"}).json()["headers"]["X-My-Call-Header"] == "mykey"
    assert client.get(proxy.url + "/").json()["headers"]["X-My-Call-Header"] == "default value"


def test_lg02_trace_is_an_array_of_operations(mitmdump, stub, client):
    stub.echo("/anything")
    proxy = mitmdump(LG02.format(url=stub.url))
    trace = client.get(proxy.url + "/", headers={"x-datakit-debug-trace": "1"}).json()
    assert isinstance(trace, list)
    actions = [(op["action"], op["name"]) for op in trace]
    assert ("run", "CALL") in actions and ("wait", "CALL") in actions and ("resume", "CALL") in actions
    assert ("value", "request") in actions
    off = client.get(proxy.url + "/", headers={"x-datakit-debug-trace": "off"})
    assert "X-My-Call-Header" in off.json()["headers"]  # "off" does not trace


def test_lg03_combine_two_apis(mitmdump, stub_factory, client):
    cats, dogs = stub_factory("catfact"), stub_factory("dogapi")
    cats.route("GET", "/fact", json={"fact": "Cats purr.", "length": 10})
    dogs.route("GET", "/api/v1/facts", json={"facts": ["Dogs bark."], "success": True})
    proxy = mitmdump(
        f"""
debug: true
nodes:
- name: CAT_FACT
  type: call
  url: {cats.url}/fact
- name: DOG_FACT
  type: call
  url: {dogs.url}/api/v1/facts
- name: JOIN
  type: jq
  inputs:
  - cat: CAT_FACT.body
  - dog: DOG_FACT.body
  jq: |
    {{
      "cat_fact": $cat.fact,
      "dog_fact": $dog.facts[0]
    }}
- name: EXIT
  type: exit
  inputs:
  - body: JOIN
  status: 200
"""
    )
    response = client.get(proxy.url + "/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"cat_fact": "Cats purr.", "dog_fact": "Dogs bark."}


def test_lg04_headers_and_handlebars_body_upstream(mitmdump, stub, upstream, client):
    stub.route(
        "GET",
        "/br/93000-000",
        json={"country": "Brazil", "places": [{"place name": "Porto Alegre", "state": "Rio Grande do Sul",
                                                "latitude": "-30.0", "longitude": "-51.2"}]},
    )
    proxy = mitmdump(
        textwrap.dedent(
            f"""
            debug: true
            nodes:
            - name: FIRST
              type: call
              url: {stub.url}/br/93000-000
            - name: MY_HEADERS
              type: jq
              inputs:
              - first: FIRST.body
              output: service_request.headers
              jq: |
                {{
                  "X-Hello": "World",
                  "X-Foo": "Bar",
                  "X-Country": $first.country
                }}
            - name: MY_BODY
              type: handlebars
              content_type: text/plain
              inputs:
              - first: FIRST.body
              output: service_request.body
              template: |
                Coordinates for {{{{ first.places.0.[place name] }}}}, {{{{ first.places.0.state }}}}, {{{{ first.country }}}} are ({{{{ first.places.0.latitude }}}}, {{{{ first.places.0.longitude }}}}).
            """
        )
    )
    client.post(proxy.url + "/anything", content=b"original", headers={"X-Client": "gone"})
    seen = upstream.requests_to("/anything", "POST")[0]
    assert (seen.header("X-Hello"), seen.header("X-Foo"), seen.header("X-Country")) == ("World", "Bar", "Brazil")
    assert seen.header("X-Client") is None
    assert seen.text == "Coordinates for Porto Alegre, Rio Grande do Sul, Brazil are (-30.0, -51.2).\n"


POST_FUNCTION = '''
"""Stands in for LG-05's Kong post-function plugin: writes kong.ctx.shared before Datakit runs and
copies what Datakit stored there into response headers."""
import json


class PostFunction:
    def requestheaders(self, flow):  # before any addon's request hook, as Kong's access phase order puts it
        shared = flow.metadata.setdefault("kong.ctx.shared", {})
        shared["from_lua"] = json.dumps({"nested": {"message": "hello from lua land!"}})

    def response(self, flow):
        shared = flow.metadata.get("kong.ctx.shared", {})
        for key, header in (("my_string", "X-Lua-Plugin-My-String"), ("my_encoded_string", "X-Lua-Plugin-My-Encoded-String")):
            if key in shared:
                flow.response.headers[header] = str(shared[key])
        if "api_response" in shared:
            flow.response.headers["X-Lua-Plugin-Country"] = json.loads(shared["api_response"])["country"]


addons = [PostFunction()]
'''


def test_lg05_properties_and_ctx_shared(mitmdump, stub, client, tmp_path: Path):
    stub.route("GET", "/br/93000-000", json={"country": "Brazil"})
    script = tmp_path / "post_function.py"
    script.write_text(POST_FUNCTION)
    from harness import REPO_ROOT

    config = (REPO_ROOT / "tests" / "e2e" / "data" / "lg05.yaml").read_text().replace("{url}", stub.url)
    # Its forms are all valid 3.11+ too, so auto-detection would pick 3.11; as a 3.9 example it needs 3.10's
    # pass-in-configuration-order scheduler (the GETs have no edge to the SETs before them).
    proxy = mitmdump(config, "-s", str(script), "--set", "datakit_compat=3.10")
    response = client.get(proxy.url + "/")
    body = response.json()
    assert body["API.body"] == {"country": "Brazil"}
    assert body["LUA_VALUE_ENCODED"] == json.dumps({"nested": {"message": "hello from lua land!"}})
    assert body["LUA_VALUE_DECODED"] == {"nested": {"message": "hello from lua land!"}}
    assert body["UNSET_PROP"] is None
    assert body["GET_PLAIN_STRING"] == "my string"
    assert body["GET_JSON_STRING_ENCODED"] == '"my string"'
    assert body["GET_JSON_STRING_DECODED"] == "my string"
    assert body["ROUTE_ID"] is None and body["SERVICE"] is None  # a bare config has no route or service
    assert response.headers["X-Lua-Plugin-My-String"] == "my string"
    assert response.headers["X-Lua-Plugin-My-Encoded-String"] == '"my string"'


def test_lg06_jq_variable(mitmdump, client):
    proxy = mitmdump(
        """
nodes:
- name: JOIN
  type: jq
  inputs: [{req: request.headers}]
  jq: '{"key": $req.foo}'
- name: EXIT
  type: exit
  inputs: [{body: JOIN}]
  status: 200
"""
    )
    assert client.get(proxy.url + "/", headers={"foo": "x"}).json() == {"key": "x"}


@pytest.mark.parametrize(
    ("compat", "expected"),
    [("3.10", {"key": "x", "dot": None}), ("3.11", {"key": "x", "dot": {"req": {"foo": "x"}}})],
)
def test_datakit_compat_forces_the_dialect(mitmdump, client, compat, expected):
    proxy = mitmdump(
        """
nodes:
- name: JOIN
  type: jq
  inputs: {req: request.headers}
  jq: '{"key": $req.foo, "dot": (if . == null then null else {req: {foo: .req.foo}} end)}'
- name: EXIT
  type: exit
  inputs: {body: JOIN}
""",
        "--set",
        f"datakit_compat={compat}",
    )
    assert client.get(proxy.url + "/", headers={"foo": "x"}).json() == expected
    escaped = re.escape(compat)
    proxy.wait_for_output(rf"dialect {escaped} \(datakit_compat={escaped}\)")
