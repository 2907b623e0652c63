"""JSON values as an XML document (spec §5.9), built with lxml so the output is always well-formed.

- The document has one root: `root_element_name` when set (an input that is already an object
  with that single key is not wrapped twice), else the input's single top-level key.
- An object's keys become child elements, in the input's order; an array becomes repeated
  elements of the same name (nested arrays are flattened); an empty object, array or string
  becomes an empty element.
- Members of the `attributes_block_name` object, and keys that start with
  `attributes_name_prefix`, become attributes; the `text_block_name` key becomes the text.
- Scalars become text: `true`/`false`, numbers as JSON writes them, `null` as `null`.
- `xmlns` / `xmlns:p` attributes declare namespaces, so `soap:Envelope` keys round-trip.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from ..types import Value
from ..values import scalar_text
from . import XmlError

XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"


@dataclass(frozen=True)
class ToXmlOptions:
    root_element_name: str | None
    attributes_block_name: str | None
    attributes_name_prefix: str | None
    text_block_name: str


def _text(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        raise XmlError("an attribute or text value must be a string, number, boolean or null")
    return scalar_text(value)


class JsonToXml:
    def __init__(self, options: ToXmlOptions) -> None:
        self.options = options

    def document(self, value: Value) -> str:
        root_name = self.options.root_element_name
        if root_name is None:
            if not isinstance(value, dict) or len(value) != 1:
                shape = f"an object with {len(value)} keys" if isinstance(value, dict) else "not an object"
                raise XmlError(
                    f"the input is {shape}; an XML document needs one root element "
                    "(set root_element_name to wrap the input in one)"
                )
            ((root_name, value),) = value.items()
        elif isinstance(value, dict) and list(value) == [root_name]:
            value = value[root_name]
        if isinstance(value, list):
            raise XmlError(
                "the root element cannot be an array (a document has one root: put the array under a key)"
            )
        root = self._build(None, str(root_name), value, {})
        return etree.tostring(root, encoding="unicode")

    def _split(self, value: dict[str, Value]) -> tuple[dict[str, Value], dict[str, Value], Value, bool]:
        """An object's attributes, child elements and text (and whether it has text)."""
        options = self.options
        attributes: dict[str, Value] = {}
        children: dict[str, Value] = {}
        text: Value = None
        has_text = False
        for key, item in value.items():
            if options.attributes_block_name is not None and key == options.attributes_block_name:
                if not isinstance(item, dict):
                    raise XmlError(f"{key!r} must be an object of attributes")
                attributes.update(item)
            elif options.attributes_name_prefix and key.startswith(options.attributes_name_prefix):
                attributes[key[len(options.attributes_name_prefix) :]] = item
            elif key == options.text_block_name:
                text, has_text = item, True
            else:
                children[key] = item
        return attributes, children, text, has_text

    def _build(
        self, parent: etree._Element | None, name: str, value: Value, inherited: dict[str | None, str]
    ) -> etree._Element:
        attributes, children, text, has_text = (
            self._split(value) if isinstance(value, dict) else ({}, {}, None, False)
        )
        declared = {
            (None if key == "xmlns" else key[len("xmlns:") :]): _text(uri)
            for key, uri in attributes.items()
            if key == "xmlns" or key.startswith("xmlns:")
        }
        namespaces = {**inherited, **declared}
        tag = _resolve(name, namespaces, element=True)
        try:
            if parent is None:
                element = etree.Element(tag, nsmap=declared or None)  # type: ignore[arg-type]
            else:
                element = etree.SubElement(parent, tag, nsmap=declared or None)  # type: ignore[arg-type]
            for key, item in attributes.items():
                if key != "xmlns" and not key.startswith("xmlns:"):
                    element.set(_resolve(key, namespaces, element=False), _text(item))
            if has_text:
                element.text = _text(text)
            elif not isinstance(value, (dict, list)) and value != "":
                element.text = _text(value)
        except ValueError as e:  # a name that is not an XML name, text with control characters
            raise XmlError(f"cannot write <{name}>: {e}") from None
        for child_name, item in children.items():
            self._children(element, child_name, item, namespaces)
        return element

    def _children(
        self, parent: etree._Element, name: str, value: Value, namespaces: dict[str | None, str]
    ) -> None:
        if isinstance(value, list):
            if not value:
                self._build(parent, name, "", namespaces)
            for item in value:
                self._children(parent, name, item, namespaces)
            return
        self._build(parent, name, value, namespaces)


def _resolve(name: str, namespaces: dict[str | None, str], *, element: bool) -> str:
    """`prefix:local` -> `{uri}local` for lxml. Unprefixed attributes are in no namespace; unprefixed
    elements are in the default one, if declared."""
    prefix, colon, local = name.partition(":")
    if not colon:
        default = namespaces.get(None) if element else None
        return f"{{{default}}}{name}" if default else name
    uri = XML_NAMESPACE if prefix == "xml" else namespaces.get(prefix)
    if uri is None:
        raise XmlError(
            f"namespace prefix {prefix!r} of {name!r} is not declared (add an xmlns:{prefix} attribute)"
        )
    return f"{{{uri}}}{local}"
