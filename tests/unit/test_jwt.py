"""`jwt_decode`, `jwt_sign` and `jwt_verify` (spec §5.10-§5.12) with real keys of every supported type.

Tokens are cross-checked with PyJWT directly, so a signature this engine makes is one another library
accepts, and the other way round. No error message may contain a key or a token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import get_default_algorithms
from mitm_datakit.errors import ConfigError
from mitm_datakit.plan import build_plan
from mitm_datakit.runtime import Run

from .conftest import value_of
from .pki import LocalCA
from .support import run_config

BOUND = 5.0
SECRET = "a-shared-hmac-secret-that-is-long-enough-for-hs512-0123456789abcdef"


@dataclass(frozen=True)
class KeyPair:
    private: Any
    public: Any

    @property
    def private_pem(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    @property
    def public_pem(self) -> str:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def jwk(self, *, private: bool = False, **members: Any) -> dict[str, Any]:
        """The key as a JWK (PyJWT's own export), plus `members` such as kid, alg or use."""
        if isinstance(self.public, rsa.RSAPublicKey):
            family = "RS256"
        elif isinstance(self.public, ec.EllipticCurvePublicKey):
            family = "ES256"
        else:
            family = "EdDSA"
        document = json.loads(
            get_default_algorithms()[family].to_jwk(self.private if private else self.public)
        )
        return {**document, **members}


def _pair(private: Any) -> KeyPair:
    return KeyPair(private, private.public_key())


KEYS = {
    "RSA": _pair(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    "P-256": _pair(ec.generate_private_key(ec.SECP256R1())),
    "P-384": _pair(ec.generate_private_key(ec.SECP384R1())),
    "P-521": _pair(ec.generate_private_key(ec.SECP521R1())),
    "Ed25519": _pair(ed25519.Ed25519PrivateKey.generate()),
    "Ed448": _pair(ed448.Ed448PrivateKey.generate()),
}
KEY_FOR = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "P-256",
    "ES384": "P-384",
    "ES512": "P-521",
    "EdDSA": "Ed25519",
}
ASYMMETRIC = sorted(KEY_FOR)
HMAC = ["HS256", "HS384", "HS512"]


def secret_jwk(secret: str = SECRET, **members: Any) -> dict[str, Any]:
    encoded = base64.urlsafe_b64encode(secret.encode()).rstrip(b"=").decode()
    return {"kty": "oct", "k": encoded, **members}


def make_token(claims: dict[str, Any], key: Any, algorithm: str, **headers: Any) -> str:
    return pyjwt.encode(claims, key, algorithm=algorithm, headers=headers or None)


def now() -> int:
    return int(time.time())


def valid_claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "iss": "expected-issuer", "aud": "api", "iat": now(), "exp": now() + 300, **extra}


async def run_nodes(*nodes: dict[str, Any], headers: dict[str, str] | None = None, **top: Any) -> Run:
    request = {"headers": headers} if headers is not None else None
    return await asyncio.wait_for(run_config({"nodes": list(nodes), **top}, request=request), BOUND)


def inputs_node(**values: Any) -> dict[str, Any]:
    return {"name": "IN", "type": "static", "values": values}


def verify_node(**fields: Any) -> dict[str, Any]:
    return {"name": "V", "type": "jwt_verify", "inputs": {"token": "IN.token", "key": "IN.key"}, **fields}


def sign_node(algorithm: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "S",
        "type": "jwt_sign",
        "algorithm": algorithm,
        "inputs": {"claims": "IN.claims", "key": "IN.key"},
        **fields,
    }


async def verify(token: Any, key: Any, **fields: Any) -> Run:
    return await run_nodes(inputs_node(token=token, key=key), verify_node(**fields))


def failure_of(run: Run) -> str:
    assert run.failure is not None, "the node was expected to fail"
    return run.failure.message


# =============================================================================================
# jwt_decode
# =============================================================================================


