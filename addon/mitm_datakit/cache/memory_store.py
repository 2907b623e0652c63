"""Strategy `memory`: an in-process TTL store shared by the cache nodes of one plan.

Bounded by the total length of keys and JSON texts: when full, the least recently used entries go
first. Expired entries are dropped when read and, through a heap ordered by expiry, as time passes,
so a key that is never read again does not hold memory until the store fills up.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from . import CacheBackendError

# Kong's default shared dict for the memory strategy (mem_cache_size) is 128 MiB.
DEFAULT_MAX_SIZE = 128 * 1024 * 1024
NEVER = float("inf")


@dataclass
class _Entry:
    text: str
    expires_at: float
    size: int


class MemoryStore:
    def __init__(
        self, *, max_size: int = DEFAULT_MAX_SIZE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_size = max_size
        self.size = 0
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._expiries: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> str | None:
        self._drop_expired()
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry.text

    async def set(self, key: str, text: str, ttl: float | None) -> None:
        size = len(key) + len(text)
        if size > self.max_size:
            raise CacheBackendError(
                f"the value is too large for the memory cache ({size} characters, at most {self.max_size})"
            )
        self._drop_expired()
        self._remove(key)
        expires_at = NEVER if ttl is None else self._clock() + ttl
        self._entries[key] = _Entry(text, expires_at, size)
        self.size += size
        if expires_at != NEVER:
            heapq.heappush(self._expiries, (expires_at, key))
        while self.size > self.max_size:
            self._remove(next(iter(self._entries)))
        self._compact_heap()

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= entry.size

    def _drop_expired(self) -> None:
        now = self._clock()
        while self._expiries and self._expiries[0][0] <= now:
            expires_at, key = heapq.heappop(self._expiries)
            entry = self._entries.get(key)
            # A key stored again since has a later expiry: this heap item is stale.
            if entry is not None and entry.expires_at == expires_at:
                self._remove(key)

    def _compact_heap(self) -> None:
        # Overwritten and evicted keys leave stale heap items; rebuild before they outnumber live ones.
        if len(self._expiries) > 2 * len(self._entries) + 64:
            self._expiries = [(e.expires_at, k) for k, e in self._entries.items() if e.expires_at != NEVER]
            heapq.heapify(self._expiries)
