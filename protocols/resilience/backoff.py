"""Retry policy: which failures are retried, how many times, and how long to wait between.

The delays are the formulas of "Exponential Backoff And Jitter" (Marc Brooker, AWS
Architecture Blog, 2015), with `attempt` the 1-based number of the attempt that just
failed, so the wait before the second attempt is built on `base`:

- constant:     `min(cap, base)`
- exponential:  `min(cap, base * multiplier ** (attempt - 1))`
- decorrelated: `min(cap, uniform(base, previous * 3))`, `previous` the last wait (`base`
  before the first retry); it is its own jitter, so `jitter` does not apply to it.

and the jitter applied to a computed wait `v`:

- none:  `v`
- full:  `uniform(0, v)`
- equal: `v / 2 + uniform(0, v / 2)`
- sdk:   `v * (1 - uniform(0, 0.25))`, the OpenAI and Anthropic Python SDKs' jitter

Every random draw comes from the `random.Random` passed in. A Retry-After from the server
longer than the computed wait wins (RFC 9110 section 10.2.3), capped at `retry_after_max`.

`preset: openai-sdk` or `anthropic-sdk` gives the official Python SDKs' defaults
(openai-python v3.3, anthropic-sdk-python v0.121, `_constants.py` and `_base_client.py`):
3 attempts (`max_retries=2`), exponential from 0.5 s doubling to an 8 s cap with the `sdk`
jitter, retrying timeouts, connection failures, 408, 409, 429 and 5xx (529 included)
whatever the method, and waiting exactly the server's Retry-After when it is positive
and at most 60 s (Anthropic; longer: the backoff) or 120 s (OpenAI; longer: no retry).
Fields set next to a preset override it.

Defaults are the AWS SDKs' "standard" retry mode (botocore `retries/standard.py`): 3
attempts including the first, exponential backoff with full jitter, 1 s base, doubling,
capped at 20 s. Only timeouts, 5xx, 429 and connection failures are retried, and never a
request that is not idempotent (RFC 9110 section 9.2.2) unless `retry_non_idempotent`.

Example::

    policy = RetryPolicy(RetrySettings(max_attempts=4, base=0.1, cap=5))
    ok, why = policy.should_retry(1, "error", 503, idempotent=True)
    wait = policy.wait(1, previous=0.0, rng=rng, retry_after=2.0)   # >= 2.0
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Backoff = Literal["constant", "exponential", "decorrelated"]
Jitter = Literal["none", "full", "equal", "sdk"]
# What a failed attempt was, as far as retrying is concerned. 408 and 409 are retried only
# when listed (the LLM SDKs do); otherwise they are not retryable failures.
RetryOn = Literal["timeout", "5xx", "429", "connection", "408", "409"]
RETRY_ON_ALL: tuple[RetryOn, ...] = ("timeout", "5xx", "429", "connection")
_OPT_IN: frozenset[str] = frozenset({"408", "409"})
RetryAfterOverMax = Literal["cap", "backoff", "give_up"]
Preset = Literal["openai-sdk", "anthropic-sdk"]

_SDK: dict[str, Any] = {
    "max_attempts": 3,
    "backoff": "exponential",
    "jitter": "sdk",
    "base": 0.5,
    "cap": 8.0,
    "multiplier": 2.0,
    "retry_on": ["timeout", "connection", "408", "409", "429", "5xx"],
    "retry_non_idempotent": True,
    "respect_retry_after": True,
    "retry_after_exact": True,
}
# The official Python SDKs' retry defaults (see the module docstring for the sources).
PRESETS: dict[str, dict[str, Any]] = {
    "openai-sdk": {**_SDK, "retry_after_max": 120.0, "retry_after_over_max": "give_up"},
    "anthropic-sdk": {**_SDK, "retry_after_max": 60.0, "retry_after_over_max": "backoff"},
}

# Spans outcomes of a call that never reached the wire or was given up on purpose: retrying
# them would defeat the policy that ended them (breaker, budget, deadline, cancellation).
_LOCAL_OUTCOMES = {
    "rejected": "the call was refused locally (breaker, budget or pool)",
    "deadline_exceeded": "the deadline has passed",
    "cancelled": "the call was cancelled",
}


class RetrySettings(BaseModel):
    """How a caller retries one channel's calls (defaults: AWS SDK standard mode)."""

    model_config = ConfigDict(extra="forbid")

    preset: Preset | None = Field(
        None,
        description="Start from an SDK's defaults: openai-sdk or anthropic-sdk (max_retries 2, "
        "0.5 s doubling to 8 s, 408/409/429/5xx, the server's Retry-After).",
    )
    max_attempts: int = Field(
        3, ge=1, description="Attempts at most, the first included (AWS SDK standard: 3)."
    )
    backoff: Backoff = Field(
        "exponential", description="How the wait grows: constant, exponential or decorrelated."
    )
    jitter: Jitter = Field(
        "full", description="Randomisation of the wait: none, full or equal (AWS SDK: full)."
    )
    base: float = Field(1.0, ge=0, description="Seconds of the first wait (AWS SDK: 1 s).")
    cap: float = Field(20.0, ge=0, description="Seconds any wait is capped at (AWS SDK: 20 s).")
    multiplier: float = Field(
        2.0, ge=1, description="Growth of the exponential wait per attempt (AWS SDK: 2)."
    )
    retry_on: list[RetryOn] = Field(
        default_factory=lambda: list(RETRY_ON_ALL),
        description="Failures retried: timeout, 5xx, 429, connection.",
    )
    retry_non_idempotent: bool = Field(
        False, description="Retry requests that are not idempotent (RFC 9110: should not)."
    )
    respect_retry_after: bool = Field(
        True, description="Wait at least the server's Retry-After (urllib3: true)."
    )
    retry_after_max: float = Field(
        21600.0, ge=0, description="Longest Retry-After honoured, in seconds (urllib3: 6 h)."
    )
    retry_after_exact: bool = Field(
        False,
        description="Wait exactly the server's Retry-After instead of the backoff (the LLM "
        "SDKs), rather than whichever is longer (urllib3).",
    )
    retry_after_over_max: RetryAfterOverMax = Field(
        "cap",
        description="A Retry-After above retry_after_max: 'cap' it there (urllib3), use the "
        "'backoff' instead (Anthropic SDK) or 'give_up' (OpenAI SDK).",
    )

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        # The preset's values first, what the file sets over them.
        # Only a name can be a preset: a list or mapping there is the field's error.
        if (
            isinstance(data, dict)
            and isinstance(data.get("preset"), str)
            and data["preset"] in PRESETS
        ):
            return {**PRESETS[data["preset"]], **data}
        return data


