"""What a running node may use: the gateway it runs in, the shared HTTP client, the request id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .types import Value

if TYPE_CHECKING:
    from .http_client import CallExchange, HttpClient


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
