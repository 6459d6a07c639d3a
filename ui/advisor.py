"""The Compare page's protocol advisor: a workload's needs in, a protocol stack out,
with the sweep evidence it rests on (`sim.advisor`).

It judges on the sweep on screen (ui/sweeps.py) when that sweep varies protocol and
load; otherwise it offers the built-in protocols-under-load sweep from the cache that
`python -m sim advise` shares (`sim.advisor.ADVISOR_CACHE`), run there when missing.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import sim.advisor
from sim.advisor import Advice, Needs, advise
from ui import sweeps
from ui.figures import sweep as charts

P99 = "advisor_p99"
LOSS_OK = "advisor_loss_ok"
STREAMING = "advisor_streaming"
BOTH_TALK = "advisor_bidirectional"
LOAD = "advisor_load"


@st.cache_data(max_entries=32, show_spinner=False)
def advice_of(_rows: pd.DataFrame, key: str, needs: str) -> Advice:
    """The advisor's answer for `needs` (a Needs as JSON) on the sweep on screen."""
    return advise(_rows, Needs.model_validate_json(needs))


@st.cache_resource(max_entries=32, show_spinner=False)
def advice_chart(_advice: Advice, key: str, needs: str) -> go.Figure:
    """The advice's evidence figure (shared: never mutated)."""
    return charts.advice_figure(_advice, Needs.model_validate_json(needs))


# The advisor's per-protocol columns shown, in order (the rest are in its evidence).
VERDICT_SHOWN = (
    "protocol",
    "p99",
    "p99_ci",
    "p99_faults",
    "goodput",
    "lost_rate",
    "amplification",
    "streams",
    "bidirectional",
    "meets_p99",
    "meets_loss",
    "meets_features",
)


def verdicts_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The advisor's per-protocol numbers as shown (latency in ms)."""
    out = verdicts[[c for c in VERDICT_SHOWN if c in verdicts.columns]].copy()
    for column in ("p99", "p99_ci", "p99_faults"):
        if column in out.columns:
            out[column] = out[column] * 1000.0
    return out


VERDICT_COLUMNS = {
    "p99": st.column_config.NumberColumn("p99 (ms)", format="%.0f", help="Clean network."),
    "p99_ci": st.column_config.NumberColumn("± (ms)", format="%.0f"),
    "p99_faults": st.column_config.NumberColumn("p99, faults (ms)", format="%.0f"),
    "goodput": st.column_config.NumberColumn("goodput (/s)", format="%.1f"),
    "lost_rate": st.column_config.NumberColumn(
        "lost", format="percent", help="The worst share lost, clean or under faults."
    ),
    "amplification": st.column_config.NumberColumn("msgs/req", format="%.2f"),
    "bidirectional": st.column_config.CheckboxColumn("both ways"),
    "meets_p99": st.column_config.CheckboxColumn("p99 ok"),
    "meets_loss": st.column_config.CheckboxColumn("loss ok"),
    "meets_features": st.column_config.CheckboxColumn("features ok"),
}


def needs_inputs() -> Needs:
    """The workload's needs, from the advisor's inputs."""
    if LOSS_OK not in st.session_state:
        st.session_state[LOSS_OK] = True
    if LOAD not in st.session_state:
        st.session_state[LOAD] = 75
    target, load = st.columns(2)
    p99 = target.number_input(
        "p99 target (ms)",
        min_value=1.0,
        value=None,
        step=50.0,
        format="%.0f",
        key=P99,
        placeholder="no target",
        persist_state="session",
        help="The 99th percentile of latency the workload must meet; empty: no target.",
    )
    percent = load.slider(
        "Offered load (% of capacity)",
        min_value=5,
        max_value=200,
        step=5,
        key=LOAD,
        persist_state="session",
        help="Judged at the smallest swept load at or above this one.",
    )
    flags = st.columns(3)
    loss_ok = flags[0].checkbox(
        "Loss tolerable",
        key=LOSS_OK,
        persist_state="session",
        help="Unticked: a request must never be lost, even under faults.",
    )
    streaming = flags[1].checkbox(
        "Partial results stream",
        key=STREAMING,
        persist_state="session",
        help="The caller needs progress or partial results before the final answer.",
    )
    both = flags[2].checkbox(
        "Both sides talk",
        key=BOTH_TALK,
        persist_state="session",
        help="Either side may speak at any time (a negotiation, not one question).",
    )
    return Needs(
        p99=float(p99) / 1000.0 if p99 else None,
        loss_tolerable=bool(loss_ok),
        streaming=bool(streaming),
        bidirectional=bool(both),
        load=float(percent) / 100.0,
    )


def advisable(rows: pd.DataFrame | None) -> bool:
    """True when the sweep varies protocol and load, as the advisor needs."""
    return rows is not None and {"protocol", "load"} <= set(rows.columns)


def render(rows: pd.DataFrame | None, key: str | None) -> None:
    """The advisor: needs in, a protocol stack out, with the evidence it rests on."""
    st.header("Advisor", anchor=False)
    st.caption(
        "Start with HTTP, add a queue for reliability, SSE for progress, WebSocket for a "
        "conversation: the advisor checks that rule against the sweep's numbers."
    )
    needs = needs_inputs()
    if rows is None or key is None or not advisable(rows):
        why = (
            "No sweep is open."
            if rows is None
            else "The sweep on screen does not vary protocol and load."
        )
        name = sim.advisor.ADVISOR_SWEEP
        st.info(
            f"{why} The advisor judges on the built-in {name} sweep: it is read from "
            f"{sim.advisor.ADVISOR_CACHE} when `python -m sim advise` or this page ran it "
            "before, else run there.",
            icon=":material/info:",
        )
        if st.button(f"Open or run {name}", icon=":material/science:"):
            if sweeps.run_advisor_sweep():
                st.rerun()  # from the top: the sweep views above show it too
            st.error(st.session_state.get(sweeps.ERROR, ""), icon=":material/error:")
        return
    wanted = needs.model_dump_json()
    try:
        advice = advice_of(rows, key, wanted)
    except ValueError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    shout = st.success if advice.met else st.warning
    shout(advice.headline, icon=":material/recommend:" if advice.met else ":material/warning:")
    st.markdown("\n".join(f"- {line}" for line in advice.reasons))
    for note in advice.notes:
        st.info(note, icon=":material/lightbulb:")
    st.markdown(f"**Each protocol at {advice.load:.0%} of capacity**")
    st.dataframe(verdicts_table(advice.verdicts), hide_index=True, column_config=VERDICT_COLUMNS)
    st.plotly_chart(
        advice_chart(advice, key, wanted), key="advice_chart", config=sweeps.CHART_CONFIG
    )
    with st.expander(f"Evidence: the {len(advice.evidence)} runs behind it"):
        st.dataframe(advice.evidence, hide_index=True)


__all__ = ["advisable", "needs_inputs", "render"]
