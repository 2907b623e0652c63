"""Watches the config file, the way mitmproxy's script loader watches scripts: an asyncio task that
polls the file's metadata and calls back when it changes.

The signature is (mtime in ns, size, inode): an editor or an atomic writer that replaces the file
changes the inode even when the mtime's resolution hides the change.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

logger = logging.getLogger("mitm_datakit")

POLL_INTERVAL = 0.25  # seconds

Signature = tuple[int, int, int] | None


def signature(path: str) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None  # missing for now (being replaced): wait for it to come back
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class FileWatcher:
    def __init__(self, on_change: Callable[[], None], *, interval: float = POLL_INTERVAL) -> None:
        self._on_change = on_change
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self.path = ""
        self._seen: Signature = None

    def watch(self, path: str) -> None:
        """Watch `path` from now on (an empty path watches nothing); changes before this do not count."""
        self.path = path
        self._seen = signature(path) if path else None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not self.path:
                continue
            current = signature(self.path)
            if current is not None and current != self._seen:
                self._seen = current
                try:
                    self._on_change()
                except Exception:  # a bug in one reload must not stop the watching
                    logger.exception("datakit: reloading %s failed", self.path)
