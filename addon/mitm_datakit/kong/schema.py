"""The fields of Kong's entities (Kong 3.x schemas), checked the way config fields are.

Fields this proxy has no use for (timeouts, health checks, TLS client certificates) are accepted,
so a file written for Kong loads unchanged; a field Kong does not know is an error, as in Kong,
because it is usually a typo (`strip_paths`) that would otherwise be silently ignored.
"""

from __future__ import annotations

import re

from ..config.schema import Field

UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
NAME_PATTERN = r"[\w.~-]+"  # Kong's `utf8_name`: letters, digits, `.`, `-`, `_`, `~`
HTTP_PROTOCOLS = ("http", "https", "ws", "wss")
ALL_PROTOCOLS = ("grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp", "ws", "wss")
PLUGIN_PROTOCOLS = ("grpc", "grpcs", "http", "https")
MAX_INT = 2**31 - 2
TIMESTAMP = Field("integer", minimum=0)


def _id() -> Field:
    return Field("string", pattern=UUID_PATTERN)


def _name() -> Field:
    return Field("string", minimum=1, pattern=NAME_PATTERN)


def _strings() -> Field:
    return Field("string_list")


def _path_check(paths: list[str]) -> str | None:
    for path in paths:
        if path.startswith("~"):
            try:
                re.compile(pcre_to_python(path[1:]))
            except re.error as e:
                return f"invalid regex: '{path[1:]}' ({e})"
        elif not path.startswith("/"):
            return "should start with: / (fixed path) or ~/ (regex path)"
    return None


def _host_check(hosts: list[str]) -> str | None:
    for host in hosts:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if name.count("*") > 1 or ("*" in name and not (name.startswith("*.") or name.endswith(".*"))):
            return f"invalid wildcard: must be placed at leftmost or rightmost label: {host}"
    return None


def _methods_check(methods: list[str]) -> str | None:
    for method in methods:
        if not re.fullmatch(r"[A-Z]+", method):
            return f"invalid value: {method} (methods are upper-case letters, such as GET)"
    return None


def pcre_to_python(pattern: str) -> str:
    """Kong routes use PCRE; Python spells a named group `(?P<name>...)` where PCRE has `(?<name>...)`."""
    return re.sub(r"\(\?<(?![=!])", "(?P<", pattern)


COMMON = {"id": _id(), "created_at": TIMESTAMP, "updated_at": TIMESTAMP, "tags": _strings()}

SERVICE = {
    **COMMON,
    "name": _name(),
    "url": Field("string", minimum=1),
    "protocol": Field("string", default="http", choices=ALL_PROTOCOLS),
    "host": Field("string", minimum=1),
    "port": Field("integer", default=80, minimum=0, maximum=65535),
    "path": Field("string", minimum=1, pattern=r"/.*"),
    "retries": Field("integer", default=5, minimum=0, maximum=32767),
    "connect_timeout": Field("integer", default=60000, minimum=1, maximum=MAX_INT),
    "write_timeout": Field("integer", default=60000, minimum=1, maximum=MAX_INT),
    "read_timeout": Field("integer", default=60000, minimum=1, maximum=MAX_INT),
    "client_certificate": Field("any"),
    "tls_verify": Field("boolean"),
    "tls_verify_depth": Field("integer", minimum=0, maximum=64),
    "ca_certificates": _strings(),
    "enabled": Field("boolean", default=True),
}

ROUTE = {
    **COMMON,
    "name": _name(),
    "protocols": Field("string_list", default=["http", "https"], minimum=1, choices=ALL_PROTOCOLS),
    "methods": Field("string_list", extra_check=_methods_check),
    "hosts": Field("string_list", extra_check=_host_check),
    "paths": Field("string_list", extra_check=_path_check),
    "headers": Field("object"),
    "https_redirect_status_code": Field("integer", default=426, choices=(426, 301, 302, 307, 308)),
    "regex_priority": Field("integer", default=0),
    "strip_path": Field("boolean", default=True),
    "path_handling": Field("string", default="v0", choices=("v0", "v1")),
    "preserve_host": Field("boolean", default=False),
    "request_buffering": Field("boolean", default=True),
    "response_buffering": Field("boolean", default=True),
    "snis": _strings(),
    "sources": Field("any"),
    "destinations": Field("any"),
    "service": Field("any"),
}

UPSTREAM = {
    **COMMON,
    "name": Field("string", required=True, minimum=1),
    "algorithm": Field(
        "string",
        default="round-robin",
        choices=("round-robin", "consistent-hashing", "least-connections", "latency", "sticky-sessions"),
    ),
    "hash_on": Field("string", default="none"),
    "hash_fallback": Field("string", default="none"),
    "hash_on_header": Field("string"),
    "hash_fallback_header": Field("string"),
    "hash_on_cookie": Field("string"),
    "hash_on_cookie_path": Field("string", default="/"),
    "hash_on_query_arg": Field("string"),
    "hash_fallback_query_arg": Field("string"),
    "hash_on_uri_capture": Field("string"),
    "hash_fallback_uri_capture": Field("string"),
    "slots": Field("integer", default=10000, minimum=10, maximum=65536),
    "healthchecks": Field("any"),
    "host_header": Field("string", minimum=1),
    "client_certificate": Field("any"),
    "use_srv_name": Field("boolean", default=False),
    "sticky_sessions_cookie": Field("string"),
    "sticky_sessions_cookie_path": Field("string", default="/"),
}

TARGET = {
    **COMMON,
    "target": Field("string", required=True, minimum=1),
    "weight": Field("integer", default=100, minimum=0, maximum=65535),
    "upstream": Field("any"),
}

CONSUMER = {
    **COMMON,
    "username": Field("string", minimum=1),
    "custom_id": Field("string", minimum=1),
    "groups": Field("any"),
}

CONSUMER_GROUP = {**COMMON, "name": Field("string", required=True, minimum=1), "consumers": Field("any")}

PLUGIN = {
    **COMMON,
    "name": Field("string", required=True, minimum=1),
    "instance_name": Field("string", minimum=1),
    "config": Field("any"),
    "enabled": Field("boolean", default=True),
    "protocols": Field("string_list", default=list(PLUGIN_PROTOCOLS), minimum=1, choices=PLUGIN_PROTOCOLS),
    "ordering": Field("object"),
    "partials": Field("any"),
    "route": Field("any"),
    "service": Field("any"),
    "consumer": Field("any"),
    "consumer_group": Field("any"),
}

# Arrays of other entities a record may nest; credentials belong to authentication plugins,
# which do not run here, so they are accepted and left alone.
CREDENTIALS = (
    "keyauth_credentials",
    "basicauth_credentials",
    "hmacauth_credentials",
    "jwt_secrets",
    "oauth2_credentials",
    "mtls_auth_credentials",
    "acls",
)
NESTED = {
    "services": ("routes", "plugins"),
    "routes": ("plugins",),
    "upstreams": ("targets",),
    "consumers": ("plugins", *CREDENTIALS),
    "consumer_groups": ("plugins",),
}

# Top-level keys of a declarative file (decK adds the `_info`/`_konnect`/`_workspace` metadata).
META_KEYS = ("_format_version", "_transform", "_comment", "_ignore", "_info", "_konnect", "_workspace")
UNUSED_ENTITIES = (
    "certificates",
    "ca_certificates",
    "snis",
    "vaults",
    "keys",
    "key_sets",
    "parameters",
    "partials",
    "filter_chains",
    "custom_entities",
    *CREDENTIALS,
)
