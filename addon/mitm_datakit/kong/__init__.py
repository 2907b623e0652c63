"""Kong's entity model: declarative files, routes and services, upstreams, consumers, plugin scoping.

Engine side: nothing here imports mitmproxy. `proxy/` applies what this package decides to flows.
"""
