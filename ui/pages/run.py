"""Run page: pick a built-in scenario and a seed, run it, read its summary.

The finished Run is kept in `st.session_state["run"]`, so a rerun (any widget change) keeps
it and the dashboard's other pages can read the same Run. A failed load or run leaves the
previous Run on screen and says what went wrong in one `st.error`.
"""

from __future__ import annotations

import logging

import streamlit as st

import sim
from sim import loading
from sim.scenario import Scenario
from ui import summary as views

log = logging.getLogger(__name__)

# Session-state keys. RUN and RUN_SOURCE are what other pages read.
RUN = "run"  # the Run on screen
RUN_SOURCE = "run_source"  # {"scenario": built-in name, "seed": int} of that Run
ERROR = "run_error"  # what the last failed load or run said, until the next success
SCENARIO = "scenario"  # the selectbox's value
SEED = "seed"  # the number input's value


def default_scenario(names: list[str]) -> str:
    """The scenario the page opens on: 'collaboration' once it exists, else 'basic'."""
    default = "collaboration" if "collaboration" in names else "basic"
    # A checkout without 'basic' (renamed, or a trimmed scenarios/ folder) still opens.
    return default if default in names or not names else names[0]


def peek(name: str) -> Scenario | None:
    """A built-in scenario, or None when its file is broken.

    A broken file is reported when the user runs it, with its own sentences, so this
    stays quiet about it.
    """
    try:
        return loading.load(name)
    except Exception:
        return None


def scenario_seed(name: str) -> int:
    """The seed written in a built-in scenario; 0 when the file cannot be read."""
    scenario = peek(name)
    return int(scenario.seed) if scenario is not None else 0


def on_scenario_change() -> None:
    """A newly picked scenario starts from its own seed, which reproduces its usual run."""
    st.session_state[SEED] = scenario_seed(st.session_state[SCENARIO])


def execute(name: str, seed: int) -> None:
    """Run a built-in scenario with a seed, feeding a progress bar with simulated time.

    On success the Run replaces the one on screen; on failure the previous Run stays and
    ERROR holds the sentence to show.
    """
    bar = st.progress(0.0, text=f"Simulating {name} (seed {seed})")
    try:
        scenario = loading.load(name)
        total = scenario.duration

        def report(fraction: float) -> None:
            fraction = min(max(float(fraction), 0.0), 1.0)
            bar.progress(fraction, text=f"Simulated {fraction * total:,.0f} of {total:,.0f} s")

        run = sim.run(scenario, seed=seed, progress=report)
    except loading.ScenarioError as exc:
        st.session_state[ERROR] = views.error_text(exc, name)
    except Exception as exc:
        # The user gets one sentence; whoever runs the server still needs the traceback.
        log.exception("run of %s with seed %s failed", name, seed)
        st.session_state[ERROR] = views.error_text(exc, f"The run of {name} with seed {seed}")
    else:
        st.session_state[RUN] = run
        st.session_state[RUN_SOURCE] = {"scenario": name, "seed": seed}
        st.session_state.pop(ERROR, None)
    finally:
        bar.empty()


def show_summary() -> None:
    """The Run on screen: headline cards, then tables of outcomes, latency and faults."""
    run = st.session_state.get(RUN)
    if run is None:
        st.info("No run yet: pick a scenario and press Run.", icon=":material/info:")
        return
    summary = run.summary()
    source = st.session_state.get(RUN_SOURCE, {})
    seed = source.get("seed", run.manifest.get("seed"))
    st.subheader(f"{source.get('scenario', run.name)} · seed {seed}", anchor=False)
    wall = run.manifest.get("wall_seconds")
    timing = f" in {wall:.2f} s of wall time" if isinstance(wall, int | float) else ""
    st.caption(f"{run.duration:,.0f} s simulated{timing}.")

    for column, card in zip(st.columns(6), views.cards(summary), strict=True):
        column.metric(card.label, card.value, help=card.help, border=True)

    share = st.column_config.NumberColumn(format="percent")
    count = st.column_config.NumberColumn(format="localized")
    left, middle, right = st.columns([1, 1, 1.4])
    with left:
        st.markdown("**Requests by outcome**")
        st.dataframe(
            views.requests_table(summary),
            hide_index=True,
            column_config={"count": count, "share": share},
        )
    with middle:
        st.markdown("**Messages by outcome**")
        st.dataframe(
            views.messages_table(summary),
            hide_index=True,
            column_config={"count": count, "share": share},
        )
    with right:
        st.markdown("**Spans by outcome and kind**")
        spans = views.spans_table(run.spans)
        st.dataframe(
            spans,
            hide_index=True,
            column_config={c: count for c in spans.columns if c != "outcome"},
        )

    st.markdown("**Latency of successful calls by channel**")
    ms = "%.1f"
    st.dataframe(
        views.latency_table(summary),
        hide_index=True,
        column_config={
            "calls": count,
            "p50_ms": st.column_config.NumberColumn("p50 (ms)", format=ms),
            "p95_ms": st.column_config.NumberColumn("p95 (ms)", format=ms),
            "p99_ms": st.column_config.NumberColumn("p99 (ms)", format=ms),
        },
    )

    faults = views.faults_table(run.faults)
    if not faults.empty:
        st.markdown("**Faults**")
        st.dataframe(
            faults,
            hide_index=True,
            column_config={
                "start": st.column_config.NumberColumn("start (s)", format="%.1f"),
                "end": st.column_config.NumberColumn(
                    "end (s)", format="%.1f", help="Empty: the fault lasts to the end of the run."
                ),
            },
        )


st.title("Run", anchor=False)

names = loading.builtin_names()
if not names:
    st.error("No built-in scenarios were found in the scenarios folder.", icon=":material/error:")
    st.stop()

# Defaults are written into session state before the widgets exist, so the widgets never
# get a second, conflicting default through `value=`/`index=`.
if st.session_state.get(SCENARIO) not in names:
    st.session_state[SCENARIO] = default_scenario(names)
    st.session_state[SEED] = scenario_seed(st.session_state[SCENARIO])
if SEED not in st.session_state:
    st.session_state[SEED] = scenario_seed(st.session_state[SCENARIO])

pick, seed_box, button = st.columns([3, 1, 1], vertical_alignment="bottom")
name = pick.selectbox(
    "Scenario",
    names,
    key=SCENARIO,
    on_change=on_scenario_change,
    persist_state="session",
    help="Built-in scenarios, from the scenarios folder.",
)
seed = seed_box.number_input(
    "Seed",
    min_value=0,
    step=1,
    format="%d",
    key=SEED,
    persist_state="session",
    help="The same scenario and seed always give the same run.",
)
clicked = button.button("Run", type="primary", icon=":material/play_arrow:", width="stretch")
picked = peek(name)
if picked is not None and picked.description.strip():
    st.caption(" ".join(picked.description.split()))

# The first visit runs the default once, so the page never opens empty; a failure is not
# retried on every rerun (ERROR is set), the user sees it and can press Run.
if clicked or (RUN not in st.session_state and ERROR not in st.session_state):
    execute(name, int(seed))

if ERROR in st.session_state:
    st.error(st.session_state[ERROR], icon=":material/error:")

show_summary()
