"""`datakit validate`: every error of every file, located by line and column, as text or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mitm_datakit.cli import main
from mitm_datakit.config.positions import Position, SourceMap
from mitm_datakit.errors import ConfigIssue

REPO = Path(__file__).resolve().parents[2]
ANIMAL_FACTS = REPO / "configs" / "animal-facts.yaml"

BROKEN = """\
# two nodes with problems
nodes:
  - name: CALL
    type: call
    url: http://127.0.0.1:1/
    tiemout: 5
  - name: JOIN
    type: jq
    inputs:
      a.b: CALL.body
      c: NOPE.body
    jq: "{"
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("text", "issue", "expected"),
    [
        pytest.param(
            BROKEN, ConfigIssue("unknown field", 1, "CALL", "tiemout"), Position(6, 5), id="node field"
        ),
        pytest.param(BROKEN, ConfigIssue("bad jq", 2, "JOIN", "jq"), Position(12, 5), id="second node"),
        pytest.param(BROKEN, ConfigIssue("x", 2, "JOIN", "inputs.c"), Position(11, 7), id="connection"),
        pytest.param(
            BROKEN, ConfigIssue("x", 2, "JOIN", "inputs.a.b"), Position(10, 7), id="dotted jq input"
        ),
        pytest.param(BROKEN, ConfigIssue("cycle", 2, "JOIN"), Position(7, 5), id="node without field"),
        pytest.param(
            BROKEN, ConfigIssue("missing", 1, "CALL", "method"), Position(3, 5), id="absent field: node"
        ),
        pytest.param(BROKEN, ConfigIssue("top", None, None, "nodes"), Position(2, 1), id="top-level field"),
        pytest.param(
            "debug: true\nresources:\n  vault:\n    bad name: x\nnodes: []\n",
            ConfigIssue("invalid secret name", field="resources.vault.bad name"),
            Position(4, 5),
            id="nested resource key",
        ),
        pytest.param(
            "name: datakit\nconfig:\n  nodes:\n    - name: A\n      type: nope\n",
            ConfigIssue("unknown type", 1, "A", "type"),
            Position(5, 7),
            id="inside a plugin entity",
        ),
        pytest.param(
            '{"nodes": [{"name": "A",\n  "type": "exit", "status": 9}]}',
            ConfigIssue("range", 1, "A", "status"),
            Position(2, 19),
            id="JSON",
        ),
        pytest.param(
            "nodes:\n  - name: [1\n",
            ConfigIssue("invalid YAML"),
            Position(3, 1),
            id="YAML syntax error",
        ),
        pytest.param(BROKEN, ConfigIssue("x", 9, "GONE", "jq"), Position(2, 1), id="node beyond the file"),
    ],
)
def test_source_map_locates_issues(text: str, issue: ConfigIssue, expected: Position) -> None:
    assert SourceMap.parse(text).locate(issue) == expected


def test_validate_reports_every_error_with_file_line_and_column(tmp_path, capsys) -> None:
    path = write(tmp_path, "broken.yaml", BROKEN)
    assert main(["validate", path]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{path}:6:5: node #1 (CALL), field 'tiemout': unknown field for a call node" in out
    assert any(
        line.startswith(f"{path}:11:7: node #2 (JOIN), field 'inputs.c': Unknown node \"NOPE\"")
        for line in out
    )
    assert any(
        line.startswith(f"{path}:12:5: node #2 (JOIN), field 'jq': invalid jq program") for line in out
    )
    assert out[-1] == "3 errors in 1 of 1 file"


@pytest.mark.parametrize(
    ("files", "status", "summary"),
    [
        pytest.param(["good"], 0, "good: ok", id="valid"),
        pytest.param(["good", "good2"], 0, "good2: ok", id="all valid"),
        pytest.param(["good", "broken"], 1, "3 errors in 1 of 2 files", id="one of two invalid"),
        pytest.param(["broken", "syntax", "missing"], 1, "5 errors in 3 of 3 files", id="each file reported"),
    ],
)
def test_validate_exit_status_and_summary(tmp_path, capsys, files, status, summary) -> None:
    texts = {
        "good": ANIMAL_FACTS.read_text(),
        "good2": ANIMAL_FACTS.read_text(),
        "broken": BROKEN,
        "syntax": "nodes: [\n",
    }
    paths = []
    for name in files:
        paths.append(write(tmp_path, name, texts[name]) if name in texts else str(tmp_path / name))
    assert main(["validate", *paths]) == status
    out = capsys.readouterr().out
    assert out.splitlines()[-1].replace(str(tmp_path) + "/", "") == summary


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("nodes: [\n", "invalid YAML at line 2, column 1", id="syntax"),
        pytest.param("", "the file is empty", id="empty"),
        pytest.param("- a\n", "expected a map at the top level", id="list"),
        pytest.param("nodes: " + "[" * 3000 + "]" * 3000 + "\n", "invalid YAML: nested too deeply", id="deep"),
        pytest.param(
            "nodes:\n- name: S\n  type: static\n  values: &a {x: *a}\n",
            "field 'nodes[0].values.x': a YAML alias refers to a value that contains it",
            id="recursive-alias",
        ),
    ],
)
def test_loader_messages_are_not_prefixed_twice_with_the_file(tmp_path, capsys, text, message) -> None:
    path = write(tmp_path, "c.yaml", text)
    assert main(["validate", path]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert message in first
    assert first.count(path) == 1


def test_validate_json_output_lists_files_and_located_errors(tmp_path, capsys) -> None:
    broken = write(tmp_path, "broken.yaml", BROKEN)
    assert main(["validate", "--format", "json", str(ANIMAL_FACTS), broken]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    good, bad = report["files"]
    assert good == {"file": str(ANIMAL_FACTS), "valid": True, "errors": []}
    assert bad["valid"] is False
    assert bad["errors"][0] == {
        "file": broken,
        "line": 6,
        "column": 5,
        "node": {"index": 1, "name": "CALL"},
        "field": "tiemout",
        "message": "unknown field for a call node",
    }
    assert {(e["line"], e["field"]) for e in bad["errors"]} == {(6, "tiemout"), (11, "inputs.c"), (12, "jq")}


def test_validate_json_output_when_everything_is_valid(capsys) -> None:
    assert main(["validate", "--format", "json", str(ANIMAL_FACTS)]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True


def test_validation_never_needs_the_secrets_a_config_refers_to(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("DATAKIT_TEST_UNSET_SECRET", raising=False)
    path = write(
        tmp_path,
        "vault.yaml",
        """\
resources:
  vault:
    token: "{vault://env/datakit-test-unset-secret}"
nodes:
  - name: AUTH
    type: jq
    inputs: {token: vault.token}
    jq: '{Authorization: ("Bearer " + .token)}'
    output: service_request.headers
""",
    )
    assert main(["validate", path]) == 0
    assert capsys.readouterr().out == f"{path}: ok\n"


def test_validate_needs_at_least_one_file(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate"])
    assert exit_info.value.code == 2
    assert "FILE" in capsys.readouterr().err
