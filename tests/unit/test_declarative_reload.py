"""Swapping deployments (proxy/active.py): flows keep the one they started on, and a replaced one's
resources are closed once no flow uses it any more."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from mitm_datakit.proxy.active import ActiveConfig


class FakeDeployment:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


class FakeFlow:
    """Anything that can be weakly referenced stands for a flow here."""


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_flow_keeps_its_deployment_until_it_ends() -> None:
    active, v1, v2 = ActiveConfig(), FakeDeployment("v1"), FakeDeployment("v2")
    active.swap(v1)  # type: ignore[arg-type]
    flow = FakeFlow()
    leased = active.lease(flow)  # type: ignore[arg-type]
    assert leased is not None and leased[0] is v1
    active.swap(v2)  # type: ignore[arg-type]
    await settle()
    assert not v1.closed  # still in use by `flow`
    assert active.lease(FakeFlow())[0] is v2  # type: ignore[arg-type,index]
    leased[1]()
    leased[1]()  # a second release is harmless
    await settle()
    assert v1.closed and not v2.closed


async def test_an_idle_replaced_deployment_is_closed_at_once() -> None:
    active, v1 = ActiveConfig(), FakeDeployment("v1")
    active.swap(v1)  # type: ignore[arg-type]
    active.swap(None)
    await settle()
    assert v1.closed and active.lease(FakeFlow()) is None  # type: ignore[arg-type]


async def test_a_flow_dropped_without_an_end_releases_when_collected() -> None:
    active, v1 = ActiveConfig(), FakeDeployment("v1")
    active.swap(v1)  # type: ignore[arg-type]
    flow: Any = FakeFlow()
    active.lease(flow)
    active.swap(FakeDeployment("v2"))  # type: ignore[arg-type]
    del flow
    gc.collect()
    await settle()
    assert v1.closed


async def test_close_all_closes_current_and_leased() -> None:
    active, v1, v2 = ActiveConfig(), FakeDeployment("v1"), FakeDeployment("v2")
    active.swap(v1)  # type: ignore[arg-type]
    flow = FakeFlow()
    active.lease(flow)  # type: ignore[arg-type]
    active.swap(v2)  # type: ignore[arg-type]
    active.close_all()
    await settle()
    assert v1.closed and v2.closed and active.current is None
