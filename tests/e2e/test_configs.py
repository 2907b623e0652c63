"""Every example in configs/, run as the README runs it: the file itself (not a copy) in a real mitmdump, with
scripts/standins.py serving the third-party APIs and services on the fixed ports the file names.

Fixed ports mean these tests cannot run twice at the same time on one machine, nor beside `scripts/demo.sh`; a
busy port fails the test with the stand-ins' own message ("address already in use").
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from harness import REPO_ROOT, wait_until

CONFIGS = REPO_ROOT / "configs"
STANDINS = REPO_ROOT / "scripts" / "standins.py"
DATAKIT = Path(sys.executable).with_name("datakit")
UPSTREAM = "http://127.0.0.1:18080"  # the `upstream` stand-in: the reverse target of the README's commands
NO_UPSTREAM = "http://127.0.0.1:1"  # nothing listens there
DATAKIT_500 = {"message": "An unexpected error occurred"}  # Kong's body when a node fails (request_id aside)
ABSENT: Any = object()  # in an expected answer: this key must not be there
CONFIG_FILES = sorted(p.name for p in CONFIGS.glob("*.yaml"))


@dataclass(frozen=True)
class Exchange:
    """One request through the proxy and what must be in its answer (a JSON subset, see `assert_contains`)."""

    name: str
    path: str
    status: int
    answer: Any
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None


@dataclass(frozen=True)
class Example:
    id: str
    config: str  # a file in configs/
    standins: tuple[str, ...]  # names of scripts/standins.py stand-ins to start
    exchanges: tuple[Exchange, ...]
    script: str = "addon/datakit.py"  # what `mitmdump -s` loads, relative to the repository
    upstream: str = UPSTREAM
    extra_args: tuple[str, ...] = ()


def echoed(port: str, **fields: Any) -> dict[str, Any]:
    """What a stand-in's echo answers: the request it got, as it got it."""
    return {"served_by": f"127.0.0.1:{port}", **fields}


