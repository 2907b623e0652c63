#!/usr/bin/env python3
"""Local stand-ins for the APIs and services that the configs in configs/ call, on the ports they name.

    python scripts/standins.py [--host 127.0.0.1] [--all | NAME ...]

Without names: the demo's three (upstream, cat-facts, dog-facts); `--all`: every stand-in below. Each one
answers its own API paths and echoes every other request as JSON (method, path, query, headers, body, `json`
when the body is JSON, and `served_by`, the address that answered), so any of them can play a service too.

    upstream         18080  echo only: the service behind the proxy
    cat-facts        18081  GET /fact, like https://catfact.ninja/fact -> {"fact": "...", "length": N};
                            its echo plays kong.yaml's `orders` service
    dog-facts        18082  GET /api/v1/facts, like https://dogapi.dog/api/v1/facts -> {"facts": ["..."]};
                            its echo plays the first target of kong.yaml's catalog-pool
    catalog          18083  echo only: the second target of kong.yaml's catalog-pool
    backend-a        18091  echo only: upstream-a of route-*-by-credential.yaml; the registry's `orders`
    backend-b        18092  echo only: upstream-b of route-*-by-credential.yaml
    backend-default  18093  echo only: upstream-default of route-*-by-credential.yaml
    registry         18500  GET /v1/catalog?service=NAME -> {"instances": [{"address", "port"}]}, else 404
    auth             18510  POST /oauth2/introspect (form token=...), RFC 7662 -> {"active", "sub", "scope"}
    customers        18520  GET /customers?id=ID -> {"id", "name", "tier"}; 404 if unknown

The examples run without internet access this way. Prints one line per stand-in when it is ready; runs
until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CAT_FACTS = [
    "Cats sleep for around thirteen to sixteen hours a day.",
    "A group of cats is called a clowder.",
    "Cats have five toes on their front paws, but only four on the back ones.",
]
DOG_FACTS = [
    "Dogs have about 1,700 taste buds.",
    "A Greyhound can reach a speed of about 45 miles per hour.",
    "Dogs' noses are wet to help absorb scent chemicals.",
]
# Service registry: where each service's instances run. `users` is missing on purpose: the failure path of
# configs/dynamic-service-discovery.yaml.
REGISTRY = {"orders": [{"address": "127.0.0.1", "port": 18091}]}
# Token introspection: an unknown token is inactive, as RFC 7662 answers it (200, not an error status).
TOKENS = {
    "alice-token": {"active": True, "sub": "alice", "scope": "orders:read orders:write"},
    "bob-token": {"active": True, "sub": "bob", "scope": "profile:read"},
}
CUSTOMERS = {
    "c-1": {"id": "c-1", "name": "Ada Lovelace", "tier": "gold"},
    "c-2": {"id": "c-2", "name": "Grace Hopper", "tier": "silver"},
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def rotating(make: Callable[[str], object], facts: list[str]) -> Handler:
    cycle: Iterator[str] = itertools.cycle(facts)

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(make(next(cycle)))

    return handler


async def registry(request: web.Request) -> web.Response:
    service = request.query.get("service", "")
    if service not in REGISTRY:
        return web.json_response({"error": f"service {service!r} is not registered"}, status=404)
    return web.json_response({"service": service, "instances": REGISTRY[service]})


async def introspect(request: web.Request) -> web.Response:
    form = await request.post()
    token = form.get("token")
    known = TOKENS.get(token) if isinstance(token, str) else None
    return web.json_response(known or {"active": False})


async def customers(request: web.Request) -> web.Response:
    customer_id = request.query.get("id", "")
    if customer_id not in CUSTOMERS:
        return web.json_response({"error": f"no customer {customer_id!r}"}, status=404)
    return web.json_response(CUSTOMERS[customer_id])


@dataclass(frozen=True)
class StandIn:
    port: int
    api: Mapping[str, Handler] = field(default_factory=dict)  # path -> handler; every other path echoes


STANDINS: dict[str, StandIn] = {
    "upstream": StandIn(18080),
    "cat-facts": StandIn(18081, {"/fact": rotating(lambda f: {"fact": f, "length": len(f)}, CAT_FACTS)}),
    "dog-facts": StandIn(18082, {"/api/v1/facts": rotating(lambda f: {"facts": [f], "success": True},
                                                           DOG_FACTS)}),
    "catalog": StandIn(18083),
    "backend-a": StandIn(18091),
    "backend-b": StandIn(18092),
    "backend-default": StandIn(18093),
    "registry": StandIn(18500, {"/v1/catalog": registry}),
    "auth": StandIn(18510, {"/oauth2/introspect": introspect}),
    "customers": StandIn(18520, {"/customers": customers}),
}
DEMO = ("upstream", "cat-facts", "dog-facts")


def echo(served_by: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        headers: dict[str, str | list[str]] = {}
        for key, value in request.headers.items():  # repeated headers become lists
            prev = headers.get(key)
            headers[key] = value if prev is None else [*([prev] if isinstance(prev, str) else prev), value]
        doc: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": headers,
            "body": body.decode("utf-8", errors="replace"),
            "served_by": served_by,
        }
        if body:
            try:
                doc["json"] = json.loads(body)
            except ValueError:
                pass  # not JSON: "json" stays absent, so a JSON null and "not JSON" differ
        return web.json_response(doc)

    return handler


def application(host: str, standin: StandIn) -> web.Application:
    app = web.Application()
    for path, handler in standin.api.items():
        app.router.add_route("*", path, handler)
    app.router.add_route("*", "/{tail:.*}", echo(f"{host}:{standin.port}"))
    return app


async def serve(host: str, names: list[str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    runners: list[web.AppRunner] = []
    try:
        for name in names:
            standin = STANDINS[name]
            runner = web.AppRunner(application(host, standin), access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, host, standin.port).start()
            paths = ", ".join(standin.api) or "echo"
            print(f"standins: {name} listening at http://{host}:{standin.port} ({paths})", flush=True)
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="start every stand-in")
    which.add_argument("names", nargs="*", default=[], metavar="NAME",
                       help=f"stand-ins to start (default: {' '.join(DEMO)}): {', '.join(STANDINS)}")
    args = parser.parse_args()
    names = list(STANDINS) if args.all else args.names or list(DEMO)
    if unknown := [n for n in names if n not in STANDINS]:
        parser.error(f"unknown stand-in {', '.join(unknown)}; known: {', '.join(STANDINS)}")
    try:
        asyncio.run(serve(args.host, names))
    except OSError as e:  # typically a port already in use: one clear line, not a traceback
        sys.exit(f"standins: {e}")


if __name__ == "__main__":
    main()