def failure_kind(outcome: str, status: int) -> RetryOn | None:
    """What kind of retryable failure `(outcome, status)` is, or None if it is not one.

    `outcome` is a `spans.outcome` value and `status` an HTTP-like code (0 when no answer
    came): a timeout, a connection failure (an error with no status), 429, or a 5xx.
    """
    if outcome == "timeout":
        return "timeout"
    if outcome != "error":
        return None
    if status == 0:
        return "connection"
    if status == 429:
        return "429"
    if 500 <= status <= 599:
        return "5xx"
    if status in (408, 409):
        return "408" if status == 408 else "409"
    return None


def exponential(attempt: int, base: float, cap: float, multiplier: float = 2.0) -> float:
    """`min(cap, base * multiplier ** (attempt - 1))`: the wait after failed `attempt` (1-based)."""
    if base <= 0:
        return 0.0
    try:
        value = base * multiplier ** max(0, attempt - 1)
    except OverflowError:
        # A thousand doublings overflow a float long after they passed any cap.
        return cap
    return min(cap, value)


def full_jitter(value: float, rng: random.Random) -> float:
    """Full jitter: a uniform draw in `[0, value]`."""
    return rng.uniform(0.0, value)


def equal_jitter(value: float, rng: random.Random) -> float:
    """Equal jitter: half the wait for sure, the other half drawn uniformly."""
    half = value / 2
    return half + rng.uniform(0.0, half)


def sdk_jitter(value: float, rng: random.Random) -> float:
    """The OpenAI and Anthropic Python SDKs' jitter: `value * (1 - 0.25 * uniform(0, 1))`."""
    return value * (1.0 - 0.25 * rng.random())


