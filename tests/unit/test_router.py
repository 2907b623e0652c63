"""Kong's route matching and priorities, and the upstream path (kong/router.py), table-driven."""

from __future__ import annotations

from typing import Any

import pytest
from mitm_datakit.kong.declarative import parse_document
from mitm_datakit.kong.entities import Route
from mitm_datakit.kong.router import RequestFacts, Router, upstream_path


def routes(*specs: dict[str, Any]) -> list[Route]:
    """Routes of one service, named r0, r1, ... in the order given (file order breaks ties)."""
    named = [{"name": f"r{i}", **spec} for i, spec in enumerate(specs)]
    document = {"_format_version": "3.0", "services": [{"name": "s", "url": "http://up", "routes": named}]}
    return parse_document(document, now=0).routes


def facts(
    path: str = "/",
    *,
    method: str = "GET",
    host: str = "example.com",
    scheme: str = "http",
    headers: dict[str, list[str]] | None = None,
    sni: str | None = None,
) -> RequestFacts:
    return RequestFacts(method, host, path, scheme, headers or {}, sni)


def matched(specs: list[dict[str, Any]], request: RequestFacts) -> str | None:
    match = Router(routes(*specs)).match(request)
    return match.route.name if match else None


@pytest.mark.parametrize(
    ("specs", "request_facts", "expected"),
    [
        pytest.param([{"paths": ["/a"]}], facts("/a/b"), "r0", id="prefix"),
        pytest.param([{"paths": ["/a"]}], facts("/ab"), "r0", id="prefix-is-a-string-prefix"),
        pytest.param([{"paths": ["/a"]}], facts("/b"), None, id="no-match"),
        pytest.param(
            [{"paths": ["/a"]}, {"paths": ["/a/b"]}], facts("/a/b/c"), "r1", id="longer-prefix-wins"
        ),
        pytest.param(
            [{"paths": ["/a/b"]}, {"paths": ["/a"]}], facts("/a/x"), "r1", id="only-shorter-matches"
        ),
        pytest.param(
            [{"paths": ["/users"]}, {"paths": [r"~/users/\d+$"]}],
            facts("/users/42"),
            "r1",
            id="regex-over-prefix",
        ),
        pytest.param(
            [{"paths": ["/users"]}, {"paths": [r"~/users/\d+$"]}],
            facts("/users/me"),
            "r0",
            id="regex-no-match-falls-back",
        ),
        pytest.param([{"paths": [r"~/x/\d+"]}], facts("/a/x/1"), None, id="regex-anchored-at-start"),
        pytest.param([{"paths": [r"~/v(?<version>\d+)/"]}], facts("/v2/items"), "r0", id="pcre-named-group"),
        pytest.param(
            [{"paths": [r"~/a/\w+"], "regex_priority": 1}, {"paths": [r"~/a/\d+"], "regex_priority": 5}],
            facts("/a/1"),
            "r1",
            id="regex-priority",
        ),
        pytest.param(
            [{"hosts": ["example.com"]}],
            facts(host="EXAMPLE.com:8080"),
            "r0",
            id="host-ignores-case-and-port",
        ),
        pytest.param(
            [{"hosts": ["example.com:8080"]}], facts(host="example.com:8080"), "r0", id="host-with-port"
        ),
        pytest.param(
            [{"hosts": ["example.com:8080"]}], facts(host="example.com"), None, id="host-port-must-match"
        ),
        pytest.param([{"hosts": ["example.com:80"]}], facts(host="example.com"), "r0", id="default-port"),
        pytest.param(
            [{"hosts": ["*.example.com"]}], facts(host="a.b.example.com"), "r0", id="leading-wildcard"
        ),
        pytest.param(
            [{"hosts": ["*.example.com"]}], facts(host="example.com"), None, id="wildcard-needs-a-label"
        ),
        pytest.param([{"hosts": ["example.*"]}], facts(host="example.org"), "r0", id="trailing-wildcard"),
        pytest.param(
            [{"hosts": ["*.example.com"]}, {"hosts": ["api.example.com"]}],
            facts(host="api.example.com"),
            "r1",
            id="plain-host-over-wildcard",
        ),
        pytest.param([{"methods": ["POST"]}], facts(method="GET"), None, id="method-mismatch"),
        pytest.param(
            [{"paths": ["/"]}, {"paths": ["/"], "methods": ["GET"]}],
            facts("/x"),
            "r1",
            id="more-criteria-wins",
        ),
        pytest.param(
            [{"paths": ["/"], "methods": ["GET"]}, {"paths": ["/"], "hosts": ["example.com"]}],
            facts("/"),
            "r1",
            id="plain-host-beats-method-at-equal-weight",
        ),
        pytest.param(
            [{"headers": {"x-version": ["v1", "v2"]}}],
            facts(headers={"x-version": ["V2"]}),
            "r0",
            id="header-value-ignores-case",
        ),
        pytest.param(
            [{"headers": {"x-version": ["v1"]}}],
            facts(headers={"x-version": ["v3"]}),
            None,
            id="header-value-mismatch",
        ),
        pytest.param(
            [{"headers": {"x-version": ["~*^v[0-9]+$"]}}],
            facts(headers={"x-version": ["V10"]}),
            "r0",
            id="header-regex",
        ),
        pytest.param(
            [{"headers": {"x-a": ["1"], "x-b": ["2"]}}],
            facts(headers={"x-a": ["1"]}),
            None,
            id="every-header-must-match",
        ),
        pytest.param(
            [{"headers": {"x-a": ["1"]}}, {"headers": {"x-a": ["1"], "x-b": ["2"]}}],
            facts(headers={"x-a": ["1"], "x-b": ["2"]}),
            "r1",
            id="more-headers-win",
        ),
        pytest.param([{"paths": ["/p"]}, {"paths": ["/p"]}], facts("/p"), "r0", id="file-order-breaks-ties"),
        pytest.param(
            [{"paths": ["/short", "/a/much/longer"]}, {"paths": ["/a/much"]}],
            facts("/a/much/longer/x"),
            "r0",
            id="each-path-has-its-own-priority",
        ),
        pytest.param([{"snis": ["tls.example"]}], facts(scheme="https", sni="tls.example"), "r0", id="sni"),
    ],
)
def test_route_matching(
    specs: list[dict[str, Any]], request_facts: RequestFacts, expected: str | None
) -> None:
    assert matched(specs, request_facts) == expected


