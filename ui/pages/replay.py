"""Replay page: the space-time diagram of a run's messages, with a time cursor that plays.

Scrub a window of time; the diagram draws at most a few thousand arrows of it and says
when it thinned them. "Play window", in the chart, plays the window in the browser
(plotly animation frames that move only the cursor: no rerun, the arrows are not drawn
again); Play, above it, plays on through the run, paging the window (a `run_every`
fragment: only the diagram reruns, about one frame a second). What has not happened yet
sits behind a translucent curtain. Filters: trace
(correlation ID, shared with Cascades), agents, protocols, kinds, message types.
Selecting a message (click an arrow's head, or pick it below) shows its envelope.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from sim import Run
from ui import figures, state
from ui import tasks as task_bands
from ui.figures import reads, zoom
from ui.playback import SPEEDS, default_speed, frame_times, speed_label

TICK_S = 1.0  # wall seconds between two frames while playing
READABLE = 250  # messages in the first window shown: enough to see a pattern, few to read
MAX_LAG_S = 5.0  # a late frame catches up at most this much wall time (a pause, a stall)
NICE = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)

FOR = "replay_for"  # the run key the widgets below were set up for
WINDOW = "replay_window"
CURSOR = "replay_cursor"
PLAYING = "replay_playing"
TICKED = "replay_ticked"  # the wall clock (monotonic) of the last frame while playing
# Where playback has got to, apart from the Cursor slider's key: a frame requested while
# the previous one was still drawing carries the slider's old value from the browser,
# and moving on from that made the cursor step back (and move again after Pause).
PLAY_POS = "replay_play_pos"
SPEED = "replay_speed"
TIME = "replay_time"
LIMIT = "replay_limit"
TRACE_PICK = "replay_trace"
AGENTS = "replay_agents"
PROTOCOLS = "replay_protocols"
KINDS = "replay_kinds"
TYPES = "replay_types"
MESSAGE = "replay_message"
SELECTION = "replay_selection_seen"  # the chart selection last applied
FAILURE = "replay_failure_trace"  # the trace of the failure marker clicked last
OVERVIEW = "replay_overview"  # the overview chart (its box selection sets the window)
OVERVIEW_SEEN = "replay_overview_seen"  # the overview selection last applied
OVERVIEW_BY = "replay_overview_by"  # its rows: one per agent, or one per link
OVERVIEW_FROM = 3000  # messages from which the overview opens by itself
THREAD = "replay_thread"  # light up the selected message's causal thread
JUMP_NOTE = "replay_jump_note"  # why the last jump went nowhere
FITTED = "replay_fitted"  # (run key, trace) the window and cursor were last fitted to
CHART = "replay_chart"
OWN_FIGURE = "replay_own_figure"  # (diagram, in-chart playback, this session's copy)
ZOOM_SEEN = "replay_zoom_seen"  # the box dragged across the diagram last applied


def default_width(messages: int, duration: float, limit: int) -> float:
    """A window short enough to hold about `limit` messages (at the run's mean rate),
    rounded down to a nice value."""
    if messages <= limit or duration <= 0:
        return duration
    raw = duration * limit / messages
    fitting = [n for n in NICE if n <= raw]
    return float(fitting[-1]) if fitting else raw


def slider_step(duration: float) -> float:
    """The sliders' resolution: about a thousandth of the run, a round number."""
    raw = max(duration / 1000.0, 0.001)
    return float(10 ** math.floor(math.log10(raw)))


def setup(run: Run, key: str) -> None:
    """Initial widget values for a newly shown run (and only then)."""
    if st.session_state.get(FOR) == key:
        return
    width = default_width(run.row_count("messages"), state.axis_end(run), READABLE)
    st.session_state[FOR] = key
    st.session_state[WINDOW] = (0.0, float(width))
    st.session_state[CURSOR] = float(width)
    st.session_state[PLAYING] = False
    st.session_state[SPEED] = default_speed(width)
    st.session_state.pop(MESSAGE, None)
    st.session_state.pop(SELECTION, None)


def toggle_play() -> None:
    """Play or pause; playing from the window's end starts the window again."""
    playing = not st.session_state.get(PLAYING, False)
    st.session_state[PLAYING] = playing
    st.session_state.pop(TICKED, None)
    start, end = st.session_state[WINDOW]
    if playing and st.session_state[CURSOR] >= end - 1e-9:
        st.session_state[CURSOR] = float(start)
    if playing:
        st.session_state[PLAY_POS] = float(st.session_state[CURSOR])
    elif PLAY_POS in st.session_state:
        # Paused: the cursor stays where the last frame drew it.
        st.session_state[CURSOR] = st.session_state.pop(PLAY_POS)


def wall_elapsed() -> float:
    """Wall seconds since the last frame (TICK_S for the first), at most MAX_LAG_S.

    The cursor moves by what the clock says, not by the frames' target: frames that
    come late (a large window redraws slowly) still play at the chosen speed.
    """
    now = time.monotonic()
    last = st.session_state.get(TICKED)
    st.session_state[TICKED] = now
    if last is None:
        return TICK_S
    return min(max(now - last, TICK_S), MAX_LAG_S)


def advance(duration: float, elapsed: float = TICK_S) -> bool:
    """Move the cursor by `elapsed` wall seconds at the chosen speed; page the window
    on when it passes the window's end.

    Returns False (and stops playing) at the end of the run.
    """
    start, end = st.session_state[WINDOW]
    width = max(end - start, slider_step(duration))
    speed = float(st.session_state.get(SPEED, 1.0))
    cursor = st.session_state.get(PLAY_POS, st.session_state[CURSOR]) + elapsed * speed
    if cursor > duration:
        st.session_state[CURSOR] = float(duration)
        st.session_state[PLAYING] = False
        st.session_state.pop(PLAY_POS, None)
        return False
    if cursor > end:
        start = end
        st.session_state[WINDOW] = (float(start), float(min(start + width, duration)))
    st.session_state[CURSOR] = st.session_state[PLAY_POS] = float(cursor)
    return True


def on_window() -> None:
    """Scrubbing the window brings the cursor along when it falls outside."""
    start, end = st.session_state[WINDOW]
    if not start <= st.session_state[CURSOR] <= end:
        st.session_state[CURSOR] = float(end)


def on_cursor(duration: float) -> None:
    """A cursor moved outside the window takes the window with it."""
    start, end = st.session_state[WINDOW]
    cursor = st.session_state[CURSOR]
    if PLAY_POS in st.session_state:
        st.session_state[PLAY_POS] = float(cursor)  # scrubbed while playing: go on from here
    if not start <= cursor <= end:
        width = end - start
        new_start = max(0.0, min(cursor - width / 2, duration - width))
        st.session_state[WINDOW] = (float(new_start), float(new_start + width))


def on_trace() -> None:
    """The trace filter is the dashboard's chosen trace (Cascades shows the same)."""
    st.session_state[state.TRACE] = st.session_state.get(TRACE_PICK) or ""
    st.session_state.pop(MESSAGE, None)


@st.cache_resource(max_entries=32, show_spinner=False)
def view(
    _run: Run, key: str, start: float, end: float, flt: figures.Filters, limit: int
) -> figures.Window:
    """The filtered, thinned messages of a window (shared: never mutated); only the
    window's rows are read."""
    return reads.window(_run, start, end, flt, limit)


@st.cache_resource(max_entries=32, show_spinner=False)
def diagram(
    _run: Run,
    key: str,
    start: float,
    end: float,
    flt: figures.Filters,
    limit: int,
    logical: bool,
    selected: int | None,
    thread: bool = True,
) -> go.Figure:
    """The space-time figure of a window, without cursor (shared: never mutated): its
    failures marked, and the selected message's causal thread lit when `thread`."""
    win = view(_run, key, start, end, flt, limit)
    events = state.event_times(_run, key) if logical else None
    lanes = _run.agents["agent"].tolist()
    if flt.correlation_id and len(win.rows):
        # Following a trace: only the agents it involves, so its arrows are not lost
        # among empty lifelines.
        involved = set(win.rows["src"]).union(win.rows["dst"])
        lanes = [a for a in lanes if a in involved]
    marks = figures.failures.in_window(state.failures(_run, key), start, end, lanes)
    if flt.correlation_id:
        marks = marks[marks["correlation_id"] == flt.correlation_id]
    related = figures.causal(win.rows, selected) if thread and selected is not None else None
    return figures.spacetime(
        win.rows,
        lanes,
        _run.duration,
        _run.faults,
        x_range=(start, end),
        events=events,
        selected=selected,
        failures=marks,
        related=related,
    )


def trace_extent(run: Run, key: str, trace: str) -> tuple[float, float] | None:
    """The time span of a trace's messages, padded by 5%, or None when it has none."""
    index = state.trace_index(run, key)
    row = index[index["correlation_id"] == trace]
    rows = reads.trace_extent_rows(run, trace)
    if rows.empty and row.empty:
        return None
    lo = float(rows["sent_at"].min()) if len(rows) else float(row["start"].iloc[0])
    ends = figures.end_times(rows, state.axis_end(run)) if len(rows) else row["end"]
    hi = float(max(ends.max(), row["end"].max() if len(row) else lo))
    pad = max((hi - lo) * 0.05, 0.01)
    return max(0.0, lo - pad), min(state.axis_end(run), hi + pad)


@st.cache_data(max_entries=8, show_spinner=False)
def overview_bins(_run: Run, key: str, by: str) -> figures.overview.Bins:
    """The run's overview counts per agent or per link, binned once per run: moving the
    window redraws the overview from these, never from the messages."""
    if by == "link":
        return reads.overview_by_link(_run)
    return reads.overview_by_agent(_run, state.failures(_run, key))


@st.cache_resource(max_entries=16, show_spinner=False)
def overview_chart(
    _run: Run, key: str, window: tuple[float, float], by: str = "agent"
) -> go.Figure:
    """The whole run's overview with the window outlined (shared: never mutated)."""
    return figures.overview.figure(overview_bins(_run, key, by), _run.duration, window=window)


def jump(kind: str, duration: float, first: bool = False) -> None:
    """Move the window (same width) and the cursor to the next event of `kind` after
    the cursor (or the first of the run), the event at the window's centre."""
    run_, key_ = state.current_run(), state.run_key(state.current_run())
    times = figures.overview.jumps(state.failures(run_, key_), run_.faults, run_.breakers)[kind]
    after = -1.0 if first else float(st.session_state[CURSOR])
    at = figures.overview.next_after(times, after)
    if at is None:
        st.session_state[JUMP_NOTE] = f"No {kind} after {after:.3f} s."
        return
    st.session_state.pop(JUMP_NOTE, None)
    start, end = st.session_state[WINDOW]
    width = end - start
    new_start = max(0.0, min(at - width / 2, duration - width))
    st.session_state[WINDOW] = (float(new_start), float(new_start + width))
    st.session_state[CURSOR] = float(at)
    st.session_state[PLAYING] = False


def apply_overview(run: Run) -> None:
    """A box dragged on the overview (below the diagram) sets the window, before the
    sliders and the diagram are drawn."""
    duration = state.axis_end(run)
    picked = st.session_state.get(OVERVIEW)
    try:
        points = picked["selection"]["points"] if picked is not None else []
    except (KeyError, TypeError):
        points = []
    span = figures.overview.selected_range(
        [p if isinstance(p, dict) else dict(p) for p in points or []]
    )
    if span is not None and span != st.session_state.get(OVERVIEW_SEEN):
        st.session_state[OVERVIEW_SEEN] = span
        lo, hi = max(0.0, span[0]), min(duration, span[1])
        if hi > lo:
            st.session_state[WINDOW] = (float(lo), float(hi))
            st.session_state[CURSOR] = float(hi)
            st.session_state[state.TRACE] = ""  # a window picked on the whole run


def show_overview(run: Run, key: str) -> None:
    """The whole run per agent, traffic and failures over time; drag a box on it to set
    the window; buttons jump to the first failure, the next failure, fault or breaker
    opening."""
    duration = state.axis_end(run)
    big = run.row_count("messages") >= OVERVIEW_FROM
    with st.expander("Overview of the whole run", expanded=big, icon=":material/grid_on:"):
        cols = st.columns(4)
        cols[0].button(
            "First failure", on_click=jump, args=("failure", duration, True), key="jump_first"
        )
        cols[1].button("Next failure", on_click=jump, args=("failure", duration), key="jump_next")
        cols[2].button("Next fault", on_click=jump, args=("fault", duration), key="jump_fault")
        cols[3].button(
            "Next breaker opening",
            on_click=jump,
            args=("breaker opening", duration),
            key="jump_breaker",
        )
        if JUMP_NOTE in st.session_state:
            st.caption(st.session_state[JUMP_NOTE])
        by = st.segmented_control(
            "Rows",
            ("agent", "link"),
            key=OVERVIEW_BY,
            persist_state="session",
            default="agent",
            format_func=lambda v: {"agent": "per agent", "link": "per link (sender → receiver)"}[v],
            help="Per agent: messages it sent and failures at its lifeline. Per link: "
            "messages on it and the share of its calls (and of its messages outside "
            "calls) that failed.",
        )
        by = by or "agent"
        window = tuple(float(v) for v in st.session_state[WINDOW])
        st.plotly_chart(
            overview_chart(run, key, window, by),
            key=OVERVIEW,
            on_select="rerun",
            selection_mode="box",
            config={"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d"]},
        )
        st.caption(
            (
                "Messages (blue) and the share of calls that failed (red, darkest: all) "
                "per link over the whole run."
                if by == "link"
                else "Messages sent (blue) and failures (red) per agent over the whole run."
            )
            + " Drag across it to show that stretch below."
        )


