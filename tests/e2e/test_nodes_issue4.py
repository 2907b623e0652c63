"""Kong's examples for `cache`, `xml_to_json`, `json_to_xml`, the JWT nodes and `call` over TLS, through a
real mitmdump with real local servers: EX-07 (memory and Redis), EX-08, EX-09, EX-10, EX-13, EX-15 and
RF-30 to RF-34 (spec §8). Keys, certificates and the CA are made in the test; Redis is a real
`redis-server` on a free loopback port.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from harness import StubRequest
from jwt.algorithms import get_default_algorithms
from lxml import etree

# The unit tests' local CA serves here too (tests/conftest.py's folder is on sys.path; said again for tools).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from unit.pki import LocalCA  # noqa: E402

SPEC_XML = (
    "<root><name>Alice</name><age>30</age><is_student>false</is_student><courses>Math</courses>"
    "<courses>Science</courses><address><street>123 Main St</street><city>Wonderland</city></address>"
    "<null_value>null</null_value></root>"
)
SPEC_JSON = {
    "root": {
        "name": "Alice",
        "age": 30,
        "is_student": False,
        "courses": ["Math", "Science"],
        "address": {"street": "123 Main St", "city": "Wonderland"},
        "null_value": None,
    }
}


# =============================================================================================
# EX-07: cache + branch, with the memory and the Redis strategy
# =============================================================================================


def ex07(data_url: str, cache: dict[str, Any]) -> str:
    return f"""
resources:
  cache: {json.dumps(cache)}
nodes:
  - type: static
    values:
      key: cache key
    name: CACHE_KEY_GET
  - type: cache
    input: CACHE_KEY_GET
    ttl: 200
    name: GET
  - type: branch
    then:
      - DATA
      - SET
      - EXIT_MISS
    else:
      - EXIT_HIT
    input: GET.miss
    name: branch
  - type: call
    method: GET
    url: "{data_url}"
    name: DATA
  - type: static
    values:
      hit:
        x-hit: true
      ttl: 100
      miss:
        x-miss: true
      key: cache key
    name: VALUES
  - type: cache
    inputs:
      key: VALUES.key
      data: DATA
      ttl: VALUES.ttl
    name: SET
  - inputs:
      headers: VALUES.miss
      body: DATA
    type: exit
    status: 200
    name: EXIT_MISS
  - inputs:
      headers: VALUES.hit
      body: GET.data
    type: exit
    status: 200
    name: EXIT_HIT
"""


def assert_miss_then_hit(first: httpx.Response, second: httpx.Response) -> None:
    assert (first.status_code, first.headers.get("x-miss"), first.headers.get("x-hit")) == (200, "true", None)
    assert (second.status_code, second.headers.get("x-hit"), second.headers.get("x-miss")) == (
        200,
        "true",
        None,
    )
    # The whole DATA call (status, headers, body, raw_body) was cached and comes back unchanged.
    cached = first.json()
    assert cached["status"] == 200
    assert cached["body"] == {"fresh": "data"}
    assert second.json() == cached


@pytest.fixture
def data_api(stub):
    stub.route("GET", "/anything", json={"fresh": "data"})
    return stub


def test_ex07_memory_cache_miss_then_hit(mitmdump, data_api, upstream, client):
    proxy = mitmdump(ex07(f"{data_api.url}/anything", {"strategy": "memory"}))
    first = client.get(proxy.url + "/")
    second = client.get(proxy.url + "/")
    assert_miss_then_hit(first, second)
    assert len(data_api.requests_to("/anything")) == 1  # the hit did not call DATA again
    assert upstream.requests == []




def test_ex07_redis_cache_is_shared_by_two_proxies(mitmdump, data_api, client, redis_server):
    config = ex07(f"{data_api.url}/anything", {"strategy": "redis", "redis": {"port": redis_server.port}})
    first_proxy, second_proxy = mitmdump(config), mitmdump(config)
    first = client.get(first_proxy.url + "/")
    second = client.get(second_proxy.url + "/")  # another proxy: the entry comes from Redis
    assert_miss_then_hit(first, second)
    assert len(data_api.requests_to("/anything")) == 1
    redis = redis_server.client()
    try:
        assert json.loads(redis.get("datakit:cache:cache key"))["body"] == {"fresh": "data"}
        assert 0 < redis.ttl("datakit:cache:cache key") <= 100  # the SET's ttl input, not GET's 200
    finally:
        redis.close()


def test_ex07_redis_down_fails_the_request_and_says_why(mitmdump, data_api, client, redis_server):
    config = ex07(f"{data_api.url}/anything", {"strategy": "redis", "redis": {"port": redis_server.port}})
    proxy = mitmdump(config.replace("nodes:", "debug: true\nnodes:", 1))
    redis_server.stop()
    response = client.get(proxy.url + "/")
    assert response.status_code == 500
    assert response.json()["node"]["name"] == "GET"
    assert (
        response.json()["error"]
        == f"cache: cannot connect to Redis 127.0.0.1:{redis_server.port}: Connection refused"
    )


def test_ex07_redis_down_with_bypass_is_a_miss(mitmdump, data_api, client, redis_server):
    config = ex07(f"{data_api.url}/anything", {"strategy": "redis", "redis": {"port": redis_server.port}})
    proxy = mitmdump(
        config.replace("    ttl: 200\n", "    ttl: 200\n    bypass_on_error: true\n", 1).replace(
            "      ttl: VALUES.ttl\n", "      ttl: VALUES.ttl\n    bypass_on_error: true\n", 1
        )
    )
    redis_server.stop()
    for _ in range(2):  # no cache: every request is a miss that calls DATA
        response = client.get(proxy.url + "/")
        assert (response.status_code, response.headers.get("x-miss")) == (200, "true")
    assert len(data_api.requests_to("/anything")) == 2


# =============================================================================================
# EX-08, EX-09, EX-10: XML
# =============================================================================================

EX08 = """
debug: true
nodes:
  - name: JSON_XML
    type: json_to_xml
    attributes_name_prefix: "-"
    attributes_block_name: null
    text_block_name: "#text"
    input: request.body
  - name: EXIT
    type: exit
    inputs:
      body: JSON_XML
