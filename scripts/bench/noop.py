"""Reference: the cheapest addon there is, a synchronous request hook that does nothing.

The passthrough target compares Datakit with a loaded config that leaves the flow alone against this.
"""

from mitmproxy import http


def request(flow: http.HTTPFlow) -> None:
    pass
