"""A run's summary as things a page shows: metric cards and small tables.

Pure functions of `Run.summary()` and the Run's tables, with no Streamlit calls, so the
dashboard, notebooks and tests read the same numbers the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

# Outcomes in the order a reader scans them: success first, then the failures roughly from
# "the network lost it" to "the run ended first". Unknown outcomes follow, sorted, so a new
# outcome added to the simulator still shows up.
MESSAGE_OUTCOMES = (
    "delivered",
    "dropped",
    "partitioned",
    "unavailable",
    "rejected",
    "dead_lettered",
    "expired",
    "in_flight",
)
SPAN_OUTCOMES = (
    "ok",
    "error",
    "timeout",
    "deadline_exceeded",
    "rejected",
    "cancelled",
    "partial",
    "open",
)


@dataclass(frozen=True)
class Card:
    """One headline number: what `st.metric` shows."""

    label: str
    value: str
    help: str


def format_ms(seconds: float | None) -> str:
    """A latency in seconds as milliseconds for a card; an em dash when there is none."""
    if seconds is None or pd.isna(seconds):
        return "—"
    ms = seconds * 1000.0
    # Three significant figures reads well from 0.5 ms to tens of seconds.
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 100:
        return f"{ms:.1f} ms"
    return f"{ms:,.0f} ms"


def format_count(n: int) -> str:
    """A count for a card: `12,345`, or `123.5k` from 100,000 on (a card is narrow)."""
    return f"{n:,}" if n < 100_000 else f"{n / 1000:,.1f}k"


def cards(summary: Mapping[str, Any]) -> list[Card]:
    """The six headline cards of a run, from `Run.summary()`."""
    return [
        Card(
            "Requests",
            format_count(summary["requests"]),
            f"Requests the workload started (root client spans): {summary['requests']:,}.",
        ),
        Card(
            "Goodput (/s)",
            f"{summary['goodput']:,.2f}",
            "Requests that ended ok, per simulated second.",
        ),
        Card(
            "Success rate",
            f"{summary['success_rate']:.1%}",
            "Share of requests that ended ok; requests still open at the end count as not ok.",
        ),
        Card(
            "p99 latency",
            format_ms(summary.get("p99")),
            "99th percentile latency of the requests that ended ok.",
        ),
        Card(
            "Amplification",
            f"{summary['amplification']:.2f}",
            "Wire messages per request: retries, fan-out, acks and duplicates raise it.",
        ),
        Card(
            "Wire messages",
            format_count(summary["messages"]),
            "Copies of messages on the wire, duplicates and redeliveries included: "
            f"{summary['messages']:,}.",
        ),
    ]


def format_seconds(seconds: float | None) -> str:
    """A duration in seconds for a card: `12.3 s`; an em dash when there is none."""
    if seconds is None or pd.isna(seconds):
        return "—"
    return f"{seconds:,.1f} s" if seconds < 1000 else f"{seconds:,.0f} s"


def more_cards(summary: Mapping[str, Any]) -> list[Card]:
    """The second row of cards: errors, dead letters, breaker-open time, wasted work.

    Entries the simulator does not report yet show an em dash.
    """
    errors = summary.get("errors_by_kind") or {}
    by_kind = ", ".join(f"{k} {v:,}" for k, v in sorted(errors.items())) or "none"
    dead = summary.get("dead_lettered")
    return [
        Card(
            "Errors",
            f"{sum(errors.values()):,}",
            f"Requests that did not end ok, by kind: {by_kind}.",
        ),
        Card(
            "Dead-lettered",
            "—" if dead is None else f"{int(dead):,}",
            "Messages parked in a dead-letter queue (the DLQ's size at the end).",
        ),
        Card(
            "Breaker open",
            format_seconds(summary.get("breaker_open_time")),
            "Seconds circuit breakers spent OPEN or FORCED_OPEN, summed over every breaker.",
        ),
        Card(
            "Wasted work",
            format_seconds(summary.get("wasted_work")),
            "Seconds services kept working on calls whose caller had already given up.",
        ),
    ]


def _ordered(outcomes: Sequence[str], known: Sequence[str]) -> list[str]:
    """`outcomes` in the order of `known`, then the unknown ones sorted."""
    first = [o for o in known if o in outcomes]
    return first + sorted(o for o in outcomes if o not in known)


def outcome_table(counts: Mapping[str, int], known: Sequence[str] = ()) -> pd.DataFrame:
    """Counts by outcome as a table `outcome, count, share` (share of the total, 0..1).

    `known` gives the order of the outcomes it names; others follow alphabetically.
    """
    order = _ordered(list(counts), known)
    total = sum(counts.values())
    return pd.DataFrame(
        {
            "outcome": order,
            "count": [int(counts[o]) for o in order],
            "share": [counts[o] / total if total else 0.0 for o in order],
        },
        columns=["outcome", "count", "share"],
    )


def messages_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """Wire messages by outcome, delivered first."""
    return outcome_table(summary["messages_by_outcome"], MESSAGE_OUTCOMES)


def requests_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """Requests (root client spans) by outcome, ok first."""
    return outcome_table(summary["requests_by_outcome"], SPAN_OUTCOMES)


def spans_table(spans: pd.DataFrame) -> pd.DataFrame:
    """Spans counted by outcome (rows) and kind (columns), with a `total` column.

    Columns: `outcome`, one per span kind present (e.g. `client`, `server`), `total`.
    """
    if spans.empty:
        return pd.DataFrame(columns=["outcome", "total"])
    kinds = sorted(spans["kind"].astype(str).unique())
    grid = pd.crosstab(spans["outcome"], spans["kind"])
    grid = grid.reindex(index=_ordered(list(grid.index), SPAN_OUTCOMES), columns=kinds)
    grid = grid.fillna(0).astype("int64")
    grid["total"] = grid.sum(axis=1)
    grid.columns.name = None
    return grid.rename_axis("outcome").reset_index()


def latency_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """Latency of successful calls per channel, in milliseconds.

    Columns: `caller, callee, calls, p50_ms, p95_ms, p99_ms`.
    """
    columns = ["caller", "callee", "calls", "p50_ms", "p95_ms", "p99_ms"]
    rows = summary.get("latency_by_channel") or []
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows)
    out = pd.DataFrame(
        {
            "caller": table["agent"].astype(str),
            "callee": table["peer"].astype(str),
            "calls": table["calls"].astype("int64"),
        }
    )
    for q in ("p50", "p95", "p99"):
        out[f"{q}_ms"] = pd.to_numeric(table[q], errors="coerce") * 1000.0
    return out[columns]


def faults_table(faults: pd.DataFrame) -> pd.DataFrame:
    """The run's fault windows for display: `fault, kind, start, end, targets, params`.

    `end` is NaN for a fault that lasts to the end of the run.
    """
    columns = ["fault", "kind", "start", "end", "targets", "params"]
    if faults.empty:
        return pd.DataFrame(columns=columns)
    out = faults.rename(columns={"fault_id": "fault"})
    return out[[c for c in columns if c in out.columns]].reset_index(drop=True)


def error_text(exc: BaseException, what: str) -> str:
    """What a failed load or run tells the user: its sentences, never a traceback.

    A `ScenarioError` (anything with a `lines` list) already speaks in sentences, one per
    problem, and is shown as it is; any other exception becomes one sentence naming
    `what` failed and the exception's first line.
    """
    lines = getattr(exc, "lines", None)
    if isinstance(lines, list) and lines:
        return "\n\n".join(str(line) for line in lines)
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return f"{what} failed ({reason})."
