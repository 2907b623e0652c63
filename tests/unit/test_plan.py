"""Config checks and planning (`plan.py`): spec §2.2/§2.5 validation, §3 connections and types, §6.1, §8.2.

A rejected config is compared with what the user reads: `node #<index> (<name>), field '<field>': <reason>`,
in Kong's words where the spec quotes them. An accepted one is checked for its edges, dependencies and phases.
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from mitm_datakit.config import load_config
from mitm_datakit.errors import ConfigError, ConfigIssue
from mitm_datakit.plan import Plan, build_plan
from mitm_datakit.types import SELF, DkType

from .support import plan_of

URL = "https://example.com/"

# -- helpers ------------------------------------------------------------------------------------


def jq(name: Any, program: Any = ".", **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "jq", "jq": program, **fields}


def call(name: str, url: Any = URL, **fields: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"name": name, "type": "call", **fields}
    if url is not None:
        node["url"] = url
    return node


def prop(name: str, property: Any, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "property", "property": property, **fields}


def static(name: str, values: Any, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "static", "values": values, **fields}


def exit_(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "exit", **fields}


def hbs(name: str, template: Any = "", **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "handlebars", "template": template, **fields}


def cfg(*nodes: Any, **top: Any) -> dict[str, Any]:
    return {"nodes": list(nodes), **top}


def make_plan(config: dict[str, Any] | str) -> Plan:
    """Dicts as they are; YAML text through the real loader (YAML 1.2, as production reads files)."""
    if isinstance(config, str):
        config = load_config(textwrap.dedent(config))
    return plan_of(config)


def issues_of(config: dict[str, Any] | str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as raised:
        make_plan(config)
    return raised.value.issues


def reported(config: dict[str, Any] | str) -> list[str]:
    """Every issue as the user reads it."""
    return [str(issue) for issue in issues_of(config)]


def only_issue(config: dict[str, Any] | str) -> ConfigIssue:
    issues = issues_of(config)
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0]


def where(issue: ConfigIssue) -> tuple[int | None, str | None, str | None]:
    return issue.node_index, issue.node_name, issue.field


def edges(plan: Plan) -> set[str]:
    """Every input edge as `SRC[.field[.key...]] -> DST[.field]` (`$self` ends are written bare)."""
    out = set()
    for node in plan.nodes:
        for edge in node.inputs:
            src = ".".join([plan.nodes[edge.src].name, *filter(None, [edge.src_field]), *edge.path])
            dst = node.name if edge.dst_field == SELF else f"{node.name}.{edge.dst_field}"
            out.add(f"{src} -> {dst}")
    return out


def providers(plan: Plan, name: str) -> set[str]:
    return {plan.nodes[p].name for p in plan.node(name).providers}


def conflict(new: str, old: str) -> str:
    """Kong's wording for a second provider (NG-01, NG-03); `new`/`old` are `"SRC" -> "DST"` pairs."""
    return f"invalid connection ({new}): conflicts with existing connection ({old})"


# -- node names (§2.2, NG-10) -------------------------------------------------------------------

INVALID_NAME = "invalid name: use 1 to 255 letters, digits, '_' or '-', starting with a letter or '_'"


@pytest.mark.parametrize(
    ("node", "name_in_issue", "message"),
    [
        pytest.param({"type": "jq", "jq": "."}, None, "required field missing", id="missing"),
        pytest.param(jq(""), None, INVALID_NAME, id="empty"),
        pytest.param(jq(5), None, INVALID_NAME, id="not-a-string"),
        pytest.param(jq("1ABC"), "1ABC", INVALID_NAME, id="leading-digit"),
        pytest.param(jq("A.B"), "A.B", INVALID_NAME, id="NG-10-dot"),
        pytest.param(jq("A B"), "A B", INVALID_NAME, id="space"),
        pytest.param(jq("A/B"), "A/B", INVALID_NAME, id="slash"),
        pytest.param(jq("-A"), "-A", INVALID_NAME, id="leading-dash"),
        pytest.param(jq("N" * 256), "N" * 256, INVALID_NAME, id="256-chars"),
        pytest.param(jq("request"), "request", '"request" is a reserved node name', id="request"),
        pytest.param(
            jq("service_request"), "service_request", '"service_request" is a reserved node name',
            id="service_request",
        ),
        pytest.param(
            jq("service_response"), "service_response", '"service_response" is a reserved node name',
            id="service_response",
        ),
        pytest.param(jq("response"), "response", '"response" is a reserved node name', id="NG-10-response"),
        pytest.param(jq("vault"), "vault", '"vault" is a reserved node name', id="NG-10-vault"),
    ],
)
def test_invalid_node_name(node, name_in_issue, message):
    issue = only_issue(cfg(node))
    assert where(issue) == (1, name_in_issue, "name")
    assert issue.message == message


def test_unnamed_node_issue_names_no_node():
    assert reported(cfg({"type": "jq", "jq": "."})) == ["node #1, field 'name': required field missing"]


def test_NG_10_duplicate_name():
    assert reported(cfg(jq("A"), jq("B"), jq("A"))) == [
        "node #3 (A), field 'name': Duplicate node name: \"A\""
    ]


def test_each_duplicate_is_reported():
    issues = issues_of(cfg(jq("A"), jq("A"), jq("A")))
    assert [where(i) for i in issues] == [(2, "A", "name"), (3, "A", "name")]


def test_reference_to_a_duplicated_name_adds_no_second_issue():
    assert reported(cfg(jq("A", "1"), jq("A", "2"), jq("B", input="A"))) == [
        "node #2 (A), field 'name': Duplicate node name: \"A\""
    ]


@pytest.mark.parametrize(
    "name",
    ["get-foo", "GET_FOO", "_private", "a", "N" * 255, "sign-jwt", "x1-2_3", "NO"],
    ids=["kebab", "upper-snake", "underscore-first", "one-char", "255-chars", "RF-32-kebab", "mixed", "NO"],
)
def test_valid_node_names(name):
    assert make_plan(cfg(jq(name))).node(name).index == 1


# -- node types and their fields ----------------------------------------------------------------


def test_unknown_type():
    issue = only_issue(cfg({"name": "A", "type": "teleport"}))
    assert where(issue) == (1, "A", "type")
    assert issue.message.startswith("unknown node type: teleport (expected one of: ")
    known = issue.message.removesuffix(")").split("expected one of: ")[1].split(", ")
    assert {"call", "exit", "handlebars", "jq", "property", "static"} <= set(known)
    assert known == sorted(known)


def test_missing_type():
    assert reported(cfg({"name": "A"})) == ["node #1 (A), field 'type': required field missing"]


@pytest.mark.parametrize(
    ("node", "field", "article"),
    [
        pytest.param(call("A", jq="."), "jq", "a call", id="call"),
        pytest.param(call("A", Method="GET"), "Method", "a call", id="call-case-sensitive"),
        pytest.param(jq("A", url=URL), "url", "a jq", id="jq-url"),
        pytest.param(jq("A", template="x"), "template", "a jq", id="jq-template"),
        pytest.param(exit_("A", values={}), "values", "an exit", id="exit-values"),
        pytest.param(exit_("A", url=URL), "url", "an exit", id="exit-url"),
        pytest.param(prop("A", "kong.ctx.shared.x", jq="."), "jq", "a property", id="property-jq"),
        pytest.param(
            prop("A", "kong.ctx.shared.x", status=200), "status", "a property", id="property-status",
        ),
        pytest.param(static("A", {}, property="kong.version"), "property", "a static", id="static"),
        pytest.param(hbs("A", jq="."), "jq", "a handlebars", id="handlebars"),
    ],
)
def test_unknown_field_per_type(node, field, article):
    assert reported(cfg(node)) == [f"node #1 (A), field '{field}': unknown field for {article} node"]


# -- input/inputs and output/outputs (§2.2, NG-04..NG-06) ---------------------------------------

BOTH_INPUTS = 'A node cannot use both "input" and "inputs". Use one or the other.'
BOTH_OUTPUTS = 'A node cannot use both "output" and "outputs". Use one or the other.'


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        pytest.param(jq("A", input="request.body", inputs={"a": "request.query"}), BOTH_INPUTS, id="jq"),
        pytest.param(call("A", input="request", inputs={"body": "request.body"}), BOTH_INPUTS, id="call"),
        pytest.param(exit_("A", input="request", inputs={"body": "request.body"}), BOTH_INPUTS, id="exit"),
        pytest.param(hbs("A", input="request", inputs={"x": "request.body"}), BOTH_INPUTS, id="handlebars"),
    ],
)
def test_input_and_inputs_are_exclusive(node, expected):
    assert reported(cfg(node)) == [f"node #1 (A), field 'inputs': {expected}"]


