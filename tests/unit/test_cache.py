"""The `cache` node and `resources.cache` (spec §2.3, §5.7): config checks, the memory store, and a real
`redis-server` on a free loopback port (never a mock)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from mitm_datakit.cache import CacheBackendError
from mitm_datakit.cache.memory_store import MemoryStore
from mitm_datakit.cache.redis_store import KEY_PREFIX
from mitm_datakit.context import RunContext
from mitm_datakit.errors import ConfigError
from mitm_datakit.http_client import HttpClient
from mitm_datakit.plan import Plan, build_plan
from mitm_datakit.runtime import Run

from .conftest import value_of
from .pki import LocalCA
from .redis_server import RedisServer, free_port, require_redis_server
from .support import DEFAULT_REQUEST, DictGateway

BOUND = 10.0  # seconds; a Redis that hangs must fail the node long before this

MISS = {"hit": False, "miss": True, "stored": False, "data": None}


def get_node(name: str = "GET", **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "cache", "inputs": {"key": "KEYS.key"}, **fields}


def set_node(name: str = "SET", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "cache",
        "inputs": {"key": "KEYS.key", "data": "KEYS.data", "ttl": "KEYS.ttl"},
        **fields,
    }


def keys_node(key: Any = "k", data: Any = None, ttl: Any = None) -> dict[str, Any]:
    return {"name": "KEYS", "type": "static", "values": {"key": key, "data": data, "ttl": ttl}}


def config(cache: Any, *nodes: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"resources": {"cache": cache}, "nodes": list(nodes), **top}


MEMORY = {"strategy": "memory"}

PlanFactory = Callable[[dict[str, Any]], Plan]


@pytest.fixture
async def plans() -> AsyncIterator[PlanFactory]:
    """Plans whose resources (the memory store, the Redis client) are closed after the test."""
    built: list[Plan] = []

    def make(cfg: dict[str, Any]) -> Plan:
        built.append(build_plan(cfg))
        return built[-1]

    yield make
    for plan in built:
        await plan.resources.aclose()


async def run_plan(plan: Plan, http: HttpClient, *, body: Any = None) -> Run:
    """One request through `plan`: the plan, and so its cache store, outlives the request."""
    run = Run(plan, RunContext("0" * 32, DictGateway(), http))
    run.start({**DEFAULT_REQUEST, "body": body})
    await asyncio.wait_for(run.advance(), BOUND)
    return run


def failure_of(run: Run) -> tuple[str, str]:
    assert run.failure is not None, "the run was expected to fail"
    return run.failure.node.name, run.failure.message


# =============================================================================================
# config
# =============================================================================================


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        (
            {"nodes": [keys_node(), get_node()]},
            "node #2 (GET), field 'resources.cache': a cache node needs resources.cache",
        ),
        (config({}, keys_node(), get_node()), "field 'resources.cache.strategy': required field missing"),
        (
            config({"strategy": "disk"}, keys_node(), get_node()),
            "field 'resources.cache.strategy': expected one of",
        ),
        (
            config({"strategy": "memory", "size": 1}, keys_node()),
            "field 'resources.cache.size': unknown field",
        ),
        (config("memory", keys_node()), "field 'resources.cache': expected a map"),
        (
            config({"strategy": "memory", "memory": {"dictionary_name": ""}}, keys_node()),
            "field 'resources.cache.memory.dictionary_name': length must be at least 1",
        ),
        (
            config({"strategy": "redis", "redis": {"port": 70000}}, keys_node()),
            "field 'resources.cache.redis.port': value must be at most 65535",
        ),
        (
            config({"strategy": "redis", "redis": {"read_timeout": "1s"}}, keys_node()),
            "field 'resources.cache.redis.read_timeout': expected an integer",
        ),
        (
            config({"strategy": "redis", "redis": {"hostname": "x"}}, keys_node()),
            "field 'resources.cache.redis.hostname': unknown field",
        ),
        (
            config({"strategy": "redis", "redis": {"sentinel_master": "mymaster"}}, keys_node()),
            "field 'resources.cache.redis.sentinel_master': not supported here",
        ),
        (
            config(
                {"strategy": "redis", "redis": {"cluster_nodes": [{"ip": "10.0.0.1", "port": 6379}]}},
                keys_node(),
            ),
            "field 'resources.cache.redis.cluster_nodes': not supported here",
        ),
        (
            config(
                {"strategy": "redis", "redis": {"cloud_authentication": {"auth_provider": "aws"}}},
                keys_node(),
            ),
            "field 'resources.cache.redis.cloud_authentication': not supported here",
        ),
        (
            config(MEMORY, keys_node(), get_node(ttl=0)),
            "node #2 (GET), field 'ttl': value must be at least 1",
        ),
        (
            config(MEMORY, {"name": "GET", "type": "cache", "inputs": {"data": "request.body"}}),
            "node #1 (GET), field 'inputs.key': required input not connected",
        ),
        (
            config(
                MEMORY,
                {"name": "S", "type": "static", "values": {"key": {"a": 1}}},
                get_node(inputs={"key": "S.key"}),
            ),
            'invalid connection ("S.key" -> "GET.key"): type mismatch: map -> string',
        ),
    ],
)
def test_config_problems_are_reported(cfg: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_plan(cfg)
    assert expected in str(caught.value)


def test_kong_export_with_every_redis_field_is_accepted() -> None:
    """Kong's exported configs list every field; the unused ones are null, the nginx-only ones are ignored."""
    redis = {
        "host": "127.0.0.1",
        "port": 6379,
        "connect_timeout": 2000,
        "send_timeout": 2000,
        "read_timeout": 2000,
        "username": None,
        "password": None,
        "database": 0,
        "keepalive_pool_size": 256,
        "keepalive_backlog": None,
        "sentinel_master": None,
        "sentinel_role": None,
        "sentinel_nodes": None,
        "sentinel_username": None,
        "sentinel_password": None,
        "cluster_nodes": None,
        "cluster_max_redirections": 5,
        "ssl": False,
        "ssl_verify": True,
        "server_name": None,
        "connection_is_proxied": False,
        "cloud_authentication": None,
    }
    plan = build_plan(
        config(
            {"strategy": "memory", "memory": {"dictionary_name": "kong_db_cache"}, "redis": redis},
            keys_node(),
            get_node(),
        )
    )
    assert plan.node("GET").type_name == "cache"


