"""What a Datakit flow shows in mitmproxy: its comment, its mark, the `~comment` filter, the node record
in flow.metadata and the "datakit" content view, all read back from a flow file that mitmdump saved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import contentviews, flowfilter, http, io
from mitmproxy.test import tflow

from mitm_datakit.cli import main
from mitm_datakit.proxy import views

SECRET = "v13w-s3cr3t-4b5c"

CONFIG = """
debug: true
resources:
  vault:
    token: "{vault://env/dk-view-token}"
nodes:
- name: API
  type: call
  url: %s/flaky
  inputs:
    headers: request.headers
- name: CHECK
  type: jq
  inputs:
    api: API.body
    key: vault.token
  jq: 'if .api.ok then {ok: true, auth: ("Bearer " + .key)} else error("told to fail, key " + .key) end'
- name: EXIT
  type: exit
  inputs:
    body: CHECK
"""


@pytest.fixture
def datakit_view() -> Iterator[None]:
    """The view as the addon registers it when it loads (these tests read flows outside mitmdump)."""
    views.register()
    yield
    views.unregister()


def record(mitmdump, stub, client, tmp_path: Path, *extra: str) -> list[http.HTTPFlow]:
    """Three requests through mitmdump -w: a success, a failure, a success with a debug trace."""
    stub.route("GET", "/flaky", handler=lambda req: {"ok": req.header("X-Mode") != "fail"})
    saved = tmp_path / "flows.out"
    proxy = mitmdump(CONFIG % stub.url, "-w", str(saved), *extra, env={"DK_VIEW_TOKEN": SECRET})
    assert client.get(proxy.url + "/ok").status_code == 200
    assert client.get(proxy.url + "/fail", headers={"X-Mode": "fail"}).status_code == 500
    assert client.get(proxy.url + "/traced", headers={"X-DataKit-Debug-Trace": "on"}).status_code == 200
    proxy.stop()  # flushes the flow file
    with saved.open("rb") as f:
        flows = [flow for flow in io.FlowReader(f).stream() if isinstance(flow, http.HTTPFlow)]
    return sorted(flows, key=lambda flow: flow.request.timestamp_start)


def test_saved_flows_carry_comment_mark_and_record(mitmdump, stub, client, tmp_path):
    ok, failed, traced = record(mitmdump, stub, client, tmp_path)

    assert ok.comment.startswith("datakit PLAN_COMPLETE: 3/3 nodes ran in ")
    assert not ok.marked
    assert failed.comment.startswith("datakit PLAN_ERROR: 2/3 nodes ran in ")
    assert failed.comment.endswith("; CHECK failed: jq: told to fail, key ********")
    assert failed.marked == ":red_circle:"
    assert "\n" not in failed.comment

    datakit_flows = flowfilter.parse("~comment datakit")
    assert all(datakit_flows(flow) for flow in (ok, failed, traced))
    failures = flowfilter.parse("~comment PLAN_ERROR")
    assert [flow.request.path for flow in (ok, failed, traced) if failures(flow)] == ["/fail"]

    record_ok = ok.metadata["datakit"]
    assert record_ok["status"] == "PLAN_COMPLETE"
    assert [(n["name"], n["type"], n["status"]) for n in record_ok["nodes"]] == [
        ("API", "call", "NODE_COMPLETE"),
        ("CHECK", "jq", "NODE_COMPLETE"),
        ("EXIT", "exit", "NODE_COMPLETE"),
    ]
    assert json.loads(record_ok["nodes"][1]["output"]) == {"ok": True, "auth": "Bearer ********"}
    # Timings and inputs are kept without a debug trace too; the call's input (its Authorization) is masked.
    assert all(n["duration_ms"] >= 0 and n["start_ms"] >= 0 for n in record_ok["nodes"])
    assert record_ok["nodes"][0]["start_ms"] <= record_ok["nodes"][1]["start_ms"]
    assert "inputs" in record_ok["nodes"][1]

    record_failed = failed.metadata["datakit"]
    assert record_failed["failed_node"] == "CHECK"
    assert record_failed["nodes"][1]["error"] == "jq: told to fail, key ********"
    assert record_failed["nodes"][2]["status"] == "NODE_PENDING"

    timed = traced.metadata["datakit"]["nodes"]
    assert all(n["duration_ms"] >= 0 and n["start_ms"] >= 0 for n in timed)

    for flow in (ok, failed, traced):
        assert SECRET not in flow.comment
        assert SECRET not in json.dumps(flow.metadata)


def test_the_datakit_view_renders_the_record(mitmdump, stub, client, tmp_path, datakit_view):
    ok, failed, traced = record(mitmdump, stub, client, tmp_path)

    description, lines, error = contentviews.get_message_content_view("datakit", failed.response, failed)
    text = "\n".join("".join(piece for _, piece in line) for line in lines)
    assert error is None
    assert description == "Datakit run"
    assert text.splitlines()[0] == failed.comment
    assert "NODE_COMPLETE API (call)" in text
    assert "error: jq: told to fail, key ********" in text
    assert SECRET not in text

    _, lines, _ = contentviews.get_message_content_view("datakit", traced.response, traced)
    rows = ["".join(piece for _, piece in line) for line in lines]
    api = next(row for row in rows if row.endswith("API (call)"))
    assert api.split()[0] != "-"  # a start offset, in ms

    # "auto" is not taken over: the body still shows as JSON.
    description, _, _ = contentviews.get_message_content_view("auto", ok.response, ok)
    assert description.startswith("JSON")


def test_datakit_record_off_keeps_the_comment_only(mitmdump, stub, client, tmp_path):
    ok, failed, _ = record(mitmdump, stub, client, tmp_path, "--set", "datakit_record=false")
    assert ok.comment.startswith("datakit PLAN_COMPLETE")
    assert failed.marked == ":red_circle:"
    assert "nodes" not in ok.metadata["datakit"]
    assert failed.metadata["datakit"]["failed_node"] == "CHECK"

    _, lines = views.view(b"", flow=ok)
    assert "datakit_record is off" in "\n".join("".join(p for _, p in line) for line in lines)


def test_the_view_on_a_flow_datakit_never_touched():
    description, lines = views.view(b"", flow=tflow.tflow(resp=True))
    assert description == "Datakit"
    assert "did not run a plan" in "".join(p for line in lines for _, p in line)


# -- record to mock ---------------------------------------------------------------------------------


def test_export_round_trip_answers_the_recorded_responses_offline(mitmdump, stub, client, tmp_path):
    cookies = [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    stub.route("GET", "/users", json=[{"id": 1}], headers=[("X-Rate", "5"), *cookies])
    stub.route("POST", "/users", status=201, json={"id": 2})
    stub.route("GET", "/notes/7", text="hello\nworld", headers={"Content-Type": "text/plain; charset=utf-8"})
    stub.route("DELETE", "/notes/7", status=204)
    requests = [
        ("GET", "/users"), ("POST", "/users"), ("GET", "/notes/7"), ("DELETE", "/notes/7"), ("GET", "/nowhere")
    ]

    saved = tmp_path / "recorded.out"
    recorder = mitmdump(None, "-w", str(saved), upstream=stub)
    recorded = [client.request(method, recorder.url + path) for method, path in requests]
    client.get(recorder.url + "/users?page=2")  # the same route again: the first recording wins
    recorder.stop()

    mock = tmp_path / "mock.yaml"
    assert main(["export", str(saved), "-o", str(mock)]) == 0
    calls = len(stub.requests)
    replayer = mitmdump(mock, "--set", "connection_strategy=lazy", upstream="http://127.0.0.1:1")
    replayed = [client.request(method, replayer.url + path) for method, path in requests]

    assert len(stub.requests) == calls  # answered by the mock alone
    for before, after in zip(recorded, replayed, strict=True):
        assert after.status_code == before.status_code
        assert after.content == before.content or after.json() == before.json()
        assert after.headers.get("content-type") == before.headers.get("content-type")
    assert replayed[0].headers["X-Rate"] == "5"
    assert replayed[0].headers.get_list("Set-Cookie") == ["a=1", "b=2"]
    assert replayed[2].text == "hello\nworld"
    assert replayed[4].status_code == 404  # the stub's own 404, recorded like any other answer
    # A method and path that was never recorded is not invented: Kong's "no Route matched".
    assert client.put(replayer.url + "/users").status_code == 404
    assert "no Route matched" in client.put(replayer.url + "/users").text


LEGACY = """
nodes:
- name: BOOM
  type: jq
  inputs:
  - req: request.headers
  jq: 'error("no way")'
