"""What a running node may use: the gateway it runs in, the shared HTTP client, the request id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Protocol

from .types import Value

if TYPE_CHECKING:
    from .http_client import CallExchange, HttpClient, InboundResponse, OutboundRequest


class Gateway(Protocol):
    """The proxy's side of the `property` node: the adapter implements it per flow."""

    def get_property(self, name: str) -> Value: ...

    def set_property(self, name: str, value: Value) -> None: ...


@dataclass
class RunContext:
    request_id: str
    gateway: Gateway
    http: HttpClient
    # Told of each call node's exchange (node name, what went over the wire) when the proxy shows calls
    # as flows of their own (`datakit_show_calls`); None: calls are sent without recording anything.
    on_call: Callable[[str, CallExchange], None] | None = None

    async def send_call(self, node: str, request: OutboundRequest) -> InboundResponse:
        """Send a call node's request on the shared client, recording the exchange when calls are shown."""
        if self.on_call is None:
            return await self.http.send(request)
        return await self.http.send_recorded(request, partial(self.on_call, node))
