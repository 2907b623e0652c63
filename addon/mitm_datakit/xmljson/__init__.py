"""XML <-> JSON for the `xml_to_json` and `json_to_xml` nodes (spec §5.8, §5.9), on lxml."""

from __future__ import annotations


class XmlError(Exception):
    """The XML cannot be read or written; the message says why, never quoting a whole document."""
