"""A run's summary as things a page shows: metric cards and small tables.

Pure functions of `Run.summary()` and the Run's tables, with no Streamlit calls, so the
dashboard, notebooks and tests read the same numbers the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
    delta: str | None = None  # the change against the previous run, when there was one
    delta_color: str = "normal"  # "normal": up is good; "inverse": down is good; "off"


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


# Each card's summary entry and which way is better, for the change against the
# previous run: "up", "down", or None (neither: a count of what was offered).
CARD_SOURCES = {
    "Requests": ("requests", None),
    "Goodput (/s)": ("goodput", "up"),
    "Success rate": ("success_rate", "up"),
    "p99 latency": ("p99", "down"),
    "Amplification": ("amplification", "down"),
    "Wire messages": ("messages", None),
    "Errors": ("errors", "down"),
    "Dead-lettered": ("dead_lettered", "down"),
    "Breaker open": ("breaker_open_time", "down"),
    "Wasted work": ("wasted_work", "down"),
    "Tokens in / out": ("tokens", None),
    "Cost": ("cost", "down"),
}


def _value(summary: Mapping[str, Any], key: str) -> float | None:
    """A summary entry as a number for a change (errors and tokens are totals)."""
    if key == "errors":
        return float(sum((summary.get("errors_by_kind") or {}).values()))
    if key == "tokens":
        parts = [summary.get("tokens_in"), summary.get("tokens_out")]
        return float(sum(p for p in parts if p is not None)) if any(parts) else None
    value = summary.get(key)
    if value is None or isinstance(value, dict | list):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(number) else number


def _change(label: str, now: float, before: float) -> str:
    """A change as a card shows it, in the card's own unit."""
    change = now - before
    if label == "Success rate":
        return f"{change * 100:+.1f} pp"
    if label == "p99 latency":
        return f"{change * 1000:+,.1f} ms"
    if label in ("Breaker open", "Wasted work"):
        return f"{change:+,.1f} s"
    if label == "Cost":
        return f"{change:+,.4f} $"
    if label in ("Goodput (/s)", "Amplification"):
        return f"{change:+,.2f}"
    return f"{change:+,.0f}"


def with_deltas(
    shown: Sequence[Card], summary: Mapping[str, Any], previous: Mapping[str, Any] | None
) -> list[Card]:
    """The cards with their change against the `previous` run's summary (when there is
    one and the entry exists in both): green when it went the better way."""
    if not previous:
        return list(shown)
    out = []
    for card in shown:
        key, better = CARD_SOURCES.get(card.label, (None, None))
        now = _value(summary, key) if key else None
        before = _value(previous, key) if key else None
        if now is None or before is None:
            out.append(card)
            continue
        color = "off" if better is None or now == before else "normal"
        if better == "down":
            color = "inverse"
        out.append(replace(card, delta=_change(card.label, now, before), delta_color=color))
    return out


def llm_cards(summary: Mapping[str, Any]) -> list[Card]:
    """Tokens and cost, for a run with model calls (none otherwise)."""
    tokens_in, tokens_out = summary.get("tokens_in"), summary.get("tokens_out")
    cost = summary.get("cost")
    if not tokens_in and not tokens_out and not cost:
        return []
    return [
        Card(
            "Tokens in / out",
            f"{format_count(int(tokens_in or 0))} / {format_count(int(tokens_out or 0))}",
            "Input and output tokens of every model call the run made, retries included: "
            f"{int(tokens_in or 0):,} in, {int(tokens_out or 0):,} out.",
        ),
        Card(
            "Cost",
            f"${float(cost or 0):,.4f}" if float(cost or 0) < 100 else f"${float(cost):,.0f}",
            "What the model calls cost at the price table of their model profiles "
            "(presets/llm-models.yaml: editable assumptions, with their source and date).",
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
    counted = spans.groupby(["outcome", "kind"], sort=False).size().rename("n").reset_index()
    return spans_table_of(counted)


def spans_table_of(counts: pd.DataFrame) -> pd.DataFrame:
    """`spans_table` from spans counted per (outcome, kind) (`outcome, kind, n`, as
    `Run.group_counts` gives), so the spans themselves need not be read."""
    if counts.empty or not counts["n"].sum():
        return pd.DataFrame(columns=["outcome", "total"])
    kinds = sorted(counts["kind"].astype(str).unique())
    grid = counts.pivot_table(index="outcome", columns="kind", values="n", aggfunc="sum")
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
    if "params" in out.columns:
        out = out.assign(params=out["params"].map(params_text))
    if "targets" in out.columns:
        out = out.assign(targets=out["targets"].astype(str).str.replace(",", ", "))
    return out[[c for c in columns if c in out.columns]].reset_index(drop=True)


def params_text(params: object) -> str:
    """A fault's parameters (JSON in the faults table) as `name value, ...`: what a
    reader scans, not JSON. Text that is not a JSON object is shown as it is."""
    try:
        data = json.loads(str(params)) if params else {}
    except ValueError:
        return str(params)
    if not isinstance(data, dict):
        return str(params)
    return ", ".join(f"{k.replace('_', ' ')} {_param(v)}" for k, v in data.items())


def _param(value: object) -> str:
    """One parameter's value: numbers without trailing zeros, lists joined."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + " | ".join(_param(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} {_param(v)}" for k, v in value.items()) + "}"
    return str(value)


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
