"""Backing stores of the `cache` node (spec §2.3, §5.7): an in-process TTL store or a Redis server.

Stores hold JSON text; the node encodes and decodes, so both strategies give back exactly the
same values (a number stays a number, an object an object) and several proxies can share Redis.
"""

from __future__ import annotations

from typing import Protocol


class CacheBackendError(Exception):
    """The store could not answer (Redis down, a timeout, a value too large). Safe to show: never
    carries a password or a cached value."""


class CacheStore(Protocol):
    async def get(self, key: str) -> str | None:
        """The JSON text stored under `key`, or None when absent or expired."""

    async def set(self, key: str, text: str, ttl: float | None) -> None:
        """Store `text` under `key` for `ttl` seconds (None: until evicted)."""
