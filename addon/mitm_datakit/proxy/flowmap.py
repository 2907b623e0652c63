"""Flows <-> implicit nodes: read `request` and `service_response` values from a flow, write
`service_request`, `response` and `exit` results back into it (spec §4, ARCHITECTURE §2)."""

from __future__ import annotations

import dataclasses
import functools
import posixpath
import re
import time
from typing import TypeVar
from urllib.parse import unquote

from mitmproxy import http
from mitmproxy.net.http import status_codes
from mitmproxy.proxy.mode_specs import ReverseMode

from ..types import Value
from ..values import MessageWrite, body_text, decode_body, encode_query, headers_to_map, parse_query

AnyMessage = TypeVar("AnyMessage", http.Request, http.Response)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@functools.cache
def _data_fields(data_type: type) -> tuple[str, ...]:
    """The fields of a message data dataclass (RequestData, ResponseData): all of its state."""
    return tuple(field.name for field in dataclasses.fields(data_type))


def _copy_headers(headers: http.Headers) -> http.Headers:
    fresh = object.__new__(http.Headers)
    fresh.fields = headers.fields  # a multidict's only state; the tuple of field tuples is immutable
    return fresh


def copy_message(message: AnyMessage) -> AnyMessage:
    """The same copy as `message.copy()` at a twentieth of its cost (about 2 µs instead of 50).

    mitmproxy's copy serializes the message to its state and builds a new one from it, type-checking
    every field. Every field of a message's data is immutable (bytes, str, numbers, the header tuples)
    except the two header multidicts, so copying the data and those two objects gives an independent
    message.
    Attributes are copied one by one, never through `__dict__`: reading an object's `__dict__` makes
    Python 3.11 give up the object's inline attribute storage for a dict, on the original and on the copy
    (two more objects for the collector per object copied), and every later attribute read of either
    (mitmproxy reads the data's fields many times per flow) is slower; measured: 7 µs per flow of the
    transform graph, in process. A message's attributes are `data` and `stream` (mitmproxy 11's Message).
    """
    old = message.data
    data = object.__new__(type(old))
    for name in _data_fields(type(old)):
        setattr(data, name, getattr(old, name))
    data.headers = _copy_headers(old.headers)
    if old.trailers is not None:
        data.trailers = _copy_headers(old.trailers)
    fresh = object.__new__(type(message))
    fresh.data = data
    if message.stream is not False:  # the message's other attribute, False (the class's value) unless set
        fresh.stream = message.stream
    return fresh


def header_map(headers: http.Headers) -> dict[str, Value]:
    fields = headers.fields
    try:  # one comprehension for the usual all-UTF-8 head: a call per field costs more than the decoding
        pairs = [(name.decode(), value.decode()) for name, value in fields]
    except UnicodeDecodeError:
        pairs = [(_text(name), _text(value)) for name, value in fields]
    return headers_to_map(pairs)


def body_value(message: http.Message, *, decode_form: bool) -> Value:
    """The decoded body; a JSON content type with invalid JSON gives the raw text (decisions.md)."""
    content_type, encoded = _body_headers(message.headers)
    # Without a Content-Encoding field, get_content would look for one and give raw_content.
    raw = (message.get_content(strict=False) if encoded else message.raw_content) or b""
    try:
        return decode_body(raw, content_type, decode_form=decode_form)
    except ValueError:
        return body_text(raw)


def _body_headers(headers: http.Headers) -> tuple[str | None, bool]:
    """`headers.get("content-type")` (repeated fields joined, as mitmproxy joins them) and whether a Content-Encoding
    field is there, in one pass: each of mitmproxy's lookups lower-cases every field name through a method call."""
    types: list[bytes] = []
    encoded = False
    for name, value in headers.fields:
        lowered = name.lower()
        if lowered == b"content-type":
            types.append(value)
        elif lowered == b"content-encoding":
            encoded = True
    if not types:
        return None, encoded
    return b", ".join(types).decode("utf-8", "surrogateescape"), encoded


def normalize_path(raw_path: str) -> str:
    """Kong's normalized path: percent-decoded, dot segments resolved, repeated slashes merged."""
    decoded = unquote(raw_path) or "/"
    normalized = posixpath.normpath(decoded)
    if normalized.startswith("//"):
        normalized = "/" + normalized.lstrip("/")
    if decoded.endswith("/") and normalized != "/":
        normalized += "/"
    return normalized


def client_scheme(flow: http.HTTPFlow) -> str:
    return "https" if flow.client_conn.tls_established else "http"


def client_port(flow: http.HTTPFlow, request: http.Request | None = None) -> int:
    """The port the client addressed: the listener's in reverse mode (mitmproxy has already rewritten
    the request to the upstream there), the request's own otherwise (`request`: the client's one, when
    `flow.request` may already be pointed elsewhere)."""
    if isinstance(flow.client_conn.proxy_mode, ReverseMode) and flow.client_conn.sockname:
        return int(flow.client_conn.sockname[1])
    return (request or flow.request).port