@pytest.mark.parametrize(
    "node",
    [
        pytest.param(
            static("A", {"body": 1}, output="response", outputs={"body": "response.body"}), id="static",
        ),
        pytest.param(
            call("A", output="service_request", outputs={"body": "service_request.body"}), id="call",
        ),
    ],
)
def test_output_and_outputs_are_exclusive(node):
    assert reported(cfg(node)) == [f"node #1 (A), field 'outputs': {BOTH_OUTPUTS}"]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            cfg(static("A", {"x": 1}, input="request")),
            "node #1 (A), field 'input': a static node does not accept \"input\"",
            id="static-input",
        ),
        pytest.param(
            cfg(static("A", {"x": 1}, inputs={"x": "request.body"})),
            "node #1 (A), field 'inputs': a static node does not accept \"inputs\"",
            id="static-inputs",
        ),
        pytest.param(
            cfg(exit_("A", output="response")),
            "node #1 (A), field 'output': an exit node does not accept \"output\"",
            id="exit-output",
        ),
        pytest.param(
            cfg(exit_("A", outputs={"body": "response.body"})),
            "node #1 (A), field 'outputs': an exit node does not accept \"outputs\"",
            id="exit-outputs",
        ),
        pytest.param(
            cfg(jq("HEADERS", '"this is completely opaque to Datakit"', outputs={"body": "EXIT.body"}),
                exit_("EXIT")),
            "node #1 (HEADERS), field 'outputs': a jq node does not accept \"outputs\"",
            id="NG-04-jq-outputs",
        ),
        pytest.param(
            cfg(prop("STORE_REQUEST_BY_FIELD", "kong.ctx.shared.my_request",
                     inputs={"body": "request.body"})),
            "node #1 (STORE_REQUEST_BY_FIELD), field 'inputs': a property node does not accept \"inputs\"",
            id="NG-05-property-inputs",
        ),
        pytest.param(
            cfg(prop("GET_ROUTE_ID", "kong.router.route", outputs={"id": "response.body"})),
            "node #1 (GET_ROUTE_ID), field 'outputs': a property node does not accept \"outputs\"",
            id="NG-06-property-outputs",
        ),
        pytest.param(
            cfg(hbs("A", "x", outputs={"x": "response.body"})),
            "node #1 (A), field 'outputs': a handlebars node does not accept \"outputs\"",
            id="handlebars-outputs",
        ),
    ],
)
def test_connection_keys_a_type_rejects(config, expected):
    assert reported(config) == [expected]


REFERENCE = "expected a reference such as NODE or NODE.field"
REFERENCE_MAP = "expected a map of field names to references"
INPUT_NAME = "input names must have 1 to 255 characters"


@pytest.mark.parametrize(
    ("node", "field", "message"),
    [
        pytest.param(jq("A", input=5), "input", REFERENCE, id="input-number"),
        pytest.param(jq("A", input="  "), "input", REFERENCE, id="input-blank"),
        pytest.param(jq("A", output=["response.body"]), "output", REFERENCE, id="output-list"),
        pytest.param(jq("A", inputs="request"), "inputs", REFERENCE_MAP, id="inputs-string"),
        pytest.param(
            static("A", {"x": 1}, outputs=["response.body"]), "outputs", REFERENCE_MAP, id="outputs-list",
        ),
        pytest.param(jq("A", inputs={"a": 5}), "inputs.a", REFERENCE, id="inputs-value-number"),
        pytest.param(jq("A", inputs={"": "request.body"}), "inputs.", INPUT_NAME, id="jq-input-name-empty"),
        pytest.param(
            jq("A", inputs={"k" * 256: "request.body"}), "inputs." + "k" * 256, INPUT_NAME,
            id="jq-input-name-256",
        ),
    ],
)
def test_malformed_connections(node, field, message):
    issue = only_issue(cfg(node))
    assert (where(issue), issue.message) == ((1, "A", field), message)


def test_jq_input_name_of_255_chars():
    name = "k" * 255
    assert edges(make_plan(cfg(jq("A", inputs={name: "request.body"})))) == {f"request.body -> A.{name}"}


# -- references (§3.1) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            cfg(jq("A", input="X.y")),
            "node #1 (A), field 'input': Unknown node \"X\" in connection \"X.y\"",
            id="NODE.field",
        ),
        pytest.param(
            cfg(jq("A", output="NOPE")),
            "node #1 (A), field 'output': Unknown node \"NOPE\" in connection \"NOPE\"",
            id="NODE",
        ),
        pytest.param(
            cfg(jq("A", inputs={"k": "GHOST.body"})),
            "node #1 (A), field 'inputs.k': Unknown node \"GHOST\" in connection \"GHOST.body\"",
            id="inputs",
        ),
        pytest.param(
            cfg(jq("A", input="Request.body")),
            "node #1 (A), field 'input': Unknown node \"Request\" in connection \"Request.body\"",
            id="implicit-names-are-case-sensitive",
        ),
        pytest.param(
            cfg(call("A", inputs={"nope": "request.body"})),
            "node #1 (A), field 'inputs.nope': Unknown field \"nope\" in connection \"A.nope\"",
            id="call-input-field",
        ),
        pytest.param(
            cfg(call("A", outputs={"nope": "response.body"})),
            "node #1 (A), field 'outputs.nope': Unknown field \"nope\" in connection \"A.nope\"",
            id="call-output-field",
        ),
        pytest.param(
            cfg(exit_("A", inputs={"status": "request.body"})),
            "node #1 (A), field 'inputs.status': Unknown field \"status\" in connection \"A.status\"",
            id="exit-input-field",
        ),
        pytest.param(
            cfg(jq("A", input="request.nope")),
            "node #1 (A), field 'input': Unknown field \"nope\" in connection \"request.nope\"",
            id="request-field",
        ),
        pytest.param(
            cfg(jq("A", input="service_response.query")),
            "node #1 (A), field 'input': Unknown field \"query\" in connection \"service_response.query\"",
            id="service_response-field",
        ),
        pytest.param(
            cfg(jq("A", output="service_request.nope")),
            "node #1 (A), field 'output': Unknown field \"nope\" in connection \"service_request.nope\"",
            id="service_request-field",
        ),
        pytest.param(
            cfg(jq("A", output="response.status")),
            "node #1 (A), field 'output': Unknown field \"status\" in connection \"response.status\"",
            id="response-field",
        ),
        pytest.param(
            cfg(call("C"), jq("A", input="C.error")),
            "node #2 (A), field 'input': Unknown field \"error\" in connection \"C.error\"",
            id="call-output-read-by-input",
        ),
        pytest.param(
            cfg(jq("A", output="E.nope"), exit_("E")),
            "node #1 (A), field 'output': Unknown field \"nope\" in connection \"E.nope\"",
            id="exit-input-written-by-output",
        ),
        pytest.param(
            cfg(static("S", {"a": 1}, outputs={"b": "response.body"})),
            "node #1 (S), field 'outputs.b': Unknown field \"b\" in connection \"S.b\"",
            id="static-outputs-key",
        ),
        pytest.param(
            cfg(static("S", {"a": 1}), jq("A", input="S.b")),
            "node #2 (A), field 'input': Unknown field \"b\" in connection \"S.b\"",
            id="static-key-read-by-input",
        ),
        pytest.param(
            cfg(jq("A", input="vault.token")),
            "node #1 (A), field 'input': Unknown field \"token\" in connection \"vault.token\"",
            id="vault-without-resources",
        ),
    ],
)
def test_unknown_node_or_field(config, expected):
    assert reported(config) == [expected]


@pytest.mark.parametrize(
    ("node", "field", "message"),
    [
        pytest.param(
            jq("A", input="response"), "input", '("response" -> "A"): response cannot be read from',
            id="read-response",
        ),
        pytest.param(
            jq("A", input="service_request.body"), "input",
            '("service_request.body" -> "A"): service_request cannot be read from',
            id="read-service_request",
        ),
        pytest.param(
            jq("A", output="request"), "output", '("A" -> "request"): request cannot be written to',
            id="write-request",
        ),
        pytest.param(
            jq("A", output="request.body"), "output", '("A" -> "request.body"): request cannot be written to',
            id="write-request-field",
        ),
        pytest.param(
            jq("A", output="service_response.body"), "output",
            '("A" -> "service_response.body"): service_response cannot be written to',
            id="write-service_response",
        ),
        pytest.param(
            jq("A", output="response.body.x"), "output",
            '("A" -> "response.body.x"): a target is NODE or NODE.field',
            id="deep-target",
        ),
    ],
)
def test_wrong_direction_on_implicit_nodes(node, field, message):
    assert reported(cfg(node)) == [f"node #1 (A), field '{field}': invalid connection {message}"]


