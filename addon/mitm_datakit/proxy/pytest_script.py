"""The mitmproxy script that the `datakit_proxy` pytest fixture runs (`mitm_datakit/testing.py`).

It is the Datakit addon plus one line on stdout once mitmdump is really up. mitmdump prints
"listening at ..." *before* its start-up error check, which can still exit with status 1 (when the
Datakit config is rejected, say); the check removes its log handler once it has passed, so the
marker waits for that. Loaded by path with `mitmdump -s`, never imported by the package itself.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import ctx

from mitm_datakit.proxy.addon import Datakit

READY_MARKER = "mitm-datakit: ready"  # mitm_datakit.testing waits for this line
_READY_WAIT_STEPS = 1000  # x 10 ms: the start-up check takes milliseconds; give up after 10 s


class ReadyMarker:
    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def running(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._announce())

    async def _announce(self) -> None:
        handler = getattr(ctx.master.addons.get("errorcheck"), "logger", None)
        for _ in range(_READY_WAIT_STEPS):
            if handler not in logging.getLogger().handlers:
                break
            await asyncio.sleep(0.01)
        else:
            return  # the check never finished: the fixture times out and shows the log
        if handler is not None and handler.has_errored:
            return  # start-up errors: mitmdump is exiting with status 1
        print(READY_MARKER, flush=True)

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()


addons = [Datakit(), ReadyMarker()]
