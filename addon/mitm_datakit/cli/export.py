"""`datakit export FLOWS`: recorded flows -> a Kong declarative file that answers them offline.

Record an API once through the proxy (`mitmdump ... -w flows.out`), export, and serve the result:
every distinct method and path becomes a route whose datakit plugin answers the recorded response
through `static` -> `exit`, so the service behind it is never contacted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mitmproxy import http, io
from mitmproxy.exceptions import FlowReadException

from ..types import Value

NAME = "export"
SERVICE_NAME = "recorded"
# Hop-by-hop headers (RFC 9110 §7.6.1) and framing: they describe the recorded connection, not the
# answer. Content-Encoding goes too, because the body is exported decoded. The mock's own request id
# must not be overwritten by the recorded one.
DROPPED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "x-kong-request-id",
    }
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        NAME,
        help="turn recorded flows into a Kong declarative file that mocks them",
        description="Read a mitmproxy flow file (mitmdump -w FILE) and write a Kong declarative file with "
        "one route per distinct method and path, each answering its recorded status, headers and body "
        "with a datakit static -> exit graph. The first recorded response of a method and path wins. "
        "Exit status: 0 written, 1 the flow file could not be read or held no usable response.",
    )
    parser.add_argument("flows", metavar="FLOWS_FILE", help="a mitmproxy flow file")
    parser.add_argument("--output", "-o", metavar="PATH", help="write to PATH instead of stdout")
    parser.set_defaults(func=export_command)


def export_command(args: argparse.Namespace) -> int:
    try:
        with open(args.flows, "rb") as f:
            flows = [flow for flow in io.FlowReader(f).stream() if isinstance(flow, http.HTTPFlow)]
    except (OSError, FlowReadException) as e:
        print(f"datakit export: cannot read {args.flows}: {e}", file=sys.stderr)
        return 1
    exported, skipped = collect(flows)
    for reason in skipped:
        print(f"datakit export: skipped {reason}", file=sys.stderr)
    if not exported:
        print(f"datakit export: {args.flows} holds no response that can be exported", file=sys.stderr)
        return 1
    text = render(declarative(exported))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    status: int
    headers: dict[str, Value]
    body: Value  # a JSON document, text, or None for an empty body
    origin: str  # scheme://host:port the request went to


def collect(flows: Iterable[http.HTTPFlow]) -> tuple[list[Recorded], list[str]]:
    """The first usable response per method and path, and why any other flow was left out."""
    seen: dict[tuple[str, str], Recorded] = {}
    skipped: list[str] = []
    for flow in flows:
        method, path = flow.request.method.upper(), flow.request.path.partition("?")[0]
        label = f"{method} {path}"
        if flow.response is None:
            skipped.append(f"{label}: no response was recorded")
            continue
        if (method, path) in seen:
            continue
        if not 200 <= flow.response.status_code <= 599:
            skipped.append(f"{label}: status {flow.response.status_code} cannot be answered by an exit node")
            continue
        body = _body(flow.response)
        if isinstance(body, bytes):
            skipped.append(f"{label}: the body is binary, which a declarative file cannot hold")
            continue
        request = flow.request
        seen[(method, path)] = Recorded(
            method, path, flow.response.status_code, _headers(flow.response), body,
            f"{request.scheme}://{request.host}:{request.port}",
        )
    return list(seen.values()), skipped


def _headers(response: http.Response) -> dict[str, Value]:
    headers: dict[str, Value] = {}
    for name in dict.fromkeys(response.headers.keys()):  # each name once, in recorded order
        if name.lower() in DROPPED_HEADERS:
            continue
        values = response.headers.get_all(name)
        headers[name] = values[0] if len(values) == 1 else values
    return headers


def _body(response: http.Response) -> Value | bytes:
    """JSON objects and arrays as YAML data (readable, editable), other text as text, None when empty.
    A JSON scalar stays text: the exit node would write a string without its quotes."""
    content = response.get_content(strict=False) or b""
    if not content:
        return None
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return content
    if "json" in response.headers.get("content-type", "").lower():
        try:
            document = json.loads(text)
        except ValueError:
            return text
        if isinstance(document, (dict, list)):
            return document
    return text


def declarative(recorded: list[Recorded]) -> dict[str, Any]:
    routes = [_route(entry, number) for number, entry in enumerate(recorded, start=1)]
    return {
        "_format_version": "3.0",
        # The recorded upstream: never contacted, since every route answers from its plugin.
        "services": [{"name": SERVICE_NAME, "url": recorded[0].origin, "routes": routes}],
    }


def _route(entry: Recorded, number: int) -> dict[str, Any]:
    values: dict[str, Value] = {"headers": entry.headers}
    inputs = {"headers": "RECORDED.headers"}
    if entry.body is not None:
        values["body"] = entry.body
        inputs["body"] = "RECORDED.body"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", entry.path).strip("-") or "root"
    return {
        "name": f"{number}-{entry.method.lower()}-{slug}"[:100],
        "methods": [entry.method],
        # A regex path anchored at both ends: the recorded path exactly, not every path under it.
        "paths": [f"~{re.escape(entry.path)}$"],
        "plugins": [
            {
                "name": "datakit",
                "config": {
                    "nodes": [
                        {"name": "RECORDED", "type": "static", "values": values},
                        {"name": "ANSWER", "type": "exit", "status": entry.status, "inputs": inputs},
                    ]
                },
            }
        ],
    }


def render(document: dict[str, Any]) -> str:
    import yaml  # only this command needs it

    header = "# Written by `datakit export`: one route per recorded method and path.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)
