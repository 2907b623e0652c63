"""Kong properties on a mitmproxy flow: what `property` nodes GET and SET (spec §5.4, ARCHITECTURE §2)."""

from __future__ import annotations

import os
import re
import resource
import uuid
from typing import Any

from mitmproxy import ctx, http

from .. import __version__
from ..types import Value
from .flowmap import client_port, client_scheme

NODE_ID = str(uuid.uuid4())  # one id per proxy process, like a Kong node id
TARGET = re.compile(r"^(.+):([0-9]{1,5})$")
CTX_SHARED = "kong.ctx.shared"  # flow.metadata keys: other addons can read and write them too
CTX_PLUGIN = "datakit.ctx.plugin"


class FlowGateway:
    """The `Gateway` of one flow. SETs that affect the response are kept until it exists."""

    def __init__(self, flow: http.HTTPFlow) -> None:
        self.flow = flow
        self.response_status: int | None = None
        self.consumer: Value = None
        self.exited = False

    def get_property(self, name: str) -> Value:
        flow = self.flow
        for prefix, store in (("kong.ctx.shared.", CTX_SHARED), ("kong.ctx.plugin.", CTX_PLUGIN)):
            if name.startswith(prefix):
                return flow.metadata.get(store, {}).get(name[len(prefix) :])
        if name.startswith("kong.configuration."):
            return _option(name[len("kong.configuration.") :])
        getter = _GETTERS.get(name)
        return getter(self) if getter else None

    def set_property(self, name: str, value: Value) -> None:
        flow = self.flow
        for prefix, store in (("kong.ctx.shared.", CTX_SHARED), ("kong.ctx.plugin.", CTX_PLUGIN)):
            if name.startswith(prefix):
                flow.metadata.setdefault(store, {})[name[len(prefix) :]] = value
                return
        if name == "kong.service.target":
            self._set_target(value)
        elif name == "kong.service.request.scheme":
            if value not in ("http", "https"):
                raise ValueError(f"invalid scheme {value!r} (expected http or https)")
            flow.request.data.scheme = value.encode()
        elif name == "kong.response.status":
            if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
                raise ValueError(f"invalid status {value!r} (expected an integer from 100 to 599)")
            self.response_status = value
        elif name == "kong.client.consumer":
            if not isinstance(value, dict) or not any(k in value for k in ("id", "username", "custom_id")):
                raise ValueError("a consumer is an object with at least one of id, username, custom_id")
            self.consumer = value
        elif name == "kong.service.upstream":
            raise ValueError(f"no upstream named {value!r}: upstreams come from a Kong declarative file")
        else:
            raise ValueError("this property cannot be set")

    def _set_target(self, value: Value) -> None:
        """Kong's set_target: connect elsewhere, keep the Host header the upstream sees."""
        match = TARGET.match(value) if isinstance(value, str) else None
        if not match or not 0 < int(match.group(2)) < 65536:
            raise ValueError(f"invalid target {value!r} (expected host:port)")
        host = match.group(1).strip("[]")
        self.flow.request.data.host = host
        self.flow.request.data.port = int(match.group(2))


def _option(key: str) -> Value:
    value: Any = getattr(ctx.options, key, None) if key in ctx.options else None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return str(value)


def _forwarded(flow: http.HTTPFlow, header: str) -> str | None:
    value = flow.request.headers.get(header)
    return value.split(",")[0].strip() if value else None


def _memory_stats(_: FlowGateway) -> Value:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"pid": os.getpid(), "max_rss_kib": usage.ru_maxrss}


def _forwarded_port(gw: FlowGateway) -> int:
    value = _forwarded(gw.flow, "X-Forwarded-Port")
    return int(value) if value and value.isdigit() else client_port(gw.flow)


def _response_source(gw: FlowGateway) -> str:
    if gw.exited:
        return "exit"
    if gw.flow.error:
        return "error"
    return "service"


_GETTERS: dict[str, Any] = {
    "kong.client.ip": lambda gw: gw.flow.client_conn.peername[0] if gw.flow.client_conn.peername else None,
    "kong.client.port": lambda gw: gw.flow.client_conn.peername[1] if gw.flow.client_conn.peername else None,
    "kong.client.forwarded_ip": lambda gw: _forwarded(gw.flow, "X-Forwarded-For")
    or (gw.flow.client_conn.peername[0] if gw.flow.client_conn.peername else None),
    "kong.client.forwarded_port": _forwarded_port,
    "kong.client.protocol": lambda gw: client_scheme(gw.flow),
    "kong.client.consumer": lambda gw: gw.consumer,
    "kong.request.port": lambda gw: client_port(gw.flow),
    "kong.request.forwarded_host": lambda gw: _forwarded(gw.flow, "X-Forwarded-Host")
    or (gw.flow.request.host_header or "").rsplit(":", 1)[0],
    "kong.request.forwarded_port": _forwarded_port,
    "kong.request.forwarded_scheme": lambda gw: _forwarded(gw.flow, "X-Forwarded-Proto") or client_scheme(gw.flow),
    "kong.response.source": _response_source,
    "kong.service.response.status": lambda gw: gw.flow.response.status_code if gw.flow.response else None,
    "kong.version": lambda gw: __version__,
    "kong.nginx.subsystem": lambda gw: "http",
    "kong.node.id": lambda gw: NODE_ID,
    "kong.node.memory_stats": _memory_stats,
}
