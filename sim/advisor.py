"""The protocol advisor: a workload's needs in, a protocol stack and its evidence out.

The rule of thumb is "start with HTTP, add queues for reliability, SSE for progress,
WebSocket for negotiation". The advisor makes it quantitative with a sweep's numbers:
at the user's offered load it reads each protocol's p99 latency on a clean network and
the share of requests lost under faults, keeps the protocols that meet the needs, and
recommends the simplest; when no single protocol has every feature the workload needs,
it composes a stack (e.g. a queue for the hand-off and SSE for progress).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from sim.sweeps.stats import means

# The sweep the advisor judges on when it is given none, and where it is kept once run
# (`python -m sim advise` and the Compare page share it).
ADVISOR_SWEEP = "protocols-under-load"
ADVISOR_CACHE = Path("runs") / "sweeps" / ADVISOR_SWEEP

# Simplest first: the order in which the rule of thumb reaches for them. The sweep's
# brokers beyond a plain queue: a Pub/Sub topic (`pubsub`) and an SQS FIFO queue (`fifo`).
SIMPLICITY = ("http", "queue", "pubsub", "fifo", "sse", "websocket")
# What each protocol can do beyond one request and one answer.
STREAMS = frozenset({"sse", "websocket"})  # partial results flow back as they are made
BIDIRECTIONAL = frozenset({"websocket"})  # either side may speak at any time
FANS_OUT = frozenset({"pubsub"})  # one publish, a copy for every subscription
ORDERED = frozenset({"fifo"})  # in order per key (message group), one in flight per key
ROLE = {
    "http": "request-response",
    "queue": "a durable hand-off (the broker keeps each request until it is served)",
    "pubsub": "publish-subscribe (every subscription gets its own copy, acked on its own)",
    "fifo": "ordered delivery (a message group in order, one in flight at a time)",
    "sse": "progress streamed back",
    "websocket": "a two-way conversation",
}
CLEAN_CASES = ("none", "clean", "baseline")
NAMES = {
    "http": "HTTP",
    "queue": "a queue",
    "pubsub": "a Pub/Sub topic",
    "fifo": "an SQS FIFO queue",
    "sse": "SSE",
    "websocket": "WebSocket",
}


class Needs(BaseModel):
    """What a workload needs from its protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p99: float | None = Field(None, gt=0, description="p99 latency target in seconds.")
    loss_tolerable: bool = Field(True, description="May a request be lost under faults?")
    max_loss: float = Field(
        0.001, ge=0, le=1, description="Lost share still counted as no loss (0.1%)."
    )
    streaming: bool = Field(False, description="Must partial results stream back?")
    bidirectional: bool = Field(False, description="Do both sides talk (negotiation)?")
    fan_out: bool = Field(
        False, description="Must one message reach several subscribers (publish-subscribe)?"
    )
    ordered: bool = Field(
        False, description="Must messages of a key (a conversation) be handled in order?"
    )
    load: float = Field(0.75, gt=0, description="Offered load as a fraction of capacity.")


@dataclass
class Advice:
    """A recommendation and what it rests on."""

    stack: list[str]
    headline: str
    reasons: list[str]
    load: float
    verdicts: pd.DataFrame  # one row per protocol: its numbers and which needs it meets
    evidence: pd.DataFrame  # the sweep rows (every replication) of the cells used
    met: bool = True  # False when no stack meets every need
    notes: list[str] = field(default_factory=list)
    needs: Needs | None = None  # what it was asked

    @property
    def protocol(self) -> str:
        """The protocol that carries the request itself."""
        return self.stack[0]


def advise(rows: pd.DataFrame, needs: Needs) -> Advice:
    """Recommend a protocol stack for `needs` from a sweep's rows.

    The rows need a `protocol` column and a `load` column (fraction of capacity); a
    `faults` column, if present, separates the clean network (a case named "none") from
    the faulty ones, whose worst lost share is what "loss not tolerable" is judged on.
    """
    missing = {"protocol", "load"} - set(rows.columns)
    if missing:
        raise ValueError(
            "the advisor needs a sweep over protocol and load; this one has no "
            + " or ".join(sorted(missing))
            + " axis"
        )
    good = rows[rows["error"] == ""] if "error" in rows.columns else rows
    if good.empty:
        raise ValueError("every run of this sweep failed; there is nothing to advise from")
    load = _pick_load(sorted(good["load"].unique()), needs.load)
    at_load = good[good["load"] == load]
    table = means(at_load)
    clean, faulty = _split_cases(table)
    verdicts = _verdicts(table, clean, faulty, needs)
    stack, met = _choose(verdicts, needs)
    evidence = at_load[at_load["protocol"].isin(stack)].reset_index(drop=True)
    headline, reasons, notes = _explain(verdicts, stack, met, needs, load)
    return Advice(stack, headline, reasons, load, verdicts, evidence, met, notes, needs)