def clear_trace() -> None:
    """Drop the trace filter: every trace again, in the window the sliders hold."""
    st.session_state[state.TRACE] = ""
    st.session_state.pop(MESSAGE, None)


def fit(key: str, trace: str, fitted: tuple[float, float] | None) -> None:
    """Following a trace fits the cursor to it (at its end: all of it visible, nothing
    behind the curtain), once per trace; leaving it brings the cursor back into the
    window the sliders hold."""
    last = st.session_state.get(FITTED)
    if fitted is not None:
        if last != (key, trace):
            st.session_state[FITTED] = (key, trace)
            st.session_state[CURSOR] = float(fitted[1])
        return
    if last is not None:
        st.session_state.pop(FITTED, None)
        start, end = st.session_state[WINDOW]
        if not start <= st.session_state[CURSOR] <= end:
            st.session_state[CURSOR] = float(end)


def stage(run: Run, key: str) -> None:
    """The part that reruns on every tick: sliders, diagram, selection."""
    duration = state.axis_end(run)
    if st.session_state.get(PLAYING) and not advance(duration, wall_elapsed()):
        st.rerun()  # the end of the run: rerun the page so the timer stops
    apply_zoom(run, key)
    controls = st.columns([1.4, 1, 1, 1, 1, 1])
    trace = st.session_state.get(state.TRACE, "")
    start, end = st.session_state[WINDOW]
    fitted = trace_extent(run, key, trace) if trace else None
    if trace and fitted is None:
        # A trace chosen in another run (or gone): never a silent, empty filter.
        st.caption(f"Trace {trace} is not in this run: showing every trace.")
        trace = ""
        st.session_state[state.TRACE] = ""
    fit(key, trace, fitted)
    lo, hi = fitted if fitted else (start, end)
    trace_picker(controls[0], trace, trace_options(run, trace, lo, hi))
    flt, limit = filter_widgets(controls[1:], run, key, trace)
    if fitted:
        note, button = st.columns([5, 1], vertical_alignment="center")
        note.info(
            f"Filtered to trace **{trace}**: its agents only, the window fitted to it "
            f"({lo:.3f}–{hi:.3f} s).",
            icon=":material/filter_alt:",
        )
        button.button("Show all traces", on_click=clear_trace, key="replay_all_traces")
    time_sliders(duration, fitted=bool(fitted))
    win = view(run, key, lo, hi, flt, limit)
    cursor = show_diagram(run, key, win, lo, hi, flt, limit)
    # Topology opens at this time; written on every tick, as ticks rerun only this part.
    st.session_state[state.CURSOR] = float(st.session_state[CURSOR])
    failure_note(run, key)
    detail(run, key, win, cursor)


