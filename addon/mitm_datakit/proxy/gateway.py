"""Kong properties on a mitmproxy flow: what `property` nodes GET and SET (spec §5.4, ARCHITECTURE §2).

Client-side properties (`kong.client.*`, `kong.request.*`) describe the request as the client sent it,
before routing pointed it at its upstream. Entity properties (`kong.router.*`, `kong.route_*`,
`kong.service_*`) are the records of the matched route and service. Authentication results
(`kong.client.consumer`, `credential`, `consumer_groups`, ...) live in `flow.metadata` under their
property names, so another addon in front of Datakit can authenticate a flow as Kong's auth
plugins do, and Datakit reads what it set.
"""

from __future__ import annotations

import copy
import os
import re
import resource
import uuid
from collections.abc import Callable
from typing import Any

from mitmproxy import ctx, http

from .. import __version__
from ..kong.deployment import Deployment, Selection
from ..kong.router import split_host
from ..types import Value
from .flowmap import copy_message
from .routing import ClientView

NODE_ID = str(uuid.uuid4())  # one id per proxy process, like a Kong node id
TARGET = re.compile(r"^(.+):([0-9]{1,5})$")
CTX_SHARED = "kong.ctx.shared"  # flow.metadata keys: other addons can read and write them too
CTX_PLUGIN = "datakit.ctx.plugin"
CONSUMER = "kong.client.consumer"
CONSUMER_GROUPS = "kong.client.consumer_groups"
# Set by an authentication addon, read here (spec §5.4 lists them as GET only).
AUTH_RESULTS = (
    CONSUMER,
    CONSUMER_GROUPS,
    "kong.client.credential",
    "kong.client.identity_realm_source",
    "kong.client.principal",
)
# Options whose values are credentials: `kong.configuration.*` shows them masked, as Kong masks its own.
SECRET_OPTION = re.compile(r"token|password|secret|auth", re.IGNORECASE)
MASK = "******"


class FlowGateway:
    """The `Gateway` of one flow. SETs that affect the response are kept until it exists."""

    def __init__(
        self,
        flow: http.HTTPFlow,
        client: ClientView | None,
        deployment: Deployment | None = None,
        selection: Selection | None = None,
        *,
        original: http.Request | None = None,
    ) -> None:
        self.flow = flow
        self._client = client  # None: built from `original` when a property first reads it
        self.deployment = deployment
        self.selection = selection
        # The request as the client sent it. While `flow.request` is this object, nothing has changed it yet:
        # the first change copies it (see `writable_request`), so a failed plan can put it back unchanged.
        self.original = original if original is not None else flow.request
        self.response_status: int | None = None
        self.exited = False

    @property
    def client(self) -> ClientView:
        if self._client is None:
            self._client = ClientView.of(self.flow, self.original)
        return self._client

    def writable_request(self) -> http.Request:
        """The flow's request, copied from the client's first if this is its first change."""
        if self.flow.request is self.original:
            self.flow.request = copy_message(self.original)
        return self.flow.request

    # -- GET -----------------------------------------------------------------------------------
    def get_property(self, name: str) -> Value:
        metadata = self.flow.metadata
        for prefix, store in (("kong.ctx.shared.", CTX_SHARED), ("kong.ctx.plugin.", CTX_PLUGIN)):
            if name.startswith(prefix):
                return metadata.get(store, {}).get(name[len(prefix) :])
        if name.startswith("kong.configuration."):
            return _option(name[len("kong.configuration.") :])
        if name in AUTH_RESULTS:
            return metadata.get(name)
        if name.startswith("kong.client.principal."):
            principal = metadata.get("kong.client.principal")
            return (
                principal.get(name[len("kong.client.principal.") :]) if isinstance(principal, dict) else None
            )
        getter = _GETTERS.get(name)
        return getter(self) if getter else None

    def entity(self, kind: str) -> Value:
        selection = self.selection
        found = (selection.route if kind == "route" else selection.service) if selection else None
        return copy.deepcopy(found.record) if found is not None else None

    def forwarded(self, header: str) -> str | None:
        value = self.flow.request.headers.get(header)
        return value.split(",")[0].strip() if value else None

    # -- SET -----------------------------------------------------------------------------------
    def set_property(self, name: str, value: Value) -> None:
        flow = self.flow
        for prefix, store in (("kong.ctx.shared.", CTX_SHARED), ("kong.ctx.plugin.", CTX_PLUGIN)):
            if name.startswith(prefix):
                flow.metadata.setdefault(store, {})[name[len(prefix) :]] = value
                return
        setter = _SETTERS.get(name)
        if setter is None:
            raise ValueError("this property cannot be set")
        setter(self, value)

    def _set_target(self, value: Value) -> None:
        """Kong's set_target: connect elsewhere, keep the Host header the upstream sees."""
        match = TARGET.match(value) if isinstance(value, str) else None
        if not match or not 0 < int(match.group(2)) < 65536:
            raise ValueError(f"invalid target {value!r} (expected host:port)")
        self._connect_to(match.group(1).strip("[]"), int(match.group(2)))

    def _set_upstream(self, value: Value) -> None:
        """Kong's set_upstream: the next target of the named upstream entity, Host header unchanged."""
        upstream = (
            self.deployment.kong.upstreams.get(value) if self.deployment and isinstance(value, str) else None
        )
        if upstream is None:
            raise ValueError(f"could not find an Upstream named '{value}'")
        assert self.deployment is not None
        target = self.deployment.pick_target(upstream.name)
        if target is None:
            raise ValueError(
                f"failure to get a peer from the ring-balancer (upstream '{value}' has no targets)"
            )
        self._connect_to(target.host, target.port)

    def _connect_to(self, host: str, port: int) -> None:
        # The data fields, not the setters: those would rewrite the Host header too.
        request = self.writable_request()
        request.data.host = host
        request.data.port = port

    def _set_scheme(self, value: Value) -> None:
        if value not in ("http", "https"):
            raise ValueError(f"invalid scheme {value!r} (expected http or https)")
        self.writable_request().data.scheme = value.encode()

    def _set_status(self, value: Value) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
            raise ValueError(f"invalid status {value!r} (expected an integer from 100 to 599)")
        self.response_status = value

    def _set_consumer(self, value: Value) -> None:
        """Kong's authenticate: with a declarative file, the consumer must be one it declares."""
        if not isinstance(value, dict) or not any(k in value for k in ("id", "username", "custom_id")):
            raise ValueError("a consumer is an object with at least one of id, username, custom_id")
        kong = self.deployment.kong if self.deployment else None
        if kong is None or kong.form != "declarative":
            self.flow.metadata[CONSUMER] = value
            return
        consumer = kong.consumer(value)
        if consumer is None:
            raise ValueError("no consumer with that id, username or custom_id is declared")
        self.flow.metadata[CONSUMER] = copy.deepcopy(consumer.record)
        self.flow.metadata[CONSUMER_GROUPS] = copy.deepcopy(list(consumer.groups)) or None


