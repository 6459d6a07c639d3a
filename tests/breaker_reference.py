"""A circuit breaker written from Resilience4j's documented state machine, apart from
`protocols.resilience`, and the replay of a run's calls through it.

Rate mode over a COUNT_BASED window (what the scenarios here use): CLOSED judges the last
`window` outcomes once `min(min_calls, window)` are in: a failure rate >= `failure_rate`
or a slow-call rate >= `slow_rate` (a call is slow past `slow_call` seconds) opens it.
OPEN refuses calls for `open_for` seconds, then the next call moves it to HALF_OPEN and is
permitted; OPEN keeps the outcomes of the state it left, and results arriving late land
there. HALF_OPEN permits `half_open_calls` calls and judges them once
`min(min_calls, half_open_calls)` have completed: the same thresholds reopen it, else
it closes with an empty window. A call that never reached the callee gives its permit
back. A caller that crashes restarts with a new breaker (the state lives in memory).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# (time, from_state, to_state, failure_rate, calls): a `breakers` row, in short.
Move = tuple[float, str, str, float, int]


@dataclass
class Reference:
    """One breaker; every setting defaults to Resilience4j's CircuitBreakerConfig."""

    failure_rate: float = 0.5
    window_size: int = 100
    min_calls: int = 100
    open_for: float = 60.0
    half_open_calls: int = 10
    slow_rate: float = 1.0
    slow_call: float = 60.0
    state: str = "CLOSED"
    window: deque[tuple[bool, bool]] = field(default_factory=deque)
    until: float = 0.0
    permits: int = 0
    probes: list[tuple[bool, bool]] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    rejected: int = 0

    def __post_init__(self) -> None:
        self.window = deque(maxlen=self.window_size)

    def _go(self, now: float, to: str, outcomes: list[tuple[bool, bool]]) -> None:
        rate = sum(f for f, _ in outcomes) / len(outcomes) if outcomes else math.nan
        if to != self.state:
            self.moves.append((now, self.state, to, rate, len(outcomes)))
        self.state = to
        if to == "OPEN":
            self.until = now + self.open_for
            # OPEN keeps the metrics of the state it left (its window, or the probes).
            self.window = deque(outcomes, maxlen=len(outcomes) or self.window_size)
        elif to == "HALF_OPEN":
            self.permits, self.probes = self.half_open_calls, []
        elif to == "CLOSED":
            self.window = deque(maxlen=self.window_size)

    def acquire(self, now: float) -> bool:
        """Whether a call starting at `now` is let through."""
        if self.state == "OPEN" and now >= self.until:
            # The OPEN -> HALF_OPEN row reports the window OPEN kept.
            self._go(now, "HALF_OPEN", list(self.window))
        if self.state == "CLOSED":
            return True
        if self.state == "HALF_OPEN" and self.permits > 0:
            self.permits -= 1
            return True
        self.rejected += 1
        return False

    def release(self) -> None:
        """A permitted call ended without a verdict (it never reached the callee)."""
        if self.state == "HALF_OPEN":
            self.permits = min(self.half_open_calls, self.permits + 1)

    def record(self, now: float, duration: float, failed: bool) -> None:
        """A permitted call ended at `now` after `duration` seconds, failed or not."""
        outcome = (failed, duration > self.slow_call)
        if self.state in ("CLOSED", "OPEN"):
            self.window.append(outcome)
            judged = list(self.window)
            enough = len(judged) >= min(self.min_calls, self.window_size)
            if self.state == "CLOSED" and enough and self._tripped(judged):
                self._go(now, "OPEN", judged)
            return
        self.probes.append(outcome)
        if len(self.probes) == min(self.min_calls, self.half_open_calls):
            self._go(now, "OPEN" if self._tripped(self.probes) else "CLOSED", self.probes)

    def crash(self, now: float) -> None:
        """The caller crashed: it restarts with a new breaker."""
        self._go(now, "CLOSED", list(self.window) if self.state == "CLOSED" else [])

    def _tripped(self, outcomes: list[tuple[bool, bool]]) -> bool:
        failed = sum(f for f, _ in outcomes) / len(outcomes)
        slow = sum(s for _, s in outcomes) / len(outcomes)
        return failed >= self.failure_rate or slow >= self.slow_rate


