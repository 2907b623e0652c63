"""Kong's documented Datakit examples (spec §8.1, §8.3, §9.8 in 3.11+ syntax) through a real mitmdump.

Official examples call public APIs; here each URL points at a local stand-in on 127.0.0.1.
"""

from __future__ import annotations

import httpx

from harness import Proxy, StubRequest, StubServer


def test_ex01_combine_two_apis_into_one_response(mitmdump, stub, upstream, client):
    stub.route("GET", "/json", json={"slideshow": {"author": "Yours Truly", "title": "Sample"}})
    stub.route("GET", "/uuid", json={"uuid": "3f2a1c4e-0000-4000-8000-000000000001"})
    proxy = mitmdump(
        f"""
nodes:
- name: AUTHOR
  type: call
  url: {stub.url}/json
- name: UUID
  type: call
  url: {stub.url}/uuid
- name: JOIN
  type: jq
  inputs:
    input1: AUTHOR.body
    input2: UUID.body
  jq: |
    {{
      author: .input1.slideshow.author,
      uuid: .input2.uuid,
    }}
- name: EXIT
  type: exit
  inputs:
    body: JOIN
  status: 200
"""
    )
    response = client.get(proxy.url + "/anything")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"author": "Yours Truly", "uuid": "3f2a1c4e-0000-4000-8000-000000000001"}
    assert upstream.requests == []  # the exit answered: the service was never contacted


def test_ex01_either_call_failing_gives_the_generic_500(mitmdump, stub, client):
    stub.route("GET", "/json", json={"slideshow": {"author": "x"}})
    stub.route("GET", "/uuid", json={"error": "nope"}, status=403)
    proxy = mitmdump(
        {
            "nodes": [
                {"name": "AUTHOR", "type": "call", "url": f"{stub.url}/json"},
                {"name": "UUID", "type": "call", "url": f"{stub.url}/uuid"},
                {"name": "JOIN", "type": "jq", "inputs": {"a": "AUTHOR.body", "u": "UUID.body"}, "jq": "."},
                {"name": "EXIT", "type": "exit", "inputs": {"body": "JOIN"}},
            ]
        }
    )
    response = client.get(proxy.url + "/anything")
    assert response.status_code == 500
    body = response.json()
    assert body["message"] == "An unexpected error occurred"
    assert len(body["request_id"]) == 32 and set(body["request_id"]) <= set("0123456789abcdef")
    assert set(body) == {"message", "request_id"}
    proxy.wait_for_output(r'node #2 \(UUID\) failed with error: "non-2XX response code: 403"')


def test_ex02_manipulate_request_headers(mitmdump, stub, client):
    stub.route("GET", "/", json={"from": "api"}, headers={"X-Api-Answer": "42"})
    proxy = mitmdump(
        f"""
nodes:
- name: HEADERS
  type: static
  values:
    X-API-Header-One: foo
    X-API-Header-Two: bar
- name: MERGE_HEADERS
  type: jq
  inputs:
    static: HEADERS
    request: request.headers
  jq: |
    .static * (.request | with_entries(.key = "X-Request-" + .key))
- name: API
  type: call
  url: {stub.url}/
  inputs:
    headers: MERGE_HEADERS
- name: EXIT
  type: exit
  input: API
  status: 200
"""
    )
    response = client.get(proxy.url + "/anything", headers={"X-Client": "me"})
    seen = stub.requests_to("/")[0]
    assert seen.header("X-API-Header-One") == "foo"
    assert seen.header("X-API-Header-Two") == "bar"
    assert seen.header("X-Request-X-Client") == "me"
    # Original casing survives: the prefixed name is built from the client's own header names.
    assert any(name == "X-Request-X-Client" for name, _ in seen.header_list)
    assert response.status_code == 200
    assert response.json() == {"from": "api"}
    assert response.headers["X-Api-Answer"] == "42"  # the call's headers are the exit's headers


AUTH_FLOW = """
nodes:
- name: STATIC_INPUTS
  type: static
  values:
    headers:
      Content-Type: application/x-www-form-urlencoded
    body:
      grant_type: client_credentials
      client_id: my_client_id
- name: BUILD_HEADERS
  type: jq
  inputs:
    headers: STATIC_INPUTS.headers
    query: request.query
  jq: |
    .headers * {{
      "X-Api-Key": (.query.api_key // "none")
    }}
- name: AUTH_REQUEST
  type: call
  inputs:
    headers: BUILD_HEADERS
    body: STATIC_INPUTS.body{extra_input}
  url: "{url}/auth-token"
  method: POST
- name: UPSTREAM_AUTH_HEADER
  type: jq
  input: AUTH_REQUEST.body
  output: service_request.headers
  jq: |
    {{
      Authorization: (.token_type + " " + .access_token)
    }}
{extra_nodes}"""


