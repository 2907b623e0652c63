"""The Datakit addon: loads the config into a Plan and runs it for every flow.

Access phase in the `request` hook, response phase in the `response` hook (ARCHITECTURE §2).
All changes to a flow are made on copies and swapped in at the end, so a failure never leaves a
flow half-changed.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass

from mitmproxy import ctx, exceptions, http

from ..context import RunContext
from ..errors import ConfigError
from ..http_client import DEFAULT_MAX_BODY, HttpClient
from ..config import load_config_file
from ..plan import Plan, build_plan
from ..runtime import Run, new_request_id
from ..trace import TRACE_HEADER, Trace, trace_requested
from ..values import MessageWrite
from .flowmap import apply_query, apply_write, make_response, replace_body, request_value, service_response_value
from .gateway import FlowGateway

logger = logging.getLogger("mitm_datakit")

JSON = "application/json"


def load_plan(path: str) -> Plan:
    """Read and plan a config file; ConfigError lists every problem."""
    return build_plan(load_config_file(path))


@dataclass
class FlowState:
    """What the response phase needs from the access phase of the same flow."""

    run: Run
    gateway: FlowGateway
    own_response: bool = False  # the response is our exit or error answer, not the upstream's


class Datakit:
    def __init__(self) -> None:
        self.plan: Plan | None = None
        self.http = HttpClient()
        self._states: weakref.WeakKeyDictionary[http.HTTPFlow, FlowState] = weakref.WeakKeyDictionary()
        self._closing: set[asyncio.Task[None]] = set()
        self._running = False

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option(
            "datakit_config",
            str,
            "",
            """
            Path to a Kong Datakit config (YAML or JSON): the plugin's `config` object with `nodes`,
            or a whole plugin entity (`name: datakit` with `config`). Every request runs its graph.
            """,
        )
        loader.add_option(
            "datakit_max_body",
            int,
            DEFAULT_MAX_BODY,
            "Largest response body, in bytes, that a call node reads; a larger one fails the node.",
        )

    def configure(self, updated: set[str]) -> None:
        if "datakit_max_body" in updated:
            if ctx.options.datakit_max_body <= 0:
                raise exceptions.OptionsError("datakit_max_body must be a positive number of bytes")
            self.http.max_body = ctx.options.datakit_max_body
        if "datakit_config" in updated:
            path = ctx.options.datakit_config
            if not path:
                self.plan = None
                return
            try:
                plan = load_plan(path)
            except ConfigError as e:
                message = f"invalid Datakit config {path}:\n{e}"
                if not self._running:
                    # At start-up an error log line makes mitmdump exit non-zero (its ErrorCheck addon),
                    # with the messages alone instead of an OptionsError traceback.
                    logger.error(message)
                    return
                # Later, OptionsError rolls the option back: the last good plan keeps serving.
                raise exceptions.OptionsError(message) from None
            self.plan = plan
            logger.info("datakit: loaded %s (%d nodes)", path, len(plan.user_nodes))

    def running(self) -> None:
        self._running = True

    def done(self) -> None:
        # done() must stay sync (script reloads call it from sync code); close the session as a task.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.http.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # -- access phase --------------------------------------------------------------------------
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        plan = self.plan
        if plan is None:
            return
        gateway = FlowGateway(flow)
        tracing = plan.debug and trace_requested(flow.request.headers.get(TRACE_HEADER))
        run = Run(plan, RunContext(new_request_id(), gateway, self.http), trace=Trace() if tracing else None)
        original = flow.request
        # Property SETs (target, scheme) and writes go to a copy that replaces the request at the end.
        flow.request = original.copy()
        try:
            run.start(request_value(flow, plan.request_fields))
            await run.advance()
            state = FlowState(run, gateway)
            if run.failure is not None:
                flow.request = original
                self._answer_failure(flow, state)
            elif run.exit is not None:
                flow.request = original
                gateway.exited = True
                self._answer_exit(flow, state)
            else:
                self._write_service_request(flow, run)
            if plan.needs_response_phase or tracing or gateway.response_status is not None:
                self._states[flow] = state
        except Exception:
            flow.request = original
            logger.exception("datakit: internal error while running the access phase")
            self._answer_internal_error(flow)

    def _write_service_request(self, flow: http.HTTPFlow, run: Run) -> None:
        write = run.writes.get("service_request")
        if write is None:
            return
        apply_write(flow.request, write)
        if write.query is not None:
            apply_query(flow.request, write.query)

    def _answer_exit(self, flow: http.HTTPFlow, state: FlowState) -> None:
        assert state.run.exit is not None
        flow.response = make_response(
            state.run.exit.status, state.run.exit.write, {"X-Kong-Request-Id": state.run.ctx.request_id}
        )
        state.own_response = True
        flow.metadata["datakit"] = {"status": state.run.plan_status}

    def _answer_failure(self, flow: http.HTTPFlow, state: FlowState) -> None:
        run = state.run
        assert run.failure is not None
        logger.error("datakit: %s", run.failure.log_line())
        flow.response = http.Response.make(
            500, run.error_body(), {"Content-Type": JSON, "X-Kong-Request-Id": run.ctx.request_id}
        )
        state.own_response = True
        flow.metadata["datakit"] = {
            "status": run.plan_status,
            "failed_node": run.failure.node.name,
            "error": run.failure.message,
        }

    def _answer_internal_error(self, flow: http.HTTPFlow) -> None:
        body = b'{"message":"An unexpected error occurred"}'
        flow.response = http.Response.make(500, body, {"Content-Type": JSON})

    # -- response phase ------------------------------------------------------------------------
    async def response(self, flow: http.HTTPFlow) -> None:
        state = self._states.pop(flow, None)
        if state is None or flow.response is None:
            return
        run = state.run
        try:
            if not state.own_response:
                await self._response_phase(flow, state)
            if run.trace is not None:
                replace_body(flow.response, run.render_trace(), JSON)
        except Exception:
            logger.exception("datakit: internal error while running the response phase")
            self._answer_internal_error(flow)

    async def _response_phase(self, flow: http.HTTPFlow, state: FlowState) -> None:
        run = state.run
        assert flow.response is not None
        run.provide_service_response(service_response_value(flow.response, run.plan.service_response_fields))
        await run.advance()
        if run.failure is not None:
            self._answer_failure(flow, state)
            return
        if run.exit is not None:
            state.gateway.exited = True
            self._answer_exit(flow, state)
            return
        response = flow.response.copy()
        write: MessageWrite | None = run.writes.get("response")
        if write is not None:
            apply_write(response, write)
        if state.gateway.response_status is not None:
            response.status_code = state.gateway.response_status
        flow.response = response

    def error(self, flow: http.HTTPFlow) -> None:
        state = self._states.pop(flow, None)
        if state is not None:
            state.run.close()