EXAMPLES = [
    Example("animal-facts", "animal-facts.yaml", ("upstream", "cat-facts", "dog-facts"), (
        Exchange("both facts joined", "/anything", 200, {
            "cat_fact": "Cats sleep for around thirteen to sixteen hours a day.",
            "dog_fact": "Dogs have about 1,700 taste buds.",
        }),
    )),
    Example("animal-facts-cat-api-down", "animal-facts.yaml", ("upstream", "dog-facts"), (
        Exchange("a third-party API that does not answer fails the plan", "/anything", 500, DATAKIT_500),
    )),
    Example("internal-authentication", "internal-authentication.yaml", ("upstream", "auth"), (
        Exchange("a valid token reaches the service as identity headers", "/orders", 200,
                 echoed("18080", path="/orders", headers={
                     "X-Authenticated-User": "alice", "X-Authenticated-Scope": "orders:read orders:write",
                     "Authorization": ABSENT,
                 }), headers={"Authorization": "Bearer alice-token"}),
        Exchange("a valid token without the scope is forbidden", "/orders", 403,
                 {"message": "Forbidden: the token lacks the orders:read scope"},
                 headers={"Authorization": "Bearer bob-token"}),
        Exchange("an unknown token is unauthorized", "/orders", 401, {"message": "Unauthorized"},
                 headers={"Authorization": "Bearer forged"}),
        Exchange("no token is unauthorized", "/orders", 401, {"message": "Unauthorized"}),
    )),
    Example("service-callout", "service-callout.yaml", ("upstream", "customers"), (
        Exchange("the customer is merged into the body and its tier becomes a header", "/orders", 200,
                 echoed("18080", headers={"X-Customer-Tier": "gold"}, json={
                     "item": "book", "customer": {"id": "c-1", "name": "Ada Lovelace", "tier": "gold"},
                 }), method="POST", headers={"X-Customer-Id": "c-1"}, json={"item": "book"}),
        Exchange("a request without a body gets one", "/orders", 200,
                 echoed("18080", json={"customer": {"id": "c-2", "name": "Grace Hopper", "tier": "silver"}}),
                 headers={"X-Customer-Id": "c-2"}),
        Exchange("an unknown customer fails the callout", "/orders", 500, DATAKIT_500,
                 headers={"X-Customer-Id": "c-9"}),
    )),
    Example("local-api-mocking", "local-api-mocking.yaml", (), (
        Exchange("a list", "/users", 200,
                 [{"id": 1, "name": "Ada Lovelace"}, {"id": 2, "name": "Grace Hopper"}]),
        Exchange("one item", "/users/2", 200,
                 {"id": 2, "name": "Grace Hopper", "email": "grace@example.com"}),
        Exchange("an unknown path", "/users/3", 404, {"message": "no mock for GET /users/3"}),
        Exchange("a known path with another method", "/users", 404, {"message": "no mock for POST /users"},
                 method="POST"),
    ), upstream=NO_UPSTREAM, extra_args=("--set", "connection_strategy=lazy")),
    Example("dynamic-service-discovery", "dynamic-service-discovery.yaml", ("registry", "backend-a"), (
        Exchange("the registry's instance gets the request, with the service's Host", "/orders/7", 200,
                 echoed("18091", path="/7", headers={"Host": "orders.service.internal"})),
        Exchange("a service the registry does not know fails the plan", "/users/7", 500, DATAKIT_500),
    ), upstream=NO_UPSTREAM),
    Example("kong-entity-properties", "kong-entity-properties.yaml", (), (
        Exchange("a declared consumer, its route, service and groups", "/whoami", 200, {
            "route": "whoami", "paths": ["/whoami"], "consumer": "alice", "groups": ["staff"],
            "service": {"name": "identity", "protocol": "http", "host": "127.0.0.1", "port": 18081,
                        "path": "/api"},
        }, headers={"X-Consumer": "alice"}),
        Exchange("no header is the anonymous consumer", "/whoami", 200,
                 {"consumer": "anonymous", "groups": []}),
        Exchange("an undeclared consumer cannot be set", "/whoami", 500, DATAKIT_500,
                 headers={"X-Consumer": "mallory"}),
    ), upstream=NO_UPSTREAM),
    Example("kong", "kong.yaml", ("cat-facts", "dog-facts", "catalog"), (
        Exchange("a prefix route strips its path and its service's plugin adds a header", "/orders/42", 200,
                 echoed("18081", path="/v1/42", headers={"X-Kong-Route": "orders"})),
        Exchange("a regex route answers from its own plugin", "/orders/mock/7", 200,
                 {"id": 7, "status": "mocked"}),
        Exchange("a host route's upstream: first target", "/items", 200,
                 echoed("18082", headers={"Host": "catalog.example"}), headers={"Host": "catalog.example"}),
        Exchange("a host route's upstream: second target", "/items", 200,
                 echoed("18083", headers={"Host": "catalog.example"}), headers={"Host": "catalog.example"}),
        Exchange("no route matches", "/nowhere", 404, {"message": "no Route matched with those values"}),
    ), upstream=NO_UPSTREAM),
    Example("route-upstream-by-credential", "route-upstream-by-credential.yaml",
            ("backend-a", "backend-b", "backend-default"), (
        Exchange("caller-a", "/x", 200, echoed("18091"), headers={"X-Caller": "caller-a"}),
        Exchange("caller-b", "/x", 200, echoed("18092"), headers={"X-Caller": "caller-b"}),
        Exchange("an unknown caller", "/x", 200, echoed("18093"), headers={"X-Caller": "caller-z"}),
        Exchange("no credential", "/x", 500, DATAKIT_500),
    ), script="configs/header-credential.py", upstream=NO_UPSTREAM),
    Example("route-host-by-credential", "route-host-by-credential.yaml",
            ("upstream", "backend-a", "backend-b", "backend-default"), (
        Exchange("caller-a, Host unchanged", "/x", 200, echoed("18091", headers={"Host": "127.0.0.1:18080"}),
                 headers={"X-Caller": "caller-a"}),
        Exchange("caller-b", "/x", 200, echoed("18092"), headers={"X-Caller": "caller-b"}),
        Exchange("an unknown caller", "/x", 200, echoed("18093"), headers={"X-Caller": "caller-z"}),
        Exchange("no credential", "/x", 500, DATAKIT_500),
    ), script="configs/header-credential.py"),
]


