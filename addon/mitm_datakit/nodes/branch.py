"""`branch`: run one list of nodes or the other, by a boolean condition (spec §5.6, Kong 3.12+).

Nodes in the chosen list run when their own inputs are ready; nodes in the other list are skipped,
and so is every node that depends on a skipped one (docs/decisions.md). Nodes in neither list run
as if there were no branch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config.schema import Field
from ..errors import NodeError
from ..types import SELF, DkType, Value
from ..values import type_name
from .base import NodeSpec, NodeType, SyncRun


@dataclass(frozen=True)
class BranchDecision:
    """What a branch node returns: the runtime skips the nodes listed under `skip_field`."""

    condition: bool

    @property
    def skip_field(self) -> str:
        return "else" if self.condition else "then"


NODE_LIST = Field("string_list", minimum=1, maximum=64, description="Names of the nodes this branch controls.")


class Branch(NodeType):
    type_name = "branch"
    fields = {"then": NODE_LIST, "else": NODE_LIST}
    # Fields whose values name the nodes this node controls; the plan makes each listed node wait for it.
    control_fields = ("then", "else")
    input_fields: Mapping[str, DkType] = {}
    self_input = DkType.BOOLEAN
    output_fields: Mapping[str, DkType] = {}
    # Kong's schema lists `output`/`outputs.then`/`outputs.else` but documents no meaning for them.
    self_output = None
    allows_field_outputs = False

    def check_wiring(
        self, settings: Mapping[str, Any], connected: frozenset[str], report: Callable[[str, str], None]
    ) -> None:
        if SELF not in connected:
            report("input", "required field missing (the branch condition)")

    def build(self, spec: NodeSpec) -> SyncRun:
        def run(inputs: dict[str, Value], ctx: object) -> Value:
            condition = inputs.get(SELF)
            if not isinstance(condition, bool):
                raise NodeError(f"branch condition must be a boolean, got {type_name(condition)}")
            return BranchDecision(condition)

        return run