def http_version_number(version: str) -> float | int:
    """`HTTP/1.1` -> 1.1, `HTTP/2.0` -> 2 (Kong's get_http_version)."""
    number = float(version.rpartition("/")[2] or 1.1)
    return int(number) if number.is_integer() else number


_PATH_FIELDS = frozenset(("query", "path", "raw_path", "raw_query"))


def request_value(flow: http.HTTPFlow, fields: frozenset[str]) -> dict[str, Value]:
    """Only the fields some node reads are computed: decoding a body is not free."""
    request = flow.request
    value: dict[str, Value] = {}
    if fields & _PATH_FIELDS:  # mitmproxy decodes the path on every read
        raw_path, _, raw_query = request.path.partition("?")
    if "body" in fields:
        value["body"] = body_value(request, decode_form=True)
    if "headers" in fields:
        value["headers"] = header_map(request.headers)
    if "query" in fields:
        value["query"] = parse_query(raw_query)
    if "path" in fields:
        value["path"] = normalize_path(raw_path)
    if "raw_path" in fields:
        value["raw_path"] = raw_path
    if "port" in fields:
        value["port"] = client_port(flow)
    if "method" in fields:
        value["method"] = request.method
    if "scheme" in fields:
        value["scheme"] = client_scheme(flow)
    if "raw_content" in fields:  # the 3.9/3.10 engine decodes bytes itself
        value["raw_content"] = request.get_content(strict=False) or b""
    if "raw_query" in fields:
        value["raw_query"] = raw_query
    if "version" in fields:
        value["version"] = http_version_number(request.http_version)
    return value


def service_response_value(response: http.Response, fields: frozenset[str]) -> dict[str, Value]:
    value: dict[str, Value] = {}
    if "body" in fields:
        value["body"] = body_value(response, decode_form=False)
    if "headers" in fields:
        value["headers"] = header_map(response.headers)
    if "status" in fields:
        value["status"] = response.status_code
    if "raw_body" in fields:
        raw = response.get_content(strict=False) or b""
        value["raw_body"] = raw.decode("utf-8", "replace")
    if "raw_content" in fields:
        value["raw_content"] = response.get_content(strict=False) or b""
    return value


# mitmproxy writes header fields as given: a CR or LF in a value that a node built from client input would
# add headers or end the head early (request splitting). OpenResty, under Kong, escapes CR, LF and NUL in
# values and every non-token byte in names as %XX; so do we, rather than fail a request that Kong serves.
_SPLITS_VALUE = re.compile(r"[\r\n\0]")
_NOT_TOKEN = re.compile(r"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")


