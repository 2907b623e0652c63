"""Kong's router (the default `traditional_compatible` flavour of Kong 3.x), and the upstream path.

Every path of a route is a candidate of its own. Candidates are tried by priority, highest first
(kong/router/transform.lua, `get_priority`), then in file order:
1. how many kinds of criteria the route sets (methods, hosts, headers, paths, snis);
2. hosts without wildcards over hosts with one;
3. the number of headers;
4. a regex path over a prefix path;
5. among regex paths, `regex_priority`;
6. among prefix paths, the longer one.
A candidate matches when every criterion it sets matches. Protocols are checked after matching, as
Kong does: a route for `https` only, reached over `http`, answers 426 (or redirects) instead of 404.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .entities import Route
from .schema import pcre_to_python

REGEX_PREFIX = "~"
CASE_INSENSITIVE_REGEX = "~*"  # header values: a regex, matched ignoring case


@dataclass(frozen=True)
class RequestFacts:
    method: str
    host: str  # the Host header the client sent, port included if it sent one
    path: str  # normalized (uri.normalize_path)
    scheme: str  # "http" or "https", as the client spoke to the proxy
    headers: Mapping[str, Sequence[str]]  # lower-case name -> values; filled only if routes use headers
    sni: str | None = None


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    matched_path: str | None  # the prefix, or the text a regex path matched: what strip_path strips

    def allows(self, scheme: str) -> bool:
        return scheme in self.route.protocols


@dataclass(frozen=True)
class _Candidate:
    route: Route
    path: str | None
    regex: re.Pattern[str] | None
    priority: tuple[int, ...]
    order: int


def _priority(route: Route, path: str | None) -> tuple[int, ...]:
    criteria = (route.methods, route.hosts, route.headers, path, route.record.get("snis"))
    weight = sum(1 for criterion in criteria if criterion)
    plain_hosts = bool(route.hosts) and not any("*" in h for h in route.hosts)
    is_regex = path is not None and path.startswith(REGEX_PREFIX)
    regex_priority = route.regex_priority if is_regex else 0
    length = len(path) if path is not None and not is_regex else 0
    return (weight, plain_hosts, len(route.headers), is_regex, regex_priority, length)


class Router:
    def __init__(self, routes: Sequence[Route]) -> None:
        candidates = []
        for order, route in enumerate(routes):
            if route.service is not None and not route.service.enabled:
                continue  # Kong 3.x: a disabled service's routes match nothing
            for path in route.paths or (None,):
                regex = None
                if path is not None and path.startswith(REGEX_PREFIX):
                    regex = re.compile(pcre_to_python(path[1:]))
                candidates.append(_Candidate(route, path, regex, _priority(route, path), order))
        self._candidates = sorted(candidates, key=lambda c: (tuple(-p for p in c.priority), c.order))
        self.uses_headers = any(route.headers for route in routes)

    def match(self, facts: RequestFacts) -> RouteMatch | None:
        host, port = split_host(facts.host, facts.scheme)
        for candidate in self._candidates:
            route = candidate.route
            if route.methods and facts.method not in route.methods:
                continue
            if route.hosts and not any(_host_matches(h, host, port) for h in route.hosts):
                continue
            if route.headers and not all(
                _header_matches(v, facts.headers.get(n, ())) for n, v in route.headers
            ):
                continue
            snis = route.record.get("snis")
            if snis and (facts.sni or "").lower() not in (s.lower() for s in snis):
                continue
            matched = _path_match(candidate, facts.path)
            if candidate.path is not None and matched is None:
                continue
            return RouteMatch(route, matched)
        return None


def split_host(host_header: str, scheme: str) -> tuple[str, int]:
    """`Example.com:8080` -> (`example.com`, 8080); without a port, the scheme's default one."""
    default = 443 if scheme == "https" else 80
    host = host_header.strip().lower()
    if host.startswith("["):  # [ipv6]:port
        end = host.find("]")
        rest = host[end + 1 :]
        return host[: end + 1], int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        return name, int(port)
    return host, default


def _host_matches(pattern: str, host: str, port: int) -> bool:
    """`example.com`, `example.com:8000`, `*.example.com` (any depth) and `example.*`."""
    name, colon, wanted_port = pattern.rpartition(":")
    if colon and wanted_port.isdigit() and not pattern.endswith("]"):
        if int(wanted_port) != port:
            return False
        pattern = name
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    if pattern.endswith(".*"):
        return host.startswith(pattern[:-1])
    return host == pattern


@functools.lru_cache(maxsize=1024)
def _header_regex(value: str) -> re.Pattern[str]:
    return re.compile(pcre_to_python(value[len(CASE_INSENSITIVE_REGEX) :]), re.IGNORECASE)


def _header_matches(accepted: Sequence[str], sent: Sequence[str]) -> bool:
    for value in accepted:
        if value.startswith(CASE_INSENSITIVE_REGEX):
            if any(_header_regex(value).search(s) for s in sent):
                return True
        elif any(value.lower() == s.lower() for s in sent):
            return True
    return False


def _path_match(candidate: _Candidate, path: str) -> str | None:
    if candidate.path is None:
        return None
    if candidate.regex is not None:
        found = candidate.regex.match(path)  # anchored at the start, as Kong anchors regex paths
        return found.group(0) if found else None
    return candidate.path if path.startswith(candidate.path) else None


def upstream_path(route: Route, matched_path: str | None, request_path: str, service_path: str | None) -> str:
    """The path sent upstream: Kong's `path_handling` v0 (default) and v1 joining of the service's
    path and the request path, the matched part removed when the route strips it."""
    base = service_path or "/"
    strip = route.strip_path and matched_path is not None
    postfix = request_path[len(matched_path) :] if strip and matched_path is not None else request_path[1:]
    if route.path_handling == "v1":
        if not strip:
            return base + request_path[1:]
        if base.endswith("/") and postfix.startswith("/"):
            return base[:-1] + postfix
        return base + postfix
    if base.endswith("/"):
        if not strip:
            return base + request_path[1:]
        if postfix == "":
            if base == "/" or request_path.endswith("/"):
                return base
            return base[:-1]
        if postfix.startswith("/"):
            return base[:-1] + postfix
        return base + postfix
    if not strip:
        return base if request_path == "/" else base + request_path
    if postfix == "":
        return base + "/" if len(request_path) > 1 and request_path.endswith("/") else base
    if postfix.startswith("/"):
        return base + postfix
    return base + "/" + postfix
