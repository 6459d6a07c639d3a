"""The failure story in a real headless Chromium (issue 16): what only a browser shows.

Failure markers drawn and clickable, the causal highlight, Compare's matched requests,
the overview (per agent and per link) on a 1,000,000-message run and zooming the
diagram into a stretch of it (its seconds measured into test-artifacts/overview-1m.json,
never asserted), arrows past 2,000 drawn as SVG lines, Stop during a run keeping the
previous one and leaving no bar behind, playback frame intervals (measured into
test-artifacts/playback.json, never asserted), and the window played in the browser by
the chart's own Play window with no rerun (intervals into playback-client.json). Server, browser and page fixtures and
the page helpers are tests/test_browser.py's.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

import sim
import tests.test_browser as tb
from sim import loading
from sim.trace import Run, conform
from tests.test_browser import (
    ARTIFACTS,
    CHARTS,
    LARGE_MS,
    charts_rendered,
    click_slider,
    exceptions,
    go_to,
    heading,
    run_button,
    shoot,
    slider_value,
    wait_idle,
)

pytestmark = pytest.mark.browser

# The server, browser and page fixtures of tests/test_browser.py (one server per module).
server = tb.server
browser = tb.browser
page = tb.page

MILLION = 1_000_000


def plot(page: Any, index: int = 0) -> str:
    """A JS expression for the `index`-th plotly chart's graph div."""
    return f'document.querySelectorAll("{CHARTS} .js-plotly-plot")[{index}]'


def names(page: Any, index: int = 0) -> list[str]:
    """The names of a chart's traces as plotly.js drew them."""
    return page.evaluate(f"() => {plot(page, index)}._fullData.map(t => t.name)")


def point_on(page: Any, trace: str, i: int, index: int = 0) -> dict[str, float]:
    """Page coordinates of point `i` of the trace named `trace` on a chart."""
    return page.evaluate(
        """([sel, index, name, i]) => {
            const gd = document.querySelectorAll(sel)[index];
            const t = gd._fullData.find(t => t.name === name);
            const box = gd.getBoundingClientRect();
            const xa = gd._fullLayout[t.xaxis === 'x' ? 'xaxis' : 'xaxis' + t.xaxis.slice(1)];
            const ya = gd._fullLayout[t.yaxis === 'y' ? 'yaxis' : 'yaxis' + t.yaxis.slice(1)];
            return {x: box.left + xa._offset + xa.l2p(t.x[i]),
                    y: box.top + ya._offset + ya.l2p(t.y[i])};
        }""",
        [f"{CHARTS} .js-plotly-plot", index, trace, i],
    )


def arrows_drawn(page: Any) -> int:
    """How many message arrows the space-time diagram (the first chart) draws: its
    `lines+markers` traces hold one `start, end, None` triple per arrow."""
    return int(
        page.evaluate(
            f"""() => {plot(page)}._fullData
                .filter(t => t.mode === 'lines+markers' && t.name !== 'selected')
                .reduce((n, t) => n + t.x.length / 3, 0)"""
        )
    )


def drag_across(page: Any, t0: float, t1: float) -> None:
    """Pick Box select in the space-time diagram's toolbar and drag across it from time
    `t0` to `t1` (seconds)."""
    chart = page.locator(CHARTS).first
    chart.scroll_into_view_if_needed()
    chart.hover()  # the toolbar shows on hover
    chart.locator(".modebar-btn[data-attr='dragmode'][data-val='select']").click()
    page.wait_for_function(f"() => {plot(page)}._fullLayout.dragmode === 'select'")
    box = page.evaluate(
        f"""([t0, t1]) => {{ const gd = {plot(page)};
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const r = gd.getBoundingClientRect();
            return {{x0: r.left + xa._offset + xa.l2p(t0), x1: r.left + xa._offset + xa.l2p(t1),
                     y: r.top + ya._offset + ya._length / 2}}; }}""",
        [t0, t1],
    )
    page.mouse.move(box["x0"], box["y"])
    page.mouse.down()
    page.mouse.move((box["x0"] + box["x1"]) / 2, box["y"], steps=5)
    page.mouse.move(box["x1"], box["y"], steps=5)
    page.mouse.up()