# =============================================================================================
# memory strategy through the node
# =============================================================================================


def body_cache(**fields: Any) -> dict[str, Any]:
    """A cache node that SETs the request body when there is one and GETs otherwise."""
    return {
        "name": "C",
        "type": "cache",
        "inputs": {"key": "KEYS.key", "data": "request.body", "ttl": "KEYS.ttl"},
        **fields,
    }


@pytest.mark.parametrize(
    "data",
    ["text", 42, 2.5, True, [1, "two", None], {"nested": {"list": [1, 2]}, "empty": {}}],
    ids=["string", "integer", "float", "boolean", "array", "object"],
)
async def test_memory_set_then_get_returns_the_same_value(
    plans: PlanFactory, http_client: HttpClient, data: Any
) -> None:
    plan = plans(config(MEMORY, keys_node(), body_cache(ttl=60)))
    stored = await run_plan(plan, http_client, body=data)
    assert value_of(stored, "C") == {"hit": False, "miss": False, "stored": True, "data": data}
    hit = value_of(await run_plan(plan, http_client), "C")
    assert hit == {"hit": True, "miss": False, "stored": False, "data": data}
    assert type(hit["data"]) is type(data)


async def test_memory_get_of_a_missing_key_is_a_miss(plans: PlanFactory, http_client: HttpClient) -> None:
    run = await run_plan(plans(config(MEMORY, keys_node(), get_node())), http_client)
    assert run.failure is None
    assert value_of(run, "GET") == MISS


