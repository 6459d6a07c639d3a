"""Retry budgets and client-side throttling: the brakes that stop retries becoming a storm.

Three retry budgets, one interface (`RetryBudget`), each configured by its own settings
model with the real defaults:

- `RatioBudget` (Finagle's `RetryBudget`): retries may be at most `ratio` of the requests
  made in the last `ttl` seconds, plus a floor of `min_retries_per_second`. Every request
  deposits, every retry withdraws; both expire after about `ttl`.
- `TokenBucket` (the AWS SDKs' "standard" retry quota, botocore `retries/standard.py` and
  `quota.py`): a bucket of 500 tokens, a retry costs 5 (10 after a timeout), a success
  on the first try refunds 1, a success after retries refunds what its last retry cost.
- `GrpcThrottle` (gRFC A6 retry throttling): 10 tokens; each failed attempt costs 1, each
  success adds 0.1; retries stop while the tokens are at most half the maximum.

And `AdaptiveThrottle`, the Google SRE book's client-side throttling (chapter "Handling
Overload"): each request is rejected locally with probability
`max(0, (requests - K * accepts) / (requests + 1))` over the last two minutes.

A retry the budget refuses fails fast. Time is passed in; random draws come from the
`random.Random` passed in. Wiring, per logical request::

    budget.on_request(now)                     # before the first attempt
    ...attempt fails, the retry policy says retry...
    grant = budget.try_retry(now, after_timeout=outcome == "timeout")
    if not grant.allowed: fail fast with grant.reason
    last_cost = grant.cost                     # remembered by the call
    ...an attempt succeeds: budget.on_success(now, last_cost)
    ...an attempt fails:    budget.on_failure(now)
"""

from __future__ import annotations

import math
import random
from typing import Annotated, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field

from protocols.resilience.windows import SlidingWindow


class Grant(NamedTuple):
    """A budget's answer: whether the retry (or request) may go, what it cost, and why."""

    allowed: bool
    cost: int
    reason: str


class RetryBudget(Protocol):
    """What every retry budget does; the caller tells it about requests and their ends."""

    def on_request(self, now: float) -> None:
        """A new request (its first attempt) is about to be made."""
        ...

    def try_retry(self, now: float, after_timeout: bool = False) -> Grant:
        """Ask to retry; an allowed retry is paid for now."""
        ...

    def on_success(self, now: float, last_cost: int = 0) -> None:
        """An attempt succeeded; `last_cost` is what its request's last retry cost (0: none)."""
        ...

    def on_failure(self, now: float) -> None:
        """An attempt failed in a way the retry policy counts as retryable."""
        ...


# --- Finagle's ratio budget ------------------------------------------------------------


