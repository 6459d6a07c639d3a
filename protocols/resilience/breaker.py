"""Circuit breaker with Resilience4j's semantics and defaults, as a clock-driven state machine.

Modelled on Resilience4j's `CircuitBreakerStateMachine.java`: each state is a small object
that decides what a call does and where the machine goes next. Nothing here runs on its
own: time is passed in (`now`), and a caller that wants OPEN to turn HALF_OPEN on a timer
(`automatic_transition`) asks `next_transition_at()` and calls `tick(now)` then.

States: CLOSED (calls pass, outcomes are judged over a sliding window), OPEN (calls are
rejected until the wait has elapsed), HALF_OPEN (a few permitted calls probe the callee),
FORCED_OPEN and DISABLED (set by hand: reject all, or pass all and judge nothing).

Rate mode (Resilience4j): the window is the last `window` calls (count) or the calls of
the last `window` seconds, aggregated per whole second (time); see `windows`. Once it holds
`min_calls`, the breaker opens when the failure rate >= `failure_rate` or the slow-call
rate >= `slow_rate` (a call is slow when it took longer than `slow_call` seconds). In
HALF_OPEN a fresh count window of `half_open_calls` judges the probes with the same
thresholds once `min(min_calls, half_open_calls)` of them have completed (all of them,
with the defaults): above them, OPEN again; below, CLOSED. Consecutive mode:
`consecutive_failures` failures in a row open it (slow calls are not judged); in
HALF_OPEN `consecutive_successes` permitted calls must all succeed to close it, and any
failure reopens it.

Example::

    breaker = CircuitBreaker(BreakerSettings(window=20, min_calls=10), on_transition=log)
    if breaker.acquire(now):
        ...  # send; when it ends:
        breaker.record(end, end - start, failed=is_failure(outcome, status))
    else:
        ...  # the call is `rejected`: nothing goes on the wire
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from protocols.resilience.windows import CountWindow, Snapshot, TimeWindow, Window


class State(StrEnum):
    """The states of a breaker (Resilience4j `CircuitBreaker.State`)."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"
    FORCED_OPEN = "FORCED_OPEN"
    DISABLED = "DISABLED"


# (now, from_state, to_state, reason, failure_rate, slow_rate, calls): one `breakers` row
# less the agent and the target, which the caller knows.
TransitionCallback = Callable[[float, str, str, str, float, float, int], None]


