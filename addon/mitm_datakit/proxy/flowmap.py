"""Flows <-> implicit nodes: read `request` and `service_response` values from a flow, write
`service_request`, `response` and `exit` results back into it (spec §4, ARCHITECTURE §2)."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

from mitmproxy import http
from mitmproxy.proxy.mode_specs import ReverseMode

from ..types import Value
from ..values import MessageWrite, body_text, decode_body, encode_query, headers_to_map, parse_query


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def header_map(headers: http.Headers) -> dict[str, Value]:
    return headers_to_map((_text(k), _text(v)) for k, v in headers.fields)


def body_value(message: http.Message, *, decode_form: bool) -> Value:
    """The decoded body; a JSON content type with invalid JSON gives the raw text (decisions.md)."""
    raw = message.get_content(strict=False) or b""
    content_type = message.headers.get("content-type")
    try:
        return decode_body(raw, content_type, decode_form=decode_form)
    except ValueError:
        return body_text(raw)


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


def client_port(flow: http.HTTPFlow) -> int:
    """The port the client addressed: the listener's in reverse mode (mitmproxy has already rewritten
    the request to the upstream there), the request's own otherwise."""
    if isinstance(flow.client_conn.proxy_mode, ReverseMode) and flow.client_conn.sockname:
        return int(flow.client_conn.sockname[1])
    return flow.request.port


def http_version_number(version: str) -> float | int:
    """`HTTP/1.1` -> 1.1, `HTTP/2.0` -> 2 (Kong's get_http_version)."""
    number = float(version.rpartition("/")[2] or 1.1)
    return int(number) if number.is_integer() else number


def request_value(flow: http.HTTPFlow, fields: frozenset[str]) -> dict[str, Value]:
    """Only the fields some node reads are computed: decoding a body is not free."""
    request = flow.request
    raw_path, _, raw_query = request.path.partition("?")
    value: dict[str, Value] = {}
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


def apply_write(message: http.Message, write: MessageWrite) -> None:
    """Set or override the written headers (None removes one), then the body with fresh framing."""
    headers = message.headers
    if write.replace_headers:
        # 3.9/3.10 replaced the whole set (Proxy-Wasm set_http_*_headers); Host is the authority
        # pseudo-header there, not part of the set, and framing is recomputed below.
        keep = {"host", "content-length", "transfer-encoding"}
        for name in {n.lower() for n in headers.keys()} - keep:
            headers.pop(name, None)
    for name, values in write.header_ops:
        if values is None:
            headers.pop(name, None)
        else:
            headers.set_all(name, values)
    if write.body is not None:
        # The new body is plain: whatever encoded the old one does not describe it.
        headers.pop("content-encoding", None)
        headers.pop("transfer-encoding", None)
        message.content = write.body
        if write.content_type:  # only set when the written headers name no Content-Type
            headers["Content-Type"] = write.content_type


def apply_query(request: http.Request, query: dict[str, Value] | str) -> None:
    """Writing `service_request.query` replaces the upstream query string (decisions.md); a string
    (the 3.9/3.10 engine's) is the query string as is."""
    path = request.path.partition("?")[0]
    encoded = query.removeprefix("?") if isinstance(query, str) else encode_query(query)
    request.path = f"{path}?{encoded}" if encoded else path


def make_response(status: int, write: MessageWrite, extra_headers: dict[str, str]) -> http.Response:
    response = http.Response.make(status, b"", extra_headers)
    apply_write(response, write)
    if write.body is None:
        response.content = b""
    return response


def replace_body(message: http.Message, body: bytes, content_type: str) -> None:
    message.headers.pop("content-encoding", None)
    message.headers.pop("transfer-encoding", None)
    message.content = body
    message.headers["Content-Type"] = content_type