def _option(key: str) -> Value:
    if key not in ctx.options:
        return None
    value: Any = getattr(ctx.options, key)
    if value and SECRET_OPTION.search(key):
        return MASK
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return str(value)


def _memory_stats(_: FlowGateway) -> Value:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"pid": os.getpid(), "max_rss_kib": usage.ru_maxrss}


def _forwarded_port(gw: FlowGateway) -> int:
    value = gw.forwarded("X-Forwarded-Port")
    return int(value) if value and value.isdigit() else gw.client.port


def _response_source(gw: FlowGateway) -> str:
    if gw.exited:
        return "exit"
    if gw.flow.error:
        return "error"
    return "service"


def _peer(gw: FlowGateway, index: int) -> Value:
    peer = gw.flow.client_conn.peername
    return peer[index] if peer else None


def _entity_field(kind: str, key: str) -> Callable[[FlowGateway], Value]:
    def get(gw: FlowGateway) -> Value:
        record = gw.entity(kind)
        return record.get(key) if record else None

    return get


_GETTERS: dict[str, Callable[[FlowGateway], Value]] = {
    "kong.client.ip": lambda gw: _peer(gw, 0),
    "kong.client.port": lambda gw: _peer(gw, 1),
    "kong.client.forwarded_ip": lambda gw: gw.forwarded("X-Forwarded-For") or _peer(gw, 0),
    "kong.client.forwarded_port": _forwarded_port,
    "kong.client.protocol": lambda gw: gw.client.scheme,
    "kong.request.port": lambda gw: gw.client.port,
    "kong.request.forwarded_host": lambda gw: (
        gw.forwarded("X-Forwarded-Host") or split_host(gw.client.host_header, gw.client.scheme)[0]
    ),
    "kong.request.forwarded_port": _forwarded_port,
    "kong.request.forwarded_scheme": lambda gw: gw.forwarded("X-Forwarded-Proto") or gw.client.scheme,
    "kong.response.source": _response_source,
    "kong.router.route": lambda gw: gw.entity("route"),
    "kong.router.service": lambda gw: gw.entity("service"),
    "kong.route_id": _entity_field("route", "id"),
    "kong.route_name": _entity_field("route", "name"),
    "kong.service_id": _entity_field("service", "id"),
    "kong.service_name": _entity_field("service", "name"),
    "kong.service.response.status": lambda gw: gw.flow.response.status_code if gw.flow.response else None,
    "kong.version": lambda gw: __version__,
    "kong.nginx.subsystem": lambda gw: "http",
    "kong.node.id": lambda gw: NODE_ID,
    "kong.node.memory_stats": _memory_stats,
}

_SETTERS: dict[str, Callable[[FlowGateway, Value], None]] = {
    "kong.service.target": FlowGateway._set_target,
    "kong.service.upstream": FlowGateway._set_upstream,
    "kong.service.request.scheme": FlowGateway._set_scheme,
    "kong.response.status": FlowGateway._set_status,
    "kong.client.consumer": FlowGateway._set_consumer,
}
