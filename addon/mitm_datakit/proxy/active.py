"""The deployment new flows start on, and the flows still finishing on older ones.

A reload swaps `current` in one assignment: a flow reads it once, at its start, and keeps what it
read until it ends, so it never sees two versions of the config. Each flow holds a lease on its
deployment; once a replaced deployment has no lease left, its plans' resources (cache stores, Redis
clients) are closed.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import Counter
from collections.abc import Callable

from mitmproxy import http

from ..kong.deployment import Deployment

logger = logging.getLogger("mitm_datakit")

Release = Callable[[], object]


class ActiveConfig:
    def __init__(self) -> None:
        self.current: Deployment | None = None
        self._leases: Counter[Deployment] = Counter()
        self._closing: set[asyncio.Task[None]] = set()

    def swap(self, deployment: Deployment | None) -> None:
        old, self.current = self.current, deployment
        if old is not None and old is not deployment and not self._leases[old]:
            self._close(old)

    def lease(self, flow: http.HTTPFlow) -> tuple[Deployment, Release] | None:
        """The current deployment for a new flow, and the call that ends the flow's use of it.

        Calling the release more than once is harmless; a flow that is dropped without it being
        called (a client that vanished before any hook saw the end) releases when it is collected.
        """
        deployment = self.current
        if deployment is None:
            return None
        self._leases[deployment] += 1
        return deployment, weakref.finalize(flow, self._release, deployment)

    def _release(self, deployment: Deployment) -> None:
        if deployment not in self._leases:
            return  # closed already, by close_all
        self._leases[deployment] -= 1
        if self._leases[deployment] <= 0:
            del self._leases[deployment]
            if deployment is not self.current:
                self._close(deployment)

    def close_all(self) -> None:
        """At shutdown: close every deployment, in use or not (the flows are going away too)."""
        for deployment in {self.current, *self._leases} - {None}:
            assert deployment is not None
            self._close(deployment)
        self._leases.clear()
        self.current = None

    def _close(self, deployment: Deployment) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: nothing was ever opened by a request
        task = loop.create_task(self._aclose(deployment))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _aclose(self, deployment: Deployment) -> None:
        try:
            await deployment.aclose()
        except Exception:
            logger.exception("datakit: could not close the resources of a replaced config")
