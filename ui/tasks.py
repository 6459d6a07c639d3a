"""The A2A tasks section of Replay: each task's states as bands over the run, and a
compact table of the tasks. A run without tasks shows nothing."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from sim import Run
from ui.figures import tasks as figure

CHART = "tasks_chart"
FIXED = ("task", "trace", "agent", "final_state", "open", "start", "end")  # not states


@st.cache_resource(max_entries=16, show_spinner=False)
def chart(_run: Run, key: str) -> go.Figure:
    """The task-state bands of a run (shared: never mutated)."""
    return figure.tasks_figure(_run.tasks, _run.duration, _run.faults)


@st.cache_data(max_entries=16, show_spinner=False)
def table(_run: Run, key: str) -> pd.DataFrame:
    """One row per task: final state, open at the end, seconds in each state."""
    return figure.summary(_run.tasks, _run.duration)


def show(run: Run, key: str) -> None:
    """The section: nothing when the run has no task."""
    if run.tasks.empty:
        return
    rows = table(run, key)
    still = int(rows["open"].sum())
    st.subheader("A2A tasks", anchor=False)
    st.caption(
        f"{len(rows):,} task(s), {still:,} still open at the end. One row per task: "
        "blue while submitted or working, hatched while it waits on its client "
        "(input-required, auth-required), a marker where it ended (completed, failed, "
        "canceled, rejected), an arrow at the end when it never did. Hover for the reason."
    )
    st.plotly_chart(chart(run, key), key=CHART, config={"displaylogo": False})
    st.markdown("**Tasks**")
    states = [c for c in rows.columns if c not in FIXED]  # seconds in each state
    st.dataframe(
        rows,
        hide_index=True,
        column_config={
            "final_state": st.column_config.TextColumn("final state"),
            "open": st.column_config.CheckboxColumn(
                "open at the end", help="Never reached a terminal state by the end of the run."
            ),
            "start": st.column_config.NumberColumn("start (s)", format="%.1f"),
            "end": st.column_config.NumberColumn("end (s)", format="%.1f"),
            **{s: st.column_config.NumberColumn(f"{s} (s)", format="%.1f") for s in states},
        },
        height=min(38 + 35 * len(rows), 420),
    )
