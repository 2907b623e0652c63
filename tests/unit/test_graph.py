"""`datakit graph`: a plan drawn as Mermaid or DOT (structure, not whole strings), and as an image."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from mitm_datakit.cli import main
from mitm_datakit.graph import EdgeKind, Phase, flow_graph, to_dot, to_mermaid
from mitm_datakit.plan import Plan, build_plan

REPO = Path(__file__).resolve().parents[2]
ANIMAL_FACTS = REPO / "configs" / "animal-facts.yaml"

TWO_CALLS_AND_EXIT = """
nodes:
  - {name: CAT, type: call, url: "http://127.0.0.1:1/fact"}
  - {name: DOG, type: call, url: "http://127.0.0.1:2/facts"}
  - name: JOIN
    type: jq
    inputs: {cat: CAT.body, dog: DOG.body}
    jq: "{cat: .cat, dog: .dog}"
  - {name: EXIT, type: exit, inputs: {body: JOIN}}
"""

BOTH_PHASES = """
nodes:
  - name: AUTH
    type: jq
    input: request.headers
    jq: "{Authorization: .token}"
    output: service_request.headers
  - name: WRAP
    type: jq
    inputs: {body: service_response.body}
    jq: "{wrapped: .body}"
    output: response.body
  - name: STATUS
    type: property
    property: kong.service.response.status
"""

BRANCHING = """
nodes:
  - {name: IS_ADMIN, type: jq, input: request.headers, jq: '.role == "admin"'}
  - {name: CHECK, type: branch, input: IS_ADMIN, then: [ALLOW], else: [DENY]}
  - {name: ALLOW, type: exit, status: 200}
  - {name: DENY, type: exit, status: 403}
"""

OBJECT_EXPANSION = """
nodes:
  - {name: API, type: call, url: "http://127.0.0.1:1/", input: request, output: service_request}
