"""JSON Web Tokens for the `jwt_decode`, `jwt_sign` and `jwt_verify` nodes (spec §5.10-§5.12).

PyJWT does the JOSE work (framing, signatures, JWK parsing) on `cryptography`; this package binds
every key to the algorithms its type allows (CVE-2026-14916) and checks claims with Kong's options.
Messages never quote a key or a token.
"""

from __future__ import annotations

ALGORITHMS = (
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "HS256",
    "HS384",
    "HS512",
    "PS256",
    "PS384",
    "PS512",
    "RS256",
    "RS384",
    "RS512",
)


class JoseError(Exception):
    """A token or key problem. The message is safe to show: it names no key material and no token."""
