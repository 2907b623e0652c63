"""`json_to_xml`: a JSON value (an object, or a string holding JSON) as an XML document (spec §5.9,
Kong 3.13+). Written to a body, it is sent as `application/xml`. The rules are in `xmljson/to_xml.py`."""

from __future__ import annotations

import json

from ..config.schema import Field
from ..errors import NodeError
from ..types import SELF, DkType, Value
from ..values import XmlText
from ..xmljson import XmlError
from ..xmljson.to_xml import JsonToXml, ToXmlOptions
from .base import NodeSpec, NodeType, SyncRun


class JsonToXmlNode(NodeType):
    type_name = "json_to_xml"
    fields = {
        "root_element_name": Field(
            "string", minimum=1, maximum=64, description="Name of a wrapping root element."
        ),
        "attributes_block_name": Field(
            "string", minimum=1, maximum=32, description="Key whose members become attributes."
        ),
        "attributes_name_prefix": Field(
            "string", minimum=1, maximum=32, description="Keys with this prefix become attributes."
        ),
        "text_block_name": Field(
            "string", default="#text", minimum=1, maximum=32, description="Key of the text."
        ),
    }
    input_fields = None  # free names, as jq: the inputs form one object
    self_input = DkType.ANY
    self_output = DkType.STRING
    allows_field_outputs = False

    def build(self, spec: NodeSpec) -> SyncRun:
        settings = spec.settings
        converter = JsonToXml(
            ToXmlOptions(
                root_element_name=settings["root_element_name"],
                attributes_block_name=settings["attributes_block_name"],
                attributes_name_prefix=settings["attributes_name_prefix"],
                text_block_name=settings["text_block_name"],
            )
        )
        takes_self = SELF in spec.connected_inputs
        names = sorted(n for n in spec.connected_inputs if n != SELF)

        def run(inputs: dict[str, Value], ctx: object) -> Value:
            value = inputs.get(SELF) if takes_self else {name: inputs.get(name) for name in names}
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError as e:
                    raise NodeError(f"json_to_xml: the input string is not JSON: {e}") from None
            try:
                return XmlText(converter.document(value))
            except XmlError as e:
                raise NodeError(f"json_to_xml: {e}") from None

        return run
