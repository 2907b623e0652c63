"""`datakit run`: one request through a config without a proxy, calls answered from fixtures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mitm_datakit.cli import main
from mitm_datakit.cli.documents import InputFileError
from mitm_datakit.cli.fixtures import FixtureClient
from mitm_datakit.http_client import CallFailed, InboundResponse, OutboundRequest

REPO = Path(__file__).resolve().parents[2]
ANIMAL_FACTS = REPO / "configs" / "animal-facts.yaml"

ANIMAL_FIXTURES = """
- url: http://127.0.0.1:18081/fact
  response:
    body: {fact: Cats sleep a lot.}
- method: get
  url_prefix: http://127.0.0.1:18082/api/
  response:
    headers: {Content-Type: application/json}
    body: {facts: [Dogs dream.]}
"""

ECHO_REQUEST = """
nodes:
  - {name: ECHO, type: jq, input: request, jq: .}
  - {name: EXIT, type: exit, status: 201, inputs: {body: ECHO}}
"""

BOTH_PHASES = """
debug: true
resources: {vault: {token: "{vault://env/DATAKIT_TEST_TOKEN}"}}
nodes:
  - name: AUTH
    type: jq
    inputs: {token: vault.token, query: request.query}
    jq: '{Authorization: ("Bearer " + .token), "X-Q": .query.q}'
    output: service_request.headers
  - name: WRAP
    type: jq
    inputs: {body: service_response.body, status: service_response.status}
    jq: '{wrapped: .body, upstream_status: .status}'
    output: response.body
  - {name: CODE, type: static, values: {status: 203}}
  - {name: SET_STATUS, type: property, property: kong.response.status, input: CODE.status}
