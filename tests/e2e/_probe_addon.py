"""Loaded by tests next to Datakit (`-s`): `GET /__probe` answers how many asyncio tasks the proxy runs and how
many objects Python's garbage collector holds frozen (datakit_gc_freeze).

It answers in `requestheaders`, before Datakit's `request` hook, so no Datakit node runs for it. With the
count taken from inside the process and the sockets counted from outside (`ss`), a test shows that a flow
whose client went away leaves nothing running behind. Not part of the product.
"""

from __future__ import annotations

import asyncio
import gc
import json

from mitmproxy import http

PROBE_PATH = "/__probe"  # keep in sync with faults.PROBE_PATH


class Probe:
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.request.path != PROBE_PATH:
            return
        body = json.dumps({"tasks": len(asyncio.all_tasks()), "frozen": gc.get_freeze_count()})
        flow.response = http.Response.make(200, body, {"Content-Type": "application/json"})


addons = [Probe()]
