"""XML elements as JSON values (spec §5.8).

- The root element is the top-level key: `<root>…</root>` -> `{"root": …}`.
- Child elements become keys; repeated siblings become an array in document order.
- An element with only text becomes that text; an empty one becomes `{}`.
- Attributes go under `attributes_block_name` when it is set, else become keys named
  `attributes_name_prefix + name`. Namespace declarations count as attributes (`xmlns:soap`), so
  converting back with `json_to_xml` gives a document with the same namespaces.
- The text of an element that also has attributes or children goes under `text_block_name`; with
  `text_as_property` every element's text does, even a text-only element's.
- `recognize_type` turns text (and attribute values) that is a JSON number, `true`, `false` or
  `null` into that JSON value. Numbers follow JSON's grammar, so `007` and `1e` stay strings.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from lxml import etree

from ..types import Value

_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_LITERALS: dict[str, Value] = {"true": True, "false": False, "null": None}


@dataclass(frozen=True)
class ToJsonOptions:
    attributes_block_name: str | None
    attributes_name_prefix: str | None
    text_block_name: str
    text_as_property: bool
    recognize_type: bool


def qualified_name(node: etree._Element, name: str) -> str:
    """`{uri}local` as the document wrote it: `prefix:local` (or `local` in the default namespace)."""
    qname = etree.QName(name)
    if qname.namespace is None:
        return qname.localname
    prefix = next((p for p, uri in (node.nsmap or {}).items() if uri == qname.namespace and p), None)
    if qname.namespace == "http://www.w3.org/XML/1998/namespace":
        prefix = "xml"
    return f"{prefix}:{qname.localname}" if prefix else qname.localname


def _tag_name(element: etree._Element) -> str:
    return (
        f"{element.prefix}:{etree.QName(element).localname}"
        if element.prefix
        else etree.QName(element).localname
    )


def _namespace_declarations(element: etree._Element) -> dict[str, str]:
    """The xmlns attributes written on this element: its namespaces that its parent does not have."""
    parent = element.getparent()
    inherited = parent.nsmap if parent is not None else {}
    declared = {}
    for prefix, uri in element.nsmap.items():
        if inherited.get(prefix) != uri:
            declared["xmlns" if prefix is None else f"xmlns:{prefix}"] = uri
    return declared


class XmlToJson:
    def __init__(self, options: ToJsonOptions) -> None:
        self.options = options

    def scalar(self, text: str) -> Value:
        if not self.options.recognize_type:
            return text
        stripped = text.strip()
        if stripped in _LITERALS:
            return _LITERALS[stripped]
        if _JSON_NUMBER.fullmatch(stripped):
            number = json.loads(stripped)
            # 1e400 would be infinity, which JSON cannot carry: keep the text.
            return number if number not in (float("inf"), float("-inf")) else text
        return text

    def document(self, root: etree._Element) -> dict[str, Value]:
        return {_tag_name(root): self.element(root)}

    def children(self, elements: list[etree._Element]) -> dict[str, Value]:
        """Elements as the keys of one object: repeated names become arrays, in document order.

        An element's own value is never an array, so an array here always holds repeated siblings.
        """
        result: dict[str, Value] = {}
        for child in elements:
            name = _tag_name(child)
            value = self.element(child)
            if name not in result:
                result[name] = value
            elif isinstance(result[name], list):
                result[name].append(value)
            else:
                result[name] = [result[name], value]
        return result

    def element(self, element: etree._Element) -> Value:
        options = self.options
        attributes = {**_namespace_declarations(element)}
        for name, value in element.attrib.items():
            attributes[qualified_name(element, name)] = self.scalar(value)
        child_elements = [c for c in element if isinstance(c.tag, str)]
        text = "".join(_direct_texts(element))
        if not attributes and not child_elements and not options.text_as_property:
            return self.scalar(text) if text.strip() else {}
        result: dict[str, Value] = {}
        if attributes:
            if options.attributes_block_name:
                result[options.attributes_block_name] = attributes
            else:
                prefix = options.attributes_name_prefix or ""
                result.update({prefix + name: value for name, value in attributes.items()})
        result.update(self.children(child_elements))
        if text.strip():
            result[options.text_block_name] = self.scalar(text.strip() if child_elements else text)
        return result


def _direct_texts(element: etree._Element) -> list[str]:
    """The element's own text and the text after each child (mixed content), CDATA included."""
    texts = [element.text or ""]
    texts.extend(child.tail or "" for child in element)
    return texts
