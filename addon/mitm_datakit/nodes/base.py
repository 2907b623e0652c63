"""What a node type is: its config fields, its typed inputs and outputs, and how it runs.

Adding a node type is one module that subclasses `NodeType` plus one line in `nodes/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..config.schema import Field
from ..resources import PlanResources
from ..types import DkType, Value

if TYPE_CHECKING:
    from ..context import RunContext


@dataclass(frozen=True)
class NodeSpec:
    """A user node as configured: 1-based position, name, type and its checked settings."""

    index: int
    name: str
    type: str
    settings: Mapping[str, Any]
    connected_inputs: frozenset[str] = field(default_factory=frozenset)  # "$self" or field names
    # The whole plugin config, for nodes that use top-level settings (resources, ca_certificates).
    config: Mapping[str, Any] = field(default_factory=dict)
    resources: PlanResources = field(default_factory=PlanResources)  # shared by the plan's nodes


class BuildError(Exception):
    """Raised by `NodeType.build` when a setting cannot be compiled (a jq syntax error, say)."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field_name = field_name
        self.message = message
        super().__init__(message)


# A built node: called with its gathered inputs ({"$self": v} or {field: v}) and the run context.
SyncRun = Callable[[dict[str, Value], "RunContext"], Value]
AsyncRun = Callable[[dict[str, Value], "RunContext"], Awaitable[Value]]


class NodeType:
    """Base of every node type. Class attributes describe the type; `build` compiles one node."""

    type_name: ClassVar[str]
    fields: ClassVar[Mapping[str, Field]] = {}
    # Field inputs and their types; None means free names (each `any`), as `jq` takes.
    input_fields: ClassVar[Mapping[str, DkType] | None] = {}
    # The type of a node-wise `input:`; None means `input` is not allowed.
    self_input: ClassVar[DkType | None] = None
    # Field outputs and their types; `static` computes its own from `values`.
    output_fields: ClassVar[Mapping[str, DkType]] = {}
    # The type of the node-wise output; None means the node has no output at all.
    self_output: ClassVar[DkType | None] = DkType.ANY
    # Whether field-level `outputs:` may be written on this node.
    allows_field_outputs: ClassVar[bool] = True
    is_async: ClassVar[bool] = False
    # Fields that list node names this node controls (branch's then/else): each waits for this node.
    control_fields: ClassVar[tuple[str, ...]] = ()

    def allows_field_inputs(self) -> bool:
        return self.input_fields is None or bool(self.input_fields)

    def outputs_of(self, settings: Mapping[str, Any]) -> Mapping[str, DkType]:
        return self.output_fields

    def check(self, settings: Mapping[str, Any], report: Callable[[str, str], None]) -> None:
        """Type-specific rules beyond the field table; report(field, reason)."""

    def check_wiring(
        self, settings: Mapping[str, Any], connected: frozenset[str], report: Callable[[str, str], None]
    ) -> None:
        """Rules that depend on which inputs are connected (known once every edge is resolved)."""

    def runs_after_proxying(self, settings: Mapping[str, Any], connected: frozenset[str]) -> bool:
        """True when the node reads upstream response state without an edge saying so."""
        return False

    def build(self, spec: NodeSpec) -> SyncRun | AsyncRun:
        raise NotImplementedError
