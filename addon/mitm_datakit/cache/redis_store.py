"""Strategy `redis`: values live in a Redis server, so every proxy pointed at it shares one cache.

Keys are namespaced `datakit:cache:<key>` (docs/decisions.md): one namespace for all plugin
configs, so proxies with different configs but the same keys share entries, and other users of
the same Redis database are not stepped on. The client connects on first use, never at config
time, so a config loads while Redis is down.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..vault import MissingSecret, resolve
from . import CacheBackendError
from .settings import RedisSettings

KEY_PREFIX = "datakit:cache:"


class _TLSConnection(Connection):
    """A Redis connection over TLS with our own context (the plugin's trust store) and SNI name.

    redis-py's SSLConnection builds its own context and always sends the host as SNI; overriding
    the arguments it passes to `asyncio.open_connection` is the hook SSLConnection itself uses.
    """

    def __init__(self, *, tls_context: ssl.SSLContext, tls_server_name: str | None, **kwargs: Any) -> None:
        self._tls_context = tls_context
        self._tls_server_name = tls_server_name
        super().__init__(**kwargs)

    def _connection_arguments(self) -> dict[str, Any]:
        arguments = dict(super()._connection_arguments())
        arguments["ssl"] = self._tls_context
        if self._tls_server_name:
            arguments["server_hostname"] = self._tls_server_name
        return arguments


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and what it was raised from or during (redis-py wraps OS errors in its own)."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


def _secret(value: str | None) -> str | None:
    """`host`, `username` and `password` may be vault references (Kong marks them referenceable)."""
    if value is None or not (value.startswith("{vault://") and value.endswith("}")):
        return value
    resolved = resolve(value)
    if isinstance(resolved, MissingSecret):
        raise CacheBackendError(resolved.reason)
    return resolved


class RedisStore:
    def __init__(self, settings: RedisSettings, tls_context: ssl.SSLContext | None = None) -> None:
        """`tls_context` is the plugin's trust store when `ca_certificates` is set, else None."""
        self.settings = settings
        self._tls_context = tls_context
        self._client: Redis | None = None
        self._where = f"{settings.host}:{settings.port}"

    def _make_client(self) -> Redis:
        s = self.settings
        host = _secret(s.host) or "127.0.0.1"
        self._where = f"{host}:{s.port}"
        options: dict[str, Any] = {
            "host": host,
            "port": s.port,
            "db": s.database,
            "username": _secret(s.username),
            "password": _secret(s.password),
            "socket_connect_timeout": s.connect_timeout,
            "socket_timeout": s.io_timeout,
            # One retry replaces a pooled connection the server has closed; more would only
            # multiply the wait of every request while Redis is down.
            "retry": Retry(NoBackoff(), 1),
        }
        if s.ssl:
            options["connection_class"] = _TLSConnection
            options["tls_context"] = self._ssl_context()
            options["tls_server_name"] = s.server_name
        # Kong's keepalive pool size caps the connections; a request waits for a free one at most
        # as long as it would wait to connect.
        pool = BlockingConnectionPool(max_connections=s.pool_size, timeout=s.connect_timeout, **options)
        return Redis.from_pool(pool)

    def _ssl_context(self) -> ssl.SSLContext:
        if not self.settings.ssl_verify:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return self._tls_context or ssl.create_default_context()

    def _redis(self) -> Redis:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _failure(self, error: Exception) -> CacheBackendError:
        """A message that says what went wrong in a few words, from the OS or TLS error underneath."""
        for underlying in _chain(error):
            if isinstance(underlying, ssl.SSLError):
                reason = getattr(underlying, "verify_message", None) or underlying.reason or str(underlying)
                return CacheBackendError(f"TLS error with Redis {self._where}: {reason}")
            if (
                isinstance(underlying, OSError)
                and not isinstance(underlying, RedisError)
                and underlying.errno
            ):
                return CacheBackendError(
                    f"cannot connect to Redis {self._where}: {os.strerror(underlying.errno)}"
                )
        return CacheBackendError(f"Redis {self._where}: {error or type(error).__name__}")

    async def get(self, key: str) -> str | None:
        try:
            raw = await self._redis().get(KEY_PREFIX + key)
        except (RedisError, OSError) as e:
            raise self._failure(e) from None
        if raw is None:
            return None
        return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)

    async def set(self, key: str, text: str, ttl: float | None) -> None:
        # PX keeps sub-second TTLs; a TTL under 1 ms still expires rather than living forever.
        px = max(1, round(ttl * 1000)) if ttl is not None else None
        try:
            await self._redis().set(KEY_PREFIX + key, text.encode("utf-8"), px=px)
        except (RedisError, OSError) as e:
            raise self._failure(e) from None

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
