"""Compare page, two views. Two runs: the run on screen (A) beside another (B), a
scenario run here or a saved run directory, with the same figures on aligned axes and a
table of the differences. Sweeps: a saved or built-in sweep's metrics against offered
load per protocol (ui/sweeps.py), and the protocol advisor (ui/advisor.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import sim
from sim import Run, loading
from ui import advisor, figures, knobs, state, sweeps
from ui import summary as views
from ui.path_form import path_form

log = logging.getLogger(__name__)

OTHER = "compare_run"  # the second run
OTHER_LABEL = "compare_label"
OTHER_ERROR = "compare_error"
OTHER_KEY = "compare_key"  # run_key of run B, computed once
SOURCE = "compare_source"
SCENARIO = "compare_scenario"
SEED = "compare_seed"
PATH = "compare_path"
BUCKET = "compare_bucket"
VIEW = "compare_view"  # two runs, or sweeps
MATCH = "compare_match"  # the matched request picked


def run_other(name: str, seed: int) -> None:
    """Run a built-in scenario as run B."""
    try:
        scenario = loading.load(name).model_copy(update={"seed": seed})
        other = state.simulate(scenario, f"{name} (seed {seed})")
    except loading.ScenarioError as exc:
        st.session_state[OTHER_ERROR] = views.error_text(exc, name)
    except Exception as exc:
        log.exception("compare run of %s failed", name)
        st.session_state[OTHER_ERROR] = views.error_text(exc, f"The run of {name}")
    else:
        st.session_state[OTHER] = other
        st.session_state[OTHER_KEY] = state.digest(other)
        st.session_state[OTHER_LABEL] = f"{name} · seed {seed}"
        st.session_state.pop(OTHER_ERROR, None)


def load_other(path: str) -> None:
    """Load a saved run directory (run.json + Parquet files) as run B, once."""
    folder = Path(path).expanduser()
    try:
        other = sim.load(folder)
    except Exception as exc:
        st.session_state[OTHER_ERROR] = views.error_text(exc, f"Loading {folder}")
    else:
        st.session_state[OTHER] = other
        st.session_state[OTHER_KEY] = state.digest(other)
        st.session_state[OTHER_LABEL] = (
            f"{other.name} · seed {other.manifest.get('seed')} ({folder.name})"
        )
        st.session_state.pop(OTHER_ERROR, None)


@st.cache_data(max_entries=16, show_spinner=False)
def summary_of(_run: Run, key: str) -> dict[str, Any]:
    """A run's summary, computed once per run."""
    return _run.summary()


@st.cache_resource(max_entries=16, show_spinner=False)
def requests_chart(
    _run: Run, key: str, x_range: tuple[float, float], y_range: tuple[float, float], title: str
) -> go.Figure:
    """One run's requests over time on the shared axes (shared: never mutated)."""
    return figures.requests_figure(
        state.request_spans(_run, key),
        _run.duration,
        _run.faults,
        x_range=x_range,
        y_range=y_range,
        title=title,
    )


@st.cache_resource(max_entries=16, show_spinner=False)
def both_chart(
    _a: Run, key_a: str, _b: Run, key_b: str, labels: tuple[str, str], bucket: float
) -> go.Figure:
    """Goodput and p99 of both runs on one time axis (shared: never mutated)."""
    return figures.comparison_figure(
        [
            (labels[0], state.request_spans(_a, key_a), _a.duration, _a.faults),
            (labels[1], state.request_spans(_b, key_b), _b.duration, _b.faults),
        ],
        bucket=bucket,
    )


@st.cache_data(max_entries=8, show_spinner=False)
def matches(_a: Run, key_a: str, _b: Run, key_b: str) -> tuple[dict[str, int], pd.DataFrame]:
    """The requests matched across A and B that ended differently, and the counts."""
    return (
        figures.compare.match_counts(
            state.request_spans(_a, key_a), state.request_spans(_b, key_b)
        ),
        figures.compare.matched_requests(
            state.request_spans(_a, key_a), state.request_spans(_b, key_b)
        ),
    )


