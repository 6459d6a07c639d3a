"""The call path through a channel's policies: deadline, breaker, throttle, retries.

Whatever protocol carries a call, one logical request goes through the same steps:

1. the deadline: this hop's timeout is capped by what remains of the incoming deadline;
   nothing goes out once it has passed (`deadline_exceeded`);
2. the circuit breaker: an OPEN breaker refuses the call (`rejected`, nothing on the wire);
3. client-side adaptive throttling, when set, may refuse it locally (`rejected`);
4. the attempt, through the protocol;
5. the result feeds the breaker, the throttle and the retry budget;
6. a retryable failure is retried after a backoff (honouring Retry-After), if the retry
   policy, the budget and the deadline all allow it.

With a retry policy the request has its own span and every attempt is a child span; the
parent counts the attempts. Without one, the single attempt's span is the request's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any, Protocol

from protocols.call import Call, CallResult, abort_all
from protocols.node import Node
from protocols.resilience.backoff import RetryPolicy, RetrySettings
from protocols.resilience.breaker import BreakerSettings, CircuitBreaker, State, verdict
from protocols.resilience.budget import (
    AdaptiveThrottle,
    AdaptiveThrottleSettings,
    RetryBudget,
    RetryBudgetSettings,
    backend_accepted,
    make_budget,
)
from protocols.resilience.deadline import DeadlineSettings, HopBudget, hop_budget


class Attempt(Protocol):
    """A protocol client's call, as the resilience layer makes it."""

    def __call__(
        self,
        dst: str,
        type_: str,
        correlation_id: str,
        timeout: float | None = ...,
        parent: int = ...,
        size_bytes: int = ...,
        body: Any = ...,
        causation_id: str = ...,
        on_done: Callable[[CallResult], None] | None = ...,
        attempt: int = ...,
        idempotency_key: str = ...,
        deadline: float | None = ...,
    ) -> Call:
        """Start one attempt."""
        ...


# Tell the callee to stop work on a request: (dst, request key, correlation id, span).
Cancel = Callable[[str, str, str, int], None]


class Policies:
    """A channel's policies, built once per (caller, callee)."""

    def __init__(
        self,
        node: Node,
        dst: str,
        rng: random.Random,
        retry: RetrySettings | None = None,
        breaker: BreakerSettings | None = None,
        budget: RetryBudgetSettings | None = None,
        throttle: AdaptiveThrottleSettings | None = None,
        deadline: DeadlineSettings | None = None,
        idempotent: bool = True,
    ) -> None:
        self.node = node
        self.dst = dst
        self.rng = rng
        self.retry = RetryPolicy(retry) if retry is not None else None
        self._budget_settings, self._throttle_settings = budget, throttle
        self.budget: RetryBudget | None = None
        self.throttle: AdaptiveThrottle | None = None
        self.renew()  # the first ones, as a restart makes them
        self.deadline = deadline or DeadlineSettings()
        self.idempotent = idempotent
        self.breaker: CircuitBreaker | None = None
        if breaker is not None:
            self.breaker = CircuitBreaker(breaker, on_transition=self._transition)
        # A plain channel: no policy acts on a call (nothing retries, refuses, learns from
        # it or cancels it), so a call without an incoming deadline is its one attempt.
        # A retry budget may still count requests (see `ResilientCaller.call`).
        self.plain = (
            (self.retry is None or self.retry.settings.max_attempts <= 1)
            and self.breaker is None
            and self.throttle is None
            and not self.deadline.cancel_on_timeout
        )

    def renew(self) -> None:
        """The caller restarts as a new process: a fresh retry budget (a full bucket, an
        empty window) and throttle (no history). Both live in the process's memory, as
        the breaker does (Finagle's RetryBudget, the AWS SDKs' retry quota, gRPC's
        retry throttling, the SRE book's client-side throttle are per client object)."""
        budget, throttle = self._budget_settings, self._throttle_settings
        self.budget = make_budget(budget) if budget is not None else None
        self.throttle = AdaptiveThrottle(throttle) if throttle is not None else None

    def _transition(
        self,
        now: float,
        from_state: Any,
        to_state: Any,
        reason: str,
        failure_rate: float,
        slow_rate: float,
        calls: int,
    ) -> None:
        node = self.node
        node.journal.breaker_transition(
            time=now,
            agent=node.id,
            target=self.dst,
            from_state=str(from_state),
            to_state=str(to_state),
            reason=reason,
            failure_rate=failure_rate,
            slow_rate=slow_rate,
            calls=calls,
        )
        breaker = self.breaker
        due = breaker.next_transition_at() if breaker is not None else None
        if due is not None and breaker is not None:
            # An automatic OPEN -> HALF_OPEN happens on a timer, not on the next call.
            node.after(max(0.0, due - now), lambda: breaker.tick(node.env.now))


