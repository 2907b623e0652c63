"""`exit`: answer the client directly (spec §5.3). In the access phase the upstream is never contacted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config.schema import Field
from ..types import DkType, Value
from ..values import MessageWrite
from .base import NodeSpec, NodeType, SyncRun


@dataclass(frozen=True)
class ExitResponse:
    """The response an `exit` node produced; the runtime stops the plan when it sees one."""

    status: int
    write: MessageWrite


class Exit(NodeType):
    type_name = "exit"
    fields = {
        "status": Field("integer", default=200, minimum=200, maximum=599, description="HTTP status to answer."),
        # Kong keeps this 3.9/3.10 flag; here a response-phase exit still controls status and headers
        # (the upstream response is buffered), so there is nothing to warn about.
        "warn_headers_sent": Field("boolean", description="Accepted for compatibility; has no effect here."),
    }
    input_fields: Mapping[str, DkType] = {"body": DkType.ANY, "headers": DkType.MAP}
    self_input = DkType.OBJECT
    output_fields: Mapping[str, DkType] = {}
    self_output = None
    allows_field_outputs = False

    def build(self, spec: NodeSpec) -> SyncRun:
        status: int = spec.settings["status"]
        # An unconnected body is an empty body: the exit replaces the whole response.
        def run(inputs: dict[str, Value], ctx: object) -> Value:
            return ExitResponse(status, MessageWrite.from_inputs(inputs, has_body=True))

        return run
