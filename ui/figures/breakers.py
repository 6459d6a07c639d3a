"""Circuit breakers over a whole run: state bands per (caller, callee) and their rates.

The Hystrix dashboard shows one breaker's state now and two minutes of history, and
hides HALF_OPEN (users asked for both, Netflix/Hystrix#1597, #1195); here every state of
every breaker is a band over the whole run, with the reason of each transition on hover
and the failure-rate and slow-call-rate lines under it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ui.figures.common import (
    BREAKER_COLORS,
    BREAKER_STATES,
    EXTRA_COLORS,
    add_fault_bands,
    base_layout,
    color_for,
    empty_figure,
    finite,
    time_axis_title,
)

BAND_COLUMNS = ["edge", "agent", "target", "state", "start", "end", "reason", "calls"]
# A band narrower than this share of the run is drawn this wide (its hover keeps the
# true times): a HALF_OPEN of a few milliseconds would otherwise be invisible.
MIN_BAND_SHARE = 0.004
# Span outcomes a breaker never counted: calls it refused, calls still open at the end.
UNCOUNTED = ("rejected", "open", "cancelled")
WINDOW_WORDS = re.compile(r"over the last (\d+) calls")


def reason_text(reason: str, calls: object) -> str:
    """A transition's reason with the number of calls it was judged on: the simulator
    says 'over the last 20 calls' (the window's size) while the window held 10."""
    try:
        judged = int(calls)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return reason
    found = WINDOW_WORDS.search(reason)
    if not found or judged <= 0 or judged == int(found.group(1)):
        return reason
    return WINDOW_WORDS.sub(
        f"over {judged} calls (the window holds up to the last {found.group(1)})", reason
    )


def rolling_rates(
    spans: pd.DataFrame, agent: str, target: str, window: int, slow_call: float | None = None
) -> pd.DataFrame:
    """A breaker's failure and slow-call rates after every call it judged, from the
    spans: `time` (the call's end), `failure_rate`, `slow_rate` over the last `window`
    calls. The transitions record the rates only when the state changes; these show
    them rising towards the threshold (an estimate: a breaker's window also restarts
    at its transitions)."""
    calls = spans[
        (spans["agent"] == agent)
        & (spans["peer"] == target)
        & (spans["kind"] == "client")
        & ~spans["outcome"].isin(UNCOUNTED)
        & spans["end"].notna()
    ].sort_values("end", kind="stable")
    if calls.empty:
        return pd.DataFrame(columns=["time", "failure_rate", "slow_rate"])
    failed = (calls["outcome"] != "ok").astype(float)
    took = calls["end"] - calls["start"]
    slow = (took >= slow_call).astype(float) if slow_call else pd.Series(np.nan, calls.index)
    size = max(int(window), 1)
    return pd.DataFrame(
        {
            "time": calls["end"].to_numpy(dtype=float),
            "failure_rate": failed.rolling(size, min_periods=1).mean().to_numpy(),
            "slow_rate": slow.rolling(size, min_periods=1).mean().to_numpy(),
        }
    )


def edge_label(agent: str, target: str) -> str:
    """How a (caller, callee) breaker is named on axes: `caller → callee`."""
    return f"{agent} → {target}"


def bands(breakers: pd.DataFrame, duration: float) -> pd.DataFrame:
    """The breakers' state intervals: one row per (edge, state) stretch.

    Each breaker is in its first row's `from_state` from 0 until its first transition,
    then in each `to_state` until the next transition or `duration`. Columns: `edge,
    agent, target, state, start, end, reason` (of the transition that began the stretch,
    empty for the first) and `calls`.
    """
    if breakers.empty:
        return pd.DataFrame(columns=BAND_COLUMNS)
    rows = []
    ordered = breakers.sort_values("time", kind="stable")
    for (agent, target), group in ordered.groupby(["agent", "target"], sort=True):
        times = group["time"].astype(float).tolist()
        states = group["to_state"].astype(str).tolist()
        reasons = group["reason"].astype(str).tolist()
        calls = group["calls"].tolist() if "calls" in group.columns else [0] * len(times)
        edge = edge_label(str(agent), str(target))
        first = str(group["from_state"].iloc[0])
        if times[0] > 0:
            rows.append([edge, agent, target, first, 0.0, times[0], "", 0])
        for i, state in enumerate(states):
            stop = times[i + 1] if i + 1 < len(times) else duration
            rows.append(
                [edge, agent, target, state, times[i], max(stop, times[i]), reasons[i], calls[i]]
            )
    return pd.DataFrame(rows, columns=BAND_COLUMNS)


def state_at(breakers: pd.DataFrame, time: float) -> dict[tuple[str, str], str]:
    """Each breaker's state at `time`: {(caller, callee): state}. A breaker whose first
    transition is later than `time` is in that transition's `from_state`."""
    if breakers.empty:
        return {}
    out: dict[tuple[str, str], str] = {}
    for (agent, target), group in breakers.sort_values("time", kind="stable").groupby(
        ["agent", "target"], sort=True
    ):
        before = group[group["time"] <= time]
        state = before["to_state"].iloc[-1] if len(before) else group["from_state"].iloc[0]
        out[(str(agent), str(target))] = str(state)
    return out


def breakers_figure(
    breakers: pd.DataFrame,
    duration: float,
    faults: pd.DataFrame | None = None,
    *,
    edges: list[str] | None = None,
    title: str | None = None,
    spans: pd.DataFrame | None = None,
    windows: Mapping[tuple[str, str], tuple[int, float | None]] | None = None,
) -> go.Figure:
    """State bands per breaker (top) and failure-rate / slow-call-rate lines (bottom).

    With `spans` and `windows` ({(caller, callee): (window calls, slow-call seconds)})
    the rates are drawn after every call (`rolling_rates`), with the rates recorded at
    the transitions as dots on them; without, as steps between transitions.

    Bands are horizontal bars (`base=start`, `x=end-start`), one trace per state so the
    legend reads as a key; each transition's reason, rates and call count are on hover.
    The rates are recorded at each transition, so they are drawn as steps between them.
    `edges` limits the figure to some `caller → callee` labels. Fault windows shaded.
    """
    table = bands(breakers, duration)
    if edges:
        table = table[table["edge"].isin(edges)]
    if table.empty:
        return empty_figure("No breaker changed state in this run.")
    order = list(dict.fromkeys(table["edge"]))
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.55, 0.45],
        vertical_spacing=0.1,
    )
    for band in _state_bars(table, duration):
        fig.add_trace(band, row=1, col=1)
    for line in _rate_lines(breakers, order, duration, spans, windows or {}):
        fig.add_trace(line, row=2, col=1)
    add_fault_bands(fig, faults, duration)
    base_layout(fig, height=max(460, 330 + 50 * len(order)), title=title)
    fig.update_layout(barmode="overlay", hovermode="closest")
    fig.update_yaxes(
        categoryorder="array", categoryarray=order[::-1], fixedrange=True, row=1, col=1
    )
    fig.update_yaxes(
        title="rate over the window" if windows else "rate at transition",
        tickformat=".0%",
        range=[0, 1.05],
        row=2,
        col=1,
    )
    fig.update_xaxes(range=[0, duration])
    fig.update_xaxes(title=time_axis_title(), row=2, col=1)
    return fig