class RatioBudgetSettings(BaseModel):
    """Retries at most `ratio` of requests plus a floor per second (Finagle's defaults)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["ratio"] = "ratio"
    ratio: float = Field(
        0.2, ge=0, le=1000, description="Retries allowed per request made (Finagle: 0.2)."
    )
    min_retries_per_second: int = Field(
        10, ge=0, description="Retries allowed per second whatever the traffic (Finagle: 10)."
    )
    ttl: int = Field(
        10, ge=1, le=60, description="Seconds a request's deposit lasts (Finagle: 10, 1..60)."
    )


class RatioBudget:
    """Finagle's `RetryBudget`: a leaky token bucket fed by requests and by time.

    In Finagle's integer arithmetic (scale 1000, so a ratio of 0.1 is exact) a request
    deposits 1000 tokens and a retry withdraws `1000 / ratio`; the reserve
    `min_retries_per_second * ttl` retries' worth is always there on top. So over any
    `ttl`, retries <= ratio * requests + min_retries_per_second * ttl.
    """

    SCALE = 1000

    def __init__(self, settings: RatioBudgetSettings | None = None) -> None:
        self.settings = s = settings if settings is not None else RatioBudgetSettings()
        # A ratio so small that a retry's price overflows a float earns no credit in any
        # run, so it is the same as no ratio.
        earns = s.ratio > 0 and math.isfinite(self.SCALE / s.ratio)
        self.deposit = self.SCALE if earns else 0
        # With no ratio a retry costs 1 and all credit comes from the reserve (as Finagle).
        self.withdrawal = int(self.SCALE / s.ratio) if earns else 1
        self.reserve = s.min_retries_per_second * s.ttl * self.withdrawal
        self._tokens = SlidingWindow(s.ttl, 10)

    def balance(self, now: float) -> int:
        """Retries that could be made now."""
        return (self._tokens.sum(now) + self.reserve) // self.withdrawal

    def on_request(self, now: float) -> None:
        """A request deposits its share of retries."""
        if self.deposit:
            self._tokens.add(now, self.deposit)

    def try_retry(self, now: float, after_timeout: bool = False) -> Grant:
        """Withdraw one retry if the balance allows it."""
        if self.deposit == 0 and self.reserve == 0:
            return Grant(False, 0, "retry budget is empty (ratio 0, no floor)")
        if self._tokens.sum(now) + self.reserve >= self.withdrawal:
            self._tokens.add(now, -self.withdrawal)
            return Grant(True, 1, "within the retry budget")
        s = self.settings
        return Grant(
            False,
            0,
            f"retry budget spent: retries are limited to {s.ratio * 100:g}% of requests "
            f"plus {s.min_retries_per_second} per second over {s.ttl} s",
        )

    def on_success(self, now: float, last_cost: int = 0) -> None:
        """Successes do not change a ratio budget."""

    def on_failure(self, now: float) -> None:
        """Failures do not change a ratio budget."""


# --- the AWS SDKs' retry quota ---------------------------------------------------------


class TokenBucketSettings(BaseModel):
    """The AWS SDKs' standard-mode retry quota (botocore `retries/standard.py`)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["token_bucket"] = "token_bucket"
    capacity: int = Field(500, ge=1, description="Tokens when full, and at start (AWS: 500).")
    retry_cost: int = Field(5, ge=1, description="Tokens a retry costs (AWS: 5).")
    timeout_cost: int = Field(
        10, ge=1, description="Tokens a retry after a timeout costs (AWS: 10)."
    )
    success_refund: int = Field(
        1, ge=0, description="Tokens a success on the first try gives back (AWS: 1)."
    )


class TokenBucket:
    """The AWS SDKs' retry quota: retries spend tokens, successes give some back.

    A success refunds `success_refund` when its request made no retry, and the cost of its
    request's last retry when it did; the bucket never holds more than `capacity`.
    Full, it pays for 100 retries after errors, or 50 after timeouts.
    """

    def __init__(self, settings: TokenBucketSettings | None = None) -> None:
        self.settings = settings if settings is not None else TokenBucketSettings()
        self.tokens = self.settings.capacity

    def on_request(self, now: float) -> None:
        """Requests cost nothing."""

    def try_retry(self, now: float, after_timeout: bool = False) -> Grant:
        """Pay for a retry, if the bucket holds enough."""
        s = self.settings
        cost = s.timeout_cost if after_timeout else s.retry_cost
        if self.tokens >= cost:
            self.tokens -= cost
            return Grant(True, cost, f"retry quota: {cost} tokens spent, {self.tokens} left")
        after = "after a timeout " if after_timeout else ""
        return Grant(
            False,
            0,
            f"retry quota spent: {self.tokens} of {s.capacity} tokens left, "
            f"a retry {after}costs {cost}",
        )

    def on_success(self, now: float, last_cost: int = 0) -> None:
        """Refund: 1 for a first-try success, the last retry's cost after retries."""
        refund = last_cost if last_cost > 0 else self.settings.success_refund
        self.tokens = min(self.settings.capacity, self.tokens + refund)

    def on_failure(self, now: float) -> None:
        """Failures cost nothing until they are retried."""


# --- gRPC retry throttling -------------------------------------------------------------