def show_difference(run: Run, key: str, other: Run, key_b: str) -> None:
    """B's headline cards with their change against A, then the same requests matched
    across both runs that ended differently (same seed, same arrivals: same trace ids)."""
    summary_a, summary_b = summary_of(run, key), summary_of(other, key_b)
    st.markdown("**B against A**")
    for row in (views.cards(summary_b), views.more_cards(summary_b) + views.llm_cards(summary_b)):
        cells = views.with_deltas(row, summary_b, summary_a)
        for column, card in zip(st.columns(6), cells, strict=False):
            column.metric(
                card.label,
                card.value,
                delta=card.delta,
                delta_color=card.delta_color,  # type: ignore[arg-type]
                help=card.help,
                border=True,
            )
    counts, differ = matches(run, key, other, key_b)
    if not counts["matched"]:
        st.caption("No request of A has the same trace id in B: nothing to match.")
        return
    st.markdown(
        f"**The same requests in A and B**: {counts['matched']:,} matched by trace id; "
        f"{counts['differ']:,} ended differently ({counts['ok_only_in_b']:,} ok only in B, "
        f"{counts['ok_only_in_a']:,} ok only in A)."
    )
    if differ.empty:
        return
    st.dataframe(
        differ[["sentence", "start", "a", "b", "where", "trace"]],
        hide_index=True,
        height=min(38 + 35 * len(differ), 320),
        column_config={
            "sentence": st.column_config.TextColumn("what changed", width="large"),
            "start": st.column_config.NumberColumn("start (s)", format="%.3f"),
            "a": "outcome in A",
            "b": "outcome in B",
            "where": st.column_config.TextColumn(
                "failed at", help="The first call of the request that did not end ok."
            ),
        },
    )
    pick, go_a = st.columns([3, 1], vertical_alignment="bottom")
    trace = pick.selectbox(
        "A request that ended differently",
        differ["trace"].tolist(),
        key=MATCH,
        format_func=lambda t: differ.set_index("trace").loc[t, "sentence"],
    )
    if go_a.button("Open it in A on Cascades", icon=":material/waterfall_chart:") and trace:
        st.session_state[state.TRACE] = trace
        st.switch_page(state.PAGES["cascades"])


def latency_range(*runs: tuple[Run, str]) -> tuple[float, float]:
    """A log10 latency range that holds every request of every run (each with its key)."""
    values = np.concatenate(
        [
            figures.requests(state.request_spans(r, k))["latency"].dropna().to_numpy(dtype=float)
            for r, k in runs
        ]
    )
    values = values[values > 0]
    if not len(values):
        return (-3.0, 1.0)
    return (float(np.log10(values.min())) - 0.1, float(np.log10(values.max())) + 0.1)


st.title("Compare", anchor=False)
view = st.segmented_control(
    "Compare",
    ("two runs", "sweeps"),
    key=VIEW,
    required=True,
    default="two runs",
    persist_state="session",
    label_visibility="collapsed",
)
if view == "sweeps":
    # Sweeps need no run on screen: they never wait for the default run.
    advisor.render(*sweeps.render())
    st.stop()

run = state.current_run()
key = state.run_key(run)
label_a = state.heading(run)
st.caption(f"A is the run on screen ({label_a}). Pick B: run a scenario here, or load a saved run.")

names = loading.builtin_names()
if SCENARIO not in st.session_state or st.session_state[SCENARIO] not in names:
    # By default B is A's scenario with the next seed: how much of a difference is noise.
    st.session_state[SCENARIO] = run.name if run.name in names else (names[0] if names else "")
if SEED not in st.session_state:
    # An imported trace has no seed (None): B starts from seed 1 then.
    seed_a = run.manifest.get("seed")
    st.session_state[SEED] = (seed_a if isinstance(seed_a, int) else 0) + 1