async def test_each_plan_has_its_own_memory_store(plans: PlanFactory, http_client: HttpClient) -> None:
    """A reloaded config starts with an empty memory cache (docs/decisions.md)."""
    first = plans(config(MEMORY, keys_node(), body_cache()))
    await run_plan(first, http_client, body="v")
    second = plans(config(MEMORY, keys_node(), body_cache()))
    assert value_of(await run_plan(second, http_client), "C") == MISS
    assert value_of(await run_plan(first, http_client), "C")["hit"] is True


async def test_ttl_input_wins_over_the_field(plans: PlanFactory, http_client: HttpClient) -> None:
    # Field: an hour. Input: 0.2 s. The entry must be gone within a second.
    plan = plans(config(MEMORY, keys_node(ttl=0.2), body_cache(ttl=3600)))
    await run_plan(plan, http_client, body="v")
    assert value_of(await run_plan(plan, http_client), "C")["hit"] is True
    await asyncio.sleep(0.3)
    assert value_of(await run_plan(plan, http_client), "C") == MISS


async def test_ttl_field_applies_without_input(plans: PlanFactory, http_client: HttpClient) -> None:
    plan = plans(config(MEMORY, keys_node(), body_cache(ttl=1)))
    await run_plan(plan, http_client, body="v")
    assert value_of(await run_plan(plan, http_client), "C")["hit"] is True
    await asyncio.sleep(1.1)
    assert value_of(await run_plan(plan, http_client), "C") == MISS


@pytest.mark.parametrize(
    ("ttl", "message"),
    [
        (-1, "cache: ttl must be a positive number of seconds, got -1"),
        (0, "cache: ttl must be a positive number of seconds, got 0"),
    ],
)
async def test_bad_ttl_input_fails_the_node(
    plans: PlanFactory, http_client: HttpClient, ttl: Any, message: str
) -> None:
    run = await run_plan(plans(config(MEMORY, keys_node(data="v", ttl=ttl), set_node())), http_client)
    assert failure_of(run) == ("SET", message)


@pytest.mark.parametrize(
    ("key", "message"),
    [(None, "cache: the key must be a string, got null")],
)
async def test_bad_key_fails_the_node(
    plans: PlanFactory, http_client: HttpClient, key: Any, message: str
) -> None:
    run = await run_plan(plans(config(MEMORY, keys_node(key=key), get_node())), http_client)
    assert failure_of(run) == ("GET", message)


async def test_binary_data_cannot_be_stored(plans: PlanFactory, http_client: HttpClient) -> None:
    run = await run_plan(plans(config(MEMORY, keys_node(), body_cache())), http_client, body=b"\xff\xfe")
    assert failure_of(run) == ("C", "cache: the data cannot be stored: it holds binary (non-UTF-8) content")


async def test_nodewise_input_from_a_static_node_expands_to_key(
    plans: PlanFactory, http_client: HttpClient
) -> None:
    """EX-07's GET: `input: CACHE_KEY_GET` with a static `{key: ...}`; a SET stored the entry first."""
    plan = plans(
        config(
            MEMORY,
            {"name": "CACHE_KEY_GET", "type": "static", "values": {"key": "cache key"}},
            {
                "name": "VALUES",
                "type": "static",
                "values": {"key": "cache key", "ttl": 100, "data": {"a": 1}},
            },
            {"name": "SET", "type": "cache", "input": "VALUES"},
            {"name": "GET", "type": "cache", "input": "CACHE_KEY_GET", "ttl": 200},
        )
    )
    await run_plan(plan, http_client)
    run = await run_plan(plan, http_client)
    assert value_of(run, "GET")["data"] == {"a": 1}


