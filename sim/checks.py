"""Invariants any run can be checked against, each a pure function of the Run.

Each check returns the rows that violate it (an empty table when it holds), with a
`correlation_id` column wherever one applies, so a violation can be shown with its
message chain. `check(run)` runs them all (`sim.check`), `violations(run)` keeps those
that failed and the scenario does not expect to fail; `python -m sim run SCENARIO
--check` prints the first violation and exits 1. A Run never calls these itself.

    >>> import sim
    >>> run = sim.run("basic")
    >>> sorted(sim.check(run)) == sorted(c.name for c in CHECKS)
    True
    >>> violations(run)
    {}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from sim.metrics import OPEN_STATES, requests

if TYPE_CHECKING:
    from sim.trace.run import Run

# A request may end later than its deadline by the time its answer takes to travel.
SLACK = 1e-6


@dataclass(frozen=True)
class Check:
    """One invariant: its name, what it asserts, and the function finding violations."""

    name: str
    asserts: str
    find: Callable[[Run], pd.DataFrame]


def nothing_lost(run: Run) -> pd.DataFrame:
    """Workload requests that vanished: still open past their deadline at the run's end.

    Every request must end in a response, an error, a timeout or a dead-letter entry;
    one with no deadline that is still open is reported by `Run.summary`, not here.
    """
    roots = requests(run.spans)
    vanished = roots[(roots["outcome"] == "open") & (roots["deadline"] < run.duration - SLACK)]
    return vanished[["correlation_id", "span_id", "agent", "peer", "start", "deadline"]]


def exactly_once(run: Run) -> pd.DataFrame:
    """Effects applied more than once for one key by a receiver that is idempotent."""
    effects = run.effects
    idempotent = idempotent_agents(run)
    if effects.empty or not idempotent:
        return pd.DataFrame(columns=["agent", "key", "effects", "correlation_id"])
    mine = effects[effects["agent"].isin(idempotent)]
    grouped = mine.groupby(["agent", "key"], sort=True).agg(
        effects=("msg_id", "size"), correlation_id=("correlation_id", "first")
    )
    return grouped[grouped["effects"] > 1].reset_index()


def idempotent_agents(run: Run) -> list[str]:
    """Agents whose receivers deduplicate (HTTP `dedupe`, or an idempotent consumer)."""
    # A queue channel with `idempotent: true` makes the agent it reaches dedupe its
    # deliveries (a queue server, or an orchestrator reading its response queue).
    queued = {c.dst for c in run.scenario.channels if c.protocol == "queue" and c.queue.idempotent}
    found = []
    for agent in run.scenario.agents:
        if agent.http.dedupe or getattr(agent, "idempotent", False) or agent.id in queued:
            found.append(agent.id)
    return found


def deadlines_shrink(run: Run) -> pd.DataFrame:
    """Calls whose deadline is later than the deadline of the call they serve.

    Along a chain A -> B -> C, B's call to C must give up no later than A's call to B:
    otherwise C works for a caller that has already stopped waiting.
    """
    spans = run.spans
    by_id = spans.set_index("span_id")
    calls = spans[(spans["kind"].isin(["client", "producer"])) & (spans["parent_id"] != "")]
    if calls.empty:
        return pd.DataFrame(columns=["correlation_id", "span_id", "deadline", "upstream"])
    # The call this one serves: its parent is a server span whose parent is that call.
    server_parent = calls["parent_id"].map(by_id["parent_id"])
    upstream = server_parent.map(by_id["deadline"])
    bad = calls.assign(upstream=upstream)
    bad = bad[bad["upstream"].notna() & bad["deadline"].notna()]
    bad = bad[bad["deadline"] > bad["upstream"] + SLACK]
    return bad[["correlation_id", "span_id", "agent", "peer", "deadline", "upstream"]]


def no_retries_beyond_budget(run: Run) -> pd.DataFrame:
    """Callers whose retries exceeded their channel's retry budget ratio (plus its floor)."""
    columns = ["agent", "peer", "requests", "retries", "allowed"]
    budgets = {}
    for channel in run.scenario.channels:
        budget = getattr(channel, "budget", None)
        if budget is not None and getattr(budget, "kind", "ratio") == "ratio":
            budgets[(channel.src, channel.dst)] = budget
    if not budgets:
        return pd.DataFrame(columns=columns)
    spans = run.spans
    parents = spans[(spans["kind"] == "client") & (spans["attempts"] >= 1)]
    rows = []
    for (agent, peer), budget in budgets.items():
        mine = parents[(parents["agent"] == agent) & (parents["peer"] == peer)]
        # A retrying call's span holds its attempts as child spans of the same caller and
        # callee: count the requests, not the attempts under them.
        mine = mine[~mine["parent_id"].isin(mine["span_id"])]
        if mine.empty:
            continue
        retries = int((mine["attempts"] - 1).clip(lower=0).sum())
        allowed = budget.ratio * len(mine) + budget.min_retries_per_second * run.duration
        if retries > allowed + 1:
            rows.append((agent, peer, len(mine), retries, allowed))
    return pd.DataFrame(rows, columns=columns)