"""


def test_ex08_convert_json_into_xml(mitmdump, client):
    proxy = mitmdump(EX08)
    document = {
        "book": {"-id": "42", "-lang": "en", "title": "Datakit & XML", "tags": ["a", "b"], "#text": "note"}
    }
    response = client.post(proxy.url + "/", json=document)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/xml"
    assert response.text == (
        '<book id="42" lang="en">note<title>Datakit &amp; XML</title><tags>a</tags><tags>b</tags></book>'
    )


EX09 = """
debug: true
nodes:
  - name: XML_JSON
    type: xml_to_json
    attributes_block_name: null
    attributes_name_prefix: "-"
    recognize_type: true
    text_block_name: "#text"
    input: request.body
    xpath: null
  - name: EXIT
    type: exit
    inputs:
      body: XML_JSON
"""


def test_ex09_convert_xml_into_json(mitmdump, client):
    proxy = mitmdump(EX09)
    for content_type in ("application/xml", "text/xml; charset=utf-8"):
        response = client.post(proxy.url + "/", content=SPEC_XML, headers={"Content-Type": content_type})
        assert response.status_code == 200, content_type
        assert response.headers["content-type"] == "application/json"
        assert response.json() == SPEC_JSON
    # Attributes become `-`-prefixed keys, next to the text.
    response = client.post(
        proxy.url + "/",
        content='<user id="7" active="true">Ann</user>',
        headers={"Content-Type": "application/xml"},
    )
    assert response.json() == {"user": {"-id": 7, "-active": True, "#text": "Ann"}}


HOSTILE_XML = {
    "entity-expansion": (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
        '<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]><r>&d;&d;&d;</r>'
    ),
    "external-entity": '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
}


def test_ex09_hostile_xml_is_refused(mitmdump, client):
    proxy = mitmdump(EX09)
    for case, document in HOSTILE_XML.items():
        response = client.post(proxy.url + "/", content=document, headers={"Content-Type": "application/xml"})
        assert response.status_code == 500, case
        assert response.json()["error"] == (
            "xml_to_json: a document with a DOCTYPE is refused (DTDs and entity declarations are not allowed)"
        ), case
        assert "root:" not in response.text  # nothing of /etc/passwd


def test_ex10_json_to_xml_and_back_soap_bridge(mitmdump, stub, upstream, client):
    def soap_service(request: StubRequest):
        assert request.header("Content-Type") == "application/xml"
        order = etree.fromstring(request.body)
        reply = (
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            f'<result status="ok"><id>{order.findtext("id")}</id><total>12.5</total></result>'
            "</soap:Body></soap:Envelope>"
        )
        return 200, {"Content-Type": "text/xml"}, reply

    stub.route("POST", "/", handler=soap_service)
    proxy = mitmdump(
        f"""
