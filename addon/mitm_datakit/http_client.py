"""The outbound HTTP client of `call` nodes: one shared aiohttp session per proxy.

aiohttp, not httpx: measured inside mitmdump, an aiohttp call costs about 230 µs of CPU against
2-6 ms for httpx.AsyncClient, whose pool also degrades past 32-64 calls in flight
(docs/decisions.md, shared/perf-baseline.md).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

DEFAULT_MAX_BODY = 10 * 1024 * 1024
_NO_AUTO_CONTENT_TYPE = frozenset({"Content-Type"})


class CallFailed(Exception):
    """The request could not be completed (connect, TLS, timeout, size). The message is safe to show:
    it names host and port, never the path or query, which may carry credentials."""


@dataclass(frozen=True)
class OutboundRequest:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes | None
    timeout: float | None  # seconds
    ssl_verify: bool = True
    # A verifying context with the plugin's `ca_certificates` (built once per plan); None: system CAs.
    trust: ssl.SSLContext | None = None
    server_name: str | None = None
    proxy: str | None = None
    proxy_auth: tuple[str, str] | None = None


@dataclass(frozen=True)
class InboundResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class CallExchange:
    """One call as it went over the wire, for whoever shows calls (the `datakit_show_calls` option).

    `sent_headers` are the headers aiohttp really sent: the node's, plus Host, User-Agent, Accept,
    Accept-Encoding and Content-Length. A call that failed before an answer came keeps the node's headers
    (nothing, or not all of it, was sent) and says why in `error`; `response` is then None.
    """

    request: OutboundRequest
    sent_headers: list[tuple[str, str]]
    started: float  # epoch seconds, as mitmproxy's timestamps
    ended: float
    response: InboundResponse | None = None
    response_started: float | None = None  # when the response headers had arrived
    reason: str = ""
    http_version: str = "HTTP/1.1"
    error: str | None = None


# Told of each finished call by `HttpClient.send_recorded`.
ExchangeRecorder = Callable[[CallExchange], None]


class _Capture:
    """What `send` notes while a recorded call runs; nothing of this exists for an unrecorded one."""

    def __init__(self, request: OutboundRequest) -> None:
        self.request = request
        self.started = time.time()
        self.sent_headers = request.headers
        self.response_started: float | None = None
        self.reason = ""
        self.http_version = "HTTP/1.1"

    def answered(self, response: aiohttp.ClientResponse) -> None:
        self.response_started = time.time()
        # A live view of the request's headers: it holds what aiohttp added while sending.
        self.sent_headers = list(response.request_info.headers.items())
        self.reason = response.reason or ""
        if response.version is not None:
            self.http_version = f"HTTP/{response.version.major}.{response.version.minor}"

    def exchange(self, *, response: InboundResponse | None = None, error: str | None = None) -> CallExchange:
        return CallExchange(
            request=self.request,
            sent_headers=self.sent_headers,
            started=self.started,
            ended=time.time(),
            response=response,
            response_started=self.response_started,
            reason=self.reason,
            http_version=self.http_version,
            error=error,
        )


class HttpClient:
    """Sends `call` requests. The session is created on first use, inside the running event loop."""

    def __init__(self, *, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.max_body = max_body
        self._session: aiohttp.ClientSession | None = None
        # aiohttp logs every connection event at DEBUG; mitmdump's root logger is at DEBUG and
        # routes each record through all addons, which costs real CPU per call.
        logging.getLogger("aiohttp").setLevel(logging.WARNING)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # an HTTP_PROXY pointing at this very proxy would loop calls back in
                auto_decompress=True,
                cookie_jar=aiohttp.DummyCookieJar(),  # calls of different flows must not share cookies
            )
        return self._session

    async def send_recorded(self, request: OutboundRequest, record: ExchangeRecorder) -> InboundResponse:
        """`send`, and tell `record` of the exchange, answered or not (a cancelled call too), before
        returning or raising."""
        capture = _Capture(request)
        try:
            response = await self.send(request, capture=capture)
        except CallFailed as e:
            record(capture.exchange(error=str(e)))
            raise
        except asyncio.CancelledError:
            record(capture.exchange(error="call canceled"))
            raise
        record(capture.exchange(response=response))
        return response

    async def send(self, request: OutboundRequest, *, capture: _Capture | None = None) -> InboundResponse:
        """The answer to `request`; CallFailed if no complete answer came."""
        session = self._get_session()
        # True and False select aiohttp's own cached default and non-verifying contexts.
        ssl_arg: ssl.SSLContext | bool = (request.trust or True) if request.ssl_verify else False
        headers, proxy_headers = _with_proxy_auth(request)
        timeout = _timeout(request.timeout)
        try:
            async with session.request(
                request.method,
                request.url,
                headers=headers,
                data=request.body,
                ssl=ssl_arg,
                server_hostname=request.server_name,
                proxy=request.proxy,
                proxy_headers=proxy_headers,
                timeout=timeout,
                allow_redirects=False,
                # A body is sent with the Content-Type the node gave, or none (lua-resty-http adds none);
                # aiohttp would otherwise label raw bytes application/octet-stream.
                skip_auto_headers=_NO_AUTO_CONTENT_TYPE,
            ) as response:
                if capture is not None:
                    capture.answered(response)
                # A HEAD answer (and a 204/304) declares a length but carries no body: nothing to refuse.
                bodiless = request.method == "HEAD" or response.status in (204, 304)
                declared = None if bodiless else response.content_length
                if declared is not None and declared > self.max_body:
                    raise CallFailed(f"response body of {declared} bytes exceeds the limit of {self.max_body}")
                body = await _read_limited(response.content, self.max_body)
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]
                return InboundResponse(response.status, headers, body)
        except CallFailed:
            raise
        except (asyncio.TimeoutError, TimeoutError):
            raise CallFailed(f"timeout calling {_host_port(request.url)}") from None
        except aiohttp.ClientSSLError as e:
            raise CallFailed(f"TLS error calling {_host_port(request.url)}: {_reason(e)}") from None
        except aiohttp.ClientProxyConnectionError as e:
            proxy = _host_port(request.proxy or "")  # host and port only: a proxy URL may carry credentials
            raise CallFailed(f"failed to connect to the proxy {proxy}: {_reason(e)}") from None
        except aiohttp.ClientHttpProxyError as e:
            # The proxy refused the CONNECT tunnel for an https target (407 without valid credentials).
            target = _host_port(request.url)
            raise CallFailed(f"the proxy refused to connect to {target}: {e.status} {e.message}") from None
        except aiohttp.ClientConnectorError as e:
            raise CallFailed(f"failed to connect to {_host_port(request.url)}: {_reason(e)}") from None
        except aiohttp.InvalidURL:
            raise CallFailed("invalid URL") from None
        except aiohttp.ClientPayloadError:
            target = _host_port(request.url)
            raise CallFailed(f"connection to {target} closed before the response was complete") from None
        except aiohttp.ClientError as e:
            raise CallFailed(f"request to {_host_port(request.url)} failed: {_reason(e)}") from None
        except ValueError as e:
            # aiohttp refuses to serialise a header value with CR, LF or NUL (header injection) with a
            # plain ValueError; header values come from node inputs, so this is the node's failure.
            raise CallFailed(f"invalid request to {_host_port(request.url)}: {e}") from None

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


async def _read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise CallFailed(f"response body exceeds the limit of {limit} bytes")
        chunks.append(chunk)


def _with_proxy_auth(request: OutboundRequest) -> tuple[list[tuple[str, str]], dict[str, str] | None]:
    """The request's headers and the CONNECT's headers, with the proxy's Basic credentials.

    An https target is reached through a CONNECT tunnel, which carries the credentials; an http target's
    request itself goes to the proxy, so it carries them. (aiohttp 3.14 deprecates `proxy_auth`, and its
    `proxy_headers` only reach a CONNECT.)
    """
    if request.proxy_auth is None:
        return request.headers, None
    user, password = request.proxy_auth
    credentials = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    if urlsplit(request.url).scheme == "https":
        return request.headers, {"Proxy-Authorization": credentials}
    return [*request.headers, ("Proxy-Authorization", credentials)], None


@functools.lru_cache(maxsize=64)
def _timeout(seconds: float | None) -> aiohttp.ClientTimeout:
    # Frozen and shared: a node's timeout is one of a few values, so each is built once, not per call.
    return aiohttp.ClientTimeout(total=seconds)


def _host_port(url: str) -> str:
    try:
        parsed = aiohttp.client.URL(url)
        return f"{parsed.host}:{parsed.port}"
    except Exception:
        return "the target"


def _reason(error: BaseException) -> str:
    os_error = getattr(error, "os_error", None)
    if os_error is not None and getattr(os_error, "strerror", None):
        return str(os_error.strerror)
    return str(error) or type(error).__name__
