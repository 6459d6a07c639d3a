"""Breakers page: every circuit breaker's state over the whole run, with its rates,
the reason for each transition, and its settings."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from sim import Run
from ui import figures, state
from ui.figures import reads

EDGES = "breakers_edges"
# The settings shown beside a breaker: what decides when it opens and for how long,
# and the channel's timeout (a slow call is often a timed-out one).
BREAKER_SHOWN = (
    "mode",
    "window_type",
    "window",
    "failure_rate",
    "slow_rate",
    "slow_call",
    "min_calls",
    "open_for",
    "half_open_calls",
)


@st.cache_resource(max_entries=16, show_spinner=False)
def chart(_run: Run, key: str, edges: tuple[str, ...]) -> go.Figure:
    """The bands-and-rates figure (shared: never mutated)."""
    return figures.breakers_figure(
        _run.breakers,
        _run.duration,
        _run.faults,
        edges=list(edges) or None,
        spans=reads.breaker_calls(_run, windows(_run)),
        windows=windows(_run),
    )


def windows(run: Run) -> dict[tuple[str, str], tuple[int, float | None]]:
    """Each count-window breaker's (window calls, slow-call seconds), by (caller, callee)."""
    out: dict[tuple[str, str], tuple[int, float | None]] = {}
    for channel in getattr(state.scenario_of(run), "channels", []) or []:
        breaker = getattr(channel, "breaker", None)
        if breaker is not None and getattr(breaker, "window_type", "count") == "count":
            out[(channel.src, channel.dst)] = (int(breaker.window), breaker.slow_call)
    return out


def settings_grid(run: Run, edges: list[str]) -> pd.DataFrame:
    """Every shown breaker's settings in one table: a row per setting, a column per
    breaker (one compact table, not one per breaker)."""
    columns = {}
    for edge in edges:
        agent, target = (s.strip() for s in edge.split("→", 1))
        found = settings(run, agent, target)
        if not found.empty:
            columns[edge] = found.drop_duplicates("setting").set_index("setting")["value"]
    if not columns:
        return pd.DataFrame(columns=["setting"])
    return pd.DataFrame(columns).fillna("").rename_axis("setting").reset_index()


def settings(run: Run, agent: str, target: str) -> pd.DataFrame:
    """What the scenario sets on the (agent, target) channel that bears on its breaker,
    flattened to `setting, value` rows (`breaker.failure_rate`, `timeout`...)."""
    scenario = state.scenario_of(run)
    rows: list[tuple[str, str]] = []
    for channel in getattr(scenario, "channels", []) or []:
        if channel.src == agent and channel.dst == target:
            dumped = channel.model_dump(mode="json", by_alias=True)
            breaker = dumped.get("breaker")
            if isinstance(breaker, dict):
                rows += [(k, _show(breaker[k])) for k in BREAKER_SHOWN if k in breaker]
            else:
                rows.append(("breaker", "none in the scenario"))
            retry = dumped.get("retry")
            if isinstance(retry, dict) and "max_attempts" in retry:
                rows.append(("retry attempts", _show(retry["max_attempts"])))
            rows.append(("timeout (s)", _show(dumped.get("timeout"))))
            rows.append(("protocol", _show(dumped.get("protocol"))))
    return pd.DataFrame(rows, columns=["setting", "value"])


def _show(value: object) -> str:
    """A setting's value as shown: 'none', a float in short form, else as text."""
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def time_in_state(bands: pd.DataFrame) -> pd.DataFrame:
    """Seconds each breaker spent in each state: one row per breaker, one column per
    state."""
    spent = bands.assign(seconds=bands["end"] - bands["start"])
    table = spent.pivot_table(
        index="edge", columns="state", values="seconds", aggfunc="sum", fill_value=0.0
    )
    order = [s for s in figures.BREAKER_COLORS if s in table.columns]
    table = table[order + [c for c in table.columns if c not in order]]
    table.columns.name = None
    return table.rename_axis("breaker").reset_index()


run = state.current_run()
key = state.run_key(run)
st.title("Breakers", anchor=False)
st.caption(
    f"{state.heading(run)}: one band per (caller → callee) breaker over the whole run, "
    "coloured by state; hover a band for the reason it began."
)

if run.breakers.empty:
    st.info(
        "No circuit breaker changed state in this run: no channel has a breaker, or none "
        "ever left CLOSED.",
        icon=":material/info:",
    )
    st.stop()

bands = figures.bands(run.breakers, run.duration)
edges = list(dict.fromkeys(bands["edge"]))
chosen = st.multiselect(
    "Breakers",
    edges,
    key=EDGES,
    persist_state="session",
    placeholder="all",
    help="Leave empty to show every breaker.",
)
st.plotly_chart(chart(run, key, tuple(chosen)), key="breakers_chart", config={"displaylogo": False})
if windows(run):
    st.caption(
        "Rates: over each breaker's window after every call it judged (from the spans; an "
        "estimate, as a breaker's window restarts at its transitions); dots: the rates it "
        "recorded at its transitions."
    )

st.markdown("**Transitions**")
transitions = figures.transitions_table(run.breakers)
if chosen:
    transitions = transitions[transitions["breaker"].isin(chosen)]
st.dataframe(
    transitions,
    hide_index=True,
    column_config={
        "time": st.column_config.NumberColumn("time (s)", format="%.3f"),
        "failure_rate": st.column_config.NumberColumn("failure rate", format="percent"),
        "slow_rate": st.column_config.NumberColumn("slow rate", format="percent"),
        "calls": st.column_config.NumberColumn(
            "calls judged", help="Calls in the breaker's window when it changed state."
        ),
    },
    height=min(38 + 35 * len(transitions), 420),
)

# Below the transitions: what the breakers are set to, and how long each state lasted.
left, right = st.columns([1.2, 1])
with left:
    st.markdown("**Settings**")
    grid = settings_grid(run, chosen or edges)
    if len(grid.columns) > 1:
        st.dataframe(grid, hide_index=True)
    else:
        st.caption("The scenario lists no channel for these breakers.")
with right:
    st.markdown("**Time in each state (s)**")
    spent = time_in_state(bands[bands["edge"].isin(chosen or edges)])
    st.dataframe(
        spent,
        hide_index=True,
        column_config={
            c: st.column_config.NumberColumn(format="%.1f") for c in spent.columns if c != "breaker"
        },
    )
