"""A2A tasks and real traces in a real headless Chromium (issues 15 and 17): the task
bands drawn and hovered on Replay; a trace file opened by upload; a live receiver
followed as spans arrive. Server, browser and page fixtures and the page helpers are
tests/test_browser.py's."""

from __future__ import annotations

import gzip
import urllib.error
from pathlib import Path
from typing import Any

import pytest

import sim
import tests.test_browser as tb
from sim.otlp import otlp_json
from tests.test_app_tasks import otlp_request, post
from tests.test_browser import CHARTS, exceptions, go_to, shoot, wait_idle
from tests.test_browser_story import open_a_saved_run

pytestmark = pytest.mark.browser

server = tb.server
browser = tb.browser
page = tb.page

# The graph div of the chart holding a trace of this name.
FIND_CHART = f"""name => Array.from(document.querySelectorAll("{CHARTS} .js-plotly-plot"))
    .find(gd => (gd._fullData || []).some(t => t.name === name))"""


def band_centre(page: Any, state: str, i: int = 0) -> dict[str, float]:
    """Page coordinates of the middle of band `i` of the bar trace named `state`."""
    return page.evaluate(
        f"""([state, i]) => {{
            const gd = ({FIND_CHART})(state);
            const t = gd._fullData.find(t => t.name === state);
            const box = gd.getBoundingClientRect();
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            return {{x: box.left + xa._offset + xa.l2p(t.base[i] + t.x[i] / 2),
                     y: box.top + ya._offset + ya.d2p(t.y[i])}};
        }}""",
        [state, i],
    )


def test_task_bands_are_drawn_on_replay_and_say_why_on_hover(page: Any, tmp_path: Path) -> None:
    run = sim.run("a2a-long-task")
    folder = run.save(tmp_path / "a2a")
    wait_idle(page)
    open_a_saved_run(page, folder, "a2a-long-task")
    go_to(page, "replay")
    assert exceptions(page) == 0
    heading = page.get_by_role("heading", name="A2A tasks")
    heading.scroll_into_view_if_needed()
    drawn = page.evaluate(f"() => ({FIND_CHART})('input-required')._fullData.map(t => t.name)")
    assert {"working", "input-required", "completed"} <= set(drawn)
    # The chart's own SVG has the hatched bars of the waits for input.
    chart = page.locator(CHARTS).filter(has=page.locator(".legendtext", has_text="input-required"))
    assert chart.locator("pattern").count() >= 1
    spot = band_centre(page, "input-required")
    page.mouse.move(spot["x"], spot["y"])
    label = page.locator(".hoverlayer .hovertext").first
    label.wait_for()
    text = label.text_content() or ""
    assert "input-required" in text and "asks its client for input" in text
    assert "task m" in text
    assert page.get_by_text("Tasks", exact=True).is_visible()
    shoot(page, "replay-tasks")


def upload_trace(page: Any, path: Path) -> None:
    """Give the Run page's trace uploader a file."""
    expander = page.locator("[data-testid='stExpander']").filter(has_text="Open a saved run")
    box = page.locator("[data-testid='stFileUploader']").filter(has_text="Or open a trace file")
    if not box.is_visible():
        expander.locator("summary").click()
    box.locator("input[type='file']").set_input_files(str(path))


def test_a_trace_file_opens_by_upload_and_a_bad_one_says_why(page: Any, tmp_path: Path) -> None:
    wait_idle(page)
    before = tb.heading(page)
    bad = tmp_path / "notes.json"
    bad.write_text('{"hello": 1}')
    upload_trace(page, bad)
    alert = page.locator("[data-testid='stAlertContentError']")
    alert.wait_for()
    wait_idle(page)
    assert "notes.json is not a trace this reads" in alert.inner_text()
    assert tb.heading(page) == before and exceptions(page) == 0

    good = tmp_path / "a2a.otlp.json.gz"
    good.write_bytes(gzip.compress(otlp_json(sim.run("a2a-long-task")).encode()))
    upload_trace(page, good)
    page.wait_for_function(
        "() => { const e = document.querySelector(\"[data-testid='stHeading'] h3\");"
        " return e && e.innerText.trim() === 'a2a-long-task · imported trace'; }"
    )
    wait_idle(page)
    assert exceptions(page) == 0 and alert.count() == 0
    shoot(page, "run-imported-trace")


def sidebar_has(page: Any, text: str, timeout: float = 30_000) -> None:
    """Wait until the sidebar says `text` (the live fragment ticks every few seconds)."""
    page.wait_for_function(
        "t => { const s = document.querySelector(\"[data-testid='stSidebar']\");"
        " return s && s.innerText.includes(t); }",
        arg=text,
        timeout=timeout,
    )


def test_a_receiver_started_on_the_page_is_followed_live(page: Any) -> None:
    wait_idle(page)
    expander = page.locator("[data-testid='stExpander']").filter(has_text="Follow a live trace")
    expander.locator("summary").click()
    port = page.get_by_label("Or start a receiver here, on port", exact=True)
    port.fill("0")
    page.get_by_role("button", name="Start receiver").click()
    address = page.locator("code", has_text="http://127.0.0.1:").first
    address.wait_for()
    url = address.inner_text().strip()
    assert url.endswith("/v1/traces")
    sidebar_has(page, "0 requests, 0 spans, 0 traces")

    assert post(url, otlp_request(1, 3)) == 200
    assert post(url, otlp_request(2, 2)) == 200
    sidebar_has(page, "2 requests, 5 spans, 2 traces")  # no click: the page followed
    page.wait_for_function(
        "() => { const e = document.querySelector(\"[data-testid='stHeading'] h3\");"
        " return e && e.innerText.includes('(live) · imported trace'); }"
    )
    assert post(url, otlp_request(3, 4)) == 200
    sidebar_has(page, "3 requests, 9 spans, 3 traces")
    wait_idle(page)
    assert exceptions(page) == 0
    shoot(page, "run-live")

    page.locator("[data-testid='stSidebar']").get_by_role("button", name="Stop following").click()
    page.wait_for_function(
        "() => !document.querySelector(\"[data-testid='stSidebar']\").innerText.includes('Live:')"
    )
    with pytest.raises(urllib.error.URLError):
        post(url, otlp_request(4, 1))
