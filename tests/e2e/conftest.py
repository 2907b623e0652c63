"""Fixtures for end-to-end tests: real stand-in servers and a real mitmdump, all on 127.0.0.1.

    def test_exit(mitmdump, client):
        proxy = mitmdump({"nodes": [{"name": "EXIT", "type": "exit", "status": 201}]})
        assert client.get(proxy.url + "/").status_code == 201
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import httpx
import pytest

# pytest's default ("prepend") import mode puts this folder on sys.path, so e2e modules import `harness` directly.
from harness import (
    DATAKIT_SCRIPT,
    Config,
    Proxy,
    StubServer,
    run_mitmdump_expect_exit,
)

from faults import unhandled_lines


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/e2e starts real processes or sockets: mark it, so `-m "not e2e"` gives a fast run.
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


class MitmdumpFactory(Protocol):
    def __call__(
        self,
        config: Config,
        *extra_args: str,
        upstream: StubServer | str | None = None,
        mode: str | None = None,
        script: Path = DATAKIT_SCRIPT,
        env: Mapping[str, str] | None = None,
        timeout: float = 15.0,
    ) -> Proxy: ...


class ExpectExit(Protocol):
    def __call__(
        self,
        config: Config,
        timeout: float = 15.0,
        *,
        extra_args: Sequence[str] = (),
        script: Path = DATAKIT_SCRIPT,
        env: Mapping[str, str] | None = None,
    ) -> tuple[int, str]: ...


def _started(name: str, *, default_echo: bool) -> Iterator[StubServer]:
    server = StubServer(default_echo=default_echo, name=name).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def upstream() -> Iterator[StubServer]:
    """The service behind the proxy: echoes every request unless a route says otherwise."""
    yield from _started("upstream", default_echo=True)


@pytest.fixture
def stub() -> Iterator[StubServer]:
    """A third-party API for `call` nodes: unknown paths answer 404, so a wrong URL shows up."""
    yield from _started("stub", default_echo=False)


@pytest.fixture
def stub_factory() -> Iterator[Callable[..., StubServer]]:
    """More stand-in servers: `stub_factory(name="auth", default_echo=False)`."""
    servers: list[StubServer] = []

    def make(name: str = "stub", default_echo: bool = False) -> StubServer:
        servers.append(StubServer(default_echo=default_echo, name=name).start())
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def mitm_confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mitmproxy confdir per session: its CA is generated once, and never in $HOME."""
    return tmp_path_factory.mktemp("mitmproxy-confdir")


@pytest.fixture
def mitmdump(
    request: pytest.FixtureRequest, tmp_path: Path, mitm_confdir: Path
) -> Iterator[MitmdumpFactory]:
    """Factory: `mitmdump(config, *extra_args, upstream=..., mode=..., script=..., env=...) -> Proxy`.

    `config` is a dict (written as YAML), a str (written verbatim), a Path (used as is) or None (no
    datakit_config). The default upstream is the `upstream` fixture; reverse mode unless `mode` is given.
    All proxies stop at teardown; their logs are printed so a failing test shows them. A log with
    "Addon error" or a traceback fails the test then, unless it is marked `allow_addon_errors`.
    """
    started: list[Proxy] = []

    def start(
        config: Config,
        *extra_args: str,
        upstream: StubServer | str | None = None,
        mode: str | None = None,
        script: Path = DATAKIT_SCRIPT,
        env: Mapping[str, str] | None = None,
        timeout: float = 15.0,
    ) -> Proxy:
        if upstream is None and mode is None:
            upstream = request.getfixturevalue("upstream")
        upstream_url = upstream.url if isinstance(upstream, StubServer) else (upstream or "")
        proxy = Proxy.start(config, upstream=upstream_url, tmp_dir=tmp_path, extra_args=extra_args, mode=mode,
                            script=script, confdir=mitm_confdir, env=env, timeout=timeout)
        started.append(proxy)
        return proxy

    yield start
    unhandled: list[str] = []
    for i, proxy in enumerate(started):
        rc = proxy.stop()
        output = proxy.output()
        print(f"----- mitmdump #{i} (rc={rc}, config={proxy.config_path}) -----\n{output}")
        unhandled += [f"mitmdump #{i}: {line}" for line in unhandled_lines(output)]
    if unhandled and request.node.get_closest_marker("allow_addon_errors") is None:
        # A handled failure is one log line (node, reason); an exception that reached mitmproxy is a bug.
        why = "unhandled exception in the proxy (mark the test allow_addon_errors if that is the point)"
        pytest.fail(why + ":\n" + "\n".join(unhandled), pytrace=False)


@pytest.fixture
def mitmdump_expect_exit(tmp_path: Path, mitm_confdir: Path) -> ExpectExit:
    """`mitmdump_expect_exit(config, timeout=15.0, *, extra_args=(), script=..., env=None) -> (rc, output)`."""

    def run(
        config: Config,
        timeout: float = 15.0,
        *,
        extra_args: Sequence[str] = (),
        script: Path = DATAKIT_SCRIPT,
        env: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:
        return run_mitmdump_expect_exit(config, timeout, tmp_dir=tmp_path, extra_args=extra_args, script=script,
                                        confdir=mitm_confdir, env=env)

    return run


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """An HTTP client for the proxy: ignores *_PROXY variables, 10 s timeout."""
    with httpx.Client(trust_env=False, timeout=10.0) as c:
        yield c