def no_traffic_through_open_breakers(run: Run) -> pd.DataFrame:
    """Requests put on the wire by calls that began while their breaker was OPEN.

    A call the breaker let through before it opened may still be sending (its connection
    was being opened); what must not happen is a call starting, and sending, while OPEN.
    """
    columns = ["correlation_id", "msg_id", "src", "dst", "sent_at", "began", "state"]
    breakers, messages = run.breakers, run.messages
    if breakers.empty:
        return pd.DataFrame(columns=columns)
    began = messages["span_id"].map(run.spans.set_index("span_id")["start"])
    messages = messages.assign(began=began.fillna(messages["sent_at"]))
    found = []
    for (agent, target), rows in breakers.sort_values("time", kind="stable").groupby(
        ["agent", "target"], sort=True
    ):
        sent = messages[
            (messages["src"] == agent)
            & (messages["dst"] == target)
            & (messages["kind"] == "request")
        ]
        times = [*rows["time"].tolist(), float("inf")]
        for i, state in enumerate(rows["to_state"].tolist()):
            if state not in OPEN_STATES:
                continue
            inside = sent[(sent["began"] > times[i] + SLACK) & (sent["began"] < times[i + 1])]
            if not inside.empty:
                found.append(inside.assign(state=state))
    if not found:
        return pd.DataFrame(columns=columns)
    return pd.concat(found)[columns]


def dead_letters_have_reasons(run: Run) -> pd.DataFrame:
    """Dead-lettered messages recorded without a reason."""
    m = run.messages
    bad = m[(m["outcome"] == "dead_lettered") & (m["reason"] == "")]
    return bad[["correlation_id", "msg_id", "src", "dst", "attempt", "ended_at"]]


CHECKS = [
    Check("nothing_lost", "every workload request ends in an answer, an error, a timeout "
          "or a dead letter", nothing_lost),
    Check("exactly_once", "idempotent receivers apply each effect once", exactly_once),
    Check("deadlines_shrink", "deadlines shrink along every call chain", deadlines_shrink),
    Check("retry_budget", "no caller retries beyond its budget", no_retries_beyond_budget),
    Check("open_breakers", "nothing goes on the wire through an OPEN breaker",
          no_traffic_through_open_breakers),
    Check("dead_letter_reasons", "every dead letter has a reason", dead_letters_have_reasons),
]  # fmt: skip


def check(run: Run) -> dict[str, pd.DataFrame]:
    """Every check's violations, by check name (empty tables when the run is clean)."""
    return {c.name: c.find(run) for c in CHECKS}


def expected_violations(run: Run) -> list[str]:
    """The checks the run's scenario declares it fails (`expected_violations`)."""
    scenario = run.manifest.get("scenario") or {}
    return list(scenario.get("expected_violations", []))


def violations(run: Run, include_expected: bool = False) -> dict[str, pd.DataFrame]:
    """The checks that failed, less those the scenario expects to fail, by check name."""
    expected = set() if include_expected else set(expected_violations(run))
    return {
        name: rows for name, rows in check(run).items() if not rows.empty and name not in expected
    }


def message_chain(run: Run, correlation_id: str) -> pd.DataFrame:
    """The messages of one trace in the order they were sent."""
    m = run.messages
    chain = m[m["correlation_id"] == correlation_id].sort_values(["sent_at", "seq"])
    return chain[["seq", "sent_at", "src", "dst", "kind", "type", "attempt", "outcome", "reason"]]


def describe_violation(run: Run, name: str, rows: pd.DataFrame, limit: int = 20) -> str:
    """The first violation of a check as text: what it asserts, the row, its chain."""
    rule = next(c for c in CHECKS if c.name == name)
    first = rows.iloc[0]
    lines = [
        f"check '{name}' failed: {rule.asserts} ({len(rows)} violation(s))",
        "first: " + ", ".join(f"{k}={first[k]}" for k in rows.columns),
    ]
    correlation_id = first.get("correlation_id") if "correlation_id" in rows.columns else None
    if correlation_id:
        chain = message_chain(run, str(correlation_id))
        lines.append(f"messages of {correlation_id}, in order:")
        for row in chain.head(limit).itertuples(index=False):
            lines.append(
                f"  {row.sent_at:10.4f}  {row.src} -> {row.dst}  {row.kind} {row.type}"
                f" (attempt {row.attempt}) {row.outcome}{': ' + row.reason if row.reason else ''}"
            )
        if len(chain) > limit:
            lines.append(f"  ... and {len(chain) - limit} more")
    return "\n".join(lines)
