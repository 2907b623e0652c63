"""Tests of the e2e harness itself. They use throwaway mitmproxy scripts, never the Datakit engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from conftest import ExpectExit, MitmdumpFactory
from harness import MitmdumpError, StubRequest, StubResponse, StubServer

ANSWER_EVERYTHING = """
from mitmproxy import http

async def request(flow: http.HTTPFlow) -> None:
    flow.response = http.Response.make(299, b'{"from": "addon"}', {"content-type": "application/json"})
"""
PASS_THROUGH = "# an addon that does nothing: every request goes to the reverse-proxy upstream\n"
RAISE_AT_IMPORT = 'raise RuntimeError("boom at import")\n'
LOG_WARNING = """
import logging

def running() -> None:
    logging.warning("harness-test: warning from running()")
"""


def script(tmp_path: Path, text: str, name: str = "addon.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- StubServer --------------------------------------------------------------------------------------------------


def test_echo_reports_method_path_query_headers_and_body(upstream: StubServer, client: httpx.Client) -> None:
    r = client.post(
        upstream.url + "/any/where?a=1&a=2&b=x",
        headers=[("X-Mixed-Case", "v1"), ("x-mixed-case", "v2"), ("X-Single", "s")],
        json={"k": [1, 2]},
    )
    assert r.status_code == 200
    echo = r.json()
    assert (echo["method"], echo["path"]) == ("POST", "/any/where")
    assert echo["query"] == {"a": ["1", "2"], "b": "x"}
    assert echo["headers"]["X-Mixed-Case"] == ["v1", "v2"]  # first casing kept, repeats grouped
    assert echo["headers"]["X-Single"] == "s"
    assert echo["body"] == '{"k":[1,2]}'
    assert echo["json"] == {"k": [1, 2]}

    text_echo = client.put(upstream.url + "/t", content=b"not json").json()
    assert text_echo["body"] == "not json" and "json" not in text_echo


def test_requests_are_recorded(stub: StubServer, client: httpx.Client) -> None:
    stub.route("GET", "/json", json={"ok": True}, status=201, headers={"X-Reply": "yes"})
    r = client.get(stub.url + "/json?q=1", headers={"Authorization": "Bearer t"})
    assert (r.status_code, r.json(), r.headers["x-reply"]) == (201, {"ok": True}, "yes")

    client.post(stub.url + "/other", content=b"raw")
    [seen] = stub.requests_to("/json")
    assert (seen.method, seen.query_string, seen.query) == ("GET", "q=1", {"q": "1"})
    assert seen.header("authorization") == "Bearer t" and seen.body == b""
    assert [r.path for r in stub.requests] == ["/json", "/other"]
    assert stub.requests_to("/other", method="POST")[0].body == b"raw"


def test_unknown_path_is_404_on_a_stub(stub: StubServer, client: httpx.Client) -> None:
    r = client.get(stub.url + "/nope")
    assert r.status_code == 404 and r.json()["path"] == "/nope"


def test_text_body_prefix_and_method_routes(stub: StubServer, client: httpx.Client) -> None:
    stub.route("*", "/api/*", text="prefix")
    stub.route("GET", "/api/v2/*", body=b"\x00bin", headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    stub.route("DELETE", "/api/v2/x", status=204)
    assert client.get(stub.url + "/api/v1/thing").text == "prefix"
    r = client.get(stub.url + "/api/v2/thing")
    assert r.content == b"\x00bin" and r.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert client.delete(stub.url + "/api/v2/x").status_code == 204
    assert client.post(stub.url + "/api/v2/x").text == "prefix"  # GET-only prefix does not match POST


def test_handler_routes(stub: StubServer, client: httpx.Client) -> None:
    def token(req: StubRequest) -> tuple[int, dict[str, str], object]:
        return 200, {"X-Grant": req.json()["grant"]}, {"access_token": "t-1"}

    async def slow_teapot(req: StubRequest) -> StubResponse:
        return StubResponse(418, text=f"{req.method} teapot", delay=0.01)

    stub.route("POST", "/token", handler=token)
    stub.route("GET", "/teapot", handler=slow_teapot)
    stub.route("GET", "/list", handler=lambda req: [1, 2])
    r = client.post(stub.url + "/token", json={"grant": "client_credentials"})
    assert (r.json(), r.headers["x-grant"]) == ({"access_token": "t-1"}, "client_credentials")
    r = client.get(stub.url + "/teapot")
    assert (r.status_code, r.text) == (418, "GET teapot")
    assert client.get(stub.url + "/list").json() == [1, 2]


async def test_barrier_releases_when_all_paths_are_requested(stub: StubServer) -> None:
    gate = stub.barrier("/a", "/b", responses={"/a": {"cat": 1}})
    async with httpx.AsyncClient(trust_env=False, timeout=10) as ac:
        ra, rb = await asyncio.gather(ac.get(stub.url + "/a"), ac.get(stub.url + "/b"))
    assert (ra.status_code, ra.json()) == (200, {"cat": 1})
    assert (rb.status_code, rb.json()) == (200, {"path": "/b", "barrier": "released"})
    assert gate.released and gate.arrived == {"/a", "/b"}


def test_barrier_times_out_with_504_when_requests_are_sequential(stub: StubServer, client: httpx.Client) -> None:
    gate = stub.barrier("/a", "/b", timeout=0.2)
    r = client.get(stub.url + "/a")
    assert r.status_code == 504 and r.json()["arrived"] == ["/a"]
    assert not gate.released
    # /b completes the set, so it is released at once; the barrier then stays open.
    assert client.get(stub.url + "/b").status_code == 200
    assert client.get(stub.url + "/a").status_code == 200


def test_wait_for_requests_is_bounded(stub: StubServer, client: httpx.Client) -> None:
    client.get(stub.url + "/x")
    assert len(stub.wait_for_requests(1, path="/x", timeout=1)) == 1
    with pytest.raises(TimeoutError, match="1 of 2"):
        stub.wait_for_requests(2, path="/x", timeout=0.05)


def test_delay_route(stub: StubServer, client: httpx.Client) -> None:
    stub.delay("/slow", 0.3, json={"late": True})
    with pytest.raises(httpx.ReadTimeout):
        client.get(stub.url + "/slow", timeout=0.05)
    assert client.get(stub.url + "/slow").json() == {"late": True}


# -- mitmdump ------------------------------------------------------------------------------------------------------


def test_proxy_answers_through_an_addon(mitmdump: MitmdumpFactory, client: httpx.Client, tmp_path: Path) -> None:
    # The upstream is dead: answering locally in reverse mode needs the lazy connection strategy.
    proxy = mitmdump(None, "--set", "connection_strategy=lazy", script=script(tmp_path, ANSWER_EVERYTHING),
                     upstream="http://127.0.0.1:1")
    r = client.get(proxy.url + "/hello")
    assert (r.status_code, r.json()) == (299, {"from": "addon"})
    assert f"listening at 127.0.0.1:{proxy.port}" in proxy.output()


def test_proxy_forwards_to_the_upstream_fixture(
    mitmdump: MitmdumpFactory, upstream: StubServer, client: httpx.Client, tmp_path: Path
) -> None:
    # The config is written to a file and passed as datakit_config even though this script ignores it.
    proxy = mitmdump({"nodes": []}, "--set", "connection_strategy=lazy", script=script(tmp_path, PASS_THROUGH))
    r = client.post(proxy.url + "/via/proxy?x=1", headers={"X-Test": "1"}, content=b"payload")
    assert r.status_code == 200 and r.json()["path"] == "/via/proxy"
    [seen] = upstream.requests_to("/via/proxy")
    assert (seen.method, seen.body, seen.header("x-test")) == ("POST", b"payload", "1")
    assert proxy.config_path is not None and proxy.config_path.read_text() == "nodes: []\n"


def test_proxy_log_keeps_warnings(mitmdump: MitmdumpFactory, tmp_path: Path) -> None:
    proxy = mitmdump(None, script=script(tmp_path, LOG_WARNING), upstream="http://127.0.0.1:1")
    proxy.wait_for_output(r"harness-test: warning from running\(\)", timeout=5)
    assert proxy.stop() is not None and proxy.returncode is not None


def test_proxy_start_fails_fast_with_output(mitmdump: MitmdumpFactory, tmp_path: Path) -> None:
    with pytest.raises(MitmdumpError, match=r"(?s)exited with rc=1.*boom at import"):
        mitmdump(None, script=script(tmp_path, RAISE_AT_IMPORT), upstream="http://127.0.0.1:1")


def test_expect_exit_reports_nonzero_rc(mitmdump_expect_exit: ExpectExit, tmp_path: Path) -> None:
    rc, output = mitmdump_expect_exit("nodes: []\n", timeout=15, script=script(tmp_path, RAISE_AT_IMPORT))
    assert rc != 0
    assert "boom at import" in output and "Error logged during startup" in output


def test_expect_exit_raises_when_mitmdump_keeps_running(mitmdump_expect_exit: ExpectExit, tmp_path: Path) -> None:
    with pytest.raises(MitmdumpError, match="still running"):
        mitmdump_expect_exit(None, timeout=1, script=script(tmp_path, PASS_THROUGH))