def _state_bars(table: pd.DataFrame, duration: float) -> list[go.Bar]:
    """One bar trace per state of `bands` rows, Resilience4j's states first, in their
    order, then any other sorted; a band too short to see is drawn MIN_BAND_SHARE of
    the run wide."""
    states = [s for s in BREAKER_STATES if s in set(table["state"])]
    states += sorted(set(table["state"]) - set(states))
    bars = []
    for k, state in enumerate(states):
        part = table[table["state"] == state]
        bars.append(
            go.Bar(
                orientation="h",
                y=part["edge"].tolist(),
                base=part["start"].tolist(),
                x=(part["end"] - part["start"]).clip(lower=duration * MIN_BAND_SHARE).tolist(),
                marker={"color": color_for(state, BREAKER_COLORS, k), "line": {"width": 0}},
                name=state,
                legendgroup=state,
                hovertext=[
                    f"<b>{r.edge}</b>: {state} {r.start:.2f}–{r.end:.2f} s"
                    + (f"<br>{reason_text(r.reason, r.calls)}" if r.reason else "")
                    + (f"<br>{r.calls} calls in the window" if r.calls else "")
                    for r in part.itertuples(index=False)
                ],
                hoverinfo="text",
                width=0.7,
            )
        )
    return bars


def _rate_lines(
    breakers: pd.DataFrame,
    order: list[str],
    duration: float,
    spans: pd.DataFrame | None = None,
    windows: Mapping[tuple[str, str], tuple[int, float | None]] | None = None,
) -> list[go.Scatter]:
    """Each breaker's failure rate (solid) and slow-call rate (dotted), one colour per
    breaker of `order`: after every call when its window is known (`windows`), else as
    steps between transitions; a rate never recorded is left out."""
    selected = breakers.copy()
    selected["edge"] = [
        edge_label(str(a), str(t))
        for a, t in zip(selected["agent"], selected["target"], strict=True)
    ]
    selected = selected[selected["edge"].isin(order)].sort_values("time", kind="stable")
    lines = []
    for k, edge in enumerate(order):
        rows = selected[selected["edge"] == edge]
        color = EXTRA_COLORS[k % len(EXTRA_COLORS)] if len(order) > 1 else "#1f77b4"
        for column, dash, label in (
            ("failure_rate", "solid", "failure rate"),
            ("slow_rate", "dot", "slow-call rate"),
        ):
            if column not in rows.columns or not rows[column].map(finite).any():
                continue
            pair = (str(rows["agent"].iloc[0]), str(rows["target"].iloc[0]))
            if spans is not None and windows and pair in windows:
                rates = rolling_rates(spans, *pair, *windows[pair])
                if rates[column].map(finite).any():
                    lines.append(_rolling_line(rates, column, f"{edge} {label}", edge, color, dash))
                    lines.append(_transition_dots(rows, column, edge, color))
                    continue
            lines.append(_rate_line(rows, column, duration, f"{edge} {label}", edge, color, dash))
    return lines


