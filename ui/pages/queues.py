"""Queues page: depth, in flight and dead-letter depth of every queue over time, and the
messages the dead-letter queues hold."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from sim import Run
from ui import figures, state
from ui.figures import reads

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
    """The queues drawn when none is picked: the busiest of those that held anything."""
    idle = set(figures.idle_queues(_run.queues))
    active = _run.queues[~_run.queues["queue"].isin(list(idle))]
    return figures.busiest(active)


@st.cache_data(max_entries=8, show_spinner=False)
def idle(_run: Run, key: str) -> list[str]:
    """The queues that never held, served or took a message."""
    return figures.idle_queues(_run.queues)


def has_queue_channel(run: Run) -> bool:
    """True when some channel of the run's scenario goes through a queue."""
    channels = getattr(state.scenario_of(run), "channels", []) or []
    return any(getattr(c, "protocol", "") == "queue" for c in channels) or reads.has_protocol(
        run, "queue"
    )


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
    unused = idle(run, key)
    shown = chosen or top
    if not chosen and unused:
        st.caption(
            f"{len(unused)} of {len(names)} queues never held, served or took a message "
            f"and are not drawn: {', '.join(unused[:8])}{' …' if len(unused) > 8 else ''}."
        )
    if not chosen and len(top) < len(names) - len(unused):
        st.caption(
            f"The {len(top)} busiest of {len(names) - len(unused)} queues that held "
            f"anything: {', '.join(top)}. Pick others above."
        )
    if not shown:
        st.info("No queue ever held, served or took a message in this run.", icon=":material/info:")
    else:
        peak = run.queues[run.queues["queue"].isin(list(shown))]["depth"].max()
        if peak == 0:
            st.caption(
                "No backlog: every message was taken as it came (depth 0 throughout); "
                "in flight shows the work under way."
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

topics = figures.topic_subscriptions(state.scenario_of(run), run.queues)
if not topics.empty:
    st.markdown("**Topics and their subscriptions**")
    st.caption(
        "A topic copies every message it takes into each of its subscriptions, which are "
        "served, acked and dead-lettered apart: one subscriber falling behind shows here "
        "as its own backlog while the others keep up."
    )
    st.dataframe(
        topics,
        hide_index=True,
        key="queues_topics",
        column_config={
            "backlog": st.column_config.NumberColumn(
                "backlog", help="Ready and in flight at the end of the run."
            ),
            "deepest": st.column_config.NumberColumn("deepest", help="Deepest ready backlog."),
        },
    )

st.markdown("**Dead-letter queue**")
letters = figures.dead_letters(*reads.dead_letter_rows(run))
if letters.empty:
    if has_queue_channel(run):
        st.caption(
            "No message was dead-lettered in this run: every handler succeeded before its "
            "queue's delivery limit."
        )
    else:
        st.caption(
            "Nothing can be dead-lettered in this run: no channel goes through a queue "
            "(only a queue parks the messages its consumer keeps failing)."
        )
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
            "handler_error": st.column_config.TextColumn(
                "why the handler failed", help="The consumer's error on the last delivery."
            ),
        },
    )
