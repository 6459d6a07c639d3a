"""Runs over time and side by side: requests, goodput, latency percentiles, and the
differences between two runs' summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sim import metrics
from ui.figures.common import (
    SPAN_COLORS,
    add_fault_bands,
    base_layout,
    color_for,
    log_ticks,
    scatter_class,
    time_axis_title,
)

RUN_COLORS = ("#1f77b4", "#d62728")


def requests(spans: pd.DataFrame) -> pd.DataFrame:
    """The workload's requests (root caller spans: a call, or a request published on a
    queue) with a `latency` column (seconds; NaN while still open)."""
    roots = metrics.requests(spans)
    return roots.assign(latency=roots["end"] - roots["start"])


def per_bucket(spans: pd.DataFrame, duration: float, bucket: float = 1.0) -> pd.DataFrame:
    """Requests by start-time bucket: `time` (bucket start), `requests`, `ok`,
    `goodput` (ok per second), `p50`, `p99` (latency of ok requests, seconds)."""
    reqs = requests(spans)
    edges = np.arange(0.0, max(duration, bucket) + bucket, bucket)
    index = pd.Index(edges[:-1], name="time")
    if reqs.empty:
        out = pd.DataFrame(index=index)
        for column in ("requests", "ok", "goodput", "p50", "p99"):
            out[column] = 0.0 if column in ("requests", "ok", "goodput") else np.nan
        return out.reset_index()
    slot = np.clip((reqs["start"] // bucket) * bucket, 0, edges[-2])
    ok = reqs[reqs["outcome"] == "ok"]
    ok_slot = slot[ok.index]
    out = pd.DataFrame(index=index)
    out["requests"] = reqs.groupby(slot).size().reindex(index, fill_value=0)
    out["ok"] = ok.groupby(ok_slot).size().reindex(index, fill_value=0)
    out["goodput"] = out["ok"] / bucket
    latency = ok["latency"].groupby(ok_slot)
    out["p50"] = latency.quantile(0.5).reindex(index)
    out["p99"] = latency.quantile(0.99).reindex(index)
    return out.reset_index()


def requests_figure(
    spans: pd.DataFrame,
    duration: float,
    faults: pd.DataFrame | None = None,
    *,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Every request as a dot: start time against latency (log scale), one trace per
    outcome. WebGL past 10k points. Fault windows shaded. Pass the same `x_range` (and
    `y_range`, in log10 seconds) to two figures to align them."""
    reqs = requests(spans)
    trace_type = scatter_class(len(reqs))
    fig = go.Figure()
    end = reqs["end"].fillna(duration)
    for k, outcome in enumerate(dict.fromkeys(reqs["outcome"].tolist())):
        part = reqs["outcome"] == outcome
        fig.add_trace(
            trace_type(
                x=reqs.loc[part, "start"].to_numpy(dtype=float),
                y=(end[part] - reqs.loc[part, "start"]).to_numpy(dtype=float),
                mode="markers",
                marker={"size": 4, "color": color_for(outcome, SPAN_COLORS, k), "opacity": 0.7},
                name=outcome,
                hovertemplate=f"{outcome}: %{{y:.3f}} s at %{{x:.2f}} s<extra></extra>",
            )
        )
    add_fault_bands(fig, faults, duration)
    base_layout(fig, height=400, title=title, legend_below=True)
    fig.update_xaxes(title=time_axis_title(), range=list(x_range or (0, duration)))
    # One tick per decade: plotly's default log ticks (2, 5, 2, 5...) read as noise;
    # within one decade, 1-2-5 ticks so the axis still has labels.
    if y_range is None:
        y_range = _log_range((end - reqs["start"]).to_numpy(dtype=float))
    fig.update_yaxes(
        title="latency (s)",
        type="log",
        range=list(y_range) if y_range else None,
        **(log_ticks(*y_range) if y_range else {"dtick": 1}),
    )
    return fig


def _log_range(values: np.ndarray) -> tuple[float, float] | None:
    """The log10 range [min, max] of the positive `values`, padded by 0.1; None if none."""
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return None
    return (float(np.log10(values.min())) - 0.1, float(np.log10(values.max())) + 0.1)