debug: true
nodes:
  - name: JSON_XML
    type: json_to_xml
    attributes_block_name: "#attr"
    input: request.body
  - name: CALL
    type: call
    url: {stub.url}
    method: POST
    inputs:
      body: JSON_XML
  - name: XML_JSON
    type: xml_to_json
    input: CALL.body
    attributes_block_name: "#attr"
    output: response.body
"""
    )
    response = client.post(proxy.url + "/orders", json={"order": {"#attr": {"channel": "web"}, "id": 17}})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "soap:Envelope": {
            "#attr": {"xmlns:soap": "http://schemas.xmlsoap.org/soap/envelope/"},
            "soap:Body": {"result": {"#attr": {"status": "ok"}, "id": 17, "total": 12.5}},
        }
    }
    (sent,) = stub.requests_to("/")
    assert sent.text == '<order channel="web"><id>17</id></order>'
    assert len(upstream.requests) == 1  # no exit: the service is still called, its body replaced


# =============================================================================================
# EX-13 and RF-31 to RF-33: JWT
# =============================================================================================

HMAC_SECRET = "ex13-hmac-secret-from-the-environment-0123456789"

EX13 = """
resources:
  vault:
    jwt_hmac_key: "{vault://env/JWT_HMAC_SECRET}"
nodes:
  - name: GET_CONSUMER
    type: property
    property: kong.client.consumer
  - name: BUILD_CLAIMS
    type: jq
    input: GET_CONSUMER
    jq: |
      {
        "sub": .id
      }
  - name: SIGN_JWT
    type: jwt_sign
    algorithm: HS256
    expires_in: 300
    static_claims:
      iss: "kong"
    inputs:
      claims: BUILD_CLAIMS
      key: vault.jwt_hmac_key
  - name: BUILD_HEADER
    type: jq
    input: SIGN_JWT.token
    jq: |
      {
        "X-Consumer-JWT": .
      }
    output: service_request.headers
"""

# Kong's example assumes an authentication plugin ran first; on mitmproxy that is an addon in front of
# Datakit that sets the consumer in flow.metadata (proxy/gateway.py).
AUTHENTICATED_SCRIPT = """
from mitm_datakit.proxy.addon import Datakit


class Authenticated:
    def request(self, flow):
        flow.metadata["kong.client.consumer"] = {"id": "consumer-1", "username": "alice"}


addons = [Authenticated(), Datakit()]
"""


def test_ex13_sign_consumer_jwt(mitmdump, upstream, client, tmp_path):
    script = tmp_path / "authenticated_datakit.py"
    script.write_text(AUTHENTICATED_SCRIPT)
    proxy = mitmdump(EX13, script=script, env={"JWT_HMAC_SECRET": HMAC_SECRET})
    before = int(time.time())
    assert client.get(proxy.url + "/resource").status_code == 200
    (request,) = upstream.requests
    token = request.header("X-Consumer-JWT")
    assert token is not None
    claims = pyjwt.decode(token, HMAC_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "consumer-1" and claims["iss"] == "kong"
    assert before <= claims["iat"] <= int(time.time())
    assert (claims["nbf"], claims["exp"]) == (claims["iat"], claims["iat"] + 300)
    assert pyjwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}


def test_rf31_decode_token_from_the_authorization_header(mitmdump, client):
    token = pyjwt.encode(
        {"sub": "alice", "scope": ["read"]}, HMAC_SECRET, algorithm="HS256", headers={"kid": "k"}
    )
    proxy = mitmdump(
        """
nodes:
  - name: decode-token
    type: jwt_decode
    input: request.headers.authorization
  - name: EXIT
    type: exit
    inputs:
      body: decode-token
"""
    )
    response = client.get(proxy.url + "/", headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {
        "header": {"alg": "HS256", "typ": "JWT", "kid": "k"},
        "payload": {"sub": "alice", "scope": ["read"]},
        "signature": token.rsplit(".", 1)[1],
    }


def test_rf32_sign_jwt_with_kebab_case_names(mitmdump, client):
    proxy = mitmdump(
        """
