"""Reference for (a) transform, written as a user would without Datakit.

request headers -> jq -> upstream request headers; upstream JSON body -> jq -> response body. Both programs are
the benchmark's own (bench_workloads), compiled once at load time.
"""

from __future__ import annotations

import json

import jq
from mitmproxy import http

import bench_workloads as wl

REQUEST = jq.compile(wl.REQUEST_JQ)
RESPONSE = jq.compile(wl.RESPONSE_JQ)


class RefTransform:
    def request(self, flow: http.HTTPFlow) -> None:
        headers = dict(flow.request.headers.items())
        for name, value in REQUEST.input_value(headers).first().items():
            flow.request.headers[name] = str(value)

    def response(self, flow: http.HTTPFlow) -> None:
        assert flow.response is not None
        body = json.loads(flow.response.content or b"null")
        flow.response.content = wl.json_bytes(RESPONSE.input_value(body).first())
        flow.response.headers["Content-Type"] = "application/json"


addons = [RefTransform()]