class Request:
    """One logical request going through the policies: its attempts and its end."""

    __slots__ = (
        "attempt",
        "body",
        "call",
        "causation_id",
        "correlation_id",
        "incoming",
        "last_cost",
        "parent",
        "previous",
        "size_bytes",
        "timeout",
        "type",
    )
    # Set by the caller when it makes the request.
    type: str
    correlation_id: str
    parent: int
    size_bytes: int
    body: Any
    causation_id: str
    timeout: float | None
    incoming: float

    def __init__(self) -> None:
        self.attempt = 0
        self.last_cost = 0
        self.previous = 0.0
        self.call: Call | None = None


class ResilientCaller:
    """Calls one callee through its channel's policies, over one protocol."""

    def __init__(
        self,
        node: Node,
        policies: Policies,
        attempt: Attempt,
        protocol: str,
        cancel: Cancel | None = None,
    ) -> None:
        self.node = node
        self.policies = policies
        self.attempt_fn = attempt
        self.protocol = protocol
        self.cancel_fn = cancel
        # The attempt in flight of each request that retries, by the request's key.
        self._current: dict[str, Call] = {}
        self.pending: dict[str, Call] = {}
        self._keys = 0
        node.on_crash.append(self.reset)
        # On a plain channel with no budget to count requests, a call without an incoming
        # deadline may go straight through `direct`: what `call` would do, a frame less.
        plain = policies.plain and policies.budget is None
        self.direct: Attempt | None = attempt if plain else None

    def call(
        self,
        type_: str,
        correlation_id: str,
        timeout: float | None,
        parent: int = -1,
        size_bytes: int = 256,
        body: Any = None,
        causation_id: str = "",
        deadline: float = math.inf,
        on_done: Callable[[CallResult], None] | None = None,
    ) -> Call:
        """Make a request through the policies; the returned Call ends once, by them."""
        p = self.policies
        node = self.node
        now = node.env.now
        if p.plain and deadline == math.inf:
            # Nothing to cap, refuse, learn or cancel: the attempt is the request, and
            # its result goes straight to `on_done` (the common case of a plain channel,
            # worth sparing the steps below that would all do nothing).
            if p.budget is not None:
                p.budget.on_request(now)
            return self.attempt_fn(
                p.dst, type_, correlation_id, timeout, parent, size_bytes, body,
                causation_id, on_done, 1, "", now + timeout if timeout is not None else math.inf,
            )  # fmt: skip
        hop = hop_budget(now, timeout, deadline, p.deadline)
        retrying = p.retry is not None and p.retry.settings.max_attempts > 1
        if not retrying:
            refusal = self._refusal(hop)
            if refusal is not None:
                return self._refused(type_, correlation_id, parent, hop.deadline, refusal, on_done)
            if p.budget is not None:
                p.budget.on_request(now)
            started = now
            # The attempt may end before it returns (a deadline that has already passed:
            # a timeout below the clock's resolution), with nothing sent to cancel.
            single: Call | None = None

            def done(result: CallResult) -> None:
                self._learn(result, node.env.now - started)
                if result[0] == "timeout" and single is not None:
                    self._cancel_downstream(single)
                if on_done is not None:
                    on_done(result)

            attempt = self.attempt_fn(
                p.dst, type_, correlation_id, hop.timeout, parent, size_bytes, body,
                causation_id, done, 1, "", hop.deadline,
            )  # fmt: skip
            single = attempt
            return attempt
        request = Request()
        request.type, request.correlation_id, request.parent = type_, correlation_id, parent
        request.size_bytes, request.body, request.causation_id = size_bytes, body, causation_id
        request.timeout, request.incoming = timeout, deadline
        # The request's own deadline is its caller's, when it honours it (`propagate`):
        # each attempt has its own timeout. A hop that ignores the incoming deadline
        # has none over its attempts.
        bound = p.deadline.propagate and deadline != math.inf
        overall = deadline if bound else math.nan
        span = node.journal.span_start(
            type_, "client", node.id, p.dst, self.protocol, now, parent, correlation_id,
            overall,
        )  # fmt: skip
        self._keys += 1
        request.call = Call(self, f"r{self._keys}", span, None, on_done)
        if p.budget is not None:
            p.budget.on_request(now)
        self._try(request)
        return request.call

    # -- the steps --------------------------------------------------------------------

    def _refusal(self, hop: HopBudget) -> CallResult | None:
        p, now = self.policies, self.node.env.now
        if hop.exceeded:
            return ("deadline_exceeded", 0, "the deadline passed before the call could start")
        if p.breaker is not None and not p.breaker.acquire(now):
            return ("rejected", 0, f"circuit breaker {p.breaker.state} refused the call")
        if p.throttle is not None:
            grant = p.throttle.admit(now, p.rng)
            if not grant.allowed:
                if p.breaker is not None:
                    p.breaker.release(now)
                return ("rejected", 0, grant.reason)
        return None

    def _try(self, request: Request) -> None:
        p, node = self.policies, self.node
        now = node.env.now
        call = request.call
        assert call is not None
        hop = hop_budget(now, request.timeout, request.incoming, p.deadline)
        refusal = self._refusal(hop)
        if refusal is not None:
            self._end(request, refusal)
            return
        request.attempt += 1
        started = now

        # A protocol may end an attempt before it returns the attempt's call (a WebSocket
        # refuses a request its full send buffer cannot hold): that result waits here
        # until the call is known.
        attempt_call: Call | None = None
        early: list[CallResult] = []

        def done(result: CallResult) -> None:
            if attempt_call is None:
                early.append(result)
            else:
                self._attempt_ended(request, call, attempt_call, result, started)

        attempt_call = self.attempt_fn(
            p.dst, request.type, request.correlation_id, hop.timeout, call.span,
            request.size_bytes, request.body, request.causation_id, done, request.attempt,
            "", hop.deadline,
        )  # fmt: skip
        if early:
            self._attempt_ended(request, call, attempt_call, early[0], started)
        elif attempt_call.result is None:
            self._current[call.key] = attempt_call

    def _attempt_ended(
        self, request: Request, call: Call, attempt: Call, result: CallResult, started: float
    ) -> None:
        self._current.pop(call.key, None)
        if result[0] == "timeout":
            self._cancel_downstream(attempt)
        self._attempt_done(request, attempt, result, self.node.env.now - started)

    def _attempt_done(
        self, request: Request, attempt: Call, result: CallResult, duration: float
    ) -> None:
        p, node = self.policies, self.node
        now = node.env.now
        self._learn(result, duration)
        outcome, status, error = result
        if outcome == "ok":
            if p.budget is not None:
                p.budget.on_success(now, request.last_cost)
            self._end(request, result)
            return
        retry = p.retry
        assert retry is not None
        if p.budget is not None:
            p.budget.on_failure(now)
        again, why = retry.should_retry(
            request.attempt, outcome, status, p.idempotent, attempt.retry_after
        )
        if not again:
            self._end(request, (outcome, status, error if request.attempt == 1 else why))
            return
        if p.budget is not None:
            grant = p.budget.try_retry(now, after_timeout=outcome == "timeout")
            if not grant.allowed:
                self._end(request, (outcome, status, f"{error}; retry refused: {grant.reason}"))
                return
            request.last_cost = grant.cost
        wait = retry.wait(request.attempt, request.previous, p.rng, attempt.retry_after)
        request.previous = wait
        if p.deadline.propagate and now + wait >= request.incoming - p.deadline.margin:
            self._end(request, ("deadline_exceeded", status, f"{error}; no time left to retry"))
            return
        node.after(wait, lambda: self._try(request))

    def cancel(self, call: Call, why: str = "the caller cancelled it") -> None:
        """Give up on a request: it ends `cancelled`, and the callee is told to stop."""
        if call.result is not None:
            return
        attempt = self._current.pop(call.key, None)
        if attempt is not None and attempt.result is None:
            attempt.end(("cancelled", 0, why))
            self._send_cancel(attempt)
        elif attempt is None and call.owner is not self:
            # A request without retries: the call is the protocol's own.
            call.end(("cancelled", 0, why))
            self._send_cancel(call)
            return
        call.end(("cancelled", 0, why))

    def _cancel_downstream(self, attempt: Call) -> None:
        if self.policies.deadline.cancel_on_timeout:
            self._send_cancel(attempt)

    def _send_cancel(self, attempt: Call) -> None:
        if self.cancel_fn is not None:
            self.cancel_fn(self.policies.dst, attempt.key, "", attempt.span)

    def _learn(self, result: CallResult, duration: float) -> None:
        """Feed an attempt's result to the breaker and the throttle."""
        p, now = self.policies, self.node.env.now
        outcome, status, _ = result
        if p.breaker is not None:
            judged = verdict(outcome, status)
            if judged == "ignored":
                p.breaker.release(now)
            else:
                p.breaker.record(now, duration, judged == "failure")
        if p.throttle is not None:
            p.throttle.on_response(now, backend_accepted(outcome, status))

    def _end(self, request: Request, result: CallResult) -> None:
        call = request.call
        assert call is not None
        call.attempts = request.attempt
        call.end(result)

    def _refused(
        self,
        type_: str,
        correlation_id: str,
        parent: int,
        deadline: float,
        result: CallResult,
        on_done: Callable[[CallResult], None] | None,
    ) -> Call:
        node = self.node
        span = node.journal.span_start(
            type_, "client", node.id, self.policies.dst, self.protocol, node.env.now, parent,
            correlation_id, deadline,
        )  # fmt: skip
        self._keys += 1
        call = Call(self, f"r{self._keys}", span, None, on_done)
        call.attempts = 0
        call.end(result)
        return call

    def reset(self) -> None:
        """The caller crashed: requests in flight end in error (their attempts too).

        Its breaker's state lived in the process's memory (Resilience4j's does): the
        restarted process has a new one, CLOSED with an empty window. Kept, a breaker
        HALF_OPEN with its probes lost in the crash would never get their permits back
        and refuse every call for ever. A state an operator set (FORCED_OPEN, DISABLED)
        stays until the operator's window ends. Its retry budget and throttle lived
        there too: new ones (`Policies.renew`).
        """
        abort_all(self)
        self.policies.renew()
        breaker = self.policies.breaker
        if breaker is not None and breaker.state in (State.CLOSED, State.OPEN, State.HALF_OPEN):
            breaker.reset(self.node.env.now, "the caller crashed: it restarts with a new breaker")
