"""Topology page: the agent graph at a moment of the run: protocols, breaker states,
partitioned links and down agents."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from sim import Run
from ui import figures, state

TIME = "topology_time"
FOR = "topology_for"


@st.cache_resource(max_entries=32, show_spinner=False)
def chart(_run: Run, key: str, time: float) -> go.Figure:
    """The graph at `time` (shared: never mutated)."""
    scenario = state.scenario_of(_run)
    moment = figures.moment(_run.faults, list(scenario.faults or []), time, _run.duration)
    return figures.topology(state.graph(_run, key), _run.breakers, moment, time=time)


def edges_table(run: Run, key: str, time: float) -> pd.DataFrame:
    """The graph's edges with their protocol, traffic and breaker state at `time`."""
    g = state.graph(run, key)
    states = figures.state_at(run.breakers, time)
    rows = [
        {
            "caller": a,
            "callee": b,
            "protocol": data.get("protocol", ""),
            "messages": int(data.get("messages", 0)),
            "breaker": states.get((a, b), ""),
        }
        for a, b, data in g.edges(data=True)
    ]
    return pd.DataFrame(rows, columns=["caller", "callee", "protocol", "messages", "breaker"])


run = state.current_run()
key = state.run_key(run)
duration = state.axis_end(run)
cursor = float(min(max(st.session_state.get(state.CURSOR, 0.0), 0.0), duration))
if st.session_state.get(FOR) != (key, cursor) or TIME not in st.session_state:
    # A new run, or a cursor moved on Replay since this page last showed: start there.
    # Moving this page's own slider keeps its time until the cursor moves again.
    st.session_state[FOR] = (key, cursor)
    st.session_state[TIME] = cursor

st.title("Topology", anchor=False)
st.caption(
    f"{state.heading(run)}: who calls whom. Edge colour: protocol; agent colour: role; "
    "mid-edge marker: the breaker's state at the chosen time; dashed red: a partitioned "
    "link; grey, crossed: an agent that is down. The legend names every colour."
)
time = st.slider(
    "Time (s)",
    0.0,
    duration,
    key=TIME,
    persist_state="session",
    step=max(duration / 1000, 0.001),
    help="Starts at Replay's cursor.",
)
scenario = state.scenario_of(run)
moment = figures.moment(run.faults, list(scenario.faults or []), time, duration)
broken = figures.broken_at(moment, figures.state_at(run.breakers, time))
if broken:
    st.warning(f"At {time:.1f} s: " + "; ".join(broken) + ".", icon=":material/warning:")
else:
    st.caption(f"At {time:.1f} s: no agent down, no link cut, no fault open, every breaker closed.")
st.plotly_chart(chart(run, key, float(time)), key="topology_chart", config={"displaylogo": False})
st.dataframe(edges_table(run, key, time), hide_index=True)