def _token_service(stub: StubServer, path: str = "/auth-token") -> None:
    stub.route("POST", path, json={"token_type": "Bearer", "access_token": "abc"})


def test_ex03_authenticate_with_a_form_encoded_call(mitmdump, stub, upstream, client):
    _token_service(stub)
    proxy = mitmdump(AUTH_FLOW.format(url=stub.url, extra_input="", extra_nodes=""))
    response = client.get(proxy.url + "/anything?api_key=k-123", headers={"X-Keep": "yes"})
    assert response.status_code == 200
    auth: StubRequest = stub.requests_to("/auth-token", "POST")[0]
    assert auth.header("Content-Type") == "application/x-www-form-urlencoded"
    assert auth.header("X-Api-Key") == "k-123"
    assert sorted(auth.text.split("&")) == ["client_id=my_client_id", "grant_type=client_credentials"]
    seen = upstream.requests_to("/anything")[0]
    assert seen.header("Authorization") == "Bearer abc"
    assert seen.header("X-Keep") == "yes"  # the client's other headers still reach the service


def test_ex03_without_api_key_sends_none(mitmdump, stub, upstream, client):
    _token_service(stub)
    proxy = mitmdump(AUTH_FLOW.format(url=stub.url, extra_input="", extra_nodes=""))
    assert client.get(proxy.url + "/anything").status_code == 200
    assert stub.requests_to("/auth-token")[0].header("X-Api-Key") == "none"


def test_ex05_dynamic_url_from_a_request_header(mitmdump, stub, upstream, client):
    _token_service(stub, "/tenant-7/auth-token")
    build_url = f"""- name: BUILD_URL
  type: jq
  input: request.headers
  jq: |
    "{stub.url}/" + .path + "/auth-token"
"""
    proxy = mitmdump(
        AUTH_FLOW.format(url=stub.url + "/unused", extra_input="\n    url: BUILD_URL", extra_nodes=build_url)
    )
    response = client.get(proxy.url + "/anything", headers={"path": "tenant-7"})
    assert response.status_code == 200
    assert len(stub.requests_to("/tenant-7/auth-token")) == 1
    assert stub.requests_to("/unused/auth-token") == []
    assert upstream.requests_to("/anything")[0].header("Authorization") == "Bearer abc"


def test_ex06_null_clears_headers(mitmdump, stub, client):
    stub.route("GET", "/", text="")
    proxy = mitmdump(
        f"""
nodes:
- name: HEADERS
  type: static
  values:
    X-Ignored: null
    X-Add-Me: "added"
- name: API
  type: call
  url: {stub.url}/
  inputs:
    headers: HEADERS
- name: EXIT
  type: exit
  inputs:
    headers: HEADERS
  status: 200
"""
    )
    response = client.get(proxy.url + "/anything", headers={"X-Ignored": "client value"})
    call = stub.requests_to("/")[0]
    assert call.header("X-Add-Me") == "added"
    assert call.header("X-Ignored") is None
    assert response.status_code == 200
    assert response.headers["X-Add-Me"] == "added"
    assert "X-Ignored" not in response.headers
    assert response.content == b""


def test_cb02_model_based_routing_rewrites_the_upstream_body(mitmdump, stub, upstream, client):
    stub.route(
        "POST",
        "/model-selection",
        json={"choices": [{"message": {"content": "  gpt-small \n"}}]},
    )
    proxy = mitmdump(
        f"""
debug: true
nodes:
  - name: EXTRACT_PROMPT
    type: jq
    input: request.body
    jq: |
      ({{"messages": .messages}})
  - name: EXTRACT_AUTH
    type: jq
    input: request.headers
    output: service_request.headers
    jq: |
      {{
        apikey: "internal-router-key"
      }}
  - name: CALL_MODEL_SELECTOR
    type: call
    url: {stub.url}/model-selection
    method: POST
    inputs:
      body: EXTRACT_PROMPT
      headers: EXTRACT_AUTH
  - name: EXTRACT_MODEL
    type: jq
    inputs:
      body: CALL_MODEL_SELECTOR.body
    jq: |
      .body.choices[0].message.content | gsub("^\\\\s+|\\\\s+$"; "")
  - name: UPDATE_REQUEST
    type: jq
    inputs:
      original: request.body
      selected: EXTRACT_MODEL
    output: service_request.body
    jq: |
      . as $in | $in.original | .model = $in.selected
"""
    )
    prompt = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    response = client.post(proxy.url + "/v1/chat", json=prompt)
    assert response.status_code == 200
    selector = stub.requests_to("/model-selection")[0]
    assert selector.json() == {"messages": prompt["messages"]}
    assert selector.header("apikey") == "internal-router-key"
    seen = upstream.requests_to("/v1/chat")[0]
    assert seen.json() == {**prompt, "model": "gpt-small"}
    assert seen.header("apikey") == "internal-router-key"
    assert seen.header("Content-Length") == str(len(seen.body))


