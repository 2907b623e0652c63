"""`datakit_show_calls` below the proxy: what `send_recorded` captures of a real call, and the flow
`callflows.call_flow` makes of it (links, masking, encodings). End to end: tests/e2e/test_show_calls.py."""

from __future__ import annotations

import asyncio
import gzip
import json
import warnings

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

with warnings.catch_warnings():
    # mitmproxy.addons imports ldap3, which uses names pyasn1 deprecated; not ours to fix.
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy.addons import view
    from mitmproxy.test import taddons

from mitm_datakit.context import RunContext
from mitm_datakit.http_client import CallExchange, CallFailed, HttpClient, InboundResponse, OutboundRequest
from mitm_datakit.proxy.callflows import CALL_KEY, CALLS_KEY, CallFlows, call_flow
from mitm_datakit.runtime import Run

from .conftest import LocalServer
from .support import DEFAULT_REQUEST, DictGateway, plan_of

BOUND = 10.0
SECRET = "v4ult-s3cr3t+/="


async def test_recording_keeps_the_headers_really_sent(local_server: LocalServer, http_client: HttpClient):
    exchanges: list[CallExchange] = []
    request = OutboundRequest("POST", local_server.url("/echo?a=1"), [("X-Mine", "yes")], b'{"k":1}', BOUND)
    response = await http_client.send_recorded(request, exchanges.append)

    [exchange] = exchanges
    [seen] = local_server.requests
    assert exchange.sent_headers == seen.headers  # Host, Accept, User-Agent, Content-Length... as on the wire
    assert ("X-Mine", "yes") in exchange.sent_headers
    assert exchange.response == response
    assert (exchange.error, exchange.reason, exchange.http_version) == (None, "OK", "HTTP/1.1")
    assert exchange.started <= exchange.response_started <= exchange.ended


async def test_a_refused_call_is_reported_with_the_error_it_raised(refused_url: str, http_client: HttpClient):
    exchanges: list[CallExchange] = []
    request = OutboundRequest("GET", refused_url, [("X-Mine", "yes")], None, BOUND)
    with pytest.raises(CallFailed) as failed:
        await http_client.send_recorded(request, exchanges.append)

    [exchange] = exchanges
    assert exchange.error == str(failed.value)
    assert exchange.response is None and exchange.response_started is None
    assert exchange.sent_headers == [("X-Mine", "yes")]  # nothing was sent: what the node asked for


async def test_a_cancelled_call_is_reported(local_server: LocalServer, http_client: HttpClient):
    exchanges: list[CallExchange] = []
    request = OutboundRequest("GET", local_server.url("/slow"), [], None, BOUND)
    task = asyncio.create_task(http_client.send_recorded(request, exchanges.append))
    async with asyncio.timeout(BOUND):
        await local_server.slow_started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [exchange.error for exchange in exchanges] == ["call canceled"]


async def test_on_call_hears_of_each_call_node(local_server: LocalServer, http_client: HttpClient):
    local_server.json_route("/a", {"a": 1})
    local_server.json_route("/b", {"b": 2}, status=403)
    plan = plan_of(
        {"nodes": [{"name": "A", "type": "call", "url": local_server.url("/a")},
                   {"name": "B", "type": "call", "url": local_server.url("/b")}]}
    )
    told: list[tuple[str, int | None]] = []

    def on_call(node: str, exchange: CallExchange) -> None:
        told.append((node, exchange.response.status if exchange.response else None))

    run = Run(plan, RunContext("0" * 32, DictGateway(), http_client, on_call=on_call))
    run.start(DEFAULT_REQUEST)
    await run.advance()
    assert sorted(told) == [("A", 200), ("B", 403)]  # a call that fails its node is shown all the same
    assert run.failure is not None and run.failure.node.name == "B"


def make_exchange(
    *,
    url: str = "https://api.test/v1/items?q=1",
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    response: InboundResponse | None = None,
    error: str | None = None,
) -> CallExchange:
    sent = headers if headers is not None else [("Host", "api.test"), ("X-Plain", "visible")]
    return CallExchange(
        request=OutboundRequest("POST", url, sent, body, BOUND),
        sent_headers=sent,
        started=1000.0,
        ended=1000.5,
        response=response,
        response_started=1000.25 if response is not None else None,
        reason="OK",
        error=error,
    )


def test_a_call_flow_is_linked_and_carries_the_exchange():
    answer = InboundResponse(201, [("Content-Type", "application/json")], b'{"id":7}')
    flow = call_flow(make_exchange(body=b'{"n":1}', response=answer), node="API", parent_id="p-1", secrets=[])

    assert flow.metadata[CALL_KEY] == {"parent": "p-1", "node": "API"}
    assert flow.comment == "datakit call API for p-1"
    assert not flow.live
    assert (flow.request.method, flow.request.url) == ("POST", "https://api.test/v1/items?q=1")
    assert flow.request.headers.fields == ((b"Host", b"api.test"), (b"X-Plain", b"visible"))  # none added
    assert flow.request.content == b'{"n":1}'
    assert (flow.server_conn.address, flow.server_conn.sni) == (("api.test", 443), "api.test")
    assert (flow.response.status_code, flow.response.content) == (201, b'{"id":7}')
    assert (flow.request.timestamp_start, flow.response.timestamp_start, flow.response.timestamp_end) == (
        1000.0, 1000.25, 1000.5
    )
    assert flow.error is None


