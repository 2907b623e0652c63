"""`xml_to_json`: an XML document (a string, e.g. a `text/xml` or `application/xml` body) as JSON
(spec §5.8, Kong 3.13+). The conversion rules are in `xmljson/to_json.py`, `xpath` in `xmljson/xpath.py`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..config.schema import Field
from ..errors import NodeError
from ..types import SELF, DkType, Value
from ..xmljson import XmlError
from ..xmljson.parser import parse_xml
from ..xmljson.to_json import ToJsonOptions, XmlToJson
from ..xmljson.xpath import check_xpath, select
from .base import NodeSpec, NodeType, SyncRun


class XmlToJsonNode(NodeType):
    type_name = "xml_to_json"
    fields = {
        "attributes_block_name": Field(
            "string", minimum=1, maximum=32, description="Key holding the attributes."
        ),
        "attributes_name_prefix": Field(
            "string",
            minimum=1,
            maximum=32,
            description="Prefix of attribute keys (used without a block name).",
        ),
        "text_block_name": Field(
            "string", default="#text", minimum=1, maximum=32, description="Key of text."
        ),
        "text_as_property": Field(
            "boolean", default=False, description="Put every element's text under text_block_name."
        ),
        "recognize_type": Field(
            "boolean", default=True, description="Numbers, booleans and null as JSON types."
        ),
        "xpath": Field(
            "string", minimum=1, maximum=256, description="XPath 1.0: convert only what it selects."
        ),
    }
    input_fields = {}
    self_input = DkType.STRING
    self_output = DkType.ANY
    allows_field_outputs = False

    def check(self, settings: Mapping[str, Any], report: Callable[[str, str], None]) -> None:
        if settings.get("attributes_block_name") is None and settings.get("attributes_name_prefix") is None:
            report(
                "attributes_block_name",
                "At least one of attributes_block_name or attributes_name_prefix is required",
            )
        xpath = settings.get("xpath")
        if isinstance(xpath, str):
            problem = check_xpath(xpath)
            if problem:
                report("xpath", problem)

    def build(self, spec: NodeSpec) -> SyncRun:
        settings = spec.settings
        converter = XmlToJson(
            ToJsonOptions(
                attributes_block_name=settings["attributes_block_name"],
                attributes_name_prefix=settings["attributes_name_prefix"],
                text_block_name=settings["text_block_name"],
                text_as_property=settings["text_as_property"],
                recognize_type=settings["recognize_type"],
            )
        )
        xpath: str | None = settings["xpath"]

        def run(inputs: dict[str, Value], ctx: object) -> Value:
            document = inputs.get(SELF)
            if document is None:
                raise NodeError("xml_to_json: no XML (the input is null)")
            try:
                root = parse_xml(document)
                return converter.document(root) if xpath is None else select(root, xpath, converter)
            except XmlError as e:
                raise NodeError(f"xml_to_json: {e}") from None

        return run
