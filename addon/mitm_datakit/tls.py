"""The plugin's trust store: top-level `ca_certificates` (Kong 3.16), here PEM files or bundles.

Kong lists CA Certificate entity ids; a proxy without Kong's database takes paths of PEM files
instead (absolute, or relative to mitmdump's working directory), each holding one or more CA
certificates. When given, they *replace* the system trust store, as in Kong, for every TLS
connection the plugin verifies: `call` nodes and a Redis cache with `ssl_verify`. The context is
built once per plan, so a request pays nothing for it.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .resources import PlanResources


@dataclass(frozen=True)
class TrustStore:
    """A verifying SSL context for the configured CAs; None means the system's default trust store.
    `error` says why the files could not be used (a config error for the nodes that need them)."""

    context: ssl.SSLContext | None = None
    error: str | None = None


def load_trust_store(paths: Sequence[str]) -> ssl.SSLContext:
    """A client context that trusts exactly the CA certificates in `paths`; ValueError names the bad file."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies and checks host names by default
    for path in paths:
        try:
            context.load_verify_locations(cafile=path)
        except FileNotFoundError:
            raise ValueError(f"CA file not found: {path}") from None
        except (OSError, ssl.SSLError) as e:
            reason = getattr(e, "strerror", None) or getattr(e, "reason", None) or str(e)
            raise ValueError(f"cannot load CA certificates from {path}: {reason}") from None
    return context


def trust_store(config: Mapping[str, Any], resources: PlanResources) -> TrustStore:
    """The plan's trust store, loaded on first use and shared by all its nodes."""

    def build() -> TrustStore:
        paths = config.get("ca_certificates")
        if not paths or not isinstance(paths, list):
            return TrustStore()
        try:
            return TrustStore(context=load_trust_store([str(p) for p in paths]))
        except ValueError as e:
            return TrustStore(error=str(e))

    return resources.get_or_create("tls:trust_store", build)
