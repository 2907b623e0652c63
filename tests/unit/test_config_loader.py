"""Reading config text and files (`config/loader.py`): YAML 1.2 or JSON, bare config or plugin entity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mitm_datakit.config import load_config, load_config_file
from mitm_datakit.errors import ConfigError, ConfigIssue
from mitm_datakit.plan import build_plan

NODES = [{"name": "FILTER", "type": "jq", "jq": "."}]

YAML_BARE = """\
nodes:
  - name: FILTER
    type: jq
    jq: "."
"""

YAML_ENVELOPE = """\
name: datakit
enabled: true
protocols: [http, https]
route:
  id: 7d1f2a3c-0000-4000-8000-000000000000
config:
  debug: true
  nodes:
    - name: FILTER
      type: jq
      jq: "."
"""


def only_issue(text: str, *, source: str = "<config>") -> ConfigIssue:
    with pytest.raises(ConfigError) as raised:
        load_config(text, source=source)
    assert len(raised.value.issues) == 1, raised.value.issues
    return raised.value.issues[0]


# -- accepted documents -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (YAML_BARE, {"nodes": NODES}),
        (json.dumps({"nodes": NODES}), {"nodes": NODES}),
        (json.dumps({"nodes": NODES}, indent=2), {"nodes": NODES}),
        (YAML_ENVELOPE, {"debug": True, "nodes": NODES}),
        (json.dumps({"name": "datakit", "config": {"nodes": NODES}}), {"nodes": NODES}),
        # A plugin entity of another plugin is not unwrapped: the plan then reports its keys.
        ("name: other\nconfig: {nodes: []}\n", {"name": "other", "config": {"nodes": []}}),
    ],
    ids=["yaml", "json", "json-indented", "yaml-envelope", "json-envelope", "other-plugin-kept-whole"],
)
def test_accepted_documents(text, expected):
    assert load_config(text) == expected


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("nodes: []\nname_of_node: NO\n", "name_of_node", "NO"),
        ("x: on\n", "x", "on"),
        ("x: yes\n", "x", "yes"),
        ("x: off\n", "x", "off"),
        ("x: true\n", "x", True),
        ("x: 010\n", "x", 10),
        ("x: ~\n", "x", None),
    ],
    ids=["NO", "on", "yes", "off", "true-is-boolean", "octal-looking-is-decimal", "tilde-is-null"],
)
def test_yaml_1_2_scalars(text, key, value):
    """decK and Kong read YAML 1.2: `on`/`yes`/`NO` are strings, not booleans as in YAML 1.1."""
    assert load_config(text)[key] == value


def test_node_named_no_keeps_its_name_through_the_plan():
    plan = build_plan(load_config("nodes:\n  - name: NO\n    type: jq\n    jq: .\n"))
    assert plan.node("NO").index == 1


def test_envelope_yaml_and_json_plan_identically():
    as_yaml = build_plan(load_config(YAML_ENVELOPE))
    envelope = {"name": "datakit", "config": {"debug": True, "nodes": NODES}}
    as_json = build_plan(load_config(json.dumps(envelope)))
    assert as_yaml.debug is as_json.debug is True
    assert [n.name for n in as_yaml.user_nodes] == [n.name for n in as_json.user_nodes] == ["FILTER"]


# -- rejected documents -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "   \n", "# only a comment\n", "---\n"],
    ids=["empty", "newlines", "blanks", "comment", "document-marker"],
)
def test_empty_document(text):
    assert only_issue(text).message == "<config>: the file is empty"


@pytest.mark.parametrize(
    "text",
    ["- name: A\n  type: jq\n", "[]\n", "just a string\n", "42\n", "true\n", '"quoted"\n'],
    ids=["yaml-list", "json-list", "string", "number", "boolean", "json-string"],
)
def test_top_level_must_be_a_map(text):
    assert only_issue(text).message == "<config>: expected a map at the top level"


@pytest.mark.parametrize(
    "text",
    [
        "name: datakit\nconfig: 5\n",
        "name: datakit\nconfig: [a]\n",
        "name: datakit\n",
        "name: datakit\nconfig: ~\n",
    ],
    ids=["number", "list", "missing", "null"],
)
def test_envelope_config_must_be_a_map(text):
    assert only_issue(text).message == "<config>: the datakit plugin's `config` must be a map"


@pytest.mark.parametrize(
    ("text", "line", "column", "problem"),
    [
        ("nodes:\n  - name: A\n   type: jq\n", 3, 4, "expected <block end>"),
        ('{"nodes": [}', 1, 12, "expected the node content"),
        ("nodes: [\n", 2, 1, "expected the node content"),
        ("a: 1\na: 2\n", 2, 1, 'found duplicate key "a"'),
        ("nodes:\n\t- x\n", 2, 1, "found character '\\t' that cannot start any token"),
        ("x: &a 1\ny: *b\n", 2, 4, "found undefined alias 'b'"),
        ('nodes:\n  - name: "A\n', 3, 1, "found unexpected end of stream"),
    ],
    ids=[
        "bad-indent", "json-bracket", "unclosed-flow", "duplicate-key", "tab", "undefined-alias", "open-quote"
    ],
)
def test_syntax_error_reports_line_and_column(text, line, column, problem):
    issue = only_issue(text, source="datakit.yaml")
    assert issue.message.startswith(f"datakit.yaml: invalid YAML at line {line}, column {column}: "), issue
    assert problem in issue.message
    assert (issue.node_index, issue.node_name, issue.field) == (None, None, None)


def test_source_defaults_to_placeholder():
    assert only_issue("[").message.startswith("<config>: invalid YAML at line 1, column 2: ")


# -- files --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        ("datakit.yaml", YAML_BARE),
        ("datakit.json", json.dumps({"nodes": NODES})),
        ("plugin.yml", YAML_ENVELOPE),
    ],
    ids=["yaml", "json", "envelope"],
)
def test_load_file(tmp_path: Path, filename, text):
    path = tmp_path / filename
    path.write_text(text, encoding="utf-8")
    assert load_config_file(path)["nodes"] == NODES
    assert load_config_file(str(path))["nodes"] == NODES  # str paths too


def test_file_syntax_error_names_the_file(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("nodes:\n  - name: A\n   type: jq\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config_file(path)
    assert str(raised.value).startswith(f"{path}: invalid YAML at line 3, column 4: ")


def test_empty_file_names_the_file(tmp_path: Path):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"empty\.yaml: the file is empty$"):
        load_config_file(path)


@pytest.mark.parametrize(
    ("make_path", "reason"),
    [
        (lambda tmp: tmp / "missing.yaml", "No such file or directory"),
        (lambda tmp: tmp, "Is a directory"),
    ],
    ids=["missing", "directory"],
)
def test_unreadable_path(tmp_path: Path, make_path, reason):
    path = make_path(tmp_path)
    with pytest.raises(ConfigError) as raised:
        load_config_file(path)
    (issue,) = raised.value.issues
    assert issue.message == f"cannot read {path}: {reason}"


def test_file_that_is_not_utf8(tmp_path: Path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("nodes: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as raised:
        load_config_file(path)
    assert [i.message for i in raised.value.issues] == [f"{path}: not UTF-8 text"]
