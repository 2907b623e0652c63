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
        # Leases not yet ended: a weak reference's callback runs only while the reference itself lives.
        self._held: set[_Lease] = set()
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
        lease = _Lease(self, deployment, flow)
        self._held.add(lease)
        return deployment, lease

    def _end(self, lease: _Lease, deployment: Deployment) -> None:
        self._held.discard(lease)
        self._release(deployment)

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
        self._held.clear()
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


class _Lease:
    """One flow's use of a deployment, ended by calling it (a second call does nothing) or by the flow's collection.

    A weak reference with a callback instead of `weakref.finalize`: a third of its cost per flow, and nothing left
    in a global registry.
    """

    __slots__ = ("_active", "_deployment", "_flow")

    def __init__(self, active: ActiveConfig, deployment: Deployment, flow: http.HTTPFlow) -> None:
        self._active = active
        self._deployment = deployment
        self._flow: weakref.ref[http.HTTPFlow] | None = weakref.ref(flow, self._collected)

    def _collected(self, _: object) -> None:
        self()

    def __call__(self) -> None:
        if self._flow is not None:
            self._flow = None  # ended; this also breaks the cycle lease -> reference -> callback -> lease
            self._active._end(self, self._deployment)
