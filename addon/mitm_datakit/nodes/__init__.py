"""The node type registry: type name -> NodeType. One line per type."""

from __future__ import annotations

from .base import NodeType
from .branch import Branch
from .call import Call
from .exit import Exit
from .handlebars import Handlebars
from .jq import Jq
from .property import Property
from .static import Static

REGISTRY: dict[str, NodeType] = {
    node_type.type_name: node_type
    for node_type in (
        Branch(),
        Call(),
        Exit(),
        Handlebars(),
        Jq(),
        Property(),
        Static(),
    )
}

__all__ = ["REGISTRY", "NodeType"]
