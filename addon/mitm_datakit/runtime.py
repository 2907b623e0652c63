"""Running a Plan for one request on asyncio (spec §6.3, §6.4).

A node is ready when every provider completed; ready nodes run at once, `call` nodes as tasks so
that independent calls overlap. The first failure cancels everything still running. One `Run`
lives for the whole request: `advance()` runs the access phase, the adapter proxies, then it
provides `service_response` and `advance()` runs the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random as random_ids
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

from .context import RunContext
from .errors import InputTypeError, NodeError
from .implicit import REQUEST, SERVICE_RESPONSE, VAULT
from .nodes.branch import BranchDecision
from .nodes.exit import ExitResponse
from .redact import failure_log_line, scrub
from .trace import Trace
from .types import Value
from .values import MessageWrite, coerce, header_map_lookup, type_name
from .vault import MissingSecret, resolve

if TYPE_CHECKING:  # plan.py builds Runs: it imports this module
    from .plan import InputEdge, Plan, PlanNode

logger = logging.getLogger("mitm_datakit")

PENDING, RUNNING, COMPLETE, FAILED, CANCELED, SKIPPED = (
    "NODE_PENDING",
    "NODE_RUNNING",
    "NODE_COMPLETE",
    "NODE_ERROR",
    "NODE_CANCELED",
    "NODE_SKIPPED",
)
PLAN_COMPLETE, PLAN_ERROR, PLAN_RUNNING = "PLAN_COMPLETE", "PLAN_ERROR", "PLAN_RUNNING"


def new_request_id() -> str:
    """Kong's request id is 32 hex characters (X-Kong-Request-Id).

    It correlates logs and answers and guards nothing, so Python's PRNG serves: `secrets.token_hex` reads
    the OS's randomness with a system call per request, several µs on the hot path.
    """
    return f"{random_ids.getrandbits(128):032x}"


class _EdgeError(NodeError):
    """An input value that could not be delivered, with the node that provided it (a sink has no
    index of its own, so the provider is the node to name)."""

    def __init__(self, message: str, src: int) -> None:
        super().__init__(message)
        self.src = src


@dataclass(frozen=True)
class Failure:
    node: PlanNode
    message: str  # already scrubbed of secrets

    def log_line(self) -> str:
        return failure_log_line(self.node.index, self.node.name, self.message)


class Run:
    """One request walking a Plan. Not shared between requests; never touches mitmproxy."""

    # One Run per request: slots make it smaller and quicker to build than an instance dict.
    __slots__ = (
        "plan", "ctx", "trace", "values", "status", "skipped_any", "pending", "ready", "tasks", "settled", "_wakeup",
        "began", "started", "took", "inputs", "exit", "failure", "errors", "writes", "secrets", "aborted",
    )

    def __init__(self, plan: Plan, ctx: RunContext, *, trace: Trace | None = None) -> None:
        self.plan = plan
        self.ctx = ctx
        self.trace = trace
        count = len(plan.nodes)
        self.values: list[Value] = [None] * count
        # A node's status says all: COMPLETE is "its value is there", SKIPPED "a branch left it out".
        self.status = [PENDING] * count
        self.skipped_any = False  # most runs skip nothing; then no release looks for skipped providers
        self.pending = list(plan.initial_pending)
        self.ready: deque[int] = deque()
        self.tasks: dict[asyncio.Task[Value], int] = {}
        # Calls that ended, in the order they ended, and the future `advance` sleeps on until one does: each task
        # tells the run itself (a done callback), cheaper than asyncio.wait's callbacks added and removed per wake.
        self.settled: list[asyncio.Task[Value]] = []
        self._wakeup: asyncio.Future[None] | None = None
        # The node timeline of the flow's record (datakit view), kept whether or not a trace is: two clock
        # reads and two dict entries per node. Seconds since the run began; inputs as gathered, not copied.
        self.began = perf_counter()
        self.started: dict[int, float] = {}
        self.took: dict[int, float] = {}
        self.inputs: dict[int, dict[str, Value]] = {}
        self.exit: ExitResponse | None = None
        self.failure: Failure | None = None
        self.errors: dict[int, str] = {}
        self.writes: dict[str, MessageWrite] = {}
        self.secrets: list[str] = []
        self.aborted = False

    # -- inputs from the adapter ---------------------------------------------------------------
    def start(self, request_value: Mapping[str, Value]) -> None:
        """Provide `request` and `vault`; every node without providers becomes ready."""
        vault: dict[str, Value] = {}
        for name, reference in self.plan.vault.items():
            secret = resolve(reference)
            vault[name] = secret
            if isinstance(secret, str):
                self.secrets.append(secret)
        self.ready.extend(self.plan.initial_ready)
        self._provide(REQUEST, dict(request_value))
        self._provide(VAULT, vault)

    def provide_service_response(self, value: Mapping[str, Value]) -> None:
        self._provide(SERVICE_RESPONSE, dict(value))

    @property
    def finished(self) -> bool:
        return self.exit is not None or self.failure is not None

    # -- scheduling ----------------------------------------------------------------------------
    async def advance(self) -> None:
        """Run every node that can run now, until none is ready and no call is in flight.

        After an `exit`, no new node starts but calls already in flight finish (their side effects,
        such as a cache write listed before the exit, happen); after a failure they are cancelled.
        """
        try:
            while self.failure is None and not self.aborted:
                self.advance_now()
                if self.failure is not None or not self.tasks:
                    break
                if not self.settled:
                    self._wakeup = asyncio.get_running_loop().create_future()
                    try:
                        await self._wakeup
                    finally:
                        self._wakeup = None
                settled, self.settled = self.settled, []
                for task in settled:
                    self._finish_task(task)
        finally:
            if self.tasks:
                await self._cancel_all()

    def advance_now(self) -> bool:
        """Start every node that can start now; a sync node runs to its end here, a call starts as a task.

        True when no call is in flight: then `advance()` would have nothing to wait for, and the caller can skip it.
        """
        nodes, ready = self.plan.nodes, self.ready
        while ready and self.exit is None and self.failure is None and not self.aborted:  # `finished`, inlined
            self._start_node(nodes[ready.popleft()])
        return not self.tasks

    def _provide(self, name: str, value: Value) -> None:
        node = self.plan.node(name)
        if self.trace:
            self.trace.event(node, "complete", value=value, has_value=True, fields=True)
        self._complete(node, value)

    def _complete(self, node: PlanNode, value: Value) -> None:
        self.values[node.id] = value
        self.status[node.id] = COMPLETE
        for dependent in node.dependents:
            self._release(dependent)

    def _release(self, node_id: int) -> None:
        """One provider of `node_id` completed or was skipped."""
        self.pending[node_id] -= 1
        if self.pending[node_id] or self.status[node_id] != PENDING:
            return
        node = self.plan.nodes[node_id]
        if self.skipped_any and node.index is not None and any(self.status[p] == SKIPPED for p in node.providers):
            self._skip(node)  # a node that depends on a skipped node is skipped too (decisions.md)
        elif node.runs_in_run:
            self.ready.append(node_id)

    def _skip(self, node: PlanNode) -> None:
        if self.status[node.id] in (COMPLETE, SKIPPED):
            return
        self.skipped_any = True
        self.status[node.id] = SKIPPED
        if self.trace:
            self.trace.event(node, "skip")
        for dependent in node.dependents:
            self._release(dependent)

    def _start_node(self, node: PlanNode) -> None:
        try:
            inputs = self._gather(node)
        except NodeError as e:
            self._fail(self._blame(node, e), e)
            return
        if node.index is None:  # a sink: remember what to write (nothing when nothing is connected to it)
            if node.inputs:
                self.writes[node.name] = MessageWrite.from_inputs(inputs, has_body=node.has_body_input)
            self._complete(node, None)
            return
        self.status[node.id] = RUNNING
        self.inputs[node.id] = inputs
        self.started[node.id] = perf_counter() - self.began
        if self.trace:
            self.trace.event(node, "run", value=inputs, has_value=True, fields=True)
        assert node.run is not None
        if node.is_async:
            task = asyncio.ensure_future(node.run(inputs, self.ctx))  # type: ignore[arg-type]
            self.tasks[task] = node.id
            task.add_done_callback(self._task_settled)
            return
        try:
            output = node.run(inputs, self.ctx)
        except NodeError as e:
            self._fail(node, e)
            return
        except Exception as e:  # a bug in a node must not escape into mitmproxy as "Addon error"
            logger.exception("internal error in node #%s (%s)", node.index, node.name)
            self._fail(node, NodeError(f"internal error: {type(e).__name__}"))
            return
        self._node_done(node, output)

    def abort(self) -> None:
        """The client went away: cancel the calls in flight; nothing starts any more."""
        self.aborted = True
        for task in self.tasks:
            task.cancel()

    def _task_settled(self, task: asyncio.Task[Value]) -> None:
        if task not in self.tasks:
            return  # cancelled by _cancel_all, which accounts for it itself
        self.settled.append(task)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _finish_task(self, task: asyncio.Task[Value]) -> None:
        node = self.plan.nodes[self.tasks.pop(task)]
        took = self._stopped(node)
        if task.cancelled():
            self.status[node.id] = CANCELED
            if self.trace:
                self.trace.event(node, "cancel")
            return
        if self.trace:
            self.trace.event(node, "resume", duration=took)
        error = task.exception()
        if error is None:
            self._node_done(node, task.result())
        elif isinstance(error, NodeError):
            self._fail(node, error)
        else:
            logger.error("internal error in node #%s (%s): %r", node.index, node.name, error)
            self._fail(node, NodeError(f"internal error: {type(error).__name__}"))

    def _stopped(self, node: PlanNode) -> float:
        """Seconds the node ran, now that it has stopped (done, failed or cancelled); the first stop counts."""
        took = self.took.get(node.id)
        if took is None:
            took = self.took[node.id] = perf_counter() - self.began - self.started.get(node.id, 0.0)
        return took

    def _node_done(self, node: PlanNode, output: Value) -> None:
        self._stopped(node)
        if isinstance(output, BranchDecision):
            for listed in node.controls.get(output.skip_field, ()):
                self._skip(self.plan.nodes[listed])
            output = output.condition
        if isinstance(output, ExitResponse):
            self.exit = output
            if self.trace:
                self.trace.event(node, "complete")
            self.values[node.id] = None
            self.status[node.id] = COMPLETE
            return
        if self.trace:
            self.trace.event(node, "complete", value=output, has_value=True, fields=node.object_output)
        self._complete(node, output)

    def _fail(self, node: PlanNode, error: NodeError) -> None:
        if node.id in self.started:  # a node blamed for a bad input edge never started
            self._stopped(node)
        message = scrub(error.message, self.secrets)
        self.status[node.id] = FAILED
        self.errors[node.id] = message
        if self.exit is None:
            self.failure = Failure(node, message)
        else:  # the exit already answered; a call that was in flight cannot change that
            logger.warning("datakit: node #%s (%s) failed after an exit: %s", node.index, node.name, message)
        if self.trace:
            self.trace.event(
                node, "fail", error=message, value=error.values, has_value=error.values is not None, fields=True
            )

    async def _cancel_all(self) -> None:
        tasks = list(self.tasks.items())
        self.tasks.clear()
        for task, _ in tasks:
            task.cancel()
        await asyncio.gather(*(t for t, _ in tasks), return_exceptions=True)
        for _, node_id in tasks:
            self._stopped(self.plan.nodes[node_id])
            self.status[node_id] = CANCELED
            if self.trace:
                self.trace.event(self.plan.nodes[node_id], "cancel")

    def close(self) -> None:
        """Mark what never ran as cancelled (the plan ended early or its request went away)."""
        if self.finished:
            for node in self.plan.user_nodes:
                if self.status[node.id] == PENDING:
                    self.status[node.id] = CANCELED
                    if self.trace:
                        self.trace.event(node, "cancel")

    # -- inputs --------------------------------------------------------------------------------
    def _gather(self, node: PlanNode) -> dict[str, Value]:
        inputs: dict[str, Value] = {}
        status, values = self.status, self.values
        for edge in node.inputs:
            if status[edge.src] != COMPLETE:
                continue
            if edge.direct:
                inputs[edge.dst_field] = values[edge.src]
                continue
            try:
                value = self._edge_value(edge)
                inputs[edge.dst_field] = coerce(value, edge.dst_type)
            except TypeError as e:
                target = node.name if edge.dst_field == "$self" else f"{node.name}.{edge.dst_field}"
                raise _EdgeError(f"invalid value for {target}: {e}", edge.src) from None
            except NodeError as e:
                raise _EdgeError(e.message, edge.src) from None
        return inputs

    def _edge_value(self, edge: InputEdge) -> Value:
        value = self.values[edge.src]
        if edge.src_field is not None:
            value = value.get(edge.src_field) if isinstance(value, dict) else None
        if isinstance(value, MissingSecret):
            raise NodeError(value.reason)
        last = len(edge.path) - 1
        for position, key in enumerate(edge.path):
            if not isinstance(value, dict):
                if edge.spread and position == last and value is not None:
                    raise InputTypeError(f"expected an object with fields, got {type_name(value)}")
                return None
            value = header_map_lookup(value, key) if edge.header_lookup else value.get(key)
        return value

    def _blame(self, node: PlanNode, error: NodeError) -> PlanNode:
        """Errors at a sink belong to the node that provided the bad value (sinks have no index)."""
        if node.index is not None:
            return node
        if isinstance(error, _EdgeError):
            # The provider whose value was bad, not just any provider; an implicit one (vault) has no
            # index to report, so the sink itself is named.
            provider = self.plan.nodes[error.src]
            return provider if provider.index is not None else node
        for edge in node.inputs:
            provider = self.plan.nodes[edge.src]
            if provider.index is not None and self.status[edge.src] == COMPLETE:
                return provider
        return node

    # -- results for the adapter ---------------------------------------------------------------
    @property
    def plan_status(self) -> str:
        if self.failure:
            return PLAN_ERROR
        if self.exit or all(self.status[n.id] in (COMPLETE, SKIPPED) for n in self.plan.user_nodes):
            return PLAN_COMPLETE
        return PLAN_RUNNING

    def render_trace(self) -> bytes:
        assert self.trace is not None
        self.close()
        return self.trace.render(self.plan, self.status, self.plan_status, self.errors, self.secrets)

    def error_body(self) -> bytes:
        """Kong's 500 body (spec §6.4); `debug: true` adds the error and the failed node."""
        assert self.failure is not None
        body: dict[str, Any] = {"message": "An unexpected error occurred", "request_id": self.ctx.request_id}
        if self.plan.debug:
            node = self.failure.node
            body = {
                "message": "node execution error",
                "request_id": self.ctx.request_id,
                "error": self.failure.message,
                "node": {"index": node.index, "name": node.name, "type": node.type_name},
            }
        return json.dumps(body).encode("utf-8")

