"""The gateway properties a `property` node may GET or SET (spec §5.4), and in which phase.

The names and directions are Kong's; what each one means on mitmproxy is the adapter's job
(`proxy/gateway.py`). A name ending in `.*` below is a prefix that takes any key after it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PropertyRule:
    get: bool
    set: bool
    after_proxying: bool = False  # GET only makes sense once the upstream answered


_EXACT: dict[str, PropertyRule] = {
    "kong.client.consumer": PropertyRule(get=True, set=True),
    "kong.client.consumer_groups": PropertyRule(get=True, set=False),
    "kong.client.credential": PropertyRule(get=True, set=False),
    "kong.client.identity_realm_source": PropertyRule(get=True, set=False),
    "kong.client.forwarded_ip": PropertyRule(get=True, set=False),
    "kong.client.forwarded_port": PropertyRule(get=True, set=False),
    "kong.client.ip": PropertyRule(get=True, set=False),
    "kong.client.port": PropertyRule(get=True, set=False),
    "kong.client.protocol": PropertyRule(get=True, set=False),
    "kong.client.principal": PropertyRule(get=True, set=False),
    "kong.request.forwarded_host": PropertyRule(get=True, set=False),
    "kong.request.forwarded_port": PropertyRule(get=True, set=False),
    "kong.request.forwarded_scheme": PropertyRule(get=True, set=False),
    "kong.request.port": PropertyRule(get=True, set=False),
    "kong.response.source": PropertyRule(get=True, set=False, after_proxying=True),
    "kong.response.status": PropertyRule(get=False, set=True),
    "kong.router.route": PropertyRule(get=True, set=False),
    "kong.router.service": PropertyRule(get=True, set=False),
    "kong.route_id": PropertyRule(get=True, set=False),
    "kong.route_name": PropertyRule(get=True, set=False),
    "kong.service_id": PropertyRule(get=True, set=False),
    "kong.service_name": PropertyRule(get=True, set=False),
    "kong.service.response.status": PropertyRule(get=True, set=False, after_proxying=True),
    "kong.service.target": PropertyRule(get=False, set=True),
    "kong.service.upstream": PropertyRule(get=False, set=True),
    "kong.service.request.scheme": PropertyRule(get=False, set=True),
    "kong.version": PropertyRule(get=True, set=False),
    "kong.nginx.subsystem": PropertyRule(get=True, set=False),
    "kong.node.id": PropertyRule(get=True, set=False),
    "kong.node.memory_stats": PropertyRule(get=True, set=False),
}

# Spellings from Kong docs <= 3.13 that the Konnect UI still writes; they mean the same property.
ALIASES: dict[str, str] = {
    "kong.service.request_scheme": "kong.service.request.scheme",
    "kong.client.get_identity_realm_source": "kong.client.identity_realm_source",
}

_PREFIXES: dict[str, PropertyRule] = {
    "kong.ctx.shared.": PropertyRule(get=True, set=True),
    "kong.ctx.plugin.": PropertyRule(get=True, set=True),
    "kong.configuration.": PropertyRule(get=True, set=False),
    "kong.client.principal.": PropertyRule(get=True, set=False),
}


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)


def rule_for(name: str) -> PropertyRule | None:
    name = canonical_name(name)
    if name in _EXACT:
        return _EXACT[name]
    for prefix, rule in _PREFIXES.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            return rule
    return None