source = st.segmented_control(
    "Run B", ("scenario", "saved run"), key=SOURCE, persist_state="session", default="scenario"
)
if source == "saved run":
    path = path_form(
        "load_b",
        "Run directory",
        PATH,
        "Load B",
        placeholder="runs/my-run",
        help="A directory written by `python -m sim run --out` or Run.save().",
        widths=(3, 1, 1),  # as Run B's row below: the field, the seed's place, the button
    )
    if path:
        load_other(path)
else:
    cols = st.columns([3, 1, 1], vertical_alignment="bottom")
    name = cols[0].selectbox("Scenario for B", names, key=SCENARIO, persist_state="session")
    seed = cols[1].number_input(
        "Seed for B", min_value=0, step=1, format="%d", key=SEED, persist_state="session"
    )
    if cols[2].button("Run B", type="primary", icon=":material/play_arrow:", width="stretch"):
        run_other(name, int(seed))

if OTHER_ERROR in st.session_state:
    st.error(st.session_state[OTHER_ERROR], icon=":material/error:")
other = st.session_state.get(OTHER)
if other is None:
    st.info("No run B yet.", icon=":material/info:")
    st.stop()
key_b = st.session_state.get(OTHER_KEY) or state.digest(other)
st.session_state[OTHER_KEY] = key_b
label_b = st.session_state.get(OTHER_LABEL, other.name)
# Two runs of one scenario read the same but for the seed: name the knobs they differ in.
knobs_a, knobs_b = knobs.differences(state.scenario_of(run), state.scenario_of(other))
if knobs_a:
    label_a += " · " + ", ".join(knobs_a)
    label_b += " · " + ", ".join(knobs_b)
    st.caption(
        "A and B differ in: "
        + "; ".join(
            f"{x} in A, {y.rsplit(' ', 1)[-1]} in B" for x, y in zip(knobs_a, knobs_b, strict=True)
        )
        + "."
    )
elif run.name == other.name:
    st.caption("A and B set every knob alike: what differs between them is the seed (noise).")

show_difference(run, key, other, key_b)

longest = float(max(run.duration, other.duration))
y_range = latency_range((run, key), (other, key_b))
left, right = st.columns(2)
with left:
    st.plotly_chart(
        requests_chart(run, key, (0.0, longest), y_range, f"A: {label_a}"),
        key="compare_a",
        config={"displaylogo": False},
    )
with right:
    st.plotly_chart(
        requests_chart(other, key_b, (0.0, longest), y_range, f"B: {label_b}"),
        key="compare_b",
        config={"displaylogo": False},
    )
bucket = st.select_slider(
    "Bucket (s)",
    (0.5, 1.0, 2.0, 5.0, 10.0),
    value=1.0,
    key=BUCKET,
    persist_state="session",
    help="Goodput and p99 are computed per bucket of request start times.",
)
st.plotly_chart(
    both_chart(run, key, other, key_b, ("A", "B"), float(bucket)),
    key="compare_both",
    config={"displaylogo": False},
)
st.markdown("**Summary: A against B**")
diff = figures.summary_diff(summary_of(run, key), summary_of(other, key_b))
st.dataframe(
    diff,
    hide_index=True,
    height=38 + 35 * len(diff),  # every row: the table is short, scrolling hides the end
    column_config={
        "a": st.column_config.NumberColumn("A", format="%.4g"),
        "b": st.column_config.NumberColumn("B", format="%.4g"),
        "change": st.column_config.NumberColumn("B − A", format="%.4g"),
        "relative": st.column_config.NumberColumn("relative", format="percent"),
        "better": st.column_config.TextColumn(
            "better",
            help="Which run did better. Latency counts only requests that succeeded, so a "
            "run that is faster but succeeds less often does not win on latency.",
        ),
    },
)
