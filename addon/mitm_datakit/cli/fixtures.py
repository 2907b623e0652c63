"""Canned answers for `call` nodes (`datakit run --fixtures fx.yaml`), so a config runs offline.

`FixtureClient` has the `send(OutboundRequest) -> InboundResponse` method of `HttpClient`, the
engine's own interface for outbound calls, and answers from a file:

    - method: GET                               # optional: any method when absent
      url: http://127.0.0.1:18081/fact          # exact URL, query string included
      response:
        status: 200                             # default 200
        headers: {Content-Type: application/json}
        body: {fact: Cats sleep 16 hours a day} # a string is sent as it is; anything else as JSON
    - url_prefix: https://api.example.com/v1/   # any URL that starts with this
      response: {status: 404}

An exact URL wins over a prefix, and a longer prefix over a shorter one. A call that no fixture
matches fails its node, naming method and URL, so the file's gap is obvious.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..http_client import CallFailed, InboundResponse, OutboundRequest
from .documents import InputFileError, body_bytes, header_pairs, read_document, require_map

FIXTURE_KEYS = frozenset({"method", "url", "url_prefix", "response"})
RESPONSE_KEYS = frozenset({"status", "headers", "body"})


@dataclass(frozen=True)
class Fixture:
    url: str
    prefix: bool  # `url_prefix`: match any URL that starts with `url`
    method: str | None  # None: any method
    response: InboundResponse

    def matches(self, request: OutboundRequest) -> bool:
        if self.method is not None and self.method != request.method.upper():
            return False
        return request.url.startswith(self.url) if self.prefix else request.url == self.url


class FixtureClient:
    """Answers `call` nodes from fixtures instead of the network."""

    def __init__(self, fixtures: list[Fixture], source: str) -> None:
        # Exact URLs first, then prefixes from the longest: the first match is the most specific.
        self.fixtures = sorted(fixtures, key=lambda f: (f.prefix, -len(f.url)))
        self.source = source

    @classmethod
    def from_file(cls, path: str) -> FixtureClient:
        document = read_document(path, "fixtures file")
        if not isinstance(document, list):
            raise InputFileError(f"fixtures file {path}: expected a list of fixtures")
        return cls(
            [_fixture(entry, f"{path}: fixture #{n}") for n, entry in enumerate(document, start=1)], path
        )

    async def send(self, request: OutboundRequest) -> InboundResponse:
        for fixture in self.fixtures:
            if fixture.matches(request):
                return fixture.response
        # The query is left out: it is where API keys usually travel, and this message reaches traces.
        shown = urlunsplit(urlsplit(request.url)._replace(query="", fragment=""))
        raise CallFailed(f"no fixture in {self.source} matches {request.method} {shown}")


def _fixture(entry: Any, where: str) -> Fixture:
    fields = require_map(entry, where, FIXTURE_KEYS)
    url, prefix = fields.get("url"), fields.get("url_prefix")
    if (url is None) == (prefix is None):
        raise InputFileError(f"{where}: give exactly one of url and url_prefix")
    target = url if url is not None else prefix
    if not isinstance(target, str) or not target:
        raise InputFileError(f"{where}: the URL must be a non-empty string")
    method = fields.get("method")
    if method is not None and not isinstance(method, str):
        raise InputFileError(f"{where}: method must be a string")
    return Fixture(
        target,
        prefix is not None,
        method.upper() if method else None,
        _response(fields.get("response"), f"{where}.response"),
    )


def _response(value: Any, where: str) -> InboundResponse:
    fields = require_map(value if value is not None else {}, where, RESPONSE_KEYS)
    status = fields.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise InputFileError(f"{where}.status: expected an HTTP status from 100 to 599")
    body, headers = body_bytes(fields.get("body"), header_pairs(fields.get("headers"), where))
    return InboundResponse(status, headers, body)
