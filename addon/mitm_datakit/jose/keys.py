"""Key material as Kong's JWT nodes take it (PEM, JWK, JWKS or an HMAC secret), each key bound to the
algorithms its type allows: an HMAC secret only signs HS*, an RSA key RS*/PS*, an EC key the one ES*
of its curve, an Ed25519/Ed448 key EdDSA. A PEM or JSON key is never taken for an HMAC secret, so a
public key cannot verify an HMAC token (CVE-2026-14916).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt import PyJWK
from jwt.exceptions import InvalidKeyError, PyJWKError

from ..types import Value
from . import JoseError

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
OKP_ALGORITHMS = frozenset({"EdDSA"})


@dataclass(frozen=True)
class JwtKey:
    kind: str  # "HMAC secret", "RSA", "EC P-256", ... : how errors describe the key
    algorithms: frozenset[str]
    verify_key: Any  # bytes for HMAC, a cryptography public key otherwise
    sign_key: Any | None  # bytes for HMAC, a cryptography private key, or None for a public key
    kid: str | None = None

    def describe(self) -> str:
        if self.kind == "HMAC secret":
            return "an HMAC secret"
        return f"an {self.kind} {'private' if self.sign_key is not None else 'public'} key"


def _asymmetric(key: Any, kid: str | None = None) -> JwtKey:
    private = (
        key
        if isinstance(
            key,
            (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey),
        )
        else None
    )
    public = key.public_key() if private is not None else key
    if isinstance(public, rsa.RSAPublicKey):
        return JwtKey("RSA", RSA_ALGORITHMS, public, private, kid)
    if isinstance(public, ec.EllipticCurvePublicKey):
        algorithm = EC_ALGORITHMS.get(public.curve.name)
        if algorithm is None:
            raise JoseError(
                f"unsupported elliptic curve {public.curve.name} (ES256, ES384 and ES512 use P-256/384/521)"
            )
        return JwtKey(f"EC {public.curve.name}", frozenset({algorithm}), public, private, kid)
    if isinstance(public, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        name = "Ed25519" if isinstance(public, ed25519.Ed25519PublicKey) else "Ed448"
        return JwtKey(name, OKP_ALGORITHMS, public, private, kid)
    raise JoseError(f"unsupported key type {type(public).__name__.removeprefix('_')}")


def _from_pem(text: str) -> JwtKey:
    data = text.encode("ascii", "replace")
    try:
        if "CERTIFICATE-----" in text:
            return _asymmetric(x509.load_pem_x509_certificate(data).public_key())
        if "PRIVATE KEY-----" in text:
            return _asymmetric(serialization.load_pem_private_key(data, password=None))
        return _asymmetric(serialization.load_pem_public_key(data))
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        raise JoseError("encrypted PEM keys are not supported") from None
    except ValueError:
        raise JoseError("the key is not a valid PEM key or certificate") from None


def _from_jwk(jwk: dict[str, Any]) -> JwtKey:
    if jwk.get("use") not in (None, "sig"):
        raise JoseError(f"the JWK is for use {jwk.get('use')!r}, not for signatures")
    try:
        parsed = PyJWK(jwk)
    except (
        PyJWKError,
        InvalidKeyError,
        KeyError,
        ValueError,
        TypeError,
    ):  # KeyError: a required member is missing
        raise JoseError(f"the JWK is not a usable key (kty {jwk.get('kty')!r})") from None
    kid = jwk.get("kid") if isinstance(jwk.get("kid"), str) else None
    if jwk.get("kty") == "oct":
        key = JwtKey("HMAC secret", HMAC_ALGORITHMS, parsed.key, parsed.key, kid)
    else:
        key = _asymmetric(parsed.key, kid)
    declared = jwk.get("alg")
    if declared is not None:
        # A JWK's `alg` narrows its use to that one algorithm, which must fit the key type.
        if declared not in key.algorithms:
            raise JoseError(f"the JWK declares alg {declared!r}, which does not fit {key.describe()}")
        key = JwtKey(key.kind, frozenset({declared}), key.verify_key, key.sign_key, kid)
    return key


def _from_document(document: dict[str, Any]) -> list[JwtKey]:
    if "keys" in document:
        members = document["keys"]
        if not isinstance(members, list) or not members:
            raise JoseError("the JWKS has no keys")
        keys = []
        for member in members:
            if not isinstance(member, dict):
                raise JoseError("a JWKS member is not an object")
            if member.get("use") not in (None, "sig"):
                continue  # encryption keys in a shared JWKS are not ours to use
            keys.append(_from_jwk(member))
        if not keys:
            raise JoseError("the JWKS has no signing keys")
        return keys
    if "kty" in document:
        return [_from_jwk(document)]
    raise JoseError("the JSON key is neither a JWK (no kty) nor a JWKS (no keys)")


def parse_keys(material: Value) -> list[JwtKey]:
    """Every key in `material`: a PEM text, a JWK or JWKS (text or object), else an HMAC secret."""
    if isinstance(material, dict):
        return _from_document(material)
    if isinstance(material, bytes):
        material = material.decode("utf-8", "replace")
    if not isinstance(material, str) or not material:
        raise JoseError("no key (the key input is null or empty)")
    stripped = material.strip()
    if stripped.startswith("-----BEGIN"):
        return [_from_pem(stripped)]
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except ValueError:
            raise JoseError("the key looks like JSON but is not valid JSON") from None
        if isinstance(document, dict):
            return _from_document(document)
    secret = material.encode("utf-8")
    return [JwtKey("HMAC secret", HMAC_ALGORITHMS, secret, secret)]


class KeyCache:
    """Parsed keys by their material, so a request does not re-parse a PEM (parsing an RSA private
    key checks it, which costs milliseconds). Small and least-recently-used: keys come from config,
    vault or a JWKS endpoint, so only a handful are live at once."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._keys: OrderedDict[str, list[JwtKey]] = OrderedDict()

    def get(self, material: Value) -> list[JwtKey]:
        cache_key = json.dumps(material, sort_keys=True) if isinstance(material, dict) else material
        if not isinstance(cache_key, str):
            return parse_keys(material)
        keys = self._keys.get(cache_key)
        if keys is None:
            keys = parse_keys(material)
            self._keys[cache_key] = keys
            if len(self._keys) > self.size:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(cache_key)
        return keys