def test_reading_a_node_without_outputs():
    assert reported(cfg(exit_("E"), jq("A", input="E"))) == [
        "node #2 (A), field 'input': invalid connection (\"E\" -> \"A\"): an exit node has no outputs"
    ]


def test_writing_a_node_without_inputs():
    assert reported(cfg(jq("A", output="S"), static("S", {"x": 1}))) == [
        "node #1 (A), field 'output': invalid connection (\"A\" -> \"S\"): a static node takes no input"
    ]


def test_deep_source_reference_is_accepted():
    """RF-31's `request.headers.authorization`: the key is looked up in the field's value at run time."""
    plan = make_plan(cfg(jq("A", input="request.headers.authorization")))
    (edge,) = plan.node("A").inputs
    assert (edge.src_field, edge.path, edge.dst_field) == ("headers", ("authorization",), SELF)
    assert (edge.dst_type, edge.header_lookup) == (DkType.ANY, True)
    assert plan.request_fields == {"headers"}


def test_deep_reference_into_a_body_is_not_a_header_lookup():
    plan = make_plan(cfg(jq("A", inputs={"id": "request.body.user.id"})))
    (edge,) = plan.node("A").inputs
    assert (edge.path, edge.header_lookup) == (("user", "id"), False)
    assert edges(plan) == {"request.body.user.id -> A.id"}


def test_null_inputs_are_ignored():
    plan = make_plan(cfg(
        jq("A", inputs={"a": None, "b": "request.body"}),
        call("C", inputs={"url": None, "body": None}),
    ))
    assert edges(plan) == {"request.body -> A.b"}
    assert plan.node("C").inputs == []


def test_null_input_and_output_are_absent():
    plan = make_plan(cfg(jq("A", input=None, output=None, inputs={"x": "request.query"})))
    assert edges(plan) == {"request.query -> A.x"}


# -- one provider per input (§3.2 rule 1, NG-01, NG-03) -----------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            cfg(prop("GET_FOO", "kong.ctx.shared.foo", output="FILTER"),
                prop("GET_BAR", "kong.ctx.shared.bar", output="FILTER"),
                jq("FILTER")),
            "node #2 (GET_BAR), field 'output': "
            + conflict('"GET_BAR" -> "FILTER"', '"GET_FOO" -> "FILTER"'),
            id="NG-01",
        ),
        pytest.param(
            cfg(prop("get-foo", "kong.ctx.shared.foo", output="response"),
                prop("get-bar", "kong.ctx.shared.bar", output="response.body")),
            "node #2 (get-bar), field 'output': "
            + conflict('"get-bar" -> "response.body"', '"get-foo" -> "response.body"'),
            id="NG-03",
        ),
        pytest.param(
            cfg(prop("get-bar", "kong.ctx.shared.bar", output="response.body"),
                prop("get-foo", "kong.ctx.shared.foo", output="response")),
            "node #2 (get-foo), field 'output': "
            + conflict('"get-foo" -> "response.body"', '"get-bar" -> "response.body"'),
            id="NG-03-field-first",
        ),
        pytest.param(
            cfg(jq("A", output="EXIT.body"), jq("B", output="EXIT.body"), exit_("EXIT")),
            "node #2 (B), field 'output': " + conflict('"B" -> "EXIT.body"', '"A" -> "EXIT.body"'),
            id="field-twice",
        ),
        pytest.param(
            cfg(jq("A", output="EXIT.body"), jq("B"), exit_("EXIT", inputs={"body": "B"})),
            "node #3 (EXIT), field 'inputs.body': " + conflict('"B" -> "EXIT.body"', '"A" -> "EXIT.body"'),
            id="source-side-and-target-side",
        ),
        pytest.param(
            cfg(jq("A", output="J"), jq("J", input="request.body")),
            "node #2 (J), field 'input': " + conflict('"request.body" -> "J"', '"A" -> "J"'),
            id="self-twice",
        ),
        pytest.param(
            cfg(jq("A", output="J"), jq("J", inputs={"x": "request.body"})),
            "node #2 (J), field 'inputs.x': " + conflict('"request.body" -> "J.x"', '"A" -> "J"'),
            id="self-then-field",
        ),
        pytest.param(
            cfg(jq("J", inputs={"x": "request.body"}), jq("A", output="J")),
            "node #2 (A), field 'output': " + conflict('"A" -> "J"', '"request.body" -> "J.x"'),
            id="field-then-self",
        ),
        pytest.param(
            cfg(call("C", input="request"), jq("H", output="C.headers")),
            "node #2 (H), field 'output': " + conflict('"H" -> "C.headers"', '"request" -> "C.headers"'),
            id="expanded-object-then-field",
        ),
        pytest.param(
            cfg(jq("A", output="service_request"), jq("B", output="service_request.query")),
            "node #2 (B), field 'output': "
            + conflict('"B" -> "service_request.query"', '"A" -> "service_request.query"'),
            id="expanded-any-then-field",
        ),
    ],
)
def test_one_provider_per_input(config, expected):
    assert reported(config) == [expected]


def test_same_edge_on_both_sides():
    config = cfg(prop("GET", "kong.ctx.shared.x", output="FILTER"), jq("FILTER", input="GET"))
    assert reported(config) == [
        "node #2 (FILTER), field 'input': connection (\"GET\" -> \"FILTER\") is specified on both sides"
    ]


def test_RF_05_one_output_many_inputs():
    plan = make_plan(cfg(
        prop("GET_FOO", "kong.ctx.shared.foo"),
        jq("FILTER_FOO", input="GET_FOO"),
        jq("FILTER_FOO_TOO", input="GET_FOO"),
    ))
    assert edges(plan) == {"GET_FOO -> FILTER_FOO", "GET_FOO -> FILTER_FOO_TOO"}
    assert {plan.nodes[d].name for d in plan.node("GET_FOO").dependents} == {"FILTER_FOO", "FILTER_FOO_TOO"}


# -- types (§3.3, NG-02, NG-07) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "where_", "connection", "types"),
    [
        pytest.param(
            cfg(call("invalid", output="service_request.headers")),
            "node #1 (invalid), field 'output'", '"invalid" -> "service_request.headers"', "object -> map",
            id="NG-02",
        ),
        pytest.param(
            cfg(call("C"), exit_("E", inputs={"headers": "C"})),
            "node #2 (E), field 'inputs.headers'", '"C" -> "E.headers"', "object -> map",
            id="object-to-map-field",
        ),
        pytest.param(
            cfg(call("C", outputs={"status": "service_request.headers"})),
            "node #1 (C), field 'outputs.status'", '"C.status" -> "service_request.headers"', "number -> map",
            id="number-to-map",
        ),
        pytest.param(
            cfg(call("C", outputs={"status": "service_request"})),
            "node #1 (C), field 'outputs.status'", '"C.status" -> "service_request"', "number -> object",
            id="number-to-object",
        ),
        pytest.param(
            cfg(call("C", inputs={"url": "request.headers"})),
            "node #1 (C), field 'inputs.url'", '"request.headers" -> "C.url"', "map -> string",
            id="map-to-string",
        ),
        pytest.param(
            cfg(call("C", inputs={"query": "request.port"})),
            "node #1 (C), field 'inputs.query'", '"request.port" -> "C.query"', "number -> map",
            id="request-number-to-map",
        ),
        pytest.param(
            cfg(call("C", inputs={"query": "request.path"})),
            "node #1 (C), field 'inputs.query'", '"request.path" -> "C.query"', "string -> map",
            id="request-string-to-map",
        ),
        pytest.param(
            cfg(static("CALL_INPUTS", {"headers": "oops not valid headers"}),
                call("CALL", method="POST", input="CALL_INPUTS")),
            "node #2 (CALL), field 'input'", '"CALL_INPUTS.headers" -> "CALL.headers"', "string -> map",
            id="NG-07",
        ),
        pytest.param(
            cfg(static("S", {"query": 5}, output="C"), call("C")),
            "node #1 (S), field 'output'", '"S.query" -> "C.query"', "number -> map",
            id="NG-07-on-the-source",
        ),
        pytest.param(
            cfg(static("S", {"h": "x"}, outputs={"h": "C.headers"}), call("C")),
            "node #1 (S), field 'outputs.h'", '"S.h" -> "C.headers"', "string -> map",
            id="static-field-string-to-map",
        ),
        pytest.param(
            cfg(static("S", {"h": True}), exit_("E", inputs={"headers": "S.h"})),
            "node #2 (E), field 'inputs.headers'", '"S.h" -> "E.headers"', "boolean -> map",
            id="static-boolean-to-map",
        ),
        pytest.param(
            cfg(static("S", {"n": 1}, outputs={"n": "C"}), call("C")),
            "node #1 (S), field 'outputs.n'", '"S.n" -> "C"', "number -> object",
            id="static-number-to-object",
        ),
    ],
)
def test_type_mismatch(config, where_, connection, types):
    assert reported(config) == [f"{where_}: invalid connection ({connection}): type mismatch: {types}"]


