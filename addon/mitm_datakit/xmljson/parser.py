"""A hardened XML parser: nothing outside the document is ever read, no entity is ever expanded.

lxml with entity resolution, DTD loading and network access off, and libxml2's size and depth
limits on (no `huge_tree`). A document with a DOCTYPE is refused outright: entity declarations
(billion laughs, external entities) only come in through one, and SOAP forbids it anyway.
"""

from __future__ import annotations

from lxml import etree

from . import XmlError

_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}
DOCTYPE_REFUSED = "a document with a DOCTYPE is refused (DTDs and entity declarations are not allowed)"
# The text reaches us decoded; the bytes we hand lxml are UTF-8 whatever encoding the document's
# declaration names, so the parser is told to ignore the declaration.
_PARSER = etree.XMLParser(encoding="utf-8", **_PARSER_OPTIONS)  # type: ignore[arg-type]


def parse_xml(document: str) -> etree._Element:
    """The root element of `document`; XmlError when it is not well-formed or declares a DOCTYPE."""
    if not document.strip():
        raise XmlError("empty document")
    try:
        root = etree.fromstring(document.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as e:
        # libxml2 may stop a hostile DTD itself (its entity amplification limit) before we can look at
        # the tree; say why the document is refused, not how libxml2 noticed.
        if "<!DOCTYPE" in document:
            raise XmlError(DOCTYPE_REFUSED) from None
        raise XmlError(f"invalid XML: {e.msg}") from None
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:
        raise XmlError(DOCTYPE_REFUSED)
    return root