class BreakerSettings(BaseModel):
    """A breaker's settings; defaults are Resilience4j's `CircuitBreakerConfig`."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["rate", "consecutive"] = Field(
        "rate", description="Judge failure and slow-call rates, or count consecutive failures."
    )
    window_type: Literal["count", "time"] = Field(
        "count", description="Window of the last N calls, or of the last N seconds."
    )
    window: int = Field(100, ge=1, description="Calls (count) or seconds (time) judged: 100.")
    failure_rate: float = Field(
        0.5, gt=0, le=1, description="Failure share that opens the breaker (50%)."
    )
    slow_rate: float = Field(1.0, gt=0, le=1, description="Slow-call share that opens it (100%).")
    slow_call: float = Field(60.0, gt=0, description="Seconds past which a call is slow (60).")
    min_calls: int = Field(100, ge=1, description="Calls in the window before it judges (100).")
    open_for: float = Field(60.0, ge=0, description="Seconds in OPEN before HALF_OPEN (60).")
    open_for_multiplier: float = Field(
        1.0, ge=1, description="Growth of the OPEN wait each time HALF_OPEN fails (1: fixed)."
    )
    open_for_max: float = Field(
        3600.0, ge=0, description="Longest OPEN wait when it grows, in seconds."
    )
    half_open_calls: int = Field(
        10, ge=1, description="Calls permitted in HALF_OPEN, judged as a window (10)."
    )
    automatic_transition: bool = Field(
        False, description="Go OPEN -> HALF_OPEN on a timer, not on the next call (false)."
    )
    max_half_open: float = Field(
        0.0, ge=0, description="Seconds HALF_OPEN waits for a verdict; 0 waits for ever (0)."
    )
    after_half_open: Literal["OPEN", "CLOSED"] = Field(
        "OPEN", description="Where HALF_OPEN goes when max_half_open runs out (OPEN)."
    )
    consecutive_failures: int = Field(
        5, ge=1, description="Consecutive mode: failures in a row that open it (Envoy: 5)."
    )
    consecutive_successes: int = Field(
        1, ge=1, description="Consecutive mode: successes in HALF_OPEN that close it (1)."
    )


def verdict(outcome: str, status: int = 0) -> Literal["failure", "success", "ignored"]:
    """How a breaker counts a call that ended with `(outcome, status)`.

    Failures are timeouts, 5xx and connection failures (an error with no status). A 4xx
    (429 included) is the caller's business, not the callee's health: it counts as a
    success, as Resilience4j records an exception it is not told to record. A call that
    never reached the wire (rejected, deadline passed, cancelled) is ignored.
    """
    if outcome == "timeout":
        return "failure"
    if outcome == "error":
        return "failure" if status == 0 or status >= 500 else "success"
    if outcome in ("ok", "partial"):
        return "success"
    return "ignored"


def is_failure(outcome: str, status: int = 0) -> bool:
    """Whether a breaker records `(outcome, status)` as a failure (see `verdict`)."""
    return verdict(outcome, status) == "failure"


# --- states ----------------------------------------------------------------------------


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _threshold(rate: float) -> str:
    return f"{rate * 100:g}%"


class _StateBase:
    """A state: decides whether a call may go, what its outcome does, where to go next."""

    name: State

    def __init__(self, machine: CircuitBreaker) -> None:
        self.machine = machine
        self.settings = machine.settings

    def acquire(self, now: float) -> bool:
        """Whether a call may start now."""
        return True

    def release(self, now: float) -> None:
        """A permitted call ended without a verdict (it never reached the wire)."""

    def record(self, now: float, duration: float, failed: bool) -> None:
        """A permitted call ended after `duration` seconds, failed or not."""

    def due(self) -> float | None:
        """When this state leaves on its own (a timer), if it does."""
        return None

    def tick(self, now: float) -> None:
        """A timer fired: leave if due."""

    def snapshot(self, now: float) -> Snapshot:
        """What this state's window holds at `now` (nothing, for a state without one)."""
        return Snapshot(0, 0, 0)

    def metrics(self, now: float) -> tuple[float, float, int]:
        """(failure_rate, slow_rate, calls) of this state's window, for transition rows."""
        snap = self.snapshot(now)
        return snap.failure_rate, snap.slow_rate, snap.calls


class _Closed(_StateBase):
    """CLOSED: every call passes; outcomes fill the window, which may open the breaker."""

    name = State.CLOSED

    def __init__(self, machine: CircuitBreaker) -> None:
        super().__init__(machine)
        s = self.settings
        self.window: Window = (
            CountWindow(s.window) if s.window_type == "count" else TimeWindow(s.window)
        )
        # Resilience4j clamps the minimum to a count window's size, not a time window's.
        self.min_calls = min(s.min_calls, s.window) if s.window_type == "count" else s.min_calls
        self.consecutive = 0

    def record(self, now: float, duration: float, failed: bool) -> None:
        s = self.settings
        snap = self.window.record(now, failed, duration > s.slow_call)
        if s.mode == "consecutive":
            self.consecutive = self.consecutive + 1 if failed else 0
            if self.consecutive >= s.consecutive_failures:
                self.machine._open(now, f"{self.consecutive} consecutive failures")
            return
        exceeded = _exceeded(snap, s, self.min_calls)
        if exceeded:
            self.machine._open(now, f"{exceeded} over {self.window.describe()}")

    def snapshot(self, now: float) -> Snapshot:
        return self.window.snapshot(now)


class _Frozen(_StateBase):
    """A state that judges nothing and reports the window it was entered from, as it was
    then: read later, a time window would have slid empty (NaN rates)."""

    def __init__(self, machine: CircuitBreaker, frozen: Snapshot) -> None:
        super().__init__(machine)
        self.frozen = frozen

    def snapshot(self, now: float) -> Snapshot:
        return self.frozen


