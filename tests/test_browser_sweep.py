"""The Compare page's sweep views in a real headless Chromium (see tests/test_browser.py
for the recipe: Debian's chromium through Playwright, a real `streamlit run`); the tiny
sweep's rows are tests/conftest.py's."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page

from sim import sweeps as sw

# The server, browser and page fixtures and the waiting helpers are test_browser's; it
# skips the module when chromium is missing outside CI.
from tests.test_browser import (  # noqa: F401  (fixtures are used by name)
    CHARTS,
    browser,
    charts_rendered,
    exceptions,
    go_to,
    page,
    server,
    shoot,
    wait_idle,
)

pytestmark = pytest.mark.browser


def test_the_compare_page_draws_a_saved_sweep(
    page: Page,  # noqa: F811
    tmp_path: Path,
    tiny_rows: pd.DataFrame,
) -> None:
    saved = sw.save(tiny_rows, tmp_path / "tiny")
    page.wait_for_selector("[data-testid='stMetricValue']")
    wait_idle(page)
    go_to(page, "compare")

    segments = page.locator("[data-testid='stButtonGroup'] button")
    segments.filter(has_text="sweeps").click()
    wait_idle(page)
    segments.filter(has_text="saved sweep").click()
    wait_idle(page)
    field = page.get_by_label("Sweep directory", exact=True)
    field.fill(str(saved))
    page.get_by_role("button", name="Open sweep", exact=True).click()
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll(\"[data-testid='stHeading'] h3\"))"
        ".some(e => e.innerText.startsWith('tiny · 16 runs'))"
    )
    wait_idle(page)

    assert charts_rendered(page) == 2  # the sweep view and the advisor's evidence
    assert exceptions(page) == 0
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    legend = page.locator(f"{CHARTS} .legendtext").all_text_contents()
    assert {"http p99", "queue p99"} <= set(legend)
    titles = page.locator(f"{CHARTS} .annotation-text").all_text_contents()
    assert "faults: none" in titles and "faults: partition" in titles
    assert page.locator(f"{CHARTS} .main-svg").first.is_visible()
    shoot(page, "compare-sweep")
