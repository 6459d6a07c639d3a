"""Summaries of a run: pure functions of its tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

PERCENTILES = (0.5, 0.95, 0.99)


# Root client spans that are not requests: a WebSocket connection's lifetime, and a
# plugin role's WebSocket session (sim.agents.plugin_session).
NOT_REQUESTS = ("ws.connection", "ws.session")


# Span kinds of a caller: a request-response call, or a request published on a queue.
CALLERS = ("client", "producer")


def requests(spans: pd.DataFrame) -> pd.DataFrame:
    """The workload's requests: caller spans with no parent (the roots of the traces)."""
    roots = spans["kind"].isin(CALLERS) & (spans["parent_id"] == "")
    return spans[roots & ~spans["name"].isin(NOT_REQUESTS)]


def latency_by_channel(spans: pd.DataFrame) -> pd.DataFrame:
    """p50/p95/p99 latency of successful calls per (caller, callee), in seconds."""
    calls = spans[spans["kind"].isin(CALLERS) & (spans["outcome"] == "ok")]
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


GAVE_UP = ("timeout", "deadline_exceeded", "cancelled")
OPEN_STATES = ("OPEN", "FORCED_OPEN")


def wasted_work(spans: pd.DataFrame) -> pd.DataFrame:
    """Server work that went on after its caller gave up (a timeout, a deadline, a cancel).

    One row per such server span, with `wasted`: the seconds it worked after the caller
    stopped waiting (the whole span when it began after that).
    """
    columns = ["span_id", "agent", "correlation_id", "gave_up_at", "end", "wasted"]
    servers = spans[(spans["kind"].isin(["server", "consumer"])) & spans["end"].notna()]
    callers = spans[spans["outcome"].isin(GAVE_UP)][["span_id", "end"]]
    if servers.empty or callers.empty:
        return pd.DataFrame(columns=columns)
    joined = servers.merge(
        callers.rename(columns={"span_id": "parent_id", "end": "gave_up_at"}), on="parent_id"
    )
    joined = joined[joined["end"] > joined["gave_up_at"]]
    began = joined["start"] + joined["wait"].fillna(0.0)
    joined = joined.assign(
        wasted=joined["end"] - began.where(began > joined["gave_up_at"], joined["gave_up_at"])
    )
    return joined[columns].reset_index(drop=True)


def breaker_open_time(breakers: pd.DataFrame, duration: float) -> float:
    """Seconds breakers spent OPEN or FORCED_OPEN, summed over every (caller, callee)."""
    if breakers.empty:
        return 0.0
    total = 0.0
    for _, rows in breakers.sort_values("time", kind="stable").groupby(
        ["agent", "target"], sort=True
    ):
        times = [*rows["time"].tolist(), duration]
        for i, state in enumerate(rows["to_state"].tolist()):
            if state in OPEN_STATES:
                total += max(0.0, times[i + 1] - times[i])
    return total


SERVERS = ("server", "consumer")


def delivery(
    messages: pd.DataFrame, spans: pd.DataFrame, roots: pd.DataFrame | None = None
) -> dict[str, int]:
    """What became of the workload's requests on the serving side.

    `served`: requests whose callee finished the work at least once; `redone`: extra
    times it was done (a duplicate or a redelivery served again); `held`: requests not
    served but accepted by a broker, which keeps them until a consumer takes them; `lost`:
    requests that ended (not still open) neither served nor held, so nobody will ever do
    the work unless the caller sends it again. `roots` are `requests(spans)` if known.
    """
    if roots is None:
        roots = requests(spans)
    done = spans[
        spans["kind"].isin(SERVERS)
        & (spans["outcome"] == "ok")
        & spans["parent_id"].isin(roots["span_id"])
    ]
    per_root = done.groupby("parent_id", sort=False).size()
    served = roots["span_id"].isin(per_root.index)
    # A request a broker confirmed and never dead-lettered will still be delivered.
    published = messages[(messages["kind"] == "publish") & (messages["outcome"] == "delivered")]
    dead = set(messages.loc[messages["outcome"] == "dead_lettered", "correlation_id"])
    accepted = set(zip(published["src"], published["correlation_id"], strict=True))
    held = pd.Series(
        [
            (agent, cid) in accepted and cid not in dead
            for agent, cid in zip(roots["agent"], roots["correlation_id"], strict=True)
        ],
        index=roots.index,
        dtype=bool,
    )
    held &= ~served
    lost = ~served & ~held & (roots["outcome"] != "open")
    return {
        "served": int(served.sum()),
        "redone": int((per_root - 1).sum()),
        "held": int(held.sum()),
        "lost": int(lost.sum()),
    }


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
        # Spans that an exception in a plugin role's code ended (sim.agents.plugin): the
        # spans of the code that raised, not those of callers an SSE final event or a
        # session's close told the same sentence.
        "exceptions": int(
            (spans["error"].str.startswith("raised ") & ~spans["kind"].isin(CALLERS)).sum()
        ),
        "latency_by_channel": latency_by_channel(spans).to_dict(orient="records"),
        **delivery(messages, spans, roots),
        "dead_lettered": int((messages["outcome"] == "dead_lettered").sum()),
        "wasted_work": float(wasted_work(spans)["wasted"].sum()),
        "breaker_open_time": breaker_open_time(tables["breakers"], duration),
        **model_usage(spans),
    }


def model_usage(spans: pd.DataFrame) -> dict[str, Any]:
    """Tokens billed and their cost over the run's model calls (`tokens_in`, `tokens_out`,
    `cost` in $); nothing when the run made none."""
    if "input_tokens" not in spans.columns:
        return {}
    billed = spans[spans["input_tokens"] >= 0]
    if billed.empty:
        return {}
    return {
        "tokens_in": int(billed["input_tokens"].sum()),
        "tokens_out": int(billed["output_tokens"].clip(lower=0).sum()),
        "cost": float(billed["cost"].fillna(0.0).sum()),
    }


def _quantile(values: pd.Series, q: float) -> float | None:
    if values.empty:
        return None
    return float(values.quantile(q))
