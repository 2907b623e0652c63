"""`call`: an HTTP request to a third-party API (spec §5.1), sent on the proxy's shared aiohttp session.

Every call whose inputs are ready is started at once; the runtime awaits it as a task, so
independent calls run concurrently. Network errors, non-2xx answers and invalid JSON under a JSON
content type fail the node.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from ..config.schema import Field
from ..errors import NodeError
from ..http_client import CallFailed, OutboundRequest
from ..tls import TrustStore, trust_store
from ..types import DkType, Value
from ..values import (
    MessageWrite,
    body_text,
    decode_body,
    encode_query,
    headers_to_map,
)
from .base import AsyncRun, BuildError, NodeSpec, NodeType

if TYPE_CHECKING:
    from ..context import RunContext

# Kong documents no default; 60 s is lua-resty-http's and Kong's usual upstream timeout (decisions.md).
DEFAULT_TIMEOUT_MS = 60000


def url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:  # `http://[::1/x`: a URL from an input must fail the node, not raise
        return f"invalid URL: {url!r}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"invalid URL: {url!r} (expected an absolute http or https URL)"
    try:
        parts.port
    except ValueError:
        return f"invalid port in URL: {url!r}"
    return None


def merge_query(url: str, query: dict[str, Value]) -> str:
    """The `query` input joins the URL's own query; a key in both takes the input's value (decisions.md)."""
    parts = urlsplit(url)
    # The URL's own pairs the input does not name stay as written: decoding and re-encoding them
    # would turn a bare `?flag` into `flag=true` and re-spell escapes the target may rely on.
    kept = [pair for pair in parts.query.split("&") if pair and _query_key(pair) not in query]
    added = encode_query(query)
    return urlunsplit(parts._replace(query="&".join([*kept, added] if added else kept)))


def _query_key(pair: str) -> str:
    return unquote_plus(pair.split("=", 1)[0])


def _is_proxy_url(url: str) -> bool:
    """A forward proxy is reached over plain HTTP (https targets through a CONNECT tunnel) or TLS."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a port that is not a number in range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class Call(NodeType):
    type_name = "call"
    fields = {
        "url": Field("string", description="The URL to call; the `url` input overrides it when not null."),
        "method": Field("string", default="GET", minimum=1, maximum=32, pattern="[A-Z]+", description="HTTP method."),
        "timeout": Field(
            "integer", minimum=0, maximum=2147483646, description="Timeout in milliseconds (default 60000)."
        ),
        "ssl_server_name": Field("string", description="SNI name for TLS."),
        "ssl_verify": Field("boolean", default=True, description="Verify the server's TLS certificate."),
    }
    input_fields: Mapping[str, DkType] = {
        "body": DkType.ANY,
        "headers": DkType.MAP,
        "query": DkType.MAP,
        "url": DkType.STRING,
        "http_proxy": DkType.STRING,
        "https_proxy": DkType.STRING,
        "proxy_auth_username": DkType.STRING,
        "proxy_auth_password": DkType.STRING,
    }
    self_input = DkType.OBJECT
    output_fields: Mapping[str, DkType] = {
        "body": DkType.ANY,
        "headers": DkType.MAP,
        "status": DkType.NUMBER,
        "raw_body": DkType.STRING,
    }
    self_output = DkType.OBJECT
    is_async = True

    def check(self, settings: Mapping[str, Any], report: Callable[[str, str], None]) -> None:
        url = settings.get("url")
        if isinstance(url, str):
            problem = url_problem(url)
            if problem:
                report("url", problem)

    def check_wiring(
        self, settings: Mapping[str, Any], connected: frozenset[str], report: Callable[[str, str], None]
    ) -> None:
        # A node-wise input into a call is expanded into field edges, so `url` is among them when fed.
        if settings.get("url") is None and "url" not in connected:
            report("url", "required field missing (or connect the `url` input)")

    def build(self, spec: NodeSpec) -> AsyncRun:
        node_name = spec.name
        static_url: str | None = spec.settings["url"]
        method: str = spec.settings["method"]
        timeout_ms = spec.settings["timeout"]
        timeout = (DEFAULT_TIMEOUT_MS if timeout_ms is None else timeout_ms) / 1000 or None
        ssl_verify: bool = spec.settings["ssl_verify"]
        server_name: str | None = spec.settings["ssl_server_name"]
        # `ca_certificates` matter only when verifying (Kong: "no effect when ssl_verify is false").
        trust = trust_store(spec.config, spec.resources) if ssl_verify else TrustStore()
        if trust.error:
            raise BuildError("ca_certificates", trust.error)
        # The configured URL was checked when the plan was built; only a URL from an input is checked per call.
        static_https = static_url is not None and urlsplit(static_url).scheme == "https"

        async def run(inputs: dict[str, Value], ctx: RunContext) -> Value:
            url = inputs.get("url") or static_url
            if not isinstance(url, str):
                raise NodeError("call: no URL (the url input is null and no url is configured)")
            if url is static_url:
                https = static_https
            else:
                problem = url_problem(url)
                if problem:
                    raise NodeError(f"call: {problem}")
                https = urlsplit(url).scheme == "https"
            query = inputs.get("query")
            if isinstance(query, dict):
                url = merge_query(url, query)
            body: bytes | None = None
            headers: list[tuple[str, str]] = []
            if "headers" in inputs or "body" in inputs:
                write = MessageWrite.from_inputs(inputs, has_body=inputs.get("body") is not None)
                headers = [(name, v) for name, vals in write.header_ops if vals is not None for v in vals]
                if write.content_type:
                    headers.append(("Content-Type", write.content_type))
                body = write.body
            proxy = inputs.get("https_proxy" if https else "http_proxy") or None
            if proxy is not None and not _is_proxy_url(proxy):
                # Not quoted: a proxy URL may carry credentials.
                raise NodeError("call: invalid proxy URL (expected http://host:port)")
            user, password = inputs.get("proxy_auth_username"), inputs.get("proxy_auth_password")
            request = OutboundRequest(
                method=method,
                url=url,
                headers=headers,
                body=body,
                timeout=timeout,
                ssl_verify=ssl_verify,
                trust=trust.context,
                server_name=server_name,
                proxy=proxy,
                proxy_auth=(user, password or "") if proxy and user else None,
            )
            try:
                response = await ctx.send_call(node_name, request)
            except CallFailed as e:
                raise NodeError(str(e)) from None
            header_map = headers_to_map(response.headers)
            raw = body_text(response.body)
            outputs: dict[str, Value] = {
                "status": response.status,
                "headers": header_map,
                "raw_body": raw if isinstance(raw, str) else raw.decode("utf-8", "replace"),
            }
            content_type = next((v for k, v in response.headers if k.lower() == "content-type"), None)
            try:
                outputs["body"] = decode_body(response.body, content_type)
            except ValueError as e:
                outputs["body"] = outputs["raw_body"]
                raise NodeError(f"{e} (status {response.status})", values=outputs) from None
            if not 200 <= response.status <= 299:
                raise NodeError(f"non-2XX response code: {response.status}", values=outputs)
            return outputs

        return run
