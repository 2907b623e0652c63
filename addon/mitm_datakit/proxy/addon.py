"""The Datakit addon: loads the config file into a Deployment and runs it for every flow.

A flow is routed as Kong routes it (when the file declares services or routes), then the datakit
plugin that applies to it runs: the access phase in the `request` hook, the response phase in the
`response` hook (ARCHITECTURE §2). All changes to a flow's request are made on a copy that is
swapped in at the end, so a failure never leaves a flow half-changed.

The file is watched and reloaded when it changes; `datakit.reload` and `:set datakit_config=...` do
the same. A flow runs on the deployment that was current when it started (`active.py`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy import command, connection, ctx, exceptions, http

from ..context import RunContext
from ..dialect import COMPAT_CHOICES
from ..errors import ConfigError
from ..http_client import DEFAULT_MAX_BODY, HttpClient
from ..kong.deployment import Deployment, Selection, load_deployment, read_deployment
from ..legacy.runtime import LegacyRun
from ..runtime import Run, new_request_id
from ..trace import TRACE_HEADER
from ..values import MessageWrite
from . import summary, views
from .active import ActiveConfig, Release
from .admin import AdminServer
from .callflows import CALL_KEY, CallFlows
from .flowmap import (
    apply_query,
    apply_write,
    copy_message,
    make_response,
    request_value,
    service_response_value,
    set_plain_body,
)
from .gateway import FlowGateway
from .routing import ClientView, GatewayOptions, kong_answer, request_facts, send_to, wrong_protocol_answer
from .watcher import FileWatcher

logger = logging.getLogger("mitm_datakit")

JSON = "application/json"
# mitmproxy addons that show or keep a flow (flow list, dump output, -w, HAR); `datakit serve` has none.
FLOW_SINKS = ("view", "dumper", "save", "savehar")


@dataclass
class FlowState:
    """What the response phase needs from the access phase of the same flow."""

    run: Run
    gateway: FlowGateway
    release: Release  # ends the flow's lease on its deployment
    own_response: bool = False  # the response is our exit or error answer, not the upstream's
    elapsed: float = 0.0  # seconds spent running the plan, both phases (the upstream's time excluded)


class Datakit:
    def __init__(self) -> None:
        self.active = ActiveConfig()
        self.http = HttpClient()
        self._states: weakref.WeakKeyDictionary[http.HTTPFlow, FlowState] = weakref.WeakKeyDictionary()
        self._closing: set[asyncio.Task[None]] = set()
        self._running = False
        # Runs waiting on calls, by client connection: a client that goes away cancels its calls.
        self._inflight: dict[str, set[Run | LegacyRun]] = {}
        self._watcher = FileWatcher(self._file_changed)
        self._gateway_options = GatewayOptions()
        self._admin = AdminServer(current=lambda: self.active.current, apply=self.apply_text)
        self._call_flows = CallFlows()
        self._show_calls = False  # the option, read in configure: a flow pays nothing when it is off
        # datakit_record, read in configure: reading an option costs a deep copy of its value (~10 µs).
        self._keep_record = True
        self._gc_freeze = True  # datakit_gc_freeze, read in configure, applied once running

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option(
            "datakit_config",
            str,
            "",
            """
            Path to a Kong Datakit config (YAML or JSON): the plugin's `config` object with `nodes`, a
            whole plugin entity (`name: datakit` with `config`), or a Kong declarative file
            (`_format_version: "3.0"`) whose services, routes and datakit plugins route and run every
            request. The file is reloaded whenever it changes.
            """,
        )
        loader.add_option(
            "datakit_max_body",
            int,
            DEFAULT_MAX_BODY,
            "Largest response body, in bytes, that a call node reads; a larger one fails the node.",
        )
        loader.add_option(
            "datakit_compat",
            str,
            "auto",
            """
            Which Datakit runs the config: "3.11" (Kong 3.11+), "3.10" (the 3.9/3.10 Wasm filter, whose
            configs behave differently: docs/migrating-3.10.md), or "auto", which picks 3.10 only for a
            config written in a form that only 3.9/3.10 accepts (list-form inputs, unnamed nodes, no nodes).
            """,
            choices=list(COMPAT_CHOICES),
        )
        loader.add_option(
            "datakit_admin_listen",
            str,
            "",
            """
            Serve a subset of Kong's Admin API (GET/POST /plugins, GET/PATCH/PUT/DELETE /plugins/{id},
            POST /config) on HOST:PORT, or on PORT of 127.0.0.1. Changes are written back to the
            datakit_config file. Empty (the default): off.
            """,
        )
        loader.add_option(
            "datakit_admin_token",
            str,
            "",
            "When set, the Admin API answers 401 unless a request carries this value in `Kong-Admin-Token`.",
        )
        loader.add_option(
            "datakit_record",
            bool,
            True,
            """
            Keep each flow's node timeline (status, timing, error, small outputs, secrets redacted) in
            flow.metadata["datakit"], shown by the "datakit" content view. Off: only the flow comment
            and the plan status are kept.
            """,
        )
        loader.add_option(
            "datakit_show_calls",
            bool,
            False,
            """
            Show each `call` node's request and response as a flow of its own (its comment: "datakit call
            NODE for CLIENT_FLOW_ID"; flow.metadata["datakit_call"] names both), linked from the client
            flow's flow.metadata["datakit_calls"]; a call that got no answer shows its error. Secret
            headers and vault values are masked.
            """,
        )
        loader.add_option(
            "datakit_gc_freeze",
            bool,
            True,
            """
            Once the proxy runs, move what start-up created (mitmproxy's modules and addons, the loaded
            config) out of Python's cyclic garbage collector's sight (gc.freeze), so that the full
            collections traffic triggers stop walking it again: pauses of ~18 ms instead of ~56 ms here
            (docs/decisions.md). Our extension. Off: the collector sees everything, as in a plain mitmdump.
            """,
        )
        views.register()

    def configure(self, updated: set[str]) -> None:
        if "datakit_record" in updated:
            self._keep_record = ctx.options.datakit_record
        if "datakit_show_calls" in updated:
            self._show_calls = ctx.options.datakit_show_calls
            if self._show_calls and all(ctx.master.addons.get(name) is None for name in FLOW_SINKS):
                logger.warning(
                    "datakit: datakit_show_calls is on, but nothing here lists, prints or saves flows"
                    " (datakit serve has none of that): run mitmweb or mitmdump -s addon/datakit.py"
                    " to see calls"
                )
        if "datakit_gc_freeze" in updated:
            self._gc_freeze = ctx.options.datakit_gc_freeze
            if self._running:
                self._apply_gc_freeze()
        if "datakit_max_body" in updated:
            if ctx.options.datakit_max_body <= 0:
                raise exceptions.OptionsError("datakit_max_body must be a positive number of bytes")
            self.http.max_body = ctx.options.datakit_max_body
        if updated & {"datakit_config", "datakit_compat"}:
            self._configure_file(ctx.options.datakit_config)
        if updated & {"datakit_admin_listen", "datakit_admin_token", "datakit_config"}:
            try:
                moved = self._admin.configure(
                    ctx.options.datakit_admin_listen,
                    ctx.options.datakit_admin_token,
                    ctx.options.datakit_config,
                )
            except ValueError as e:
                raise exceptions.OptionsError(str(e)) from None
            if moved and self._running:
                self._admin.restart()

    def _configure_file(self, path: str) -> None:
        if not path:
            self._install(None)
            self._watcher.watch("")
            return
        try:
            deployment = read_deployment(path, ctx.options.datakit_compat)
        except ConfigError as e:
            message = f"invalid Datakit config {path}:\n{e}"
            if not self._running:
                # At start-up an error log line makes mitmdump exit non-zero (its ErrorCheck addon),
                # with the messages alone instead of an OptionsError traceback.
                logger.error(message)
                return
            # Later, OptionsError rolls the option back: the last good config keeps serving.
            logger.warning("datakit: %s; still serving the previous config", message)
            raise exceptions.OptionsError(message) from None
        self._install(deployment)
        self._watcher.watch(path)

    def running(self) -> None:
        self._running = True
        self._watcher.start()
        self._admin.start()  # binds now, so a port in use is a start-up error
        self._apply_gc_freeze()

    def _apply_gc_freeze(self) -> None:
        """Freeze what is alive now (after collecting the start-up garbage), or give it back to the collector.

        Frozen objects are still freed when their last reference goes; only a frozen cycle (the first
        config's plans hold a few, tens of KiB) stays until `done` unfreezes, which a script reload does too.
        """
        if self._gc_freeze:
            gc.collect()
            gc.freeze()
        else:
            gc.unfreeze()

    def done(self) -> None:
        # done() must stay sync (script reloads call it from sync code); what needs awaiting runs as tasks.
        self._watcher.stop()
        self._admin.stop()
        views.unregister()
        if self._running:
            gc.unfreeze()  # a reloaded script freezes again when it runs; what it replaced can be collected
        self.active.close_all()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.http.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # -- loading and reloading -----------------------------------------------------------------
    def _install(self, deployment: Deployment | None) -> None:
        self.active.swap(deployment)
        self._gateway_options.apply(bool(deployment and deployment.kong.routes_traffic))
        if deployment is None:
            return
        logger.info("datakit: loaded %s (%s)", deployment.source, deployment.describe())
        for dialect in deployment.dialects:
            logger.info("datakit: %s", dialect)
        if deployment.ignored:
            logger.warning("datakit: ignored (they have no effect here): %s", "; ".join(deployment.ignored))

    def _reload(self, *, reason: str, force: bool) -> None:
        """Load the file again; an invalid version is a warning and the current one keeps serving."""
        path = ctx.options.datakit_config
        if not path:
            return
        try:
            text = Path(path).read_text(encoding="utf-8")
            current = self.active.current
            if not force and current is not None and current.text == text:
                return  # our own write (Admin API), or a touch without a change
            deployment = load_deployment(text, source=path, compat=ctx.options.datakit_compat)
        except (OSError, UnicodeDecodeError, ConfigError) as e:
            detail = f" cannot read it: {e}" if isinstance(e, (OSError, UnicodeDecodeError)) else f"\n{e}"
            logger.warning(
                "datakit: %s: %s was not loaded, the previous config keeps serving:%s", reason, path, detail
            )
            return
        self._install(deployment)

    def _file_changed(self) -> None:
        self._reload(reason="file changed", force=False)

    @command.command("datakit.reload")
    def reload(self) -> None:
        """Load the datakit_config file again now (it is also reloaded whenever it changes)."""
        self._reload(reason="datakit.reload", force=True)

    def apply_text(self, text: str) -> Deployment:
        """The Admin API's change: check the whole new file, write it atomically, then serve it.
        ConfigError (nothing written, nothing changed) if the new version is invalid."""
        path = ctx.options.datakit_config
        deployment = load_deployment(text, source=path, compat=ctx.options.datakit_compat)
        _write_atomically(Path(path), text)
        self._install(deployment)
        return deployment

    # -- access phase --------------------------------------------------------------------------
    # The hooks are plain methods that return a coroutine only while a call is in flight: mitmproxy awaits what a
    # hook returns, and most phases (every one without a call) finish synchronously, without coroutines.
    def request(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, None] | None:
        # A call flow replayed from mitmweb is live: it resends the call, the graph does not run on it.
        if flow.response or flow.error or not flow.live or CALL_KEY in flow.metadata:
            return None
        leased = self.active.lease(flow)
        if leased is None:
            return None
        deployment, release = leased
        original = flow.request
        kept = False
        try:
            state = self._start_access(flow, deployment, release)
            if state is None:
                return None
            if not self._ran_now(state):
                kept = True  # until the coroutine ends
                return self._access_later(flow, state)
            kept = self._end_access(flow, state)
        except Exception:
            self._access_failed(flow, original)
        finally:
            if not kept:
                release()
        return None

    async def _access_later(self, flow: http.HTTPFlow, state: FlowState) -> None:
        kept = False
        try:
            state.elapsed += await self._advance(flow, state.run)
            kept = self._end_access(flow, state)
        except Exception:
            self._access_failed(flow, state.gateway.original)
        finally:
            if not kept:
                state.release()

    def _access_failed(self, flow: http.HTTPFlow, original: http.Request) -> None:
        flow.request = original
        logger.exception("datakit: internal error while running the access phase")
        self._answer_internal_error(flow)

    def _start_access(self, flow: http.HTTPFlow, deployment: Deployment, release: Release) -> FlowState | None:
        """Route the flow and start its plan; None when the flow is done with (answered, or no plan runs)."""
        request_id = new_request_id()
        # Only routing needs the client's view up front; without it, the properties that read it build it.
        client = ClientView.of(flow) if deployment.router is not None else None
        facts = request_facts(flow, client, deployment) if client is not None else None
        selection = deployment.select(facts)
        if client is not None and not self._routable(flow, selection, client, request_id):
            return None
        plan = selection.plan
        if plan is None and selection.service is None:
            self._check_service(flow, selection, request_id)
            return None
        original = flow.request
        value = request_value(flow, plan.request_fields) if plan is not None else {}  # as the client sent it
        # Routing, property SETs (target, scheme) and writes go to a copy, swapped in at the end. The copy is
        # made by the first change (FlowGateway.writable_request): most flows change nothing before the end.
        if selection.service is not None:
            assert facts is not None
            destination = deployment.destination(selection, facts)
            if destination is None:
                flow.response = kong_answer(503, "failure to get a peer from the ring-balancer", request_id)
                return None
            flow.request = copy_message(original)
            send_to(flow.request, destination)
        if plan is None:
            return None
        gateway = FlowGateway(flow, client, deployment, selection, original=original)
        # `plan.debug` first: without it no header asks for a trace, and looking one up costs a few µs.
        tracing = plan.debug and plan.wants_trace(original.headers.get(TRACE_HEADER))
        calls = self._call_flows.recorder(flow) if self._show_calls else None
        run = plan.new_run(RunContext(request_id, gateway, self.http, on_call=calls), tracing=tracing)
        if calls is not None and isinstance(run, Run):
            calls.secrets = run.secrets  # 3.9/3.10 configs have no vault
        run.start(value)
        return FlowState(run, gateway, release)

    def _end_access(self, flow: http.HTTPFlow, state: FlowState) -> bool:
        """Answer or write the flow by how its access phase ended; True when the response phase still needs the
        flow's state."""
        run, gateway = state.run, state.gateway
        original = gateway.original
        if run.aborted:
            flow.request = original
            if flow.killable:
                flow.kill()
            return False
        if run.failure is not None:
            flow.request = original
            self._answer_failure(flow, state)
        elif run.exit is not None:
            flow.request = original
            gateway.exited = True
            self._answer_exit(flow, state)
        elif self._check_service(flow, gateway.selection, run.ctx.request_id):
            flow.request = original
            state.own_response = True
        else:
            self._write_service_request(gateway, run)
        if run.plan.needs_response_phase or run.trace is not None or gateway.response_status is not None:
            self._states[flow] = state  # the record is written when the response phase ends
            return True
        self._record(flow, state)
        return False

    def _routable(
        self, flow: http.HTTPFlow, selection: Selection, client: ClientView, request_id: str
    ) -> bool:
        """Kong's answers when the file routes and this flow has nowhere to go: 404, or 426 for a route
        that wants https."""
        if selection.match is None:
            flow.response = kong_answer(404, "no Route matched with those values", request_id)
            return False
        if not selection.match.allows(client.scheme):
            flow.response = wrong_protocol_answer(selection.match, flow, client, request_id)
            return False
        return True

    def _check_service(self, flow: http.HTTPFlow, selection: Selection, request_id: str) -> bool:
        """A route without a service proxies nowhere: if its plugins did not answer, Kong says 503."""
        if selection.match is None or selection.service is not None:
            return False
        flow.response = kong_answer(503, "no Service found with those values", request_id)
        return True

    def _write_service_request(self, gateway: FlowGateway, run: Run) -> None:
        write = run.writes.get("service_request")
        if write is None:
            return
        request = gateway.writable_request()
        apply_write(request, write)
        if write.query is not None:
            apply_query(request, write.query)

    def _answer_exit(self, flow: http.HTTPFlow, state: FlowState) -> None:
        assert state.run.exit is not None
        flow.response = make_response(
            state.run.exit.status, state.run.exit.write, {"X-Kong-Request-Id": state.run.ctx.request_id}
        )
        state.own_response = True

    def _answer_failure(self, flow: http.HTTPFlow, state: FlowState) -> None:
        run = state.run
        assert run.failure is not None
        logger.error("datakit: %s", run.failure.log_line())
        flow.response = http.Response.make(
            500, run.error_body(), {"Content-Type": JSON, "X-Kong-Request-Id": run.ctx.request_id}
        )
        state.own_response = True

    def _answer_internal_error(self, flow: http.HTTPFlow) -> None:
        body = b'{"message":"An unexpected error occurred"}'
        flow.response = http.Response.make(500, body, {"Content-Type": JSON})

    # -- response phase ------------------------------------------------------------------------
    def response(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, None] | None:
        state = self._states.pop(flow, None)
        if state is None:
            return None
        later = None
        try:
            if flow.response is None:
                return None
            if not state.own_response:
                state.run.provide_service_response(
                    service_response_value(flow.response, state.run.plan.service_response_fields)
                )
                if not self._ran_now(state):
                    later = self._response_later(flow, state)
                    return later
                self._end_response_phase(flow, state)
            self._show_trace(flow, state)
        except Exception:
            self._response_failed(flow)
        finally:
            if later is None:
                self._record(flow, state)
                state.release()
        return None

    async def _response_later(self, flow: http.HTTPFlow, state: FlowState) -> None:
        try:
            state.elapsed += await self._advance(flow, state.run)
            self._end_response_phase(flow, state)
            self._show_trace(flow, state)
        except Exception:
            self._response_failed(flow)
        finally:
            self._record(flow, state)
            state.release()

    def _response_failed(self, flow: http.HTTPFlow) -> None:
        logger.exception("datakit: internal error while running the response phase")
        self._answer_internal_error(flow)

    def _show_trace(self, flow: http.HTTPFlow, state: FlowState) -> None:
        if state.run.trace is not None and flow.response is not None:
            set_plain_body(flow.response, state.run.render_trace(), JSON)

    def _end_response_phase(self, flow: http.HTTPFlow, state: FlowState) -> None:
        run = state.run
        assert flow.response is not None
        if run.aborted:
            return
        if run.failure is not None:
            self._answer_failure(flow, state)
            return
        if run.exit is not None:
            state.gateway.exited = True
            self._answer_exit(flow, state)
            return
        response = copy_message(flow.response)
        write: MessageWrite | None = run.writes.get("response")
        if write is not None:
            apply_write(response, write)
        if state.gateway.response_status is not None:
            response.status_code = state.gateway.response_status
        flow.response = response

    def _ran_now(self, state: FlowState) -> bool:
        """Run the nodes that can run without waiting; True when nothing is left in flight (the phase is over)."""
        began = time.perf_counter()
        done = isinstance(state.run, Run) and state.run.advance_now()
        state.elapsed += time.perf_counter() - began
        return done

    async def _advance(self, flow: http.HTTPFlow, run: Run | LegacyRun) -> float:
        """Run the phase to its end, calls in flight included; the seconds it took."""
        runs = self._inflight.setdefault(flow.client_conn.id, set())
        runs.add(run)
        began = time.perf_counter()
        try:
            await run.advance()
            return time.perf_counter() - began
        finally:
            runs.discard(run)
            if not runs:
                self._inflight.pop(flow.client_conn.id, None)

    def client_disconnected(self, client: connection.Client) -> None:
        for run in self._inflight.pop(client.id, set()):
            run.abort()

    def error(self, flow: http.HTTPFlow) -> None:
        state = self._states.pop(flow, None)
        if state is not None:
            state.run.close()
            self._record(flow, state)
            state.release()

    def _record(self, flow: http.HTTPFlow, state: FlowState) -> None:
        """Comment, mark and node record, once per flow, when its run has ended (never raises)."""
        summary.finish(flow, state.run, state.elapsed, record=self._keep_record)


def _write_atomically(path: Path, text: str) -> None:
    """Write a sibling temp file and rename it over the config: a reader (the watcher, an editor, a
    crash) sees the old file or the new one, never half of one."""
    temp = path.with_name(f".{path.name}.datakit-tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        if path.exists():
            temp.chmod(path.stat().st_mode & 0o7777)
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)
