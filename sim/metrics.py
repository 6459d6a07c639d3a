"""Summaries of a run: pure functions of its tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

PERCENTILES = (0.5, 0.95, 0.99)


def requests(spans: pd.DataFrame) -> pd.DataFrame:
    """The workload's requests: client spans with no parent (the roots of the traces)."""
    return spans[(spans["kind"] == "client") & (spans["parent_id"] == "")]


def latency_by_channel(spans: pd.DataFrame) -> pd.DataFrame:
    """p50/p95/p99 latency of successful calls per (caller, callee), in seconds."""
    calls = spans[(spans["kind"] == "client") & (spans["outcome"] == "ok")]
    columns = ["agent", "peer", "calls", "p50", "p95", "p99"]
    if calls.empty:
        return pd.DataFrame(columns=columns)
    latency = (calls["end"] - calls["start"]).rename("latency")
    grouped = pd.concat([calls[["agent", "peer"]], latency], axis=1).groupby(
        ["agent", "peer"], sort=True
    )["latency"]
    table = grouped.quantile(list(PERCENTILES)).unstack()
    table.columns = ["p50", "p95", "p99"]
    table.insert(0, "calls", grouped.size())
    return table.reset_index()[columns]


def counts(column: pd.Series) -> dict[str, int]:
    """Value counts as a plain dict, sorted by value name."""
    return {str(k): int(v) for k, v in sorted(column.value_counts().items())}


def summarize(tables: dict[str, pd.DataFrame], duration: float) -> dict[str, Any]:
    """The run's headline numbers: outcomes, latency, goodput, amplification."""
    messages, spans = tables["messages"], tables["spans"]
    roots = requests(spans)
    ok = roots[roots["outcome"] == "ok"]
    n_requests = len(roots)
    latency = (ok["end"] - ok["start"]) if not ok.empty else pd.Series(dtype="float64")
    errors = roots[~roots["outcome"].isin(["ok", "open"])]
    return {
        "requests": n_requests,
        "ok": len(ok),
        "goodput": len(ok) / duration if duration > 0 else 0.0,
        "success_rate": len(ok) / n_requests if n_requests else 0.0,
        "p50": _quantile(latency, 0.5),
        "p95": _quantile(latency, 0.95),
        "p99": _quantile(latency, 0.99),
        "messages": len(messages),
        "amplification": len(messages) / n_requests if n_requests else 0.0,
        "messages_by_outcome": counts(messages["outcome"]),
        "spans_by_outcome": counts(spans["outcome"]),
        "requests_by_outcome": counts(roots["outcome"]),
        "errors_by_kind": counts(errors["outcome"]),
        "latency_by_channel": latency_by_channel(spans).to_dict(orient="records"),
    }


def _quantile(values: pd.Series, q: float) -> float | None:
    if values.empty:
        return None
    return float(values.quantile(q))