def acquisitions(run: Any, agent: str, peer: str) -> pd.DataFrame:
    """Each time `agent` asked its breaker to let a call to `peer` go: `at`, the span and
    whether it is a refused `retry`, the attempt's `start` and `end` (NaN: still open),
    `outcome`, `status` and `error`.

    Without retries a request's span is its one attempt. With them, each attempt is a
    child span, and a retry the breaker refused ends the request's span (rejected) with
    no child: that refusal happened at the request's end. A call refused for its deadline
    before it asked the breaker is not one; nor is a WebSocket connection's span.
    """
    s = run.spans
    calls = s[(s["agent"] == agent) & (s["peer"] == peer) & s["kind"].isin(["client", "producer"])]
    calls = calls[~calls["name"].isin(["ws.connection", "ws.session"])]
    attempts = calls[calls["parent_id"].isin(calls["span_id"])]
    requests = calls[~calls["span_id"].isin(attempts["span_id"])]
    parents = requests["span_id"].isin(attempts["parent_id"])
    refused = requests["error"].str.startswith("circuit breaker")
    before = requests["error"].str.startswith("the deadline passed before the call could start")
    single, retried = requests[~parents & ~before], requests[parents & refused]
    rows = [
        single.assign(at=single["start"], retry=False),
        attempts.assign(at=attempts["start"], retry=False),
        # A refused retry: the request ends where the breaker refused it.
        retried.assign(at=retried["end"], retry=True),
    ]
    columns = ["at", "span_id", "retry", "start", "end", "outcome", "status", "error"]
    found = pd.concat(rows)[columns]
    # At one instant, spans begun in the order their calls asked (ids grow); a refused
    # retry's span began long before (`retry`: its place at that instant is unknown).
    return found.sort_values(["at", "span_id"], kind="stable").reset_index(drop=True)


def judged(call: Any) -> bool | None:
    """Resilience4j's verdict on a call: timeouts, 5xx and connection failures fail it, a
    4xx or an answer succeeds; a call refused before it reached the callee (its pool
    timed out, its deadline passed) has none."""
    if call.outcome == "timeout":
        return True
    if call.outcome == "error":
        return bool(call.status == 0 or call.status >= 500)
    if call.outcome in ("ok", "partial"):
        return False
    return None


def replay(
    run: Any, agent: str, peer: str, ref: Reference, crashes: list[float] | None = None
) -> list[str]:
    """Feed `agent`'s calls to `peer` to `ref` in time order; what disagrees with the run
    (a call it would have refused and the run let through, or the reverse)."""
    # (end, order, duration, verdict): True failed, False succeeded, None no verdict.
    ends: list[tuple[float, int, float, bool | None]] = []
    # (time, order, "crash"): the caller's crashes, applied in time order too.
    pending_crashes = sorted(crashes or [])
    problems: list[str] = []

    def settle(until: float) -> None:
        while True:
            end = ends[0][0] if ends else math.inf
            crash = pending_crashes[0] if pending_crashes else math.inf
            if min(end, crash) > until:
                return
            if crash <= end:
                # Calls in flight are lost with the process ("caller crashed", below).
                pending_crashes.pop(0)
                ref.crash(crash)
                continue
            end, _, duration, failed = heapq.heappop(ends)
            if failed is None:
                ref.release()
            else:
                ref.record(end, duration, failed)

    for order, call in enumerate(acquisitions(run, agent, peer).itertuples(index=False)):
        settle(call.at)
        permitted = ref.acquire(call.at)
        refused = call.outcome == "rejected" and call.error.startswith("circuit breaker")
        if permitted == refused:
            problems.append(
                f"{agent} -> {peer} at {call.at:.6f}: the reference is {ref.state} and "
                f"{'lets it through' if permitted else 'refuses it'}; the run: {call.error!r}"
            )
            return problems
        if refused or pd.isna(call.end) or call.error == "caller crashed":
            continue  # refused, still open at the end, or lost in a crash
        heapq.heappush(ends, (call.end, order, call.end - call.start, judged(call)))
    settle(run.duration)
    return problems