@pytest.mark.parametrize("prefix", ["", "Bearer ", "bearer ", "BEARER   "])
async def test_decode_rf31_reads_the_authorization_header(prefix: str) -> None:
    token = make_token({"sub": "alice", "n": 1}, SECRET, "HS256", kid="k1")
    run = await run_nodes(
        {"name": "decode-token", "type": "jwt_decode", "input": "request.headers.authorization"},
        headers={"Authorization": prefix + token},
    )
    assert run.failure is None
    assert value_of(run, "decode-token") == {
        "header": {"alg": "HS256", "typ": "JWT", "kid": "k1"},
        "payload": {"sub": "alice", "n": 1},
        "signature": token.rsplit(".", 1)[1],
    }


async def test_decode_does_not_check_signature_or_claims() -> None:
    token = make_token({"exp": 1}, "another-secret-entirely-and-long-enough-0123456789", "HS256")
    unsigned = token.rsplit(".", 1)[0] + "."
    for candidate in (token, unsigned):
        run = await run_nodes(inputs_node(t=candidate), {"name": "D", "type": "jwt_decode", "input": "IN.t"})
        assert value_of(run, "D")["payload"] == {"exp": 1}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


HS256_HEADER = _b64(b'{"alg":"HS256"}')


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("not-a-token", "jwt_decode: malformed token: Not enough segments"),
        ("a.b.c", "jwt_decode: malformed token: "),
        (
            f"{HS256_HEADER}.{_b64(b'[1,2]')}.sig",
            "jwt_decode: malformed token: the payload is not a JSON object",
        ),
        (f"{HS256_HEADER}.{_b64(b'nope')}.sig", "jwt_decode: malformed token: the payload is not JSON"),
        ("", "jwt_decode: no token (the token input is empty)"),
        (None, "jwt_decode: no token (the token input is null)"),
    ],
    ids=["one-part", "garbage", "payload-array", "payload-not-json", "empty", "null"],
)
async def test_decode_failures(token: Any, message: str) -> None:
    run = await run_nodes(inputs_node(t=token), {"name": "D", "type": "jwt_decode", "input": "IN.t"})
    assert failure_of(run).startswith(message)
    assert value_of(run, "D") is None  # no partial output


# =============================================================================================
# jwt_sign
# =============================================================================================


def signing_keys(algorithm: str) -> list[tuple[str, Any, Any]]:
    """(label, key given to the node, key PyJWT verifies with) for each form a key may take."""
    if algorithm in HMAC:
        return [("secret", SECRET, SECRET), ("jwk", json.dumps(secret_jwk()), SECRET)]
    pair = KEYS[KEY_FOR[algorithm]]
    return [
        ("pem", pair.private_pem, pair.public),
        ("jwk", json.dumps(pair.jwk(private=True)), pair.public),
        ("jwk-object", pair.jwk(private=True), pair.public),
    ]


@pytest.mark.parametrize("algorithm", HMAC + ASYMMETRIC)
async def test_sign_every_algorithm_with_every_key_form(algorithm: str) -> None:
    for label, key, check_key in signing_keys(algorithm):
        run = await run_nodes(inputs_node(claims={"sub": "alice"}, key=key), sign_node(algorithm))
        assert run.failure is None, (label, run.failure)
        token = value_of(run, "S")["token"]
        assert pyjwt.get_unverified_header(token)["alg"] == algorithm
        claims = pyjwt.decode(token, check_key, algorithms=[algorithm])
        assert claims["sub"] == "alice", label


async def test_sign_ex13_claims_and_header() -> None:
    before = now()
    run = await run_nodes(
        inputs_node(claims={"sub": "consumer-1", "iss": "override"}, key=SECRET),
        sign_node(
            "HS256",
            expires_in=300,
            not_before=5,
            static_claims={"iss": "kong", "team": "a"},
            kid="key-1",
            typ="at+jwt",
        ),
    )
    output = value_of(run, "S")
    claims = output["claims"]
    assert before <= claims["iat"] <= now()
    assert claims == {
        "iss": "override",
        "team": "a",
        "sub": "consumer-1",
        "iat": claims["iat"],
        "nbf": claims["iat"] + 5,
        "exp": claims["iat"] + 300,
    }
    assert output["header"] == {"alg": "HS256", "typ": "at+jwt", "kid": "key-1"}
    assert pyjwt.get_unverified_header(output["token"]) == output["header"]
    assert (
        pyjwt.decode(output["token"], SECRET, algorithms=["HS256"], options={"verify_nbf": False}) == claims
    )


