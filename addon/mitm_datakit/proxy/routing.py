"""Kong's routing applied to flows: what the client sent, where the flow goes, and Kong's own answers
when it goes nowhere (no route, wrong protocol, no service, no target)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from mitmproxy import ctx, http

from ..kong.deployment import Deployment, Destination
from ..kong.router import RequestFacts, RouteMatch, split_host
from ..kong.uri import normalize_path
from .flowmap import client_port, client_scheme

logger = logging.getLogger("mitm_datakit")

JSON_UTF8 = "application/json; charset=utf-8"
# With a routing file, the file decides where flows go and which Host the upstream sees. mitmproxy
# must then keep the client's Host (reverse mode rewrites it to the reverse target before any addon
# runs, and Host-based routes need it) and must not connect anywhere before the route is known.
GATEWAY_OPTIONS = {"keep_host_header": True, "connection_strategy": "lazy"}


@dataclass(frozen=True)
class ClientView:
    """The request as the client sent it, kept before routing rewrites the flow's request:
    `kong.request.*` and `kong.client.*` describe the client side, whatever the upstream is."""

    host_header: str
    port: int
    scheme: str
    sni: str | None

    @classmethod
    def of(cls, flow: http.HTTPFlow, request: http.Request | None = None) -> ClientView:
        """`request`: the client's request when `flow.request` may already be the rewritten copy."""
        request = request or flow.request
        host = request.host_header or request.pretty_host
        return cls(host, client_port(flow, request), client_scheme(flow), flow.client_conn.sni)


def request_facts(flow: http.HTTPFlow, client: ClientView, deployment: Deployment) -> RequestFacts:
    request = flow.request
    headers: dict[str, list[str]] = {}
    if deployment.router is not None and deployment.router.uses_headers:
        for name in request.headers:
            headers[name.lower()] = request.headers.get_all(name)
    path = normalize_path(request.path.partition("?")[0])
    return RequestFacts(request.method, client.host_header, path, client.scheme, headers, client.sni)


def send_to(request: http.Request, destination: Destination) -> None:
    """Point the request at its upstream. The data fields are set directly: mitmproxy's host and port
    setters would also rewrite the Host header, which Kong sets on its own terms (preserve_host)."""
    query = request.path.partition("?")[2]
    request.scheme = destination.scheme
    request.data.host = destination.host
    request.data.port = destination.port
    request.path = destination.path + (f"?{query}" if query else "")
    request.host_header = destination.host_header


def kong_answer(
    status: int, message: str, request_id: str, headers: dict[str, str] | None = None
) -> http.Response:
    """Kong's own error answer: a JSON message and the request id, in the body and in a header."""
    body = json.dumps({"message": message, "request_id": request_id}).encode()
    return http.Response.make(
        status, body, {"Content-Type": JSON_UTF8, "X-Kong-Request-Id": request_id, **(headers or {})}
    )


def wrong_protocol_answer(
    match: RouteMatch, flow: http.HTTPFlow, client: ClientView, request_id: str
) -> http.Response:
    """A route for https only, reached over http: Kong's `https_redirect_status_code` (426 by default)."""
    code = match.route.https_redirect_status_code
    if code == 426:
        upgrade = {"Connection": "Upgrade", "Upgrade": "TLS/1.2, HTTP/1.1"}
        return kong_answer(426, "Please use HTTPS protocol", request_id, upgrade)
    host = split_host(client.host_header, client.scheme)[0]
    location = f"https://{host}{flow.request.path}"
    return kong_answer(
        code, "Moved Permanently" if code == 301 else "Found", request_id, {"Location": location}
    )


class GatewayOptions:
    """Sets GATEWAY_OPTIONS while a routing file is loaded, and puts the user's values back after."""

    def __init__(self) -> None:
        self._saved: dict[str, object] | None = None

    def apply(self, routing: bool) -> None:
        if routing and self._saved is None:
            changes = {k: v for k, v in GATEWAY_OPTIONS.items() if getattr(ctx.options, k) != v}
            self._saved = {k: getattr(ctx.options, k) for k in changes}
            if changes:
                logger.info(
                    "datakit: routing by the config file, so %s",
                    ", ".join(f"{k}={v}" for k, v in changes.items()),
                )
                ctx.options.update(**changes)
        elif not routing and self._saved is not None:
            saved, self._saved = self._saved, None
            if saved:
                ctx.options.update(**saved)
