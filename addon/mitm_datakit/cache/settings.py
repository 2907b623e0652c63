"""The rules of `resources.cache` (spec §2.3): checked by the plan, read again by the stores.

One table serves both, so the defaults a store connects with are the defaults the checker shows.
Fields that only tune nginx (keepalive backlog, "connection is proxied", cluster redirections) are
accepted and have no effect; Redis topologies this proxy does not implement (Sentinel, Cluster,
cloud authentication) are rejected when set, rather than silently talking to `host:port` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config.schema import Field, check_fields

Report = Callable[[str, str], None]  # (field path such as `resources.cache.redis.port`, reason)
WHERE = "resources.cache"

MAX_INT = 2**31 - 2
MS = Field(
    "integer", default=2000, minimum=0, maximum=MAX_INT, description="Milliseconds; 0 means no timeout."
)

MEMORY_FIELDS: dict[str, Field] = {
    # An nginx shared dict in Kong; here every plan has its own in-process store.
    "dictionary_name": Field("string", default="kong_db_cache", minimum=1),
}

REDIS_FIELDS: dict[str, Field] = {
    "host": Field("string", default="127.0.0.1", minimum=1),
    "port": Field("integer", default=6379, minimum=0, maximum=65535),
    "connect_timeout": MS,
    "send_timeout": MS,
    "read_timeout": MS,
    "username": Field("string"),
    "password": Field("string"),
    "database": Field("integer", default=0, minimum=0),
    "keepalive_pool_size": Field("integer", default=256, minimum=1, maximum=MAX_INT),
    "keepalive_backlog": Field("integer", minimum=0, maximum=MAX_INT),
    "ssl": Field("boolean", default=False),
    "ssl_verify": Field("boolean", default=True),  # Kong 3.14+
    "server_name": Field("string", minimum=1),
    "connection_is_proxied": Field("boolean", default=False),
    "cluster_max_redirections": Field("integer", default=5, minimum=0),
}

# Kong fields that select a Redis topology or an authentication this proxy does not implement.
UNSUPPORTED_REDIS_FIELDS = frozenset(
    {
        "sentinel_master",
        "sentinel_role",
        "sentinel_nodes",
        "sentinel_username",
        "sentinel_password",
        "cluster_nodes",
        "cloud_authentication",
    }
)

CACHE_FIELDS: dict[str, Field] = {
    "strategy": Field("string", required=True, choices=("memory", "redis")),
    "memory": Field("object"),
    "redis": Field("object"),
}


@dataclass(frozen=True)
class RedisSettings:
    host: str
    port: int
    connect_timeout: float | None  # seconds; None waits forever
    io_timeout: float | None
    username: str | None
    password: str | None
    database: int
    pool_size: int
    ssl: bool
    ssl_verify: bool
    server_name: str | None


@dataclass(frozen=True)
class CacheSettings:
    strategy: str  # "memory" | "redis"
    redis: RedisSettings | None


def _is_set(value: Any) -> bool:
    # Kong's exported configs list every field, the unused ones as null or empty.
    return value is not None and value != [] and value != {}


def _seconds(milliseconds: int) -> float | None:
    return milliseconds / 1000 if milliseconds else None


def _check_block(value: Any, rules: Mapping[str, Field], where: str, report: Report) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        report(where, "expected a map")
        value = {}
    settings = check_fields(value, rules, lambda f, m: report(f"{where}.{f}", m))
    for key, item in value.items():
        if key in UNSUPPORTED_REDIS_FIELDS and rules is REDIS_FIELDS:
            if _is_set(item):
                report(f"{where}.{key}", "not supported here: connect to one Redis server with host and port")
        elif key not in rules:
            report(f"{where}.{key}", "unknown field")
    return settings


def _checked(value: Any, report: Report) -> tuple[str | None, dict[str, Any]]:
    if not isinstance(value, dict):
        report(WHERE, "expected a map")
        return None, {}
    top = check_fields(value, CACHE_FIELDS, lambda f, m: report(f"{WHERE}.{f}", m))
    for key in value:
        if key not in CACHE_FIELDS:
            report(f"{WHERE}.{key}", "unknown field")
    _check_block(value.get("memory"), MEMORY_FIELDS, f"{WHERE}.memory", report)
    redis = _check_block(value.get("redis"), REDIS_FIELDS, f"{WHERE}.redis", report)
    return top.get("strategy"), redis


def check_cache_resource(value: Any, report: Report) -> None:
    """Report every problem of a `resources.cache` value as `report(field path, reason)`."""
    _checked(value, report)


def _redis_settings(redis: Mapping[str, Any]) -> RedisSettings:
    send, read = redis["send_timeout"], redis["read_timeout"]
    return RedisSettings(
        host=redis["host"],
        port=redis["port"],
        connect_timeout=_seconds(redis["connect_timeout"]),
        # redis-py has one socket timeout for reads and writes: the longer of the two never cuts an
        # operation shorter than either setting allows; 0 (no timeout) in either wins.
        io_timeout=None if 0 in (send, read) else max(send, read) / 1000,
        username=redis["username"],
        password=redis["password"],
        database=redis["database"],
        pool_size=redis["keepalive_pool_size"],
        ssl=redis["ssl"],
        ssl_verify=redis["ssl_verify"],
        server_name=redis["server_name"],
    )


def cache_settings(config: Mapping[str, Any]) -> CacheSettings | None:
    """The checked `resources.cache` of a plugin config with defaults filled in; None when there is
    none, or when it is invalid (the plan reports why)."""
    resources = config.get("resources")
    if not isinstance(resources, dict) or resources.get("cache") is None:
        return None
    problems: list[str] = []
    strategy, redis = _checked(resources["cache"], lambda f, m: problems.append(m))
    if problems or strategy not in ("memory", "redis"):
        return None
    return CacheSettings(strategy, _redis_settings(redis) if strategy == "redis" else None)
