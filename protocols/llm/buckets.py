"""A continuously refilling token bucket, as LLM providers describe their per-minute limits.

Anthropic: "your capacity is continuously replenished up to your maximum limit, rather than
being reset at fixed intervals" (platform.claude.com/docs/en/api/rate-limits). A limit of
L per minute is a bucket holding at most L, refilled at L/60 per second. A request that
needs n units is admitted when the bucket holds n (it then holds n fewer); otherwise the
answer says exactly when it will: `wait(n, now) = (n - level) / rate`.

The level may go below zero when a charge is settled after admission (output tokens
counted as they are generated): the debt is refilled like any other shortfall.
"""

from __future__ import annotations

import math

# Tokens a float may be short of what a request needs and still count as enough: a
# retry that waited exactly the Retry-After finds the bucket full to the last rounding.
EPSILON = 1e-9


class TokenBucket:
    """A bucket of `capacity` units refilled continuously at `rate` units per second."""

    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, capacity: float, rate: float | None = None, now: float = 0.0) -> None:
        self.capacity = float(capacity)
        self.rate = float(rate) if rate is not None else self.capacity / 60.0
        self.level = self.capacity
        self.updated = now

    @classmethod
    def per_minute(cls, limit: float, now: float = 0.0) -> TokenBucket:
        """The bucket of a per-minute limit: capacity `limit`, refilled at `limit / 60` per s."""
        return cls(limit, limit / 60.0, now)

    def refill(self, now: float) -> float:
        """Bring the level up to `now` (never above capacity); returns it."""
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now
        return self.level

    def has(self, amount: float, now: float) -> bool:
        """Whether `amount` units are there at `now`."""
        return self.refill(now) >= amount - EPSILON

    def wait(self, amount: float, now: float) -> float:
        """Seconds from `now` until the bucket holds `amount` (0 if it does; inf if it never
        can, `amount` being more than its capacity)."""
        level = self.refill(now)
        if level >= amount - EPSILON:
            return 0.0
        if amount > self.capacity + EPSILON or self.rate <= 0:
            return math.inf
        return (amount - level) / self.rate

    def take(self, amount: float, now: float) -> None:
        """Remove `amount` units at `now` (the level may go negative: a debt)."""
        self.refill(now)
        self.level -= amount

    def reset(self, now: float) -> None:
        """Full again (the provider's state was lost)."""
        self.level = self.capacity
        self.updated = now
