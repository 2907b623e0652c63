"""`property`: GET or SET gateway data (spec §5.4). With an input it is a SET, without one a GET."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..config.schema import Field
from ..errors import NodeError
from ..properties import canonical_name, rule_for
from ..types import SELF, DkType, Value
from ..values import json_dumps
from .base import NodeSpec, NodeType, SyncRun

if TYPE_CHECKING:
    from ..context import RunContext

CONTENT_TYPES = ("application/json", "application/octet-stream", "text/plain")


class Property(NodeType):
    type_name = "property"
    fields = {
        "property": Field("string", required=True, minimum=1, maximum=255, description="The property name."),
        "content_type": Field(
            "string", choices=CONTENT_TYPES, description="application/json: SET encodes, GET decodes JSON text."
        ),
        "non_nil": Field("boolean", default=False, description="Fail instead of reading or writing null."),
    }
    input_fields: Mapping[str, DkType] = {}
    self_input = DkType.ANY
    self_output = DkType.ANY
    allows_field_outputs = False

    def check(self, settings: Mapping[str, Any], report: Callable[[str, str], None]) -> None:
        name = settings.get("property")
        if isinstance(name, str) and rule_for(name) is None:
            report("property", f"unknown property: {name}")

    def check_wiring(
        self, settings: Mapping[str, Any], connected: frozenset[str], report: Callable[[str, str], None]
    ) -> None:
        """A GET of a write-only or a SET of a read-only property is a config error (Kong 3.11.0.7+)."""
        name = settings.get("property")
        rule = rule_for(name) if isinstance(name, str) else None
        if rule is None:
            return
        if SELF in connected and not rule.set:
            report("input", f"property {name} is read-only and cannot be set (remove the node's input)")
        elif SELF not in connected and not rule.get:
            report("property", f"property {name} is write-only and cannot be read (connect an input to set it)")

    def runs_after_proxying(self, settings: Mapping[str, Any], connected: frozenset[str]) -> bool:
        rule = rule_for(settings["property"])
        return bool(rule and rule.after_proxying and SELF not in connected)

    def build(self, spec: NodeSpec) -> SyncRun:
        name = canonical_name(spec.settings["property"])
        as_json = spec.settings["content_type"] == "application/json"
        non_nil = spec.settings["non_nil"]

        if SELF in spec.connected_inputs:

            def set_property(inputs: dict[str, Value], ctx: RunContext) -> Value:
                value = inputs.get(SELF)
                if value is None and non_nil:
                    raise NodeError(f"property {name}: cannot set a null value (non_nil is set)")
                stored = json_dumps(value) if as_json else value
                try:
                    ctx.gateway.set_property(name, stored)
                except ValueError as e:
                    raise NodeError(f"property {name}: {e}") from None
                return value

            return set_property

        def get_property(inputs: dict[str, Value], ctx: RunContext) -> Value:
            value = ctx.gateway.get_property(name)
            if as_json and isinstance(value, (str, bytes)):
                try:
                    value = json.loads(value)
                except ValueError as e:
                    raise NodeError(f"property {name}: stored value is not valid JSON: {e}") from None
            if value is None and non_nil:
                raise NodeError(f"property {name} is not set (non_nil is set)")
            return value

        return get_property
