"""Files that describe HTTP messages for `datakit run`: a request, an upstream response, call fixtures.

They are YAML or JSON, read as YAML 1.2 like configs. A message is a map with `headers` (a map of
name to value or list of values, or a list of `[name, value]` pairs) and `body` (a string is sent
as it is; any other value is sent as JSON, with `Content-Type: application/json` unless the headers
name a type).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

Headers = list[tuple[str, str]]


class InputFileError(Exception):
    """A file or argument given to `datakit run` that it cannot use; the message says which and why."""


def read_document(path: str, what: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"cannot read {what} {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as e:
        raise InputFileError(f"{what} {path} is not valid YAML or JSON: {e}") from None


def require_map(value: Any, where: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    """`value` as a map whose keys are all in `allowed`: a typo is an error, not a silent default."""
    if not isinstance(value, Mapping):
        raise InputFileError(f"{where}: expected a map")
    unknown = sorted(str(key) for key in value if key not in allowed)
    if unknown:
        raise InputFileError(
            f"{where}: unknown key(s) {', '.join(unknown)} (expected: {', '.join(sorted(allowed))})"
        )
    return value


def header_pairs(value: Any, where: str) -> Headers:
    if value is None:
        return []
    if isinstance(value, Mapping):
        pairs: Headers = []
        for name, item in value.items():
            for single in item if isinstance(item, list) else [item]:
                pairs.append((str(name), _header_text(single)))
        return pairs
    if isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        return [(str(name), _header_text(item)) for name, item in value]
    raise InputFileError(
        f"{where}.headers: expected a map of names to values, or a list of [name, value] pairs"
    )


def _header_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def has_header(headers: Headers, name: str) -> bool:
    return any(existing.lower() == name.lower() for existing, _ in headers)


def body_bytes(value: Any, headers: Headers) -> tuple[bytes, Headers]:
    """The body to send and the headers to send it with (a Content-Type added for JSON)."""
    if value is None:
        return b"", headers
    if isinstance(value, str):
        return value.encode("utf-8"), headers
    encoded = json.dumps(value, ensure_ascii=False).encode("utf-8")
    if has_header(headers, "Content-Type"):
        return encoded, headers
    return encoded, [*headers, ("Content-Type", "application/json")]


def parse_header_argument(text: str) -> tuple[str, str]:
    """`-H 'Name: value'`, as curl takes it."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise InputFileError(f"-H {text!r}: expected 'Name: value'")
    return name.strip(), value.strip()
