"""`datakit serve` (proxy/lean.py): the lean mitmproxy Master runs a config as `mitmdump -s addon/datakit.py` does.

The scenario tests run once on each server and expect the same answers; the others check what is particular to the
lean server: its command line, its start-up errors and its clean exit.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from harness import (
    LOOPBACK,
    REPO_ROOT,
    Config,
    MitmdumpError,
    StubServer,
    _OutputReader,
    _spawn,
    _terminate,
    write_config,
)

LEAN = [sys.executable, "-m", "mitm_datakit.proxy.lean"]
LISTENING = re.compile(r"listening at \S+:(\d+)\.?\s*$", re.MULTILINE)
TIMESTAMP = re.compile(r"^\[[0-9:.]+\](\[[^\]]+\])? ?")

BAD_CONFIG = """
nodes:
- name: FILTER
  type: jq
  jq: "{a:"
- name: request
  type: exit
- name: LOST
  type: jq
  input: NOWHERE
  jq: "."
"""


class Server(Protocol):
    @property
    def url(self) -> str: ...

    def wait_for_output(self, pattern: str, timeout: float = 5.0) -> re.Match[str]: ...


@dataclass
class LeanServer:
    proc: subprocess.Popen[str]
    reader: _OutputReader
    url: str = ""

    def output(self) -> str:
        return self.reader.text()

    def wait_for_output(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        rx = re.compile(pattern)
        self.reader.wait_for(lambda out, eof: bool(rx.search(out)) or eof, timeout)
        match = rx.search(self.output())
        if match is None:
            raise TimeoutError(f"datakit serve never logged {pattern!r}:\n{self.output()}")
        return match

    def stop(self) -> int:
        return _terminate(self.proc, self.reader)


LeanFactory = Callable[..., LeanServer]


def lean_command(config_path: Path | None, upstream: str, confdir: Path, *extra: str, via_set: bool = False) -> list[str]:
    cmd = [*LEAN, "--mode", f"reverse:{upstream}", "--listen-host", LOOPBACK, "--listen-port", "0",
           "--set", f"confdir={confdir}", *extra]
    if config_path is not None:
        cmd += ["--set", f"datakit_config={config_path}"] if via_set else [str(config_path)]
    return cmd


def spawn_lean(cmd: list[str]) -> LeanServer:
    # PYTHONPATH: the package of this checkout, also when the venv holds no editable install of it.
    return LeanServer(*_spawn(cmd, {"PYTHONPATH": str(REPO_ROOT / "addon")}))


@pytest.fixture
def lean(request: pytest.FixtureRequest, tmp_path: Path, mitm_confdir: Path) -> Iterator[LeanFactory]:
    """Factory: `lean(config, *extra_args, upstream=None, via_set=False) -> LeanServer`, stopped at teardown."""
    started: list[LeanServer] = []

    def start(config: Config, *extra: str, upstream: StubServer | None = None, via_set: bool = False,
              timeout: float = 15.0) -> LeanServer:
        target = upstream or request.getfixturevalue("upstream")
        server = spawn_lean(lean_command(write_config(config, tmp_path), target.url, mitm_confdir, *extra,
                                         via_set=via_set))
        started.append(server)
        # No start-up check runs after the listeners are up (Datakit checks its config before), so the
        # "listening at" line means ready.
        server.reader.wait_for(lambda out, eof: bool(LISTENING.search(out)) or eof, timeout)
        match = LISTENING.search(server.output())
        if match is None:
            raise MitmdumpError(f"datakit serve did not come up (rc={server.stop()}):\n{server.output()}")
        server.url = f"http://{LOOPBACK}:{match.group(1)}"
        return server

    yield start
    for i, server in enumerate(started):
        rc = server.stop()
        print(f"----- datakit serve #{i} (rc={rc}) -----\n{server.output()}")


@pytest.fixture(params=["mitmdump", "lean"])
def server(request: pytest.FixtureRequest) -> Callable[..., Server]:
    """The same scenario on both servers: `server(config, upstream=...)`."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def test_both_phases_and_concurrent_calls(server: Callable[..., Server], upstream: StubServer, stub: StubServer,
                                          client: httpx.Client) -> None:
    stub.barrier("/left", "/right", timeout=5.0)  # sequential calls would time out: they must overlap
    proxy = server(
        {
            "nodes": [
                {"name": "LEFT", "type": "call", "url": f"{stub.url}/left"},
                {"name": "RIGHT", "type": "call", "url": f"{stub.url}/right"},
                {"name": "TAG", "type": "jq", "inputs": {"l": "LEFT.body", "r": "RIGHT.body"},
                 "jq": '{"X-Joined": ([.l.path, .r.path] | join(","))}', "output": "service_request.headers"},
                {"name": "SHAPE", "type": "jq", "input": "service_response.body",
                 "jq": '{seen: .headers["X-Joined"], path: .path}', "output": "response.body"},
            ]
        },
        upstream=upstream,
    )
    response = client.get(proxy.url + "/items")
    assert response.status_code == 200
    assert response.json() == {"seen": "/left,/right", "path": "/items"}
    assert response.headers["Content-Type"] == "application/json"
    assert upstream.requests_to("/items")[0].header("X-Joined") == "/left,/right"


