"""Objects that one Plan's nodes share across requests (a cache store, a Redis client, a TLS context).

Built at most once per plan, on demand, and closed with the plan when a new config replaces it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class PlanResources:
    def __init__(self) -> None:
        self._items: dict[str, Any] = {}

    def get_or_create(self, key: str, factory: Callable[[], T]) -> T:
        if key not in self._items:
            self._items[key] = factory()
        return self._items[key]  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Close every resource that has `aclose()` or `close()`; one failing does not stop the others."""
        items, self._items = list(self._items.values()), {}
        for item in items:
            closer = getattr(item, "aclose", None) or getattr(item, "close", None)
            if closer is None:
                continue
            try:
                result = closer()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # closing is best effort: the plan is gone either way
                pass