"""

UPSTREAM = "status: 200\nheaders: {Content-Type: application/json, X-Upstream: yes}\nbody: {hello: world}\n"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    status = main(["run", *args, "--format", "json"])
    captured = capsys.readouterr()
    return status, json.loads(captured.out), captured.err


def header(message: dict[str, Any], name: str) -> str | None:
    return next((value for key, value in message["headers"] if key.lower() == name.lower()), None)


# -- fixtures ----------------------------------------------------------------------------------


def fixture_client(tmp_path: Path, text: str) -> FixtureClient:
    return FixtureClient.from_file(write(tmp_path, "fx.yaml", text))


def send(client: FixtureClient, method: str, url: str) -> InboundResponse:
    return asyncio.run(client.send(OutboundRequest(method, url, [], None, None)))


MATCHING = """
- {url: "http://api.test/v1/items?id=1", response: {status: 201}}
- {url_prefix: "http://api.test/v1/", response: {status: 202}}
- {url_prefix: "http://api.test/v1/items", response: {status: 203}}
- {method: POST, url_prefix: "http://api.test/", response: {status: 204}}
"""


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        pytest.param("GET", "http://api.test/v1/items?id=1", 201, id="exact URL wins"),
        pytest.param("GET", "http://api.test/v1/items?id=2", 203, id="longest prefix"),
        pytest.param("GET", "http://api.test/v1/other", 202, id="shorter prefix"),
        pytest.param("POST", "http://api.test/v2", 204, id="method-specific prefix"),
    ],
)
def test_fixture_matching(tmp_path, method: str, url: str, status: int) -> None:
    assert send(fixture_client(tmp_path, MATCHING), method, url).status == status


def test_an_unmatched_call_fails_naming_method_and_url_without_query(tmp_path) -> None:
    client = fixture_client(tmp_path, MATCHING)
    with pytest.raises(CallFailed) as failure:
        send(client, "DELETE", "http://api.test/v2/things?api_key=secret")
    assert str(failure.value) == f"no fixture in {client.source} matches DELETE http://api.test/v2/things"


def test_fixture_bodies_are_text_or_json(tmp_path) -> None:
    client = fixture_client(
        tmp_path,
        '- {url: "http://a/1", response: {body: plain}}\n'
        '- {url: "http://a/2", response: {body: [1, 2]}}\n'
        '- {url: "http://a/3", response: {headers: {Content-Type: application/x+json}, body: {a: 1}}}\n',
    )
    text, array, typed = (send(client, "GET", f"http://a/{n}") for n in (1, 2, 3))
    assert (text.status, text.body, text.headers) == (200, b"plain", [])
    assert (array.body, array.headers) == (b"[1, 2]", [("Content-Type", "application/json")])
    assert typed.headers == [("Content-Type", "application/x+json")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("{url: http://a/}", "expected a list of fixtures", id="not a list"),
        pytest.param("- {response: {}}", "fixture #1: give exactly one of url and url_prefix", id="no url"),
        pytest.param("- {url: a, url_prefix: b}", "give exactly one of url and url_prefix", id="both urls"),
        pytest.param("- {url: http://a/, respons: {}}", "unknown key(s) respons", id="typo"),
        pytest.param(
            "- {url: http://a/, response: {status: 99}}", "status: expected an HTTP status", id="status"
        ),
        pytest.param("- {url: http://a/, response: {headers: 3}}", "headers: expected a map", id="headers"),
        pytest.param("- [", "is not valid YAML or JSON", id="syntax"),
    ],
)
def test_bad_fixture_files_are_reported(tmp_path, text: str, message: str) -> None:
    with pytest.raises(InputFileError) as error:
        fixture_client(tmp_path, text)
    assert message in str(error.value)


# -- the command -------------------------------------------------------------------------------


def test_run_answers_calls_from_fixtures(tmp_path, capsys) -> None:
    status, result, err = run_json(
        capsys, str(ANIMAL_FACTS), "--fixtures", write(tmp_path, "fx.yaml", ANIMAL_FIXTURES)
    )
    assert (status, err) == (0, "")
    assert result["status"] == "PLAN_COMPLETE"
    assert result["upstream_request"] is None  # the exit answered: nothing goes upstream
    response = result["response"]
    assert response["status"] == 200
    assert json.loads(response["body"]) == {"cat_fact": "Cats sleep a lot.", "dog_fact": "Dogs dream."}
    assert len(header(response, "X-Kong-Request-Id") or "") == 32


def test_run_text_output_shows_the_response_and_the_trace(tmp_path, capsys) -> None:
    fixtures = write(tmp_path, "fx.yaml", ANIMAL_FIXTURES)
    assert main(["run", str(ANIMAL_FACTS), "--fixtures", fixtures, "--trace"]) == 0
    out = capsys.readouterr().out
    response, trace = out.split("=== trace ===\n")
    assert response.startswith("=== response ===\nHTTP/1.1 200 OK\n")
    assert '{"cat_fact":"Cats sleep a lot.","dog_fact":"Dogs dream."}' in response
    report = json.loads(trace)
    assert report["status"] == "PLAN_COMPLETE"
    assert {node["name"]: node["status"] for node in report["nodes"]}["JOIN"] == "NODE_COMPLETE"


def test_a_failing_node_gives_status_1_and_kongs_500(tmp_path, capsys) -> None:
    fixtures = write(tmp_path, "fx.yaml", "- {url_prefix: 'http://127.0.0.1:', response: {status: 403}}\n")
    status, result, err = run_json(capsys, str(ANIMAL_FACTS), "--fixtures", fixtures)
    assert status == 1
    assert result["status"] == "PLAN_ERROR"
    assert result["failed_node"]["error"] == "non-2XX response code: 403"
    assert result["response"]["status"] == 500
    assert json.loads(result["response"]["body"])["message"] == "An unexpected error occurred"
    assert 'failed with error: "non-2XX response code: 403"' in err


def test_an_unmatched_call_fails_the_run_clearly(tmp_path, capsys) -> None:
    fixtures = write(tmp_path, "fx.yaml", "- {url: 'http://127.0.0.1:18081/fact', response: {body: {}}}\n")
    assert main(["run", str(ANIMAL_FACTS), "--fixtures", fixtures]) == 1
    err = capsys.readouterr().err
    assert f'node #2 (DOG_FACT) failed with error: "no fixture in {fixtures} matches GET ' in err
    assert "http://127.0.0.1:18082/api/v1/facts" in err


@pytest.mark.parametrize(
    ("args", "request_file", "expected"),
    [
        pytest.param(
            [], None, {"method": "GET", "path": "/", "query": {}, "body": None, "port": 8000}, id="defaults"
        ),
        pytest.param(
            ["--path", "/a/../b?x=1&x=2&flag", "-H", "X-One: 1"],
            None,
            {"path": "/b", "raw_path": "/a/../b", "query": {"x": ["1", "2"], "flag": True}},
            id="path and query",
        ),
        pytest.param(
            ["-d", '{"a": 1}', "-H", "Content-Type: application/json"],
            None,
            {"method": "POST", "body": {"a": 1}},
            id="data makes a POST",
        ),
        pytest.param(
            ["-X", "PUT", "-d", "a=1&a=2", "-H", "Content-Type: application/x-www-form-urlencoded"],
            None,
            {"method": "PUT", "body": {"a": ["1", "2"]}},
            id="form body",
        ),
        pytest.param(
            [],
            "method: PATCH\npath: /items/7\nheaders: {X-Role: admin}\nbody: {id: 7}\n"
            "scheme: https\nport: 8443\n",
            {"method": "PATCH", "path": "/items/7", "body": {"id": 7}, "scheme": "https", "port": 8443},
            id="request file",
        ),
        pytest.param(
            ["--method", "DELETE", "-H", "X-Role: user"],
            "method: PATCH\nheaders: {X-Role: admin}\n",
            {"method": "DELETE"},
            id="options win over the file",
        ),
    ],
)
def test_the_request_reaches_nodes_as_the_proxy_would_give_it(
    tmp_path, capsys, args, request_file, expected
) -> None:
    extra = ["--request-file", write(tmp_path, "req.yaml", request_file)] if request_file else []
    status, result, _ = run_json(capsys, write(tmp_path, "echo.yaml", ECHO_REQUEST), *args, *extra)
    assert status == 0
    seen = json.loads(result["response"]["body"])
    assert {key: seen[key] for key in expected} == expected
    assert seen["headers"]["Host"] in ("localhost:8000", "localhost:8443")


def test_header_options_replace_the_files_headers_of_the_same_name(tmp_path, capsys) -> None:
    request_file = write(tmp_path, "req.yaml", "headers: {X-Role: admin, X-Keep: k}\n")
    _, result, _ = run_json(
        capsys,
        write(tmp_path, "echo.yaml", ECHO_REQUEST),
        "--request-file",
        request_file,
        "-H",
        "x-role: user",
    )
    headers = json.loads(result["response"]["body"])["headers"]
    assert (headers.get("X-Role"), headers["x-role"], headers["X-Keep"]) == (None, "user", "k")


def test_service_response_runs_the_response_phase(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("DATAKIT_TEST_TOKEN", "s3cr3t-value")
    config = write(tmp_path, "flow.yaml", BOTH_PHASES)
    upstream = write(tmp_path, "upstream.yaml", UPSTREAM)
    status, result, err = run_json(capsys, config, "--path", "/p?q=7", "--service-response-file", upstream)
    assert (status, err) == (0, "")
    sent = result["upstream_request"]
    assert sent["url"] == "http://localhost:8000/p?q=7"
    assert header(sent, "X-Q") == "7"
    assert header(sent, "Authorization") == "Bearer ********", "vault secrets are masked in the output"
    response = result["response"]
    assert response["status"] == 203  # kong.response.status
    assert header(response, "X-Upstream") == "yes"
    assert json.loads(response["body"]) == {"wrapped": {"hello": "world"}, "upstream_status": 200}
    assert result["properties_set"] == {"kong.response.status": 203}


def test_without_a_service_response_the_response_phase_is_reported_as_not_run(
    tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("DATAKIT_TEST_TOKEN", "token-value")
    assert main(["run", write(tmp_path, "flow.yaml", BOTH_PHASES)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("=== upstream request ===\nGET / HTTP/1.1\n")
    assert "=== response ===" not in captured.out
    assert "did not run: give the upstream answer with --service-response-file" in captured.err


def test_property_options_are_what_property_nodes_read(tmp_path, capsys) -> None:
    config = write(
        tmp_path,
        "props.yaml",
        """