def open_a_saved_run(page: Any, folder: Path, name: str) -> None:
    """Open a saved run directory from the Run page and wait for its summary."""
    expander = page.locator("[data-testid='stExpander']").filter(has_text="Open a saved run")
    field = page.get_by_label("Run directory", exact=True)
    if not field.is_visible():
        expander.locator("summary").click()
    field.fill(str(folder))
    field.press("Enter")  # the field and its button are a form: Enter opens the run
    try:
        page.wait_for_function(
            "n => { const e = document.querySelector(\"[data-testid='stHeading'] h3\");"
            " return e && e.innerText.startsWith(n); }",
            arg=name,
            timeout=LARGE_MS,
        )
    except PlaywrightTimeout:
        # Say what the page showed instead, so a failure in CI can be read from its log.
        app = page.locator("[data-testid='stApp']")
        shown = {
            "heading": page.locator("[data-testid='stHeading'] h3").first.inner_text(),
            "alerts": page.locator("[data-testid='stAlertContainer']").all_inner_texts(),
            "script": app.get_attribute("data-test-script-state"),
            "connection": app.get_attribute("data-test-connection-state"),
            "field": field.input_value(),
        }
        raise AssertionError(f"{folder} did not open: the page shows {shown}") from None
    wait_idle(page, LARGE_MS)
    assert exceptions(page) == 0


@pytest.fixture(scope="module")
def chain_run() -> Run:
    """timeout-chain: C slows from 30 s to 60 s and the timeouts cascade."""
    return sim.run("timeout-chain")


def test_failures_are_drawn_where_they_happened_and_link_to_cascades(
    page: Any, tmp_path: Path, chain_run: Run
) -> None:
    page.wait_for_selector("[data-testid='stMetricValue']")
    wait_idle(page)
    open_a_saved_run(page, chain_run.save(tmp_path / "timeout-chain"), "timeout-chain")
    go_to(page, "replay")
    # Jump to the first failure (the overview is folded on a run this small).
    page.locator("[data-testid='stExpander']").filter(has_text="Overview of the whole run").locator(
        "summary"
    ).click()
    page.get_by_role("button", name="First failure").click()
    wait_idle(page)
    charts_rendered(page)
    gave_up = "caller gave up (timeout, deadline)"
    page.wait_for_function(f"n => {plot(page)}._fullData.some(t => t.name === n)", arg=gave_up)
    drawn = names(page)
    assert gave_up in drawn and "5xx answer" in drawn
    # Markers are SVG points with their labels (timeout, 502...) in the diagram.
    labels = page.locator(f"{CHARTS} .textpoint").all_text_contents()
    assert "timeout" in labels or "502" in labels or "504" in labels
    shoot(page, "readme-failures")

    # Click a "caller gave up" marker: its trace's root causes, and a way to Cascades.
    head = point_on(page, gave_up, 0)
    page.mouse.click(head["x"], head["y"])
    box = page.locator("[data-testid='stAlert']").filter(has_text="What went wrong in trace")
    box.wait_for()
    assert "gave up on" in box.inner_text()
    trace = box.inner_text().split("What went wrong in trace ")[1].split()[0]
    page.get_by_role("button", name=f"Open {trace} on Cascades").click()
    page.wait_for_function(
        "() => { const h = document.querySelector('h1'); return h && h.innerText.trim() === 'Cascades'; }"
    )
    wait_idle(page)
    charts_rendered(page)
    assert exceptions(page) == 0
    assert page.locator("[data-testid='stAlert']").filter(has_text="What went wrong").count() == 1
    title = page.locator(f"{CHARTS} .gtitle").first.text_content()
    assert title == f"trace {trace}"