def test_a_disabled_services_routes_match_nothing() -> None:
    document = {
        "_format_version": "3.0",
        "services": [
            {"name": "off", "url": "http://up", "enabled": False, "routes": [{"name": "r", "paths": ["/"]}]}
        ],
    }
    assert Router(parse_document(document, now=0).routes).match(facts("/")) is None


@pytest.mark.parametrize(
    ("protocols", "scheme", "allowed"),
    [
        (["http", "https"], "http", True),
        (["https"], "http", False),
        (["https"], "https", True),
        (["wss"], "https", True),
    ],
)
def test_protocols_are_checked_after_matching(protocols: list[str], scheme: str, allowed: bool) -> None:
    match = Router(routes({"paths": ["/"], "protocols": protocols})).match(facts("/", scheme=scheme))
    assert match is not None and match.allows(scheme) is allowed


def test_strip_path_strips_what_a_regex_matched() -> None:
    (route,) = routes({"paths": [r"~/v\d+"]})
    match = Router([route]).match(facts("/v2/items"))
    assert match is not None and match.matched_path == "/v2"
    assert upstream_path(route, match.matched_path, "/v2/items", "/api") == "/api/items"


# Kong's documented table of upstream paths (Route object, `path_handling`).
@pytest.mark.parametrize(
    ("service_path", "route_path", "request_path", "strip", "handling", "expected"),
    [
        ("/s", "/fv0", "/fv0req", False, "v0", "/s/fv0req"),
        ("/s", "/fv0", "/fv0blah", True, "v0", "/s/blah"),
        ("/s", "/fv1", "/fv1req", False, "v1", "/sfv1req"),
        ("/s", "/fv1", "/fv1blah", True, "v1", "/sblah"),
        ("/s", "/tv0/", "/tv0/req", False, "v0", "/s/tv0/req"),
        ("/s", "/tv0/", "/tv0/blah", True, "v0", "/s/blah"),
        ("/s", "/tv1/", "/tv1/req", False, "v1", "/stv1/req"),
        ("/s", "/tv1/", "/tv1/blah", True, "v1", "/sblah"),
        ("/s/", "/fv0", "/fv0req", False, "v0", "/s/fv0req"),
        ("/s/", "/fv0", "/fv0blah", True, "v0", "/s/blah"),
        ("/s/", "/fv1", "/fv1req", False, "v1", "/s/fv1req"),
        ("/s/", "/fv1", "/fv1blah", True, "v1", "/s/blah"),
        ("/s/", "/tv0/", "/tv0/req", False, "v0", "/s/tv0/req"),
        ("/s/", "/tv0/", "/tv0/blah", True, "v0", "/s/blah"),
        ("/s/", "/tv1/", "/tv1/req", False, "v1", "/s/tv1/req"),
        ("/s/", "/tv1/", "/tv1/blah", True, "v1", "/s/blah"),
        # Edges of v0: the whole path stripped, with and without a trailing slash; no service path.
        ("/s", "/p", "/p", True, "v0", "/s"),
        ("/s", "/p", "/p/", True, "v0", "/s/"),
        ("/s/", "/p", "/p", True, "v0", "/s"),
        (None, "/p", "/p/x", True, "v0", "/x"),
        (None, "/p", "/p", True, "v0", "/"),
        (None, "/p", "/p/x", False, "v0", "/p/x"),
    ],
)
def test_upstream_path(
    service_path: str | None, route_path: str, request_path: str, strip: bool, handling: str, expected: str
) -> None:
    (route,) = routes({"paths": [route_path], "strip_path": strip, "path_handling": handling})
    match = Router([route]).match(facts(request_path))
    assert match is not None
    assert upstream_path(route, match.matched_path, request_path, service_path) == expected
