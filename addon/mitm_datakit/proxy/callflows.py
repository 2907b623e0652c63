"""`datakit_show_calls`: each `call` node's exchange becomes a flow of its own, linked to its client flow.

The engine records what went over the wire (`http_client.CallExchange`); here it becomes an
`HTTPFlow` and is handed to mitmproxy's tools as a finished flow: added to the view (mitmweb, the
console), then through the `response` (or `error`) hook, which the dumper prints and `-w` saves.
The `requestheaders`/`request` hooks are not run for it: the request has already been sent, and
request-side addons (anticache, proxyauth, stickyauth, server replay) would rewrite or answer it,
so the flow would no longer show what was sent.

Call flows land in views and saved files: secret-bearing headers are masked by name, and vault values
(and the values of those masked headers, when an API echoes them) are scrubbed from URL, headers and
bodies, as in traces (spec §7.5). Such a flow is a record, not a replayable request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

from mitmproxy import connection, ctx, flow as mflow, http
from mitmproxy.net.http import url as urls
from mitmproxy.proxy.layers.http import HttpErrorHook, HttpResponseHook

from ..http_client import CallExchange
from ..redact import MASKED_HEADERS, REDACTED, scrub

logger = logging.getLogger("mitm_datakit")

CALL_KEY = "datakit_call"  # on a call flow: {"parent": client flow id, "node": node name}
CALLS_KEY = "datakit_calls"  # on the client flow: its call flows' ids, in the order the calls ended
COMMENT_PREFIX = "datakit call"
# A masked header's value is also scrubbed from bodies (an echoing API); shorter ones are left alone,
# or a `X-Consumer-Id: 7` would turn every 7 of a body into ********.
MIN_SCRUBBED_HEADER_VALUE = 8
UNKNOWN_ADDRESS = ("0.0.0.0", 0)


class CallFlows:
    """Publishes call flows; one per addon, it keeps the tasks that hand them to mitmproxy alive."""

    def __init__(self) -> None:
        self._publishing: set[asyncio.Task[None]] = set()

    def recorder(self, parent: http.HTTPFlow) -> CallRecorder:
        return CallRecorder(parent, self._publish)

    def _publish(self, flow: http.HTTPFlow) -> None:
        # Not awaited by the call: showing a call must not delay the nodes that wait for its answer.
        task = asyncio.get_running_loop().create_task(publish(flow))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)


class CallRecorder:
    """The `RunContext.on_call` of one client flow: turns each finished call into a linked flow."""

    def __init__(self, parent: http.HTTPFlow, publish: Callable[[http.HTTPFlow], None]) -> None:
        self.parent = parent
        self.publish = publish
        # The run's vault values; the addon points this at `Run.secrets` once the run exists (it grows
        # as the run resolves them, before any call can use one).
        self.secrets: list[str] = []

    def __call__(self, node: str, exchange: CallExchange) -> None:
        # Runs inside the call node: whatever goes wrong here must not fail the node.
        try:
            call = call_flow(exchange, node=node, parent_id=self.parent.id, secrets=self.secrets)
        except ValueError as e:  # a URL mitmproxy cannot represent (its parser is stricter than aiohttp's)
            logger.warning("datakit: call %s of flow %s not shown: %s", node, self.parent.id, e)
            return
        except Exception:
            logger.exception("datakit: could not show call %s of flow %s", node, self.parent.id)
            return
        self.parent.metadata.setdefault(CALLS_KEY, []).append(call.id)
        self.publish(call)


async def publish(flow: http.HTTPFlow) -> None:
    """Show a finished flow as mitmproxy shows one that went through the proxy."""
    view = ctx.master.addons.get("view")  # only the interactive tools have one
    if view is not None:
        view.add([flow])
    hook = HttpResponseHook(flow) if flow.response is not None else HttpErrorHook(flow)
    await ctx.master.addons.handle_lifecycle(hook)


def call_flow(exchange: CallExchange, *, node: str, parent_id: str, secrets: Iterable[str]) -> http.HTTPFlow:
    """The exchange as a flow that is not live, masked and scrubbed (module docstring)."""
    hidden = _hidden_values(exchange.sent_headers, secrets)
    sent = exchange.request
    scheme, host, port, path = urls.parse(_scrub_text(sent.url, hidden))
    request = http.Request(
        host=host.decode("idna"),
        port=port,
        method=sent.method.encode(),
        scheme=scheme,
        authority=b"",  # origin-form, as aiohttp sends it to a server (not to a proxy)
        path=path,
        http_version=exchange.http_version.encode(),
        headers=_headers(exchange.sent_headers, hidden, "utf-8"),  # aiohttp writes header values as UTF-8
        content=_scrub_bytes(sent.body or b"", hidden),
        trailers=None,
        timestamp_start=exchange.started,
        timestamp_end=exchange.started,
    )
    # The client is the proxy itself. aiohttp hands a pooled connection back before the body is read, so
    # neither end's socket address is known: `*:0` here, and the server is known by the URL's address.
    client = connection.Client(
        peername=UNKNOWN_ADDRESS,
        sockname=UNKNOWN_ADDRESS,
        timestamp_start=exchange.started,
        timestamp_end=exchange.ended,
    )
    server = connection.Server(
        address=(request.host, port), timestamp_start=exchange.started, timestamp_end=exchange.ended
    )
    if scheme == b"https":
        server.tls = True
        server.sni = sent.server_name or request.host
    flow = http.HTTPFlow(client, server)
    flow.timestamp_created = exchange.started
    flow.request = request
    if exchange.response is not None:
        assert exchange.response_started is not None
        response = http.Response(
            http_version=exchange.http_version.encode(),
            status_code=exchange.response.status,
            reason=exchange.reason.encode("latin-1", "replace"),
            headers=_headers(exchange.response.headers, hidden, "latin-1"),  # as http_client decoded them
            content=None,
            trailers=None,
            timestamp_start=exchange.response_started,
            timestamp_end=exchange.ended,
        )
        body = _scrub_bytes(exchange.response.body, hidden)
        if "content-encoding" in response.headers:
            response.content = body  # aiohttp decoded it: encode it again, as it came
        else:
            response.raw_content = body
        flow.response = response
    if exchange.error is not None:
        flow.error = mflow.Error(exchange.error, exchange.ended)
    flow.metadata[CALL_KEY] = {"parent": parent_id, "node": node}
    flow.comment = f"{COMMENT_PREFIX} {node} for {parent_id}"
    return flow


def _hidden_values(sent_headers: Iterable[tuple[str, str]], secrets: Iterable[str]) -> list[str]:
    """Every spelling of every value to scrub: as is, JSON-escaped (scrub) and URL-encoded."""
    values = [*secrets]
    values += [
        v for k, v in sent_headers if k.lower() in MASKED_HEADERS and len(v) >= MIN_SCRUBBED_HEADER_VALUE
    ]
    spellings = {spelling for v in values if v for spelling in (v, quote(v, safe=""), quote_plus(v))}
    # Longest first: a secret inside a longer hidden value (`Bearer <secret>`) must not leave the rest behind.
    return sorted(spellings, key=len, reverse=True)


def _headers(pairs: Iterable[tuple[str, str]], hidden: list[str], charset: str) -> http.Headers:
    fields = []
    for name, value in pairs:
        shown = REDACTED if name.lower() in MASKED_HEADERS else _scrub_text(value, hidden)
        fields.append((name.encode(charset, "replace"), shown.encode(charset, "replace")))
    return http.Headers(fields)


def _scrub_text(text: str, hidden: list[str]) -> str:
    return scrub(text, hidden) if hidden else text


def _scrub_bytes(body: bytes, hidden: list[str]) -> bytes:
    if not body or not hidden:
        return body
    # surrogateescape: a binary body keeps its bytes; only the secrets' own bytes change.
    return scrub(body.decode("utf-8", "surrogateescape"), hidden).encode("utf-8", "surrogateescape")