def test_lg01_auth_with_handlebars_body_and_jq_variables(mitmdump, stub, upstream, client):
    """LG-01 in 3.11+ syntax: map `inputs`, uppercase method; `$auth` still works as a jq variable."""
    stub.route("POST", "/token", json={"token_type": "Bearer", "access_token": "t0k"})
    proxy = mitmdump(
        f"""
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
    headers: BUILD_AUTH_HEADERS
    body: BUILD_AUTH_BODY
  url: {stub.url}/token
  method: POST
- name: BUILD_UPSTREAM_AUTH_HEADERS
  type: jq
  inputs:
    auth: AUTH_CALL.body
  output: service_request.headers
  jq: |
    {{
    "Authorization":$auth.token_type + " " +    $auth.access_token
    }}
"""
    )
    assert client.get(proxy.url + "/anything").status_code == 200
    token_call = stub.requests_to("/token", "POST")[0]
    assert token_call.text == "grant_type=client_credentials\n"
    assert token_call.header("Authorization") == "Basic YGA8NNu8877lkOmNsagsdWAyZXQ="
    assert upstream.requests_to("/anything")[0].header("Authorization") == "Bearer t0k"


LG02 = """
debug: true
nodes:
- name: MY_HEADERS
  type: jq
  inputs:
    req: request.headers
  jq: |
    {{
      "X-My-Call-Header": ($req.apikey // "default value")
    }}
- name: CALL
  type: call
  inputs:
    headers: MY_HEADERS
  url: {url}/anything
- name: EXIT
  type: exit
  inputs:
    body: CALL.body
  status: 200
"""


def test_lg02_call_header_from_a_client_header(mitmdump, stub, client):
    stub.echo("/anything")
    proxy = mitmdump(LG02.format(url=stub.url))
    with_key = client.get(proxy.url + "/", headers={"apikey": "mykey"}).json()
    without = client.get(proxy.url + "/").json()
    assert with_key["headers"]["X-My-Call-Header"] == "mykey"
    assert without["headers"]["X-My-Call-Header"] == "default value"


def test_lg02_trace_header_returns_the_trace(mitmdump, stub, client):
    stub.echo("/anything")
    proxy = mitmdump(LG02.format(url=stub.url))
    trace = client.get(proxy.url + "/", headers={"X-DataKit-Debug-Trace": "1", "apikey": "k"}).json()
    assert trace["status"] == "PLAN_COMPLETE"
    statuses = {n["name"]: n["status"] for n in trace["nodes"]}
    assert statuses["CALL"] == statuses["EXIT"] == statuses["MY_HEADERS"] == "NODE_COMPLETE"
    actions = [(e["name"], e["action"]) for e in trace["events"]]
    assert ("CALL", "run") in actions and ("CALL", "resume") in actions and ("EXIT", "complete") in actions


def test_lg03_combine_two_apis(mitmdump, stub_factory, client):
    cats, dogs = stub_factory("catfact"), stub_factory("dogapi")
    cats.route("GET", "/fact", json={"fact": "Cats sleep 70% of their lives.", "length": 30})
    dogs.route("GET", "/api/v1/facts", json={"facts": ["Dogs have three eyelids."], "success": True})
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
    cat: CAT_FACT.body
    dog: DOG_FACT.body
  jq: |
    {{
      "cat_fact": $cat.fact,
      "dog_fact": $dog.facts[0]
    }}
- name: EXIT
  type: exit
  inputs:
    body: JOIN
  status: 200
"""
    )
    response = client.get(proxy.url + "/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"cat_fact": "Cats sleep 70% of their lives.", "dog_fact": "Dogs have three eyelids."}


def test_lg04_handlebars_into_the_service_request_body(mitmdump, stub, upstream, client):
    stub.route(
        "GET",
        "/br/93000-000",
        json={
            "country": "Brazil",
            "places": [
                {"place name": "Porto Alegre", "state": "Rio Grande do Sul", "latitude": "-30.0", "longitude": "-51.2"}
            ],
        },
    )
    proxy = mitmdump(
        f"""
