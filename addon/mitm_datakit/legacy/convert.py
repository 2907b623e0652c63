"""Rewrite a 3.9/3.10 config in 3.11+ form, with a note for each change of meaning the rewrite cannot hide."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .config import LegacyConfig, LegacyNode

_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def _reference(config: LegacyConfig, source: int, port: str, names: dict[int, str]) -> str:
    node = config.nodes[source]
    name = names.get(source, node.name)
    # A fixed-port source's first port is what an unnamed 3.10 reference meant; write it out.
    return f"{name}.{port}" if not node.user_defined_outputs else name


def to_current(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The 3.11+ form of a legacy config and notes on what behaves differently. Raises ConfigError."""
    parsed = LegacyConfig(config)
    notes: list[str] = []
    names: dict[int, str] = {}
    for node_id, node in enumerate(parsed.nodes):
        if node.index:
            names[node_id] = node.name if "#" not in node.name else f"{node.type.upper()}_{node.index}"
    nodes: list[dict[str, Any]] = []
    for node_id, node in enumerate(parsed.nodes):
        if not node.index:
            continue
        converted: dict[str, Any] = {"name": names[node_id], "type": node.type}
        converted.update(_attributes(node, notes))
        inputs = {
            port: _reference(parsed, source, source_port, names) for port, (source, source_port) in node.inputs.items()
        }
        if node.type == "property" and "value" in inputs:
            converted["input"] = inputs.pop("value")
        if node.type == "jq":
            converted["jq"] = _jq_program(node, inputs, notes)
        if inputs:
            converted["inputs"] = inputs
        for port, (source, source_port) in node.inputs.items():
            if parsed.nodes[source].type == "call" and source_port == "error":
                notes.append(f"{node.name}: reads {parsed.nodes[source].name}.error, which 3.11+ removed (a failed call fails the plan)")
        nodes.append(converted)
    for sink in ("service_request", "response"):
        target = parsed.nodes[parsed.by_name[sink]]
        for port, (source, source_port) in target.inputs.items():
            name = names[source]
            entry = next(n for n in nodes if n["name"] == name)
            if parsed.nodes[source].user_defined_outputs or parsed.nodes[source].type == "handlebars":
                entry["output"] = f"{sink}.{port}"
            else:
                entry.setdefault("outputs", {})[source_port] = f"{sink}.{port}"
            if sink == "service_request" and port == "headers":
                notes.append(f"{name}: service_request.headers now sets the listed headers; 3.10 replaced the whole set")
    result: dict[str, Any] = {"nodes": nodes}
    if parsed.debug:
        result = {"debug": True, **result}
        notes.append("debug: the trace is now an object with nodes and events, not an array")
    return result, notes


def _attributes(node: LegacyNode, notes: list[str]) -> dict[str, Any]:
    attributes = {k: v for k, v in node.attributes.items() if k != "jq" and v is not None}
    if node.type == "call":
        attributes["method"] = str(attributes.get("method", "GET")).upper()
        attributes["timeout"] = int(attributes.get("timeout", 60)) * 1000  # seconds -> milliseconds
        notes.append(f"{node.name}: non-2xx answers and network errors now fail the plan (3.10 went on)")
    elif node.type == "exit":
        attributes.pop("warn_headers_sent", None)
        if attributes.get("status", 200) < 200:
            notes.append(f"{node.name}: status {attributes['status']} is below 3.11's minimum of 200")
    elif node.type == "handlebars":
        notes.append(f"{node.name}: handlebars does not exist in Kong 3.11+ (mitm-datakit keeps it as an extension)")
    return attributes


def _jq_program(node: LegacyNode, inputs: dict[str, str], notes: list[str]) -> str:
    """3.10 bound inputs as `$variables` with `.` null; 3.11+ passes them as fields of `.`."""
    variables = {port.replace(".", "_").replace("$", ""): port for port in inputs}

    def field(match: re.Match[str]) -> str:
        port = variables.get(match.group(1))
        if port is None:
            return match.group(0)
        return f".{port}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", port) else f'.["{port}"]'

    program = str(node.attributes.get("jq") or ".")
    rewritten = _VARIABLE.sub(field, program)
    if len(node.out_ports) > 1:
        notes.append(f"{node.name}: 3.11+ keeps only the first jq result; 3.10 sent one result per output port")
    return rewritten
