"""`datakit validate` checks files as the proxy loads them: declarative files, 3.10 configs, --to-3.11."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mitm_datakit.dialect import plan_config

LEGACY = """
nodes:
- name: MY_HEADERS
  type: jq
  inputs:
  - req: request.headers
  jq: '{"X-My-Call-Header": ($req.apikey // "default value")}'
- name: CALL
  type: call
  inputs:
  - headers: MY_HEADERS
  url: http://127.0.0.1:9/anything
  timeout: 5
  method: post
- name: EXIT
  type: exit
  inputs:
  - body: CALL.body
"""

DECLARATIVE = """
_format_version: "3.0"
services:
- name: orders
  url: http://127.0.0.1:9
  routes:
  - name: orders
    paths: [/orders]
    plugins:
    - name: datakit
      config:
        nodes:
        - name: BROKEN
          type: jq
          jq: "{"
"""


def datakit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mitm_datakit.cli", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def write(tmp_path: Path):
    def make(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return make


def test_a_legacy_config_is_valid_in_auto_and_invalid_as_3_11(write):
    path = write("legacy.yaml", LEGACY)
    assert datakit("validate", path).returncode == 0
    forced = datakit("validate", "--compat", "3.11", path)
    assert forced.returncode == 1
    assert "node #1 (MY_HEADERS), field 'inputs': expected a map of field names to references" in forced.stdout
    assert "node #2 (CALL), field 'method': invalid value: post" in forced.stdout


def test_errors_inside_a_declarative_file_name_their_plugin(write):
    result = datakit("validate", write("kong.yaml", DECLARATIVE))
    assert result.returncode == 1
    assert 'datakit plugin on route "orders"' in result.stdout
    assert "node #1 (BROKEN), field 'jq': invalid jq program" in result.stdout


def test_to_3_11_prints_a_config_that_plans_in_the_current_dialect(write):
    result = datakit("validate", "--to-3.11", write("legacy.yaml", LEGACY))
    assert result.returncode == 0, result.stderr
    converted = yaml.safe_load(result.stdout)
    assert plan_config(converted, "3.11").dialect == "3.11"
    call = next(n for n in converted["nodes"] if n["name"] == "CALL")
    assert (call["method"], call["timeout"]) == ("POST", 5000)
    assert "# note: CALL: non-2xx answers and network errors now fail the plan" in result.stdout
