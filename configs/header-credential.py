"""For the route-*-by-credential examples: stands in for the authentication plugin in front of Datakit.

In Kong an authentication plugin (key-auth, OIDC, ...) sets the client's credential before Datakit runs.
Here this addon does: the X-Caller header becomes `kong.client.credential` = {"id": <header>}, as
docs/gateway.md describes. It trusts the header blindly: for local runs only. Load it instead of
addon/datakit.py, since it loads Datakit after itself:

    mitmdump -s configs/header-credential.py --set datakit_config=configs/route-upstream-by-credential.yaml
"""

from __future__ import annotations

from mitmproxy import http

from mitm_datakit.proxy.addon import Datakit


class HeaderCredential:
    def request(self, flow: http.HTTPFlow) -> None:
        if caller := flow.request.headers.get("X-Caller"):
            flow.metadata["kong.client.credential"] = {"id": caller}


addons = [HeaderCredential(), Datakit()]
