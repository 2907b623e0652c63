"""The "datakit" content view as a person sees it: a real mitmweb, a flow sent through it, and headless
Chromium clicking through the UI to the view. Also makes the screenshot in docs/debugging.md:

    DATAKIT_UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/e2e/test_mitmweb.py
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import REPO_ROOT, StubServer
from webui import Mitmweb, chromium, missing_browser, open_content_view, text_lines

pytestmark = pytest.mark.skipif(missing_browser() is not None, reason=missing_browser() or "")

DOCS_SCREENSHOT = REPO_ROOT / "docs" / "img" / "mitmweb-datakit-view.png"

# `debug: true` lets the request ask for a trace, so the view has per-node timings to show.
CONFIG = """
debug: true
nodes:
- name: FACT
  type: call
  url: %s/facts/cat
- name: SHAPE
  type: jq
  inputs:
    fact: FACT.body
  jq: '{fact: .fact.text}'
- name: ANSWER
  type: exit
  status: 200
  inputs:
    body: SHAPE
"""


@pytest.fixture
def mitmweb(tmp_path: Path, mitm_confdir: Path) -> Iterator[Callable[..., Mitmweb]]:
    """Factory: `mitmweb(config, *extra_args, upstream=...) -> Mitmweb`; stopped at teardown, log printed."""
    started: list[Mitmweb] = []

    def start(config: str, *extra_args: str, upstream: StubServer) -> Mitmweb:
        started.append(Mitmweb.start(config, upstream=upstream.url, tmp_dir=tmp_path, confdir=mitm_confdir,
                                     extra_args=extra_args))
        return started[-1]

    yield start
    for web in started:
        rc = web.stop()
        print(f"----- mitmweb (rc={rc}) -----\n{web.output()}")


def test_the_datakit_view_shows_the_run_in_mitmweb(mitmweb, stub, upstream, client, tmp_path):
    stub.route("GET", "/facts/cat", json={"text": "Cats sleep 13 to 14 hours a day."})
    # The comment column puts each flow's Datakit summary in the flow list too. A list option takes one
    # value per `--set` ("web_columns=a,b" would be a single column named "a,b").
    columns = [arg for name in ("icon", "path", "method", "status", "time", "comment")
               for arg in ("--set", f"web_columns={name}")]
    web = mitmweb(CONFIG % stub.url, *columns, upstream=upstream)
    answer = client.get(web.proxy_url + "/cat-fact", headers={"X-DataKit-Debug-Trace": "on"})
    assert answer.status_code == 200
    assert len(stub.requests_to("/facts/cat")) == 1

    with chromium() as driver:
        view = open_content_view(driver, web, path="/cat-fact", tab="Response", view="datakit",
                                 description="Datakit run")
        lines = text_lines(view)
        screenshot = tmp_path / "mitmweb-datakit-view.png"
        assert driver.save_screenshot(str(screenshot))

    assert "View: datakit" in lines
    summary = next(line for line in lines if line.startswith("datakit "))
    assert summary.startswith("datakit PLAN_COMPLETE: 3/3 nodes ran in ")
    rows = [line.split() for line in lines if "NODE_" in line]  # start ms, took ms, status, name, (type)
    assert [row[2:] for row in rows] == [
        ["NODE_COMPLETE", "FACT", "(call)"],
        ["NODE_COMPLETE", "SHAPE", "(jq)"],
        ["NODE_COMPLETE", "ANSWER", "(exit)"],
    ]
    assert all(float(row[0]) >= 0 and float(row[1]) >= 0 for row in rows)  # the trace's timings
    assert 'output: {"fact":"Cats sleep 13 to 14 hours a day."}' in lines
    if os.environ.get("DATAKIT_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)
