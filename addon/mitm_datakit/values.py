"""Codecs between HTTP messages and Datakit values: bodies, header maps, query maps (spec §4.1-§4.3).

Engine code only: nothing here knows about mitmproxy. Bodies are bytes in and bytes out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_plus, urlencode

import orjson

from .types import DkType, Value

JSON_CONTENT_TYPE = "application/json"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
XML_CONTENT_TYPE = "application/xml"


class XmlText(str):
    """A string that is an XML document (`json_to_xml`'s output). It is a plain string to every
    node; a body sink seeing it sets `Content-Type: application/xml` (Kong 3.13.0.10+)."""

    __slots__ = ()


def media_type(content_type: str | None) -> str:
    """`Application/JSON; charset=utf-8` -> `application/json`."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_json_content_type(content_type: str | None) -> bool:
    """JSON is `application/json` or any `+json` suffix type; parameters are ignored (spec §11 Q2)."""
    mt = media_type(content_type)
    return mt == JSON_CONTENT_TYPE or (mt.startswith("application/") and mt.endswith("+json"))


def is_form_content_type(content_type: str | None) -> bool:
    return media_type(content_type) == FORM_CONTENT_TYPE


def compact_json_encoder(default: Callable[[Any], Any] | None = None, *, allow_nan: bool) -> Callable[[Any], str]:
    """`JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=..., allow_nan=...).encode`, built once.

    json.dumps with options builds a new encoder per call, and so does JSONEncoder.encode (its C part), which costs
    about as much as encoding a small body. Without circular-reference markers: no value is circular (JSON and jq
    make trees, and the config loader refuses a YAML alias inside its own anchor).
    """
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=default, allow_nan=allow_nan)
    if c_make_encoder is None:  # a Python without the json C accelerator
        return encoder.encode
    c_encoder = c_make_encoder(None, encoder.default, encode_basestring, None, ":", ",", False, False, allow_nan)

    def encode(value: Any) -> str:
        return "".join(c_encoder(value, 0))

    return encode


json_dumps = compact_json_encoder(allow_nan=False)  # NaN and infinities raise ValueError: JSON has no such number


