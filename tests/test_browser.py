"""The dashboard in a real headless Chromium, served by a real `streamlit run`.

Uses Debian's chromium through Playwright's `executable_path` (never `playwright install`).
Skipped only on a machine without /usr/bin/chromium outside CI; CI installs it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(
        f"{CHROMIUM} is missing (apt-get install chromium); CI always runs these tests",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

pytestmark = pytest.mark.browser

# Generous: these bound a hang, not a speed; a cold first run imports pandas and pyarrow.
SERVER_START_S = 60
PAGE_MS = 60_000

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The dashboard served by `streamlit run app.py`; yields its URL."""
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    # The server's output goes to a file CI keeps, so a failure here can be read later.
    with (ARTIFACTS / "streamlit-server.log").open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
                "--server.address",
                "127.0.0.1",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Block until the server answers its health check, or fail with its log."""
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}; see {ARTIFACTS}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"streamlit did not answer /_stcore/health within {SERVER_START_S} s")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    """A fresh tab, wide enough for the six summary cards in one row and tall enough for
    the whole Run page: the data grids paint only what is in the viewport, so a shorter
    one cuts the bottom table off the screenshot."""
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    tab = context.new_page()
    tab.set_default_timeout(PAGE_MS)
    tab.goto(server)
    try:
        yield tab
    finally:
        context.close()


def wait_idle(page: Page) -> None:
    """Wait until the app is connected, its script has finished and nothing is loading."""
    page.wait_for_selector(
        "[data-testid='stApp'][data-test-connection-state='CONNECTED']"
        "[data-test-script-state='notRunning']"
    )
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stSkeleton']\").length === 0")


def settle(page: Page) -> None:
    """Wait until the page's height stops changing (tables grow after the script ends)."""
    page.wait_for_function(
        """() => new Promise(done => {
            const box = document.querySelector("[data-testid='stMainBlockContainer']");
            const before = box.getBoundingClientRect().height;
            setTimeout(() => done(box.getBoundingClientRect().height === before), 300);
        })"""
    )


def metric(page: Page, label: str) -> str:
    """The value shown on the summary card with this label."""
    card = page.locator("[data-testid='stMetric']").filter(
        has=page.locator("[data-testid='stMetricLabel']", has_text=label)
    )
    return card.locator("[data-testid='stMetricValue']").inner_text().strip()


def cards(page: Page) -> list[str]:
    """Every summary card's value, in order."""
    return [v.strip() for v in page.locator("[data-testid='stMetricValue']").all_inner_texts()]


def heading(page: Page) -> str:
    """The summary's heading: `scenario · seed N`."""
    return page.locator("[data-testid='stHeading'] h3").first.inner_text().strip()


def test_run_page_runs_another_scenario(page: Page) -> None:
    page.wait_for_selector("[data-testid='stMetricValue']")
    wait_idle(page)
    assert page.locator("[data-testid='stException']").count() == 0
    first_heading = heading(page)
    before = cards(page)
    assert len(before) == 6
    assert int(metric(page, "Requests").replace(",", "")) > 0

    # Another scenario when the repo ships more than one; otherwise another seed of the
    # same one. Either way the summary must change.
    selectbox = page.locator("[data-testid='stSelectbox']")
    selectbox.click()
    options = page.locator("[role='option']")
    current = first_heading.split(" · ")[0]
    others = [t.strip() for t in options.all_inner_texts() if t.strip() != current]
    if others:
        options.filter(has_text=others[0]).first.click()
        wait_idle(page)
    else:
        page.keyboard.press("Escape")
        seed = page.locator("[data-testid='stNumberInput'] input")
        seed.fill(str(int(seed.input_value()) + 1))
        seed.press("Enter")
        wait_idle(page)
    # Picking alone does not run: the summary still shows the first run.
    assert heading(page) == first_heading

    page.get_by_role("button", name="Run").click()
    page.wait_for_function(
        "h => { const e = document.querySelector(\"[data-testid='stHeading'] h3\");"
        " return e && e.innerText.trim() !== h; }",
        arg=first_heading,
    )
    wait_idle(page)

    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    assert cards(page) != before
    expected = others[0] if others else current
    assert heading(page).startswith(f"{expected} · seed ")
    assert page.get_by_text("Messages by outcome").is_visible()

    settle(page)
    page.locator("[data-testid='stMainBlockContainer']").screenshot(path=ARTIFACTS / "run.png")
