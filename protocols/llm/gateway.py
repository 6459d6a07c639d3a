"""An LLM provider's front door: context window, concurrency and per-minute limits.

A request is judged the moment it arrives, before it queues for the model:

1. input tokens over the context window: 400 (not retryable);
2. as many requests in flight as the concurrency limit: 429, with Retry-After the time
   until the first of them is answered;
3. each per-minute limit (`protocols.llm.settings`) that lacks what the request needs:
   429, with Retry-After the seconds until every bucket holds enough, exactly
   (`TokenBucket.wait`); a request larger than a bucket can ever hold gets a negative
   Retry-After, which the retry policy obeys as "do not retry";
4. otherwise it is admitted and every limit is charged what it counts at admission.

Output tokens a limit counts as generated are charged when the answer ends (`settle`).
Each verdict carries the remaining quota under the provider's header names
(`anthropic-ratelimit-*-remaining`, `x-ratelimit-remaining-*`), rounded down to whole
units (Anthropic rounds its own to the nearest thousand).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from protocols.llm.buckets import TokenBucket
from protocols.llm.settings import LlmLimits, Provider

# The per-minute limits, in the order a refusal names them.
LIMIT_NAMES = ("requests", "input_tokens", "output_tokens", "tokens")
_WHAT = {
    "requests": "requests per minute",
    "input_tokens": "input tokens per minute",
    "output_tokens": "output tokens per minute",
    "tokens": "tokens per minute",
}
_HEADERS: dict[Provider, dict[str, str]] = {
    "anthropic": {
        "requests": "anthropic-ratelimit-requests-remaining",
        "input_tokens": "anthropic-ratelimit-input-tokens-remaining",
        "output_tokens": "anthropic-ratelimit-output-tokens-remaining",
        "tokens": "anthropic-ratelimit-tokens-remaining",
    },
    "openai": {
        "requests": "x-ratelimit-remaining-requests",
        "input_tokens": "x-ratelimit-remaining-input-tokens",
        "output_tokens": "x-ratelimit-remaining-output-tokens",
        "tokens": "x-ratelimit-remaining-tokens",
    },
}
# Anthropic's `anthropic-ratelimit-tokens-remaining` is the most restrictive token limit.
_ANTHROPIC_TOKENS = "anthropic-ratelimit-tokens-remaining"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A gateway's answer to one request: admitted (status 0) or refused."""

    status: int = 0
    why: str = ""
    retry_after: float = 0.0
    limit: str = ""
    remaining: dict[str, int] = field(default_factory=dict)

    @property
    def admitted(self) -> bool:
        """Whether the request may go on to the model."""
        return self.status == 0


class Gateway:
    """One model's limits for one account, judged on simulated time."""

    def __init__(self, limits: LlmLimits, provider: Provider = "anthropic", now: float = 0.0):
        self.limits = limits
        self.provider = provider
        per_minute = {
            "requests": limits.requests_per_minute,
            "input_tokens": limits.input_tokens_per_minute,
            "output_tokens": limits.output_tokens_per_minute,
            "tokens": limits.tokens_per_minute,
        }
        self.buckets = {
            name: TokenBucket.per_minute(limit, now)
            for name, limit in per_minute.items()
            if limit is not None
        }

    def needs(self, input_tokens: int, max_tokens: int) -> dict[str, float]:
        """What each limit charges a request at admission (or must hold, for output
        tokens charged as generated: one token)."""
        out: dict[str, float] = {}
        for name in self.buckets:
            if name == "requests":
                out[name] = 1.0
            elif name == "input_tokens":
                out[name] = float(input_tokens)
            elif name == "tokens":
                out[name] = float(input_tokens + max_tokens)
            elif self.limits.output_charge == "max_tokens":
                out[name] = float(max_tokens)
            else:
                out[name] = 1.0
        return out

    def admit(
        self,
        now: float,
        input_tokens: int,
        max_tokens: int,
        in_flight: int = 0,
        next_free: float = 0.0,
    ) -> Verdict:
        """Judge a request arriving at `now`; charge the limits if it is admitted.

        `in_flight` is how many requests are admitted and unanswered, `next_free` the
        seconds until the first of them is answered (for the concurrency Retry-After).
        """
        limits = self.limits
        window = limits.context_window
        if window is not None:
            counted = input_tokens + (max_tokens if limits.context_counts_max_tokens else 0)
            if counted > window:
                what = "input + max_tokens" if limits.context_counts_max_tokens else "input"
                return Verdict(
                    400,
                    f"context window exceeded: {what} is {counted} tokens > {window} maximum",
                    limit="context_window",
                    remaining=self.remaining(now),
                )
        if limits.concurrency is not None and in_flight >= limits.concurrency:
            return Verdict(
                429,
                f"rate limited: {in_flight} requests in flight (concurrency limit "
                f"{limits.concurrency})",
                max(next_free, 0.0),
                "concurrency",
                self.remaining(now),
            )
        needs = self.needs(input_tokens, max_tokens)
        worst, short = 0.0, ""
        for name, amount in needs.items():
            wait = self.buckets[name].wait(amount, now)
            if wait > worst:
                worst, short = wait, name
        if short:
            remaining = self.remaining(now)
            if math.isinf(worst):
                return Verdict(
                    429,
                    f"request too large: it needs {needs[short]:g} of the {_WHAT[short]} "
                    f"limit of {self.buckets[short].capacity:g}",
                    -1.0,
                    short,
                    remaining,
                )
            return Verdict(
                429,
                f"rate limited: {_WHAT[short]} ({self.header(short)}="
                f"{remaining[self.header(short)]}; needs {needs[short]:g}); "
                f"retry after {worst:.6g} s",
                worst,
                short,
                remaining,
            )
        for name, amount in needs.items():
            if name == "output_tokens" and self.limits.output_charge == "generated":
                continue  # charged when the answer ends
            self.buckets[name].take(amount, now)
        return Verdict(remaining=self.remaining(now))

    def settle(self, now: float, output_tokens: int) -> None:
        """An answer ended with `output_tokens` generated: charge the limits that count
        generated tokens."""
        bucket = self.buckets.get("output_tokens")
        if bucket is not None and self.limits.output_charge == "generated":
            bucket.take(float(output_tokens), now)

    def header(self, name: str) -> str:
        """The response header that reports limit `name`'s remaining quota."""
        return _HEADERS[self.provider][name]

    def remaining(self, now: float) -> dict[str, int]:
        """The remaining quota of every limit at `now`, by the provider's header names."""
        out = {
            self.header(name): max(0, math.floor(bucket.refill(now) + 1e-9))
            for name, bucket in self.buckets.items()
        }
        if self.provider == "anthropic":
            tokens = [v for n, v in out.items() if n != self.header("requests") and "tokens" in n]
            if tokens:
                out[_ANTHROPIC_TOKENS] = min(tokens)
        return out

    def reset(self, now: float) -> None:
        """The provider's limiter state was lost: every bucket full again."""
        for bucket in self.buckets.values():
            bucket.reset(now)