class _Open(_Frozen):
    """OPEN: calls are rejected until the wait has elapsed, then HALF_OPEN lets some by.

    Resilience4j's OPEN keeps the window it left: calls in flight when it opened land in
    it. A count window is kept as it is (time does not empty it); a time window stops
    sliding at the opening (read at the OPEN -> HALF_OPEN row it would have slid empty,
    NaN rates): its calls then, plus the late ones.
    """

    name = State.OPEN

    def __init__(
        self, machine: CircuitBreaker, now: float, frozen: Snapshot, window: Window | None
    ) -> None:
        super().__init__(machine, frozen)
        self.window = window if isinstance(window, CountWindow) else None
        s = self.settings
        # The wait grows with each reopening from HALF_OPEN (Resilience4j's attempts).
        cap = max(s.open_for_max, s.open_for)
        try:
            wait = s.open_for * s.open_for_multiplier ** (machine.attempts - 1)
        except OverflowError:
            # A thousand reopenings overflow a float long after they passed the cap.
            wait = cap
        self.wait = min(wait, cap)
        self.until = now + self.wait

    def acquire(self, now: float) -> bool:
        if now >= self.until:
            self.machine._half_open(now, f"wait of {self.wait:g} s in OPEN elapsed")
            return self.machine._state.acquire(now)
        return False

    def record(self, now: float, duration: float, failed: bool) -> None:
        slow_call = duration > self.settings.slow_call
        if self.window is not None:
            self.frozen = self.window.record(now, failed, slow_call)
            return
        calls, failures, slow = self.frozen
        self.frozen = Snapshot(calls + 1, failures + failed, slow + slow_call)

    def due(self) -> float | None:
        return self.until if self.settings.automatic_transition else None

    def tick(self, now: float) -> None:
        if self.settings.automatic_transition and now >= self.until:
            self.machine._half_open(
                now, f"wait of {self.wait:g} s in OPEN elapsed (automatic transition)"
            )


class _HalfOpen(_StateBase):
    """HALF_OPEN: a few permitted calls probe the callee; their verdict opens or closes."""

    name = State.HALF_OPEN

    def __init__(self, machine: CircuitBreaker, now: float) -> None:
        super().__init__(machine)
        s = self.settings
        consecutive = s.mode == "consecutive"
        self.permitted = s.consecutive_successes if consecutive else s.half_open_calls
        self.permits = self.permitted
        self.window = CountWindow(self.permitted)
        self.min_calls = min(s.min_calls, self.permitted)
        self.successes = 0
        self.until = now + s.max_half_open if s.max_half_open > 0 else None

    def acquire(self, now: float) -> bool:
        if self.until is not None and now >= self.until:
            self._expire(now)
            return self.machine._state.acquire(now)
        if self.permits > 0:
            self.permits -= 1
            return True
        return False

    def release(self, now: float) -> None:
        self.permits = min(self.permitted, self.permits + 1)

    def record(self, now: float, duration: float, failed: bool) -> None:
        s = self.settings
        snap = self.window.record(now, failed, duration > s.slow_call)
        if s.mode == "consecutive":
            if failed:
                self.machine._open(now, "a permitted call failed in HALF_OPEN")
                return
            self.successes += 1
            if self.successes >= self.permitted:
                self.machine._close(now, f"{self.successes} consecutive successes in HALF_OPEN")
            return
        if snap.calls < self.min_calls:
            return
        of = f"{snap.failed} of {snap.calls} permitted calls failed"
        exceeded = _exceeded(snap, s, self.min_calls)
        if exceeded:
            self.machine._open(now, f"{of}, {snap.slow} were slow: {exceeded}")
        else:
            self.machine._close(
                now,
                f"{of} ({_pct(snap.failure_rate)} < {_threshold(s.failure_rate)}) and "
                f"{snap.slow} were slow ({_pct(snap.slow_rate)} < {_threshold(s.slow_rate)})",
            )

    def due(self) -> float | None:
        return self.until

    def tick(self, now: float) -> None:
        if self.until is not None and now >= self.until:
            self._expire(now)

    def _expire(self, now: float) -> None:
        """No verdict within max_half_open: go where the settings say."""
        snap = self.window.snapshot(now)
        reason = (
            f"no verdict within {self.settings.max_half_open:g} s in HALF_OPEN "
            f"({snap.calls} of {self.permitted} permitted calls completed)"
        )
        if self.settings.after_half_open == "CLOSED":
            self.machine._close(now, reason)
        else:
            self.machine._open(now, reason)

    def snapshot(self, now: float) -> Snapshot:
        return self.window.snapshot(now)


class _ForcedOpen(_Frozen):
    """FORCED_OPEN: every call is rejected until someone changes the state; it reports the
    rates of the state it was forced from."""

    name = State.FORCED_OPEN

    def acquire(self, now: float) -> bool:
        return False


class _Disabled(_Frozen):
    """DISABLED: every call passes and nothing is judged; it reports the rates of the
    state it was disabled from."""

    name = State.DISABLED