async def test_sign_keeps_time_claims_given_as_claims() -> None:
    run = await run_nodes(inputs_node(claims={"exp": 4102444800, "iat": 1}, key=SECRET), sign_node("HS256"))
    claims = value_of(run, "S")["claims"]
    assert (claims["exp"], claims["iat"]) == (4102444800, 1)


async def test_sign_header_kid_comes_from_a_jwk() -> None:
    run = await run_nodes(
        inputs_node(key=secret_jwk(kid="jwk-kid")), sign_node("HS256", inputs={"key": "IN.key"})
    )
    assert value_of(run, "S")["header"]["kid"] == "jwk-kid"


async def test_sign_picks_the_jwks_member_by_kid() -> None:
    jwks = {"keys": [KEYS["P-256"].jwk(private=True, kid="ec"), KEYS["RSA"].jwk(private=True, kid="rsa")]}
    run = await run_nodes(inputs_node(key=jwks), sign_node("RS256", kid="rsa", inputs={"key": "IN.key"}))
    token = value_of(run, "S")["token"]
    assert pyjwt.decode(token, KEYS["RSA"].public, algorithms=["RS256"])


async def test_sign_without_claims_input_still_has_time_claims() -> None:
    run = await run_nodes(inputs_node(key=SECRET), sign_node("HS384", inputs={"key": "IN.key"}))
    assert set(value_of(run, "S")["claims"]) == {"iat", "nbf", "exp"}


async def test_short_hmac_secrets_work_as_on_kong() -> None:
    """PyJWT warns about secrets shorter than the hash; Kong accepts them, and so do the nodes."""
    signed = await run_nodes(inputs_node(claims={"sub": "s"}, key="short"), sign_node("HS256"))
    token = value_of(signed, "S")["token"]
    verified = await verify(token, "short")
    assert value_of(verified, "V")["claims"]["sub"] == "s"
    assert failure_of(await verify(token, "shorT")) == "jwt_verify: signature verification failed"


@pytest.mark.parametrize(
    ("algorithm", "key", "message"),
    [
        ("RS256", SECRET, "jwt_sign: algorithm RS256 cannot be used with an HMAC secret"),
        (
            "HS256",
            KEYS["RSA"].private_pem,
            "jwt_sign: algorithm HS256 cannot be used with an RSA private key",
        ),
        (
            "ES256",
            KEYS["P-384"].private_pem,
            "jwt_sign: algorithm ES256 cannot be used with an EC secp384r1 private key",
        ),
        (
            "RS256",
            KEYS["RSA"].public_pem,
            "jwt_sign: signing needs a private key; the key is an RSA public key",
        ),
        (
            "EdDSA",
            KEYS["Ed448"].public_pem,
            "jwt_sign: signing needs a private key; the key is an Ed448 public key",
        ),
        (
            "RS256",
            "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----",
            "jwt_sign: the key is not a valid PEM key or certificate",
        ),
        ("HS256", '{"kty": "oct"}', "jwt_sign: the JWK is not a usable key (kty 'oct')"),
        ("HS256", '{"kid": "x"}', "jwt_sign: the JSON key is neither a JWK (no kty) nor a JWKS (no keys)"),
        ("HS256", None, "jwt_sign: no key (the key input is null or empty)"),
    ],
    ids=[
        "hmac-for-rsa",
        "rsa-for-hmac",
        "curve-mismatch",
        "public-rsa",
        "public-ed448",
        "bad-pem",
        "bad-jwk",
        "not-a-jwk",
        "no-key",
    ],
)
async def test_sign_failures_never_show_the_key(algorithm: str, key: Any, message: str) -> None:
    run = await run_nodes(inputs_node(claims={}, key=key), sign_node(algorithm))
    assert failure_of(run) == message
    if isinstance(key, str):
        assert key not in failure_of(run)


# =============================================================================================
# jwt_verify
# =============================================================================================


