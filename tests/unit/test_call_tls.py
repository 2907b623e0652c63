"""`call` over real TLS and through real forward proxies (spec §5.1, §2.1 `ca_certificates`): a CA made
in the test, an HTTPS server on 127.0.0.1, and a CONNECT/forward proxy with Basic authentication."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from mitm_datakit.context import RunContext
from mitm_datakit.errors import ConfigError
from mitm_datakit.http_client import HttpClient
from mitm_datakit.plan import build_plan
from mitm_datakit.runtime import Run
from mitm_datakit.tls import trust_store

from .conftest import LocalServer, value_of
from .forward_proxy import ForwardProxy
from .pki import LocalCA
from .support import DEFAULT_REQUEST, DictGateway, run_config

BOUND = 10.0
SERVER_NAME = "api.internal.test"


@dataclass
class TlsServer:
    """An HTTPS server whose certificate names `api.internal.test` (and 127.0.0.1 when `with_ip`)."""

    ca: LocalCA
    ca_file: Path
    port: int = 0
    server_names: list[str | None] = field(default_factory=list)  # SNI names clients sent

    def url(self, path: str = "/hello", host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"


async def start_tls_server(tmp_path: Path, *, with_ip: bool) -> tuple[TlsServer, web.AppRunner]:
    ca = LocalCA()
    context = ca.issue(SERVER_NAME, ip="127.0.0.1" if with_ip else None).server_context(tmp_path)
    server = TlsServer(ca, ca.write(tmp_path / "ca.pem"))

    def remember_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        server.server_names.append(name)

    context.sni_callback = remember_sni  # type: ignore[assignment]

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "tls", "host": request.headers.get("Host")})

    app = web.Application()
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return server, runner


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    server, runner = await start_tls_server(tmp_path, with_ip=True)
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
async def named_tls_server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    """Its certificate names only api.internal.test: reaching it by IP needs `ssl_server_name`."""
    server, runner = await start_tls_server(tmp_path, with_ip=False)
    try:
        yield server
    finally:
        await runner.cleanup()


def call_config(
    url: str, *, ca: list[str] | None = None, inputs: dict[str, Any] | None = None, **call: Any
) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    if inputs:
        nodes.append({"name": "P", "type": "static", "values": inputs})
        call["inputs"] = {name: f"P.{name}" for name in inputs}
    nodes.append({"name": "CALL", "type": "call", "url": url, "timeout": 5000, **call})
    config: dict[str, Any] = {"nodes": nodes}
    if ca is not None:
        config["ca_certificates"] = ca
    return config


async def run(config: dict[str, Any], http: HttpClient) -> Run:
    return await asyncio.wait_for(run_config(config, http=http), BOUND)


def failure_of(result: Run) -> str:
    assert result.failure is not None, "the call was expected to fail"
    return result.failure.message


# =============================================================================================
# ca_certificates and ssl_verify
# =============================================================================================


async def test_ex15_ca_certificates_trust_the_local_ca(
    tls_server: TlsServer, http_client: HttpClient
) -> None:
    result = await run(
        call_config(tls_server.url(), ca=[str(tls_server.ca_file)], ssl_verify=True), http_client
    )
    assert result.failure is None
    assert value_of(result, "CALL")["body"]["hello"] == "tls"


async def test_without_ca_certificates_the_system_store_does_not_know_the_ca(
    tls_server: TlsServer, http_client: HttpClient
) -> None:
    message = failure_of(await run(call_config(tls_server.url()), http_client))
    assert message.startswith(f"TLS error calling 127.0.0.1:{tls_server.port}: ")
    assert "unable to get local issuer certificate" in message


async def test_ssl_verify_off_accepts_any_certificate(tls_server: TlsServer, http_client: HttpClient) -> None:
    result = await run(call_config(tls_server.url(), ssl_verify=False), http_client)
    assert value_of(result, "CALL")["status"] == 200


@pytest.mark.parametrize("layout", ["bundle", "two-files"])
async def test_bundles_and_several_files(
    tls_server: TlsServer, http_client: HttpClient, tmp_path: Path, layout: str
) -> None:
    other = LocalCA("another CA").cert_pem
    if layout == "bundle":
        bundle = tmp_path / "bundle.pem"
        bundle.write_bytes(other + tls_server.ca_file.read_bytes())
        files = [str(bundle)]
    else:
        (tmp_path / "other.pem").write_bytes(other)
        files = [str(tmp_path / "other.pem"), str(tls_server.ca_file)]
    result = await run(call_config(tls_server.url(), ca=files), http_client)
    assert result.failure is None


async def test_ca_certificates_replace_the_trust_store(
    tls_server: TlsServer, http_client: HttpClient, tmp_path: Path
) -> None:
    """Only the listed CAs are trusted (as in Kong): a CA that did not sign the server is not enough."""
    (tmp_path / "other.pem").write_bytes(LocalCA("another CA").cert_pem)
    message = failure_of(
        await run(call_config(tls_server.url(), ca=[str(tmp_path / "other.pem")]), http_client)
    )
    assert "certificate verify failed" in message


async def test_ca_files_are_read_once_per_plan(tls_server: TlsServer, http_client: HttpClient) -> None:
    """The trust store is built with the plan: a request never reads the files again."""
    plan_config = call_config(tls_server.url(), ca=[str(tls_server.ca_file)])
    plan = build_plan(plan_config)
    tls_server.ca_file.unlink()
    for _ in range(2):
        result = Run(plan, RunContext("0" * 32, DictGateway(), http_client))
        result.start(DEFAULT_REQUEST)
        await asyncio.wait_for(result.advance(), BOUND)
        assert result.failure is None
    await plan.resources.aclose()


async def test_two_call_nodes_share_one_context(tls_server: TlsServer) -> None:
    config = call_config(tls_server.url(), ca=[str(tls_server.ca_file)])
    config["nodes"].append({"name": "CALL2", "type": "call", "url": tls_server.url()})
    plan = build_plan(config)
    first = trust_store(config, plan.resources)
    assert first.context is not None
    assert trust_store(config, plan.resources) is first
    await plan.resources.aclose()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "CA file not found: {path}"),
        (b"not a certificate", "cannot load CA certificates from {path}: "),
    ],
    ids=["missing", "not-pem"],
)
def test_unusable_ca_file_is_a_config_error(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        build_plan(call_config("https://127.0.0.1:1/", ca=[str(path)]))
    assert f"node #1 (CALL), field 'ca_certificates': {message.format(path=path)}" in str(caught.value)


def test_ca_files_are_not_read_when_nothing_verifies(tmp_path: Path) -> None:
    plan = build_plan(
        call_config("https://127.0.0.1:1/", ca=[str(tmp_path / "missing.pem")], ssl_verify=False)
    )
    assert plan.node("CALL").type_name == "call"


# =============================================================================================
# ssl_server_name
# =============================================================================================


async def test_ssl_server_name_is_sent_and_verified(
    named_tls_server: TlsServer, http_client: HttpClient
) -> None:
    config = call_config(
        named_tls_server.url(), ca=[str(named_tls_server.ca_file)], ssl_server_name=SERVER_NAME
    )
    result = await run(config, http_client)
    assert result.failure is None
    assert named_tls_server.server_names == [SERVER_NAME]
    # The Host header still follows the URL: SNI names the certificate, not the virtual host.
    assert value_of(result, "CALL")["body"]["host"] == f"127.0.0.1:{named_tls_server.port}"


async def test_without_ssl_server_name_the_ip_does_not_match(
    named_tls_server: TlsServer, http_client: HttpClient
) -> None:
    config = call_config(named_tls_server.url(), ca=[str(named_tls_server.ca_file)])
    message = failure_of(await run(config, http_client))
    assert "certificate verify failed" in message
    assert "127.0.0.1" in message


async def test_wrong_ssl_server_name_fails(named_tls_server: TlsServer, http_client: HttpClient) -> None:
    config = call_config(
        named_tls_server.url(), ca=[str(named_tls_server.ca_file)], ssl_server_name="other.test"
    )
    assert "Hostname mismatch" in failure_of(await run(config, http_client))


# =============================================================================================
# http_proxy, https_proxy, proxy_auth_*
# =============================================================================================


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    server = await ForwardProxy().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def auth_proxy() -> AsyncIterator[ForwardProxy]:
    server = await ForwardProxy(credentials=("proxy-user", "proxy-secret")).start()
    try:
        yield server
    finally:
        await server.stop()


async def test_http_target_goes_through_http_proxy(
    local_server: LocalServer, proxy: ForwardProxy, http_client: HttpClient
) -> None:
    local_server.json_route("/via", {"ok": True})
    result = await run(
        call_config(local_server.url("/via?q=1"), inputs={"http_proxy": proxy.url}), http_client
    )
    assert value_of(result, "CALL")["body"] == {"ok": True}
    assert proxy.seen == [("GET", local_server.url("/via?q=1"), True)]


async def test_https_target_tunnels_through_https_proxy(
    tls_server: TlsServer, proxy: ForwardProxy, http_client: HttpClient
) -> None:
    config = call_config(tls_server.url(), ca=[str(tls_server.ca_file)], inputs={"https_proxy": proxy.url})
    result = await run(config, http_client)
    assert value_of(result, "CALL")["body"]["hello"] == "tls"
    assert proxy.seen == [("CONNECT", f"127.0.0.1:{tls_server.port}", True)]


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_each_proxy_input_serves_its_own_scheme(
    scheme: str,
    local_server: LocalServer,
    tls_server: TlsServer,
    proxy: ForwardProxy,
    http_client: HttpClient,
) -> None:
    """An `https_proxy` alone leaves http targets direct, and the other way round."""
    local_server.json_route("/direct", {"direct": True})
    other = "https_proxy" if scheme == "http" else "http_proxy"
    url = local_server.url("/direct") if scheme == "http" else tls_server.url()
    result = await run(call_config(url, ca=[str(tls_server.ca_file)], inputs={other: proxy.url}), http_client)
    assert result.failure is None
    assert proxy.seen == []


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_proxy_authentication(
    scheme: str,
    local_server: LocalServer,
    tls_server: TlsServer,
    auth_proxy: ForwardProxy,
    http_client: HttpClient,
) -> None:
    local_server.json_route("/hello", {"hello": "plain"})
    url = local_server.url("/hello") if scheme == "http" else tls_server.url()
    proxy_input = {f"{scheme}_proxy": auth_proxy.url}
    good = {**proxy_input, "proxy_auth_username": "proxy-user", "proxy_auth_password": "proxy-secret"}
    result = await run(call_config(url, ca=[str(tls_server.ca_file)], inputs=good), http_client)
    assert result.failure is None
    assert auth_proxy.seen[-1][2] is True

    bad = {**proxy_input, "proxy_auth_username": "proxy-user", "proxy_auth_password": "wrong-secret"}
    message = failure_of(await run(call_config(url, ca=[str(tls_server.ca_file)], inputs=bad), http_client))
    assert auth_proxy.seen[-1][2] is False
    if scheme == "http":
        assert message == "non-2XX response code: 407"  # the proxy's own answer to a forwarded request
    else:
        refused = f"the proxy refused to connect to 127.0.0.1:{tls_server.port}"
        assert message == f"{refused}: 407 Proxy Authentication Required"
    assert "wrong-secret" not in message


async def test_proxy_that_is_down(
    local_server: LocalServer, http_client: HttpClient, refused_url: str
) -> None:
    proxy_url = refused_url.rsplit("/", 1)[0]
    message = failure_of(
        await run(call_config(local_server.url("/echo"), inputs={"http_proxy": proxy_url}), http_client)
    )
    assert message.startswith(f"failed to connect to the proxy {proxy_url.removeprefix('http://')}: ")


@pytest.mark.parametrize(
    "proxy_url",
    ["ftp://proxy.test:21", "not a url", "http://user:pass-secret@:bad"],
    ids=["ftp", "text", "bad-port"],
)
async def test_invalid_proxy_url_fails_without_echoing_it(
    local_server: LocalServer, http_client: HttpClient, proxy_url: str
) -> None:
    message = failure_of(
        await run(call_config(local_server.url("/echo"), inputs={"http_proxy": proxy_url}), http_client)
    )
    assert message == "call: invalid proxy URL (expected http://host:port)"