@pytest.mark.parametrize(
    ("config", "edge", "dst_type"),
    [
        pytest.param(
            cfg(static("S", {"X-A": "1"}), call("C", inputs={"headers": "S"})),
            "S -> C.headers", DkType.MAP, id="static-object-to-map",
        ),
        pytest.param(
            cfg(static("S", {"h": {"X-A": "1"}}), call("C", inputs={"headers": "S.h"})),
            "S.h -> C.headers", DkType.MAP, id="static-map-value-to-map",
        ),
        pytest.param(
            cfg(static("S", {"X-A": "1"}, output="service_request.headers")),
            "S -> service_request.headers", DkType.MAP, id="static-to-service_request.headers",
        ),
        pytest.param(
            cfg(jq("H", '"oops, not an object/map"'), exit_("EXIT", inputs={"headers": "H"})),
            "H -> EXIT.headers", DkType.MAP, id="NG-09-any-to-map",
        ),
        pytest.param(
            cfg(call("C"), call("D", url=None, inputs={"url": "C.status"})),
            "C.status -> D.url", DkType.STRING, id="number-to-string",
        ),
        pytest.param(
            cfg(static("S", {"u": 8080}), call("D", url=None, inputs={"url": "S.u"})),
            "S.u -> D.url", DkType.STRING, id="static-number-to-string",
        ),
        pytest.param(cfg(call("C"), jq("J", input="C")), "C -> J", DkType.ANY, id="object-to-any"),
        pytest.param(cfg(jq("J", input="request")), "request -> J", DkType.ANY, id="request-to-any"),
        pytest.param(
            cfg(jq("J", output="service_request.headers")),
            "J -> service_request.headers", DkType.MAP, id="any-to-map",
        ),
        pytest.param(
            cfg(jq("J", input="request.headers")), "request.headers -> J", DkType.ANY, id="map-to-any",
        ),
        pytest.param(
            cfg(exit_("E", inputs={"headers": "request.query"})),
            "request.query -> E.headers", DkType.MAP, id="map-to-map",
        ),
        pytest.param(
            cfg(prop("P", "kong.ctx.shared.x", input="request")),
            "request -> P", DkType.ANY, id="object-to-property",
        ),
        pytest.param(
            cfg(static("S", {"h": None}), exit_("E", inputs={"headers": "S.h"})),
            "S.h -> E.headers", DkType.MAP, id="static-null-is-any",
        ),
        pytest.param(
            cfg(static("S", {"h": ["a"]}), exit_("E", inputs={"headers": "S.h"})),
            "S.h -> E.headers", DkType.MAP, id="static-array-is-any",
        ),
    ],
)
def test_compatible_types(config, edge, dst_type):
    plan = make_plan(config)
    assert edge in edges(plan)
    dst_node, _, dst_field = edge.split(" -> ")[1].partition(".")
    (match,) = [e for e in plan.node(dst_node).inputs if e.dst_field == (dst_field or SELF)]
    assert match.dst_type is dst_type


# -- object expansion (§3.3, RF-07) --------------------------------------------------------------


def test_RF_07_expands_into_exactly_five_edges():
    plan = make_plan(cfg(
        call("api_call", url="https://example.com/", method="POST", input="request", output="service_request")
    ))
    # call.status and service_request.query stay unconnected.
    assert edges(plan) == {
        "request.body -> api_call.body",
        "request.query -> api_call.query",
        "request.headers -> api_call.headers",
        "api_call.body -> service_request.body",
        "api_call.headers -> service_request.headers",
    }
    assert plan.request_fields == {"body", "headers", "query"}
    assert not plan.needs_response_phase


RF_26_VALUES = {
    "headers": {"X-Foo": "123", "X-Multi": ["first", "second"]},
    "query": {"a": True, "b": 10},
    "body": {"data": "my request body data"},
}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            cfg(call("CALL"), exit_("EXIT", input="CALL")),
            {"CALL.body -> EXIT.body", "CALL.headers -> EXIT.headers"},
            id="RF-22-call-to-exit",
        ),
        pytest.param(
            cfg(exit_("E", input="request")),
            {"request.body -> E.body", "request.headers -> E.headers"},
            id="request-to-exit",
        ),
        pytest.param(
            cfg(jq("J", output="service_request")),
            {"J.body -> service_request.body", "J.headers -> service_request.headers",
             "J.query -> service_request.query"},
            id="any-to-service_request",
        ),
        pytest.param(
            cfg(exit_("E", input="service_response")),
            {"service_response.body -> E.body", "service_response.headers -> E.headers"},
            id="service_response-to-exit",
        ),
        pytest.param(
            cfg(static("CALL_INPUTS", RF_26_VALUES), call("CALL", method="POST", input="CALL_INPUTS")),
            {"CALL_INPUTS.headers -> CALL.headers", "CALL_INPUTS.query -> CALL.query",
             "CALL_INPUTS.body -> CALL.body"},
            id="RF-26-static-to-call",
        ),
        pytest.param(
            cfg(static("S", {"body": "x", "other": 1}, output="response")),
            {"S.body -> response.body"},
            id="static-common-fields-only",
        ),
    ],
)
def test_node_wise_connection_into_fixed_fields(config, expected):
    assert edges(make_plan(config)) == expected


def test_any_to_object_edges_are_spread():
    plan = make_plan(cfg(jq("J", output="E"), exit_("E")))
    assert {(e.path, e.spread) for e in plan.node("E").inputs} == {(("body",), True), (("headers",), True)}


def test_object_to_object_edges_are_not_spread():
    plan = make_plan(cfg(call("C"), exit_("E", input="C")))
    assert {(e.src_field, e.path, e.spread) for e in plan.node("E").inputs} == {
        ("body", (), False), ("headers", (), False)
    }


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            cfg(static("A", {"foo": 1}, output="CALL"), call("CALL")),
            "node #1 (A), field 'output': invalid connection (\"A\" -> \"CALL\"): "
            "the two nodes have no field in common",
            id="declared-on-source",
        ),
        pytest.param(
            cfg(static("A", {"status": 1}), exit_("E", input="A")),
            "node #2 (E), field 'input': invalid connection (\"A\" -> \"E\"): "
            "the two nodes have no field in common",
            id="declared-on-target",
        ),
    ],
)
def test_object_to_object_without_common_field(config, expected):
    assert reported(config) == [expected]


def test_object_to_object_on_both_sides_names_each_expanded_edge():
    assert reported(cfg(call("C", output="E"), exit_("E", input="C"))) == [
        "node #2 (E), field 'input': connection (\"C\" -> \"E.body\") is specified on both sides",
        "node #2 (E), field 'input': connection (\"C\" -> \"E.headers\") is specified on both sides",
    ]


# -- static values checked against typed inputs (NG-07) -----------------------------------------


@pytest.mark.parametrize(
    ("values", "accepted"),
    [
        pytest.param({"headers": {"X-A": "1"}}, True, id="headers-map"),
        pytest.param({"headers": {"X-A": None}}, True, id="headers-null-value"),
        pytest.param({"body": "any text", "query": {"a": 1}}, True, id="body-and-query"),
        pytest.param({"url": "https://example.com/x"}, True, id="url-string"),
        pytest.param({"headers": "oops not valid headers"}, False, id="headers-string"),
        pytest.param({"headers": 5}, False, id="headers-number"),
        pytest.param({"query": False}, False, id="query-boolean"),
    ],
)
def test_static_values_into_call(values, accepted):
    config = cfg(static("S", values), call("C", input="S"))
    if accepted:
        assert providers(make_plan(config), "C") == {"S"}
    else:
        assert "type mismatch" in only_issue(config).message


# -- cycles (§3.2 rule 3, §6.1) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "node", "other"),
    [
        pytest.param(cfg(jq("A", input="B"), jq("B", input="A")), "#1 (A)", "node #2 (B)", id="two"),
        pytest.param(
            cfg(jq("A", input="B"), jq("B", input="C"), jq("C", input="A")), "#1 (A)", "node #2 (B)",
            id="three",
        ),
        pytest.param(
            cfg(jq("C", input="A"), jq("A", input="B"), jq("B", input="C")), "#1 (C)", "node #2 (A)",
            id="three-declared-out-of-order",
        ),
        pytest.param(
            cfg(jq("A", output="B"), jq("B", output="A")), "#1 (A)", "node #2 (B)",
            id="written-on-sources",
        ),
        pytest.param(
            cfg(jq("A", input="service_response.body", output="service_request.body")),
            "#1 (A)", "node service_response",
            id="reads-response-writes-request",
        ),
        pytest.param(
            cfg(call("CALL", method="POST", inputs={"body": "service_response.body"},
                     outputs={"headers": "service_request.headers"})),
            "#1 (CALL)", "node service_response",
            id="NG-08-wording",
        ),
        pytest.param(
            cfg(jq("J", input="service_response.body"),
                call("C", inputs={"body": "J"}, outputs={"body": "service_request.body"})),
            "#1 (J)", "node service_response",
            id="transitive-through-a-call",
        ),
        pytest.param(
            cfg(prop("S", "kong.service.response.status", output="service_request.body")),
            "#1 (S)", "node service_response",
            id="property-readable-only-after-proxying",
        ),
    ],
)
def test_cycles(config, node, other):
    issue = only_issue(config)
    assert issue.field is None
    assert str(issue) == f"node {node}: invalid dependency (node {node} -> {other}): circular dependency"


