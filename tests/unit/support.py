"""Running the engine without mitmproxy: a config, a request value in, a finished Run out."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mitm_datakit.config import load_config
from mitm_datakit.context import RunContext
from mitm_datakit.http_client import HttpClient
from mitm_datakit.plan import Plan, build_plan
from mitm_datakit.runtime import Run
from mitm_datakit.trace import Trace
from mitm_datakit.types import Value


async def hook_done(result: Awaitable[None] | None) -> None:
    """Await what an addon hook returned, as mitmproxy does: Datakit's hooks return a coroutine only while a
    call is in flight."""
    if result is not None:
        await result


@dataclass
class DictGateway:
    """An in-memory gateway: properties live in a dict (the engine's own interface, not mitmproxy's)."""

    properties: dict[str, Value] = field(default_factory=dict)

    def get_property(self, name: str) -> Value:
        return self.properties.get(name)

    def set_property(self, name: str, value: Value) -> None:
        self.properties[name] = value


def plan_of(config: Mapping[str, Any] | str) -> Plan:
    if isinstance(config, str):
        config = load_config(config)  # YAML 1.2, as the addon reads files
    return build_plan(config)


DEFAULT_REQUEST: dict[str, Value] = {
    "body": None,
    "headers": {"Host": "example.test", "User-Agent": "test"},
    "query": {},
    "path": "/anything",
    "raw_path": "/anything",
    "port": 8000,
    "method": "GET",
    "scheme": "http",
    "version": 1.1,
}


async def run_config(
    config: Mapping[str, Any] | str,
    *,
    request: Mapping[str, Value] | None = None,
    service_response: Mapping[str, Value] | None = None,
    gateway: DictGateway | None = None,
    http: HttpClient | None = None,
    trace: bool = False,
) -> Run:
    """Plan `config`, run the access phase, then (when given) the response phase."""
    plan = plan_of(config)
    client = http or HttpClient()
    try:
        run = Run(plan, RunContext("0" * 32, gateway or DictGateway(), client), trace=Trace() if trace else None)
        run.start({**DEFAULT_REQUEST, **(request or {})})
        await run.advance()
        if service_response is not None and not run.finished:
            run.provide_service_response(service_response)
            await run.advance()
        return run
    finally:
        if http is None:
            await client.close()
