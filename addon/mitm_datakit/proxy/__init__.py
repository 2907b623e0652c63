"""The only code that imports mitmproxy: the addon and its mapping of flows onto the engine."""
