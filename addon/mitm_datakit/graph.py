"""A Plan as a picture: Mermaid or Graphviz DOT text (`datakit graph`).

The picture is drawn from the Plan, not from the config text, so it shows what will run: object
connections expanded into one edge per field, implicit nodes where they are used, and each node in
the phase it runs in (access, before proxying; response, after). Edges carry `source field →
target field`; a node's whole value has no name, so that side is left empty. Nodes that a branch
controls hang off it on dashed `then`/`else` edges; a dependency without data (the upstream answer
a response-phase node waits for) is dotted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from .implicit import RESPONSE, SERVICE_REQUEST, SERVICE_RESPONSE
from .plan import InputEdge, Plan, PlanNode
from .types import SELF


class Phase(Enum):
    ACCESS = "access phase"
    RESPONSE = "response phase"


class EdgeKind(Enum):
    DATA = "data"  # a value flows along it
    CONTROL = "control"  # a branch decides whether the target runs
    ORDER = "order"  # the target only waits for the source (the upstream answer, for instance)
    UPSTREAM = "upstream"  # the proxy sends the service request and gets the service response


# Implicit nodes live where the proxy provides or consumes them.
_IMPLICIT_PHASE = {SERVICE_RESPONSE: Phase.RESPONSE, RESPONSE: Phase.RESPONSE}

# Fill colours per node type; a type not listed here (added later) is drawn in grey.
TYPE_COLORS = {
    "call": "#dbeafe",
    "jq": "#fef3c7",
    "handlebars": "#fef3c7",
    "exit": "#fee2e2",
    "property": "#ede9fe",
    "static": "#f3f4f6",
    "branch": "#dcfce7",
    "cache": "#e0f2fe",
}
DEFAULT_COLOR = "#e5e7eb"
IMPLICIT_COLOR = "#ffffff"


@dataclass(frozen=True)
class GraphNode:
    key: str  # identifier that is valid in both Mermaid and DOT
    name: str
    type_name: str
    implicit: bool
    controls: bool  # it decides which other nodes run (a branch)
    phase: Phase


@dataclass(frozen=True)
class GraphEdge:
    src: str
    dst: str
    label: str
    kind: EdgeKind


@dataclass(frozen=True)
class FlowGraph:
    nodes: list[GraphNode]
    edges: list[GraphEdge]

    def in_phase(self, phase: Phase) -> list[GraphNode]:
        return [node for node in self.nodes if node.phase is phase]


def flow_graph(plan: Plan) -> FlowGraph:
    """Nodes and edges of a Plan; implicit nodes only where an edge uses them."""
    edges = [edge for node in plan.nodes for edge in _edges_into(plan, node)]
    # service_request -> service_response is in every plan: draw it only when both ends are drawn for
    # another reason, or it would add two implicit nodes to every picture.
    others = {key for edge in edges if edge.kind is not EdgeKind.UPSTREAM for key in (edge.src, edge.dst)}
    edges = [e for e in edges if e.kind is not EdgeKind.UPSTREAM or (e.src in others and e.dst in others)]
    used = {key for edge in edges for key in (edge.src, edge.dst)}
    nodes = [_graph_node(node) for node in plan.nodes if node.index is not None or _key(node) in used]
    return FlowGraph(nodes, edges)


def _key(node: PlanNode) -> str:
    return f"n{node.id}"


def _graph_node(node: PlanNode) -> GraphNode:
    implicit = node.index is None
    if implicit:
        phase = _IMPLICIT_PHASE.get(node.name, Phase.ACCESS)
    else:
        phase = Phase.RESPONSE if node.after_proxying else Phase.ACCESS
    return GraphNode(_key(node), node.name, node.type_name, implicit, bool(node.controls), phase)


def _edges_into(plan: Plan, node: PlanNode) -> list[GraphEdge]:
    labels: dict[int, list[str]] = {}
    for edge in node.inputs:
        labels.setdefault(edge.src, []).append(_data_label(edge))
    edges = [
        GraphEdge(_key(plan.nodes[src]), _key(node), ", ".join(dict.fromkeys(parts)), EdgeKind.DATA)
        for src, parts in labels.items()
    ]
    controlled_by = {
        controller.id: field_name
        for controller in plan.nodes
        for field_name, listed in controller.controls.items()
        if node.id in listed
    }
    for provider in sorted(node.providers):
        if provider in labels:
            continue
        source = plan.nodes[provider]
        if provider in controlled_by:
            edges.append(GraphEdge(_key(source), _key(node), controlled_by[provider], EdgeKind.CONTROL))
        elif source.name == SERVICE_REQUEST and source.index is None:
            edges.append(GraphEdge(_key(source), _key(node), "upstream", EdgeKind.UPSTREAM))
        else:
            edges.append(GraphEdge(_key(source), _key(node), "", EdgeKind.ORDER))
    return edges


def _data_label(edge: InputEdge) -> str:
    source = ".".join(part for part in (edge.src_field, *edge.path) if part)
    target = "" if edge.dst_field == SELF else edge.dst_field
    return f"{source} → {target}".strip() if source or target else ""


# -- Mermaid -----------------------------------------------------------------------------------


def to_mermaid(plan: Plan) -> str:
    graph = flow_graph(plan)
    lines = ["flowchart LR"]
    for phase in Phase:
        members = graph.in_phase(phase)
        if not members:
            continue
        lines.append(f'  subgraph {phase.name.lower()}["{phase.value}"]')
        lines += [f"    {_mermaid_node(node)}" for node in members]
        lines.append("  end")
    for edge in graph.edges:
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        arrow = "-->" if edge.kind is EdgeKind.DATA else "-.->"  # anything but data is dotted
        lines.append(f"  {edge.src} {arrow}{label} {edge.dst}")
    lines += _mermaid_styles(graph)
    return "\n".join(lines) + "\n"


def _mermaid_node(node: GraphNode) -> str:
    name = _mermaid_text(node.name)
    if node.implicit:
        return f'{node.key}(["{name}"])'
    label = f"{name}<br/><i>{_mermaid_text(node.type_name)}</i>"
    return f'{node.key}{{"{label}"}}' if node.controls else f'{node.key}["{label}"]'


def _mermaid_text(text: str) -> str:
    # Mermaid labels are HTML: quotes and angle brackets need its entity codes ('#' first, it starts them).
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text


def _mermaid_styles(graph: FlowGraph) -> list[str]:
    lines: list[str] = []
    by_class = _group(graph.nodes, lambda n: "implicit" if n.implicit else _class_name(n.type_name))
    for class_name, members in by_class.items():
        fill = IMPLICIT_COLOR if class_name == "implicit" else _color(members[0].type_name)
        lines.append(f"  classDef {class_name} fill:{fill},stroke:#6b7280")
        lines.append(f"  class {','.join(n.key for n in members)} {class_name}")
    return lines


def _class_name(type_name: str) -> str:
    return "type_" + "".join(c if c.isalnum() else "_" for c in type_name)


# -- Graphviz DOT ------------------------------------------------------------------------------


def to_dot(plan: Plan) -> str:
    graph = flow_graph(plan)
    lines = [
        "digraph datakit {",
        "  rankdir=LR;",
        '  graph [fontname="Helvetica", fontsize=12];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for phase in Phase:
        members = graph.in_phase(phase)
        if not members:
            continue
        lines.append(f"  subgraph cluster_{phase.name.lower()} {{")
        lines.append(f'    label={_dot_string(phase.value)}; style="dashed,rounded"; color="#9ca3af";')
        lines += [f"    {_dot_node(node)}" for node in members]
        lines.append("  }")
    styles = {
        EdgeKind.DATA: "",
        EdgeKind.CONTROL: ", style=dashed",
        EdgeKind.ORDER: ", style=dotted",
        EdgeKind.UPSTREAM: ", style=dotted",
    }
    for edge in graph.edges:
        lines.append(f"  {edge.src} -> {edge.dst} [label={_dot_string(edge.label)}{styles[edge.kind]}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_node(node: GraphNode) -> str:
    if node.implicit:
        return f'{node.key} [label={_dot_string(node.name)}, shape=ellipse, fillcolor="{IMPLICIT_COLOR}"];'
    label = _dot_string(f"{node.name}\n{node.type_name}")
    shape = ", shape=diamond" if node.controls else ""
    return f'{node.key} [label={label}{shape}, fillcolor="{_color(node.type_name)}"];'


def _dot_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


# -- shared ------------------------------------------------------------------------------------


def _color(type_name: str) -> str:
    return TYPE_COLORS.get(type_name, DEFAULT_COLOR)


def _group(nodes: list[GraphNode], key: Callable[[GraphNode], str]) -> dict[str, list[GraphNode]]:
    groups: dict[str, list[GraphNode]] = {}
    for node in nodes:
        groups.setdefault(key(node), []).append(node)
    return groups
