"""Reading a 3.9/3.10 config: the three shapes of `inputs`/`outputs` and port resolution (spec §9.1, §9.2).

Messages are the filter's own, wrapped as it wrapped them (``in node `NAME` of type `TYPE`: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..config.schema import Field, check_value
from ..errors import ConfigError, ConfigIssue

RESERVED = ("request", "service_request", "service_response", "response")

# (input ports, output ports); None means user-defined.
PORTS: dict[str, tuple[list[str] | None, list[str] | None]] = {
    "request": ([], ["body", "headers", "query"]),
    "service_request": (["body", "headers", "query"], ["body", "headers"]),
    "service_response": ([], ["body", "headers"]),
    "response": (["body", "headers"], ["body", "headers"]),
    "call": (["body", "headers", "query"], ["body", "headers", "error"]),
    "exit": (["body", "headers"], ["body", "headers"]),
    "property": (["value"], ["value"]),
    "jq": (None, None),
    "handlebars": (None, ["output"]),
}

ATTRIBUTES: dict[str, dict[str, Field]] = {
    "call": {
        "url": Field("string"),
        "method": Field("string", default="GET"),
        "timeout": Field("integer", minimum=0, default=60),  # seconds, in 3.9/3.10
    },
    "jq": {"jq": Field("string", default=".")},
    "handlebars": {"template": Field("string", default=""), "content_type": Field("string", default="text/plain")},
    "exit": {
        "status": Field("integer", minimum=100, maximum=599, default=200),
        "warn_headers_sent": Field("boolean", default=True),
    },
    "property": {"property": Field("string"), "content_type": Field("string")},
}

LINK_KEYS = ("input", "inputs", "output", "outputs")


@dataclass
class LegacyNode:
    index: int  # 1-based; 0 for implicit nodes
    name: str
    type: str
    attributes: dict[str, Any] = field(default_factory=dict)
    in_ports: list[str] = field(default_factory=list)
    out_ports: list[str] = field(default_factory=list)
    inputs: dict[str, tuple[int, str]] = field(default_factory=dict)  # in port -> (source id, source port)
    links_in: int = 0  # links targeting this node so far: the unnamed-input port counter of §9.2

    @property
    def user_defined_inputs(self) -> bool:
        return PORTS[self.type][0] is None

    @property
    def user_defined_outputs(self) -> bool:
        return PORTS[self.type][1] is None


def _valid_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class _Problem(Exception):
    pass


def parse_reference(text: str) -> tuple[str, str | None]:
    """Trim, split at the first `.`, trim both parts: `foo . bar.baz` -> (`foo`, `bar.baz`)."""
    node, dot, port = text.strip().partition(".")
    return node.strip(), (port.strip() if dot else None)


def _links(value: Any, key: str) -> list[tuple[str | None, str]]:
    """(own port or None, reference) pairs from `input(s)`/`output(s)` in any of the three shapes."""
    if key in ("input", "output"):
        if not isinstance(value, str):
            raise _Problem("invalid object")
        return [(None, value)]
    if isinstance(value, dict):
        pairs = []
        for port, ref in value.items():
            if not isinstance(ref, str):
                raise _Problem("invalid map value")
            pairs.append((str(port), ref))
        return pairs
    if isinstance(value, list):
        pairs = []
        for item in value:
            if isinstance(item, str):
                pairs.append((None, item))
            elif isinstance(item, dict) and len(item) == 1:
                ((port, ref),) = item.items()
                if not isinstance(ref, str):
                    raise _Problem("invalid map value")
                pairs.append((str(port), ref))
            else:
                raise _Problem("invalid list value")
        return pairs
    raise _Problem("invalid object")


class LegacyConfig:
    """Nodes with resolved ports and links, in configuration order after the implicit ones."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.issues: list[ConfigIssue] = []
        self.nodes: list[LegacyNode] = []
        self.by_name: dict[str, int] = {}
        self.debug = False
        self._parse(config)
        if self.issues:
            raise ConfigError(self.issues)

    def _parsing(self, message: str, index: int | None = None, name: str | None = None, where: str | None = None) -> None:
        self.issues.append(ConfigIssue(f"failed parsing configuration: {message}", index, name, where))

    def _checking(self, node: LegacyNode, message: str, where: str | None = None) -> None:
        self.issues.append(
            ConfigIssue(
                f"failed checking configuration: in node `{node.name}` of type `{node.type}`: {message}",
                node.index,
                node.name,
                where,
            )
        )

    def _parse(self, config: Mapping[str, Any]) -> None:
        for key in config:
            if key not in ("nodes", "debug"):
                self._parsing(f"unknown field `{key}`, expected `nodes` or `debug`", where=str(key))
        debug = config.get("debug", False)
        if not isinstance(debug, bool):
            self._parsing("invalid type for `debug`: expected a boolean", where="debug")
        self.debug = debug is True
        raw_nodes = config.get("nodes")
        if raw_nodes is None:
            self._parsing("missing field `nodes`", where="nodes")
            return
        if not isinstance(raw_nodes, list):
            self._parsing("invalid type for `nodes`: expected a sequence", where="nodes")
            return
        for name in RESERVED:
            self._add(LegacyNode(0, name, name))
        declared = [self._declare(position, raw) for position, raw in enumerate(raw_nodes, start=1)]
        if self.issues:
            return
        for node, raw in zip(self.nodes[len(RESERVED) :], [r for r, ok in declared if ok]):
            for key in raw:
                if key in LINK_KEYS and raw[key] is not None:
                    self._link(node, key, raw[key])

    def _add(self, node: LegacyNode) -> None:
        in_ports, out_ports = PORTS[node.type]
        node.in_ports = list(in_ports or [])
        node.out_ports = list(out_ports or [])
        self.by_name[node.name] = len(self.nodes)
        self.nodes.append(node)

    def _declare(self, position: int, raw: Any) -> tuple[dict[str, Any], bool]:
        if not isinstance(raw, dict):
            self._parsing("invalid type: expected a map", position)
            return {}, False
        node_type, name = raw.get("type"), raw.get("name")
        if node_type is None:
            self._parsing("missing field `type`", position, name if isinstance(name, str) else None, "type")
            return raw, False
        if name is None:
            name = f"{node_type}#{position}"  # the filter generates a unique name when none is given
        elif not isinstance(name, str):
            self._parsing("invalid type for `name`: expected a string", position, None, "name")
            return raw, False
        node = LegacyNode(position, str(name), str(node_type))
        if not isinstance(node_type, str) or node_type not in ATTRIBUTES:
            self._checking(node, "unknown node type", "type")
            return raw, False
        if name in RESERVED:
            self._checking(node, "cannot use reserved node name", "name")
            return raw, False
        if name in self.by_name:
            self._checking(node, f"multiple definitions of node `{name}`", "name")
            return raw, False
        for single, many in (("input", "inputs"), ("output", "outputs")):
            if raw.get(single) is not None and raw.get(many) is not None:
                self._parsing(f"`{single}` and `{many}` cannot be used together", position, node.name, many)
        for key, value in raw.items():
            if key in ("name", "type", *LINK_KEYS):
                continue
            rule = ATTRIBUTES[node_type].get(key)
            if rule is None:
                self._parsing(f"unknown field `{key}` for a {node_type} node", position, node.name, key)
            elif value is not None and (problem := check_value(value, rule)):
                self._parsing(f"invalid value for `{key}`: {problem}", position, node.name, key)
            else:
                node.attributes[key] = value
        for key, rule in ATTRIBUTES[node_type].items():
            if node.attributes.get(key) is None:
                node.attributes[key] = rule.default
        self._check_attributes(node)
        self._add(node)
        return raw, True

    def _check_attributes(self, node: LegacyNode) -> None:
        if node.type == "call":
            url = node.attributes.get("url")
            if url is None:
                self._checking(node, "call: 'url' is a required attribute", "url")
            elif not _valid_url(url):
                self._checking(node, "call: 'url' is not a valid URL", "url")
        elif node.type == "property" and not node.attributes.get("property"):
            self._checking(node, "Missing `property` attribute", "property")

    def _link(self, node: LegacyNode, key: str, value: Any) -> None:
        try:
            pairs = _links(value, key)
        except _Problem as e:
            self._parsing(str(e), node.index, node.name, key)
            return
        for own_port, ref in pairs:
            other_name, other_port = parse_reference(ref)
            other_id = self.by_name.get(other_name)
            if other_id is None:
                self._checking(node, f"unknown node in link: {ref.strip()}", key)
                continue
            other = self.nodes[other_id]
            if key.startswith("input"):
                self._connect(other, other_port, node, own_port, node, key)
            else:
                self._connect(node, own_port, other, other_port, node, key)

    def _connect(
        self, src: LegacyNode, src_port: str | None, dst: LegacyNode, dst_port: str | None, owner: LegacyNode, key: str
    ) -> None:
        if src is dst:
            self._checking(owner, "node cannot connect to itself", key)
            return
        # The input side: named ports must exist on fixed-port nodes; unnamed ones count up.
        if dst_port is None:
            if dst.user_defined_inputs:
                dst_port = f"{src.name}.{src_port}" if src_port else src.name
            elif dst.links_in >= len(dst.in_ports):
                self._checking(dst, f"too many inputs declared (node type supports {len(dst.in_ports)} inputs)", key)
                return
            else:
                dst_port = dst.in_ports[dst.links_in]
        elif not dst.user_defined_inputs and dst_port not in dst.in_ports:
            self._checking(owner, f"invalid input port name {dst.name}.{dst_port}", key)
            return
        dst.links_in += 1
        if dst.user_defined_inputs and dst_port not in dst.in_ports:
            dst.in_ports.append(dst_port)
        # The output side: unnamed means the first port; jq creates ports as links name them.
        if src_port is None:
            if not src.out_ports and src.user_defined_outputs:
                src.out_ports.append(f"{dst.name}.{dst_port}")
            if not src.out_ports:
                self._checking(owner, "node in link has no output ports", key)
                return
            src_port = src.out_ports[0]
        elif src.user_defined_outputs:
            if src_port not in src.out_ports:
                src.out_ports.append(src_port)
        elif src_port not in src.out_ports:
            self._checking(owner, f"invalid output port name {src.name}.{src_port}", key)
            return
        if dst_port in dst.inputs:
            provider, port = dst.inputs[dst_port]
            self._checking(
                owner, f"{dst.name}.{dst_port} is already connected to {self.nodes[provider].name}.{port}", key
            )
            return
        dst.inputs[dst_port] = (self.by_name[src.name], src_port)