def test_exit_and_node_failure(server: Callable[..., Server], stub: StubServer, client: httpx.Client) -> None:
    proxy = server(
        {
            "nodes": [
                {"name": "API", "type": "call", "url": f"{stub.url}/missing"},
                {"name": "EXIT", "type": "exit", "status": 201, "inputs": {"body": "API.body"}},
            ]
        }
    )
    response = client.get(proxy.url + "/")
    assert response.status_code == 500
    assert re.fullmatch(r"[0-9a-f]{32}", response.json()["request_id"])
    assert response.headers["X-Kong-Request-Id"] == response.json()["request_id"]
    proxy.wait_for_output(r'node #1 \(API\) failed with error: "non-2XX response code: 404"')
    stub.route("GET", "/missing", json={"found": True})
    response = client.get(proxy.url + "/")
    assert (response.status_code, response.json()) == (201, {"found": True})


def test_config_given_with_set_and_unknown_options_only_warn(lean: LeanFactory, client: httpx.Client) -> None:
    # mitmdump's own --set flow_detail means nothing without its dumper: say so, and serve anyway.
    proxy = lean({"nodes": [{"name": "EXIT", "type": "exit", "status": 202}]}, "--set", "flow_detail=0",
                 via_set=True)
    assert client.get(proxy.url + "/").status_code == 202
    proxy.wait_for_output(r"unknown option\(s\) ignored: flow_detail")


def test_sigterm_stops_the_server_cleanly(lean: LeanFactory, client: httpx.Client) -> None:
    proxy = lean({"nodes": [{"name": "EXIT", "type": "exit", "status": 204}]})
    assert client.get(proxy.url + "/").status_code == 204
    assert proxy.stop() == 0
    assert "Traceback" not in proxy.output()


def _error_lines(output: str) -> list[str]:
    lines = (TIMESTAMP.sub("", line).strip() for line in output.splitlines())
    return [line for line in lines if line.startswith(("invalid Datakit config", "node #"))]


def test_invalid_config_exits_with_the_same_messages_as_mitmdump(
    tmp_path: Path, mitm_confdir: Path, mitmdump_expect_exit: Any
) -> None:
    config = write_config(BAD_CONFIG, tmp_path)
    mitmdump_rc, mitmdump_output = mitmdump_expect_exit(config)
    server = spawn_lean(lean_command(config, "http://127.0.0.1:1", mitm_confdir))
    try:
        rc = server.proc.wait(15)
    finally:
        server.stop()
    assert rc == 1 and mitmdump_rc != 0
    assert len(_error_lines(server.output())) == 4  # the header line and one line per problem
    assert _error_lines(server.output()) == _error_lines(mitmdump_output)
    assert "Traceback" not in server.output()


def test_invalid_option_value_exits_non_zero(tmp_path: Path, mitm_confdir: Path) -> None:
    config = write_config({"nodes": [{"name": "EXIT", "type": "exit"}]}, tmp_path)
    server = spawn_lean(lean_command(config, "http://127.0.0.1:1", mitm_confdir, "--set", "datakit_max_body=0"))
    try:
        rc = server.proc.wait(15)
    finally:
        server.stop()
    assert rc == 1
    assert "datakit_max_body must be a positive number of bytes" in server.output()
