"""The benchmark's third-party API stand-in: answers GET /item/K with {"id": K, "value": "item-K"} after a fixed
delay, like a remote API with that latency. Standard library asyncio only, HTTP/1.1 keep-alive, 127.0.0.1.

    python slow_api.py --latency-ms 50 [--port 0]

Prints `listening PORT` once it accepts connections; runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

MAX_HEAD = 16 * 1024  # requests come from aiohttp and carry a few short headers


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            parts = request_line.split(" ")
            path = parts[1] if len(parts) == 3 else ""
            length = 0
            close = False
            for line in header_lines:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip() or 0)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            if length:
                await reader.readexactly(length)
            await asyncio.sleep(latency)
            item = path.rsplit("/", 1)[-1]
            if path.startswith("/item/") and item.isdigit():
                status, body = "200 OK", json.dumps({"id": int(item), "value": f"item-{item}"}).encode()
            else:
                status, body = "404 Not Found", b'{"error":"not found"}'
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            if close:
                return
    except ConnectionError:
        return
    finally:
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, latency), "127.0.0.1", args.port, backlog=1024, limit=MAX_HEAD
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
