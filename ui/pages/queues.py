"""Queues page: depth, in flight and dead-letter depth of every queue over time, and the
messages the dead-letter queues hold."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from sim import Run
from ui import figures, state

NAMES = "queues_names"


@st.cache_resource(max_entries=16, show_spinner=False)
def chart(_run: Run, key: str, names: tuple[str, ...]) -> go.Figure:
    """The three-panel queue figure (shared: never mutated)."""
    return figures.queues_figure(_run.queues, _run.duration, _run.faults, names=list(names) or None)


@st.cache_data(max_entries=8, show_spinner=False)
def totals(_run: Run, key: str) -> pd.DataFrame:
    """Each queue's final counters and its deepest sample, busiest first."""
    table = figures.queue_totals(_run.queues)
    order = {name: i for i, name in enumerate(figures.busiest(_run.queues, len(table)))}
    return table.sort_values("queue", key=lambda q: q.map(order)).reset_index(drop=True)


@st.cache_data(max_entries=8, show_spinner=False)
def busiest(_run: Run, key: str) -> list[str]:
    """The queues drawn when none is picked."""
    return figures.busiest(_run.queues)


run = state.current_run()
key = state.run_key(run)
st.title("Queues", anchor=False)
st.caption(
    f"{state.heading(run)}: services' worker queues (`<agent>.workers`) and brokers' "
    "queues, sampled over the run."
)

names = state.column_values(run, key, "queues", "queue")
if not names:
    st.info("This run recorded no queue samples.", icon=":material/info:")
else:
    # Dozens of worker queues drawn at once read as noise: by default the busiest few.
    top = busiest(run, key)
    chosen = st.multiselect(
        "Queues",
        names,
        key=NAMES,
        persist_state="session",
        placeholder=f"the {len(top)} busiest" if len(top) < len(names) else "all",
        help="Leave empty for the busiest queues (deepest backlog, then most in flight).",
    )
    shown = chosen or top
    if not chosen and len(top) < len(names):
        st.caption(
            f"The {len(top)} busiest of {len(names)} queues: {', '.join(top)}. Pick others above."
        )
    st.plotly_chart(
        chart(run, key, tuple(shown)), key="queues_chart", config={"displaylogo": False}
    )
    st.markdown("**At the end of the run**")
    table = totals(run, key)
    st.dataframe(
        table,
        hide_index=True,
        height=min(38 + 35 * len(table), 600),
        column_config={"max_depth": st.column_config.NumberColumn("deepest")},
    )

st.markdown("**Dead-letter queue**")
letters = figures.dead_letters(run.messages)
if letters.empty:
    st.caption("No message was dead-lettered in this run.")
else:
    st.dataframe(
        letters,
        hide_index=True,
        column_config={
            "attempt": st.column_config.NumberColumn(
                "deliveries", help="Delivery count when the message was parked."
            ),
            "sent_at": st.column_config.NumberColumn("sent (s)", format="%.3f"),
            "ended_at": st.column_config.NumberColumn("parked (s)", format="%.3f"),
        },
    )
