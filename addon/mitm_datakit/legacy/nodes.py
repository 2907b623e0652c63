"""The 3.9/3.10 node types (spec §9.6). Each built node maps input payloads to output payloads by port;
a port left out of the result stays empty, and the nodes that read it never run (§9.5)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import jq as libjq

from ..errors import NodeError
from ..http_client import CallFailed, OutboundRequest
from ..nodes.exit import ExitResponse
from ..nodes.handlebars import _compile as compile_template
from ..nodes.jq import compile_error_text, variable_name, with_input
from ..values import MessageWrite
from .config import LegacyNode
from .payload import (
    Payload,
    PayloadError,
    Raw,
    decode,
    encode,
    header_map,
    header_pairs,
    is_json,
    query_string,
    to_json,
)

if TYPE_CHECKING:
    from ..context import RunContext

Ports = dict[str, Payload]
SyncNode = Callable[[Ports, "RunContext"], Any]
AsyncNode = Callable[[Ports, "RunContext"], Awaitable[Any]]

@dataclass(frozen=True)
class PropertySet:
    """A SET property node finishes with no output at all: its dependents never run (§9.6)."""


def variable(port: str) -> str | None:
    """3.9/3.10 removed every `$` from a port name; the rest is the current engine's rule."""
    return variable_name(port.replace("$", ""))


def build_jq(node: LegacyNode) -> SyncNode:
    bindings = "".join(
        f'.["{port}"] as ${var} | ' for port in node.in_ports if (var := variable(port)) is not None
    )
    try:
        # Inputs are variables and `.` is null, as in the 3.9/3.10 filter (jaq).
        compiled = libjq.compile(f"{bindings}null | ({node.attributes['jq']}\n)")
    except ValueError as e:
        raise ValueError(f"jq: filter compilation failed: {compile_error_text(e)}") from None

    def run(inputs: Ports, ctx: object) -> Ports:
        data: dict[str, Any] = {}
        for port, payload in inputs.items():
            try:
                data[port] = to_json(payload)
            except ValueError as e:
                raise NodeError(f"jq: input error at {port}: {e}") from None
        try:
            results = with_input(compiled, data).all()
        except ValueError as e:
            raise NodeError(str(e)) from None
        # One output port per result, in order; no result leaves every port empty.
        return dict(zip(node.out_ports, results))

    return run


def build_handlebars(node: LegacyNode) -> SyncNode:
    template = compile_template(node.attributes["template"])
    content_type = node.attributes["content_type"]

    def run(inputs: Ports, ctx: object) -> Ports:
        context: dict[str, Any] = {}
        for port, payload in inputs.items():
            name = port.replace(".", "_")
            if isinstance(payload, PayloadError):
                context[name] = payload.message
            elif isinstance(payload, Raw):
                context[name] = payload.data.decode("utf-8", "replace")
            else:
                context[name] = payload
        try:
            text = str(template(context))
        except Exception as e:
            raise NodeError(f"handlebars: error rendering template: {e}") from None
        output = decode(text.encode("utf-8"), content_type)
        if isinstance(output, PayloadError):
            raise NodeError(f"handlebars: {output.message}")
        return {"output": output}

    return run


def build_call(node: LegacyNode) -> AsyncNode:
    url: str = node.attributes["url"]
    method: str = node.attributes["method"]
    timeout = node.attributes["timeout"] or None  # seconds in 3.9/3.10; 0: no timeout

    async def run(inputs: Ports, ctx: RunContext) -> Ports:
        parts = urlsplit(url)
        if not parts.hostname:
            raise NodeError("call: failed getting host from URL")
        target = url
        if "query" in inputs:
            try:
                target = urlunsplit(parts._replace(query=query_string(inputs["query"])))
            except ValueError as e:
                raise NodeError(f"call error: {e}") from None
        headers = header_pairs(inputs.get("headers")) or []
        body = None
        if "body" in inputs:
            try:
                body = encode(inputs["body"], None)  # no content type: a JSON string goes as its text
            except ValueError as e:
                raise NodeError(f"call error: {e}") from None
        request = OutboundRequest(method=method, url=target, headers=headers, body=body, timeout=timeout)
        try:
            response = await ctx.send_call(node.name, request)
        except CallFailed as e:
            return {"error": str(e)}  # dispatch failed: only `error` is filled; body/headers stay empty
        content_type = next((v for k, v in response.headers if k.lower() == "content-type"), None)
        return {"headers": header_map(response.headers), "body": decode(response.body, content_type)}

    return run


def build_exit(node: LegacyNode) -> SyncNode:
    status: int = node.attributes["status"]

    def run(inputs: Ports, ctx: object) -> ExitResponse:
        return ExitResponse(status, message_write(inputs, sink=False))

    return run


def build_property(node: LegacyNode) -> SyncNode:
    name: str = node.attributes["property"]
    content_type: str | None = node.attributes.get("content_type")

    def run(inputs: Ports, ctx: RunContext) -> Any:
        if "value" in inputs:
            try:
                text = encode(inputs["value"], content_type).decode("utf-8", "replace")
            except ValueError as e:
                raise NodeError(f"property: {e}") from None
            value: Any = int(text) if name == "kong.response.status" and text.strip().isdigit() else text
            try:
                ctx.gateway.set_property(name, value)
            except ValueError as e:
                raise NodeError(f"property {name}: {e}") from None
            return PropertySet()
        value = ctx.gateway.get_property(name)
        if value is None:
            return {"value": None}
        raw = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        return {"value": decode(raw.encode("utf-8"), content_type)}

    return run


BUILDERS: dict[str, Callable[[LegacyNode], Any]] = {
    "jq": build_jq,
    "handlebars": build_handlebars,
    "call": build_call,
    "exit": build_exit,
    "property": build_property,
}


def message_write(inputs: Ports, *, sink: bool) -> MessageWrite:
    """What a 3.9/3.10 node writes into a message: a JSON body brings `Content-Type: application/json`.

    `exit` encodes its body with no content type (a JSON string is sent as its text); the implicit sinks
    encode for the JSON type they just set (a JSON string is sent quoted), and their `headers` replace
    the whole header set (Proxy-Wasm's set_http_*_headers).
    """
    grouped: dict[str, list[str]] = {}
    for name, value in header_pairs(inputs.get("headers")) or []:
        grouped.setdefault(name, []).append(value)
    ops: list[tuple[str, list[str] | None]] = [(name, values) for name, values in grouped.items()]
    body: bytes | None = None
    implied: str | None = None
    if "body" in inputs:
        payload = inputs["body"]
        json_body = is_json(payload)
        try:
            body = encode(payload, "application/json" if json_body and sink else None)
        except ValueError:
            body = b""  # an Error payload cannot be encoded: the filter wrote an empty body
        if json_body and not any(n.lower() == "content-type" for n in grouped):
            implied = "application/json"
    return MessageWrite(ops, body, implied, replace_headers=sink and "headers" in inputs)