def _percent_escape(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8", "surrogateescape"))


def safe_header_name(name: str) -> str:
    # A config writes the same few names on every request, and a regex substitution costs more than a cache lookup
    # even when it finds nothing. Only short names are cached (names can come from client input): at most ~100 KiB.
    return _escaped_name(name) if len(name) <= 64 else _NOT_TOKEN.sub(_percent_escape, name)


@functools.lru_cache(maxsize=1024)
def _escaped_name(name: str) -> str:
    return _NOT_TOKEN.sub(_percent_escape, name)


def safe_header_value(value: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:  # rare; three scans cost less than one substitution
        return _SPLITS_VALUE.sub(_percent_escape, value)
    return value


# A new body is plain: whatever encoded the old one, or framed it in chunks, does not describe it.
STALE_WITH_NEW_BODY = frozenset((b"content-encoding", b"transfer-encoding"))


def set_plain_body(message: http.Message, body: bytes, content_type: str | None = None) -> None:
    """Give `message` a new plain body: Content-Encoding and Transfer-Encoding dropped, Content-Length set to its
    length, and Content-Type set when one is given, each header kept where it was (or added at the end).

    The same headers as dropping the two and then `message.content = body` and `headers["Content-Type"] = ...`,
    in one pass over the fields instead of five (each of mitmproxy's lookups lower-cases every field name).
    """
    fields: list[tuple[bytes, bytes]] = []
    length = str(len(body)).encode("ascii")
    new_type = content_type.encode("utf-8", "surrogateescape") if content_type else None
    has_length = has_type = False
    for field in message.headers.fields:
        name = field[0].lower()
        if name in STALE_WITH_NEW_BODY:
            continue
        if name == b"content-length":
            if not has_length:
                fields.append((field[0], length))
                has_length = True
        elif new_type is not None and name == b"content-type":
            if not has_type:
                fields.append((field[0], new_type))
                has_type = True
        else:
            fields.append(field)
    if not has_length:
        fields.append((b"content-length", length))
    if new_type is not None and not has_type:
        fields.append((b"Content-Type", new_type))
    message.headers.fields = tuple(fields)
    message.raw_content = body


def _apply_header_ops(headers: http.Headers, write: MessageWrite) -> None:
    """Set (or, for None, remove) each written header, as `headers.set_all(name, values)` and `headers.pop(name)`
    one after the other do, in one pass over the fields: mitmproxy's each lower-case every field name."""
    if not write.header_ops:
        return
    ops: dict[bytes, tuple[bytes, list[bytes]]] = {}
    for name, values in write.header_ops:
        raw = safe_header_name(name).encode("ascii")  # escaped to token characters: ASCII
        key = raw.lower()
        if key in ops:  # the same header twice in other casing: the order of the ops decides, so apply them in turn
            _apply_header_ops_one_by_one(headers, write)
            return
        ops[key] = (raw, [] if values is None else [_field_value(v) for v in values])
    fields: list[tuple[bytes, bytes]] = []
    for field in headers.fields:
        op = ops.get(field[0].lower())
        if op is None:
            fields.append(field)
        elif op[1]:  # an existing field takes the next value and keeps its place and its name's casing
            fields.append((field[0], op[1].pop(0)))
    for raw, rest in ops.values():
        fields.extend((raw, value) for value in rest)
    headers.fields = tuple(fields)


def _field_value(value: str) -> bytes:
    return safe_header_value(value).encode("utf-8", "surrogateescape")  # as mitmproxy encodes a str value


def _apply_header_ops_one_by_one(headers: http.Headers, write: MessageWrite) -> None:
    for name, values in write.header_ops:
        name = safe_header_name(name)
        if values is None:
            headers.pop(name, None)
        else:
            headers.set_all(name, [safe_header_value(v) for v in values])


def apply_write(message: http.Message, write: MessageWrite) -> None:
    """Set or override the written headers (None removes one), then the body with fresh framing."""
    headers = message.headers
    if write.replace_headers:
        # 3.9/3.10 replaced the whole set (Proxy-Wasm set_http_*_headers); Host is the authority
        # pseudo-header there, not part of the set, and framing is recomputed below.
        keep = {"host", "content-length", "transfer-encoding"}
        for name in {n.lower() for n in headers.keys()} - keep:
            headers.pop(name, None)
    _apply_header_ops(headers, write)
    if write.body is not None:
        # write.content_type is only set when the written headers name no Content-Type
        set_plain_body(message, write.body, write.content_type)


def apply_query(request: http.Request, query: dict[str, Value] | str) -> None:
    """Writing `service_request.query` replaces the upstream query string (decisions.md); a string
    (the 3.9/3.10 engine's) is the query string as is."""
    path = request.path.partition("?")[0]
    encoded = query.removeprefix("?") if isinstance(query, str) else encode_query(query)
    request.path = f"{path}?{encoded}" if encoded else path


def make_response(status: int, write: MessageWrite, extra_headers: dict[str, str]) -> http.Response:
    if write.body is None or write.replace_headers:
        response = http.Response.make(status, b"", extra_headers)
        apply_write(response, write)
        if write.body is None:
            response.content = b""
        return response
    # The common case, built once with its body: the same headers in the same order as the general path above,
    # which frames an empty body first.
    fields = [(name.encode("utf-8", "surrogateescape"), value.encode("utf-8", "surrogateescape"))
              for name, value in extra_headers.items()]
    fields.append((b"content-length", b"0"))  # where Response.make frames it; set_plain_body gives the length
    response = new_response(status, http.Headers(fields), write.body)
    _apply_header_ops(response.headers, write)
    set_plain_body(response, write.body, write.content_type)
    return response


def new_response(status: int, headers: http.Headers, body: bytes) -> http.Response:
    """`http.Response(b"HTTP/1.1", status, reason, headers, body, None, now, now)`, as `Response.make` builds it,
    at a quarter of its cost (~5 µs instead of ~20).

    mitmproxy's message data is a dataclass whose `__post_init__` type-checks every field through `typing`
    unless Python runs with -O, which mitmdump does not; these fields have their types by construction.
    The caller frames the body (Content-Length), as `Response.make` does.
    """
    now = time.time()
    data = object.__new__(http.ResponseData)
    # Attribute by attribute, not `data.__dict__.update(...)`: that would trade the inline attribute storage for
    # a dict (see copy_message).
    data.http_version = b"HTTP/1.1"
    data.status_code = status
    data.reason = status_codes.RESPONSES.get(status, "").encode()
    data.headers = headers
    data.content = body
    data.trailers = None
    data.timestamp_start = now
    data.timestamp_end = now
    response = object.__new__(http.Response)
    response.data = data
    return response
