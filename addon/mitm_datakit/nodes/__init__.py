"""The node type registry: type name -> NodeType. One line per type."""

from __future__ import annotations

from .base import NodeType
from .branch import Branch
from .cache import Cache
from .call import Call
from .exit import Exit
from .handlebars import Handlebars
from .jq import Jq
from .json_to_xml import JsonToXmlNode
from .jwt_decode import JwtDecode
from .jwt_sign import JwtSign
from .jwt_verify import JwtVerify
from .property import Property
from .static import Static
from .xml_to_json import XmlToJsonNode

REGISTRY: dict[str, NodeType] = {
    node_type.type_name: node_type
    for node_type in (
        Branch(),
        Cache(),
        Call(),
        Exit(),
        Handlebars(),
        Jq(),
        JsonToXmlNode(),
        JwtDecode(),
        JwtSign(),
        JwtVerify(),
        Property(),
        Static(),
        XmlToJsonNode(),
    )
}

__all__ = ["REGISTRY", "NodeType"]
