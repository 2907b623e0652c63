"""Which Datakit runs a config: current (Kong 3.11+) or legacy (3.9/3.10), and why (ARCHITECTURE §1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .legacy.runtime import LegacyPlan
from .plan import Plan, build_plan

COMPAT_CHOICES = ("auto", "3.10", "3.11")


@dataclass(frozen=True)
class Planned:
    plan: Plan | LegacyPlan
    dialect: str  # "3.11" or "3.10"
    reason: str


def legacy_form(config: Mapping[str, Any]) -> str | None:
    """The first form in `config` that only the 3.9/3.10 engine accepts, described; None if there is none."""
    nodes = config.get("nodes")
    if nodes == []:
        return "`nodes` is empty"
    if not isinstance(nodes, list):
        return None
    for position, node in enumerate(nodes, start=1):
        if not isinstance(node, dict):
            continue
        if node.get("name") is None and node.get("type") is not None:
            return f"node #{position} has no name"
        for key in ("inputs", "outputs"):
            if isinstance(node.get(key), list):
                return f"node #{position} writes `{key}` as a list"
    return None


def plan_config(config: Mapping[str, Any], compat: str = "auto") -> Planned:
    """Plan `config` in the dialect `compat` asks for ("auto" looks at the config's forms)."""
    if compat == "3.10":
        return Planned(LegacyPlan(config), "3.10", "datakit_compat=3.10")
    if compat == "3.11":
        return Planned(build_plan(config), "3.11", "datakit_compat=3.11")
    form = legacy_form(config)
    if form is not None:
        return Planned(LegacyPlan(config), "3.10", f"the config uses a 3.9/3.10 form: {form}")
    return Planned(build_plan(config), "3.11", "default")