def _exceeded(snap: Snapshot, s: BreakerSettings, min_calls: int) -> str:
    """A sentence naming the thresholds `snap` reaches, or "" (also below the minimum)."""
    if snap.calls < min_calls:
        return ""
    parts = []
    # Both comparisons are >= in Resilience4j (CircuitBreakerMetrics).
    if snap.failure_rate >= s.failure_rate:
        parts.append(f"failure rate {_pct(snap.failure_rate)} >= {_threshold(s.failure_rate)}")
    if snap.slow_rate >= s.slow_rate:
        parts.append(
            f"slow-call rate {_pct(snap.slow_rate)} >= {_threshold(s.slow_rate)} "
            f"(calls over {s.slow_call:g} s)"
        )
    return " and ".join(parts)


# --- the machine -----------------------------------------------------------------------


class CircuitBreaker:
    """One breaker, per (caller, callee): ask `acquire` before a call, `record` after it.

    `on_transition(now, from_state, to_state, reason, failure_rate, slow_rate, calls)` is
    told every state change; the rates are shares (0..1, NaN with no calls) of the window
    of the state being left, and `calls` the calls in it (OPEN, FORCED_OPEN and DISABLED
    judge nothing: they report the window they were entered from, as it was then). `rejected` counts the calls this
    breaker refused.
    """

    def __init__(
        self,
        settings: BreakerSettings | None = None,
        on_transition: TransitionCallback | None = None,
    ) -> None:
        self.settings = settings if settings is not None else BreakerSettings()
        self.on_transition = on_transition
        # Times OPEN was entered since the last CLOSED: grows the OPEN wait.
        self.attempts = 0
        self.rejected = 0
        self._state: _StateBase = _Closed(self)

    @property
    def state(self) -> State:
        """The current state (timers are not applied: see `tick`)."""
        return self._state.name

    def acquire(self, now: float) -> bool:
        """Whether a call may start now. False: it is rejected and must not be sent."""
        if self._state.acquire(now):
            return True
        self.rejected += 1
        return False

    def release(self, now: float) -> None:
        """A permitted call ended without reaching the callee (its permit is given back)."""
        self._state.release(now)

    def record(self, now: float, duration: float, failed: bool) -> None:
        """A permitted call ended at `now` after `duration` seconds; judge it."""
        self._state.record(now, duration, failed)

    def next_transition_at(self) -> float | None:
        """When the breaker changes state on its own, for the caller to set a timer."""
        return self._state.due()

    def tick(self, now: float) -> None:
        """Apply a timed transition that is due at `now` (the caller's timer fired)."""
        self._state.tick(now)

    def metrics(self, now: float) -> tuple[float, float, int]:
        """(failure_rate, slow_rate, calls) of the current state's window."""
        return self._state.metrics(now)

    def force_open(self, now: float, reason: str = "forced open") -> None:
        """Reject every call until `reset` or `disable`."""
        self._go(now, _ForcedOpen(self, self._state.snapshot(now)), reason)

    def disable(self, now: float, reason: str = "disabled") -> None:
        """Let every call through and judge nothing, until `reset` or `force_open`."""
        self._go(now, _Disabled(self, self._state.snapshot(now)), reason)

    def reset(self, now: float, reason: str = "reset") -> None:
        """Back to CLOSED with an empty window."""
        self.attempts = 0
        self._go(now, _Closed(self), reason)

    # Transitions used by the states.

    def _open(self, now: float, reason: str) -> None:
        # OPEN keeps the window of the state it left (CLOSED or HALF_OPEN), a time
        # window stopped now.
        window = getattr(self._state, "window", None)
        frozen = self._state.snapshot(now)
        self.attempts += 1
        self._go(now, _Open(self, now, frozen, window), reason)

    def _half_open(self, now: float, reason: str) -> None:
        self._go(now, _HalfOpen(self, now), reason)

    def _close(self, now: float, reason: str) -> None:
        self.attempts = 0
        self._go(now, _Closed(self), reason)

    def _go(self, now: float, new: _StateBase, reason: str) -> None:
        """Enter `new`; a change of state is reported, a same-state one is not."""
        old = self._state
        failure_rate, slow_rate, calls = old.metrics(now)
        self._state = new
        if old.name != new.name and self.on_transition is not None:
            self.on_transition(
                now, str(old.name), str(new.name), reason, failure_rate, slow_rate, calls
            )
