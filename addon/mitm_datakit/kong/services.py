"""Services and routes of a declarative file, checked and built as Kong stores them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .entities import Route, Service
from .raw import HTTP_SCHEME, RawEntity, label
from .router import CASE_INSENSITIVE_REGEX
from .schema import pcre_to_python

if TYPE_CHECKING:
    from .declarative import Builder

ROUTE_CRITERIA = ("methods", "hosts", "headers", "paths", "snis")


def build_service(b: Builder, entity: RawEntity) -> None:
    name = label("service", entity.raw.get("name"))
    record = b.record(entity, name)
    url = entity.raw.get("url")
    if isinstance(url, str):
        # `url` is Kong's shorthand: it is stored as protocol, host, port and path.
        try:
            parts = urlsplit(url)  # raises ValueError on `http://[x`
            port = parts.port
        except ValueError:
            parts, port = urlsplit(""), -1
        if not parts.scheme or not parts.hostname or port == -1:
            b.report(entity.at, name, f"invalid url: {url}", "url")
        else:
            secure = parts.scheme in ("https", "wss", "grpcs")
            record.update(protocol=parts.scheme, host=parts.hostname, path=parts.path or None)
            record["port"] = port or (443 if secure else 80)
    elif record.get("host") is None:
        b.report(entity.at, name, "required field missing", "host")
    protocol = record.get("protocol")
    if protocol not in HTTP_SCHEME:
        message = f"protocol '{protocol}' is not supported here: this proxy carries HTTP"
        b.report(entity.at, name, message, "protocol")
    service_id = b.identify(entity, record, record.get("name"), name)
    if isinstance(record.get("host"), str) and protocol in HTTP_SCHEME:
        service = Service(
            service_id,
            record.get("name"),
            protocol,
            record["host"],
            record["port"],
            record.get("path"),
            record["enabled"],
            record,
        )
        b.config.services.append(service)
        b.built[entity.at] = service


def build_route(b: Builder, entity: RawEntity) -> None:
    name = label("route", entity.raw.get("name"))
    record = b.record(entity, name)
    service = b.built.get(entity.parent.at) if entity.parent else None
    if entity.parent is None and entity.raw.get("service") is not None:
        service = b.resolve(entity.raw["service"], "services", entity, name, "service")
    record["service"] = {"id": service.id} if service else None
    protocols = record.get("protocols") or []
    if any(p not in HTTP_SCHEME for p in protocols):
        b.report(
            entity.at,
            name,
            "only http, https, ws, wss, grpc and grpcs routes are supported here",
            "protocols",
        )
    if not any(record.get(key) for key in ROUTE_CRITERIA):
        b.report(
            entity.at,
            name,
            "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'",
        )
    headers = _route_headers(b, entity, name)
    route_id = b.identify(entity, record, record.get("name"), name)
    route = Route(
        route_id,
        record.get("name"),
        service,
        tuple(dict.fromkeys(HTTP_SCHEME.get(p, p) for p in protocols)),
        tuple(record.get("methods") or ()),
        tuple(h.lower() for h in record.get("hosts") or ()),
        tuple(record.get("paths") or ()),
        headers,
        record["strip_path"],
        record["preserve_host"],
        record["regex_priority"],
        record["path_handling"],
        record["https_redirect_status_code"],
        record,
    )
    b.config.routes.append(route)
    b.built[entity.at] = route


def _route_headers(b: Builder, entity: RawEntity, name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    raw = entity.raw.get("headers")
    if not isinstance(raw, Mapping):
        return ()
    headers = []
    for header, values in raw.items():
        if str(header).lower() == "host":
            message = "cannot contain 'host' header, which must be specified in the 'hosts' attribute"
            b.report(entity.at, name, message, "headers")
        elif not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            b.report(entity.at, name, "expected an array of strings", f"headers.{header}")
        elif problem := _header_regex_problem(values):
            b.report(entity.at, name, problem, f"headers.{header}")
        else:
            headers.append((str(header).lower(), tuple(values)))
    return tuple(headers)


def _header_regex_problem(values: list[str]) -> str | None:
    for value in values:
        if value.startswith(CASE_INSENSITIVE_REGEX):
            try:
                re.compile(pcre_to_python(value[len(CASE_INSENSITIVE_REGEX) :]))
            except re.error as e:
                return f"invalid regex: '{value}' ({e})"
    return None