debug: true
nodes:
- name: FIRST
  type: call
  url: {stub.url}/br/93000-000
- name: MY_HEADERS
  type: jq
  inputs:
    first: FIRST.body
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
    first: FIRST.body
  output: service_request.body
  template: |
    Coordinates for {{{{ first.places.0.[place name] }}}}, {{{{ first.places.0.state }}}}, {{{{ first.country }}}} are ({{{{ first.places.0.latitude }}}}, {{{{ first.places.0.longitude }}}}).
"""
    )
    assert client.post(proxy.url + "/anything", content=b"original").status_code == 200
    seen = upstream.requests_to("/anything", "POST")[0]
    assert seen.header("X-Hello") == "World"
    assert seen.header("X-Foo") == "Bar"
    assert seen.header("X-Country") == "Brazil"
    assert seen.text == "Coordinates for Porto Alegre, Rio Grande do Sul, Brazil are (-30.0, -51.2).\n"
    assert seen.header("Content-Length") == str(len(seen.body))


def test_lg06_jq_variable_from_request_headers(mitmdump, client):
    proxy = mitmdump(
        """
nodes:
- name: JOIN
  type: jq
  inputs:
    req: request.headers
  jq: '{"key": $req.foo}'
- name: EXIT
  type: exit
  inputs:
    body: JOIN
  status: 200
"""
    )
    assert client.get(proxy.url + "/", headers={"foo": "x"}).json() == {"key": "x"}


def test_animal_facts_config_runs_as_bundled(mitmdump, stub_factory, client):
    """configs/animal-facts.yaml (the README's demo) against stand-ins on its fixed ports is covered by
    scripts/demo.sh; here the same graph proves the shape with kernel-chosen ports."""
    cats, dogs = stub_factory("cats"), stub_factory("dogs")
    cats.route("GET", "/fact", json={"fact": "purr", "length": 4})
    dogs.route("GET", "/api/v1/facts", json={"facts": ["woof"], "success": True})
    from harness import REPO_ROOT

    text = (REPO_ROOT / "configs" / "animal-facts.yaml").read_text()
    text = text.replace("http://127.0.0.1:18081", cats.url).replace("http://127.0.0.1:18082", dogs.url)
    proxy: Proxy = mitmdump(text)
    response = httpx.get(proxy.url + "/", trust_env=False, timeout=10)
    assert response.json() == {"cat_fact": "purr", "dog_fact": "woof"}


EX04 = """
resources:
  vault:
    token: "{reference}"
nodes:
- name: STATIC_INPUTS
  type: static
  values:
    headers:
      Content-Type: application/x-www-form-urlencoded
    body: grant_type=client_credentials
- name: BUILD_HEADERS
  type: jq
  inputs:
    headers: STATIC_INPUTS.headers
    apikey: vault.token
  jq: |
    .headers * {{
      "X-Api-Key": .apikey
    }}
- name: AUTH_REQUEST
  type: call
  inputs:
    headers: BUILD_HEADERS
    body: STATIC_INPUTS.body
  url: "{url}/auth-token"
  method: POST
- name: UPSTREAM_AUTH_HEADER
  type: jq
  input: AUTH_REQUEST.body
  output: service_request.headers
  jq: |
    {{
      Authorization: (.token_type + " " + .access_token)
    }}
"""


def test_ex04_authenticate_with_a_vault_secret(mitmdump, stub, upstream, client):
    _token_service(stub)
    proxy = mitmdump(EX04.format(reference="{vault://env/my-token}", url=stub.url), env={"MY_TOKEN": "k-from-vault"})
    assert client.get(proxy.url + "/anything").status_code == 200
    auth = stub.requests_to("/auth-token", "POST")[0]
    assert auth.header("X-Api-Key") == "k-from-vault"
    assert auth.text == "grant_type=client_credentials"
    assert upstream.requests_to("/anything")[0].header("Authorization") == "Bearer abc"
    assert "k-from-vault" not in proxy.output()


def test_ex04_as_documented_names_a_vault_backend_that_does_not_exist_here(mitmdump, stub, client):
    """Kong's example reads `{vault://my-vault/my-token}`; only the env vault exists outside Kong."""
    _token_service(stub)
    proxy = mitmdump(EX04.format(reference="{vault://my-vault/my-token}", url=stub.url))
    assert client.get(proxy.url + "/anything").status_code == 500
    proxy.wait_for_output(r"node #2 \(BUILD_HEADERS\) failed with error: \"vault backend 'my-vault' is not available here")
