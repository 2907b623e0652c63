"""One version of the config file, ready to serve: its entities, its router, a Plan per datakit plugin.

A Deployment is immutable once loaded. A reload builds a new one and swaps it in; flows that started
on the old one finish on it (`proxy/active.py` counts them and closes the old plans' resources).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config.loader import parse_document
from ..dialect import plan_config
from ..errors import ConfigError, ConfigIssue
from ..legacy.runtime import LegacyPlan
from ..plan import Plan
from .balancer import RoundRobin
from .declarative import read_document
from .entities import KongConfig, Plugin, Route, Service, Target
from .issues import scoped
from .raw import HTTP_SCHEME
from .router import RequestFacts, RouteMatch, Router, upstream_path
from .uri import escape_path

AnyPlan = Plan | LegacyPlan  # a datakit plugin runs in the dialect its config asks for

DATAKIT = "datakit"


@dataclass(frozen=True)
class Destination:
    scheme: str  # "http" or "https"
    host: str
    port: int
    path: str  # escaped, without the query string
    host_header: str


@dataclass(frozen=True)
class Selection:
    """What the gateway decided for one flow: the matched route and service, and the plan to run."""

    match: RouteMatch | None
    service: Service | None
    plan: AnyPlan | None

    @property
    def route(self) -> Route | None:
        return self.match.route if self.match else None


class Deployment:
    def __init__(
        self,
        source: str,
        text: str,
        kong: KongConfig,
        plans: dict[str, AnyPlan],
        dialects: list[str] | None = None,
    ) -> None:
        self.source = source
        self.dialects = dialects or []  # "dialect 3.10 (why)" per datakit plugin, for the start-up log
        self.text = text
        self.kong = kong
        self.plans = plans  # plugin id -> plan, for enabled datakit plugins that can apply here
        self.router = Router(kong.routes) if kong.routes_traffic else None
        self._balancers = {name: RoundRobin(u.targets) for name, u in kong.upstreams.items()}
        self._by_scope: dict[tuple[str | None, str | None], AnyPlan] = {}
        for plugin in kong.plugins:
            if plugin.id in plans:
                self._by_scope[(plugin.route_id, plugin.service_id)] = plans[plugin.id]
        # Without routes every flow gets the global plugin's plan: one Selection serves them all (it is frozen).
        self._unrouted = Selection(None, None, self._by_scope.get((None, None)))

    def select(self, facts: RequestFacts | None) -> Selection:
        """`facts` may be None when the file does not route (no services or routes)."""
        if self.router is None:
            return self._unrouted
        assert facts is not None
        match = self.router.match(facts)
        if match is None:
            return Selection(None, None, None)
        return Selection(match, match.route.service, self.plan_for(match.route, match.route.service))

    def plan_for(self, route: Route | None, service: Service | None) -> AnyPlan | None:
        """Kong's precedence for one plugin configured more than once: route and service, then route,
        then service, then global. Disabled instances do not count, so a less specific one applies."""
        scopes: list[tuple[str | None, str | None]] = []
        if route is not None:
            if service is not None:
                scopes.append((route.id, service.id))
            scopes.append((route.id, None))
        if service is not None:
            scopes.append((None, service.id))
        scopes.append((None, None))
        return next((self._by_scope[s] for s in scopes if s in self._by_scope), None)

    def destination(self, selection: Selection, facts: RequestFacts) -> Destination | None:
        """Where a routed flow goes: its service's host (or the next target of the upstream entity the
        host names), the joined path, and the Host header Kong would send. None: no usable target."""
        match, service = selection.match, selection.service
        assert match is not None and service is not None
        scheme = HTTP_SCHEME[service.protocol]
        host, port, hostname = service.host, service.port, service.host
        upstream = self.kong.upstreams.get(service.host)
        if upstream is not None:
            target = self.pick_target(upstream.name)
            if target is None:
                return None
            host, port = target.host, target.port
            hostname = upstream.host_header or target.host
        if match.route.preserve_host:
            host_header = facts.host
        elif port == (443 if scheme == "https" else 80):
            host_header = hostname
        else:
            host_header = f"{hostname}:{port}"
        path = upstream_path(match.route, match.matched_path, facts.path, service.path)
        return Destination(scheme, host, port, escape_path(path), host_header)

    def pick_target(self, upstream_name: str) -> Target | None:
        """The next target of an upstream entity (round robin), or None when it has no usable target."""
        balancer = self._balancers.get(upstream_name)
        return balancer.pick() if balancer else None

    @property
    def ignored(self) -> list[str]:
        """What the file declares that has no effect here, for one warning per load."""
        names = Counter(p.name for p in self.kong.plugins if p.name != DATAKIT)
        notes = [
            f"plugin {name}" + (f" (x{count})" if count > 1 else "") for name, count in sorted(names.items())
        ]
        notes += [
            f"{p.label} (consumer-scoped: no authentication plugin runs here)"
            for p in self.kong.plugins
            if p.name == DATAKIT and p.consumer_scoped
        ]
        return notes + [f"entities {kind}" for kind in self.kong.ignored]

    def describe(self) -> str:
        kong = self.kong
        if kong.form != "declarative":
            plan = next(iter(self.plans.values()), None)
            return f"{len(plan.user_nodes)} nodes" if plan else "datakit plugin disabled"
        return (
            f"{len(kong.services)} services, {len(kong.routes)} routes, {len(kong.upstreams)} upstreams, "
            f"{len(kong.consumers)} consumers, {len(self.plans)} datakit plugins"
        )

    async def aclose(self) -> None:
        for plan in self.plans.values():
            await plan.resources.aclose()


def load_deployment(text: str, *, source: str, compat: str = "auto") -> Deployment:
    """Parse, check and plan a whole config file; ConfigError lists every problem it has.

    `compat` picks the Datakit dialect of its plugins: "3.10", "3.11", or "auto" (by the config's forms).
    """
    kong, entity_issues = read_document(parse_document(text, source=source), now=int(time.time()))
    plans: dict[str, AnyPlan] = {}
    dialects: list[str] = []
    issues: list[ConfigIssue] = list(entity_issues)
    for plugin in kong.plugins:
        if plugin.name != DATAKIT or not isinstance(plugin.config, Mapping):
            continue  # a datakit plugin without a map `config` is an entity issue already
        try:
            planned = plan_config(plugin.config, compat)
        except ConfigError as e:
            # A bare config keeps its messages as they are; inside a file, they name their plugin.
            issues += e.issues if kong.form != "declarative" else [_in_plugin(i, plugin) for i in e.issues]
            continue
        where = "" if kong.form != "declarative" else f" for {plugin.label}"
        dialects.append(f"dialect {planned.dialect}{where} ({planned.reason})")
        if plugin.enabled and not plugin.consumer_scoped:
            plans[plugin.id] = planned.plan
    if issues:
        raise ConfigError(issues)
    return Deployment(source, text, kong, plans, dialects)


def read_deployment(path: str | Path, compat: str = "auto") -> Deployment:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([ConfigIssue(f"cannot read {path}: {e.strerror or e}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue(f"{path}: not UTF-8 text")]) from None
    return load_deployment(text, source=str(path), compat=compat)


def _in_plugin(issue: ConfigIssue, plugin: Plugin) -> ConfigIssue:
    return scoped(issue, (*plugin.location, "config"), plugin.label)
