"""Claim checks of `jwt_verify` (spec §5.12), in this order: required claims, exp, nbf, iss, aud.

`exp` and `nbf` are checked when present (and their validation is on); a token that must carry
them lists them in `required_claims`. `leeway` seconds of clock skew are allowed both ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import JoseError


@dataclass(frozen=True)
class ClaimRules:
    issuers: frozenset[str]
    audiences: frozenset[str]
    required: tuple[str, ...]
    leeway: int
    validate_exp: bool
    validate_nbf: bool


def _time(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JoseError(f"claim {name} must be a number of seconds")
    return float(value)


def _audiences(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else [value]


def check_claims(claims: dict[str, Any], rules: ClaimRules, now: float) -> None:
    for name in rules.required:
        if claims.get(name) is None:
            raise JoseError(f"missing required claim: {name}")
    expires = _time(claims, "exp") if rules.validate_exp else None
    if expires is not None and now > expires + rules.leeway:
        raise JoseError("token expired (exp)")
    not_before = _time(claims, "nbf") if rules.validate_nbf else None
    if not_before is not None and now + rules.leeway < not_before:
        raise JoseError("token not valid yet (nbf)")
    if rules.issuers:
        issuer = claims.get("iss")
        if issuer is None:
            raise JoseError("missing issuer (iss)")
        if not isinstance(issuer, str) or issuer not in rules.issuers:
            raise JoseError("issuer (iss) not allowed")
    if rules.audiences:
        if claims.get("aud") is None:
            raise JoseError("missing audience (aud)")
        if not any(isinstance(a, str) and a in rules.audiences for a in _audiences(claims["aud"])):
            raise JoseError("audience (aud) not allowed")
