"""What the pages share through `st.session_state`, and the caches they read through.

Session keys: RUN (the Run on screen), RUN_SOURCE (how it was made), TRACE (the trace
chosen on Replay or Cascades, shown on both), CURSOR (Replay's time cursor, Topology's
starting time). Derived tables are cached with `st.cache_data` and figures with
`st.cache_resource`, keyed by `run_key(run)`, so a run's tables are read once per session
and a figure is built once per view, however many reruns ask for it. The tables that grow
with the run (one row per trace, per failure, per request; every event time) are cached
with `st.cache_resource` too: `st.cache_data` keeps them pickled and hands each rerun an
unpickled copy (on a 10M-message run, 400 MB and half a second per rerun for the trace
index alone). Those are shared, so their readers never change them in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import streamlit as st

from sim import Run, loading
from sim.scenario import Scenario
from sim.trace import TABLES
from sim.trace.lazy import LazyRun
from ui import summary as views

if TYPE_CHECKING:  # annotations only: the Run page, which imports this, never needs networkx
    import networkx as nx

log = logging.getLogger(__name__)

RUN = "run"
RUN_SOURCE = "run_source"
RUN_KEY = "run_key"
ERROR = "run_error"
TRACE = "trace"
CURSOR = "cursor"
PREVIOUS = "previous_run"  # {"summary": ..., "label": ...} of the run shown before this one

PAGES = {
    "run": "ui/pages/run.py",
    "replay": "ui/pages/replay.py",
    "cascades": "ui/pages/cascades.py",
    "breakers": "ui/pages/breakers.py",
    "queues": "ui/pages/queues.py",
    "topology": "ui/pages/topology.py",
    "compare": "ui/pages/compare.py",
}


def default_scenario(names: list[str]) -> str:
    """The scenario the app opens on: 'collaboration' once it exists, else 'basic'."""
    default = "collaboration" if "collaboration" in names else "basic"
    # A checkout without 'basic' (renamed, or a trimmed scenarios/ folder) still opens.
    return default if default in names or not names else names[0]


def run_key(run: Run) -> str:
    """A digest naming a Run's content: its scenario, seed, versions and every table.

    Two equal runs share cached figures; a run edited in a test (say, a synthetic
    breakers table) does not. Computed once per Run object per session.
    """
    cached = st.session_state.get(RUN_KEY)
    if cached and cached[0] == id(run) and st.session_state.get(RUN) is run:
        return cached[1]
    key = digest(run)
    if st.session_state.get(RUN) is run:
        st.session_state[RUN_KEY] = (id(run), key)
    return key


def digest(run: Run) -> str:
    """The content digest behind `run_key` (no session state). A run read from its files
    (`LazyRun`) is named by the files' bytes, so naming it loads no table."""
    h = hashlib.sha256()
    manifest = {k: v for k, v in run.manifest.items() if k not in ("wall_seconds", "summary")}
    h.update(json.dumps(manifest, sort_keys=True, default=str).encode())
    if isinstance(run, LazyRun):
        for name in TABLES:
            file = run.directory / f"{name}.parquet"
            h.update(name.encode())
            if file.is_file():
                with file.open("rb") as stream:
                    for block in iter(lambda: stream.read(1 << 20), b""):
                        h.update(block)
        return h.hexdigest()[:20]
    for name in TABLES:
        table = run.tables[name]
        h.update(f"{name}:{len(table)}:{','.join(map(str, table.columns))}".encode())
        if len(table):
            h.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return h.hexdigest()[:20]


def open_saved(folder: Path) -> Run:
    """A saved run directory, read lazily: its tables load when a page first asks for
    one, and its summary reads only the columns it needs (`sim.trace.lazy.LazyRun`), so
    a run of millions of messages opens at once. `RunFileError` (one sentence) if the
    directory is not a saved run."""
    return LazyRun.open(folder)


def simulate(scenario: Scenario, label: str, where: Any = None) -> Run:
    """Run a validated Scenario with a progress bar fed by simulated time, drawn in
    `where` (a container) when given, else where the page is."""
    from sim import sizing, world  # world looked up at call time: tests replace simulate

    place = where if where is not None else st
    for line in sizing.warnings(scenario):  # a soft cap: it runs, but says it will be slow
        place.warning(line)
    bar = place.progress(0.0, text=f"Simulating {label}")
    total = float(scenario.duration)

    def report(fraction: float) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        bar.progress(fraction, text=f"Simulated {fraction * total:,.0f} of {total:,.0f} s")

    try:
        return world.simulate(scenario, report)
    finally:
        bar.empty()


# What belongs to the run on screen, not to the session: a new run starts without it.
PER_RUN = (TRACE, CURSOR)


def store(run: Run, source: dict[str, Any]) -> None:
    """Put a finished Run on screen for every page; forget the previous error and what
    the pages had chosen in the previous run (its trace, its cursor)."""
    for name in PER_RUN:
        st.session_state.pop(name, None)
    before = st.session_state.get(RUN)
    if before is not None and before is not run:
        # Kept for the summary cards' changes: what did this run change?
        st.session_state[PREVIOUS] = {"summary": summary(before), "label": heading(before)}
    st.session_state[RUN] = run
    st.session_state[RUN_SOURCE] = source
    st.session_state[RUN_KEY] = (id(run), digest(run))
    st.session_state.pop(ERROR, None)