def apply_zoom(run: Run, key: str) -> None:
    """A stretch dragged across the diagram becomes the window (before the sliders are
    drawn): the arrows the thinned sample left out are queried again and drawn."""
    event = st.session_state.get(CHART)
    span = zoom.box_range(event)
    if span is None or span == st.session_state.get(ZOOM_SEEN):
        return
    st.session_state[ZOOM_SEEN] = span
    logical = st.session_state.get(TIME, "physical") == "logical"
    events = state.event_times(run, key) if logical else None
    duration = state.axis_end(run)
    picked = zoom.window_of(event, events, duration, slider_step(duration))
    if picked is None:
        return
    st.session_state[WINDOW] = (float(picked[0]), float(picked[1]))
    st.session_state[CURSOR] = float(picked[1])
    st.session_state[PLAYING] = False
    st.session_state[state.TRACE] = ""  # a stretch picked on every trace's arrows
    st.rerun()  # the whole page: the overview outlines the new window too


def failure_note(run: Run, key: str) -> None:
    """The failure marker clicked last: its trace's root causes, and where to go."""
    trace = st.session_state.get(FAILURE)
    if not trace:
        return
    said = figures.failures.root_causes(state.failures(run, key), trace)
    if not said:
        st.session_state.pop(FAILURE, None)
        return
    box, go_to = st.columns([4, 1.3])
    box.warning(
        f"**What went wrong in trace {trace}**\n\n" + "\n".join(f"- {line}" for line in said),
        icon=":material/report:",
    )
    if go_to.button(
        f"Open {trace} on Cascades",
        icon=":material/waterfall_chart:",
        key="replay_failure_cascades",
    ):
        st.session_state[state.TRACE] = trace
        st.switch_page(state.PAGES["cascades"])
    if go_to.button(
        f"Follow trace {trace}", icon=":material/filter_alt:", key="replay_failure_follow"
    ):
        st.session_state[state.TRACE] = trace
        st.session_state.pop(FAILURE, None)
        st.rerun()