def _pick_load(loads: list[float], wanted: float) -> float:
    # The smallest swept load at or above the user's: judged on at least their load.
    above = [x for x in loads if x >= wanted - 1e-9]
    return above[0] if above else loads[-1]


def _split_cases(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    if "faults" not in table.columns:
        return table, table.iloc[0:0]
    cases = list(dict.fromkeys(table["faults"]))
    base = next((c for c in cases if str(c) in CLEAN_CASES), cases[0])
    return table[table["faults"] == base], table[table["faults"] != base]


def _verdicts(
    table: pd.DataFrame, clean: pd.DataFrame, faulty: pd.DataFrame, needs: Needs
) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    order = [p for p in SIMPLICITY if p in set(table["protocol"])]
    order += sorted(set(table["protocol"]) - set(order))
    for protocol in order:
        c = clean[clean["protocol"] == protocol]
        f = faulty[faulty["protocol"] == protocol]
        p99 = _value(c, "p99")
        lost_faulty = float(f["lost_rate"].max()) if not f.empty else math.nan
        lost = max(_value(c, "lost_rate"), 0 if math.isnan(lost_faulty) else lost_faulty)
        record = {
            "protocol": protocol,
            "p99": p99,
            "p99_ci": _value(c, "p99_ci"),
            "p99_faults": float(f["p99"].max()) if not f.empty else math.nan,
            "goodput": _value(c, "goodput"),
            "success_rate": _value(c, "success_rate"),
            "lost_rate": lost,
            "lost_rate_faults": lost_faulty,
            "success_rate_faults": float(f["success_rate"].min()) if not f.empty else math.nan,
            "amplification": _value(c, "amplification"),
            "streams": protocol in STREAMS,
            "bidirectional": protocol in BIDIRECTIONAL,
            "fan_out": protocol in FANS_OUT,
            "ordered": protocol in ORDERED,
        }
        record["meets_p99"] = needs.p99 is None or (not math.isnan(p99) and p99 <= needs.p99)
        record["meets_loss"] = needs.loss_tolerable or lost <= needs.max_loss
        # Fan-out and order are the carrier's own; streaming and a conversation may be
        # added beside it (a stack).
        record["meets_carrier"] = (not needs.fan_out or record["fan_out"]) and (
            not needs.ordered or record["ordered"]
        )
        record["meets_features"] = (
            record["meets_carrier"]
            and (not needs.streaming or record["streams"])
            and (not needs.bidirectional or record["bidirectional"])
        )
        records.append(record)
    return pd.DataFrame.from_records(records)


def _value(frame: pd.DataFrame, column: str) -> float:
    if frame.empty or column not in frame.columns:
        return math.nan
    return float(frame[column].iloc[0])


def _choose(v: pd.DataFrame, needs: Needs) -> tuple[list[str], bool]:
    numbers = v[v["meets_p99"] & v["meets_loss"] & v["meets_carrier"]]
    whole = numbers[numbers["meets_features"]]
    if not whole.empty:  # one protocol does everything: the simplest such
        return [str(whole["protocol"].iloc[0])], True
    # Compose: the simplest carrier that meets the numbers, plus the simplest protocol
    # that adds the missing features (SSE for progress, WebSocket for a conversation).
    if numbers.empty:
        carrier = _closest(v, needs)
        met = False
    else:
        carrier, met = str(numbers["protocol"].iloc[0]), True
    stack = [carrier]
    if needs.bidirectional and carrier not in BIDIRECTIONAL:
        stack.append(_first(v, BIDIRECTIONAL) or "websocket")
    elif needs.streaming and carrier not in STREAMS:
        stack.append(_first(v, STREAMS) or "sse")
    return stack, met


def _first(v: pd.DataFrame, allowed: frozenset[str]) -> str | None:
    for protocol in v["protocol"]:
        if protocol in allowed:
            return str(protocol)
    return None


def _closest(v: pd.DataFrame, needs: Needs) -> str:
    # Nothing meets every number: keep what the carrier must do (fan-out, order) and loss
    # first (neither can be bought back with capacity), then the lowest p99.
    pool = v[v["meets_carrier"]] if v["meets_carrier"].any() else v
    pool = pool[pool["meets_loss"]] if pool["meets_loss"].any() else pool
    return str(pool.sort_values(["p99"], kind="stable")["protocol"].iloc[0])


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms"


def _pct(share: float) -> str:
    return "n/a" if math.isnan(share) else f"{share * 100:.1f}%"


def _explain(
    v: pd.DataFrame, stack: list[str], met: bool, needs: Needs, load: float
) -> tuple[str, list[str], list[str]]:
    by = {row["protocol"]: row for row in v.to_dict(orient="records")}
    parts = [f"{NAMES.get(p, p)} for {ROLE.get(p, p)}" for p in stack]
    at = f"at {load:.0%} of capacity"
    if met:
        headline = f"Use {' + '.join(parts)} ({at})."
    else:
        headline = f"No protocol meets every need {at}; closest: {' + '.join(parts)}."
    reasons: list[str] = []
    first = by[stack[0]]
    if needs.p99 is not None:
        verdict = "meets" if first["meets_p99"] else "misses"
        reasons.append(
            f"{stack[0]}: p99 {_ms(first['p99'])} ± {_ms(first['p99_ci'])} on a clean network "
            f"{verdict} the {_ms(needs.p99)} target."
        )
    if not needs.loss_tolerable:
        losers = [p for p, r in by.items() if not r["meets_loss"]]
        if losers:
            worst = ", ".join(f"{p} {_pct(by[p]['lost_rate'])}" for p in losers)
            reasons.append(f"Loss is not tolerable: under faults these lose requests: {worst}.")
        reasons.append(
            f"{stack[0]} lost {_pct(first['lost_rate'])} of requests "
            f"(at most {_pct(needs.max_loss)} allowed)."
        )
        answered = first["success_rate_faults"]
        if not math.isnan(answered) and answered < 0.9:
            # Not lost is not on time: say what durability costs the caller.
            reasons.append(
                f"But under faults {stack[0]} answered only {_pct(answered)} within the "
                "caller's timeout: the rest were served late or are still queued, so the "
                "caller must wait longer or collect results later."
            )
    else:
        reasons.append(
            f"Loss is tolerable: {stack[0]} lost {_pct(first['lost_rate'])} under faults, "
            "which the caller must retry or accept."
        )
    if needs.streaming:
        carrier = "streams" if first["streams"] else "cannot stream"
        reasons.append(f"Partial results must stream: {stack[0]} {carrier}.")
    if needs.bidirectional:
        reasons.append("Both sides talk: only WebSocket lets either side speak at any time.")
    for needed, feature, what in (
        (needs.fan_out, "fan_out", "One message must reach several subscribers"),
        (needs.ordered, "ordered", "Messages of a key must be handled in order"),
    ):
        if needed:
            able = [p for p, r in by.items() if r[feature]]
            reasons.append(
                f"{what}: of the swept brokers only {', '.join(able) or 'none'} can; "
                f"{stack[0]}: p99 {_ms(first['p99'])} on a clean network, "
                f"{_pct(first['lost_rate'])} lost under faults."
            )
    if len(stack) == 1 and stack[0] != "http" and "http" in by:
        http = by["http"]
        reasons.append(
            f"Against plain HTTP: p99 {_ms(http['p99'])}, lost {_pct(http['lost_rate'])} "
            f"under faults, {http['amplification']:.1f} messages per request "
            f"(vs {first['amplification']:.1f})."
        )
    notes: list[str] = []
    if needs.p99 is not None and not v["meets_p99"].any():
        best = v.sort_values("p99")["protocol"].iloc[0]
        notes.append(
            f"No protocol meets p99 <= {_ms(needs.p99)} {at} (best: {best}, "
            f"{_ms(float(v['p99'].min()))}): the service, not the protocol, is the "
            "bottleneck; add capacity or shed load."
        )
    return headline, reasons, notes


__all__ = ["Advice", "Needs", "advise"]