def verification_keys(algorithm: str) -> list[tuple[str, Any, Any]]:
    """(label, key PyJWT signs with, key given to jwt_verify)."""
    if algorithm in HMAC:
        return [
            ("secret", SECRET, SECRET),
            ("jwk", SECRET, json.dumps(secret_jwk())),
            ("jwks", SECRET, {"keys": [secret_jwk()]}),
        ]
    pair = KEYS[KEY_FOR[algorithm]]
    forms = [
        ("public-pem", pair.private, pair.public_pem),
        ("private-pem", pair.private, pair.private_pem),
        ("jwk", pair.private, json.dumps(pair.jwk())),
        ("jwks-text", pair.private, json.dumps({"keys": [pair.jwk()]})),
        ("jwks-object", pair.private, {"keys": [pair.jwk()]}),
    ]
    if algorithm == "ES256":
        ca = LocalCA()
        forms.append(("certificate", ca._key, ca.cert_pem.decode()))
    return forms


@pytest.mark.parametrize("algorithm", HMAC + ASYMMETRIC)
async def test_verify_every_algorithm_with_every_key_form(algorithm: str) -> None:
    claims = valid_claims()
    for label, signing_key, key in verification_keys(algorithm):
        token = make_token(claims, signing_key, algorithm)
        run = await verify(token, key)
        assert run.failure is None, (label, run.failure)
        assert value_of(run, "V") == {"claims": claims, "header": {"alg": algorithm, "typ": "JWT"}}


async def test_verify_ed448() -> None:
    token = make_token(valid_claims(), KEYS["Ed448"].private, "EdDSA")
    assert (await verify(token, KEYS["Ed448"].public_pem)).failure is None


@pytest.mark.parametrize(
    ("key", "described"),
    [
        (KEYS["RSA"].public_pem, "an RSA public key"),
        ({"keys": [KEYS["RSA"].jwk()]}, "an RSA public key"),
        (KEYS["P-256"].public_pem, "an EC secp256r1 public key"),
        (KEYS["Ed25519"].public_pem, "an Ed25519 public key"),
    ],
    ids=["rsa-pem", "rsa-jwks", "ec-pem", "ed25519-pem"],
)
async def test_cve_2026_14916_hmac_token_signed_with_the_public_key_is_refused(
    key: Any, described: str
) -> None:
    """The attacker signs HS256 with the public key's text as the secret: it must never verify."""
    public_text = key if isinstance(key, str) else KEYS["RSA"].public_pem
    header_payload = f"{HS256_HEADER}.{_b64(json.dumps(valid_claims()).encode())}"
    signature = get_default_algorithms()["HS256"].sign(header_payload.encode(), public_text.encode())
    token = f"{header_payload}.{_b64(signature)}"
    for allowed in ([], ["HS256", "RS256", "ES256", "EdDSA"]):
        message = failure_of(await verify(token, key, allowed_algorithms=allowed))
        assert message == f"jwt_verify: token algorithm HS256 does not fit {described}"


@pytest.mark.parametrize(
    ("token_alg", "key", "fields", "message"),
    [
        ("none", SECRET, {}, "jwt_verify: token algorithm none is not supported"),
        (
            "HS256",
            SECRET,
            {"allowed_algorithms": ["RS256"]},
            "jwt_verify: token algorithm HS256 is not allowed",
        ),
        (
            "RS256",
            KEYS["P-256"].public_pem,
            {},
            "jwt_verify: token algorithm RS256 does not fit an EC secp256r1 public key",
        ),
        (
            "PS256",
            json.dumps(KEYS["RSA"].jwk(alg="RS256")),
            {},
            "jwt_verify: token algorithm PS256 does not fit an RSA public key",
        ),
        (
            "ES384",
            KEYS["P-256"].public_pem,
            {},
            "jwt_verify: token algorithm ES384 does not fit an EC secp256r1 public key",
        ),
    ],
    ids=["alg-none", "not-allowed", "rsa-token-ec-key", "jwk-alg-binds", "curve-mismatch"],
)
async def test_verify_binds_the_algorithm(
    token_alg: str, key: Any, fields: dict[str, Any], message: str
) -> None:
    signers: dict[str, Any] = {
        "none": None,
        "HS256": SECRET,
        "RS256": KEYS["RSA"].private,
        "PS256": KEYS["RSA"].private,
        "ES384": KEYS["P-384"].private,
    }
    token = make_token(valid_claims(), signers[token_alg], token_alg)
    assert failure_of(await verify(token, key, **fields)) == message