"""


def plan_of(text: str) -> Plan:
    return build_plan(yaml.safe_load(text))


def mermaid_subgraphs(text: str) -> dict[str, list[str]]:
    """Subgraph title -> node names declared inside it."""
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if m := re.match(r'\s*subgraph \w+\["(.+)"\]', line):
            current = groups.setdefault(m.group(1), [])
        elif line.strip() == "end":
            current = None
        elif current is not None and (m := re.match(r'\s*n\d+\W+"?([A-Za-z_][\w-]*)', line)):
            current.append(m.group(1))
    return groups


def mermaid_edges(text: str) -> set[tuple[str, str, str, str]]:
    """(source name, arrow, label, target name) of every edge, with node keys resolved to names."""
    names = dict(re.findall(r'^\s*(n\d+)(?:\[|\(\[|\{)"([^"<]+)', text, re.M))
    found = re.findall(r'^\s*(n\d+) (-->|-\.->)(?:\|"([^"]*)"\|)? (n\d+)$', text, re.M)
    return {(names[src], arrow, label, names[dst]) for src, arrow, label, dst in found}


def dot_edges(text: str) -> set[tuple[str, str, str, str]]:
    """(source name, label, target name, style) of every edge."""
    names = dict(re.findall(r'^\s*(n\d+) \[label="([^"\\]+)', text, re.M))
    found = re.findall(r'^\s*(n\d+) -> (n\d+) \[label="((?:[^"\\]|\\.)*)"(?:, style=(\w+))?\];$', text, re.M)
    return {(names[src], label, names[dst], style) for src, dst, label, style in found}


@pytest.mark.parametrize(
    ("config", "phases"),
    [
        pytest.param(TWO_CALLS_AND_EXIT, {"access phase": ["CAT", "DOG", "JOIN", "EXIT"]}, id="access only"),
        pytest.param(
            BOTH_PHASES,
            {
                "access phase": ["request", "service_request", "AUTH"],
                "response phase": ["service_response", "response", "WRAP", "STATUS"],
            },
            id="both phases with implicit nodes",
        ),
        pytest.param(
            BRANCHING, {"access phase": ["request", "IS_ADMIN", "CHECK", "ALLOW", "DENY"]}, id="branch"
        ),
    ],
)
def test_mermaid_puts_each_node_in_the_cluster_of_its_phase(
    config: str, phases: dict[str, list[str]]
) -> None:
    text = to_mermaid(plan_of(config))
    assert text.startswith("flowchart LR\n")
    assert mermaid_subgraphs(text) == phases


@pytest.mark.parametrize(
    ("config", "edges"),
    [
        pytest.param(
            TWO_CALLS_AND_EXIT,
            {
                ("CAT", "-->", "body → cat", "JOIN"),
                ("DOG", "-->", "body → dog", "JOIN"),
                ("JOIN", "-->", "→ body", "EXIT"),
            },
            id="field labels",
        ),
        pytest.param(
            BOTH_PHASES,
            {
                ("request", "-->", "headers →", "AUTH"),
                ("AUTH", "-->", "→ headers", "service_request"),
                ("service_request", "-.->", "upstream", "service_response"),
                ("service_response", "-->", "body → body", "WRAP"),
                ("WRAP", "-->", "→ body", "response"),
                ("service_response", "-.->", "", "STATUS"),
            },
            id="implicit nodes, upstream step and a wait without data",
        ),
        pytest.param(
            BRANCHING,
            {
                ("request", "-->", "headers →", "IS_ADMIN"),
                ("IS_ADMIN", "-->", "", "CHECK"),
                ("CHECK", "-.->", "then", "ALLOW"),
                ("CHECK", "-.->", "else", "DENY"),
            },
            id="branch lists as dashed edges",
        ),
        pytest.param(
            OBJECT_EXPANSION,
            {
                ("request", "-->", "body → body, headers → headers, query → query", "API"),
                ("API", "-->", "body → body, headers → headers", "service_request"),
            },
            id="object connections expanded per field, one edge per pair",
        ),
    ],
)
def test_mermaid_edges_carry_field_names(config: str, edges: set[tuple[str, str, str, str]]) -> None:
    assert mermaid_edges(to_mermaid(plan_of(config))) == edges


def test_mermaid_styles_nodes_by_type_and_shape() -> None:
    text = to_mermaid(plan_of(BRANCHING))
    assert re.search(r'^\s*n\d+\{"CHECK<br/><i>branch</i>"\}$', text, re.M), "a branch is a rhombus"
    assert re.search(r'^\s*n\d+\(\["request"\]\)$', text, re.M), "an implicit node is a stadium"
    assert re.search(r"^\s*classDef type_exit fill:#\w+", text, re.M)
    exit_keys = re.search(r"^\s*class ([\w,]+) type_exit$", text, re.M)
    assert exit_keys is not None and len(exit_keys.group(1).split(",")) == 2


def test_unused_implicit_nodes_are_not_drawn() -> None:
    graph = flow_graph(plan_of(TWO_CALLS_AND_EXIT))
    assert not [node.name for node in graph.nodes if node.implicit]
    assert not graph.in_phase(Phase.RESPONSE)
    assert {edge.kind for edge in graph.edges} == {EdgeKind.DATA}


def test_mermaid_escapes_quotes_and_angle_brackets_in_labels() -> None:
    text = to_mermaid(
        plan_of('nodes:\n  - {name: J, type: jq, inputs: {"a\\"<b>": request.body}, jq: "."}\n')
    )
    assert '→ a#quot;#lt;b#gt;"|' in text


@pytest.mark.parametrize(
    ("config", "clusters", "edges"),
    [
        pytest.param(
            BOTH_PHASES,
            {"cluster_access", "cluster_response"},
            {
                ("service_request", "upstream", "service_response", "dotted"),
                ("service_response", "body → body", "WRAP", ""),
                ("service_response", "", "STATUS", "dotted"),
            },
            id="phases",
        ),
        pytest.param(
            BRANCHING,
            {"cluster_access"},
            {("CHECK", "then", "ALLOW", "dashed"), ("CHECK", "else", "DENY", "dashed")},
            id="branch",
        ),
    ],
)
def test_dot_has_phase_clusters_and_labelled_edges(config: str, clusters: set[str], edges: set) -> None:
    text = to_dot(plan_of(config))
    assert text.startswith("digraph datakit {") and text.rstrip().endswith("}")
    assert set(re.findall(r"subgraph (cluster_\w+) \{", text)) == clusters
    assert edges <= dot_edges(text)


def test_dot_escapes_quotes_and_backslashes() -> None:
    text = to_dot(plan_of('nodes:\n  - {name: J, type: jq, inputs: {"a\\"b\\\\c": request.body}, jq: "."}\n'))
    assert '[label="body → a\\"b\\\\c"];' in text


# -- the command -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "marker"),
    [
        pytest.param([], "flowchart LR", id="mermaid by default"),
        pytest.param(["--format", "mermaid"], "flowchart LR", id="mermaid"),
        pytest.param(["--format", "dot"], "digraph datakit {", id="dot"),
    ],
)
def test_graph_command_prints_the_chosen_format(capsys, args: list[str], marker: str) -> None:
    assert main(["graph", str(ANIMAL_FACTS), *args]) == 0
    assert capsys.readouterr().out.startswith(marker)


@pytest.mark.parametrize(("suffix", "marker"), [(".mmd", "flowchart LR"), (".dot", "digraph datakit {")])
def test_graph_command_writes_text_to_a_file(tmp_path, suffix: str, marker: str) -> None:
    output = tmp_path / f"graph{suffix}"
    fmt = "dot" if suffix == ".dot" else "mermaid"
    assert main(["graph", str(ANIMAL_FACTS), "--format", fmt, "--output", str(output)]) == 0
    assert output.read_text().startswith(marker)


@pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)"
)
@pytest.mark.parametrize(("suffix", "magic"), [(".svg", b"<?xml"), (".png", b"\x89PNG")])
def test_graph_command_renders_an_image_with_graphviz(tmp_path, suffix: str, magic: bytes) -> None:
    output = tmp_path / f"graph{suffix}"
    assert main(["graph", str(ANIMAL_FACTS), "--output", str(output)]) == 0
    assert output.read_bytes().startswith(magic)


def test_graph_command_says_clearly_when_graphviz_is_missing(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` in an empty folder
    assert main(["graph", str(ANIMAL_FACTS), "--output", str(tmp_path / "g.svg")]) == 1
    assert "Graphviz's `dot` command is not installed" in capsys.readouterr().err
    assert not (tmp_path / "g.svg").exists()


def test_graph_command_refuses_an_image_from_mermaid(tmp_path, capsys) -> None:
    assert main(["graph", str(ANIMAL_FACTS), "--format", "mermaid", "--output", str(tmp_path / "g.svg")]) == 1
    assert "drop --format mermaid" in capsys.readouterr().err


def test_graph_command_reports_an_invalid_config_with_status_2(tmp_path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("nodes:\n  - {name: X, type: nope}\n")
    assert main(["graph", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}:2:15: node #1 (X), field 'type': unknown node type: nope" in captured.err
