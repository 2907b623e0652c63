"""`datakit run FILE`: run a config once against one request, without a proxy.

The request is built from arguments or a file; `call` nodes reach the network or, with
`--fixtures`, a file of canned answers; nodes that run after proxying get a simulated upstream
answer from `--service-response-file`. The output is what the client would receive, the request the
upstream would receive, the properties the run set and, with `--trace`, the trace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass, field
from typing import Any, cast

from mitmproxy import http

from ..context import RunContext
from ..http_client import HttpClient
from ..plan import Plan
from ..proxy.flowmap import apply_query, apply_write, make_response, request_value, service_response_value
from ..redact import scrub
from ..runtime import Failure, Run, new_request_id
from ..trace import Trace
from ..types import Value
from .configs import InvalidConfigFile, plan_file
from .documents import InputFileError
from .fixtures import FixtureClient
from .messages import (
    client_flow,
    client_request,
    request_json,
    request_text,
    response_json,
    response_text,
    upstream_response,
)

COMPLETED, NODE_FAILED, BAD_INPUT = 0, 1, 2
RESPONSE_STATUS_PROPERTY = "kong.response.status"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "run",
        help="run a config once against a request, without a proxy",
        description="Run a config once against one request and print the response the client would "
        "get, the request the upstream would get, and the properties the run set. Exit status: 0 no "
        "node failed, 1 a node failed, 2 the config or an argument is invalid.",
    )
    parser.add_argument("file", metavar="FILE", help="config file (YAML or JSON)")
    request = parser.add_argument_group(
        "the client request", "a file, or options (options win over the file's values)"
    )
    request.add_argument(
        "--request-file",
        metavar="PATH",
        help="YAML/JSON map: method, path, headers, body, scheme, host, port",
    )
    request.add_argument("--method", "-X", help="HTTP method (default GET, or POST with a body)")
    request.add_argument("--path", help="path and query string (default /)")
    request.add_argument(
        "--header", "-H", action="append", metavar="'NAME: VALUE'", help="a request header; repeatable"
    )
    body = request.add_mutually_exclusive_group()
    body.add_argument("--data", "-d", metavar="TEXT", help="request body")
    body.add_argument("--data-file", metavar="PATH", help="request body, read from a file")
    parser.add_argument(
        "--service-response-file",
        metavar="PATH",
        help="simulated upstream answer (YAML/JSON map: status, headers, body) for response-phase nodes",
    )
    parser.add_argument(
        "--fixtures", metavar="PATH", help="answer call nodes from this file instead of the network"
    )
    parser.add_argument(
        "--property",
        action="append",
        metavar="NAME=VALUE",
        help="a gateway property that property nodes read (VALUE as JSON, else as text); repeatable",
    )
    parser.add_argument("--trace", action="store_true", help="print the debug trace of the run")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="text (default) or json")
    parser.set_defaults(func=run_command)


class CommandLineGateway:
    """Properties in memory: GETs read what `--property` gave; SETs are kept for the report."""

    def __init__(self, given: dict[str, Value]) -> None:
        self.values = dict(given)
        self.set_by_run: dict[str, Value] = {}

    def get_property(self, name: str) -> Value:
        return self.values.get(name)

    def set_property(self, name: str, value: Value) -> None:
        self.values[name] = value
        self.set_by_run[name] = value


@dataclass
class Outcome:
    """What one run produced, for printing."""

    plan_status: str
    failure: Failure | None
    upstream_request: http.Request | None  # None when the plan answered the client itself
    response: http.Response | None  # None when no upstream answer was simulated and no node answered
    response_phase_skipped: bool  # nodes wait for an upstream answer that was not given
    properties_set: dict[str, Value] = field(default_factory=dict)
    trace: Any = None
    secrets: list[str] = field(default_factory=list)  # vault values: masked in whatever is printed


async def run_once(
    plan: Plan,
    flow: http.HTTPFlow,
    upstream: http.Response | None,
    sender: HttpClient | FixtureClient,
    gateway: CommandLineGateway,
    *,
    trace: bool,
) -> Outcome:
    """Both phases of one request, as the addon runs them (proxy/addon.py), without the proxy."""
    # RunContext only ever calls send(); a FixtureClient has the same one.
    ctx = RunContext(new_request_id(), gateway, cast(HttpClient, sender))
    run = Run(plan, ctx, trace=Trace() if trace else None)
    run.start(request_value(flow, plan.request_fields))
    await run.advance()
    sent: http.Request | None = None
    response: http.Response | None = None
    if not run.finished:
        sent = flow.request.copy()
        write = run.writes.get("service_request")
        if write is not None:
            apply_write(sent, write)
            if write.query is not None:
                apply_query(sent, write.query)
        if upstream is not None:
            run.provide_service_response(service_response_value(upstream, plan.service_response_fields))
            await run.advance()
            if not run.finished:
                response = _upstream_answer(run, upstream, gateway)
    if run.failure is not None:
        response = http.Response.make(
            500, run.error_body(), {"Content-Type": "application/json", "X-Kong-Request-Id": ctx.request_id}
        )
    elif run.exit is not None:
        response = make_response(run.exit.status, run.exit.write, {"X-Kong-Request-Id": ctx.request_id})
    return Outcome(
        plan_status=run.plan_status,
        failure=run.failure,
        upstream_request=sent,
        response=response,
        response_phase_skipped=sent is not None and upstream is None and plan.needs_response_phase,
        properties_set=gateway.set_by_run,
        trace=json.loads(run.render_trace()) if trace else None,
        secrets=run.secrets,
    )


def _upstream_answer(run: Run, upstream: http.Response, gateway: CommandLineGateway) -> http.Response:
    answer = upstream.copy()
    write = run.writes.get("response")
    if write is not None:
        apply_write(answer, write)
    status = gateway.set_by_run.get(RESPONSE_STATUS_PROPERTY)
    if isinstance(status, int) and not isinstance(status, bool):
        answer.status_code = status
    return answer


def run_command(args: argparse.Namespace) -> int:
    try:
        plan = plan_file(args.file)
    except InvalidConfigFile as e:
        print(e, file=sys.stderr)
        return BAD_INPUT
    try:
        flow = client_flow(client_request(args))
        upstream = upstream_response(args.service_response_file) if args.service_response_file else None
        sender = FixtureClient.from_file(args.fixtures) if args.fixtures else HttpClient()
        gateway = CommandLineGateway(dict(_property(text) for text in args.property or ()))
    except InputFileError as e:
        print(f"datakit run: {e}", file=sys.stderr)
        return BAD_INPUT
    outcome = asyncio.run(_run_and_close(plan, flow, upstream, sender, gateway, trace=args.trace))
    if args.format == "json":
        text = json.dumps(_outcome_json(outcome), indent=2, ensure_ascii=False, default=str)
    else:
        text = _outcome_text(outcome)
    # Output ends up in terminals and CI logs: vault secrets stay out of it, as out of traces.
    print(scrub(text, outcome.secrets))
    if outcome.failure is not None:
        print(f"datakit run: {outcome.failure.log_line()}", file=sys.stderr)
        return NODE_FAILED
    if outcome.response_phase_skipped:
        print(
            "datakit run: nodes that run after proxying did not run: "
            "give the upstream answer with --service-response-file",
            file=sys.stderr,
        )
    return COMPLETED


async def _run_and_close(
    plan: Plan,
    flow: http.HTTPFlow,
    upstream: http.Response | None,
    sender: HttpClient | FixtureClient,
    gateway: CommandLineGateway,
    *,
    trace: bool,
) -> Outcome:
    try:
        return await run_once(plan, flow, upstream, sender, gateway, trace=trace)
    finally:
        if isinstance(sender, HttpClient):
            await sender.close()


def _property(text: str) -> tuple[str, Value]:
    name, equals, raw = text.partition("=")
    if not equals or not name.strip():
        raise InputFileError(f"--property {text!r}: expected NAME=VALUE")
    try:
        return name.strip(), json.loads(raw)
    except ValueError:
        return name.strip(), raw


def _outcome_text(outcome: Outcome) -> str:
    sections: list[tuple[str, str]] = []
    if outcome.upstream_request is not None:
        sections.append(("upstream request", request_text(outcome.upstream_request)))
    if outcome.response is not None:
        sections.append(("response", response_text(outcome.response)))
    if outcome.properties_set:
        lines = [
            f"{name} = {json.dumps(value, ensure_ascii=False, default=str)}"
            for name, value in outcome.properties_set.items()
        ]
        sections.append(("properties set", "\n".join(lines)))
    if outcome.trace is not None:
        sections.append(("trace", json.dumps(outcome.trace, indent=2, ensure_ascii=False)))
    return "\n\n".join(f"=== {title} ===\n{text.rstrip()}" for title, text in sections)


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    failure = outcome.failure
    return {
        "status": outcome.plan_status,
        "failed_node": None
        if failure is None
        else {
            "index": failure.node.index,
            "name": failure.node.name,
            "type": failure.node.type_name,
            "error": failure.message,
        },
        "upstream_request": None
        if outcome.upstream_request is None
        else request_json(outcome.upstream_request),
        "response": None if outcome.response is None else response_json(outcome.response),
        "properties_set": outcome.properties_set,
        "trace": outcome.trace,
    }
