"""A config becomes a Plan once: fields checked, references resolved, edges expanded and typed,
cycles rejected, phases assigned, jq programs and templates compiled (spec §2, §3, §6.1).

A request then only walks the Plan (`runtime.py`). Every problem of a config is collected and
reported together, each naming the node (1-based index and name), the field and the reason.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .cache.settings import CACHE_FIELDS, check_cache_resource
from .config.schema import Field, check_fields
from .errors import ConfigError, ConfigIssue
from .implicit import (
    IMPLICIT_NODES,
    REQUEST,
    RESERVED_NAMES,
    RESPONSE,
    SERVICE_REQUEST,
    SERVICE_RESPONSE,
    VAULT,
)
from .nodes import REGISTRY, NodeType
from .nodes.base import AsyncRun, BuildError, NodeSpec, SyncRun
from .resources import PlanResources
from .runtime import Run
from .trace import Trace, trace_requested
from .types import SELF, DkType

if TYPE_CHECKING:
    from .context import RunContext

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,254}")
VAULT_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
VAULT_REFERENCE = re.compile(r"\{vault://[^/{}]+/[^{}]+\}")
CONNECTION_KEYS = ("input", "inputs", "output", "outputs")
COMMON_KEYS = frozenset(("name", "type", *CONNECTION_KEYS))
MAX_NODES = 64

TOP_LEVEL_FIELDS: dict[str, Field] = {
    "nodes": Field("any", required=True),
    "debug": Field("boolean", default=False),
    "resources": Field("object"),
    # Kong 3.16: CA Certificate entity ids; here they are PEM file paths (docs/decisions.md).
    "ca_certificates": Field("string_list"),
}
# `resources.cache` (spec §2.3): `cache.settings` checks it field by field, `memory` and `redis`
# included; the cache stores read the same tables, so checks and defaults cannot drift apart.
CACHE_RESOURCE_FIELDS: dict[str, Field] = CACHE_FIELDS


@dataclass(frozen=True)
class InputEdge:
    """One value delivered to a node input: read `src_field` of node `src`, then follow `path`."""

    src: int
    src_field: str | None  # None: the source's whole value ($self)
    path: tuple[str, ...]  # keys looked up inside that value (deep references, any->object expansion)
    dst_field: str  # SELF or a field name
    dst_type: DkType
    header_lookup: bool = False  # the path indexes a header map: match names case-insensitively
    spread: bool = False  # any -> object expansion: the value must be an object at run time
    # The provider's whole value, delivered as it is (no field, no path, no conversion): a chain's edge.
    direct: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "direct", self.src_field is None and not self.path and self.dst_type is DkType.ANY)


@dataclass
class PlanNode:
    id: int
    name: str
    type_name: str
    index: int | None = None  # 1-based position in `nodes`; None for implicit nodes
    run: SyncRun | AsyncRun | None = None
    is_async: bool = False
    inputs: list[InputEdge] = field(default_factory=list)
    providers: set[int] = field(default_factory=set)
    dependents: list[int] = field(default_factory=list)
    after_proxying: bool = False
    object_output: bool = False  # its value is an object of named fields (call, static, request, ...)
    controls: dict[str, tuple[int, ...]] = field(default_factory=dict)  # branch: list field -> node ids
    # User nodes run, and so do the sinks (they record their write); the adapter provides the sources. Known at
    # build time: the runtime asks once per node per request.
    runs_in_run: bool = field(init=False)

    def __post_init__(self) -> None:
        self.runs_in_run = self.index is not None or self.name in (SERVICE_REQUEST, RESPONSE)

    @functools.cached_property
    def has_body_input(self) -> bool:
        """Whether something is connected to the node's `body` input (a sink then writes a body). Asked on every
        request, computed once: all edges are in place before the first request."""
        return any(edge.dst_field == "body" for edge in self.inputs)


@dataclass
class Plan:
    nodes: list[PlanNode]
    debug: bool
    vault: dict[str, str]  # secret name -> reference, resolved when a request needs it
    request_fields: frozenset[str]  # fields of `request` some node reads
    service_response_fields: frozenset[str]
    needs_response_phase: bool  # some node runs after proxying or writes `response`
    initial_pending: list[int]  # providers still to complete, per node id
    user_nodes: list[PlanNode]
    ids: dict[str, int]
    resources: PlanResources = field(default_factory=PlanResources)
    # Nodes ready as soon as a run starts: no providers, and run by the runtime (the adapter provides the
    # implicit sources; sinks run to record their write). Known once, here, instead of per request.
    initial_ready: list[int] = field(init=False)
    dialect = "3.11"

    def __post_init__(self) -> None:
        self.initial_ready = [n.id for n in self.nodes if n.runs_in_run and self.initial_pending[n.id] == 0]

    def node(self, name: str) -> PlanNode:
        return self.nodes[self.ids[name]]

    def wants_trace(self, header_value: str | None) -> bool:
        """`debug: true` and an `X-DataKit-Debug-Trace` value Kong 3.11+ accepts (spec §7.2)."""
        return self.debug and trace_requested(header_value)

    def new_run(self, ctx: RunContext, *, tracing: bool) -> Run:
        return Run(self, ctx, trace=Trace() if tracing else None)


def build_plan(config: Mapping[str, Any]) -> Plan:
    """Turn a config (the plugin's `config` object) into a Plan, or raise ConfigError with every issue."""
    if not isinstance(config, Mapping):
        # A declarative file's `config:` can hold anything; report it instead of failing on `.get`.
        raise ConfigError([ConfigIssue("expected a map at the top level")])
    return _PlanBuilder(config).build()


@dataclass
class _Ref:
    node: str
    field: str | None
    path: tuple[str, ...]
    text: str


def parse_reference(text: str) -> _Ref:
    """`NODE`, `NODE.field` or `NODE.field.key...` (split at dots; deeper keys index into the value)."""
    parts = [p.strip() for p in text.strip().split(".")]
    return _Ref(parts[0], parts[1] if len(parts) > 1 else None, tuple(parts[2:]), text.strip())


@dataclass
class _Slot:
    src_display: str
    edge: InputEdge


class _PlanBuilder:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.issues: list[ConfigIssue] = []
        self.nodes: list[PlanNode] = []
        self.ids: dict[str, int] = {}
        self.types: dict[int, NodeType] = {}
        self.settings: dict[int, dict[str, Any]] = {}
        self.field_errors: set[int] = set()  # nodes whose own fields are invalid: not compiled
        self.slots: dict[tuple[int, str], _Slot] = {}
        self.vault: dict[str, str] = {}
        self.resources = PlanResources()
        self.unnamed: set[int] = set()  # 1-based positions of nodes without a string name

    # -- reporting ---------------------------------------------------------------------------
    def report(self, message: str, node: PlanNode | None = None, field_name: str | None = None) -> None:
        # A node without a string name is labelled `#<position>` internally; its issues name no node.
        name = node.name if node and node.index not in self.unnamed else None
        self.issues.append(ConfigIssue(message, node.index if node else None, name, field_name))

    # -- top level ---------------------------------------------------------------------------
    def build(self) -> Plan:
        top = check_fields(self.config, TOP_LEVEL_FIELDS, lambda f, m: self.report(m, field_name=f))
        for key in self.config:
            if key not in TOP_LEVEL_FIELDS:
                self.report("unknown field", field_name=str(key))
        self._check_resources(top.get("resources"))
        for name in IMPLICIT_NODES:
            self._add_node(name, name)
        raw_nodes = top.get("nodes")
        if raw_nodes is not None:
            if not isinstance(raw_nodes, list):
                self.report("expected an array of nodes", field_name="nodes")
                raw_nodes = []
            elif not 1 <= len(raw_nodes) <= MAX_NODES:
                self.report(f"length must be between 1 and {MAX_NODES}", field_name="nodes")
            raw_nodes = raw_nodes[: MAX_NODES * 4]  # a hostile file cannot make us loop for long
        user = self._declare_nodes(raw_nodes or [])
        for node, raw in user:
            self._collect_connections(node, raw)
        for node, _ in user:
            self._check_wiring(node)
            self._resolve_controls(node)
        self._wire_dependencies()
        self._check_cycles()
        for node, _ in user:
            self._compile(node)
        if self.issues:
            raise ConfigError(self._sorted_issues())
        return self._finish(top, [n for n, _ in user])

    def _sorted_issues(self) -> list[ConfigIssue]:
        return sorted(self.issues, key=lambda i: (i.node_index or 0))

    def _check_resources(self, resources: Any) -> None:
        if not isinstance(resources, dict):
            return
        for key, value in resources.items():
            where = f"resources.{key}"
            if key == "vault":
                self._check_vault(value)
            elif key == "cache":
                check_cache_resource(value, lambda f, m: self.report(m, field_name=f))
            else:
                self.report("unknown field", field_name=where)

    def _check_vault(self, vault: Any) -> None:
        if not isinstance(vault, dict) or not 1 <= len(vault) <= 64:
            self.report("expected a map of 1 to 64 secret references", field_name="resources.vault")
            return
        for name, reference in vault.items():
            where = f"resources.vault.{name}"
            if not isinstance(name, str) or not VAULT_NAME_PATTERN.fullmatch(name):
                self.report("invalid secret name (letters, digits, _ and -; not starting with a digit)", field_name=where)
            elif not isinstance(reference, str) or not VAULT_REFERENCE.fullmatch(reference.strip()):
                self.report("expected a vault reference such as {vault://env/MY_SECRET}", field_name=where)
            else:
                self.vault[name] = reference.strip()

    # -- nodes -------------------------------------------------------------------------------
    def _add_node(self, name: str, type_name: str, index: int | None = None) -> PlanNode:
        node = PlanNode(id=len(self.nodes), name=name, type_name=type_name, index=index)
        self.nodes.append(node)
        self.ids.setdefault(name, node.id)
        return node

    def _declare_nodes(self, raw_nodes: list[Any]) -> list[tuple[PlanNode, dict[str, Any]]]:
        user: list[tuple[PlanNode, dict[str, Any]]] = []
        for position, raw in enumerate(raw_nodes, start=1):
            if not isinstance(raw, dict):
                self.issues.append(ConfigIssue("expected a map", position))
                continue
            name, type_name = raw.get("name"), raw.get("type")
            label = name if isinstance(name, str) else None
            if not label:
                self.unnamed.add(position)
            node = PlanNode(id=-1, name=label or f"#{position}", type_name=str(type_name), index=position)
            if name is None:
                self.report("required field missing", node, "name")
            elif not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
                self.report(
                    "invalid name: use 1 to 255 letters, digits, '_' or '-', starting with a letter or '_'",
                    node,
                    "name",
                )
            elif name in RESERVED_NAMES:
                self.report(f'"{name}" is a reserved node name', node, "name")
            elif name in self.ids:
                self.report(f'Duplicate node name: "{name}"', node, "name")
            node_type = REGISTRY.get(type_name) if isinstance(type_name, str) else None
            if type_name is None:
                self.report("required field missing", node, "type")
            elif node_type is None:
                known = ", ".join(sorted(REGISTRY))
                self.report(f"unknown node type: {type_name} (expected one of: {known})", node, "type")
            node.id = len(self.nodes)
            self.nodes.append(node)
            if label and label not in self.ids and label not in RESERVED_NAMES:
                self.ids[label] = node.id
            if node_type is None:
                self.field_errors.add(node.id)  # already reported; its connections cannot be typed
                continue
            self.types[node.id] = node_type
            self.settings[node.id] = self._check_node_fields(node, node_type, raw)
            user.append((node, raw))
        return user

    def _check_node_fields(self, node: PlanNode, node_type: NodeType, raw: dict[str, Any]) -> dict[str, Any]:
        before = len(self.issues)

        def report(field_name: str, message: str) -> None:
            self.report(message, node, field_name)

        for key in raw:
            if key not in COMMON_KEYS and key not in node_type.fields:
                report(str(key), f"unknown field for {_a(node_type.type_name)} node")
        settings = check_fields(raw, node_type.fields, report)
        if len(self.issues) == before:
            node_type.check(settings, report)
        if len(self.issues) != before:
            self.field_errors.add(node.id)
        return settings

    # -- connections -------------------------------------------------------------------------
    def _collect_connections(self, node: PlanNode, raw: dict[str, Any]) -> None:
        node_type = self.types[node.id]
        for single, many in (("input", "inputs"), ("output", "outputs")):
            if raw.get(single) is not None and raw.get(many) is not None:
                self.report(f'A node cannot use both "{single}" and "{many}". Use one or the other.', node, many)
                return
        rules = {
            "input": node_type.self_input is not None,
            "inputs": node_type.allows_field_inputs(),
            "output": node_type.self_output is not None,
            "outputs": node_type.self_output is not None and node_type.allows_field_outputs,
        }
        for key in CONNECTION_KEYS:
            value = raw.get(key)
            if value is None:
                continue
            if not rules[key]:
                self.report(f'{_a(node_type.type_name)} node does not accept "{key}"', node, key)
                continue
            if key in ("input", "output"):
                if not isinstance(value, str) or not value.strip():
                    self.report("expected a reference such as NODE or NODE.field", node, key)
                elif key == "input":
                    self._connect(_Ref(node.name, None, (), node.name), parse_reference(value), node, key, dst=node)
                else:
                    self._connect(_Ref(node.name, None, (), node.name), parse_reference(value), node, key, src=node)
                continue
            if not isinstance(value, dict):
                self.report("expected a map of field names to references", node, key)
                continue
            for field_name, ref in value.items():
                where = f"{key}.{field_name}"
                if ref is None:
                    continue  # Kong ignores null connections (3.14.0.8)
                if key == "inputs" and node_type.input_fields is None and not 1 <= len(str(field_name)) <= 255:
                    # Free input names (jq) become keys of the input object: Kong's schema wants 1..255 chars.
                    self.report("input names must have 1 to 255 characters", node, where)
                    continue
                if not isinstance(ref, str) or not ref.strip():
                    self.report("expected a reference such as NODE or NODE.field", node, where)
                    continue
                own = _Ref(node.name, str(field_name), (), f"{node.name}.{field_name}")
                if key == "inputs":
                    self._connect(own, parse_reference(ref), node, where, dst=node)
                else:
                    self._connect(own, parse_reference(ref), node, where, src=node)

    def _connect(
        self,
        own: _Ref,
        other: _Ref,
        declared_on: PlanNode,
        where: str,
        *,
        src: PlanNode | None = None,
        dst: PlanNode | None = None,
    ) -> None:
        """Resolve one written connection; `own` is this node's end, `other` the referenced one."""
        src_ref, dst_ref = (own, other) if src is not None else (other, own)
        display = f'("{src_ref.text}" -> "{dst_ref.text}")'
        other_node = self.ids.get(other.node)
        if other_node is None:
            self.report(f'Unknown node "{other.node}" in connection "{other.text}"', declared_on, where)
            return
        src_node = self.nodes[self.ids[src_ref.node]] if src is None else src
        dst_node = self.nodes[self.ids[dst_ref.node]] if dst is None else dst
        if src_node.id == dst_node.id:
            self.report(f"invalid connection {display}: a node cannot connect to itself", declared_on, where)
            return
        if src_node.id in self.field_errors or dst_node.id in self.field_errors:
            return  # its fields are already reported; its types cannot be trusted
        if dst_ref.path:
            self.report(f"invalid connection {display}: a target is NODE or NODE.field", declared_on, where)
            return
        src_type = self._source_type(src_node, src_ref, display, declared_on, where)
        if src_type is None:
            return
        targets = self._target_fields(dst_node, dst_ref, display, declared_on, where)
        if targets is None:
            return
        header_lookup = src_ref.field == "headers" and bool(src_ref.path)
        if src_ref.path:
            src_type = DkType.ANY

        dst_self_type = targets.get(SELF)
        if dst_self_type is DkType.OBJECT:
            self._connect_object(
                src_node, src_ref, src_type, dst_node, display, declared_on, where, header_lookup
            )
            return
        (dst_field, dst_type), = targets.items()
        if not _compatible(src_type, dst_type, self._is_static(src_node) and src_ref.field is None):
            self.report(f"invalid connection {display}: type mismatch: {src_type} -> {dst_type}", declared_on, where)
            return
        edge = InputEdge(src_node.id, src_ref.field, src_ref.path, dst_field, dst_type, header_lookup)
        self._occupy(dst_node, edge, src_ref.text, declared_on, where)

    def _connect_object(
        self,
        src_node: PlanNode,
        src_ref: _Ref,
        src_type: DkType,
        dst_node: PlanNode,
        display: str,
        declared_on: PlanNode,
        where: str,
        header_lookup: bool,
    ) -> None:
        """A node-wise connection into a node with fixed fields (spec §3.3)."""
        dst_fields = self._input_fields(dst_node)
        if src_type is DkType.OBJECT:
            # object -> object: one edge per common field name.
            src_fields = self._output_fields(src_node)
            common = [f for f in dst_fields if f in src_fields]
            if not common:
                self.report(f"invalid connection {display}: the two nodes have no field in common", declared_on, where)
                return
            for name in common:
                if not _compatible(src_fields[name], dst_fields[name], False):
                    self.report(
                        f'invalid connection ("{src_ref.text}.{name}" -> "{dst_node.name}.{name}"): '
                        f"type mismatch: {src_fields[name]} -> {dst_fields[name]}",
                        declared_on,
                        where,
                    )
                    continue
                edge = InputEdge(src_node.id, name, (), name, dst_fields[name])
                self._occupy(dst_node, edge, src_ref.text, declared_on, where)
        elif src_type in (DkType.ANY, DkType.MAP):
            # any -> object: the value is an object at run time; each field takes the key of its name.
            for name, dst_type in dst_fields.items():
                edge = InputEdge(
                    src_node.id, src_ref.field, (*src_ref.path, name), name, dst_type, header_lookup, spread=True
                )
                self._occupy(dst_node, edge, src_ref.text, declared_on, where)
        else:
            self.report(f"invalid connection {display}: type mismatch: {src_type} -> object", declared_on, where)

    def _occupy(self, dst_node: PlanNode, edge: InputEdge, src_display: str, declared_on: PlanNode, where: str) -> None:
        """Each input accepts one provider; a node-wise input and field inputs exclude each other."""
        key = (dst_node.id, edge.dst_field)
        existing = self.slots.get(key)
        if existing is None and edge.dst_field == SELF:
            existing = next((s for (n, _), s in self.slots.items() if n == dst_node.id), None)
        elif existing is None:
            existing = self.slots.get((dst_node.id, SELF))
        if existing is not None:
            target = dst_node.name if edge.dst_field == SELF else f"{dst_node.name}.{edge.dst_field}"
            if existing.edge == edge:
                message = f'connection ("{src_display}" -> "{target}") is specified on both sides'
            else:
                old_target = (
                    dst_node.name if existing.edge.dst_field == SELF else f"{dst_node.name}.{existing.edge.dst_field}"
                )
                message = (
                    f'invalid connection ("{src_display}" -> "{target}"): conflicts with existing '
                    f'connection ("{existing.src_display}" -> "{old_target}")'
                )
            self.report(message, declared_on, where)
            return
        self.slots[key] = _Slot(src_display, edge)
        dst_node.inputs.append(edge)

    def _source_type(
        self, node: PlanNode, ref: _Ref, display: str, declared_on: PlanNode, where: str
    ) -> DkType | None:
        if node.name in (SERVICE_REQUEST, RESPONSE) and node.index is None:
            self.report(f"invalid connection {display}: {node.name} cannot be read from", declared_on, where)
            return None
        node_type = self.types.get(node.id)
        if node_type is not None and node_type.self_output is None:
            self.report(f"invalid connection {display}: {_a(node.type_name)} node has no outputs", declared_on, where)
            return None
        if ref.field is None:
            if node_type is None:
                return DkType.OBJECT
            return node_type.self_output
        fields = self._output_fields(node)
        if ref.field not in fields:
            self.report(f'Unknown field "{ref.field}" in connection "{ref.text}"', declared_on, where)
            return None
        return fields[ref.field]

    def _target_fields(
        self, node: PlanNode, ref: _Ref, display: str, declared_on: PlanNode, where: str
    ) -> dict[str, DkType] | None:
        node_type = self.types.get(node.id)
        if node_type is None:  # implicit
            inputs = IMPLICIT_NODES[node.name].inputs
            if not inputs:
                self.report(f"invalid connection {display}: {node.name} cannot be written to", declared_on, where)
                return None
            if ref.field is None:
                return {SELF: DkType.OBJECT}
            if ref.field not in inputs:
                self.report(f'Unknown field "{ref.field}" in connection "{ref.text}"', declared_on, where)
                return None
            return {ref.field: inputs[ref.field]}
        if ref.field is None:
            if node_type.self_input is None:
                self.report(f"invalid connection {display}: {_a(node.type_name)} node takes no input", declared_on, where)
                return None
            return {SELF: node_type.self_input}
        if node_type.input_fields is None:
            return {ref.field: DkType.ANY}
        if ref.field not in node_type.input_fields:
            self.report(f'Unknown field "{ref.field}" in connection "{ref.text}"', declared_on, where)
            return None
        return {ref.field: node_type.input_fields[ref.field]}

    def _input_fields(self, node: PlanNode) -> Mapping[str, DkType]:
        node_type = self.types.get(node.id)
        if node_type is None:
            return IMPLICIT_NODES[node.name].inputs
        return node_type.input_fields or {}

    def _output_fields(self, node: PlanNode) -> Mapping[str, DkType]:
        node_type = self.types.get(node.id)
        if node_type is not None:
            return node_type.outputs_of(self.settings[node.id])
        if node.name == VAULT:
            return {name: DkType.STRING for name in self.vault}
        return IMPLICIT_NODES[node.name].outputs

    def _is_static(self, node: PlanNode) -> bool:
        return node.type_name == "static" and node.id in self.types

    def _check_wiring(self, node: PlanNode) -> None:
        if node.id in self.field_errors:
            return
        connected = frozenset(edge.dst_field for edge in node.inputs)
        self.types[node.id].check_wiring(
            self.settings[node.id], connected, lambda f, m: self.report(m, node, f)
        )

    def _resolve_controls(self, node: PlanNode) -> None:
        """A branch's `then`/`else` name user nodes; each listed node waits for the branch."""
        if node.id in self.field_errors:
            return
        node_type = self.types[node.id]
        listed_in: dict[int, str] = {}
        for field_name in node_type.control_fields:
            ids: list[int] = []
            for name in self.settings[node.id].get(field_name) or ():
                target = self.ids.get(name)
                if target is None or self.nodes[target].index is None:
                    self.report(f'Unknown node "{name}" in branch list "{field_name}"', node, field_name)
                elif target == node.id:
                    self.report("a branch cannot list itself", node, field_name)
                elif target in listed_in:
                    self.report(
                        f'node "{name}" is listed in both "{listed_in[target]}" and "{field_name}"', node, field_name
                    )
                else:
                    listed_in[target] = field_name
                    ids.append(target)
            node.controls[field_name] = tuple(ids)

    # -- graph -------------------------------------------------------------------------------
    def _wire_dependencies(self) -> None:
        service_request = self.nodes[self.ids[SERVICE_REQUEST]]
        service_response = self.nodes[self.ids[SERVICE_RESPONSE]]
        # The upstream answers only after the service request was written.
        service_response.providers.add(service_request.id)
        for node in self.nodes:
            for edge in node.inputs:
                node.providers.add(edge.src)
            for listed in node.controls.values():
                for target in listed:
                    self.nodes[target].providers.add(node.id)
            node_type = self.types.get(node.id)
            # A node whose own fields are invalid has untrustworthy settings (a `property` node
            # without `property`, say): its problems are reported already, so ask it nothing more.
            if node_type is not None and node.id not in self.field_errors and node_type.runs_after_proxying(
                self.settings[node.id], frozenset(e.dst_field for e in node.inputs)
            ):
                node.providers.add(service_response.id)
        for node in self.nodes:
            for provider in sorted(node.providers):
                self.nodes[provider].dependents.append(node.id)

    def _check_cycles(self) -> None:
        WHITE, GREY, BLACK = 0, 1, 2
        color = [WHITE] * len(self.nodes)
        reported: set[frozenset[int]] = set()

        def visit(start: int) -> None:
            # Iterative DFS along "depends on" edges; a grey provider closes a cycle.
            stack: list[tuple[int, list[int]]] = [(start, sorted(self.nodes[start].providers))]
            color[start] = GREY
            while stack:
                current, pending = stack[-1]
                if not pending:
                    color[current] = BLACK
                    stack.pop()
                    continue
                provider = pending.pop(0)
                if color[provider] == GREY:
                    path = [n for n, _ in stack]
                    cycle = path[path.index(provider):]
                    self._report_cycle(cycle, reported)
                elif color[provider] == WHITE:
                    color[provider] = GREY
                    stack.append((provider, sorted(self.nodes[provider].providers)))

        for node in self.nodes:
            if node.index is not None and color[node.id] == WHITE:
                visit(node.id)

    def _report_cycle(self, cycle: list[int], reported: set[frozenset[int]]) -> None:
        key = frozenset(cycle)
        if key in reported:
            return
        reported.add(key)
        # cycle[i] depends on cycle[i+1]; start at the first configured node in it.
        users = [i for i, n in enumerate(cycle) if self.nodes[n].index is not None]
        start = min(users, key=lambda i: self.nodes[cycle[i]].index or 0) if users else 0
        node = self.nodes[cycle[start]]
        other = self.nodes[cycle[(start + 1) % len(cycle)]]
        other_label = f"node #{other.index} ({other.name})" if other.index is not None else f"node {other.name}"
        self.report(
            f"invalid dependency (node #{node.index} ({node.name}) -> {other_label}): circular dependency", node
        )

    def _compile(self, node: PlanNode) -> None:
        if node.id in self.field_errors:
            return
        node_type = self.types[node.id]
        spec = NodeSpec(
            index=node.index or 0,
            name=node.name,
            type=node_type.type_name,
            settings=self.settings[node.id],
            connected_inputs=frozenset(e.dst_field for e in node.inputs),
            config=self.config,
            resources=self.resources,
        )
        try:
            node.run = node_type.build(spec)
        except BuildError as e:
            self.report(e.message, node, e.field_name)
        node.is_async = node_type.is_async

    # -- result ------------------------------------------------------------------------------
    def _finish(self, top: dict[str, Any], user: list[PlanNode]) -> Plan:
        service_response = self.ids[SERVICE_RESPONSE]
        after = _reachable(self.nodes, service_response)
        for node in user:
            node.after_proxying = node.id in after
            node.object_output = self.types[node.id].self_output is DkType.OBJECT
        for name in (REQUEST, SERVICE_RESPONSE, VAULT):
            self.nodes[self.ids[name]].object_output = True
        request_fields = self._fields_read(self.ids[REQUEST], IMPLICIT_NODES[REQUEST].outputs)
        response_fields = self._fields_read(service_response, IMPLICIT_NODES[SERVICE_RESPONSE].outputs)
        writes_response = bool(self.nodes[self.ids[RESPONSE]].inputs)
        return Plan(
            nodes=self.nodes,
            debug=bool(top.get("debug")),
            vault=dict(self.vault),
            request_fields=request_fields,
            service_response_fields=response_fields,
            needs_response_phase=writes_response or any(n.after_proxying for n in user),
            initial_pending=[len(n.providers) for n in self.nodes],
            user_nodes=user,
            ids=dict(self.ids),
            resources=self.resources,
        )

    def _fields_read(self, source: int, fields: Mapping[str, DkType]) -> frozenset[str]:
        read: set[str] = set()
        for node in self.nodes:
            for edge in node.inputs:
                if edge.src == source:
                    if edge.src_field is None:
                        return frozenset(fields)
                    read.add(edge.src_field)
        return frozenset(read)


def _a(type_name: str) -> str:
    """`a call`, `an exit`: messages name node types in a sentence."""
    return f"an {type_name}" if type_name.startswith(tuple("aeiou")) else f"a {type_name}"


def _compatible(src: DkType, dst: DkType, src_is_static_object: bool) -> bool:
    """Config-time type compatibility (spec §3.3); `any` and convertible pairs are checked at run time."""
    if dst is DkType.ANY or src is DkType.ANY or src is dst:
        return True
    if dst is DkType.STRING and src in (DkType.NUMBER, DkType.BOOLEAN):
        return True
    if dst is DkType.NUMBER and src is DkType.STRING:
        return True
    if dst is DkType.MAP and src is DkType.OBJECT:
        return src_is_static_object  # a static node's values are a map with keys known in advance
    if dst is DkType.OBJECT and src is DkType.MAP:
        return True
    return False


def _reachable(nodes: list[PlanNode], start: int) -> set[int]:
    seen: set[int] = set()
    todo = [start]
    while todo:
        current = todo.pop()
        for dependent in nodes[current].dependents:
            if dependent not in seen:
                seen.add(dependent)
                todo.append(dependent)
    return seen