def trace_options(run: Run, trace: str, lo: float, hi: float) -> list[str]:
    """The trace filter's options: all traces (''), the traces sent in [lo, hi] (at most
    300: a run may hold tens of thousands), and the one chosen now."""
    in_view = reads.traces_sent(run, lo, hi, 300)
    options = ["", *(str(v) for v in in_view if v)]
    if trace and trace not in options:
        options.insert(1, trace)
    return options


def trace_picker(column: DeltaGenerator, trace: str, options: list[str]) -> None:
    """The trace filter, showing the dashboard's chosen trace."""
    st.session_state[TRACE_PICK] = trace
    column.selectbox(
        "Trace (correlation ID)",
        options,
        key=TRACE_PICK,
        persist_state="session",
        on_change=on_trace,
        format_func=lambda v: v or "all traces",
        help="Only this trace's messages, the window fitted to it. Cascades shows the same trace.",
    )


def filter_widgets(
    columns: Sequence[DeltaGenerator], run: Run, key: str, trace: str
) -> tuple[figures.Filters, int]:
    """The agent, protocol, kind and type filters and the arrow limit, one per column;
    returns the filters (with `trace`) and the limit."""

    # Each filter: a multiselect over the values the run has, empty meaning all.
    def seen(column: str) -> list[str]:
        return state.column_values(run, key, "messages", column)

    filters = (
        ("Agents", run.agents["agent"].tolist(), AGENTS),
        ("Protocols", seen("protocol"), PROTOCOLS),
        ("Kinds", seen("kind"), KINDS),
        ("Message types", seen("type"), TYPES),
    )
    agents, protocols, kinds, types = (
        column.multiselect(label, options, key=widget, persist_state="session", placeholder="all")
        for column, (label, options, widget) in zip(columns[:4], filters, strict=True)
    )
    limit = columns[4].selectbox(
        "Arrows at most",
        (500, 1000, 2000, 4000),
        index=2,
        key=LIMIT,
        persist_state="session",
        help="Past this many messages in the window the diagram draws a regular sample.",
    )
    flt = figures.Filters(trace, tuple(agents), tuple(protocols), tuple(kinds), tuple(types))
    return flt, int(limit)


