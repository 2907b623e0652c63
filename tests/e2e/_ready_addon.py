"""Loaded by the e2e harness next to the script under test: says when mitmdump is really up.

mitmdump prints "listening at ..." before its start-up error check, which can still exit with rc=1 (for instance
when the Datakit config is rejected). ErrorCheck removes its log handler once that check has passed, so this
addon waits for that and then prints a marker the harness waits for. Not part of the product.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import ctx

READY_MARKER = "mitm-datakit-harness: ready"  # keep in sync with harness.READY_MARKER


class HarnessReady:
    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def running(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._announce())

    async def _announce(self) -> None:
        errorcheck = ctx.master.addons.get("errorcheck")
        handler = getattr(errorcheck, "logger", None)
        for _ in range(1000):  # bounded: 10 s at most
            if handler not in logging.getLogger().handlers:
                break
            await asyncio.sleep(0.01)
        else:
            return  # the check never finished: print nothing, the harness times out with the log
        if handler is not None and handler.has_errored:
            return  # start-up errors: mitmdump is exiting
        print(READY_MARKER, flush=True)

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()


addons = [HarnessReady()]
