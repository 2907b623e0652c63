#!/usr/bin/env python3
"""Local stand-ins for the demo: an upstream echo service and two "third-party" fact APIs.

    python scripts/standins.py [--host 127.0.0.1] [--upstream-port 18080] [--cat-port 18081] [--dog-port 18082]

- upstream echo (any path): answers JSON describing the request it got (method, path, query, headers, body).
- cat facts, GET /fact: shaped like https://catfact.ninja/fact -> {"fact": "...", "length": N}
- dog facts, GET /api/v1/facts: shaped like https://dogapi.dog/api/v1/facts -> {"facts": ["..."], "success": true}

The demo runs without internet access this way. Facts rotate through a fixed list. Prints one line per server
when it is ready; runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator

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

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    headers: dict[str, str | list[str]] = {}
    for key, value in request.headers.items():  # repeated headers become lists
        prev = headers.get(key)
        headers[key] = value if prev is None else [*([prev] if isinstance(prev, str) else prev), value]
    return web.json_response({
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "headers": headers,
        "body": body.decode("utf-8", errors="replace"),
    })


def rotating(make: Callable[[str], object], facts: list[str]) -> Handler:
    cycle: Iterator[str] = itertools.cycle(facts)

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(make(next(cycle)))

    return handler


def app(path: str, handler: Handler) -> web.Application:
    application = web.Application()
    application.router.add_route("*", path, handler)
    return application


async def serve(host: str, ports: dict[str, int]) -> None:
    apps = {
        "upstream echo": app("/{tail:.*}", echo),
        "cat facts": app("/fact", rotating(lambda f: {"fact": f, "length": len(f)}, CAT_FACTS)),
        "dog facts": app("/api/v1/facts", rotating(lambda f: {"facts": [f], "success": True}, DOG_FACTS)),
    }
    paths = {"upstream echo": "/", "cat facts": "/fact", "dog facts": "/api/v1/facts"}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    runners: list[web.AppRunner] = []
    try:
        for name, application in apps.items():
            runner = web.AppRunner(application, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, host, ports[name]).start()
            print(f"standins: {name} listening at http://{host}:{ports[name]}{paths[name]}", flush=True)
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--upstream-port", type=int, default=18080)
    parser.add_argument("--cat-port", type=int, default=18081)
    parser.add_argument("--dog-port", type=int, default=18082)
    args = parser.parse_args()
    ports = {"upstream echo": args.upstream_port, "cat facts": args.cat_port, "dog facts": args.dog_port}
    try:
        asyncio.run(serve(args.host, ports))
    except OSError as e:  # typically a port already in use: one clear line, not a traceback
        sys.exit(f"standins: {e}")


if __name__ == "__main__":
    main()
