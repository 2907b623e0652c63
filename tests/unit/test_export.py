"""`datakit export` (cli/export.py): which recorded flows become routes, and what each route answers.
The round trip through real proxies is in tests/e2e/test_views.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mitmproxy import http, io
from mitmproxy.test import tflow

from mitm_datakit.cli import main
from mitm_datakit.cli.export import collect, declarative, render
from mitm_datakit.kong.deployment import load_deployment
from mitm_datakit.kong.router import RequestFacts


def recorded(method: str, path: str, response: http.Response | None) -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.request.method, flow.request.path = method, path
    flow.response = response
    return flow


def save(tmp_path: Path, flows: list[http.HTTPFlow]) -> Path:
    path = tmp_path / "flows.out"
    with path.open("wb") as f:
        writer = io.FlowWriter(f)
        for flow in flows:
            writer.add(flow)
    return path


def test_one_route_per_method_and_path_first_recording_wins():
    flows = [
        recorded("GET", "/a?x=1", http.Response.make(200, b'{"n": 1}', {"Content-Type": "application/json"})),
        recorded("GET", "/a?x=2", http.Response.make(200, b'{"n": 2}', {"Content-Type": "application/json"})),
        recorded("POST", "/a", http.Response.make(201, b"made", {"Content-Type": "text/plain"})),
    ]
    entries, skipped = collect(flows)
    assert [(e.method, e.path, e.status, e.body) for e in entries] == [
        ("GET", "/a", 200, {"n": 1}),
        ("POST", "/a", 201, "made"),
    ]
    assert skipped == []


def test_hop_by_hop_and_framing_headers_are_dropped_repeated_ones_kept():
    response = http.Response.make(
        200,
        b"hi",
        [
            (b"Connection", b"keep-alive"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Content-Length", b"2"),
            (b"X-Kong-Request-Id", b"abc"),
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
            (b"X-Kept", b"yes"),
        ],
    )
    [entry], _ = collect([recorded("GET", "/", response)])
    assert entry.headers == {"Set-Cookie": ["a=1", "b=2"], "X-Kept": "yes"}


def test_bodies_json_documents_as_data_everything_else_as_text():
    def body(content: bytes, content_type: str) -> object:
        response = http.Response.make(200, content, {"Content-Type": content_type})
        [entry], _ = collect([recorded("GET", "/", response)])
        return entry.body

    assert body(b"[1, 2]", "application/problem+json") == [1, 2]
    assert body(b'"just a string"', "application/json") == '"just a string"'  # the exit would drop its quotes
    assert body(b"{not json", "application/json") == "{not json"
    assert body(b"<a/>", "application/xml") == "<a/>"
    assert body(b"", "text/plain") is None


def test_flows_that_cannot_be_answered_are_skipped_with_a_reason():
    flows = [
        recorded("GET", "/none", None),
        recorded("GET", "/binary", http.Response.make(200, b"\xff\xfe\x00", {"Content-Type": "image/png"})),
        recorded("GET", "/switch", http.Response.make(101, b"", {})),
    ]
    entries, skipped = collect(flows)
    assert entries == []
    assert skipped == [
        "GET /none: no response was recorded",
        "GET /binary: the body is binary, which a declarative file cannot hold",
        "GET /switch: status 101 cannot be answered by an exit node",
    ]


def test_the_export_loads_and_routes_exact_paths_only():
    flows = [
        recorded("GET", "/v1.0/items+new", http.Response.make(200, b"{}", {"Content-Type": "text/plain"})),
        recorded("GET", "/", http.Response.make(200, b"root", {})),
    ]
    entries, _ = collect(flows)
    deployment = load_deployment(render(declarative(entries)), source="mock.yaml")

    def routed(method: str, path: str) -> bool:
        return deployment.select(RequestFacts(method, "mock.test", path, "http", {})).plan is not None

    assert routed("GET", "/v1.0/items+new")
    assert routed("GET", "/")
    assert not routed("GET", "/v1x0/items+new")  # the dot is literal
    assert not routed("GET", "/v1.0/items+new/more")
    assert not routed("POST", "/")


def test_command_writes_stdout_or_a_file(tmp_path, capsys):
    flows = save(tmp_path, [recorded("GET", "/a", http.Response.make(200, b"ok", {}))])
    assert main(["export", str(flows)]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert document["_format_version"] == "3.0"
    [route] = document["services"][0]["routes"]
    assert route["methods"] == ["GET"] and route["paths"] == ["~/a$"]
    out = tmp_path / "mock.yaml"
    assert main(["export", str(flows), "-o", str(out)]) == 0
    assert yaml.safe_load(out.read_text()) == document


@pytest.mark.parametrize("content", [None, b"not a flow file"], ids=["missing", "garbage"])
def test_unreadable_flow_files_fail_with_status_1(tmp_path, capsys, content):
    path = tmp_path / "flows.out"
    if content is not None:
        path.write_bytes(content)
    assert main(["export", str(path)]) == 1
    assert "datakit export: cannot read" in capsys.readouterr().err


def test_a_file_without_usable_responses_fails_with_status_1(tmp_path, capsys):
    assert main(["export", str(save(tmp_path, [recorded("GET", "/", None)]))]) == 1
    assert "holds no response that can be exported" in capsys.readouterr().err