- name: EXIT
  type: exit
  inputs:
  - body: BOOM
"""


def test_a_3_10_config_gets_the_comment_and_mark(mitmdump, client, tmp_path):
    saved = tmp_path / "legacy.out"
    proxy = mitmdump(LEGACY, "-w", str(saved))
    assert client.get(proxy.url + "/").status_code == 500
    proxy.stop()
    with saved.open("rb") as f:
        [flow] = list(io.FlowReader(f).stream())
    assert flow.comment.startswith("datakit PLAN_ERROR: 1/2 nodes ran in "), flow.comment
    assert "; BOOM failed: " in flow.comment and "no way" in flow.comment
    assert flow.marked == ":red_circle:"
    _, lines = views.view(b"", flow=flow)
    assert "No node timeline" in "\n".join("".join(p for _, p in line) for line in lines)


def test_the_record_covers_the_response_phase(mitmdump, upstream, client, tmp_path):
    saved = tmp_path / "phases.out"
    config = {
        "nodes": [
            {"name": "TAG", "type": "jq", "input": "service_response.body", "jq": "{path: .path}",
             "output": "response.body"},
        ]
    }
    proxy = mitmdump(config, "-w", str(saved))
    assert client.get(proxy.url + "/x").json() == {"path": "/x"}
    proxy.stop()
    with saved.open("rb") as f:
        [flow] = list(io.FlowReader(f).stream())
    assert flow.comment.startswith("datakit PLAN_COMPLETE: 1/1 nodes ran in ")
    [tag] = flow.metadata["datakit"]["nodes"]
    assert {k: tag[k] for k in ("name", "type", "status", "output")} == {
        "name": "TAG", "type": "jq", "status": "NODE_COMPLETE", "output": '{"path":"/x"}'
    }
    assert json.loads(tag["inputs"])["path"] == "/x"  # the service response body it was given
    assert tag["start_ms"] >= 0 and tag["duration_ms"] >= 0