def time_sliders(duration: float, *, fitted: bool) -> None:
    """The window and cursor sliders, side by side; the window is fixed while it is
    fitted to a trace. In logical time they still pick simulated seconds (an event
    count means nothing to a reader), and say so."""
    step = slider_step(duration)
    logical = st.session_state.get(TIME, "physical") == "logical"
    unit = "simulated s; the diagram counts events" if logical else "s"
    left, right = st.columns(2)
    left.slider(
        f"Window ({unit})",
        0.0,
        duration,
        key=WINDOW,
        persist_state="session",
        step=step,
        on_change=on_window,
        disabled=fitted,
        help="The stretch of the run the diagram shows. Drag either end, or the band.",
    )
    right.slider(
        f"Cursor ({unit})",
        0.0,
        duration,
        key=CURSOR,
        persist_state="session",
        step=step,
        on_change=on_cursor,
        args=(duration,),
        help="Time on the diagram; what happens after it is behind the curtain.",
    )


def chosen_message(shown: set[int]) -> int | None:
    """The message to highlight: the one picked, when the diagram shows it."""
    # A click on the diagram reruns the page with the chart's selection already in
    # session state: apply it before drawing, so the clicked arrow is highlighted now.
    picked = _picked(st.session_state.get(CHART))
    if picked is not None and picked != st.session_state.get(SELECTION):
        st.session_state[SELECTION] = picked
        if isinstance(picked, str):  # a failure marker: the trace it belongs to
            st.session_state[FAILURE] = picked.removeprefix(figures.failures.TRACE_PREFIX)
        elif picked in shown:
            st.session_state[MESSAGE] = picked
    selected = st.session_state.get(MESSAGE)
    return selected if selected in shown else None