# =============================================================================================
# the memory store itself
# =============================================================================================


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_store_expires_entries() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.set("a", '"x"', 10)
    await store.set("forever", '"y"', None)
    clock.now += 9.9
    assert await store.get("a") == '"x"'
    clock.now += 0.2
    assert await store.get("a") is None
    assert await store.get("forever") == '"y"'
    assert len(store) == 1


async def test_memory_store_drops_expired_entries_nobody_reads() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    for i in range(100):
        await store.set(f"k{i}", "1", 1)
    clock.now += 2
    await store.set("fresh", "1", 1)
    assert len(store) == 1
    assert store.size == len("fresh") + 1


async def test_memory_store_evicts_least_recently_used_when_full() -> None:
    store = MemoryStore(max_size=30)  # each entry below: 2 + 8 = 10
    for key in ("k1", "k2", "k3"):
        await store.set(key, '"value"', None)
    assert await store.get("k1") is not None  # k1 is now the most recently used
    await store.set("k4", '"value"', None)
    assert await store.get("k2") is None
    assert [await store.get(k) is not None for k in ("k1", "k3", "k4")] == [True, True, True]
    assert store.size <= store.max_size


async def test_memory_store_overwrite_keeps_the_newest_expiry() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.set("k", '"old"', 1)
    await store.set("k", '"new"', 100)
    clock.now += 5  # the old expiry passes: it must not remove the new entry
    assert await store.get("k") == '"new"'


async def test_memory_store_heap_stays_bounded_under_overwrites() -> None:
    store = MemoryStore()
    for _ in range(1000):
        await store.set("same", "1", 3600)
    assert len(store._expiries) <= 2 * len(store) + 65


async def test_memory_store_refuses_a_value_larger_than_itself() -> None:
    store = MemoryStore(max_size=10)
    with pytest.raises(CacheBackendError, match="too large for the memory cache"):
        await store.set("k", '"a long value"', None)


# =============================================================================================
# redis strategy, against a real redis-server
# =============================================================================================




def stored_text(client: redis.Redis, key: str) -> bytes:
    raw = client.get(KEY_PREFIX + key)
    assert isinstance(raw, bytes), f"nothing stored under {key!r}"
    return raw


def redis_cache(server: RedisServer, **fields: Any) -> dict[str, Any]:
    return {"strategy": "redis", "redis": {"host": "127.0.0.1", "port": server.port, **fields}}


async def test_redis_values_are_shared_between_plans_as_json(
    plans: PlanFactory, http_client: HttpClient, redis_server: RedisServer
) -> None:
    """Two plans stand for two proxies: one stores, the other reads the same entry."""
    data = {"status": 200, "body": {"items": [1, 2]}, "flag": True}
    writer = plans(config(redis_cache(redis_server), keys_node(key="shared", data=data, ttl=30), set_node()))
    reader = plans(config(redis_cache(redis_server), keys_node(key="shared"), get_node()))
    assert value_of(await run_plan(writer, http_client), "SET")["stored"] is True
    assert value_of(await run_plan(reader, http_client), "GET") == {
        "hit": True,
        "miss": False,
        "stored": False,
        "data": data,
    }
    client = redis_server.client()
    try:
        assert json.loads(stored_text(client, "shared")) == data
        assert 0 < client.pttl(KEY_PREFIX + "shared") <= 30000
    finally:
        client.close()


async def test_redis_without_ttl_keeps_the_entry(
    plans: PlanFactory, http_client: HttpClient, redis_server: RedisServer
) -> None:
    plan = plans(config(redis_cache(redis_server), keys_node(data="v"), set_node()))
    await run_plan(plan, http_client)
    client = redis_server.client()
    try:
        assert client.pttl(KEY_PREFIX + "k") == -1  # -1: the key exists and has no expiry
    finally:
        client.close()


