"""The HTTP messages of `datakit run`: the client request and the simulated upstream response, built
from arguments and files as mitmproxy messages, so that the proxy's own mapping (`proxy/flowmap.py`)
turns them into Datakit values and applies the writes exactly as mitmdump would."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from mitmproxy import connection, http
from mitmproxy.net.http import status_codes

from ..types import Value
from .documents import (
    Headers,
    InputFileError,
    body_bytes,
    has_header,
    header_pairs,
    parse_header_argument,
    read_document,
    require_map,
)

REQUEST_KEYS = frozenset({"method", "path", "headers", "body", "scheme", "host", "port", "http_version"})
RESPONSE_KEYS = frozenset({"status", "headers", "body"})
# Where the simulated client sent its request: Kong's default proxy listener.
DEFAULT_SCHEME, DEFAULT_HOST, DEFAULT_PORT = "http", "localhost", 8000
DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK = "127.0.0.1"


def client_request(args: argparse.Namespace) -> http.Request:
    """The request from `--request-file` with `--method`, `--path`, `-H` and `--data*` on top.

    As with curl, a request with a body and no method is a POST.
    """
    where = f"request file {args.request_file}"
    document = (
        require_map(read_document(args.request_file, "request file"), where, REQUEST_KEYS)
        if (args.request_file)
        else {}
    )
    overrides = [parse_header_argument(text) for text in args.header or ()]
    replaced = {name.lower() for name, _ in overrides}
    headers = [
        pair for pair in header_pairs(document.get("headers"), where) if pair[0].lower() not in replaced
    ]
    headers += overrides
    if args.data is not None:
        body = args.data.encode("utf-8")
    elif args.data_file is not None:
        body = _read_bytes(args.data_file)
    else:
        body, headers = body_bytes(document.get("body"), headers)
    has_body = args.data is not None or args.data_file is not None or document.get("body") is not None
    method = args.method or document.get("method") or ("POST" if has_body else "GET")
    path = args.path or document.get("path") or "/"
    scheme = document.get("scheme", DEFAULT_SCHEME)
    host = document.get("host", DEFAULT_HOST)
    port = document.get("port", DEFAULT_PORT)
    _check_request(where, method, path, scheme, host, port)
    if not has_header(headers, "Host"):
        authority = host if DEFAULT_PORTS[scheme] == port else f"{host}:{port}"
        headers.insert(0, ("Host", authority))  # every real client sends one
    request = http.Request.make(
        str(method).upper(), f"{scheme}://{host}:{port}{path}", body, _headers(headers)
    )
    request.http_version = str(document.get("http_version", "HTTP/1.1"))
    if not body:
        request.headers.pop("content-length", None)  # clients send none without a body
    return request


def _check_request(where: str, method: Any, path: Any, scheme: Any, host: Any, port: Any) -> None:
    if not isinstance(method, str) or not method.isalpha():
        raise InputFileError(f"method {method!r}: expected a word such as GET or POST")
    if not isinstance(path, str) or not path.startswith("/"):
        raise InputFileError(f"path {path!r}: expected a path starting with / (a query string may follow)")
    if scheme not in DEFAULT_PORTS:
        raise InputFileError(f"{where}: scheme must be http or https")
    if not isinstance(host, str) or not host:
        raise InputFileError(f"{where}: host must be a non-empty string")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InputFileError(f"{where}: port must be a number from 1 to 65535")


def upstream_response(path: str) -> http.Response:
    """The simulated answer of the upstream service (`--service-response-file`)."""
    where = f"service response file {path}"
    document = require_map(read_document(path, "service response file"), where, RESPONSE_KEYS)
    status = document.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise InputFileError(f"{where}: status must be an HTTP status from 100 to 599")
    body, headers = body_bytes(document.get("body"), header_pairs(document.get("headers"), where))
    return http.Response.make(status, body, _headers(headers))


def client_flow(request: http.Request) -> http.HTTPFlow:
    """A flow around the request, as if a client had sent it to the proxy (port and scheme included)."""
    now = time.time()
    client = connection.Client(
        peername=(LOOPBACK, 0),
        sockname=(LOOPBACK, request.port),
        timestamp_start=now,
        timestamp_tls_setup=now if request.scheme == "https" else None,
    )
    flow = http.HTTPFlow(client, connection.Server(address=None))
    flow.request = request
    return flow


def _headers(pairs: Headers) -> http.Headers:
    return http.Headers([(name.encode("utf-8"), value.encode("utf-8")) for name, value in pairs])


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise InputFileError(f"cannot read --data-file {path}: {e.strerror or e}") from None


# -- showing messages --------------------------------------------------------------------------


def request_text(request: http.Request) -> str:
    return _message_text(f"{request.method} {request.path} {request.http_version}", request)


def response_text(response: http.Response) -> str:
    # The reason phrase follows the status, which a run may have changed (kong.response.status).
    reason = status_codes.RESPONSES.get(response.status_code, "")
    return _message_text(f"{response.http_version} {response.status_code} {reason}".rstrip(), response)


def _message_text(first_line: str, message: http.Message) -> str:
    lines = [first_line, *(f"{name}: {value}" for name, value in message.headers.items(multi=True))]
    return "\n".join(lines) + "\n\n" + _body(message)


def request_json(request: http.Request) -> dict[str, Value]:
    return {"method": request.method, "url": request.url, **_message_json(request)}


def response_json(response: http.Response) -> dict[str, Value]:
    return {"status": response.status_code, **_message_json(response)}


def _message_json(message: http.Message) -> dict[str, Value]:
    return {
        "headers": [[name, value] for name, value in message.headers.items(multi=True)],
        "body": _body(message),
    }


def _body(message: http.Message) -> str:
    return (message.get_content(strict=False) or b"").decode("utf-8", "replace")