def show_diagram(
    run: Run,
    key: str,
    win: figures.Window,
    lo: float,
    hi: float,
    flt: figures.Filters,
    limit: int,
) -> float:
    """The window's diagram with its cursor, and how much of the window it shows;
    returns the cursor (seconds), held inside the window."""
    logical = st.session_state.get(TIME, "physical") == "logical"
    selected = chosen_message(set(win.rows["seq"].tolist()))
    thread = bool(st.session_state.get(THREAD, True))
    base = diagram(run, key, lo, hi, flt, limit, logical, selected, thread)
    events = state.event_times(run, key) if logical else None
    cursor = min(max(float(st.session_state[CURSOR]), lo), hi)
    # Playing on the server (across windows) moves the cursor each tick: no in-chart
    # playback then, which would fight it.
    speed = None if st.session_state.get(PLAYING) else float(st.session_state.get(SPEED, 1.0))
    st.plotly_chart(
        cursor_figure(base, cursor, events, (lo, hi), speed),
        key=CHART,
        on_select="rerun",
        selection_mode=("points", "box"),
        config={"displaylogo": False, "scrollZoom": True},
    )
    if win.thinned:
        st.info(win.note(), icon=":material/filter_alt:")
    else:
        st.caption(
            f"{win.total:,} messages in this window, every one drawn. To zoom into a "
            f"stretch, {zoom.HOW}; click an arrow's head to pick its message."
        )
    lanes = set(win.rows["src"]).union(win.rows["dst"]) if len(win.rows) else set()
    found = figures.failures.counts(
        figures.failures.in_window(state.failures(run, key), lo, hi, sorted(lanes))
    )
    if found:
        st.caption(
            "Failures here: "
            + ", ".join(f"{n:,} {figures.failures.KINDS[k][0]}" for k, n in found.items())
            + ". Hover a marker for why; click it for its trace."
        )
    return cursor


def cursor_figure(
    base: go.Figure,
    cursor: float,
    events: Any,
    span: tuple[float, float],
    speed: float | None,
) -> go.Figure:
    """The diagram with its cursor at `cursor`: this session's own copy of the cached
    `base`, made once per diagram and speed, whose cursor a server-side frame moves in
    place (copying a figure of 2,000 arrows cost four times the rest of a frame's
    server time). With a `speed`, the copy carries an in-browser playback of the window
    `span` at that speed (Play window, in the chart), from the cursor (from the
    window's start when the cursor stands at its end): plotly.js moves the cursor
    without a rerun, so the arrows are not drawn again at each frame."""
    start, end = span
    playback = None
    if speed is not None:
        playback = (speed, cursor if start <= cursor < end else start)
    held = st.session_state.get(OWN_FIGURE)
    if held is not None and held[0] is base and held[1] == playback:
        return figures.move_cursor(held[2], cursor, events)
    shown = figures.with_cursor(base, cursor, events)
    shown.update_layout(zoom.DRAG)
    if playback is not None:
        times, frame_ms = frame_times(playback[1], end, playback[0])
        figures.with_playback(shown, times, frame_ms, events)
    st.session_state[OWN_FIGURE] = (base, playback, shown)
    return shown