resources:
  vault:
    jwt_hmac_key: "{vault://env/JWT_HMAC_SECRET}"
nodes:
  - name: build-claims
    type: jq
    input: request.query
    jq: '{sub: .user}'
  - name: sign-jwt
    type: jwt_sign
    algorithm: HS256
    expires_in: 300
    static_claims:
      iss: "kong"
    inputs:
      claims: build-claims
      key: vault.jwt_hmac_key
  - name: EXIT
    type: exit
    inputs:
      body: sign-jwt.token
""",
        env={"JWT_HMAC_SECRET": HMAC_SECRET},
    )
    token = client.get(proxy.url + "/?user=bob").text
    claims = pyjwt.decode(token, HMAC_SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["iss"], claims["exp"] - claims["iat"]) == ("bob", "kong", 300)


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwks() -> str:
    keys = []
    for key, family, kid in ((RSA_KEY, "RS256", "rsa-1"), (EC_KEY, "ES256", "ec-1")):
        jwk = json.loads(get_default_algorithms()[family].to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid})
    return json.dumps({"keys": keys})


RF33 = """
debug: true
resources:
  vault:
    jwks: "{vault://env/JWKS}"
nodes:
  - name: extract-auth
    type: jq
    input: request.headers
    jq: '.Authorization // .authorization'
  - name: verify-jwt
    type: jwt_verify
    issuers: ["expected-issuer"]
    required_claims: ["sub", "exp"]
    inputs:
      token: extract-auth
      key: vault.jwks
  - name: EXIT
    type: exit
    inputs:
      body: verify-jwt.claims