def body_text(raw: bytes) -> str | bytes:
    """Text when the bytes are UTF-8; otherwise the bytes themselves, so nothing is lost."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


# Every byte of a JSON text mapped to "0" (a digit) or " " (anything else): an integer of 19 digits or more shows as a
# run of 19 zeros.
_DIGIT_MARKS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGIT_RUN = b"0" * 19


def parse_json(raw: bytes) -> Value:
    """`json.loads(raw)`, the same value or the same error, about three times faster for a body.

    orjson parses what it accepts as json does (a fuzz of ~150,000 valid texts found no difference), but for one
    case: an integer beyond 64 bits (-2**63 to 2**64-1) becomes a float. A text with 19 digits in a row might hold
    one and goes to json, as does whatever orjson refuses (NaN, 1e400, lone surrogates, a BOM, UTF-16, nesting
    deeper than 1,024), so json.loads raises its own errors.
    """
    if _LONG_DIGIT_RUN not in raw.translate(_DIGIT_MARKS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def decode_body(raw: bytes, content_type: str | None, *, decode_form: bool = False) -> Value:
    """Decode a body by its content type. Raises ValueError for a JSON content type with invalid JSON.

    An empty body is `null` whatever its type: there is nothing to decode, and `null` is what lets a
    `call` fall back to its static `url` when `inputs.url` comes from an empty request body.
    """
    if not raw:
        return None
    if is_json_content_type(content_type):
        try:
            return parse_json(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"invalid JSON body: {e}") from None
        except RecursionError:  # json.loads recurses per level: `[[[[...` a few thousand deep
            raise ValueError("invalid JSON body: nested too deeply") from None
    if decode_form and is_form_content_type(content_type):
        return form_to_map(raw.decode("utf-8", "replace"))
    return body_text(raw)


def form_to_map(text: str) -> dict[str, Value]:
    """`a=1&b=2&b=3` -> {"a": "1", "b": ["2", "3"]}; values stay strings (Kong's get_body behaviour)."""
    result: dict[str, Value] = {}
    for key, val in parse_qsl(text, keep_blank_values=True):
        _add_repeated(result, key, val)
    return result


def _add_repeated(target: dict[str, Value], key: str, val: Value) -> None:
    if key not in target:
        target[key] = val
    elif isinstance(target[key], list):
        target[key].append(val)
    else:
        target[key] = [target[key], val]


def scalar_text(value: Value) -> str:
    """How a scalar becomes text in a header, query string or form body: booleans as `true`/`false`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value))
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json_dumps(value)


def encode_body(value: Value, content_type: str | None) -> tuple[bytes, str | None]:
    """Encode a body for a sink. Returns the bytes and the Content-Type to set when none is given.

    Strings are sent verbatim (XML text with `application/xml`); objects, arrays, numbers and booleans
    become JSON with `application/json` (spec §4.3, §11 Q3); an object with a form content type is
    form-encoded.
    `null` is an empty body.
    """
    if value is None:
        return b"", None
    if isinstance(value, bytes):
        return value, None
    if isinstance(value, XmlText):
        return value.encode("utf-8"), XML_CONTENT_TYPE
    if isinstance(value, str):
        return value.encode("utf-8"), None
    if isinstance(value, dict) and is_form_content_type(content_type):
        return encode_form(value).encode("ascii"), None
    return json_dumps(value).encode("utf-8"), JSON_CONTENT_TYPE


def _pairs(mapping: dict[str, Value]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, val in mapping.items():
        for item in val if isinstance(val, list) else [val]:
            if item is not None:
                pairs.append((str(key), scalar_text(item)))
    return pairs


def encode_form(mapping: dict[str, Value]) -> str:
    return urlencode(_pairs(mapping))


def encode_query(mapping: dict[str, Value]) -> str:
    """A query map as a query string. `true` alone... stays `key=true` (spec RF-26); `null` drops the key."""
    return urlencode(_pairs(mapping), quote_via=quote)


def parse_query(raw_query: str) -> dict[str, Value]:
    """Kong's `get_query`: repeated keys become arrays, a key without `=` is `true`, values are strings."""
    result: dict[str, Value] = {}
    if not raw_query:
        return result
    for part in raw_query.split("&"):
        if not part:
            continue
        if "=" in part:
            key, val = part.split("=", 1)
            _add_repeated(result, unquote_plus(key), unquote_plus(val))
        else:
            _add_repeated(result, unquote_plus(part), True)
    return result


def headers_to_map(fields: Iterable[tuple[str, str]]) -> dict[str, Value]:
    """HTTP header fields as a Datakit header map: original casing of the first occurrence, a repeated
    header (in any casing) as an array of strings (spec §4.1)."""
    result: dict[str, Value] = {}
    casing: dict[str, str] = {}
    for name, val in fields:
        key = casing.setdefault(name.lower(), name)
        if key in result:
            _add_repeated(result, key, val)
        else:  # the usual case, without a call
            result[key] = val
    return result


def header_map_lookup(headers: dict[str, Value], name: str) -> Value:
    """Case-insensitive lookup in a header map (header names are case-insensitive in HTTP)."""
    if name in headers:
        return headers[name]
    lowered = name.lower()
    for key, val in headers.items():
        if key.lower() == lowered:
            return val
    return None


HeaderOps = list[tuple[str, list[str] | None]]


def header_ops(headers: dict[str, Value], skip: frozenset[str] = frozenset()) -> HeaderOps:
    """A header map as (name, values) operations; values `None` means remove the header (3.13+). Names in `skip`
    (lower case) are left out."""
    ops: HeaderOps = []
    for name, val in headers.items():
        if not isinstance(name, str):  # a YAML key such as `1:` or `true:`: the name JSON gives it, as Kong reads it
            name = json_dumps(name)
        if skip and name.lower() in skip:
            continue
        if val is None:
            ops.append((name, None))
        elif isinstance(val, list):
            ops.append((name, [scalar_text(v) for v in val if v is not None]))
        else:
            ops.append((name, [val if type(val) is str else scalar_text(val)]))  # most values are text already
    return ops


def content_type_of(ops: HeaderOps) -> str | None:
    for name, vals in ops:
        if name.lower() == "content-type" and vals:
            return vals[0]
    return None


def type_name(value: Value) -> str:
    """jq's names for JSON types, used in error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, (str, bytes)):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def coerce(value: Value, expected: DkType) -> Value:
    """The runtime half of spec §3.3: convert a value for a typed input or raise TypeError.

    `null` passes every type: an input whose provider produced nothing is simply unset.
    """
    if value is None or expected is DkType.ANY:
        return value
    if expected is DkType.STRING:
        if isinstance(value, str):
            return value
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        if isinstance(value, (int, float, bool)):
            return scalar_text(value)
    elif expected is DkType.NUMBER:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return int(number) if number.is_integer() and "." not in value else number
    elif expected is DkType.BOOLEAN:
        if isinstance(value, bool):
            return value
    elif expected in (DkType.MAP, DkType.OBJECT):
        if isinstance(value, dict):
            return value
    raise TypeError(f"expected {expected}, got {type_name(value)}")


# Headers that describe the framing of one hop; they are recomputed for every message we write.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "te", "upgrade"})


class MessageWrite:
    """What a sink (`service_request`, `response`, `exit`, `call`) writes into an HTTP message.

    `header_ops` are set/override operations (None values remove the header); `body` is None when
    the sink's body input is not connected, so the message keeps its own body.
    """

    __slots__ = ("header_ops", "body", "content_type", "query", "replace_headers")

    def __init__(
        self,
        header_ops: HeaderOps,
        body: bytes | None,
        content_type: str | None,
        query: dict[str, Value] | str | None = None,
        *,
        replace_headers: bool = False,
    ) -> None:
        self.header_ops = header_ops
        self.body = body
        self.content_type = content_type  # to set when the header ops do not set one
        self.query = query  # service_request only: replaces the query string (a map, or text as is)
        self.replace_headers = replace_headers  # 3.9/3.10 sinks: the header ops are the whole new set

    @classmethod
    def from_inputs(cls, inputs: dict[str, Value], *, has_body: bool) -> MessageWrite:
        headers = inputs.get("headers")
        ops = header_ops(headers, skip=FRAMING_HEADERS) if isinstance(headers, dict) else []
        query = inputs.get("query")
        query = query if isinstance(query, dict) else None
        if not has_body:
            return cls(ops, None, None, query)
        given = content_type_of(ops)
        body, implied = encode_body(inputs.get("body"), given)
        return cls(ops, body, None if given else implied, query)