def _picked(event: Any) -> int | str | None:
    """The first point of a chart selection: a message's `seq`, or a failure marker's
    `trace:<id>`; None when nothing is selected."""
    if zoom.box_range(event) is not None:
        return None  # a stretch dragged across the diagram: a zoom, not a pick
    try:
        points = event["selection"]["points"] if event is not None else []
    except (KeyError, TypeError):
        return None
    # A failure marker over an arrow's end: the marker is what was aimed at.
    points = sorted(
        points or [],
        key=lambda p: (
            not str(p.get("customdata") if hasattr(p, "get") else "").startswith(
                figures.failures.TRACE_PREFIX
            )
        ),
    )
    for point in points:
        # Points are read-only attribute dictionaries (not dict subclasses): use `get`.
        value = point.get("customdata") if hasattr(point, "get") else None
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str) and value.startswith(figures.failures.TRACE_PREFIX):
            return value
        if value is not None:
            return int(value)
    return None


def detail(run: Run, key: str, win: figures.Window, cursor: float) -> None:
    """Pick one of the messages near the cursor and read its envelope."""
    rows = win.rows
    if rows.empty:
        st.caption("No message in this window.")
        return
    near = rows.assign(gap=(rows["sent_at"] - cursor).abs()).nsmallest(300, "gap")
    chosen = st.session_state.get(MESSAGE)
    seqs = sorted(near["seq"].tolist())
    if chosen is not None and chosen not in seqs and chosen in set(rows["seq"]):
        seqs = sorted([*seqs, chosen])
    if chosen not in seqs:
        st.session_state.pop(MESSAGE, None)
    labels = {
        int(r.seq): figures.message_label(r) for r in rows[rows["seq"].isin(seqs)].itertuples()
    }
    left, right = st.columns([2, 3])
    with left:
        seq = st.selectbox(
            "Message",
            [None, *seqs],
            key=MESSAGE,
            persist_state="session",
            format_func=lambda s: "pick a message near the cursor" if s is None else labels[s],
            help="The 300 messages of the window sent closest to the cursor; or click an "
            "arrow's head on the diagram.",
        )
        st.toggle(
            "Light up its causal thread",
            value=True,
            key=THREAD,
            persist_state="session",
            help="The messages that happened before the selected one (blue) and after it "
            "(orange), by happens-before as ShiViz draws it: a delivery before a send at "
            "the same agent, and chains of those.",
        )
        if seq is not None:
            corr = str(rows.loc[rows["seq"] == seq, "correlation_id"].iloc[0])
            if corr and st.button(f"Follow trace {corr}", icon=":material/filter_alt:"):
                st.session_state[state.TRACE] = corr
                st.rerun()
            if corr and st.button(f"Open {corr} on Cascades", icon=":material/waterfall_chart:"):
                st.session_state[state.TRACE] = corr
                st.switch_page(state.PAGES["cascades"])
    with right:
        if seq is not None:
            st.dataframe(
                reads.message_detail(run, int(seq)),
                hide_index=True,
                width="stretch",
                height=min(38 + 35 * 21, 600),
            )


run = state.current_run()
key = state.run_key(run)
setup(run, key)

st.title("Replay", anchor=False)
st.caption(
    f"{state.heading(run)}: one lifeline per agent, one arrow per message copy from send to "
    "delivery, coloured by protocol; messages that were not delivered end where they died."
)
playing = bool(st.session_state.get(PLAYING))
top = st.columns([1, 1, 2, 4], vertical_alignment="bottom")
top[0].button(
    "Pause" if playing else "Play",
    icon=":material/pause:" if playing else ":material/play_arrow:",
    on_click=toggle_play,
    type="primary",
    width="stretch",
    key="replay_play",
)
top[1].selectbox(
    "Speed",
    SPEEDS,
    key=SPEED,
    persist_state="session",
    format_func=speed_label,
    help="Simulated seconds per wall second: 1x is real time, 0.01x a hundred times slower. "
    "Play window, in the diagram, plays the window smoothly in the browser; Play goes on "
    "through the run, a window after another, about a frame a second.",
)
top[2].segmented_control(
    "Time",
    ("physical", "logical"),
    key=TIME,
    persist_state="session",
    default="physical",
    help="Physical: simulated seconds. Logical: the order of send and receive events "
    "(as Maelstrom draws it), which spreads out bursts.",
)

apply_overview(run)
st.fragment(stage, run_every=TICK_S if playing else None)(run, key)
show_overview(run, key)
task_bands.show(run, key)  # A2A tasks' state bands and table; nothing without tasks
