"""mitmweb and headless Chromium for end-to-end tests of what the web UI shows.

- `Mitmweb` is a running `mitmweb -s addon/datakit.py` in reverse mode on 127.0.0.1, started like the harness
  starts mitmdump (same ready marker, same log reader), with its web UI on a free loopback port.
- `chromium()` is Debian's Chromium driven by Debian's chromedriver through Selenium. Selenium is given the
  driver's path, so Selenium Manager (which would try to download a driver and a browser) never runs.
- `open_content_view(...)` clicks through mitmweb 11.0.2's UI as a person would: flow, tab, "View:" menu.
  Its selectors are the markup of mitmweb's bundled frontend (`mitmproxy/tools/web/static/app.js`).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as until
from selenium.webdriver.support.wait import WebDriverWait

from harness import (
    DATAKIT_SCRIPT,
    LOOPBACK,
    MITMDUMP,
    READY_ADDON,
    READY_MARKER,
    Config,
    MitmdumpError,
    _OutputReader,
    _spawn,
    _terminate,
    free_port,
    write_config,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MITMWEB = MITMDUMP.with_name("mitmweb")

# Headless, as root, with no network beyond loopback: no sandbox (root), no GPU, no proxy from the
# environment, and none of the background fetches (updates, sync, field trials) that would try to reach the
# internet. The window size is the docs screenshot's: wide enough for the flow list and the view side by side.
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-proxy-server",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1440,760",
)


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when Chromium and its driver are installed."""
    absent = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if not absent:
        return None
    return f"no {' and no '.join(absent)}: install Debian's chromium and chromium-driver (.ci/run does)"


class Mitmweb:
    """A running mitmweb. Start with `Mitmweb.start(...)`; always `stop()` it."""

    def __init__(
        self, proc: subprocess.Popen[str], reader: _OutputReader, *, proxy_port: int, web_port: int
    ) -> None:
        self._proc = proc
        self._reader = reader
        self.proxy_port = proxy_port
        self.web_port = web_port

    @classmethod
    def start(
        cls,
        config: Config,
        *,
        upstream: str,
        tmp_dir: Path,
        confdir: Path,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 20.0,
    ) -> Mitmweb:
        config_path = write_config(config, tmp_dir)
        proxy_port, web_port = free_port(), free_port()
        cmd = [str(MITMWEB), "-s", str(DATAKIT_SCRIPT), "-s", str(READY_ADDON),
               "--mode", f"reverse:{upstream}", "--listen-host", LOOPBACK, "--listen-port", str(proxy_port),
               "--web-host", LOOPBACK, "--web-port", str(web_port), "--no-web-open-browser",
               "--set", f"confdir={confdir}"]
        if config_path is not None:
            cmd += ["--set", f"datakit_config={config_path}"]
        web = cls(*_spawn(cmd + list(extra_args), env), proxy_port=proxy_port, web_port=web_port)
        web._wait_ready(timeout)
        return web

    def _wait_ready(self, timeout: float) -> None:
        # The web server listens before the `running` hook, so the harness's ready marker (printed once the
        # start-up error check has passed) means both the proxy and the UI are up.
        ready = self._reader.wait_for(lambda out, eof: READY_MARKER in out or eof, timeout)
        if not ready or READY_MARKER not in self.output():
            rc = self.stop()
            raise MitmdumpError(f"mitmweb did not come up (rc={rc}):\n{self.output()}")

    @property
    def proxy_url(self) -> str:
        return f"http://{LOOPBACK}:{self.proxy_port}"

    @property
    def web_url(self) -> str:
        return f"http://{LOOPBACK}:{self.web_port}/"

    def output(self) -> str:
        """mitmweb's log (stdout and stderr merged) so far."""
        return self._reader.text()

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code. Safe to call twice."""
        return _terminate(self._proc, self._reader, timeout)


@contextmanager
def chromium(page_load_timeout: float = 20.0) -> Iterator[webdriver.Chrome]:
    """Headless Debian Chromium with a fresh profile, driven by Debian's chromedriver; quits on exit."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        for arg in (*CHROMIUM_ARGS, f"--user-data-dir={profile}"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.set_page_load_timeout(page_load_timeout)
            yield driver
        finally:
            driver.quit()


def open_content_view(
    driver: webdriver.Chrome,
    web: Mitmweb,
    *,
    path: str,
    tab: str,
    view: str,
    description: str,
    timeout: float = 15.0,
) -> WebElement:
    """Load the UI, click the flow whose URL contains `path`, open `tab` ("Request"/"Response") and pick
    `view` in its "View:" menu. Returns the content view's element once it shows `description` above it."""
    wait = WebDriverWait(driver, timeout)
    driver.get(web.web_url)
    row = f"//div[@class='flow-table']//td[contains(@class, 'col-path')][contains(., '{path}')]"
    wait.until(until.element_to_be_clickable((By.XPATH, row)), f"no flow for {path} in the list").click()
    tab_link = f"//div[@class='flow-detail']/nav/a[normalize-space() = '{tab}']"
    wait.until(until.element_to_be_clickable((By.XPATH, tab_link)), f"no {tab} tab").click()
    contentview = "//div[@class='flow-detail']//div[@class='contentview']"
    selector = (By.XPATH, f"{contentview}//a[.//b = 'View:']")
    wait.until(until.element_to_be_clickable(selector), "no 'View:' menu").click()
    # The menu lists `contentviews.views` by name, lowercased, as /state.json gave them when the page loaded.
    choice = f"{contentview}//ul[contains(@class, 'dropdown-menu')]//a[normalize-space() = '{view.lower()}']"
    wait.until(until.element_to_be_clickable((By.XPATH, choice)), f"no view {view!r} in the menu").click()
    # The lines come from /flows/<id>/<message>/content/<view>.json after the click; the heading above them is
    # the view's description once they are there.
    heading = (By.XPATH, f"{contentview}/div[@class='controls']/h5")
    wait.until(until.text_to_be_present_in_element(heading, description), f"no {description!r} heading")
    return driver.find_element(By.XPATH, contentview)


def text_lines(element: WebElement) -> list[str]:
    """An element's visible text, line by line, runs of spaces collapsed (column padding is not the point)."""
    return [re.sub(r"\s+", " ", line).strip() for line in element.text.splitlines()]