nodes:
  - {name: CONSUMER, type: property, property: kong.client.consumer}
  - {name: SHARED, type: property, property: kong.ctx.shared.tier, input: CONSUMER}
  - {name: EXIT, type: exit, inputs: {body: CONSUMER}}
""",
    )
    status, result, _ = run_json(capsys, config, "--property", 'kong.client.consumer={"username": "ann"}')
    assert status == 0
    assert json.loads(result["response"]["body"]) == {"username": "ann"}
    assert result["properties_set"] == {"kong.ctx.shared.tier": {"username": "ann"}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["-H", "no colon"], "expected 'Name: value'", id="header"),
        pytest.param(["--property", "novalue"], "expected NAME=VALUE", id="property"),
        pytest.param(["--path", "relative"], "expected a path starting with /", id="path"),
        pytest.param(["--request-file", "{missing}"], "cannot read request file", id="missing request file"),
        pytest.param(["--fixtures", "{bad_fixtures}"], "expected a list of fixtures", id="fixtures"),
        pytest.param(
            ["--service-response-file", "{bad_response}"], "unknown key(s) stauts", id="response file"
        ),
    ],
)
def test_bad_arguments_and_files_give_status_2(tmp_path, capsys, args: list[str], message: str) -> None:
    files = {
        "missing": str(tmp_path / "missing.yaml"),
        "bad_fixtures": write(tmp_path, "fx.yaml", "url: x\n"),
        "bad_response": write(tmp_path, "up.yaml", "stauts: 200\n"),
    }
    assert main(["run", str(ANIMAL_FACTS), *(a.format(**files) for a in args)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


def test_an_invalid_config_gives_status_2_with_located_errors(tmp_path, capsys) -> None:
    config = write(tmp_path, "bad.yaml", "nodes:\n  - {name: A, type: exit, status: 99}\n")
    assert main(["run", config]) == 2
    assert (
        f"{config}:2:27: node #1 (A), field 'status': value must be at least 200" in capsys.readouterr().err
    )