def test_a_call_without_an_answer_is_a_flow_with_an_error():
    failed = make_exchange(error="failed to connect to api.test:443")
    flow = call_flow(failed, node="API", parent_id="p", secrets=[])
    assert flow.response is None
    assert (flow.error.msg, flow.error.timestamp) == ("failed to connect to api.test:443", 1000.5)


def test_a_compressed_answer_is_kept_as_it_came():
    body = b'{"big":"' + b"x" * 200 + b'"}'
    answer = InboundResponse(200, [("Content-Encoding", "gzip")], body)  # aiohttp hands it over decoded
    flow = call_flow(make_exchange(response=answer), node="API", parent_id="p", secrets=[])
    assert flow.response.content == body
    assert gzip.decompress(flow.response.raw_content) == body


@pytest.mark.parametrize(
    "call, where",
    [
        (make_exchange(headers=[("Authorization", f"Bearer {SECRET}")]), "request header, by name"),
        (make_exchange(headers=[("X-Token", SECRET)]), "request header holding a vault value"),
        (make_exchange(url=f"https://api.test/v1?key={SECRET}"), "URL, raw"),
        (make_exchange(url="https://api.test/v1?key=v4ult-s3cr3t%2B%2F%3D"), "URL, percent-encoded"),
        (make_exchange(body=json.dumps({"key": SECRET}).encode()), "request body"),
        (make_exchange(response=InboundResponse(200, [("Set-Cookie", "sid=abc")], b"")), "response header"),
        (
            make_exchange(
                headers=[("Api-Key", "static-key-from-config")],
                response=InboundResponse(200, [], b'{"you sent": "static-key-from-config"}'),
            ),
            "a masked header's value echoed in the response body",
        ),
        (make_exchange(response=InboundResponse(200, [("X-Echo", SECRET)], SECRET.encode())), "response"),
    ],
)
def test_secrets_are_masked_wherever_they_are(call: CallExchange, where: str):
    flow = call_flow(call, node="API", parent_id="p", secrets=[SECRET])
    shown = json.dumps(flow.get_state(), default=repr)
    for hidden in (SECRET, "v4ult-s3cr3t%2B%2F%3D", "Bearer", "sid=abc", "static-key-from-config"):
        assert hidden not in shown, where
    assert "********" in shown, where


def test_a_short_masked_header_value_is_not_scrubbed_from_bodies():
    call = make_exchange(
        headers=[("X-Consumer-Id", "7")], response=InboundResponse(200, [], b'{"items": [7, 17]}')
    )
    flow = call_flow(call, node="API", parent_id="p", secrets=[])
    assert flow.request.headers["X-Consumer-Id"] == "********"
    assert flow.response.content == b'{"items": [7, 17]}'


async def test_calls_are_not_recorded_without_on_call(local_server: LocalServer):
    class SendOnly(HttpClient):
        async def send_recorded(self, *args: object, **kwargs: object) -> InboundResponse:
            raise AssertionError("recorded a call nobody asked to see")

    local_server.json_route("/a", {"a": 1})
    client = SendOnly()
    try:
        run = Run(plan_of({"nodes": [{"name": "A", "type": "call", "url": local_server.url("/a")}]}),
                  RunContext("0" * 32, DictGateway(), client))
        run.start(DEFAULT_REQUEST)
        await run.advance()
    finally:
        await client.close()
    assert run.failure is None


class HookLog:
    """An addon that notes which hooks a flow went through."""

    def __init__(self) -> None:
        self.hooks: list[tuple[str, str]] = []

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self.hooks.append(("requestheaders", flow.id))

    def request(self, flow: http.HTTPFlow) -> None:
        self.hooks.append(("request", flow.id))

    def response(self, flow: http.HTTPFlow) -> None:
        self.hooks.append(("response", flow.id))

    def error(self, flow: http.HTTPFlow) -> None:
        self.hooks.append(("error", flow.id))


@pytest.mark.parametrize(
    "call, hook",
    [
        (make_exchange(response=InboundResponse(200, [], b"")), "response"),
        (make_exchange(error="timeout"), "error"),
    ],
)
async def test_a_recorded_call_reaches_the_view_and_the_finished_flow_hooks(call: CallExchange, hook: str):
    flows, log = view.View(), HookLog()
    parent = tflow.tflow()
    with taddons.context(flows, log):
        CallFlows().recorder(parent)("API", call)
        [call_id] = parent.metadata[CALLS_KEY]
        for _ in range(100):  # publishing is a task of its own: let it run (bounded)
            if log.hooks:
                break
            await asyncio.sleep(0)
    assert flows.get_by_id(call_id) is not None
    assert log.hooks == [(hook, call_id)]  # never the request hooks: the request was sent already