def assert_contains(actual: Any, expected: Any, where: str = "answer") -> None:
    """`expected` is a subset of `actual`: objects may hold more keys, everything else must be equal."""
    if not isinstance(expected, dict):
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
        return
    assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
    for key, value in expected.items():
        if value is ABSENT:
            assert key not in actual, f"{where}.{key} should be absent, is {actual[key]!r}"
        else:
            assert key in actual, f"{where}.{key} is missing from {actual!r}"
            assert_contains(actual[key], value, f"{where}.{key}")


@pytest.fixture
def standins(tmp_path: Path) -> Iterator[Callable[[tuple[str, ...]], None]]:
    """Starts `scripts/standins.py NAME...` (the demo's own stand-ins) and waits until each one listens."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(names: tuple[str, ...]) -> None:
        log = tmp_path / f"standins-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, str(STANDINS), *names], cwd=REPO_ROOT,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        started.append((proc, log))

        def settled() -> bool:
            return proc.poll() is not None or log.read_text().count("listening at") == len(names)

        wait_until(settled, timeout=15)
        assert proc.poll() is None, f"scripts/standins.py exited with {proc.returncode}:\n{log.read_text()}"

    yield start
    for proc, log in started:
        proc.terminate()
        proc.wait(timeout=10)
        print(f"----- standins (rc={proc.returncode}) -----\n{log.read_text()}")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id)
def test_example_answers(example: Example, standins, mitmdump, client: httpx.Client) -> None:
    if example.standins:  # the mocking and entity examples call nothing: no stand-in is running for them
        standins(example.standins)
    proxy = mitmdump(CONFIGS / example.config, *example.extra_args, upstream=example.upstream,
                     script=REPO_ROOT / example.script)
    for exchange in example.exchanges:
        response = client.request(exchange.method, proxy.url + exchange.path, headers=exchange.headers,
                                  json=exchange.json)
        got = f"{exchange.name}: {response.status_code} {response.text}"
        assert response.status_code == exchange.status, got
        assert_contains(response.json(), exchange.answer, exchange.name)


def datakit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DATAKIT), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


def test_every_config_validates() -> None:
    paths = [f"configs/{config}" for config in CONFIG_FILES]
    result = datakit("validate", *paths)  # one process for all: each file still gets its own line
    assert (result.returncode, result.stdout, result.stderr) == (0, "".join(f"{p}: ok\n" for p in paths), "")


def datakit_plugin_configs(declarative: Mapping[str, Any]) -> list[Any]:
    """The `config` of every datakit plugin of a Kong declarative file: global, per service, per route."""
    services = declarative.get("services", [])
    plugins = [*declarative.get("plugins", []), *(p for s in services for p in s.get("plugins", [])),
               *(p for s in services for r in s.get("routes", []) for p in r.get("plugins", []))]
    return [p["config"] for p in plugins if p["name"] == "datakit"]


@pytest.mark.parametrize("config", CONFIG_FILES)
def test_readme_shows_the_graph_datakit_draws(config: str, tmp_path: Path) -> None:
    """The README's Examples section pastes `datakit graph` output: it must not drift from the file."""
    plugins = datakit_plugin_configs(yaml.safe_load((CONFIGS / config).read_text()))
    drawn = [Path("configs") / config]
    if len(plugins) > 1:  # `datakit graph` draws one plugin; the README draws each from a file of its own
        drawn = [tmp_path / f"plugin-{i}.yaml" for i in range(len(plugins))]
        for path, plugin in zip(drawn, plugins):
            path.write_text(yaml.safe_dump(plugin, sort_keys=False))
    readme = (REPO_ROOT / "README.md").read_text()
    for path in drawn:
        result = datakit("graph", str(path))
        assert result.returncode == 0, result.stderr
        assert f"```mermaid\n{result.stdout}```" in readme, f"README lacks the graph of {path}"


def test_every_file_in_configs_is_run_by_an_example() -> None:
    scripts = {Path(e.script).name for e in EXAMPLES if e.script.startswith("configs/")}
    used = {e.config for e in EXAMPLES} | scripts
    assert sorted(p.name for p in CONFIGS.iterdir() if p.is_file()) == sorted(used)
