"""A pytest plugin shipped with mitm-datakit: test your own Datakit configs through a real proxy.

    def test_hello(datakit_proxy):
        proxy = datakit_proxy("flows/hello.yaml", upstream="http://127.0.0.1:8080")
        response = proxy.client.get("/hello")
        assert response.status_code == 200

`datakit_proxy(config, upstream=...)` starts `mitmdump` in reverse mode to `upstream`, on 127.0.0.1
and a port the kernel picks, with the Datakit addon running `config` (a file path, or a dict that
is written to a file). It returns once mitmdump is really serving, within `timeout` seconds, and
every proxy it started is stopped at the end of the test. `proxy.client` is an `httpx.Client`
whose base URL is the proxy.

The plugin is registered through the `pytest11` entry point, so pytest loads it in every run of an
environment where mitm-datakit is installed: at import time it needs only pytest and the standard
library, and it does nothing until a test asks for the fixture.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    import httpx

LOOPBACK = "127.0.0.1"
READY_MARKER = "mitm-datakit: ready"  # printed by mitm_datakit/proxy/pytest_script.py
_LISTENING = re.compile(r"listening at (?:\S+:)?(\d+)\.?\s*$")
_SCRIPT = Path(__file__).resolve().parent / "proxy" / "pytest_script.py"


class ProxyStartError(RuntimeError):
    """mitmdump did not come up; the message carries its output."""


class _OutputReader:
    """Collects mitmdump's merged stdout and stderr in a thread, so the pipe never fills up and blocks it."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="datakit-proxy-output", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def text(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for_marker_or_exit(self, timeout: float) -> bool:
        """True once the ready marker was printed or the output closed; False on timeout."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._closed or READY_MARKER in "".join(self._lines), timeout
            )

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if self._process.stdout is not None:
            self._process.stdout.close()


class DatakitProxy:
    """A running mitmdump with the Datakit addon. Stopped by the fixture; `stop()` is safe to call twice."""

    def __init__(self, process: subprocess.Popen[str], output: _OutputReader, config_path: Path) -> None:
        self._process = process
        self._output = output
        self._client: httpx.Client | None = None
        self.config_path = config_path
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def client(self) -> httpx.Client:
        """An httpx client for this proxy: base URL set, *_PROXY variables ignored, 10 s timeout."""
        if self._client is None:
            import httpx  # only tests that use the client need httpx

            self._client = httpx.Client(base_url=self.url, trust_env=False, timeout=10.0)
        return self._client

    def output(self) -> str:
        """mitmdump's log so far (stdout and stderr)."""
        return self._output.text()

    def wait_ready(self, timeout: float) -> None:
        ready = self._output.wait_for_marker_or_exit(timeout)
        log = self.output()
        if not ready or READY_MARKER not in log:
            returncode = self.stop()
            why = f"exited with status {returncode}" if ready else f"was not ready after {timeout:g} s"
            raise ProxyStartError(f"mitmdump {why}:\n{self.output()}")
        ports = [int(m.group(1)) for m in map(_LISTENING.search, log.splitlines()) if m]
        if not ports:
            self.stop()
            raise ProxyStartError(f"mitmdump logged no 'listening at' line:\n{log}")
        self.port = ports[0]

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `timeout` seconds; returns mitmdump's exit status."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout)
        self._output.join(timeout)
        return self._process.returncode


class StartDatakitProxy(Protocol):
    def __call__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any],
        *,
        upstream: str,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 15.0,
    ) -> DatakitProxy: ...


def _mitmdump() -> str:
    # The mitmdump of the environment that runs pytest, which is the one mitm-datakit is installed in.
    beside = Path(sys.executable).with_name("mitmdump")
    found = str(beside) if beside.exists() else shutil.which("mitmdump")
    if found is None:
        raise ProxyStartError("mitmdump not found next to the Python running pytest, nor on PATH")
    return found


def _config_file(config: str | os.PathLike[str] | Mapping[str, Any], directory: Path) -> Path:
    if isinstance(config, Mapping):
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"datakit-{len(list(directory.glob('datakit-*.json')))}.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML: the addon reads it
        return path
    return Path(config).resolve()


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    # Traffic to 127.0.0.1 must go direct, whatever proxy the developer's shell is configured with.
    env = {name: value for name, value in os.environ.items() if not name.lower().endswith("_proxy")}
    env["PYTHONUNBUFFERED"] = "1"  # the reader thread must see the ready line when it is printed
    env.update(extra or {})
    return env


def start_datakit_proxy(
    config: str | os.PathLike[str] | Mapping[str, Any],
    *,
    upstream: str,
    directory: Path,
    confdir: Path,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 15.0,
) -> DatakitProxy:
    """Start mitmdump with the Datakit addon running `config`; return once it serves requests."""
    config_path = _config_file(config, directory)
    command = [
        _mitmdump(), "-s", str(_SCRIPT),
        "--mode", f"reverse:{upstream}", "--listen-host", LOOPBACK, "--listen-port", "0",
        "--set", f"datakit_config={config_path}",
        "--set", f"confdir={confdir}",  # the CA is made once per session, never in $HOME
        "--set", "flow_detail=0",  # no line per flow; warnings and errors stay
        *extra_args,
    ]
    process = subprocess.Popen(
        command,
        env=_environment(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    proxy = DatakitProxy(process, _OutputReader(process), config_path)
    proxy.wait_ready(timeout)
    return proxy


@pytest.fixture(scope="session")
def datakit_confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mitmproxy's confdir for every `datakit_proxy` of the session."""
    return tmp_path_factory.mktemp("datakit-mitmproxy-confdir")


@pytest.fixture
def datakit_proxy(tmp_path: Path, datakit_confdir: Path) -> Iterator[StartDatakitProxy]:
    """Factory: `datakit_proxy(config, upstream=URL, extra_args=(), env=None, timeout=15.0) -> proxy`."""
    started: list[DatakitProxy] = []

    def start(
        config: str | os.PathLike[str] | Mapping[str, Any],
        *,
        upstream: str,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 15.0,
    ) -> DatakitProxy:
        proxy = start_datakit_proxy(
            config,
            upstream=upstream,
            directory=tmp_path / "datakit-configs",
            confdir=datakit_confdir,
            extra_args=extra_args,
            env=env,
            timeout=timeout,
        )
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        status = proxy.stop()
        # Shown by pytest when the test failed: what the proxy logged is usually why.
        print(f"----- mitmdump (status {status}, config {proxy.config_path}) -----\n{proxy.output()}")
