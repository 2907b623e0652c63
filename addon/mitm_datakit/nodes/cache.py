"""`cache`: read or write a value in the plan's cache resource (spec §5.7, Kong 3.12+).

With a non-null `data` input the node stores it under `key` (SET); otherwise it looks `key` up
(GET). All four outputs always hold a value, so any of them may feed a `branch`:

    GET hit   {hit: true,  miss: false, stored: false, data: <cached value>}
    GET miss  {hit: false, miss: true,  stored: false, data: null}
    SET       {hit: false, miss: false, stored: true,  data: <the data input>}

With `bypass_on_error` a store that fails reads as a miss, and a write that fails gives
`stored: false`; without it the node fails.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..cache import CacheBackendError, CacheStore
from ..cache.memory_store import MemoryStore
from ..cache.redis_store import RedisStore
from ..cache.settings import CacheSettings, cache_settings
from ..config.schema import Field
from ..errors import NodeError
from ..tls import trust_store
from ..types import DkType, Value
from ..values import json_dumps, type_name
from .base import AsyncRun, BuildError, NodeSpec, NodeType

if TYPE_CHECKING:
    from ..context import RunContext


def _store(spec: NodeSpec, settings: CacheSettings) -> CacheStore:
    """One store per plan, shared by its cache nodes (a GET and a SET must see the same entries)."""
    if settings.strategy == "memory":
        return spec.resources.get_or_create("cache:store", MemoryStore)
    assert settings.redis is not None
    redis = settings.redis
    context = None
    if redis.ssl and redis.ssl_verify:
        trust = trust_store(spec.config, spec.resources)
        if trust.error:
            raise BuildError("ca_certificates", trust.error)
        context = trust.context
    return spec.resources.get_or_create("cache:store", lambda: RedisStore(redis, context))


def _ttl(value: Value, fallback: int | None) -> float | None:
    if value is None:
        return fallback
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        shown = value if isinstance(value, (int, float)) and not isinstance(value, bool) else type_name(value)
        raise NodeError(f"cache: ttl must be a positive number of seconds, got {shown}")
    return value


class Cache(NodeType):
    type_name = "cache"
    fields = {
        "ttl": Field("integer", minimum=1, description="Seconds a SET keeps its entry; the ttl input wins."),
        "bypass_on_error": Field(
            "boolean", default=False, description="Treat a failing cache store as a miss instead of failing."
        ),
    }
    input_fields = {"key": DkType.STRING, "ttl": DkType.NUMBER, "data": DkType.ANY}
    self_input = DkType.OBJECT
    output_fields = {
        "hit": DkType.BOOLEAN,
        "miss": DkType.BOOLEAN,
        "stored": DkType.BOOLEAN,
        "data": DkType.ANY,
    }
    self_output = DkType.OBJECT
    is_async = True

    def check_wiring(
        self, settings: Mapping[str, Any], connected: frozenset[str], report: Callable[[str, str], None]
    ) -> None:
        if "key" not in connected:
            report("inputs.key", "required input not connected (the cache key)")

    def build(self, spec: NodeSpec) -> AsyncRun:
        settings = cache_settings(spec.config)
        if settings is None:
            raise BuildError(
                "resources.cache", "a cache node needs resources.cache (strategy memory or redis)"
            )
        store = _store(spec, settings)
        default_ttl: int | None = spec.settings["ttl"]
        bypass: bool = spec.settings["bypass_on_error"]

        async def run(inputs: dict[str, Value], ctx: RunContext) -> Value:
            key = inputs.get("key")
            if not isinstance(key, str):
                raise NodeError(f"cache: the key must be a string, got {type_name(key)}")
            data = inputs.get("data")
            if data is None:
                return await _get(store, key, bypass)
            return await _set(store, key, data, _ttl(inputs.get("ttl"), default_ttl), bypass)

        return run


async def _get(store: CacheStore, key: str, bypass: bool) -> dict[str, Value]:
    try:
        text = await store.get(key)
    except CacheBackendError as e:
        if not bypass:
            raise NodeError(f"cache: {e}") from None
        text = None
    if text is None:
        return {"hit": False, "miss": True, "stored": False, "data": None}
    try:
        data = json.loads(text)
    except ValueError:
        # Someone else wrote this key in Redis: a value we cannot read is a miss, not a failure.
        return {"hit": False, "miss": True, "stored": False, "data": None}
    return {"hit": True, "miss": False, "stored": False, "data": data}


async def _set(store: CacheStore, key: str, data: Value, ttl: float | None, bypass: bool) -> dict[str, Value]:
    try:
        text = json_dumps(data)
    except (TypeError, ValueError):
        # Values are JSON-like; only a body that is not UTF-8 (kept as bytes) has no JSON form.
        raise NodeError("cache: the data cannot be stored: it holds binary (non-UTF-8) content") from None
    stored = True
    try:
        await store.set(key, text, ttl)
    except CacheBackendError as e:
        if not bypass:
            raise NodeError(f"cache: {e}") from None
        stored = False
    return {"hit": False, "miss": False, "stored": stored, "data": data}