class GrpcThrottleSettings(BaseModel):
    """gRFC A6 retry throttling, per server (example config: 10 tokens, ratio 0.1)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["grpc"] = "grpc"
    max_tokens: float = Field(10, gt=0, le=1000, description="Tokens at start and at most.")
    token_ratio: float = Field(
        0.1, gt=0, description="Tokens a success adds (3 decimals are kept)."
    )


class GrpcThrottle:
    """gRPC's retry throttling: failures drain tokens, successes refill a fraction.

    Kept in thousandths of a token, as gRFC A6 keeps three decimals of `token_ratio`.
    Retries are allowed while the tokens are more than half of `max_tokens`.
    """

    def __init__(self, settings: GrpcThrottleSettings | None = None) -> None:
        self.settings = s = settings if settings is not None else GrpcThrottleSettings()
        self.max = round(s.max_tokens * 1000)
        self.ratio = round(s.token_ratio * 1000)
        self.milli = self.max

    @property
    def tokens(self) -> float:
        """The tokens left."""
        return self.milli / 1000

    def on_request(self, now: float) -> None:
        """Requests cost nothing."""

    def try_retry(self, now: float, after_timeout: bool = False) -> Grant:
        """Allowed while more than half the tokens are left; it costs nothing itself."""
        if self.milli * 2 > self.max:
            return Grant(True, 0, "within the retry throttle")
        return Grant(
            False,
            0,
            f"retries throttled: {self.tokens:g} of {self.max / 1000:g} tokens left, at most half",
        )

    def on_success(self, now: float, last_cost: int = 0) -> None:
        """A success adds `token_ratio` tokens."""
        self.milli = min(self.max, self.milli + self.ratio)

    def on_failure(self, now: float) -> None:
        """A failed attempt takes one token."""
        self.milli = max(0, self.milli - 1000)


RetryBudgetSettings = Annotated[
    RatioBudgetSettings | TokenBucketSettings | GrpcThrottleSettings,
    Field(discriminator="kind"),
]


def make_budget(settings: RetryBudgetSettings) -> RetryBudget:
    """The retry budget `settings` describe (chosen by its `kind`)."""
    if isinstance(settings, RatioBudgetSettings):
        return RatioBudget(settings)
    if isinstance(settings, TokenBucketSettings):
        return TokenBucket(settings)
    return GrpcThrottle(settings)


# --- the SRE book's adaptive throttling ------------------------------------------------


class AdaptiveThrottleSettings(BaseModel):
    """Client-side adaptive throttling (Google SRE book, "Handling Overload")."""

    model_config = ConfigDict(extra="forbid")

    k: float = Field(
        2.0, gt=0, description="Requests allowed per accepted one before throttling (SRE: 2)."
    )
    window: float = Field(
        120.0, gt=0, description="Seconds of history counted (SRE book: 2 minutes)."
    )
    slices: int = Field(120, ge=1, description="Slices the window is kept in.")


def backend_accepted(outcome: str, status: int = 0) -> bool:
    """Whether the backend accepted an attempt, for adaptive throttling.

    Refusals for overload (429, 503), timeouts and connection failures are not accepts;
    anything the backend answered otherwise, even with an error, is.
    """
    if outcome == "timeout":
        return False
    if outcome == "error":
        return status not in (0, 429, 503)
    return outcome in ("ok", "partial")


class AdaptiveThrottle:
    """Rejects requests locally, more often the more the backend has been refusing.

    `admit` is asked before every attempt; each one asked counts as a request, rejected
    or not, so the rejection probability rises while the backend keeps refusing.
    """

    def __init__(self, settings: AdaptiveThrottleSettings | None = None) -> None:
        self.settings = s = settings if settings is not None else AdaptiveThrottleSettings()
        # Column 0: requests, column 1: accepts.
        self._counts = SlidingWindow(s.window, s.slices, width=2)

    def counts(self, now: float) -> tuple[int, int]:
        """(requests, accepts) over the window ending at `now`."""
        return self._counts.sum(now, 0), self._counts.sum(now, 1)

    def probability(self, now: float) -> float:
        """`max(0, (requests - K * accepts) / (requests + 1))` over the window."""
        requests, accepts = self.counts(now)
        return max(0.0, (requests - self.settings.k * accepts) / (requests + 1))

    def admit(self, now: float, rng: random.Random) -> Grant:
        """Whether a request may go; draws from `rng` only when the probability is above 0."""
        p = self.probability(now)
        requests, accepts = self.counts(now)
        self._counts.add(now, 1, 0)
        if p > 0 and rng.random() < p:
            return Grant(
                False,
                0,
                f"throttled locally with probability {p * 100:.1f}% ({requests} requests, "
                f"{accepts} accepted in the last {self.settings.window:g} s, "
                f"K = {self.settings.k:g})",
            )
        return Grant(True, 0, "admitted")

    def on_response(self, now: float, accepted: bool) -> None:
        """The backend answered an attempt; count it if it accepted (`backend_accepted`)."""
        if accepted:
            self._counts.add(now, 1, 1)
