"""`jq`: run a jq program over the node's inputs (spec §5.2), with libjq through the `jq` package.

The program is compiled once, when the config becomes a Plan. Named inputs are both the fields of
`.` (3.11+ style) and `$name` variables (3.9/3.10 style), so programs written for either run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import jq as libjq
import orjson

from ..config.schema import Field
from ..errors import NodeError
from ..types import SELF, DkType, Value
from .base import BuildError, NodeSpec, NodeType, SyncRun

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def variable_name(input_name: str) -> str | None:
    """The `$variable` an input is bound to: `.` becomes `_`, a leading `$` is dropped (Kong 3.9/3.10)."""
    name = input_name.replace(".", "_").lstrip("$")
    # `$__loc__` is jq syntax, not a variable: binding it would make a valid program fail to compile.
    return name if _IDENTIFIER.fullmatch(name) and name != "__loc__" else None


def bind_variables(program: str, input_names: list[str]) -> str:
    """Prefix `program` so that each named input is also a variable.

    `E as $x | P` keeps `.` unchanged for P, so the prefix changes nothing else about the program.
    """
    bindings = []
    for name in sorted(input_names):
        var = variable_name(name)
        if var:
            key = name.replace("\\", "\\\\").replace('"', '\\"')
            bindings.append(f'.["{key}"] as ${var} | ')
    return "".join(bindings) + "(" + program + "\n)" if bindings else program


def compile_error_text(error: ValueError) -> str:
    """libjq prints several lines; the first one says what is wrong and where."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = next((line for line in lines if line.startswith("jq: error")), lines[0] if lines else "")
    return detail.removeprefix("jq: error: ").rstrip(":")


def to_jq_value(value: Value) -> Value:
    """A bytes body (not UTF-8) reaches jq as text with replacement characters."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def with_input(compiled: libjq._Program, data: Value) -> libjq._ProgramWithInput:
    """The program bound to `data`, as `compiled.input_value(data)` binds it.

    input_value writes `data` with json.dumps for libjq to parse; orjson writes the same JSON about ten times
    faster (4 µs of a 245-byte body's 25). It writes NaN and infinities as `null` where json.dumps writes `NaN`,
    which libjq reads as a number: text holding a null takes json.dumps's way, as does whatever orjson refuses
    (integers beyond 64 bits, non-text keys, nesting deeper than 255, lone surrogates).
    """
    try:
        text = orjson.dumps(data)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return compiled.input_value(data)
    if b"null" in text:
        return compiled.input_value(data)
    return compiled.input_text(text.decode("utf-8"))


class Jq(NodeType):
    type_name = "jq"
    fields = {"jq": Field("string", required=True, minimum=1, maximum=10240, description="The jq program.")}
    input_fields: Mapping[str, DkType] | None = None  # free names
    self_input = DkType.ANY
    self_output = DkType.ANY
    allows_field_outputs = False

    def build(self, spec: NodeSpec) -> SyncRun:
        program = spec.settings["jq"]
        names = [n for n in spec.connected_inputs if n != SELF]
        try:
            compiled = libjq.compile(bind_variables(program, names))
        except ValueError as e:
            raise BuildError("jq", f"invalid jq program: {compile_error_text(e)}") from None
        takes_self = SELF in spec.connected_inputs

        def run(inputs: dict[str, Value], ctx: object) -> Value:
            if takes_self:
                data = to_jq_value(inputs.get(SELF))
            elif not names:
                data = None  # no input at all: `.` is null (spec §5.2), not an empty object
            else:
                data = {name: to_jq_value(inputs.get(name)) for name in names}
            try:
                # Kong 3.11+ documents one output per node: the first result; none gives null.
                return with_input(compiled, data).first()
            except StopIteration:
                return None
            except ValueError as e:
                raise NodeError(f"jq: {e}") from None

        return run