def decorrelated(previous: float, base: float, cap: float, rng: random.Random) -> float:
    """Decorrelated jitter: `min(cap, uniform(base, previous * 3))`."""
    return min(cap, rng.uniform(base, max(previous, base) * 3))


class RetryPolicy:
    """A channel's retry decisions and waits; stateless, so one can serve every call."""

    def __init__(self, settings: RetrySettings | None = None) -> None:
        self.settings = settings if settings is not None else RetrySettings()

    def delay(self, attempt: int, previous: float, rng: random.Random) -> float:
        """Seconds to wait after failed `attempt` (1-based), before the next one.

        `previous` is the last wait this call made (decorrelated jitter grows from it; pass
        0 or `base` before the first retry). Draws from `rng` only when jitter needs it.
        """
        s = self.settings
        if s.backoff == "decorrelated":
            return decorrelated(previous, s.base, s.cap, rng)
        if s.backoff == "constant":
            value = min(s.cap, s.base)
        else:
            value = exponential(attempt, s.base, s.cap, s.multiplier)
        if s.jitter == "full":
            return full_jitter(value, rng)
        if s.jitter == "equal":
            return equal_jitter(value, rng)
        if s.jitter == "sdk":
            return sdk_jitter(value, rng)
        return value

    def wait(
        self, attempt: int, previous: float, rng: random.Random, retry_after: float = 0.0
    ) -> float:
        """The wait before the next attempt: the backoff, or the Retry-After if longer (or
        the Retry-After itself, `retry_after_exact`, when it is at most `retry_after_max`)."""
        s = self.settings
        honoured = s.respect_retry_after and retry_after > 0
        if honoured and s.retry_after_exact and retry_after <= s.retry_after_max:
            return retry_after
        computed = self.delay(attempt, previous, rng)
        if honoured and retry_after > s.retry_after_max and s.retry_after_over_max != "cap":
            return computed
        if honoured:
            return max(computed, min(retry_after, s.retry_after_max))
        return computed

    def should_retry(
        self,
        attempt: int,
        outcome: str,
        status: int = 0,
        idempotent: bool = True,
        retry_after: float = 0.0,
    ) -> tuple[bool, str]:
        """Whether to retry after failed `attempt` (1-based), and a sentence saying why.

        `retry_after` is the server's Retry-After in seconds (0 when none); a negative one
        is the server asking not to be retried (gRPC's pushback), and is obeyed.
        """
        s = self.settings
        if outcome == "ok":
            return False, "the attempt succeeded"
        if outcome in _LOCAL_OUTCOMES:
            return False, f"not retried: {_LOCAL_OUTCOMES[outcome]}"
        kind = failure_kind(outcome, status)
        if kind is None or (kind in _OPT_IN and kind not in s.retry_on):
            what = f"HTTP {status}" if status else outcome
            return False, f"not retried: {what} is not a retryable failure"
        what = _describe(kind, status)
        if kind not in s.retry_on:
            return False, f"not retried: {what} is not in retry_on"
        if not idempotent and not s.retry_non_idempotent:
            return False, f"not retried: {what}, and the request is not idempotent"
        if retry_after < 0:
            return False, f"not retried: {what}, and the server asked not to be retried"
        if attempt >= s.max_attempts:
            return False, f"not retried: {what} on attempt {attempt} of {s.max_attempts}"
        if (
            s.respect_retry_after
            and s.retry_after_over_max == "give_up"
            and retry_after > s.retry_after_max
        ):
            return False, (
                f"not retried: {what}, and the server's Retry-After of {retry_after:g} s is "
                f"over {s.retry_after_max:g} s"
            )
        reason = f"{what} on attempt {attempt} of {s.max_attempts}: retrying"
        if (
            s.respect_retry_after
            and retry_after > 0
            and (retry_after <= s.retry_after_max or s.retry_after_over_max == "cap")
        ):
            reason += (
                f" after the server's Retry-After of {min(retry_after, s.retry_after_max):g} s"
            )
        return True, reason


def _describe(kind: RetryOn, status: int) -> str:
    """A few words for a retryable failure, for reasons users read."""
    if kind == "timeout":
        return "a timeout"
    if kind == "connection":
        return "a connection failure"
    return f"HTTP {status}"
