"""`handlebars`: render a Handlebars template with pybars3 (Kong 3.9/3.10; kept here as an extension).

Kong removed the node in 3.11; configs that use it still run here. `{{x}}` HTML-escapes, as
Handlebars does everywhere; use `{{{x}}}` for raw text.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Mapping
from typing import Any

from ..config.schema import Field
from ..errors import NodeError
from ..types import SELF, DkType, Value
from ..values import is_json_content_type
from .base import BuildError, NodeSpec, NodeType, SyncRun
from .jq import to_jq_value, variable_name

_compile_lock = threading.Lock()  # pybars' compiler keeps state while compiling
_compiler: Any = None


def _compile(template: str) -> Any:
    """pybars builds its grammar on import (about 0.7 s): load it only for configs that use templates."""
    global _compiler
    with _compile_lock:
        if _compiler is None:
            _compiler = importlib.import_module("pybars").Compiler()
        return _compiler.compile(template)


def context_names(input_names: frozenset[str]) -> dict[str, str]:
    """The name each named input has in the template: its `$variable` name where it has one."""
    return {name: variable_name(name) or name for name in input_names if name != SELF}


def template_context(inputs: dict[str, Value], names: dict[str, str]) -> Value:
    if SELF in inputs:
        return to_jq_value(inputs[SELF])
    return {names[name]: to_jq_value(value) for name, value in inputs.items()}


class Handlebars(NodeType):
    type_name = "handlebars"
    fields = {
        "template": Field("string", default="", description="The Handlebars template."),
        "content_type": Field(
            "string", default="text/plain", description="How the rendered text is decoded: JSON types are parsed."
        ),
    }
    input_fields: Mapping[str, DkType] | None = None
    self_input = DkType.ANY
    self_output = DkType.ANY
    allows_field_outputs = False

    def build(self, spec: NodeSpec) -> SyncRun:
        try:
            template = _compile(spec.settings["template"])
        except Exception as e:  # pybars raises its own PybarsError and plain exceptions alike
            raise BuildError("template", f"invalid template: {e}") from None
        parse_json = is_json_content_type(spec.settings["content_type"])
        names = context_names(spec.connected_inputs)  # known now: no name is worked out per request

        def run(inputs: dict[str, Value], ctx: object) -> Value:
            context = template_context(inputs, names)
            try:
                text = str(template(context))
            except Exception as e:
                raise NodeError(f"handlebars: error rendering template: {e}") from None
            if not parse_json:
                return text
            try:
                return json.loads(text)
            except json.JSONDecodeError as e:
                raise NodeError(f"handlebars: rendered text is not valid JSON: {e}") from None

        return run