async def test_redis_entry_expires_after_its_ttl(
    plans: PlanFactory, http_client: HttpClient, redis_server: RedisServer
) -> None:
    writer = plans(config(redis_cache(redis_server), keys_node(data="v", ttl=0.2), set_node()))
    reader = plans(config(redis_cache(redis_server), keys_node(), get_node()))
    await run_plan(writer, http_client)
    assert value_of(await run_plan(reader, http_client), "GET")["hit"] is True
    deadline = time.monotonic() + 3
    while value_of(await run_plan(reader, http_client), "GET")["hit"]:
        assert time.monotonic() < deadline, "the entry outlived its ttl"
        await asyncio.sleep(0.05)


async def test_redis_database_is_used(
    plans: PlanFactory, http_client: HttpClient, redis_server: RedisServer
) -> None:
    plan = plans(config(redis_cache(redis_server, database=3), keys_node(data="in db 3"), set_node()))
    await run_plan(plan, http_client)
    client = redis_server.client()
    try:
        assert client.get(KEY_PREFIX + "k") is None
        client.select(3)
        assert json.loads(stored_text(client, "k")) == "in db 3"
    finally:
        client.close()


@pytest.fixture
def secured_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, password="default-secret", user=("datakit", "user-secret")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("credentials", "env"),
    [
        ({"password": "default-secret"}, {}),
        ({"username": "datakit", "password": "user-secret"}, {}),
        (
            {"username": "datakit", "password": "{vault://env/redis-password}"},
            {"REDIS_PASSWORD": "user-secret"},
        ),
    ],
    ids=["password", "acl-user", "password-from-vault"],
)
async def test_redis_authentication(
    plans: PlanFactory,
    http_client: HttpClient,
    secured_redis: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    credentials: dict[str, str],
    env: dict[str, str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    plan = plans(config(redis_cache(secured_redis, **credentials), keys_node(data=1), set_node(), get_node()))
    await run_plan(plan, http_client)
    assert value_of(await run_plan(plan, http_client), "GET")["data"] == 1


async def test_redis_wrong_password_fails_without_showing_it(
    plans: PlanFactory, http_client: HttpClient, secured_redis: RedisServer
) -> None:
    plan = plans(config(redis_cache(secured_redis, password="wrong-secret"), keys_node(), get_node()))
    name, message = failure_of(await run_plan(plan, http_client))
    assert name == "GET"
    assert message.startswith(f"cache: Redis 127.0.0.1:{secured_redis.port}: ")
    assert message == (
        f"cache: Redis 127.0.0.1:{secured_redis.port}: invalid username-password pair or user is disabled."
    )


@pytest.mark.parametrize(
    ("node", "bypass", "expected"),
    [
        (get_node, False, None),
        (get_node, True, MISS),
        (set_node, True, {"hit": False, "miss": False, "stored": False, "data": "v"}),
        (set_node, False, None),
    ],
    ids=["get-fails", "get-bypass-miss", "set-bypass-not-stored", "set-fails"],
)
async def test_redis_that_went_away(
    plans: PlanFactory,
    http_client: HttpClient,
    redis_server: RedisServer,
    node: Callable[..., dict[str, Any]],
    bypass: bool,
    expected: dict[str, Any] | None,
) -> None:
    plan = plans(
        config(
            redis_cache(redis_server, connect_timeout=500),
            keys_node(data="v"),
            node(name="C", bypass_on_error=bypass),
        )
    )
    assert (await run_plan(plan, http_client)).failure is None  # connected once: the pool has a connection
    redis_server.stop()
    run = await run_plan(plan, http_client)
    if expected is None:
        name, message = failure_of(run)
        assert name == "C"
        assert message == f"cache: cannot connect to Redis 127.0.0.1:{redis_server.port}: Connection refused"
    else:
        assert run.failure is None
        assert value_of(run, "C") == expected


async def test_redis_comes_back(
    plans: PlanFactory, http_client: HttpClient, redis_server: RedisServer
) -> None:
    plan = plans(config(redis_cache(redis_server, connect_timeout=500), keys_node(data="v"), set_node()))
    assert (await run_plan(plan, http_client)).failure is None
    redis_server.stop()
    assert (await run_plan(plan, http_client)).failure is not None
    redis_server.start()
    run = await run_plan(plan, http_client)
    assert run.failure is None
    assert value_of(run, "SET")["stored"] is True


async def test_redis_never_reached_at_config_time(plans: PlanFactory, http_client: HttpClient) -> None:
    """A config loads while Redis is down (Kong 3.14.0.0 fixed the opposite); the request fails instead."""
    require_redis_server()
    port = free_port()
    plan = plans(
        config(
            {"strategy": "redis", "redis": {"port": port, "connect_timeout": 500}}, keys_node(), get_node()
        )
    )
    assert failure_of(await run_plan(plan, http_client)) == (
        "GET",
        f"cache: cannot connect to Redis 127.0.0.1:{port}: Connection refused",
    )


async def test_redis_read_timeout(plans: PlanFactory, http_client: HttpClient) -> None:
    """A server that accepts but never answers: the read timeout (ms) ends the wait."""
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        plan = plans(
            config(
                {"strategy": "redis", "redis": {"port": port, "read_timeout": 200, "send_timeout": 200}},
                keys_node(),
                get_node(),
            )
        )
        started = time.monotonic()
        name, message = failure_of(await run_plan(plan, http_client))
        assert time.monotonic() - started < 3
        assert name == "GET"
        assert message == f"cache: Redis 127.0.0.1:{port}: Timeout reading from 127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


# =============================================================================================
# redis over TLS
# =============================================================================================


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, Path]]:
    ca = LocalCA()
    cert, key = ca.issue("redis.internal.test").write(tmp_path, "redis")
    server = RedisServer(tmp_path, tls=(cert, key)).start()
    try:
        yield server, ca.write(tmp_path / "ca.pem")
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("redis_fields", "with_ca", "problem"),
    [
        ({"ssl": True, "ssl_verify": True, "server_name": "redis.internal.test"}, True, None),
        ({"ssl": True, "ssl_verify": True, "server_name": "other.internal.test"}, True, "Hostname mismatch"),
        (
            {"ssl": True, "ssl_verify": True, "server_name": "redis.internal.test"},
            False,
            "unable to get local issuer",
        ),
        ({"ssl": True, "ssl_verify": False}, False, None),
    ],
    ids=["verified", "wrong-server-name", "unknown-ca", "not-verified"],
)
async def test_redis_over_tls(
    plans: PlanFactory,
    http_client: HttpClient,
    tls_redis: tuple[RedisServer, Path],
    redis_fields: dict[str, Any],
    with_ca: bool,
    problem: str | None,
) -> None:
    server, ca_file = tls_redis
    top = {"ca_certificates": [str(ca_file)]} if with_ca else {}
    plan = plans(
        config(
            redis_cache(server, connect_timeout=1000, **redis_fields),
            keys_node(data="tls"),
            set_node(),
            get_node(),
            **top,
        )
    )
    await run_plan(plan, http_client)
    run = await run_plan(plan, http_client)
    if problem is None:
        assert run.failure is None
        assert value_of(run, "GET")["data"] == "tls"
    else:
        _, message = failure_of(run)
        assert message.startswith(f"cache: TLS error with Redis 127.0.0.1:{server.port}: ")
        assert problem in message


def test_missing_ca_file_is_a_config_error_of_the_cache_node(tmp_path: Path) -> None:
    cfg = config(
        {"strategy": "redis", "redis": {"ssl": True}},
        keys_node(),
        get_node(),
        ca_certificates=[str(tmp_path / "missing.pem")],
    )
    with pytest.raises(ConfigError) as caught:
        build_plan(cfg)
    assert f"node #2 (GET), field 'ca_certificates': CA file not found: {tmp_path / 'missing.pem'}" in str(
        caught.value
    )