def test_each_cycle_is_reported_once():
    issues = issues_of(cfg(jq("A", input="B"), jq("B", input="A"), jq("C", input="D"), jq("D", input="C")))
    assert [i.message for i in issues] == [
        "invalid dependency (node #1 (A) -> node #2 (B)): circular dependency",
        "invalid dependency (node #3 (C) -> node #4 (D)): circular dependency",
    ]


SELF_LOOP = "a node cannot connect to itself"


@pytest.mark.parametrize(
    ("node", "field", "connection"),
    [
        pytest.param(jq("A", input="A"), "input", '"A" -> "A"', id="input"),
        pytest.param(jq("A", output="A"), "output", '"A" -> "A"', id="output"),
        pytest.param(
            call("A", outputs={"body": "A.body"}), "outputs.body", '"A.body" -> "A.body"', id="call-field",
        ),
        pytest.param(jq("A", inputs={"x": "A"}), "inputs.x", '"A" -> "A.x"', id="jq-field"),
    ],
)
def test_self_connection(node, field, connection):
    assert reported(cfg(node)) == [
        f"node #1 (A), field '{field}': invalid connection ({connection}): {SELF_LOOP}"
    ]


# -- field ranges and enums (§5) ----------------------------------------------------------------

NOT_HTTP = "(expected an absolute http or https URL)"
CONTENT_TYPES = "expected one of: application/json, application/octet-stream, text/plain"


@pytest.mark.parametrize(
    ("node", "field", "message"),
    [
        pytest.param(call("A", method="get"), "method", "invalid value: get", id="call-method-lowercase"),
        pytest.param(call("A", method="G3T"), "method", "invalid value: G3T", id="call-method-digit"),
        pytest.param(call("A", method=""), "method", "length must be at least 1", id="call-method-empty"),
        pytest.param(call("A", method="X" * 33), "method", "length must be at most 32", id="call-method-33"),
        pytest.param(call("A", method=5), "method", "expected a string", id="call-method-number"),
        pytest.param(
            call("A", timeout=-1), "timeout", "value must be at least 0", id="call-timeout-negative",
        ),
        pytest.param(
            call("A", timeout=2147483647), "timeout", "value must be at most 2147483646",
            id="call-timeout-big",
        ),
        pytest.param(call("A", timeout="10"), "timeout", "expected an integer", id="call-timeout-string"),
        pytest.param(call("A", timeout=True), "timeout", "expected an integer", id="call-timeout-boolean"),
        pytest.param(call("A", timeout=1.5), "timeout", "expected an integer", id="call-timeout-float"),
        pytest.param(
            call("A", url="ftp://example.com/"), "url", f"invalid URL: 'ftp://example.com/' {NOT_HTTP}",
            id="call-url-ftp",
        ),
        pytest.param(
            call("A", url="example.com/path"), "url", f"invalid URL: 'example.com/path' {NOT_HTTP}",
            id="call-url-relative",
        ),
        pytest.param(
            call("A", url="https://example.com:99999/"), "url",
            "invalid port in URL: 'https://example.com:99999/'", id="call-url-port",
        ),
        pytest.param(call("A", url=5), "url", "expected a string", id="call-url-number"),
        pytest.param(call("A", ssl_verify="no"), "ssl_verify", "expected a boolean", id="call-ssl_verify"),
        pytest.param(call("A", ssl_server_name=5), "ssl_server_name", "expected a string", id="call-sni"),
        pytest.param(
            call("A", url=None), "url", "required field missing (or connect the `url` input)",
            id="call-url-missing",
        ),
        pytest.param(exit_("A", status=199), "status", "value must be at least 200", id="exit-status-199"),
        pytest.param(exit_("A", status=100), "status", "value must be at least 200", id="exit-status-100"),
        pytest.param(exit_("A", status=600), "status", "value must be at most 599", id="exit-status-600"),
        pytest.param(exit_("A", status="200"), "status", "expected an integer", id="exit-status-string"),
        pytest.param(
            exit_("A", warn_headers_sent="yes"), "warn_headers_sent", "expected a boolean",
            id="exit-warn_headers_sent",
        ),
        pytest.param(jq("A", ""), "jq", "length must be at least 1", id="jq-empty"),
        pytest.param(jq("A", "." * 10241), "jq", "length must be at most 10240", id="jq-10241"),
        pytest.param(jq("A", 5), "jq", "expected a string", id="jq-number"),
        pytest.param({"name": "A", "type": "jq"}, "jq", "required field missing", id="jq-missing"),
        pytest.param(
            {"name": "A", "type": "property"}, "property", "required field missing", id="property-missing",
        ),
        pytest.param(prop("A", ""), "property", "length must be at least 1", id="property-empty"),
        pytest.param(
            prop("A", "kong.ctx.shared." + "x" * 240), "property", "length must be at most 255",
            id="property-256",
        ),
        pytest.param(prop("A", 5), "property", "expected a string", id="property-number"),
        pytest.param(
            prop("A", "kong.nope"), "property", "unknown property: kong.nope", id="property-unknown",
        ),
        pytest.param(
            prop("A", "kong.ctx.shared."), "property", "unknown property: kong.ctx.shared.",
            id="property-prefix-without-key",
        ),
        pytest.param(
            prop("A", "Kong.version"), "property", "unknown property: Kong.version", id="property-case",
        ),
        pytest.param(
            prop("A", "kong.ctx.shared.x", content_type="text/html"), "content_type", CONTENT_TYPES,
            id="property-content_type",
        ),
        pytest.param(
            prop("A", "kong.ctx.shared.x", non_nil="yes"), "non_nil", "expected a boolean",
            id="property-non_nil",
        ),
        pytest.param(
            {"name": "A", "type": "static"}, "values", "required field missing", id="static-missing",
        ),
        pytest.param(static("A", [1, 2]), "values", "expected a map", id="static-list"),
        pytest.param(static("A", "text"), "values", "expected a map", id="static-string"),
        pytest.param(static("A", {1: "one"}), "values", "keys must be strings", id="static-int-key"),
        pytest.param(hbs("A", 5), "template", "expected a string", id="handlebars-template-number"),
        pytest.param(
            hbs("A", content_type=5), "content_type", "expected a string", id="handlebars-content_type",
        ),
    ],
)
def test_field_rules(node, field, message):
    assert reported(cfg(node)) == [f"node #1 (A), field '{field}': {message}"]


@pytest.mark.parametrize(
    "node",
    [
        pytest.param(call("A", method="PATCH", timeout=0), id="call-patch-no-timeout"),
        pytest.param(
            call("A", method="CUSTOMVERB", timeout=2147483646, ssl_verify=False, ssl_server_name="api.test"),
            id="call-max-timeout",
        ),
        pytest.param(call("A", url="http://127.0.0.1:8080/x?y=1"), id="call-http-port"),
        pytest.param(exit_("A", status=200), id="exit-200"),
        pytest.param(exit_("A", status=599, warn_headers_sent=False), id="exit-599"),
        pytest.param(jq("A", '"' + "a" * 10238 + '"'), id="jq-10240"),
        pytest.param(
            prop("A", "kong.ctx.shared.x", content_type="application/json", non_nil=True), id="property-json",
        ),
        pytest.param(
            prop("A", "kong.ctx.plugin.x", content_type="application/octet-stream"), id="property-octet",
        ),
        pytest.param(
            prop("A", "kong.configuration.log_level", content_type="text/plain"), id="property-text",
        ),
        pytest.param(static("A", {}), id="static-empty"),
        pytest.param(static("A", {"null": None, "list": [1], "nested": {"a": {"b": 1}}}), id="static-shapes"),
        pytest.param(hbs("A", "Hello {{name}}", content_type="application/json"), id="handlebars"),
    ],
)
def test_field_values_accepted(node):
    assert make_plan(cfg(node)).node("A").run is not None


