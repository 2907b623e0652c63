"""The installed `datakit` command and the `datakit_proxy` pytest fixture, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO_ROOT, StubServer

from mitm_datakit.testing import ProxyStartError

pytest_plugins = ["pytester"]

DATAKIT = Path(sys.executable).with_name("datakit")  # installed by `pip install -e .` from [project.scripts]
ANIMAL_FACTS = REPO_ROOT / "configs" / "animal-facts.yaml"


def datakit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DATAKIT), *args], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, env=env
    )


def test_the_installed_script_validates_the_bundled_example() -> None:
    result = datakit("validate", "configs/animal-facts.yaml")
    assert (result.returncode, result.stdout, result.stderr) == (0, "configs/animal-facts.yaml: ok\n", "")


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        pytest.param([], "usage: datakit [-h] COMMAND", id="datakit"),
        pytest.param(["validate"], "usage: datakit validate", id="validate"),
        pytest.param(["graph"], "usage: datakit graph", id="graph"),
        pytest.param(["schema"], "usage: datakit schema", id="schema"),
        pytest.param(["run"], "usage: datakit run", id="run"),
        pytest.param(["serve"], "usage: datakit serve", id="serve"),
    ],
)
def test_every_subcommand_has_help(args: list[str], usage: str) -> None:
    result = datakit(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(usage)


def test_run_makes_real_calls_without_fixtures(stub_factory, tmp_path: Path) -> None:
    cats, dogs = stub_factory("cats"), stub_factory("dogs")
    cats.route("GET", "/fact", json={"fact": "Cats purr."})
    dogs.route("GET", "/api/v1/facts", json={"facts": ["Dogs wag."]})
    config = tmp_path / "animal-facts.yaml"
    config.write_text(
        ANIMAL_FACTS.read_text()
        .replace("127.0.0.1:18081", f"127.0.0.1:{cats.port}")
        .replace("127.0.0.1:18082", f"127.0.0.1:{dogs.port}")
    )
    result = datakit("run", str(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    body = json.loads(json.loads(result.stdout)["response"]["body"])
    assert body == {"cat_fact": "Cats purr.", "dog_fact": "Dogs wag."}
    assert len(cats.requests_to("/fact")) == len(dogs.requests_to("/api/v1/facts")) == 1


# -- the pytest plugin -------------------------------------------------------------------------


def test_datakit_proxy_answers_from_the_config(datakit_proxy, upstream: StubServer) -> None:
    proxy = datakit_proxy(
        {
            "nodes": [
                {"name": "HI", "type": "static", "values": {"hi": "there"}},
                {"name": "EXIT", "type": "exit", "status": 202, "inputs": {"body": "HI"}},
            ]
        },
        upstream=upstream.url,
    )
    response = proxy.client.get("/anything")
    assert (response.status_code, response.json()) == (202, {"hi": "there"})
    assert upstream.requests == []  # the exit answered before proxying


def test_datakit_proxy_proxies_to_the_upstream_in_reverse_mode(
    datakit_proxy, upstream: StubServer, tmp_path: Path
) -> None:
    config = tmp_path / "tag.yaml"
    config.write_text(
        "nodes:\n"
        "  - {name: TAG, type: static, values: {X-Datakit: tagged}}\n"
        "  - {name: SEND, type: jq, input: TAG, jq: ., output: service_request.headers}\n"
    )
    proxy = datakit_proxy(config, upstream=upstream.url)
    echoed = proxy.client.get("/items?id=3").json()
    assert (echoed["path"], echoed["query"], echoed["headers"]["X-Datakit"]) == (
        "/items",
        {"id": "3"},
        "tagged",
    )
    assert proxy.url == f"http://127.0.0.1:{proxy.port}"


def test_datakit_proxy_reports_an_invalid_config_with_mitmdumps_output(
    datakit_proxy, upstream: StubServer
) -> None:
    with pytest.raises(ProxyStartError) as error:
        datakit_proxy({"nodes": [{"name": "X", "type": "nope"}]}, upstream=upstream.url)
    assert "exited with status 1" in str(error.value)
    assert "unknown node type: nope" in str(error.value)


def test_the_plugin_is_registered_for_users_own_test_runs(
    pytester: pytest.Pytester, upstream: StubServer
) -> None:
    # A user's project: no conftest, no import; the fixture comes from the installed package's entry point.
    pytester.makepyfile(
        test_my_flow=f"""
        def test_exit(datakit_proxy):
            proxy = datakit_proxy(
                {{"nodes": [{{"name": "EXIT", "type": "exit", "status": 418}}]}},
                upstream="{upstream.url}",
            )
            assert proxy.client.get("/").status_code == 418
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=1)
