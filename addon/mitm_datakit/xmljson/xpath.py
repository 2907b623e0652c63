"""`xml_to_json`'s `xpath`: select part of the document (XPath 1.0, libxml2's engine) before converting.

- Elements are converted as the children of one invisible parent: `//book` gives
  `{"book": [{…}, {…}]}` (one match: `{"book": {…}}`, exactly as if it were the root).
- Text and attribute nodes give their text (typed when `recognize_type`); several give an array.
- A number, string or boolean result (`count(//book)`) is that JSON value.
- Nothing selected gives `null`.

Prefixes in the expression resolve to the namespaces the document declares. XPath 1.0 has no
default namespace, so elements in one are reached with `*[local-name()='name']`.
"""

from __future__ import annotations

import math

from lxml import etree

from ..types import Value
from . import XmlError
from .to_json import XmlToJson


def check_xpath(expression: str) -> str | None:
    """Why `expression` is not XPath 1.0, or None."""
    try:
        etree.XPath(expression)
    except etree.XPathSyntaxError as e:
        return f"invalid XPath expression: {e}"
    return None


def _namespaces(root: etree._Element) -> dict[str, str]:
    namespaces: dict[str, str] = {}
    for element in root.iter():
        for prefix, uri in element.nsmap.items():
            if prefix:
                namespaces.setdefault(prefix, uri)
    return namespaces


def select(root: etree._Element, expression: str, converter: XmlToJson) -> Value:
    try:
        result = root.xpath(expression, namespaces=_namespaces(root))
    except etree.XPathError as e:
        raise XmlError(f"xpath: {e}") from None
    if isinstance(result, bool):
        return result
    if isinstance(result, float):
        if math.isnan(result) or math.isinf(result):
            return None
        return int(result) if result.is_integer() else result
    if isinstance(result, str):
        return converter.scalar(result)
    if not result:
        return None
    if all(isinstance(item, etree._Element) for item in result):
        return converter.children(result)
    items = [_item(item, converter) for item in result]
    return items[0] if len(items) == 1 else items


def _item(item: object, converter: XmlToJson) -> Value:
    if isinstance(item, etree._Element):
        return converter.document(item)
    if isinstance(item, tuple):  # a namespace node: (prefix, uri)
        return item[1]
    return converter.scalar(str(item))