def test_jq_syntax_error_is_a_config_error():
    issue = only_issue(cfg(jq("FILTER", input="request.body"), jq("A", ".foo | (")))
    assert where(issue) == (2, "A", "jq")
    assert issue.message.startswith("invalid jq program: syntax error")


def test_jq_syntax_error_names_the_position():
    assert "line 1, column" in only_issue(cfg(jq("A", "(("))).message


def test_handlebars_template_error_is_a_config_error():
    issue = only_issue(cfg(hbs("T", "{{> }}")))
    assert where(issue) == (1, "T", "template")
    assert issue.message.startswith("invalid template: ")


def test_RF_13_call_url_may_come_from_the_url_input():
    plan = make_plan(cfg(call("DYNAMIC_URL", url=None, inputs={"url": "request.body"})))
    assert edges(plan) == {"request.body -> DYNAMIC_URL.url"}
    assert plan.request_fields == {"body"}


def test_call_without_url_and_a_null_url_input_is_rejected():
    assert where(only_issue(cfg(call("C", url=None, inputs={"url": None})))) == (1, "C", "url")


# -- property direction (§5.4, §2.5) -------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "kong.service.target",
        "kong.service.upstream",
        "kong.service.request.scheme",
        "kong.service.request_scheme",
        "kong.response.status",
    ],
)
def test_get_of_a_write_only_property(name):
    assert reported(cfg(prop("A", name))) == [
        f"node #1 (A), field 'property': property {name} is write-only and cannot be read "
        "(connect an input to set it)"
    ]


@pytest.mark.parametrize(
    "name",
    [
        "kong.client.ip",
        "kong.router.route",
        "kong.version",
        "kong.configuration.log_level",
        "kong.service.response.status",
        "kong.client.consumer_groups",
    ],
)
def test_set_of_a_read_only_property(name):
    assert reported(cfg(prop("A", name, input="request.body"))) == [
        f"node #1 (A), field 'input': property {name} is read-only and cannot be set "
        "(remove the node's input)"
    ]


@pytest.mark.parametrize(
    ("name", "with_input"),
    [
        pytest.param("kong.service.target", True, id="target-set"),
        pytest.param("kong.service.request_scheme", True, id="old-scheme-alias-set"),
        pytest.param("kong.service.request.scheme", True, id="scheme-set"),
        pytest.param("kong.client.consumer", True, id="consumer-set"),
        pytest.param("kong.client.consumer", False, id="consumer-get"),
        pytest.param("kong.ctx.shared.my_property", True, id="ctx-shared-set"),
        pytest.param("kong.ctx.plugin.x", False, id="ctx-plugin-get"),
        pytest.param("kong.client.get_identity_realm_source", False, id="old-realm-alias-get"),
        pytest.param("kong.client.principal.id", False, id="principal-key-get"),
        pytest.param("kong.node.memory_stats", False, id="memory-stats-get"),
    ],
)
def test_property_directions_accepted(name, with_input):
    plan = make_plan(cfg(prop("A", name, input="request.body") if with_input else prop("A", name)))
    assert bool(plan.node("A").inputs) is with_input


# -- vault and resources (§2.3, §2.4) -----------------------------------------------------------

VAULT_MAP = "expected a map of 1 to 64 secret references"
VAULT_NAME = "invalid secret name (letters, digits, _ and -; not starting with a digit)"
VAULT_REF = "expected a vault reference such as {vault://env/MY_SECRET}"


@pytest.mark.parametrize(
    ("resources", "field", "message"),
    [
        pytest.param({"vault": {}}, "resources.vault", VAULT_MAP, id="vault-empty"),
        pytest.param({"vault": ["{vault://env/x}"]}, "resources.vault", VAULT_MAP, id="vault-list"),
        pytest.param(
            {"vault": {f"s{i}": "{vault://env/x}" for i in range(65)}}, "resources.vault", VAULT_MAP,
            id="vault-65",
        ),
        pytest.param(
            {"vault": {"1st": "{vault://env/x}"}}, "resources.vault.1st", VAULT_NAME, id="name-digit",
        ),
        pytest.param({"vault": {"a.b": "{vault://env/x}"}}, "resources.vault.a.b", VAULT_NAME, id="name-dot"),
        pytest.param({"vault": {"s": "plain-secret"}}, "resources.vault.s", VAULT_REF, id="not-a-reference"),
        pytest.param({"vault": {"s": "{vault://env}"}}, "resources.vault.s", VAULT_REF, id="no-path"),
        pytest.param({"vault": {"s": 5}}, "resources.vault.s", VAULT_REF, id="number"),
        pytest.param(
            {"cache": {"strategy": "disk"}}, "resources.cache.strategy", "expected one of: memory, redis",
            id="cache-strategy",
        ),
        pytest.param(
            {"cache": {"strategy": "memory", "ttl": 5}}, "resources.cache.ttl", "unknown field",
            id="cache-unknown-field",
        ),
        pytest.param({"cache": "memory"}, "resources.cache", "expected a map", id="cache-not-a-map"),
        pytest.param({"secrets": {}}, "resources.secrets", "unknown field", id="unknown-resource"),
    ],
)
def test_resource_rules(resources, field, message):
    assert reported(cfg(jq("A"), resources=resources)) == [f"field '{field}': {message}"]


def test_RF_30_vault_secrets_are_string_fields():
    plan = make_plan(cfg(
        jq("JQ", inputs={"secret1": "vault.secret1", "secret2": "vault.secret2"}),
        resources={"vault": {"secret1": "{vault://env/my-secret1}", "secret2": " {vault://aws/my-secret2} "}},
    ))
    assert plan.vault == {"secret1": "{vault://env/my-secret1}", "secret2": "{vault://aws/my-secret2}"}
    assert edges(plan) == {"vault.secret1 -> JQ.secret1", "vault.secret2 -> JQ.secret2"}


def test_vault_cannot_be_written_to():
    assert reported(cfg(jq("A", output="vault.s"), resources={"vault": {"s": "{vault://env/s}"}})) == [
        "node #1 (A), field 'output': invalid connection (\"A\" -> \"vault.s\"): vault cannot be written to"
    ]


def test_invalid_secret_is_not_a_field():
    assert reported(cfg(jq("A", input="vault.s"), resources={"vault": {"s": "nope"}})) == [
        f"field 'resources.vault.s': {VAULT_REF}",
        "node #1 (A), field 'input': Unknown field \"s\" in connection \"vault.s\"",
    ]


# -- top level (§2.1) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        pytest.param(cfg(jq("A"), plugins=[]), "plugins", "unknown field", id="unknown-key"),
        pytest.param(cfg(jq("A"), Debug=True), "Debug", "unknown field", id="keys-are-case-sensitive"),
        pytest.param({}, "nodes", "required field missing", id="no-nodes"),
        pytest.param({"nodes": None}, "nodes", "required field missing", id="null-nodes"),
        pytest.param(cfg(), "nodes", "length must be between 1 and 64", id="zero-nodes"),
        pytest.param(
            cfg(*[jq(f"N{i}") for i in range(65)]), "nodes", "length must be between 1 and 64", id="65-nodes",
        ),
        pytest.param(
            {"nodes": {"name": "A", "type": "jq", "jq": "."}}, "nodes", "expected an array of nodes",
            id="nodes-not-a-list",
        ),
        pytest.param(cfg(jq("A"), debug="yes"), "debug", "expected a boolean", id="debug"),
        pytest.param(
            cfg(jq("A"), ca_certificates="/etc/ca.pem"), "ca_certificates", "expected an array", id="ca",
        ),
        pytest.param(
            cfg(jq("A"), ca_certificates=[1]), "ca_certificates", "expected an array of strings",
            id="ca-items",
        ),
        pytest.param(cfg(jq("A"), resources=[]), "resources", "expected a map", id="resources-list"),
    ],
)
def test_top_level_rules(config, field, message):
    assert reported(config) == [f"field '{field}': {message}"]


def test_64_nodes_are_accepted():
    plan = make_plan(cfg(*[jq(f"N{i}") for i in range(64)], debug=True, ca_certificates=[]))
    assert plan.debug is True
    assert [n.index for n in plan.user_nodes] == list(range(1, 65))


def test_a_node_that_is_not_a_map():
    issue = only_issue(cfg(jq("A"), "B"))
    assert (where(issue), str(issue)) == ((2, None, None), "node #2: expected a map")


@pytest.mark.parametrize("config", [[], "nodes: []", None, 5], ids=["list", "string", "none", "number"])
def test_config_that_is_not_a_map(config):
    with pytest.raises(ConfigError) as raised:
        build_plan(config)
    assert [str(i) for i in raised.value.issues] == ["expected a map at the top level"]


# -- every problem of a config is reported ------------------------------------------------------