async def test_verify_tampered_payload_fails() -> None:
    token = make_token(valid_claims(), KEYS["RSA"].private, "RS256")
    header, _, signature = token.split(".")
    tampered = f"{header}.{_b64(json.dumps(valid_claims(sub='mallory')).encode())}.{signature}"
    assert (
        failure_of(await verify(tampered, KEYS["RSA"].public_pem))
        == "jwt_verify: signature verification failed"
    )


async def test_verify_wrong_hmac_secret_fails() -> None:
    token = make_token(valid_claims(), SECRET, "HS256")
    assert failure_of(await verify(token, SECRET + "x")) == "jwt_verify: signature verification failed"


@pytest.mark.parametrize(
    ("kid", "expected"),
    [("second", None), ("unknown", "jwt_verify: no key matches the token's kid"), (None, None)],
)
async def test_verify_picks_the_jwks_key_by_kid(kid: str | None, expected: str | None) -> None:
    jwks = {"keys": [KEYS["P-256"].jwk(kid="first"), KEYS["RSA"].jwk(kid="second")]}
    headers = {"kid": kid} if kid else {}
    token = make_token(valid_claims(), KEYS["RSA"].private, "RS256", **headers)
    run = await verify(token, jwks)
    if expected is None:
        assert run.failure is None
        assert value_of(run, "V")["claims"]["sub"] == "alice"
    else:
        assert failure_of(run) == expected


async def test_verify_a_lone_key_ignores_the_token_kid() -> None:
    token = make_token(valid_claims(), KEYS["RSA"].private, "RS256", kid="whatever")
    assert (await verify(token, KEYS["RSA"].public_pem)).failure is None


async def test_verify_skips_encryption_keys_of_a_jwks() -> None:
    jwks = {"keys": [KEYS["RSA"].jwk(kid="enc", use="enc"), KEYS["RSA"].jwk(kid="sig", use="sig")]}
    token = make_token(valid_claims(), KEYS["RSA"].private, "RS256", kid="sig")
    assert (await verify(token, jwks)).failure is None


@dataclass(frozen=True)
class FromNow:
    """A time claim relative to the test's run (parameters are made at collection, maybe minutes before)."""

    seconds: int


@pytest.mark.parametrize(
    ("claims", "fields", "message"),
    [
        ({"exp": FromNow(-10)}, {}, "jwt_verify: token expired (exp)"),
        ({"exp": FromNow(-10)}, {"leeway": 60}, None),
        ({"exp": FromNow(-10)}, {"validate_exp": False}, None),
        ({"nbf": FromNow(100)}, {}, "jwt_verify: token not valid yet (nbf)"),
        ({"nbf": FromNow(100)}, {"leeway": 200}, None),
        ({"nbf": FromNow(100)}, {"validate_nbf": False}, None),
        ({"exp": "tomorrow"}, {}, "jwt_verify: claim exp must be a number of seconds"),
        ({}, {"issuers": ["expected-issuer", "other"]}, None),
        ({}, {"issuers": ["someone-else"]}, "jwt_verify: issuer (iss) not allowed"),
        ({"iss": None}, {"issuers": ["expected-issuer"]}, "jwt_verify: missing issuer (iss)"),
        ({}, {"audiences": ["api"]}, None),
        ({"aud": ["web", "api"]}, {"audiences": ["api"]}, None),
        ({"aud": ["web"]}, {"audiences": ["api"]}, "jwt_verify: audience (aud) not allowed"),
        ({"aud": None}, {"audiences": ["api"]}, "jwt_verify: missing audience (aud)"),
        ({}, {"required_claims": ["sub", "exp"]}, None),
        ({"sub": None}, {"required_claims": ["sub", "exp"]}, "jwt_verify: missing required claim: sub"),
        ({"exp": None}, {}, None),
        ({"exp": None}, {"required_claims": ["exp"]}, "jwt_verify: missing required claim: exp"),
    ],
)
async def test_verify_claims(claims: dict[str, Any], fields: dict[str, Any], message: str | None) -> None:
    resolved = {k: now() + v.seconds if isinstance(v, FromNow) else v for k, v in claims.items()}
    merged = {k: v for k, v in valid_claims(**resolved).items() if v is not None}
    token = make_token(merged, SECRET, "HS256")
    run = await verify(token, SECRET, **fields)
    if message is None:
        assert run.failure is None
        assert value_of(run, "V")["claims"] == merged
    else:
        assert failure_of(run) == message


