"""`datakit schema`: a JSON Schema generated from the node registry, which accepts every config the
engine accepts (the bundled ones and the spec's examples) and rejects what it rejects."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
from ruamel.yaml import YAML

from mitm_datakit.cli import main
from mitm_datakit.config import Field, load_config
from mitm_datakit.errors import ConfigError
from mitm_datakit.nodes import REGISTRY, NodeType
from mitm_datakit.plan import build_plan
from mitm_datakit.schema import DIALECT, config_schema
from mitm_datakit.types import DkType

REPO = Path(__file__).resolve().parents[2]
CONFIG_FILES = sorted(p for p in (REPO / "configs").rglob("*") if p.suffix in (".yaml", ".yml", ".json"))

# Kong's documented examples (shared/datakit-spec.md §5.6, §8.1), as users write them.
SPEC_EXAMPLES = {
    "EX-01 combine two APIs": """
nodes:
- name: AUTHOR
  type: call
  url: https://httpbin.konghq.com/json
- name: UUID
  type: call
  url: https://httpbin.konghq.com/uuid
- name: JOIN
  type: jq
  inputs:
    input1: AUTHOR.body
    input2: UUID.body
  jq: |
    {
      author: .input1.slideshow.author,
      uuid: .input2.uuid,
    }
- name: EXIT
  type: exit
  inputs:
    body: JOIN
  status: 200
""",
    "EX-02 manipulate request headers": """
nodes:
- name: HEADERS
  type: static
  values:
    X-API-Header-One: foo
    X-API-Header-Two: bar
- name: MERGE_HEADERS
  type: jq
  inputs:
    static: HEADERS
    request: request.headers
  jq: |
    .static * (.request | with_entries(.key = "X-Request-" + .key))
- name: API
  type: call
  url: https://example.com/
  inputs:
    headers: MERGE_HEADERS
- name: EXIT
  type: exit
  input: API
  status: 200
""",
    "EX-04 vault secret": """
resources:
  vault:
    token: "{vault://my-vault/my-token}"
nodes:
- name: STATIC_INPUTS
  type: static
  values:
    headers:
      Content-Type: application/x-www-form-urlencoded
    body: grant_type=client_credentials
- name: BUILD_HEADERS
  type: jq
  inputs:
    headers: STATIC_INPUTS.headers
    apikey: vault.token
  jq: |
    .headers * {
      "X-Api-Key": .apikey
    }
- name: AUTH_REQUEST
  type: call
  inputs:
    headers: BUILD_HEADERS
    body: STATIC_INPUTS.body
  url: "https://my-token-service/auth-token"
  method: POST
- name: UPSTREAM_AUTH_HEADER
  type: jq
  input: AUTH_REQUEST.body
  output: service_request.headers
  jq: |
    {
      Authorization: (.token_type + " " + .access_token)
    }
""",
    "EX-06 null clears headers": """
nodes:
- name: HEADERS
  type: static
  values:
    X-Ignored: null
    X-Add-Me: "added"
- name: API
  type: call
  url: https://example.com/
  inputs:
    headers: HEADERS
- name: EXIT
  type: exit
  inputs:
    headers: HEADERS
  status: 200
""",
    "EX-11 route upstream by credential": """
nodes:
  - name: GET_CREDENTIAL
    type: property
    property: kong.client.credential
  - name: PICK_UPSTREAM
    type: jq
    input: GET_CREDENTIAL
    jq: |
      {"caller-a": "upstream-a"}[.id] // "upstream-default"
  - name: SET_UPSTREAM
    type: property
    property: kong.service.upstream
    input: PICK_UPSTREAM
""",
    "branch with only else, as a plugin entity": """
name: datakit
config:
  debug: true
  nodes:
    - name: IS_ADMIN
      type: jq
      input: request.headers
      jq: '.["x-role"] == "admin"'
    - name: CHECK
      type: branch
      input: IS_ADMIN
      else: [DENY]
    - name: DENY
      type: exit
      status: 403