def test_three_independent_problems_give_three_issues():
    issues = issues_of(cfg(jq("A", "(("), exit_("B", status=700), call("C", input="GHOST")))
    assert [where(i) for i in issues] == [(1, "A", "jq"), (2, "B", "status"), (3, "C", "input")]
    assert [str(i) for i in issues[1:]] == [
        "node #2 (B), field 'status': value must be at most 599",
        "node #3 (C), field 'input': Unknown node \"GHOST\" in connection \"GHOST\"",
    ]


def test_issues_are_in_node_order_after_top_level_ones():
    config = cfg(jq("B", input="A"), jq("A", input="B"), prop("P", "kong.nope"), debug=1, extra=True)
    issues = issues_of(config)
    assert [str(i) for i in issues] == [
        "field 'debug': expected a boolean",
        "field 'extra': unknown field",
        "node #1 (B): invalid dependency (node #1 (B) -> node #2 (A)): circular dependency",
        "node #3 (P), field 'property': unknown property: kong.nope",
    ]


def test_error_text_has_one_line_per_issue():
    with pytest.raises(ConfigError) as raised:
        make_plan(cfg(jq("response"), jq("A.B")))
    assert str(raised.value).splitlines() == [
        "node #1 (response), field 'name': \"response\" is a reserved node name",
        f"node #2 (A.B), field 'name': {INVALID_NAME}",
    ]


def test_one_node_with_several_problems():
    issues = issues_of(cfg(call("A", method="get", timeout=-5, bogus=1)))
    assert sorted(i.field or "" for i in issues) == ["bogus", "method", "timeout"]
    assert {i.node_name for i in issues} == {"A"}


def test_connections_of_a_node_with_invalid_fields_are_not_type_checked_too():
    # The exit's status is wrong; its edges are not reported again as type errors on top.
    issue = only_issue(cfg(call("C"), exit_("E", status=1, inputs={"headers": "C"})))
    assert where(issue) == (2, "E", "status")


def test_property_without_a_name_is_reported_not_a_crash():
    """Regression: planning asked a field-invalid property node for its property (AttributeError)."""
    assert reported(cfg({"name": "P", "type": "property", "input": "request.body"})) == [
        "node #1 (P), field 'property': required field missing"
    ]


# -- NG-08, NG-09: accepted here ----------------------------------------------------------------


def test_NG_08_call_reading_service_response_runs_after_proxying():
    plan = make_plan(cfg(call("CALL", method="POST", inputs={"body": "service_response.body"})))
    assert plan.node("CALL").after_proxying is True
    assert plan.needs_response_phase is True
    assert plan.service_response_fields == {"body"}
    assert providers(plan, "CALL") == {"service_response"}


def test_NG_09_any_into_exit_headers_is_accepted_at_config_time():
    plan = make_plan(cfg(
        jq("HEADERS", '"oops, not an object/map"'),
        exit_("EXIT", inputs={"headers": "HEADERS"}),
    ))
    assert edges(plan) == {"HEADERS -> EXIT.headers"}
    assert plan.node("EXIT").after_proxying is False


# -- positive reference cases (§8.2) ------------------------------------------------------------


def test_RF_01_and_RF_02_plan_identically():
    ctx = "kong.ctx.shared.my_property"
    rf01 = make_plan(cfg(prop("GET_PROPERTY", ctx), jq("FILTER", input="GET_PROPERTY")))
    rf02 = make_plan(cfg(prop("GET_PROPERTY", ctx, output="FILTER"), jq("FILTER")))
    assert edges(rf01) == edges(rf02) == {"GET_PROPERTY -> FILTER"}
    assert rf01.node("FILTER").inputs == rf02.node("FILTER").inputs
    assert providers(rf01, "FILTER") == providers(rf02, "FILTER") == {"GET_PROPERTY"}


def test_RF_03_and_RF_04_plan_identically():
    api = "https://example.com/my-json-api"
    rf03 = make_plan(cfg(
        call("API", url=api), jq("FILTER_BODY", input="API.body"), jq("FILTER_HEADERS", input="API.headers")
    ))
    rf04 = make_plan(cfg(
        call("API", url=api, outputs={"body": "FILTER_BODY", "headers": "FILTER_HEADERS"}),
        jq("FILTER_BODY"),
        jq("FILTER_HEADERS"),
    ))
    assert edges(rf03) == edges(rf04) == {"API.body -> FILTER_BODY", "API.headers -> FILTER_HEADERS"}
    for name in ("FILTER_BODY", "FILTER_HEADERS"):
        assert rf03.node(name).inputs == rf04.node(name).inputs


@pytest.mark.parametrize(
    "order",
    [("GET_FOO", "GET_BAR", "COMBINE"), ("GET_FOO", "COMBINE", "GET_BAR"), ("COMBINE", "GET_BAR", "GET_FOO")],
    ids=["combine-last", "combine-between", "combine-first"],
)
def test_RF_06_declaration_order_is_irrelevant(order):
    nodes = {
        "GET_FOO": prop("GET_FOO", "kong.ctx.shared.foo"),
        "GET_BAR": prop("GET_BAR", "kong.ctx.shared.bar"),
        "COMBINE": jq("COMBINE", ".foo * .bar", inputs={"foo": "GET_FOO", "bar": "GET_BAR"}),
    }
    plan = make_plan(cfg(*(nodes[n] for n in order)))
    assert edges(plan) == {"GET_FOO -> COMBINE.foo", "GET_BAR -> COMBINE.bar"}
    assert providers(plan, "COMBINE") == {"GET_FOO", "GET_BAR"}
    assert [n.name for n in plan.user_nodes] == list(order)


def test_RF_08_whole_request_into_jq():
    plan = make_plan(cfg(jq("filter", input="request")))
    assert edges(plan) == {"request -> filter"}
    assert plan.request_fields == {
        "body", "headers", "query", "path", "raw_path", "port", "method", "scheme", "version"
    }


def test_RF_09_plain_call():
    plan = make_plan(cfg(call("CALL", url="https://example.com/foo")))
    node = plan.node("CALL")
    assert (node.inputs, node.providers, node.is_async, node.after_proxying) == ([], set(), True, False)
    assert plan.request_fields == frozenset()
    assert not plan.needs_response_phase


def test_RF_10_static_body():
    plan = make_plan(cfg(
        call("POST", url="https://example.com/create-entity", method="POST", inputs={"body": "ENTITY"}),
        static("ENTITY", {"id": 123, "name": "Datakit"}),
    ))
    assert edges(plan) == {"ENTITY -> POST.body"}
    assert providers(plan, "POST") == {"ENTITY"}


def test_RF_12_join_waits_for_both_calls():
    plan = make_plan(cfg(
        call("CALL_FOO", url="https://example.com/foo"),
        call("CALL_BAR", url="https://example.com/bar"),
        jq("JOIN", inputs={"foo": "CALL_FOO.body", "bar": "CALL_BAR.body"}),
    ))
    assert providers(plan, "JOIN") == {"CALL_FOO", "CALL_BAR"}
    assert plan.node("CALL_FOO").providers == plan.node("CALL_BAR").providers == set()
    assert plan.initial_pending[plan.ids["JOIN"]] == 2