def run_default() -> None:
    """Run the default built-in scenario once, so no page ever opens empty."""
    names = loading.builtin_names()
    if not names:
        st.session_state[ERROR] = "No built-in scenarios were found in the scenarios folder."
        return
    name = default_scenario(names)
    try:
        scenario = loading.load(name)
        run = simulate(scenario, f"{name} (seed {scenario.seed})")
    except loading.ScenarioError as exc:
        st.session_state[ERROR] = views.error_text(exc, name)
    except Exception as exc:
        log.exception("run of %s failed", name)
        st.session_state[ERROR] = views.error_text(exc, f"The run of {name}")
    else:
        store(run, {"scenario": name, "seed": int(scenario.seed), "label": f"{name}.yaml"})


def current_run() -> Run:
    """The Run on screen; runs the default scenario on a session's first visit. When
    there is none (the default failed), says so and stops the page."""
    if RUN not in st.session_state and ERROR not in st.session_state:
        run_default()
    run = st.session_state.get(RUN)
    if run is None:
        if ERROR in st.session_state:
            st.error(st.session_state[ERROR], icon=":material/error:")
        st.info("No run yet: run a scenario on the Run page.", icon=":material/info:")
        st.page_link(PAGES["run"], label="Go to the Run page", icon=":material/play_arrow:")
        st.stop()
    return run


# The shortest time axis a page draws: a trace of one instant (an imported span of no
# length) still gets sliders, whose two ends must differ.
AXIS_MIN_S = 0.001


def axis_end(run: Run) -> float:
    """Where a page's time axis and sliders end: the run's duration, at least
    `AXIS_MIN_S`."""
    return max(float(run.duration), AXIS_MIN_S)


def heading(run: Run) -> str:
    """`scenario · seed N` for the Run on screen (`name · imported trace` for a trace)."""
    source = st.session_state.get(RUN_SOURCE, {})
    if run.manifest.get("imported"):  # a real trace has no seed
        return f"{source.get('scenario', run.name)} · imported trace"
    seed = source.get("seed", run.manifest.get("seed"))
    return f"{source.get('scenario', run.name)} · seed {seed}"


# --- caches --------------------------------------------------------------------------


def summary(run: Run) -> dict[str, Any]:
    """A run's summary, computed once per run per session."""
    return _summary(run, run_key(run))


@st.cache_data(max_entries=8, show_spinner=False)
def _summary(_run: Run, key: str) -> dict[str, Any]:
    """`Run.summary()`, cached by the run's key."""
    return _run.summary()


# `_run` is left out of the cache key (leading underscore); `key` (run_key) names it.


@st.cache_resource(max_entries=8, show_spinner=False)
def event_times(_run: Run, key: str) -> np.ndarray:
    """The run's send/end times in total order (logical time), computed once per run
    (shared, read-only)."""
    from ui.figures import reads

    times = reads.event_times(_run)
    times.flags.writeable = False  # shared by every rerun (see the module's docstring)
    return times


@st.cache_resource(max_entries=8, show_spinner=False)
def failures(_run: Run, key: str) -> pd.DataFrame:
    """The run's failures, one row each, with their root-cause sentences (see
    `figures.failures.failure_events`); shared, never changed in place."""
    from ui.figures import reads

    return reads.failure_events(_run)


@st.cache_resource(max_entries=8, show_spinner=False)
def trace_index(_run: Run, key: str) -> pd.DataFrame:
    """One row per trace of the run (see `figures.trace_index`); shared, never changed
    in place."""
    from ui.figures import reads

    return reads.trace_index(_run)


@st.cache_data(max_entries=8, show_spinner=False)
def column_values(_run: Run, key: str, table: str, column: str) -> list[str]:
    """The distinct values of a table's column, sorted (filter options)."""
    from ui.figures import reads

    return reads.values(_run, table, column)


@st.cache_resource(max_entries=8, show_spinner=False)
def request_spans(_run: Run, key: str) -> pd.DataFrame:
    """The spans the Compare page reads: requests, and the calls that failed
    (see `figures.reads.request_spans`); shared, never changed in place."""
    from ui.figures import reads

    return reads.request_spans(_run)


@st.cache_resource(max_entries=8, show_spinner=False)
def graph(_run: Run, key: str) -> nx.DiGraph:
    """The run's call graph (see `figures.graph`); shared, never mutated."""
    from ui.figures import reads
    from ui.figures.topology import graph_from_counts

    channels = [(c.src, c.dst, c.protocol) for c in _scenario(_run).channels]
    calls, forward, pairs = reads.graph_counts(_run)
    return graph_from_counts(_run.agents, calls, forward, pairs, channels)


def _scenario(run: Run) -> Scenario:
    """The run's scenario, or an empty one when its manifest no longer validates."""
    try:
        return run.scenario
    except Exception:  # a run saved by another version may not validate any more
        return Scenario.model_construct(channels=[], faults=[])


def scenario_of(run: Run) -> Scenario:
    """The run's scenario model, or an empty one when its manifest no longer validates."""
    return _scenario(run)
