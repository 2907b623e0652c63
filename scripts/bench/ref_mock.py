"""Reference for (b) mock: render the benchmark's Handlebars template (compiled once) and answer directly."""

from __future__ import annotations

import pybars
from mitmproxy import http

import bench_workloads as wl

TEMPLATE = pybars.Compiler().compile(wl.MOCK_TEMPLATE)


class RefMock:
    def request(self, flow: http.HTTPFlow) -> None:
        body = str(TEMPLATE(wl.MOCK_CONTEXT)).encode("utf-8")
        flow.response = http.Response.make(200, body, wl.MOCK_HEADERS)


addons = [RefMock()]
