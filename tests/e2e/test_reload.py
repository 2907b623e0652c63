"""Live changes through a real mitmdump: the watched file, `datakit.reload`, `:set datakit_config`,
and a change under steady traffic where no request fails or is served by two versions at once."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from harness import StubResponse

DEAD = "http://127.0.0.1:1"

# Stands in for an operator at mitmproxy's console: `/__reload` runs the `datakit.reload` command,
# `/__set?path=...` does `:set datakit_config=...`. It runs before Datakit, like a console would.
CONTROL_SCRIPT = """
from mitmproxy import ctx, exceptions, http
from mitm_datakit.proxy.addon import Datakit


class Console:
    def request(self, flow):
        if flow.request.path == "/__reload":
            ctx.master.commands.call("datakit.reload")
            flow.response = http.Response.make(204)
        elif flow.request.path.startswith("/__set"):
            try:
                ctx.options.update(datakit_config=flow.request.query["path"])
            except exceptions.OptionsError as e:
                flow.response = http.Response.make(400, str(e))
            else:
                flow.response = http.Response.make(204)


addons = [Console(), Datakit()]
"""


def versioned(upstream_url: str, version: str) -> dict[str, Any]:
    """A routing file whose plugin stamps its version on the way in and on the way out.

    The way-out stamp comes from a node that runs after the upstream answered: a flow that started
    on one version and finished on another would carry two different stamps.
    """
    config = {
        "nodes": [
            {"name": "V", "type": "static", "values": {"version": version}},
            {
                "name": "IN",
                "type": "jq",
                "input": "V.version",
                "jq": '{"X-Version-In": .}',
                "output": "service_request.headers",
            },
            {
                "name": "OUT",
                "type": "jq",
                "inputs": {"v": "V.version", "status": "service_response.status"},
                "jq": '{"X-Version-Out": .v}',
                "output": "response.headers",
            },
        ]
    }
    return {
        "_format_version": "3.0",
        "services": [{"name": "s", "url": upstream_url, "routes": [{"name": "r", "paths": ["/"]}]}],
        "plugins": [{"name": "datakit", "config": config}],
    }


def write_atomically(path: Path, document: dict[str, Any] | str) -> None:
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text)
    temp.replace(path)


def version_of(client: httpx.Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return response.headers["X-Version-Out"]


@pytest.fixture
def control_script(tmp_path: Path) -> Path:
    path = tmp_path / "console_then_datakit.py"
    path.write_text(CONTROL_SCRIPT)
    return path


def test_a_changed_file_is_loaded_for_new_flows(mitmdump, upstream, client):
    proxy = mitmdump(versioned(upstream.url, "v1"), upstream=DEAD)
    assert version_of(client, proxy.url + "/") == "v1"
    write_atomically(proxy.config_path, versioned(upstream.url, "v2"))
    proxy.wait_for_output(r"datakit: loaded .*\n(.|\n)*datakit: loaded ")
    assert version_of(client, proxy.url + "/") == "v2"


def test_an_invalid_new_version_is_a_warning_and_the_last_good_one_keeps_serving(mitmdump, upstream, client):
    proxy = mitmdump(versioned(upstream.url, "v1"), upstream=DEAD)
    broken = versioned(upstream.url, "v2")
    broken["plugins"][0]["config"]["nodes"][1]["jq"] = "{oops:"
    write_atomically(proxy.config_path, broken)
    proxy.wait_for_output(
        r"file changed: .* was not loaded, the previous config keeps serving:\n"
        r"plugins\.1\.config \(global datakit plugin\): node #2 \(IN\), field 'jq': invalid jq program"
    )
    assert version_of(client, proxy.url + "/") == "v1"
    write_atomically(proxy.config_path, versioned(upstream.url, "v3"))
    proxy.wait_for_output(r"datakit: loaded (.|\n)*datakit: loaded ")
    assert version_of(client, proxy.url + "/") == "v3"
    assert "Traceback" not in proxy.output()


def test_the_reload_command_reloads_now(mitmdump, upstream, client, control_script):
    proxy = mitmdump(versioned(upstream.url, "v1"), upstream=DEAD, script=control_script)
    path = proxy.config_path
    before = os.stat(path)
    # Same length, same inode, same mtime: a change the watcher cannot see, so only the command loads it.
    with open(path, "r+") as f:
        text = f.read()
        f.seek(0)
        f.write(text.replace("v1", "v9"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert version_of(client, proxy.url + "/") == "v1"
    assert client.get(proxy.url + "/__reload").status_code == 204
    assert version_of(client, proxy.url + "/") == "v9"


def test_set_datakit_config_switches_files_and_refuses_a_bad_one(
    mitmdump, upstream, client, control_script, tmp_path
):
    proxy = mitmdump(versioned(upstream.url, "v1"), upstream=DEAD, script=control_script)
    other, bad = tmp_path / "other.yaml", tmp_path / "bad.yaml"
    write_atomically(other, versioned(upstream.url, "other"))
    write_atomically(bad, "_format_version: '3.0'\nroutes: [{name: r}]\n")
    refused = client.get(proxy.url + "/__set", params={"path": str(bad)})
    assert refused.status_code == 400 and "must set one of 'methods'" in refused.text
    assert version_of(client, proxy.url + "/") == "v1"
    assert client.get(proxy.url + "/__set", params={"path": str(other)}).status_code == 204
    assert version_of(client, proxy.url + "/") == "other"
    # From now on the new file is the watched one.
    write_atomically(other, versioned(upstream.url, "other-2"))
    proxy.wait_for_output(r"loaded .*other\.yaml(.|\n)*loaded .*other\.yaml")
    assert version_of(client, proxy.url + "/") == "other-2"


def test_a_change_under_steady_traffic_loses_nothing_and_mixes_nothing(mitmdump, upstream):
    # The upstream echoes the version the access phase stamped, and takes a while: flows are in flight.
    upstream.route(
        "GET",
        "/load",
        handler=lambda req: StubResponse(
            headers={"X-Echo-Version": req.header("X-Version-In") or ""}, json={"ok": True}, delay=0.02
        ),
    )
    proxy = mitmdump(versioned(upstream.url, "v1"), upstream=DEAD)
    outcomes: list[tuple[int, str, str]] = []  # (status, version on the way in, version on the way out)
    lock, stop = threading.Lock(), threading.Event()

    def traffic() -> None:
        with httpx.Client(trust_env=False, timeout=10) as c:
            for _ in range(400):  # bounded, whatever happens
                if stop.is_set():
                    return
                response = c.get(proxy.url + "/load")
                with lock:
                    outcomes.append(
                        (
                            response.status_code,
                            response.headers.get("X-Echo-Version", ""),
                            response.headers.get("X-Version-Out", ""),
                        )
                    )

    def wait_for(count: int) -> None:
        for _ in range(3000):  # 30 s at most
            if len(outcomes) >= count or not any(w.is_alive() for w in workers):
                return
            stop.wait(0.01)

    workers = [threading.Thread(target=traffic) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        wait_for(40)
        write_atomically(proxy.config_path, versioned(upstream.url, "v2"))
        proxy.wait_for_output(r"datakit: loaded (.|\n)*datakit: loaded ", timeout=10)
        wait_for(len(outcomes) + 40)
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)

    assert all(status == 200 for status, _, _ in outcomes), Counter(status for status, _, _ in outcomes)
    assert all(way_in == way_out for _, way_in, way_out in outcomes), [o for o in outcomes if o[1] != o[2]]
    versions = [way_out for _, _, way_out in outcomes]
    assert set(versions) == {"v1", "v2"}
    # Once a flow started on v2, none started on v1 again (in each worker's order, which is start order).
    assert versions.count("v1") >= 40 and "v1" not in versions[versions.index("v2") + 4 * 2 :]
