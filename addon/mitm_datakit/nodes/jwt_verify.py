"""`jwt_verify`: check a JWT's signature and claims; output its claims and header (spec §5.12, Kong 3.14+).

The token's algorithm must fit the key's type (no HMAC check with a public key, CVE-2026-14916)
and, when `allowed_algorithms` is set, be listed; `none` is never accepted. Any failure fails
the node, with a message that names neither the token nor the key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..config.schema import Field
from ..errors import NodeError
from ..jose import ALGORITHMS, JoseError
from ..jose.claims import ClaimRules, check_claims
from ..jose.keys import KeyCache
from ..jose.tokens import token_text, verify
from ..types import DkType, Value
from .base import NodeSpec, NodeType, SyncRun

if TYPE_CHECKING:
    from ..context import RunContext


class JwtVerify(NodeType):
    type_name = "jwt_verify"
    fields = {
        "allowed_algorithms": Field(
            "string_list",
            default=[],
            choices=ALGORITHMS,
            description="Accepted algorithms; empty: any supported.",
        ),
        "issuers": Field("string_list", default=[], description="Accepted iss values; empty: any."),
        "audiences": Field("string_list", default=[], description="Accepted aud values; empty: any."),
        "required_claims": Field("string_list", default=[], description="Claims that must be present."),
        "leeway": Field("integer", default=0, minimum=0, description="Seconds of clock skew allowed."),
        "validate_exp": Field("boolean", default=True, description="Reject an expired token."),
        "validate_nbf": Field("boolean", default=True, description="Reject a token before its nbf."),
    }
    # `key` is any: a JWKS, JWK, PEM or HMAC secret string, or a JWKS/JWK object (a JWKS endpoint's body).
    input_fields = {"token": DkType.STRING, "key": DkType.ANY}
    self_input = DkType.OBJECT
    output_fields = {"claims": DkType.MAP, "header": DkType.MAP}
    self_output = DkType.OBJECT

    def check_wiring(
        self, settings: Mapping[str, Any], connected: frozenset[str], report: Callable[[str, str], None]
    ) -> None:
        for name in ("token", "key"):
            if name not in connected:
                report(f"inputs.{name}", f"required input not connected (the {name})")

    def build(self, spec: NodeSpec) -> SyncRun:
        settings = spec.settings
        allowed = frozenset(settings["allowed_algorithms"] or ())
        rules = ClaimRules(
            issuers=frozenset(settings["issuers"] or ()),
            audiences=frozenset(settings["audiences"] or ()),
            required=tuple(settings["required_claims"] or ()),
            leeway=settings["leeway"],
            validate_exp=settings["validate_exp"],
            validate_nbf=settings["validate_nbf"],
        )
        keys = spec.resources.get_or_create("jwt:keys", KeyCache)

        def run(inputs: dict[str, Value], ctx: RunContext) -> Value:
            try:
                token = token_text(inputs.get("token"))
                header, claims = verify(token, keys.get(inputs.get("key")), allowed)
                check_claims(claims, rules, time.time())
            except JoseError as e:
                raise NodeError(f"jwt_verify: {e}") from None
            return {"claims": claims, "header": header}

        return run
