"""The 3.9/3.10 data model (spec §9.3): a port holds Raw bytes, a JSON value, or an Error."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from ..types import Value
from ..values import headers_to_map, json_dumps, parse_json


@dataclass(frozen=True)
class Raw:
    data: bytes


@dataclass(frozen=True)
class PayloadError:
    message: str


Payload = Raw | PayloadError | Value  # anything else is a JSON value


def decode(data: bytes, content_type: str | None) -> Payload:
    """Bytes by content type: JSON (or an Error), form -> object (last duplicate wins), else Raw."""
    content_type = (content_type or "").lower()
    if "application/json" in content_type:
        try:
            return parse_json(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return PayloadError(str(e))
    if "application/x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True))
    return Raw(data)


def is_json(payload: Payload) -> bool:
    return not isinstance(payload, (Raw, PayloadError))


def encode(payload: Payload, content_type: str | None) -> bytes:
    """Bytes for a target content type. A JSON string is its raw characters unless the target is JSON."""
    if isinstance(payload, PayloadError):
        raise ValueError(payload.message)
    if isinstance(payload, Raw):
        return payload.data
    if isinstance(payload, str) and "application/json" not in (content_type or "").lower():
        return payload.encode("utf-8")
    return json_dumps(payload).encode("utf-8")


def to_json(payload: Payload) -> Value:
    """What jq and handlebars see: Raw as a JSON string (UTF-8 only); an Error fails."""
    if isinstance(payload, PayloadError):
        raise ValueError(payload.message)
    if isinstance(payload, Raw):
        return payload.data.decode("utf-8")  # UnicodeDecodeError is a ValueError
    return payload


def header_map(fields: list[tuple[str, str]]) -> dict[str, Value]:
    """Lower-cased names; a repeated header becomes an array of strings."""
    return headers_to_map((name.lower(), value) for name, value in fields)


def header_pairs(payload: Payload) -> list[tuple[str, str]] | None:
    """A consumed header map: strings or arrays of strings (other members dropped); anything else: none."""
    if not isinstance(payload, dict):
        return None
    pairs: list[tuple[str, str]] = []
    for name, value in payload.items():
        if isinstance(value, str):
            pairs.append((name, value))
        elif isinstance(value, list):
            pairs.extend((name, item) for item in value if isinstance(item, str))
    return pairs


def query_string(payload: Payload) -> str:
    """A consumed query map, form-encoded (spaces as `+`), as the 3.9/3.10 filter built it."""
    if isinstance(payload, Raw):
        return payload.data.decode("utf-8", "replace")
    if isinstance(payload, PayloadError):
        raise ValueError(payload.message)
    if isinstance(payload, str):
        return urlencode({payload: ""}).rstrip("=")
    if not isinstance(payload, dict):
        return urlencode({json_dumps(payload): ""}).rstrip("=")
    parts: list[str] = []
    for key, value in payload.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is None:
                parts.append(urlencode({key: ""}).rstrip("="))
            else:
                parts.append(urlencode({key: item if isinstance(item, str) else json_dumps(item)}))
    return "&".join(parts)


def trace_value(payload: Payload | None, present: bool) -> dict[str, Value]:
    """One `values` element of the 3.9/3.10 trace (spec §9.7)."""
    if not present:
        return {"data_type": "none", "value": None}
    if isinstance(payload, PayloadError):
        return {"data_type": "fail", "value": payload.message}
    if isinstance(payload, Raw):
        return {"data_type": "raw", "value": payload.data.decode("utf-8", "replace")}
    return {"data_type": "application/json", "value": payload}