"""


def rf33_token(key: Any = RSA_KEY, algorithm: str = "RS256", kid: str = "rsa-1", **claims: Any) -> str:
    payload = {"sub": "alice", "iss": "expected-issuer", "exp": int(time.time()) + 60, **claims}
    return pyjwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})


RF33_CASES = [  # (case, token fields, expected error; None: verified)
    ("rsa", {}, None),
    ("ec", {"key": EC_KEY, "algorithm": "ES256", "kid": "ec-1"}, None),
    ("wrong-issuer", {"iss": "someone-else"}, "jwt_verify: issuer (iss) not allowed"),
    ("expired", {"exp": -60}, "jwt_verify: token expired (exp)"),
    ("unknown-kid", {"kid": "gone"}, "jwt_verify: no key matches the token's kid"),
    ("no-sub", {"sub": None}, "jwt_verify: missing required claim: sub"),
]


def test_rf33_verify_jwt_with_a_jwks_from_the_vault(mitmdump, client):
    proxy = mitmdump(RF33, env={"JWKS": jwks()})  # one proxy for every case: starting one takes seconds
    for case, token_spec, error in RF33_CASES:
        if "exp" in token_spec:
            token_spec = {**token_spec, "exp": int(time.time()) + token_spec["exp"]}
        token = rf33_token(**token_spec)
        response = client.get(proxy.url + "/", headers={"Authorization": f"Bearer {token}"})
        if error is None:
            assert (response.status_code, response.json()["sub"]) == (200, "alice"), case
        else:
            assert response.status_code == 500, case
            assert (response.json()["node"]["name"], response.json()["error"]) == ("verify-jwt", error), case
            assert token not in response.text, case


def test_rf33_hmac_token_signed_with_a_public_key_is_refused(mitmdump, client):
    """CVE-2026-14916 through the proxy: an HS256 token whose secret is the public key's PEM."""
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged_header = pyjwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}').decode()
    payload = pyjwt.utils.base64url_encode(
        json.dumps({"sub": "mallory", "iss": "expected-issuer", "exp": int(time.time()) + 60}).encode()
    ).decode()
    signature = get_default_algorithms()["HS256"].sign(f"{forged_header}.{payload}".encode(), public_pem)
    token = f"{forged_header}.{payload}.{pyjwt.utils.base64url_encode(signature).decode()}"
    proxy = mitmdump(
        RF33.replace("{vault://env/JWKS}", "{vault://env/PUBLIC_PEM}"),
        env={"PUBLIC_PEM": public_pem.decode()},
    )
    response = client.get(proxy.url + "/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500
    assert response.json()["error"] == "jwt_verify: token algorithm HS256 does not fit an RSA public key"


# =============================================================================================
# RF-30 (vault secrets) and RF-34 (json_to_xml of a call)
# =============================================================================================

RF30 = """
debug: true
resources:
  vault:
    secret1: "{vault://env/my-secret1}"
    secret2: "{vault://%s/my-secret2}"
nodes:
  - name: JQ
    type: jq
    inputs:
      secret1: vault.secret1
      secret2: vault.secret2
    jq: "."
  - name: EXIT
    type: exit
    inputs:
      body: JQ
"""


def test_rf30_vault_secrets_reach_jq(mitmdump, client):
    proxy = mitmdump(RF30 % "env", env={"MY_SECRET1": "one", "MY_SECRET2": "two"})
    assert client.get(proxy.url + "/").json() == {"secret1": "one", "secret2": "two"}


def test_rf30_a_vault_this_proxy_lacks_loads_and_fails_the_reading_node(mitmdump, client):
    proxy = mitmdump(RF30 % "aws", env={"MY_SECRET1": "one"})
    response = client.get(proxy.url + "/")
    assert response.status_code == 500
    assert (response.json()["node"]["name"], response.json()["error"]) == (
        "JQ",
        "vault backend 'aws' is not available here (only env)",
    )


def test_rf34_json_to_xml_of_a_call(mitmdump, stub, client):
    stub.route("GET", "/bar", json={"#attr": {"id": "7"}, "name": "bar"})
    proxy = mitmdump(
        f"""
nodes:
  - name: CALL_BAR
    type: call
    url: {stub.url}/bar
  - name: CONVERT_JSON_TO_XML
    type: json_to_xml
    root_element_name: root
    attributes_block_name: "#attr"
    input: CALL_BAR
  - name: EXIT
    type: exit
    inputs:
      body: CONVERT_JSON_TO_XML
"""
    )
    response = client.get(proxy.url + "/")
    assert response.headers["content-type"] == "application/xml"
    root = etree.fromstring(response.content)
    assert root.tag == "root"
    assert root.findtext("status") == "200"
    assert etree.tostring(root.find("body")) == b'<body id="7"><name>bar</name></body>'
    assert root.findtext("headers/Content-Type") == "application/json"
    assert json.loads(root.findtext("raw_body")) == {"#attr": {"id": "7"}, "name": "bar"}


# =============================================================================================
# EX-15: a call over real TLS, trusting a CA given in ca_certificates
# =============================================================================================


class _AuthorApi(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b'{"author": "Yours Truly"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@pytest.fixture
def https_api(tmp_path: Path) -> Iterator[tuple[str, LocalCA]]:
    """An HTTPS API on 127.0.0.1 whose certificate a CA made here signs; yields (url, ca)."""
    ca = LocalCA()
    context = ca.issue("localhost", ip="127.0.0.1").server_context(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthorApi)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/json", ca
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def ex15(url: str, ca_file: Path) -> str:
    return f"""
debug: true
ca_certificates:
  - {ca_file}
nodes:
  - name: AUTHOR
    type: call
    url: {url}
    ssl_verify: true
  - name: EXIT
    type: exit
    inputs:
      body: AUTHOR.body
    status: 200
"""


def test_ex15_call_verified_with_a_custom_ca(mitmdump, client, https_api, tmp_path):
    url, ca = https_api
    proxy = mitmdump(ex15(url, ca.write(tmp_path / "ca.pem")))
    response = client.get(proxy.url + "/")
    assert response.status_code == 200
    assert response.json() == {"author": "Yours Truly"}


def test_ex15_a_certificate_from_another_ca_fails(mitmdump, client, https_api, tmp_path):
    url, _ = https_api
    proxy = mitmdump(ex15(url, LocalCA("another CA").write(tmp_path / "other.pem")))
    response = client.get(proxy.url + "/")
    assert response.status_code == 500
    assert response.json()["node"]["name"] == "AUTHOR"
    assert response.json()["error"].startswith(
        f"TLS error calling 127.0.0.1:{url.split(':')[2].split('/')[0]}: "
    )
    assert "certificate verify failed" in response.json()["error"]


def test_ex15_missing_ca_file_stops_mitmdump(mitmdump_expect_exit, tmp_path):
    rc, output = mitmdump_expect_exit(ex15("https://127.0.0.1:1/json", tmp_path / "missing.pem"))
    assert rc != 0
    assert (
        f"node #1 (AUTHOR), field 'ca_certificates': CA file not found: {tmp_path / 'missing.pem'}" in output
    )
