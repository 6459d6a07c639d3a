"""Cascades page: the waterfall of one trace's spans, as Jaeger draws a trace.

Pick a trace (the ones that timed out first), or arrive with the trace chosen on
Replay. Each hop's deadline is marked, the moment a timeout fired is crossed, and the
work that went on after a caller had given up is hatched red.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from sim import Run
from ui import figures, state
from ui.figures import reads

PICK = "cascades_trace"
SHOW = "cascades_show"
BROWSED = "cascades_browsed"  # the trace shown here when none was chosen (run key, trace)
CHOICES = {
    "timed out": "Traces where some call timed out, hit its deadline or was cancelled.",
    "failed": "Traces with any span that did not end ok.",
    "slowest": "The longest traces first.",
    "all": "Every trace, by start time.",
}
MAX_OPTIONS = 500


@st.cache_data(max_entries=16, show_spinner=False)
def candidates(_run: Run, key: str, show: str) -> pd.DataFrame:
    """The traces offered for a choice of SHOW, at most MAX_OPTIONS of them."""
    index = state.trace_index(_run, key)
    if show == "timed out":
        index = index[index["timeouts"] > 0]
    elif show == "failed":
        index = index[index["failed"] > 0]
    elif show == "slowest":
        index = index.sort_values("duration", ascending=False, kind="stable")
    return index.head(MAX_OPTIONS).reset_index(drop=True)


@st.cache_resource(max_entries=32, show_spinner=False)
def cascade(_run: Run, key: str, trace: str) -> go.Figure:
    """The waterfall of one trace (shared: never mutated)."""
    spans = reads.trace_spans(_run, trace)
    return figures.waterfall(spans, _run.faults, _run.duration, title=f"trace {trace}")


def on_show(run: Run, key: str) -> None:
    """Another list offered: show its first trace (the slowest, the first timeout...).

    Browsing lists is not choosing a trace: the dashboard's chosen trace (which filters
    Replay) is dropped, and only a trace picked by hand becomes it again.
    """
    table = candidates(run, key, st.session_state.get(SHOW) or "all")
    if not table.empty:
        st.session_state.pop(state.TRACE, None)
        st.session_state[BROWSED] = (key, str(table["correlation_id"].iloc[0]))


def on_pick() -> None:
    """The picked trace becomes the dashboard's chosen trace (Replay filters to it)."""
    st.session_state[state.TRACE] = st.session_state.get(PICK) or ""


def describe(spans: pd.DataFrame) -> str:
    """One paragraph on what happened to a trace: the root's outcome, the timeouts in
    firing order, and the work done after a caller gave up."""
    tree = figures.tree_order(spans)
    if tree.empty:
        return "This trace has no spans."
    root = tree.iloc[0]
    duration = (root["end"] if pd.notna(root["end"]) else float("nan")) - root["start"]
    parts = [
        f"The request from **{root['agent']}** to **{root['peer']}** ended "
        f"**{root['outcome']}** after {duration:.3f} s ({len(tree)} spans)."
    ]
    fired = tree[tree["outcome"].isin(figures.cascade.GAVE_UP)].sort_values("end")
    for row in fired.itertuples(index=False):
        parts.append(f"{row.agent} → {row.peer} {row.outcome} at {row.end:.3f} s.")
    given_up = figures.gave_up_at(tree)
    ends = tree["end"]
    wasted = (ends - pd.concat([tree["start"], given_up], axis=1).max(axis=1)).where(
        ends > given_up
    )
    if wasted.notna().any():
        parts.append(
            f"**{wasted.sum():.3f} s** of work went on after a caller had given up "
            f"({int(wasted.notna().sum())} span(s), hatched red)."
        )
    return " ".join(parts)


run = state.current_run()
key = state.run_key(run)
st.title("Cascades", anchor=False)
st.caption(f"{state.heading(run)}: one trace's spans as a waterfall, in call order.")

index = state.trace_index(run, key)
if index.empty:
    st.info("This run has no spans, so there is no trace to show.", icon=":material/info:")
    st.stop()

top = st.columns([2, 3], vertical_alignment="bottom")
show = top[0].segmented_control(
    "Offer",
    list(CHOICES),
    key=SHOW,
    persist_state="session",
    default="timed out",
    on_change=on_show,
    args=(run, key),
    help=" ".join(f"{k}: {v}" for k, v in CHOICES.items()),
)
table = candidates(run, key, show or "all")
if table.empty:
    table = candidates(run, key, "all")
    st.caption(f"No trace is '{show}' in this run: offering every trace.")
rows = {r.correlation_id: r for r in table.itertuples(index=False)}
known = set(index["correlation_id"])
chosen = st.session_state.get(state.TRACE) or ""
if chosen not in known:
    chosen = ""
browsed = st.session_state.get(BROWSED)
if not chosen and browsed and browsed[0] == key and browsed[1] in known:
    chosen = browsed[1]
options = list(rows)
if chosen and chosen not in rows:
    options.insert(0, chosen)
    match = index[index["correlation_id"] == chosen]
    rows[chosen] = next(match.itertuples(index=False))
if not chosen:
    # Shown, not chosen: Replay stays unfiltered until the user picks a trace.
    chosen = options[0]
st.session_state[PICK] = chosen


def label(trace: str) -> str:
    """How a trace reads in the picker: id, outcome, duration, spans, timeouts."""
    row = rows[trace]
    return f"{trace} · {row.outcome or 'no root'} · {row.duration:.3f} s · {row.spans} spans" + (
        f" · {row.timeouts} timed out" if row.timeouts else ""
    )


trace = top[1].selectbox(
    f"Trace ({len(options):,} offered)",
    options,
    key=PICK,
    persist_state="session",
    on_change=on_pick,
    format_func=label,
    help="Replay's trace filter picks the same trace.",
)

spans = reads.trace_spans(run, trace)
st.markdown(describe(spans))
causes = figures.failures.root_causes(state.failures(run, key), trace)
if causes:
    st.warning(
        "**What went wrong, and why**\n\n" + "\n".join(f"- {line}" for line in causes),
        icon=":material/report:",
    )
st.plotly_chart(cascade(run, key, trace), key="cascade_chart", config={"displaylogo": False})

tree = figures.tree_order(spans)
shown = tree.assign(
    span=[
        "\u2003" * d + f"{a} → {p}"
        for d, a, p in zip(tree["depth"], tree["agent"], tree["peer"], strict=True)
    ],
    duration=tree["end"] - tree["start"],
)
st.dataframe(
    shown[
        [
            "span",
            "name",
            "kind",
            "protocol",
            "start",
            "end",
            "duration",
            "deadline",
            "wait",
            "outcome",
            "error",
        ]
    ],
    hide_index=True,
    column_config={
        c: st.column_config.NumberColumn(format="%.3f")
        for c in ("start", "end", "duration", "deadline", "wait")
    },
)
if st.button(f"Replay trace {trace}", icon=":material/timeline:"):
    st.session_state[state.TRACE] = trace
    st.switch_page(state.PAGES["replay"])
