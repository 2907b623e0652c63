"""A subset of Kong's Admin API on its own listener (aiohttp, on mitmproxy's event loop).

    GET/POST /plugins, GET/PATCH/PUT/DELETE /plugins/{id or instance_name}, POST /config (DB-less)

Off unless `datakit_admin_listen` is set; a bare port listens on 127.0.0.1 only. With
`datakit_admin_token`, a request without the header `Kong-Admin-Token: <token>` gets 401. Every
accepted change is a new version of the config file: checked, written atomically, then served
(`Datakit.apply_text`); a rejected one changes nothing. The token is never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

from ..errors import ConfigError
from ..kong import admin as ops
from ..kong.admin_errors import AdminError, rejected
from ..kong.deployment import Deployment

logger = logging.getLogger("mitm_datakit")

TOKEN_HEADER = "Kong-Admin-Token"
JSON_UTF8 = "application/json; charset=utf-8"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_listen(value: str) -> tuple[str, int] | None:
    """`PORT` (on 127.0.0.1), `HOST:PORT` or `[IPv6]:PORT`; empty: off. Raises ValueError."""
    value = value.strip()
    if not value:
        return None
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"datakit_admin_listen: expected PORT or HOST:PORT, got {value!r}")
    return host, int(port)


def _json(status: int, body: Any) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", charset="utf-8"
    )


class AdminServer:
    def __init__(
        self, *, current: Callable[[], Deployment | None], apply: Callable[[str], Deployment]
    ) -> None:
        self._current = current
        self._apply = apply
        self._address: tuple[str, int] | None = None
        self._token = ""
        self._as_json = False
        self._runner: web.AppRunner | None = None
        self._serving: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def configure(self, listen: str, token: str, config_path: str) -> bool:
        """Take the options; True when the listening address changed (a running server must restart)."""
        address = parse_listen(listen)
        if address is not None and not config_path:
            raise ValueError(
                "datakit_admin_listen needs datakit_config: the file the Admin API's changes go to"
            )
        moved = address != self._address
        self._address, self._token = address, token
        self._as_json = config_path.endswith(".json")
        return moved

    # -- lifecycle (sync: mitmproxy calls these from sync hooks) --------------------------------
    def start(self) -> None:
        if self._address is None or self._runner is not None:
            return
        host, port = self._address
        try:
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))  # now, not in the task: at start-up a port in use must stop mitmdump
        except OSError as e:
            logger.error("datakit: the Admin API cannot listen on %s:%d: %s", host, port, e.strerror or e)
            return
        if not self._token and not _is_loopback(host):
            logger.warning(
                "datakit: the Admin API listens on %s without datakit_admin_token: anyone who can "
                "reach it can change the config",
                host,
            )
        app = web.Application(middlewares=[self._authenticate], client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/plugins", self._plugins)
        app.router.add_route("*", "/plugins/{key}", self._plugin)
        app.router.add_route("*", "/config", self._config)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._serving = self._spawn(self._serve(self._runner, sock))

    def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            assert self._serving is not None
            self._spawn(self._shutdown(runner, self._serving))

    def restart(self) -> None:
        self.stop()
        self.start()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _serve(self, runner: web.AppRunner, sock: socket.socket) -> None:
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()  # the site never took it over
            raise
        host, port = sock.getsockname()[:2]
        logger.info(
            "datakit: Admin API listening at http://%s:%d", f"[{host}]" if ":" in host else host, port
        )

    async def _shutdown(self, runner: web.AppRunner, serving: asyncio.Task[None]) -> None:
        serving.cancel()  # no-op once it has started serving
        await asyncio.gather(serving, return_exceptions=True)
        await runner.cleanup()

    # -- HTTP ------------------------------------------------------------------------------------
    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._token:
            given = request.headers.get(TOKEN_HEADER, "")
            if not hmac.compare_digest(given.encode(), self._token.encode()):
                return _json(401, {"message": "Invalid credentials. Token or User credentials required"})
        try:
            return await handler(request)
        except AdminError as e:
            return _json(e.status, e.body)

    def _deployment(self) -> Deployment:
        deployment = self._current()
        if deployment is None:
            raise AdminError(503, {"message": "no config is loaded"})
        return deployment

    async def _plugins(self, request: web.Request) -> web.Response:
        deployment = self._deployment()
        if request.method == "GET":
            return _json(200, ops.list_plugins(deployment))
        if request.method == "POST":
            change = ops.create_plugin(deployment, await _body(request), as_json=self._as_json)
            return _json(201, self._plugin_after(change))
        return _json(405, {"message": "Method not allowed"})

    async def _plugin(self, request: web.Request) -> web.Response:
        deployment, key = self._deployment(), request.match_info["key"]
        if request.method == "GET":
            return _json(200, ops.plugin_json(ops.find_plugin(deployment, key)))
        if request.method in ("PATCH", "PUT"):
            body = await _body(request)
            if request.method == "PUT" and deployment.kong.plugin(key) is None:
                # PUT creates: a UUID in the path is the new plugin's id, anything else its instance_name.
                plugin_id = _uuid_or_none(key)
                if plugin_id is None and isinstance(body, dict):
                    body = {**body, "instance_name": key}
                change = ops.create_plugin(deployment, body, as_json=self._as_json, plugin_id=plugin_id)
            else:
                change = ops.update_plugin(
                    deployment, key, body, as_json=self._as_json, replace=request.method == "PUT"
                )
            return _json(200, self._plugin_after(change))
        if request.method == "DELETE":
            deleted = ops.delete_plugin(deployment, key, as_json=self._as_json)
            if deleted is not None:
                self._commit(deleted)
            return web.Response(status=204)
        return _json(405, {"message": "Method not allowed"})

    async def _config(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return _json(405, {"message": "Method not allowed"})
        if "yaml" in request.content_type:
            payload: Any = await request.text()
        else:
            payload = await _body(request)
        change = ops.replace_config(payload, as_json=self._as_json)
        return _json(201, ops.entities_json(self._commit(change)))

    def _plugin_after(self, change: ops.Change) -> dict[str, Any]:
        deployment = self._commit(change)
        assert change.plugin_id is not None
        return ops.plugin_json(ops.find_plugin(deployment, change.plugin_id))

    def _commit(self, change: ops.Change) -> Deployment:
        try:
            return self._apply(change.text)
        except ConfigError as e:
            raise rejected(e, change.location) from None
        except OSError as e:
            logger.warning("datakit: the Admin API could not write the config file: %s", e.strerror or e)
            raise AdminError(
                500, {"message": f"could not write the config file: {e.strerror or e}"}
            ) from None


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise AdminError(400, {"message": "Cannot parse JSON body"}) from None


def _uuid_or_none(key: str) -> str | None:
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
