"""Every page on the built-in scenarios, and bad input, in a real headless Chromium.

Walks each page on a run of a built-in scenario and asserts what a user would see go
wrong: an uncaught-exception box, a traceback's text, an error the browser's console
logged from the app, or a chart that never drew. Then feeds the Run page bad input (a
malformed scenario uploaded, a broken edit, a run directory that does not exist) and
checks it says so in one sentence and keeps the run on screen.

By default it walks one scenario picked on the Run page (a poison queue and its dead
letters); `SWITCHBOARD_WALK_ALL=1` walks every built-in the dashboard offers but `large`
and `retry-storm` (about ten minutes). Server, browser and page fixtures and the page
helpers are tests/test_browser.py's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.test_browser as tb
from sim import loading
from tests.test_browser import (
    PAGES,
    charts_rendered,
    exceptions,
    go_to,
    heading,
    metric,
    run_button,
    wait_idle,
)

pytestmark = pytest.mark.browser

# The server and browser fixtures of tests/test_browser.py (one server per module).
server = tb.server
browser = tb.browser

# The committed walk: a poison queue with its dead letters, picked and run from the Run
# page (tests/test_browser.py walks the default run's pages). The whole walk is
# SWITCHBOARD_WALK_ALL=1.
COMPACT = ["fault-poison"]
# Too slow for a walk of every page inside a test: `large` has a test of its own
# (tests/test_browser.py), `retry-storm` simulates 330k messages.
SLOW = {"large", "retry-storm"}
WALKED = (
    [n for n in loading.builtin_names() if n not in SLOW]
    if os.environ.get("SWITCHBOARD_WALK_ALL")
    else COMPACT
)

# Console errors that are the browser's, not the app's. Seen on these machines: the
# page icon that Streamlit fetches from fonts.gstatic.com ("Failed to load resource:
# net::ERR_NAME_NOT_RESOLVED": no internet here); the others are what Chromium without a
# GPU may say when plotly asks for WebGL. A resource of the app's own server that fails
# to load is not noise.
NOISE = ("WebGL", "GPU stall", "GroupMarkerNotSet")


class Console:
    """Error-level console messages and uncaught page errors of one tab."""

    def __init__(self, page: Any, server: str) -> None:
        self.server = server
        self.errors: list[str] = []
        self.ignored: list[str] = []  # the browser's noise, kept to be looked at
        page.on("console", self._message)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _message(self, message: Any) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        elsewhere = url.startswith("http") and not url.startswith(self.server)
        fetched = "Failed to load resource" in message.text and elsewhere
        noise = fetched or any(n in message.text for n in NOISE)
        (self.ignored if noise else self.errors).append(f"{message.text} ({url})")


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    """A fresh tab on the dashboard (as tests/test_browser.py's), its console watched:
    `page.console.errors` lists what the app logged at error level."""
    context = browser.new_context(viewport={"width": 1400, "height": 2200})
    tab = context.new_page()
    tab.set_default_timeout(tb.PAGE_MS)
    tab.console = Console(tab, server)
    tab.goto(server)
    try:
        yield tab
    finally:
        context.close()


def no_failure_shown(page: Any, where: str) -> None:
    """Nothing on screen or in the console says the app failed."""
    assert exceptions(page) == 0, where
    text = page.locator("[data-testid='stMain']").inner_text()
    assert "Traceback" not in text, where
    assert page.console.errors == [], (where, page.console.errors)


def errors_shown(page: Any) -> list[str]:
    """The text of every error box on the page."""
    return page.locator("[data-testid='stAlertContentError']").all_inner_texts()


def pick_and_run(page: Any, name: str) -> None:
    """Pick a built-in scenario, run it, wait until its summary is on screen."""
    scenario = loading.load(name)
    page.locator("[data-testid='stSelectbox']").first.click()
    page.keyboard.type(name)  # the list is virtualised: type to find it
    page.locator("[role='option']").get_by_text(name, exact=True).click()
    # The pick's rerun puts the scenario's description under the picker; Run before
    # that would run the previous scenario.
    description = " ".join(scenario.description.split())[:40]
    page.locator("[data-testid='stCaptionContainer']").filter(has_text=description).wait_for()
    wait_idle(page)
    run_button(page).click()
    page.wait_for_function(
        "n => { const e = document.querySelector(\"[data-testid='stHeading'] h3\");"
        " return e && e.innerText.startsWith(n + ' · seed'); }",
        arg=scenario.name,
        timeout=tb.LARGE_MS,
    )
    wait_idle(page, tb.LARGE_MS)


@pytest.mark.parametrize("name", WALKED)
def test_every_page_on_a_builtin_scenario(page: Any, name: str) -> None:
    page.wait_for_selector("[data-testid='stMetricValue']")
    wait_idle(page)
    if heading(page).split(" · ")[0] != loading.load(name).name:
        pick_and_run(page, name)
    no_failure_shown(page, f"{name}: run")
    assert errors_shown(page) == [], name
    for where in PAGES:
        go_to(page, where, tb.LARGE_MS)  # waits until every chart has drawn its SVG
        no_failure_shown(page, f"{name}: {where}")
        if where in ("replay", "topology"):  # drawn for any run
            assert charts_rendered(page) >= 1, (name, where)
    go_to(page, "run")
    no_failure_shown(page, f"{name}: back on run")
    hosts = sorted({line.rsplit("(", 1)[-1].split("/")[2] for line in page.console.ignored})
    print(f"\n{name}: {len(page.console.ignored)} console errors of the browser's ignored {hosts}")


def open_editor(page: Any) -> None:
    """Unfold the Run page's 'Scenario file' expander (the editor and the uploader)."""
    expander = page.locator("[data-testid='stExpander']").filter(has_text="Scenario file")
    if not page.get_by_label("Scenario (YAML or JSON)", exact=True).is_visible():
        expander.locator("summary").click()
    page.get_by_label("Scenario (YAML or JSON)", exact=True).wait_for()


def upload(page: Any, name: str, data: bytes) -> None:
    """Upload a file through the Run page's scenario uploader; wait for its rerun."""
    open_editor(page)
    uploader = page.locator("[data-testid='stFileUploader']").filter(
        has_text="Upload a scenario file"
    )
    uploader.locator("input[type='file']").set_input_files(
        {"name": name, "mimeType": "application/x-yaml", "buffer": data}
    )
    page.locator("[data-testid='stFileChip']").filter(has_text=name).wait_for()
    wait_idle(page)


BROKEN: dict[str, tuple[bytes, str]] = {
    # name: (the file's bytes, what its one sentence says)
    "binary.yaml": (bytes(range(256)) * 4, "is not UTF-8 text"),
    "list.json": (b'[{"name": "x"}]', "must be a mapping of sections"),
    "unhashable.yaml": (
        b"name: x\nduration: 10\nagents: [{id: a, role: client}, {id: b}]\n"
        b"channels: [{from: a, to: [b]}]\n",
        "channels.0.to: must be a string, got a list",
    ),
}


def test_bad_input_is_one_sentence_and_the_run_stays(page: Any, tmp_path: Path) -> None:
    page.wait_for_selector("[data-testid='stMetricValue']")
    wait_idle(page)
    before = (heading(page), metric(page, "Requests"))

    for name, (data, sentence) in BROKEN.items():
        upload(page, name, data)
        # The rerun after the upload says why the file was refused, or times out.
        page.locator("[data-testid='stAlert']").filter(has_text=sentence).wait_for()
        wait_idle(page)
        no_failure_shown(page, name)
        assert (heading(page), metric(page, "Requests")) == before, name

    # Run with the broken scenario in the editor: nothing runs, the run stays.
    run_button(page).click()
    page.locator("[data-testid='stAlertContentError']").filter(has_text="Not run").wait_for()
    wait_idle(page)
    no_failure_shown(page, "run pressed on a broken scenario")
    assert (heading(page), metric(page, "Requests")) == before

    # A saved run that is not there: one sentence, the run stays.
    expander = page.locator("[data-testid='stExpander']").filter(has_text="Open a saved run")
    field = page.get_by_label("Run directory", exact=True)
    if not field.is_visible():
        expander.locator("summary").click()
    field.fill(str(tmp_path / "no-such-run"))
    page.get_by_role("button", name="Open run", exact=True).click()
    page.locator("[data-testid='stAlertContentError']").filter(has_text="no-such-run").wait_for()
    wait_idle(page)
    no_failure_shown(page, "a saved run that is not there")
    assert (heading(page), metric(page, "Requests")) == before
    go_to(page, "replay")  # the run on screen still draws
    no_failure_shown(page, "after bad input: replay")
