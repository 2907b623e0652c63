"""Running a 3.9/3.10 config (spec §9.4, §9.5, §9.7): passes over the nodes in configuration order.

A node runs once every port it has connected holds a payload; a provider that finished with a port
empty (a successful call's `error`, a SET property, a jq with fewer results) leaves its dependents
waiting forever. The first failure stops the plan with the filter's own error body, unless the
request asked for a trace, which then replaces the response instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from ..context import RunContext
from ..errors import ConfigError, ConfigIssue, NodeError
from ..nodes.exit import ExitResponse
from ..redact import failure_log_line, mask_headers
from ..resources import PlanResources
from ..types import Value
from ..values import MessageWrite, header_map_lookup, header_ops
from .config import LegacyConfig, LegacyNode
from .nodes import BUILDERS, Ports, PropertySet, message_write
from .payload import decode, header_map, query_string, trace_value

logger = logging.getLogger("mitm_datakit")

TRACE_OFF_VALUES = frozenset({"0", "false", "off"})


class LegacyPlan:
    """A 3.9/3.10 config, checked and compiled once; the adapter drives it like a current Plan."""

    dialect = "3.10"
    # What the adapter must read from the flow: raw bytes, because payloads decode them themselves.
    request_fields = frozenset({"headers", "raw_content", "raw_query"})
    service_response_fields = frozenset({"headers", "raw_content"})

    def __init__(self, config: Mapping[str, Any]) -> None:
        parsed = LegacyConfig(config)
        self.debug = parsed.debug
        self.nodes = parsed.nodes
        self.by_name = parsed.by_name
        self.user_nodes = [n for n in self.nodes if n.index]
        self.resources = PlanResources()
        self.runs: dict[int, Any] = {}
        issues: list[ConfigIssue] = []
        for node_id, node in enumerate(self.nodes):
            if not node.index:
                continue
            try:
                self.runs[node_id] = BUILDERS[node.type](node)
            except ValueError as e:
                issues.append(ConfigIssue(f"failed checking configuration: {e}", node.index, node.name, node.type))
        if issues:
            raise ConfigError(issues)
        response_id = self.by_name["service_response"]
        self.needs_response_phase = bool(self.nodes[self.by_name["response"]].inputs) or any(
            src == response_id for n in self.nodes for src, _ in n.inputs.values()
        )
        self.late_nodes = self._reading_response_body(response_id)
        self.warned_late_exit = False

    def _reading_response_body(self, response_id: int) -> set[int]:
        """Nodes that (transitively) need the upstream body: they run after its headers were sent."""
        late: set[int] = set()
        changed = True
        while changed:
            changed = False
            for node_id, node in enumerate(self.nodes):
                if node_id in late or not node.index:
                    continue
                if any((src, port) == (response_id, "body") or src in late for src, port in node.inputs.values()):
                    late.add(node_id)
                    changed = True
        return late

    def wants_trace(self, header_value: str | None) -> bool:
        return self.debug and header_value is not None and header_value.strip().lower() not in TRACE_OFF_VALUES

    def new_run(self, ctx: RunContext, *, tracing: bool) -> LegacyRun:
        return LegacyRun(self, ctx, tracing=tracing)


@dataclass(frozen=True)
class LegacyFailure:
    node: LegacyNode
    message: str

    def log_line(self) -> str:
        return failure_log_line(self.node.index, self.node.name, self.message)


class LegacyRun:
    def __init__(self, plan: LegacyPlan, ctx: RunContext, *, tracing: bool) -> None:
        self.plan = plan
        self.ctx = ctx
        count = len(plan.nodes)
        self.outputs: list[Ports | None] = [None] * count  # None: not finished
        self.started = [False] * count
        self.tasks: dict[asyncio.Task[Any], int] = {}
        self.exit: ExitResponse | None = None
        self.writes: dict[str, MessageWrite] = {}
        self._failure: LegacyFailure | None = None
        self.aborted = False
        self.stopped = False  # an exit ran: nothing starts any more
        self.trace: list[dict[str, Any]] | None = [] if tracing else None
        self._t0 = time.perf_counter()
        self._began: dict[int, float] = {}
        self.in_response_phase = False

    # -- the adapter's surface ----------------------------------------------------------------
    @property
    def failure(self) -> LegacyFailure | None:
        # With a trace requested the filter sent no 500: the trace replaces the response instead.
        return None if self.trace is not None else self._failure

    @property
    def finished(self) -> bool:
        return self.exit is not None or self._failure is not None or self.stopped

    @property
    def plan_status(self) -> str:
        return "PLAN_ERROR" if self._failure else "PLAN_COMPLETE"

    def start(self, request: Mapping[str, Value]) -> None:
        headers = request.get("headers") or {}
        content_type = header_map_lookup(headers, "content-type") if isinstance(headers, dict) else None
        self._fill(
            "request",
            {
                "body": decode(request.get("raw_content") or b"", content_type if isinstance(content_type, str) else None),
                "headers": header_map(_pairs(headers)),
                "query": dict(parse_qsl(request.get("raw_query") or "", keep_blank_values=True)),
            },
        )

    def provide_service_response(self, response: Mapping[str, Value]) -> None:
        self.in_response_phase = True
        headers = response.get("headers") or {}
        content_type = header_map_lookup(headers, "content-type") if isinstance(headers, dict) else None
        self._fill(
            "service_response",
            {
                "headers": header_map(_pairs(headers)),
                "body": decode(response.get("raw_content") or b"", content_type if isinstance(content_type, str) else None),
            },
        )

    def abort(self) -> None:
        self.aborted = True
        for task in self.tasks:
            task.cancel()

    def close(self) -> None:
        """Nothing to release: tasks are cancelled by advance() itself."""

    def error_body(self) -> bytes:
        # "ocurred" is the 3.9/3.10 filter's own spelling.
        return json.dumps({"message": "An unexpected error ocurred", "request_id": self.ctx.request_id}).encode()

    def render_trace(self) -> bytes:
        assert self.trace is not None
        return json.dumps(mask_headers(self.trace), ensure_ascii=False, default=str).encode("utf-8")

    # -- scheduling -----------------------------------------------------------------------------
    async def advance(self) -> None:
        try:
            while not self._halted():
                progressed = True
                while progressed and not self._halted():
                    progressed = False
                    for node_id, node in enumerate(self.plan.nodes):
                        if node.index and not self.started[node_id] and self._ready(node):
                            self._start(node_id, node)
                            progressed = True
                            if self._halted():
                                break
                if self._halted() or not self.tasks:
                    break
                done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    self._resume(task)
        finally:
            for task in self.tasks:
                task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
            self.tasks.clear()
        self._collect_sink("response" if self.in_response_phase else "service_request")

    def _halted(self) -> bool:
        return self._failure is not None or self.exit is not None or self.stopped or self.aborted

    def _ready(self, node: LegacyNode) -> bool:
        for src, port in node.inputs.values():
            outputs = self.outputs[src]
            if outputs is None or port not in outputs:
                return False
        return True

    def _inputs(self, node: LegacyNode) -> Ports:
        return {port: self.outputs[src][src_port] for port, (src, src_port) in node.inputs.items()}  # type: ignore[index]

    def _start(self, node_id: int, node: LegacyNode) -> None:
        self.started[node_id] = True
        self._event({"action": "run", "name": node.name, "type": node.type})
        run = self.plan.runs[node_id]
        inputs = self._inputs(node)
        if node.type == "call":
            self._began[node_id] = time.perf_counter()
            self.tasks[asyncio.ensure_future(run(inputs, self.ctx))] = node_id
            self._event({"action": "wait", "name": node.name})
            return
        try:
            result = run(inputs, self.ctx)
        except NodeError as e:
            self._fail(node, e.message)
            return
        self._finish(node_id, node, result)

    def _resume(self, task: asyncio.Task[Any]) -> None:
        node_id = self.tasks.pop(task)
        node = self.plan.nodes[node_id]
        if task.cancelled():
            return
        duration = time.perf_counter() - self._began.get(node_id, self._t0)
        self._event({"action": "resume", "name": node.name, "type": node.type, "duration": duration}, timed=False)
        error = task.exception()
        if isinstance(error, NodeError):
            self._fail(node, error.message)
        elif error is not None:
            logger.error("datakit: internal error in node #%s (%s): %r", node.index, node.name, error)
            self._fail(node, f"internal error: {type(error).__name__}")
        else:
            self._finish(node_id, node, task.result())

    def _finish(self, node_id: int, node: LegacyNode, result: Any) -> None:
        if isinstance(result, ExitResponse):
            self.outputs[node_id] = {}
            self._event({"action": "value", "name": node.name, "values": []})
            if node_id in self.plan.late_nodes:
                self._late_exit(node, result)
            else:
                self.exit = result
            return
        ports: Ports = {} if isinstance(result, PropertySet) else result
        self.outputs[node_id] = ports
        self._event({"action": "value", "name": node.name, "values": self._values(node, ports)})

    def _late_exit(self, node: LegacyNode, result: ExitResponse) -> None:
        """An exit that needed the upstream body runs after its headers went out: body only (§9.6)."""
        if node.attributes.get("warn_headers_sent", True) and not self.plan.warned_late_exit:
            self.plan.warned_late_exit = True
            logger.warning(
                "exit: node '%s' cannot set status or headers when processing response body, headers already "
                "sent; set 'warn_headers_sent' to false to silence this warning",
                node.name,
            )
        self.writes["response"] = MessageWrite([], result.write.body, None)
        self.stopped = True

    def _fail(self, node: LegacyNode, message: str) -> None:
        self._failure = LegacyFailure(node, message)
        self._event({"action": "fail", "name": node.name, "values": [{"data_type": "fail", "value": message}]})
        logger.error("datakit: %s", self._failure.log_line())

    def _fill(self, name: str, ports: Ports) -> None:
        node_id = self.plan.by_name[name]
        self.outputs[node_id] = ports
        self._event({"action": "value", "name": name, "values": self._values(self.plan.nodes[node_id], ports)})

    def _collect_sink(self, name: str) -> None:
        if name in self.writes or self.exit is not None:
            return
        node = self.plan.nodes[self.plan.by_name[name]]
        provided: Ports = {}
        for port, (src, src_port) in node.inputs.items():
            outputs = self.outputs[src]
            if outputs is not None and src_port in outputs:
                provided[port] = outputs[src_port]
        if not provided:
            return
        write = message_write(provided, sink=True)
        if "query" in provided:
            try:
                write.query = query_string(provided["query"])
            except ValueError:
                write.query = ""
        self.writes[name] = write

    # -- trace ----------------------------------------------------------------------------------
    def _values(self, node: LegacyNode, ports: Ports) -> list[dict[str, Value]]:
        return [trace_value(ports.get(p), p in ports) for p in node.out_ports]

    def _event(self, event: dict[str, Any], *, timed: bool = True) -> None:
        if self.trace is not None:
            if timed:
                event["at"] = time.perf_counter() - self._t0
            self.trace.append(event)


def _pairs(headers: Mapping[str, Value]) -> list[tuple[str, str]]:
    return [(name, value) for name, values in header_ops(dict(headers)) for value in values or []]