def test_a_picked_message_lights_its_causal_thread(
    page: Any, tmp_path: Path, chain_run: Run
) -> None:
    page.wait_for_selector("[data-testid='stMetricValue']")
    wait_idle(page)
    open_a_saved_run(page, chain_run.save(tmp_path / "timeout-chain"), "timeout-chain")
    go_to(page, "replay")
    drawn = page.evaluate(f"() => {plot(page)}._fullData.find(t => t.name === 'http').x.length")
    i = 3 * (drawn // 6) + 1  # an arrival half-way through
    head = point_on(page, "http", i)
    page.mouse.move(head["x"], head["y"])
    page.mouse.click(head["x"], head["y"])
    page.wait_for_function(
        f"() => {plot(page)}._fullData.some(t => t.name === 'happened before' "
        "|| t.name === 'happened after')"
    )
    wait_idle(page)
    drawn_names = names(page)
    assert "selected" in drawn_names
    faded = page.evaluate(f"() => {plot(page)}._fullData.find(t => t.name === 'http').opacity")
    assert faded < 0.5  # everything else fades
    assert exceptions(page) == 0
    shoot(page, "readme-causal")


def longer_timeouts(folder: Path) -> Path:
    """timeout-chain where A and B wait long enough: the requests A lost, B keeps."""
    data = loading.read_data(loading.builtin_path("timeout-chain"))
    data["channels"][0]["timeout"] = 60
    data["channels"][1]["timeout"] = 30
    return sim.run(data).save(folder)


def test_compare_matches_the_same_requests(page: Any, tmp_path: Path, chain_run: Run) -> None:
    page.wait_for_selector("[data-testid='stMetricValue']")
    wait_idle(page)
    open_a_saved_run(page, chain_run.save(tmp_path / "a"), "timeout-chain")
    go_to(page, "compare")
    page.locator("[data-testid='stButtonGroup'] button").filter(has_text="saved run").click()
    wait_idle(page)
    field = page.get_by_label("Run directory", exact=True)
    field.fill(str(longer_timeouts(tmp_path / "b")))
    page.get_by_role("button", name="Load B").click()
    page.get_by_text("matched by trace id").wait_for()
    wait_idle(page)
    charts_rendered(page)
    assert exceptions(page) == 0
    said = page.locator("[data-testid='stMarkdown']").filter(has_text="ended differently")
    assert "ok only in B" in said.inner_text()
    # B's cards carry their change against A.
    assert page.locator("[data-testid='stMetricDelta']").count() >= 6
    picker = page.locator("[data-testid='stSelectbox']").filter(
        has_text="A request that ended differently"
    )
    assert ": ok in B, failed in A at B → C" in picker.locator("input").input_value()
    shoot(page, "readme-compare-runs")


def tiled(run: Run, copies: int) -> Run:
    """`run` repeated `copies` times end to end: a run of `copies` times its messages,
    every id made unique per copy (a synthetic large run that takes seconds to build)."""
    d = run.duration
    tables: dict[str, pd.DataFrame] = {}
    time_columns = {
        "messages": ("sent_at", "delivered_at", "ended_at"),
        "spans": ("start", "end", "deadline"),
        "queues": ("time",),
        "effects": ("time",),
        "faults": ("start", "end"),
        "breakers": ("time",),
    }
    id_columns = {
        "messages": ("msg_id", "correlation_id", "causation_id", "span_id"),
        "spans": ("span_id", "parent_id", "correlation_id"),
        "effects": ("msg_id", "correlation_id", "key"),
        "faults": ("fault_id",),
    }
    for name, table in run.tables.items():
        if name == "agents" or table.empty:
            tables[name] = table
            continue
        n = len(table)
        copy = np.repeat(np.arange(copies), n)  # which copy each row belongs to
        out = pd.DataFrame({c: np.tile(table[c].to_numpy(), copies) for c in table.columns})
        for column in time_columns.get(name, ()):
            out[column] = out[column].astype(float) + copy * d
        suffix = pd.Series(np.char.add("~", copy.astype(str)))
        for column in id_columns.get(name, ()):
            values = out[column].astype(str)
            out[column] = values.where(values == "", values + suffix)
        if name == "messages":
            out["seq"] = out["seq"].astype("int64") + copy * n
        tables[name] = conform(name, out)
    manifest = dict(run.manifest, duration=d * copies)
    manifest["scenario"] = dict(run.manifest["scenario"], duration=d * copies)
    return Run(tables, manifest)


def test_the_overview_of_a_million_message_run(page: Any, tmp_path: Path, chain_run: Run) -> None:
    """Seconds measured into test-artifacts/overview-1m.json, not asserted."""
    copies = -(-MILLION // len(chain_run.messages))
    started = time.monotonic()
    big = tiled(chain_run, copies)
    folder = big.save(tmp_path / "million")
    seconds: dict[str, float] = {"build and save": round(time.monotonic() - started, 2)}
    assert len(big.messages) >= MILLION

    page.wait_for_selector("[data-testid='stMetricValue']")
    wait_idle(page)
    started = time.monotonic()
    open_a_saved_run(page, folder, "timeout-chain")
    seconds["open"] = round(time.monotonic() - started, 2)
    seconds["replay"] = round(go_to(page, "replay", LARGE_MS), 2)
    assert exceptions(page) == 0
    overview = page.locator("[data-testid='stExpander']").filter(
        has_text="Overview of the whole run"
    )
    assert overview.locator(f"{CHARTS} .main-svg").count() >= 1  # open by itself
    # Per link: traffic and failure rate of each sender -> receiver, binned once per run.
    started = time.monotonic()
    overview.locator("[data-testid='stButtonGroup'] button").filter(has_text="per link").click()
    page.wait_for_function(
        f"""() => Array.from(document.querySelectorAll("{CHARTS} .js-plotly-plot"))
            .some(gd => (gd._fullData || []).some(t => t.name === 'failure rate'))""",
        timeout=LARGE_MS,
    )
    wait_idle(page, LARGE_MS)
    charts_rendered(page, LARGE_MS)
    seconds["per link"] = round(time.monotonic() - started, 2)
    assert exceptions(page) == 0
    assert "B → C" in overview.locator(f"{CHARTS} .ytick").all_text_contents()
    shoot(page, "readme-overview")

    # Drag across the overview: the window follows (whole cells of it).
    chart_index = page.evaluate(f'() => document.querySelectorAll("{CHARTS}").length') - 1
    box = page.evaluate(
        f"""() => {{ const gd = {plot(page, chart_index)};
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const r = gd.getBoundingClientRect();
            return {{x0: r.left + xa._offset + xa.l2p(20000), x1: r.left + xa._offset + xa.l2p(21000),
                     y: r.top + ya._offset + ya._length / 2}}; }}"""
    )
    started = time.monotonic()
    page.mouse.move(box["x0"], box["y"])
    page.mouse.down()
    page.mouse.move((box["x0"] + box["x1"]) / 2, box["y"], steps=5)
    page.mouse.move(box["x1"], box["y"], steps=5)
    page.mouse.up()
    page.wait_for_function(
        """() => { const b = Array.from(document.querySelectorAll("[data-testid='stSlider']"))
                .find(b => b.innerText.includes('Window'));
            const v = parseFloat(b.querySelectorAll("input[type='range']")[0].value);
            return v > 19000 && v < 21000; }""",
        timeout=LARGE_MS,
    )
    wait_idle(page, LARGE_MS)
    charts_rendered(page, LARGE_MS)
    seconds["drag a window"] = round(time.monotonic() - started, 2)
    window = page.locator("[data-testid='stSlider']").filter(has_text="Window")
    lo = float(window.locator("input[type='range']").nth(0).input_value())
    hi = float(window.locator("input[type='range']").nth(1).input_value())
    assert 19_000 < lo < hi < 22_000

    started = time.monotonic()
    page.get_by_role("button", name="Next failure").click()
    wait_idle(page, LARGE_MS)
    charts_rendered(page, LARGE_MS)
    seconds["next failure"] = round(time.monotonic() - started, 2)
    assert slider_value(page, "Cursor") > lo

    # 4,000 arrows on screen: SVG lines, no WebGL canvas in the diagram.
    page.locator("[data-testid='stSelectbox']").filter(has_text="Arrows at most").click()
    page.locator("[role='option']").filter(has_text="4000").first.click()
    wait_idle(page, LARGE_MS)
    charts_rendered(page, LARGE_MS)
    diagram = page.locator(CHARTS).first
    assert diagram.locator(".gl-container canvas").count() == 0
    assert diagram.locator(".scatterlayer path.js-line").count() >= 2
    assert exceptions(page) == 0

    # Drag across a small stretch of the (thinned) diagram: it becomes the window and
    # every message in it is drawn.
    assert page.locator("[data-testid='stAlert']").filter(has_text="Showing").count() == 1
    thinned = arrows_drawn(page)
    window = page.locator("[data-testid='stSlider']").filter(has_text="Window")
    lo = float(window.locator("input[type='range']").nth(0).input_value())
    hi = float(window.locator("input[type='range']").nth(1).input_value())
    started = time.monotonic()
    for attempt in range(3):  # a chart redrawn under the mouse drops the drag: again
        wait_idle(page, LARGE_MS)
        charts_rendered(page, LARGE_MS)
        drag_across(page, lo + (hi - lo) * 0.40, lo + (hi - lo) * 0.42)
        try:
            page.wait_for_function(
                """lo => { const b = Array.from(document.querySelectorAll(
                        "[data-testid='stSlider']")).find(b => b.innerText.includes('Window'));
                    return parseFloat(b.querySelectorAll("input[type='range']")[0].value) > lo; }""",
                arg=lo + (hi - lo) * 0.2,
                timeout=LARGE_MS / 3,
            )
            break
        except PlaywrightTimeout:
            assert attempt < 2, "the window never followed the box"
    wait_idle(page, LARGE_MS)
    charts_rendered(page, LARGE_MS)
    seconds["zoom into a stretch"] = round(time.monotonic() - started, 2)
    assert exceptions(page) == 0
    said = page.locator("[data-testid='stCaptionContainer']").filter(
        has_text="messages in this window, every one drawn"
    )
    total = int(said.first.inner_text().split(" messages")[0].replace(",", ""))
    assert 0 < total < thinned
    assert arrows_drawn(page) == total
    z0 = float(window.locator("input[type='range']").nth(0).input_value())
    z1 = float(window.locator("input[type='range']").nth(1).input_value())
    assert lo < z0 < z1 < hi and z1 - z0 < (hi - lo) / 10
    (ARTIFACTS / "overview-1m.json").write_text(
        json.dumps({"messages": len(big.messages), "seconds": seconds}, indent=2)
    )
    print(f"\n{len(big.messages):,} messages; seconds: {seconds}")


def test_stop_during_a_run_keeps_the_previous_one(page: Any) -> None:
    page.wait_for_selector("[data-testid='stMetricValue']")
    wait_idle(page)
    before = heading(page)
    page.locator("[data-testid='stSelectbox']").first.click()
    # The list is virtualised: with more built-ins than it draws, type to find one.
    page.keyboard.type("large")
    page.locator("[role='option']").filter(has_text="large").first.click()
    wait_idle(page)
    run_button(page).click()
    page.locator("[data-testid='stProgress']").wait_for()
    page.get_by_role("button", name="Stop").click()
    wait_idle(page)
    time.sleep(1.0)  # whatever the page would still redraw after stopping
    assert exceptions(page) == 0
    assert heading(page) == before  # the previous run is still on screen
    assert page.locator("[data-testid='stMetricValue']").count() >= 10
    shoot(page, "stopped")
    stuck = page.locator("[data-testid='stProgress']").count()
    # The next interaction (here: another seed) leaves no bar of the stopped run behind.
    seed = page.locator("[data-testid='stNumberInput'] input").first
    seed.fill(str(int(seed.input_value()) + 1))
    seed.press("Enter")
    wait_idle(page)
    time.sleep(1.0)
    assert page.locator("[data-testid='stProgress']").count() == 0
    assert heading(page) == before
    assert exceptions(page) == 0
    print(f"\nprogress bars right after Stop: {stuck}; after the next interaction: 0")


def frame_intervals(page: Any, seconds: float) -> dict[str, Any]:
    """Play Replay for `seconds` of wall time; the intervals between two frames as the
    browser saw them (the cursor slider moving), and per frame the bytes the server sent."""
    sizes: list[int] = []
    # The socket is already open: read its frames through the DevTools protocol.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.on(
        "Network.webSocketFrameReceived",
        lambda event: sizes.append(len(event["response"]["payloadData"])),
    )
    page.evaluate(
        """() => { window.__frames = [];
            const read = () => { const b = Array.from(document.querySelectorAll(
                "[data-testid='stSlider']")).find(b => b.innerText.includes('Cursor'));
                return b ? b.querySelector("input[type='range']").value : null; };
            let last = read();
            const tick = () => { const v = read();
                if (v !== null && v !== last) { last = v; window.__frames.push(performance.now()); }
                window.__poll = requestAnimationFrame(tick); };
            tick(); }"""
    )
    sizes.clear()
    page.get_by_role("button", name="Play").click()
    time.sleep(seconds)
    page.get_by_role("button", name="Pause").click()
    stamps = page.evaluate("() => { cancelAnimationFrame(window.__poll); return window.__frames; }")
    # Paused once the Play button is back (frames still queued may keep the script
    # state flipping for a while on a loaded machine).
    page.get_by_role("button", name="Play").wait_for(timeout=LARGE_MS)
    gaps = np.diff(np.asarray(stamps, dtype=float)) / 1000.0
    big = [s for s in sizes if s > 10_000]  # the frames' deltas, not the small acks
    return {
        "frames": len(stamps),
        "interval_s": {
            "median": round(float(np.median(gaps)), 2) if len(gaps) else None,
            "p90": round(float(np.percentile(gaps, 90)), 2) if len(gaps) else None,
            "max": round(float(gaps.max()), 2) if len(gaps) else None,
        },
        "kb_per_frame": round(float(np.median(big)) / 1024, 1) if big else 0.0,
    }


def replay_two_thousand_arrows(page: Any, tmp_path: Path, chain_run: Run) -> int:
    """Open the chain run tiled twenty times and put Replay's window on 0-180 s of its
    2,400 (about 2,000 arrows); the arrows drawn once the chart has them."""
    open_a_saved_run(page, tiled(chain_run, 20).save(tmp_path / "twenty"), "timeout-chain")
    go_to(page, "replay")
    click_slider(page, "Window", 0.075)  # 0-180 s of 2,400: about 2,000 arrows
    page.wait_for_function(
        f"""() => {plot(page)}._fullData.filter(t => t.mode === 'lines+markers')
            .reduce((n, t) => n + t.x.length / 3, 0) > 1500""",
        timeout=LARGE_MS,
    )
    wait_idle(page)
    charts_rendered(page)
    return arrows_drawn(page)


@pytest.mark.skipif(
    not os.environ.get("SWITCHBOARD_MEASURE_PLAYBACK"),
    reason="a measurement (SWITCHBOARD_MEASURE_PLAYBACK=1 pytest -s -m browser -k playback_frame)",
)
def test_playback_frame_intervals(page: Any, tmp_path: Path, chain_run: Run) -> None:
    """Frame intervals while playing (the target is one a second), measured into
    test-artifacts/playback.json, not asserted: the default window of the default run,
    and a 20x timeout-chain with a window of 2,000 arrows."""
    page.wait_for_selector("[data-testid='stMetricValue']")
    wait_idle(page)
    measured: dict[str, Any] = {}
    go_to(page, "replay")
    measured["default window"] = frame_intervals(page, 8.0)
    assert measured["default window"]["frames"] >= 3
    assert exceptions(page) == 0

    go_to(page, "run")
    measured["arrows"] = replay_two_thousand_arrows(page, tmp_path, chain_run)
    measured["2,000 arrows"] = frame_intervals(page, 8.0)
    assert measured["2,000 arrows"]["frames"] >= 2
    assert exceptions(page) == 0
    (ARTIFACTS / "playback.json").write_text(json.dumps(measured, indent=2))
    print(f"\nplayback frames: {measured}")


def test_the_window_plays_in_the_browser_without_a_rerun(
    page: Any, tmp_path: Path, chain_run: Run
) -> None:
    """Play window, in the diagram, on a window of about 2,000 arrows: plotly.js moves
    the cursor from frame to frame with no Streamlit rerun (the chart keeps a mark put on
    it, the script never runs). The cursor's position is sampled from the chart for
    about 5 s; intervals and the speed achieved go to test-artifacts/playback-client.json,
    not asserted."""
    page.wait_for_selector("[data-testid='stMetricValue']")
    wait_idle(page)
    arrows = replay_two_thousand_arrows(page, tmp_path, chain_run)
    # The Play button's frame duration: the speed picked reaches the chart through it.
    frame_ms = f"""() => {{ const gd = {plot(page)};
        const menus = (gd && gd.layout.updatemenus) || [];
        for (const m of menus) for (const b of m.buttons || [])
            if (b.label === 'Play window') return b.args[1].frame.duration;
        return null; }}"""
    before = page.evaluate(frame_ms)
    # 10x: a frame every 0.2 s of wall time is asked for (at 1x, 400 frames of 0.45 s).
    page.locator("[data-testid='stSelectbox']").filter(has_text="Speed").click()
    page.get_by_role("option", name="10x", exact=True).click()
    # Wait for the 10x chart itself: the 1x chart has its frames too, and marking it while
    # the rerun that replaces it has yet to start would lose the mark to that rerun.
    page.wait_for_function(
        f"before => {{ const ms = ({frame_ms})(); return ms !== null && ms !== before; }}",
        arg=before,
        timeout=LARGE_MS,
    )
    page.wait_for_function(f"() => ({plot(page)}._transitionData._frames || []).length > 50")
    wait_idle(page)
    charts_rendered(page)
    speed = 10.0
    # Mark the chart, watch the script state, and sample the cursor at every paint.
    page.evaluate(
        f"""() => {{ const gd = {plot(page)}; gd.__mark = 'before play';
            window.__ran = 0; window.__cursor = [];
            const app = document.querySelector("[data-testid='stApp']");
            window.__watch = new MutationObserver(() => {{
                if (app.getAttribute('data-test-script-state') === 'running') window.__ran++; }});
            window.__watch.observe(app, {{attributes: true}});
            const read = () => {{ const g = {plot(page)};
                const t = g && g.data.find(t => t.name === 'cursor'); return t ? t.x[0] : null; }};
            let last = read();
            const tick = () => {{ const x = read();
                if (x !== null && x !== last) {{ last = x; window.__cursor.push([performance.now(), x]); }}
                window.__poll = requestAnimationFrame(tick); }};
            tick(); }}"""
    )
    chart = page.locator(CHARTS).first
    chart.scroll_into_view_if_needed()
    chart.locator(".updatemenu-button").filter(has_text="Play window").click()
    time.sleep(5.0)
    chart.locator(".updatemenu-button").filter(has_text="Pause").click()
    samples = page.evaluate(
        "() => { cancelAnimationFrame(window.__poll); return window.__cursor; }"
    )
    time.sleep(0.5)
    paused = page.evaluate(f"() => {plot(page)}.data.find(t => t.name === 'cursor').x[0]")
    ran = page.evaluate("() => { window.__watch.disconnect(); return window.__ran; }")
    mark = page.evaluate(f"() => {plot(page)}.__mark")
    chart.screenshot(path=ARTIFACTS / "playback-client.png")  # paused mid-window

    stamps = np.asarray([s[0] for s in samples], dtype=float) / 1000.0
    xs = np.asarray([s[1] for s in samples], dtype=float)
    gaps = np.diff(stamps)
    measured = {
        "arrows": arrows,
        "speed": speed,
        "frames seen": len(xs),
        "interval_s": {
            "median": round(float(np.median(gaps)), 3) if len(gaps) else None,
            "p90": round(float(np.percentile(gaps, 90)), 3) if len(gaps) else None,
            "max": round(float(gaps.max()), 3) if len(gaps) else None,
        },
        # Simulated seconds per wall second, first frame to last seen.
        "speed achieved": round(float((xs[-1] - xs[0]) / (stamps[-1] - stamps[0])), 2)
        if len(xs) > 1
        else None,
    }
    (ARTIFACTS / "playback-client.json").write_text(json.dumps(measured, indent=2))
    print(f"\nin-browser playback: {measured}")

    assert len(xs) >= 5  # the cursor moved, frame after frame
    assert bool(np.all(np.diff(xs) > 0))  # forward only
    assert ran == 0 and mark == "before play"  # no rerun: the chart was never rebuilt
    assert paused == xs[-1] or paused >= xs[-1]  # Pause holds it (one frame may be queued)
    assert exceptions(page) == 0
