"""`jwt_sign`: sign claims into a JWT (spec §5.11, Kong 3.14+).

Claims are, from weakest to strongest: `static_claims`, then the `claims` input; `iat` is the
current time, and `nbf = iat + not_before` and `exp = iat + expires_in` are added unless the
claims already have them (docs/decisions.md). The header has `alg`, `typ` and `kid` (the `kid`
field, else the kid of a JWK key).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..config.schema import Field
from ..errors import NodeError
from ..jose import ALGORITHMS, JoseError
from ..jose.keys import JwtKey, KeyCache
from ..jose.tokens import sign
from ..types import DkType, Value
from ..values import type_name
from .base import NodeSpec, NodeType, SyncRun

if TYPE_CHECKING:
    from ..context import RunContext


def _signing_key(keys: list[JwtKey], algorithm: str, kid: str | None) -> JwtKey:
    """The key of a single-key material, or the JWKS member for `kid` / the first that fits."""
    if len(keys) == 1:
        return keys[0]
    for key in keys:
        if (kid is None or key.kid == kid) and algorithm in key.algorithms and key.sign_key is not None:
            return key
    raise JoseError(f"no private key in the JWKS fits {algorithm}" + (" and the kid" if kid else ""))


class JwtSign(NodeType):
    type_name = "jwt_sign"
    fields = {
        "algorithm": Field("string", required=True, choices=ALGORITHMS, description="Signing algorithm."),
        "expires_in": Field("integer", default=300, minimum=1, description="Seconds until exp."),
        "not_before": Field("integer", default=0, minimum=0, description="Seconds from iat until nbf."),
        "kid": Field("string", minimum=1, description="Header kid."),
        "typ": Field("string", default="JWT", minimum=1, description="Header typ."),
        "static_claims": Field("string_map", default={}, description="Claims added to every token."),
    }
    # `key` is any: a PEM, JWK or HMAC secret string, or a JWK/JWKS object (a JWKS endpoint's body).
    input_fields = {"claims": DkType.MAP, "key": DkType.ANY}
    self_input = DkType.OBJECT
    output_fields = {"token": DkType.STRING, "claims": DkType.MAP, "header": DkType.MAP}
    self_output = DkType.OBJECT

    def check_wiring(
        self, settings: Mapping[str, Any], connected: frozenset[str], report: Callable[[str, str], None]
    ) -> None:
        if "key" not in connected:
            report("inputs.key", "required input not connected (the signing key)")

    def build(self, spec: NodeSpec) -> SyncRun:
        algorithm: str = spec.settings["algorithm"]
        expires_in: int = spec.settings["expires_in"]
        not_before: int = spec.settings["not_before"]
        kid: str | None = spec.settings["kid"]
        typ: str = spec.settings["typ"]
        static_claims: dict[str, str] = dict(spec.settings["static_claims"] or {})
        keys = spec.resources.get_or_create("jwt:keys", KeyCache)

        def run(inputs: dict[str, Value], ctx: RunContext) -> Value:
            dynamic = inputs.get("claims")
            if dynamic is not None and not isinstance(dynamic, dict):
                raise NodeError(f"jwt_sign: claims must be an object, got {type_name(dynamic)}")
            now = int(time.time())
            claims: dict[str, Value] = {**static_claims, **(dynamic or {})}
            claims.setdefault("iat", now)
            claims.setdefault("nbf", now + not_before)
            claims.setdefault("exp", now + expires_in)
            try:
                key = _signing_key(keys.get(inputs.get("key")), algorithm, kid)
                header: dict[str, Value] = {"alg": algorithm, "typ": typ}
                if kid or key.kid:
                    header["kid"] = kid or key.kid
                token = sign(claims, header, key, algorithm)
            except JoseError as e:
                raise NodeError(f"jwt_sign: {e}") from None
            return {"token": token, "claims": claims, "header": header}

        return run