# The spec's table abbreviates RF-19/26/29 calls; Kong's reference page gives each a `url`.
RF_CONFIGS: dict[str, str] = {
    "RF-14": """
        nodes:
          - {name: SERVICE, type: property, property: kong.router.service}
          - {name: IP, type: property, property: kong.client.ip}
          - {name: FILTER_SERVICE, type: jq, input: SERVICE, jq: ". | type"}
          - {name: FILTER_IP, type: jq, input: IP, jq: ". | type"}
    """,
    "RF-15": """
        nodes:
          - {name: SERVICE, type: property, property: kong.router.service}
          - {name: IP, type: property, property: kong.client.ip}
          - name: FILTER_SERVICE_AND_IP
            type: jq
            inputs: {service: SERVICE, ip: IP}
            jq: |
              {
                "$self": (. | type),
                "service": (.service | type),
                "ip": (.ip | type),
              }
    """,
    "RF-16": """
        nodes:
          - {name: STRING, type: jq, jq: '"my string"'}
          - {name: NUMBER, type: jq, jq: "54321"}
          - {name: BOOLEAN, type: jq, jq: "true"}
          - {name: OBJECT, type: jq, jq: "{a: 1, b: 2}"}
    """,
    "RF-17": """
        nodes:
          - name: ADD_HEADERS
            type: jq
            input: request.headers
            output: service_request.headers
            jq: '{"X-Extra": ( .["X-Extra"] // "default value" ),}'
    """,
    "RF-18": """
        nodes:
          - name: ADD_HEADERS
            type: jq
            input: request.headers
            output: service_request.headers
            jq: |
              with_entries(.key |= ascii_downcase)
              | {"X-Extra": ( .["x-extra"] // "default value" ),}
    """,
    "RF-19": """
        nodes:
          - name: header_updates
            type: static
            values:
              X-Foo: "123"
              X-Custom: my header
              X-Multi: [first, second]
          - name: merged_headers
            type: jq
            inputs: {original: request.headers, updates: header_updates}
            jq: >-
              (.original | with_entries(.key |= ascii_downcase))
              * (.updates | with_entries(.key |= ascii_downcase))
          - name: api
            type: call
            url: https://example.com/
            inputs: {headers: merged_headers}
    """,
    "RF-20": """
        nodes:
          - name: header_updates
            type: static
            values: {X-Foo: "123"}
          - name: merged_headers
            type: jq
            inputs: {original: request.headers, updates: header_updates}
            jq: |
              . as $input
              | $input.original | with_entries({key: .key | ascii_downcase, value: .key}) as $keys
              | $input.updates | with_entries(.key = ($keys[.key | ascii_downcase] // .key)) as $updates
              | $input.original * $updates
          - {name: api, type: call, url: "https://example.com/", inputs: {headers: merged_headers}}
    """,
    "RF-21": """
        nodes:
          - name: BODY
            type: jq
            input: request.body
            jq: 'if type == "object" then . else { data: . } end'
    """,
    "RF-22": """
        nodes:
          - {name: CALL, type: call, url: "https://example.com/"}
          - {name: EXIT, type: exit, input: CALL}
    """,
    "RF-23": """
        nodes:
          - {name: STORE_REQUEST, type: property, property: kong.ctx.shared.my_request, input: request}
    """,
    "RF-24": """
        nodes:
          - {name: GET_ROUTE, type: property, property: kong.router.route, output: response.body}
    """,
    "RF-25": """
        nodes:
          - {name: GET_SRC, type: property, property: kong.ctx.shared.src, non_nil: true}
          - name: SET_API_KEY
            type: property
            property: kong.ctx.shared.api_key
            non_nil: true
            input: GET_SRC
    """,
    "RF-26": """
        nodes:
          - name: CALL_INPUTS
            type: static
            values:
              headers: {X-Foo: "123", X-Multi: [first, second]}
              query: {a: true, b: 10}
              body: {data: my request body data}
          - {name: CALL, type: call, url: "https://example.com/", method: POST, input: CALL_INPUTS}
    """,
    "RF-27": """
        nodes:
          - {name: VALUE, type: static, values: {data: {a: 1, b: 2}}}
          - {name: PROPERTY, type: property, property: kong.ctx.shared.my_property, input: VALUE.data}
    """,
    "RF-28": """
        nodes:
          - {name: VALUE, type: static, values: {default: my default value}}
          - name: FILTER
            type: jq
            inputs: {query: request.query, default: VALUE.default}
            jq: ".query.foo // .default"
    """,
    "RF-29": """
        nodes:
          - {name: HEADERS, type: static, values: {X-Common: we always need this header}}
          - {name: CALL_FOO, type: call, url: "https://example.com/foo", inputs: {headers: HEADERS}}
          - {name: CALL_BAR, type: call, url: "https://example.com/bar", inputs: {headers: HEADERS}}
          - name: BAZ_HEADERS
            type: jq
            inputs: {headers: HEADERS}
            jq: '. * {"X-Baz": "extra header for CALL_BAZ"}'
          - {name: CALL_BAZ, type: call, url: "https://example.com/baz", inputs: {headers: BAZ_HEADERS}}
    """,
}

RF_EDGES: dict[str, set[str]] = {
    "RF-14": {"SERVICE -> FILTER_SERVICE", "IP -> FILTER_IP"},
    "RF-15": {"SERVICE -> FILTER_SERVICE_AND_IP.service", "IP -> FILTER_SERVICE_AND_IP.ip"},
    "RF-16": set(),
    "RF-17": {"request.headers -> ADD_HEADERS", "ADD_HEADERS -> service_request.headers"},
    "RF-18": {"request.headers -> ADD_HEADERS", "ADD_HEADERS -> service_request.headers"},
    "RF-19": {
        "request.headers -> merged_headers.original",
        "header_updates -> merged_headers.updates",
        "merged_headers -> api.headers",
    },
    "RF-20": {
        "request.headers -> merged_headers.original",
        "header_updates -> merged_headers.updates",
        "merged_headers -> api.headers",
    },
    "RF-21": {"request.body -> BODY"},
    "RF-22": {"CALL.body -> EXIT.body", "CALL.headers -> EXIT.headers"},
    "RF-23": {"request -> STORE_REQUEST"},
    "RF-24": {"GET_ROUTE -> response.body"},
    "RF-25": {"GET_SRC -> SET_API_KEY"},
    "RF-26": {
        "CALL_INPUTS.headers -> CALL.headers",
        "CALL_INPUTS.query -> CALL.query",
        "CALL_INPUTS.body -> CALL.body",
    },
    "RF-27": {"VALUE.data -> PROPERTY"},
    "RF-28": {"request.query -> FILTER.query", "VALUE.default -> FILTER.default"},
    "RF-29": {
        "HEADERS -> CALL_FOO.headers",
        "HEADERS -> CALL_BAR.headers",
        "HEADERS -> BAZ_HEADERS.headers",
        "BAZ_HEADERS -> CALL_BAZ.headers",
    },
}


@pytest.mark.parametrize("case", sorted(RF_CONFIGS))
def test_reference_configs_plan(case):
    plan = make_plan(RF_CONFIGS[case])
    assert edges(plan) == RF_EDGES[case]
    assert all(node.run is not None for node in plan.user_nodes)


# -- phases, response buffering, request fields (§6.2) ------------------------------------------


@pytest.mark.parametrize(
    ("config", "after", "needs_response", "request_fields"),
    [
        pytest.param(
            cfg(jq("A", input="request.headers", output="service_request.headers")),
            set(), False, {"headers"},
            id="access-only",
        ),
        pytest.param(
            cfg(static("S", {"X-A": "1"}, output="response.headers")), set(), True, set(), id="static-out",
        ),
        pytest.param(
            cfg(prop("GET_ROUTE", "kong.router.route", output="response.body")), set(), True, set(),
            id="RF-24",
        ),
        pytest.param(
            cfg(jq("A", input="service_response.body", output="response.body")), {"A"}, True, set(),
            id="response-body-filter",
        ),
        pytest.param(
            cfg(jq("A", input="service_response.body"), jq("B", input="A"), jq("C", input="request.query")),
            {"A", "B"}, True, {"query"},
            id="transitive",
        ),
        pytest.param(
            cfg(prop("S", "kong.service.response.status")), {"S"}, True, set(), id="property-after-proxying",
        ),
        pytest.param(
            cfg(prop("S", "kong.response.source"), jq("J", input="S")), {"S", "J"}, True, set(),
            id="property-source-transitive",
        ),
        pytest.param(
            cfg(prop("S", "kong.ctx.shared.x", input="request.body")), set(), False, {"body"},
            id="property-set",
        ),
        pytest.param(
            cfg(call("C", inputs={"body": "service_response.raw_body"}),
                jq("J", inputs={"s": "C.status"}, output="response.body")),
            {"C", "J"}, True, set(),
            id="NG-08-call-chain",
        ),
        pytest.param(cfg(exit_("E", input="service_response")), {"E"}, True, set(), id="exit-after-proxying"),
        pytest.param(
            cfg(jq("A", input="request.headers.authorization"),
                jq("B", inputs={"m": "request.method", "p": "request.path"})),
            set(), False, {"headers", "method", "path"},
            id="request-fields",
        ),
    ],
)
def test_phases(config, after, needs_response, request_fields):
    plan = make_plan(config)
    assert {n.name for n in plan.user_nodes if n.after_proxying} == after
    assert plan.needs_response_phase is needs_response
    assert plan.request_fields == request_fields


def test_service_response_fields():
    plan = make_plan(cfg(jq("A", inputs={"b": "service_response.body", "s": "service_response.status"})))
    assert plan.service_response_fields == {"body", "status"}
    whole = make_plan(cfg(jq("A", input="service_response")))
    assert whole.service_response_fields == {"body", "headers", "status", "raw_body"}


def test_implicit_nodes_come_first_and_user_nodes_keep_their_positions():
    plan = make_plan(cfg(jq("A"), call("B")))
    implicit = ["request", "service_request", "service_response", "response", "vault"]
    assert [n.name for n in plan.nodes[:5]] == implicit
    assert [(n.name, n.index, n.type_name) for n in plan.user_nodes] == [("A", 1, "jq"), ("B", 2, "call")]
    assert all(plan.nodes[n.id] is n for n in plan.nodes)