def comparison_figure(
    runs: Sequence[tuple[str, pd.DataFrame, float, pd.DataFrame | None]],
    *,
    bucket: float = 1.0,
    title: str | None = None,
) -> go.Figure:
    """Two (or more) runs on shared time axes: goodput per second on top, p99 latency
    of ok requests below, one colour per run. `runs` holds (label, spans, duration,
    faults); every run's fault windows are shaded."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
    )
    longest = max((duration for _, _, duration, _ in runs), default=0.0)
    p99s = []
    for k, (label, spans, duration, _) in enumerate(runs):
        table = per_bucket(spans, duration, bucket)
        p99s.append(table["p99"].to_numpy(dtype=float))
        color = RUN_COLORS[k % len(RUN_COLORS)]
        for row, column in ((1, "goodput"), (2, "p99")):
            fig.add_trace(
                go.Scatter(
                    x=table["time"].to_numpy(dtype=float),
                    y=table[column].to_numpy(dtype=float),
                    mode="lines",
                    line={"color": color, "width": 1.6, "shape": "hv"},
                    name=label,
                    legendgroup=label,
                    showlegend=row == 1,
                    hovertemplate=f"{label}: %{{y:.3f}} at %{{x:.0f}} s<extra>{column}</extra>",
                ),
                row=row,
                col=1,
            )
    for label, _, duration, faults in runs:
        if faults is not None and not faults.empty:
            named = faults.assign(fault_id=label + ":" + faults["fault_id"].astype(str))
            add_fault_bands(fig, named, duration)
    base_layout(fig, height=520, title=title)
    fig.update_xaxes(range=[0, longest])
    fig.update_xaxes(title=time_axis_title(), row=2, col=1)
    fig.update_yaxes(title="goodput (ok/s)", rangemode="tozero", row=1, col=1)
    p99_range = _log_range(np.concatenate(p99s)) if p99s else None
    fig.update_yaxes(
        title="p99 of ok (s)",
        type="log",
        range=list(p99_range) if p99_range else None,
        **(log_ticks(*p99_range) if p99_range else {"dtick": 1}),
        row=2,
        col=1,
    )
    return fig


# Summary entries compared, with how to show them; `better` says which way is good.
DIFF_METRICS = (
    ("requests", "Requests", "count", None),
    ("ok", "Requests ok", "count", "up"),
    ("goodput", "Goodput (/s)", "rate", "up"),
    ("success_rate", "Success rate", "share", "up"),
    ("p50", "p50 latency (s)", "seconds", "down"),
    ("p95", "p95 latency (s)", "seconds", "down"),
    ("p99", "p99 latency (s)", "seconds", "down"),
    ("messages", "Wire messages", "count", None),
    ("amplification", "Amplification", "rate", "down"),
    ("dead_lettered", "Dead-lettered", "count", "down"),
    ("breaker_open_time", "Breaker open (s)", "seconds", "down"),
    ("wasted_work", "Wasted work (s)", "seconds", "down"),
)


def summary_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> pd.DataFrame:
    """Two runs' summaries side by side: `metric, a, b, change, relative, better`.

    `change` is b - a; `relative` is the change over |a| (NaN when a is 0 or missing);
    `better` names the run that did better on that metric ('' when it does not apply or
    they are equal). Metrics missing from both summaries are left out; errors by kind
    follow as `errors: <kind>` rows.
    """
    rows = []
    entries = list(DIFF_METRICS)
    kinds = sorted(set(a.get("errors_by_kind", {})) | set(b.get("errors_by_kind", {})))
    for key, label, _, better in entries:
        if key not in a and key not in b:
            continue
        rows.append((label, _num(a.get(key)), _num(b.get(key)), better))
    for kind in kinds:
        rows.append(
            (
                f"errors: {kind}",
                float(a.get("errors_by_kind", {}).get(kind, 0)),
                float(b.get("errors_by_kind", {}).get(kind, 0)),
                "down",
            )
        )
    out = pd.DataFrame(rows, columns=["metric", "a", "b", "direction"])
    out["change"] = out["b"] - out["a"]
    out["relative"] = np.where(out["a"].abs() > 0, out["change"] / out["a"].abs(), np.nan)
    winner = []
    success = (_num(a.get("success_rate")), _num(b.get("success_rate")))
    for row in out.itertuples(index=False):
        if not isinstance(row.direction, str) or pd.isna(row.change) or row.change == 0:
            winner.append("")
            continue
        side = "b" if (row.change > 0) == (row.direction == "up") else "a"
        if row.metric in LATENCY_LABELS:
            side = _latency_winner(side, success)
        winner.append(side)
    out["better"] = winner
    return out.drop(columns=["direction"])


# Latency percentiles are of the requests that succeeded: a run that failed most of its
# requests (fast) is not faster for it. Success rates closer than this are a tie.
LATENCY_LABELS = {label for key, label, _, _ in DIFF_METRICS if key in ("p50", "p95", "p99")}
SUCCESS_TIE = 0.01


def _latency_winner(side: str, success: tuple[float, float]) -> str:
    """Who wins on latency once success counts: the faster run, unless it succeeded
    less often (then neither: its latency is of fewer, easier requests)."""
    mine, theirs = (success[0], success[1]) if side == "a" else (success[1], success[0])
    if pd.isna(mine) or pd.isna(theirs) or mine >= theirs - SUCCESS_TIE:
        return side
    return f"neither: {side} is faster but succeeds less ({mine:.0%} against {theirs:.0%})"


def _num(value: Any) -> float:
    """`value` as a float; NaN when it is missing or not a number."""
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


# How an outcome reads in a sentence about one request.
OUTCOME_WORDS = {
    "ok": "ok",
    "timeout": "timed out",
    "deadline_exceeded": "hit its deadline",
    "error": "failed",
    "rejected": "was refused",
    "cancelled": "was cancelled",
    "partial": "ended partial",
    "open": "was still open at the end",
}
MATCH_COLUMNS = ["trace", "client", "start", "a", "b", "where", "sentence"]


def failed_at(spans: pd.DataFrame) -> str:
    """Where a request's failure began: the earliest-ending call of its trace that did
    not end ok (`caller → callee`), or '' when every call did."""
    calls = spans[(spans["kind"] == "client") & (spans["outcome"] != "ok")]
    if calls.empty:
        return ""
    first = calls.sort_values(["end", "start"], kind="stable").iloc[0]
    return f"{first['agent']} → {first['peer']}"


def matched_requests(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The same requests in two runs (matched by trace id: same seed, same arrivals)
    that ended differently: `trace, client, start, a, b, where, sentence`, in start
    order. `where` is the call the failing run's request failed at, and `sentence`
    says it: 'client-13: ok in B, timed out in A at orchestrator → writer-1'."""
    ra, rb = requests(a), requests(b)
    both = ra.merge(rb, on="correlation_id", suffixes=("_a", "_b"))
    differ = both[both["outcome_a"] != both["outcome_b"]].sort_values("start_a", kind="stable")
    if differ.empty:
        return pd.DataFrame(columns=MATCH_COLUMNS)
    groups = {
        "A": a.groupby("correlation_id", sort=False),
        "B": b.groupby("correlation_id", sort=False),
    }
    rows = []
    for r in differ.itertuples(index=False):
        trace = str(r.correlation_id)
        outcomes = {"A": str(r.outcome_a), "B": str(r.outcome_b)}
        where = {
            side: failed_at(groups[side].get_group(trace))
            if outcomes[side] != "ok" and trace in groups[side].groups
            else ""
            for side in ("A", "B")
        }
        # The run it went well in first: "ok in B, timed out in A at X → Y".
        order = sorted(("A", "B"), key=lambda side: outcomes[side] != "ok")
        phrases = [
            f"{OUTCOME_WORDS.get(outcomes[side], outcomes[side])} in {side}"
            + (f" at {where[side]}" if where[side] else "")
            for side in order
        ]
        shown = "; ".join(f"{side}: {where[side]}" for side in ("A", "B") if where[side])
        if len([w for w in where.values() if w]) == 1:
            shown = where["A"] or where["B"]
        rows.append(
            (
                trace,
                r.agent_a,
                r.start_a,
                r.outcome_a,
                r.outcome_b,
                shown,
                f"{trace}: " + ", ".join(phrases),
            )
        )
    return pd.DataFrame(rows, columns=MATCH_COLUMNS)


def match_counts(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, int]:
    """How many requests matched across two runs, and how many ended ok in only one."""
    ra, rb = requests(a), requests(b)
    both = ra.merge(rb, on="correlation_id", suffixes=("_a", "_b"))
    ok_a, ok_b = both["outcome_a"] == "ok", both["outcome_b"] == "ok"
    return {
        "matched": len(both),
        "differ": int((both["outcome_a"] != both["outcome_b"]).sum()),
        "ok_only_in_a": int((ok_a & ~ok_b).sum()),
        "ok_only_in_b": int((ok_b & ~ok_a).sum()),
    }
