"""Reading, signing and verifying compact JWS tokens with PyJWT's `PyJWS`.

PyJWT warns about HMAC secrets shorter than the hash and RSA keys under 2048 bits. Kong accepts
them, and so do we (a config that runs on Kong must run here), without a warning per request.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jwt.api_jws import PyJWS
from jwt.exceptions import DecodeError, InvalidKeyError, InvalidSignatureError, InvalidTokenError
from jwt.warnings import InsecureKeyLengthWarning

from ..types import Value
from ..values import json_dumps, type_name
from . import ALGORITHMS, JoseError
from .keys import JwtKey

_BEARER = re.compile(r"bearer\s+", re.IGNORECASE)
_JWS = PyJWS()


@contextmanager
def _short_keys_allowed() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        yield


def token_text(value: Value) -> str:
    """The token of an input, without a `Bearer ` prefix (any case) or surrounding spaces."""
    if not isinstance(value, str) or not value.strip():
        raise JoseError(
            f"no token (the token input is {'empty' if isinstance(value, str) else type_name(value)})"
        )
    text = value.strip()
    match = _BEARER.match(text)
    return text[match.end() :] if match else text


def _json_object(data: bytes, part: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise JoseError(f"malformed token: the {part} is not JSON") from None
    if not isinstance(value, dict):
        raise JoseError(f"malformed token: the {part} is not a JSON object")
    return value


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Header, payload and the raw base64url signature, without checking the signature."""
    try:
        parts = _JWS.decode_complete(token, options={"verify_signature": False})
    except (DecodeError, InvalidTokenError) as e:
        raise JoseError(f"malformed token: {e}") from None
    return parts["header"], _json_object(parts["payload"], "payload"), token.rsplit(".", 1)[-1]


def sign(claims: dict[str, Value], header: dict[str, Value], key: JwtKey, algorithm: str) -> str:
    if algorithm not in key.algorithms:
        raise JoseError(f"algorithm {algorithm} cannot be used with {key.describe()}")
    if key.sign_key is None:
        raise JoseError(f"signing needs a private key; the key is {key.describe()}")
    extra = {name: value for name, value in header.items() if name != "alg"}
    try:
        payload = json_dumps(claims).encode("utf-8")
    except (TypeError, ValueError):
        raise JoseError("the claims cannot be written as JSON") from None
    try:
        with _short_keys_allowed():
            return _JWS.encode(payload, key.sign_key, algorithm=algorithm, headers=extra, sort_headers=False)
    except InvalidKeyError:
        raise JoseError(f"the key cannot sign {algorithm}") from None


def verify(token: str, keys: list[JwtKey], allowed: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a token whose signature one of `keys` verifies.

    The token's `alg` must be a supported algorithm (never `none`), be allowed, and fit the key's
    type; with a `kid` only keys of that id are tried.
    """
    header, _, _ = decode(token)
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        shown = algorithm if isinstance(algorithm, str) and len(algorithm) <= 16 else type_name(algorithm)
        raise JoseError(f"token algorithm {shown} is not supported")
    if allowed and algorithm not in allowed:
        raise JoseError(f"token algorithm {algorithm} is not allowed")
    kid = header.get("kid")
    candidates = keys
    if kid is not None:
        candidates = [k for k in keys if k.kid == kid]
        if not candidates and len(keys) == 1 and keys[0].kid is None:
            candidates = keys  # a lone key without an id (a PEM, a secret) is the key, whatever the kid
        elif not candidates:
            raise JoseError("no key matches the token's kid")
    fitting = [k for k in candidates if algorithm in k.algorithms]
    if not fitting:
        described = candidates[0].describe() if len(candidates) == 1 else "any of the keys"
        raise JoseError(f"token algorithm {algorithm} does not fit {described}")
    for key in fitting:
        try:
            with _short_keys_allowed():
                parts = _JWS.decode_complete(token, key.verify_key, algorithms=[algorithm])
        except InvalidSignatureError:
            continue
        except InvalidKeyError:
            raise JoseError(f"the key cannot verify {algorithm}") from None
        except (DecodeError, InvalidTokenError) as e:
            raise JoseError(f"malformed token: {e}") from None
        return parts["header"], _json_object(parts["payload"], "payload")
    raise JoseError("signature verification failed")
