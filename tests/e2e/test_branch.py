"""The `branch` node through a real mitmdump (spec §5.6, CB-01)."""

from __future__ import annotations

CB01 = """
nodes:
  - name: CHECK_AUTH
    type: jq
    inputs:
      headers: request.headers
    jq: >-
      .headers.Authorization? != null or
      .headers.authorization? != null
  - name: AUTH_BRANCH
    type: branch
    input: CHECK_AUTH
    else:
      - UNAUTH_RESPONSE
      - UNAUTH_EXIT
  - name: UNAUTH_RESPONSE
    type: static
    values:
      content-type: application/json
      www-authenticate: >-
        Bearer
        resource_metadata="https://localhost:8443/.well-known/oauth-protected-resource/github-mcp",
        error="invalid_token"
      BODY: '{"message": "Unauthorized"}'
  - name: UNAUTH_EXIT
    type: exit
    status: 401
    inputs:
      body: UNAUTH_RESPONSE.BODY
      headers: UNAUTH_RESPONSE
"""


def test_cb01_without_authorization_answers_401(mitmdump, upstream, client):
    proxy = mitmdump(CB01)
    response = client.get(proxy.url + "/mcp")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer resource_metadata="https://localhost:8443/.well-known/oauth-protected-resource/github-mcp", '
        'error="invalid_token"'
    )
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"message": "Unauthorized"}
    assert upstream.requests == []


def test_cb01_with_authorization_is_proxied_untouched(mitmdump, upstream, client):
    proxy = mitmdump(CB01)
    response = client.get(proxy.url + "/mcp", headers={"Authorization": "Bearer t"})
    assert response.status_code == 200
    assert response.json()["headers"]["Authorization"] == "Bearer t"


NESTED = """
debug: true
nodes:
  - name: IS_A
    type: jq
    input: request.query
    jq: '.kind == "a"'
  - name: OUTER
    type: branch
    input: IS_A
    then: [ANSWER_A]
    else: [IS_B, INNER]
  - name: IS_B
    type: jq
    input: request.query
    jq: '.kind == "b"'
  - name: INNER
    type: branch
    input: IS_B
    then: [ANSWER_B]
    else: [ANSWER_OTHER]
  - name: ANSWER_A
    type: exit
    inputs: {body: A_BODY}
  - name: ANSWER_B
    type: exit
    inputs: {body: B_BODY}
  - name: ANSWER_OTHER
    type: exit
    status: 404
    inputs: {body: OTHER_BODY}
  - name: A_BODY
    type: jq
    jq: '"took a"'
  - name: B_BODY
    type: jq
    jq: '"took b"'
  - name: OTHER_BODY
    type: jq
    jq: '"neither"'
"""


def test_nested_branches_pick_one_exit(mitmdump, client):
    proxy = mitmdump(NESTED)
    assert client.get(proxy.url + "/?kind=a").text == "took a"
    assert client.get(proxy.url + "/?kind=b").text == "took b"
    other = client.get(proxy.url + "/?kind=c")
    assert (other.status_code, other.text) == (404, "neither")


def test_nested_branch_trace_shows_skipped_nodes(mitmdump, client):
    proxy = mitmdump(NESTED)
    trace = client.get(proxy.url + "/?kind=a", headers={"X-DataKit-Debug-Trace": "1"}).json()
    statuses = {n["name"]: n["status"] for n in trace["nodes"]}
    # The outer else-list is skipped, and with INNER skipped so is everything INNER controls.
    assert statuses["IS_B"] == statuses["INNER"] == "NODE_SKIPPED"
    assert statuses["ANSWER_B"] == statuses["ANSWER_OTHER"] == "NODE_SKIPPED"
    assert statuses["ANSWER_A"] == "NODE_COMPLETE"
    assert ("INNER", "skip") in [(e["name"], e["action"]) for e in trace["events"]]


def test_non_boolean_condition_fails_the_branch(mitmdump, client):
    proxy = mitmdump(
        {
            "debug": True,
            "nodes": [
                {"name": "COND", "type": "jq", "jq": '"yes"'},
                {"name": "B", "type": "branch", "input": "COND", "then": ["E"]},
                {"name": "E", "type": "exit", "status": 204},
            ],
        }
    )
    body = client.get(proxy.url + "/").json()
    assert body["node"] == {"index": 2, "name": "B", "type": "branch"}
    assert body["error"] == "invalid value for B: expected boolean, got string"


def test_unlisted_dependent_of_a_skipped_node_is_skipped_and_sinks_keep_the_rest(mitmdump, upstream, client):
    proxy = mitmdump(
        """
nodes:
  - name: NO
    type: jq
    jq: 'false'
  - name: B
    type: branch
    input: NO
    then: [SECRET_HEADER]
  - name: SECRET_HEADER
    type: jq
    jq: '{"X-Secret": "1"}'
  - name: DEPENDS
    type: jq
    input: SECRET_HEADER
    jq: '. + {"X-Dependent": "1"}'
    output: service_request.headers
  - name: ALWAYS
    type: jq
    jq: '"kept"'
    output: service_request.body
"""
    )
    client.post(proxy.url + "/x", content=b"original")
    seen = upstream.requests_to("/x")[0]
    assert seen.header("X-Secret") is None and seen.header("X-Dependent") is None
    assert seen.text == "kept"
