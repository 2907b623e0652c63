"""Upstreams and their targets, nested or top-level, of a declarative file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .balancer import parse_target
from .entities import Upstream
from .raw import RawEntity, UpstreamDraft, label

if TYPE_CHECKING:
    from .declarative import Builder


def build_upstream(b: Builder, entity: RawEntity) -> None:
    name = label("upstream", entity.raw.get("name"))
    record = b.record(entity, name)
    b.identify(entity, record, record.get("name"), name)
    if record.get("algorithm") not in (None, "round-robin"):
        b.config.ignored.append(f"algorithm {record['algorithm']} of upstream {record.get('name')}")
    draft = UpstreamDraft(record)
    b.upstreams.append(draft)
    b.built[entity.at] = draft


def build_target(b: Builder, entity: RawEntity) -> None:
    record = b.record(entity, "target")
    draft = b.built.get(entity.parent.at) if entity.parent else None
    if entity.parent is None:
        draft = b.resolve(entity.raw.get("upstream"), "upstreams", entity, "target", "upstream")
    if not isinstance(draft, UpstreamDraft) or not isinstance(record.get("target"), str):
        return
    try:
        target = parse_target(record["target"], record["weight"])
    except ValueError as e:
        b.report(entity.at, "target", str(e), "target")
        return
    # Kong's endpoint key of a target is unique within its upstream only.
    b.identify(entity, record, f"{record['target']}:{draft.record['id']}", "target")
    record["upstream"] = {"id": draft.record["id"]}
    draft.targets.append(target)


def finish_upstreams(b: Builder) -> None:
    """Once every target is known: the upstreams, by name."""
    for draft in b.upstreams:
        name = draft.record.get("name")
        if isinstance(name, str):
            host_header = draft.record.get("host_header")
            b.config.upstreams[name] = Upstream(
                draft.record["id"], name, tuple(draft.targets), host_header, draft.record
            )
