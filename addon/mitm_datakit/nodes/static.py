"""`static`: constant values known at config time (spec §5.5)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..config.schema import Field
from ..types import DkType, Value
from .base import NodeSpec, NodeType, SyncRun


def literal_type(value: Any) -> DkType:
    """The type a static value has on its output edge, so config time can check connections."""
    if isinstance(value, bool):
        return DkType.BOOLEAN
    if isinstance(value, (int, float)):
        return DkType.NUMBER
    if isinstance(value, str):
        return DkType.STRING
    if isinstance(value, dict):
        return DkType.MAP
    return DkType.ANY


class Static(NodeType):
    type_name = "static"
    fields = {"values": Field("object", required=True, description="Constant values; each key is an output.")}
    input_fields: Mapping[str, DkType] = {}
    self_input = None
    self_output = DkType.OBJECT

    def outputs_of(self, settings: Mapping[str, Any]) -> Mapping[str, DkType]:
        values = settings.get("values")
        if not isinstance(values, dict):
            return {}
        return {str(key): literal_type(val) for key, val in values.items()}

    def check(self, settings: Mapping[str, Any], report: Callable[[str, str], None]) -> None:
        values = settings.get("values")
        if isinstance(values, dict) and not all(isinstance(k, str) for k in values):
            report("values", "keys must be strings")

    def build(self, spec: NodeSpec) -> SyncRun:
        values: Value = spec.settings["values"]

        def run(inputs: dict[str, Value], ctx: object) -> Value:
            return values

        return run