""",
}

# Configs the engine rejects for a reason the schema can see too.
REJECTED = {
    "unknown node field": "nodes: [{name: A, type: exit, colour: red}]",
    "unknown top-level field": "nodez: []",
    "unknown node type": "nodes: [{name: A, type: teleport}]",
    "missing name": "nodes: [{type: exit}]",
    "reserved name": "nodes: [{name: request, type: exit}]",
    "name with a dot": "nodes: [{name: A.B, type: exit}]",
    "required field missing": "nodes: [{name: A, type: jq}]",
    "wrong field type": "nodes: [{name: A, type: exit, status: '200'}]",
    "integer out of range": "nodes: [{name: A, type: exit, status: 700}]",
    "value not in enum": "nodes: [{name: A, type: property, property: kong.version, content_type: text/xml}]",
    "pattern": "nodes: [{name: A, type: call, url: 'http://x/', method: get}]",
    "input and inputs": "nodes: [{name: A, type: jq, jq: ., input: request, inputs: {a: request.body}}]",
    "output and outputs": "nodes: [{name: A, type: static, values: {a: 1}, output: B, outputs: {a: B}}, "
    "{name: B, type: jq, jq: .}]",
    "inputs on a node without field inputs": "nodes: [{name: A, type: property, property: kong.version, "
    "inputs: {x: request.body}}]",
    "unknown field of a fixed-field input": "nodes: [{name: A, type: call, url: 'http://x/', "
    "inputs: {colour: request.body}}]",
    "outputs on exit": "nodes: [{name: A, type: exit, output: response}]",
    "empty nodes": "nodes: []",
    "too many nodes": "nodes: [" + ", ".join(f"{{name: N{i}, type: exit}}" for i in range(65)) + "]",
    "bad vault reference": "resources: {vault: {t: 'env/T'}}\nnodes: [{name: A, type: exit}]",
    "too many secrets": "resources: {vault: {"
    + ", ".join(f"s{i}: '{{vault://env/S{i}}}'" for i in range(65))
    + "}}\nnodes: [{name: A, type: exit}]",
    "unknown resource": "resources: {queue: {}}\nnodes: [{name: A, type: exit}]",
    "plugin entity with a bad config": "name: datakit\nconfig: {nodes: [{name: A, type: exit, x: 1}]}",
}


def yaml_document(text: str) -> Any:
    """As the loader reads files: YAML 1.2, so `on`/`yes` stay strings."""
    return YAML(typ="safe", pure=True).load(text)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_errors(validator: jsonschema.Draft202012Validator, document: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_schema_is_draft_2020_12(validator) -> None:
    assert validator.schema["$schema"] == DIALECT == "https://json-schema.org/draft/2020-12/schema"


def datakit_configs(document: Any) -> list[Any]:
    """The Datakit configs in a file: the file itself (a bare config or a plugin entity), or the
    `name: datakit` plugin entities found anywhere inside it (a Kong declarative file)."""
    if isinstance(document, dict) and ("nodes" in document or document.get("name") == "datakit"):
        return [document]
    found: list[Any] = []
    children = (
        document.values() if isinstance(document, dict) else document if isinstance(document, list) else []
    )
    for child in children:
        found += datakit_configs(child)
    return found


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_bundled_config_matches_the_schema(validator, path: Path) -> None:
    for config in datakit_configs(yaml_document(path.read_text())):
        assert schema_errors(validator, config) == []


def test_bundled_configs_include_the_example() -> None:
    example = REPO / "configs" / "animal-facts.yaml"
    assert example in CONFIG_FILES
    assert datakit_configs(yaml_document(example.read_text()))


@pytest.mark.parametrize("text", SPEC_EXAMPLES.values(), ids=SPEC_EXAMPLES.keys())
def test_spec_examples_match_the_schema_and_plan(validator, text: str) -> None:
    assert schema_errors(validator, yaml_document(text)) == []
    build_plan(load_config(text))  # the engine accepts them too: the schema is not looser by accident


@pytest.mark.parametrize("text", REJECTED.values(), ids=REJECTED.keys())
def test_configs_the_engine_rejects_fail_the_schema_too(validator, text: str) -> None:
    with pytest.raises(ConfigError):
        build_plan(load_config(text))
    assert schema_errors(validator, yaml_document(text)) != []


def test_optional_fields_may_be_null_as_in_kong(validator) -> None:
    text = "nodes: [{name: A, type: call, url: 'http://x/', timeout: null, inputs: {body: null}}]"
    build_plan(load_config(text))
    assert schema_errors(validator, yaml_document(text)) == []


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_each_registered_type_has_its_fields_and_connections(validator, type_name: str) -> None:
    node_type = REGISTRY[type_name]
    definition = validator.schema["$defs"][f"node_{type_name}"]
    properties = definition["properties"]
    assert set(node_type.fields) <= set(properties)
    assert ("input" in properties) == (node_type.self_input is not None)
    assert ("output" in properties) == (node_type.self_output is not None)
    required = {name for name, rule in node_type.fields.items() if rule.required}
    assert set(definition["required"]) == {"name", "type", *required}
    if node_type.input_fields:
        assert set(properties["inputs"]["properties"]) == set(node_type.input_fields)


class Teleport(NodeType):
    type_name = "teleport"
    fields: ClassVar[Mapping[str, Field]] = {
        "destination": Field("string", required=True, minimum=1, description="Where to."),
        "speed": Field("integer", default=3, minimum=1, maximum=9),
        "mode": Field("string", choices=("beam", "warp")),
    }
    input_fields: ClassVar[Mapping[str, DkType] | None] = {"payload": DkType.ANY}
    self_input = None
    self_output = DkType.STRING


def test_a_new_node_type_appears_without_editing_the_schema(monkeypatch) -> None:
    monkeypatch.setitem(REGISTRY, "teleport", Teleport())
    schema = config_schema()
    assert "teleport" in schema["$defs"]["node"]["properties"]["type"]["enum"]
    teleport = schema["$defs"]["node_teleport"]
    assert teleport["required"] == ["name", "type", "destination"]
    assert teleport["properties"]["destination"] == {
        "description": "Where to.",
        "type": "string",
        "minLength": 1,
    }
    assert teleport["properties"]["speed"] == {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": 9,
        "default": 3,
    }
    assert teleport["properties"]["mode"]["enum"] == ["beam", "warp", None]
    assert "input" not in teleport["properties"]
    assert set(teleport["properties"]["inputs"]["properties"]) == {"payload"}
    validator = jsonschema.Draft202012Validator(schema)
    good = {"nodes": [{"name": "T", "type": "teleport", "destination": "moon", "mode": "warp"}]}
    assert schema_errors(validator, good) == []
    assert schema_errors(
        validator, {"nodes": [{"name": "T", "type": "teleport", "destination": "x", "mode": "x"}]}
    )


def test_schema_command_prints_the_generated_schema(capsys) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_schema()


def test_schema_command_writes_a_file(tmp_path) -> None:
    output = tmp_path / "datakit.schema.json"
    assert main(["schema", "--output", str(output)]) == 0
    assert json.loads(output.read_text()) == config_schema()
