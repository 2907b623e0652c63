"""EX-14 (Kong 3.14): nested branches pick the JWT to verify, and the verified subject becomes the consumer."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

EX14 = """
resources:
  vault:
    jwks1: "{vault://env/JWKS1_JSON}"
    jwks2: "{vault://env/JWKS2_JSON}"
nodes:
  - name: HAS_AUTH1
    type: jq
    input: request.headers
    jq: |
      (.Authorization // .authorization) != null
  - name: BRANCH_AUTH1
    type: branch
    input: HAS_AUTH1
    then: [EXTRACT_AUTH1, VERIFY_AUTH1, BUILD_CONSUMER1, SET_CONSUMER1]
    else: [HAS_AUTH2, BRANCH_AUTH2]
  - name: EXTRACT_AUTH1
    type: jq
    input: request.headers
    jq: |
      .Authorization // .authorization
  - name: VERIFY_AUTH1
    type: jwt_verify
    issuers: ["expected-issuer-1"]
    required_claims: ["sub", "iss", "exp"]
    inputs:
      token: EXTRACT_AUTH1
      key: vault.jwks1
  - name: BUILD_CONSUMER1
    type: jq
    input: VERIFY_AUTH1.claims
    jq: |
      { "username": .sub }
  - name: SET_CONSUMER1
    type: property
    property: kong.client.consumer
    input: BUILD_CONSUMER1
  - name: HAS_AUTH2
    type: jq
    input: request.headers
    jq: |
      (.Authorization2 // .authorization2) != null
  - name: BRANCH_AUTH2
    type: branch
    input: HAS_AUTH2
    then: [EXTRACT_AUTH2, VERIFY_AUTH2, BUILD_CONSUMER2, SET_CONSUMER2]
  - name: EXTRACT_AUTH2
    type: jq
    input: request.headers
    jq: |
      .Authorization2 // .authorization2
  - name: VERIFY_AUTH2
    type: jwt_verify
    issuers: ["expected-issuer-2"]
    required_claims: ["sub", "iss", "exp"]
    inputs:
      token: EXTRACT_AUTH2
      key: vault.jwks2
  - name: BUILD_CONSUMER2
    type: jq
    input: VERIFY_AUTH2.claims
    jq: |
      { "username": .sub }
  - name: SET_CONSUMER2
    type: property
    property: kong.client.consumer
    input: BUILD_CONSUMER2
"""

# Not part of EX-14: shows the upstream which consumer the first path authenticated.
SHOW_CONSUMER = """
  - name: SHOW_CONSUMER1
    type: jq
    input: SET_CONSUMER1
    output: service_request.headers
    jq: '{"X-Consumer": .username}'
"""


def _key_pair(kid: str) -> tuple[bytes, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return pem, json.dumps({"keys": [jwk]})


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[bytes, str]]:
    return {"one": _key_pair("k1"), "two": _key_pair("k2")}


def _token(private_pem: bytes, kid: str, issuer: str, subject: str) -> str:
    now = int(time.time())
    claims = {"sub": subject, "iss": issuer, "iat": now, "exp": now + 300}
    return jwt.encode(claims, private_pem, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def proxy(mitmdump, keys):
    env = {"JWKS1_JSON": keys["one"][1], "JWKS2_JSON": keys["two"][1]}
    return mitmdump(EX14 + SHOW_CONSUMER, env=env)


def test_first_token_authenticates_its_subject(proxy, keys, upstream, client):
    token = _token(keys["one"][0], "k1", "expected-issuer-1", "alice")
    response = client.get(proxy.url + "/api", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert upstream.requests_to("/api")[0].header("X-Consumer") == "alice"


def test_second_token_is_verified_when_the_first_is_absent(proxy, keys, upstream, client):
    token = _token(keys["two"][0], "k2", "expected-issuer-2", "bob")
    assert client.get(proxy.url + "/api", headers={"Authorization2": token}).status_code == 200
    # Path 1 was skipped, and with it the node that shows its consumer.
    assert upstream.requests_to("/api")[0].header("X-Consumer") is None


@pytest.mark.parametrize(
    ("header", "key", "kid", "issuer"),
    [
        ("Authorization", "two", "k2", "expected-issuer-1"),  # signed with the other key set
        ("Authorization", "one", "k1", "someone-else"),  # wrong issuer
        ("Authorization2", "one", "k1", "expected-issuer-2"),  # path 2 with path 1's key
    ],
    ids=["wrong-key", "wrong-issuer", "path2-wrong-key"],
)
def test_an_invalid_token_fails_the_request(proxy, keys, upstream, client, header, key, kid, issuer):
    token = _token(keys[key][0], kid, issuer, "mallory")
    response = client.get(proxy.url + "/api", headers={header: f"Bearer {token}"})
    assert response.status_code == 500
    assert upstream.requests_to("/api") == []


def test_neither_header_proxies_unauthenticated(proxy, upstream, client):
    assert client.get(proxy.url + "/api").status_code == 200
    assert upstream.requests_to("/api")[0].header("X-Consumer") is None
