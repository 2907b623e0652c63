"""Consumers and consumer groups of a declarative file (`kong.client.consumer` looks them up)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .entities import Consumer, Record
from .raw import RawEntity, label, ref_key

if TYPE_CHECKING:
    from .declarative import Builder


def build_consumer_group(b: Builder, entity: RawEntity) -> None:
    name = label("consumer group", entity.raw.get("name"))
    record = b.record(entity, name)
    record.pop("consumers", None)
    b.identify(entity, record, record.get("name"), name)
    b.groups.append(record)
    b.built[entity.at] = record
    # decK writes membership on either side: `consumer_groups[].consumers` or `consumers[].groups`.
    for member in entity.raw.get("consumers") or []:
        if key := ref_key(member):
            b.members.setdefault(key, []).append(record)


def build_consumer(b: Builder, entity: RawEntity) -> None:
    name = label("consumer", entity.raw.get("username") or entity.raw.get("custom_id"))
    record = b.record(entity, name)
    record.pop("groups", None)
    if not record.get("username") and not record.get("custom_id"):
        b.report(entity.at, name, "at least one of these fields must be non-empty: 'custom_id', 'username'")
    consumer_id = b.identify(entity, record, record.get("username"), name)
    groups: list[Record] = []
    for ref in entity.raw.get("groups") or []:
        group = b.resolve(ref, "consumer_groups", entity, name, "groups")
        if group is not None:
            groups.append(group)
    for key in filter(None, (consumer_id, record.get("username"), record.get("custom_id"))):
        groups += [g for g in b.members.get(key, []) if g not in groups]
    consumer = Consumer(consumer_id, record.get("username"), record.get("custom_id"), tuple(groups), record)
    b.config.consumers.append(consumer)
    b.built[entity.at] = consumer