def _rolling_line(
    rates: pd.DataFrame, column: str, name: str, edge: str, color: str, dash: str
) -> go.Scatter:
    """One rate after every call, as a step line."""
    return go.Scatter(
        x=rates["time"].tolist(),
        y=[None if not finite(v) else float(v) for v in rates[column]],
        mode="lines",
        line={"shape": "hv", "color": color, "dash": dash, "width": 1.4},
        name=name,
        legendgroup=edge,
        hovertemplate=f"{name}: %{{y:.0%}} after the call ending %{{x:.2f}} s<extra></extra>",
    )


def _transition_dots(rows: pd.DataFrame, column: str, edge: str, color: str) -> go.Scatter:
    """The rates the breaker recorded at its transitions, as dots."""
    return go.Scatter(
        x=rows["time"].tolist(),
        y=[None if not finite(v) else float(v) for v in rows[column]],
        mode="markers",
        marker={"size": 7, "color": color, "line": {"width": 1, "color": "#333"}},
        name=f"{edge} at transitions",
        legendgroup=edge,
        showlegend=False,
        hovertemplate=f"{edge} {column.replace('_', ' ')} recorded at a transition: "
        "%{y:.0%} at %{x:.2f} s<extra></extra>",
    )


def _rate_line(
    rows: pd.DataFrame, column: str, duration: float, name: str, edge: str, color: str, dash: str
) -> go.Scatter:
    """One rate of one breaker's transitions (`rows`, in time order) as a step line."""
    # Known at transitions only: a step from each one to the next, held to the end of
    # the run; nothing is drawn before the first.
    x = [*rows["time"].tolist(), duration]
    y = [*rows[column].tolist(), rows[column].iloc[-1]]
    return go.Scatter(
        x=x,
        y=[None if v is None or not finite(v) else float(v) for v in y],
        mode="lines+markers",
        line={"shape": "hv", "color": color, "dash": dash, "width": 1.6},
        marker={"size": [*([6] * len(rows)), 0]},
        name=name,
        legendgroup=edge,
        hovertemplate=f"{name}: %{{y:.0%}} at %{{x:.2f}} s<extra></extra>",
    )


def transitions_table(breakers: pd.DataFrame) -> pd.DataFrame:
    """The transitions for display: `time, breaker, from, to, reason, failure rate,
    slow rate, calls`, in time order."""
    columns = ["time", "breaker", "from", "to", "reason", "failure_rate", "slow_rate", "calls"]
    if breakers.empty:
        return pd.DataFrame(columns=columns)
    out = breakers.sort_values("time", kind="stable").copy()
    out["breaker"] = [
        edge_label(str(a), str(t)) for a, t in zip(out["agent"], out["target"], strict=True)
    ]
    out = out.rename(columns={"from_state": "from", "to_state": "to"})
    if "calls" in out.columns:
        out["reason"] = [
            reason_text(r, c) for r, c in zip(out["reason"], out["calls"], strict=True)
        ]
    return out[[c for c in columns if c in out.columns]].reset_index(drop=True)