async def test_verify_rf33_kebab_names_bearer_token_and_vault_jwks(monkeypatch: pytest.MonkeyPatch) -> None:
    jwks = {"keys": [KEYS["Ed25519"].jwk(kid="ed")]}
    monkeypatch.setenv("JWKS", json.dumps(jwks))
    token = make_token(valid_claims(), KEYS["Ed25519"].private, "EdDSA", kid="ed")
    run = await run_nodes(
        {"name": "extract-auth", "type": "jq", "input": "request.headers", "jq": ".Authorization"},
        {
            "name": "verify-jwt",
            "type": "jwt_verify",
            "issuers": ["expected-issuer"],
            "required_claims": ["sub", "exp"],
            "inputs": {"token": "extract-auth", "key": "vault.jwks"},
        },
        headers={"Authorization": f"Bearer {token}"},
        resources={"vault": {"jwks": "{vault://env/jwks}"}},
    )
    assert run.failure is None
    assert value_of(run, "verify-jwt")["header"] == {"alg": "EdDSA", "typ": "JWT", "kid": "ed"}


@pytest.mark.parametrize("key", [SECRET, KEYS["RSA"].public_pem, json.dumps({"keys": [KEYS["RSA"].jwk()]})])
async def test_verify_failures_name_neither_token_nor_key(key: str) -> None:
    token = make_token(valid_claims(exp=now() - 100), KEYS["RSA"].private, "RS256")
    message = failure_of(await verify(token, key))
    for part in (token, *token.split("."), key):
        assert part not in message


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (
            {"name": "V", "type": "jwt_verify", "inputs": {"token": "request.body"}},
            "field 'inputs.key': required input not connected",
        ),
        (
            {"name": "V", "type": "jwt_verify", "inputs": {"key": "request.body"}},
            "field 'inputs.token': required input not connected",
        ),
        (
            {
                "name": "V",
                "type": "jwt_verify",
                "allowed_algorithms": ["none"],
                "inputs": {"token": "request.body", "key": "request.body"},
            },
            "field 'allowed_algorithms': expected one of: ES256",
        ),
        (
            {"name": "S", "type": "jwt_sign", "inputs": {"key": "request.body"}},
            "field 'algorithm': required field missing",
        ),
        (
            {"name": "S", "type": "jwt_sign", "algorithm": "HS1", "inputs": {"key": "request.body"}},
            "field 'algorithm': expected one of",
        ),
        (
            {
                "name": "S",
                "type": "jwt_sign",
                "algorithm": "HS256",
                "expires_in": 0,
                "inputs": {"key": "request.body"},
            },
            "field 'expires_in': value must be at least 1",
        ),
        (
            {
                "name": "S",
                "type": "jwt_sign",
                "algorithm": "HS256",
                "static_claims": {"n": 1},
                "inputs": {"key": "request.body"},
            },
            "field 'static_claims': expected a map of strings to strings",
        ),
        (
            {"name": "S", "type": "jwt_sign", "algorithm": "HS256"},
            "field 'inputs.key': required input not connected",
        ),
        (
            {"name": "D", "type": "jwt_decode", "inputs": {"token": "request.body"}},
            'a jwt_decode node does not accept "inputs"',
        ),
    ],
)
def test_jwt_config_problems(node: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_plan({"nodes": [node]})
    assert expected in str(caught.value)
