"""Queueing theory and small statistics, to check simulated runs against known answers.

Pure functions of numbers, with no simulator import, so tests and notebooks use them
alike:

>>> q = mmc(arrival_rate=0.8, service_rate=1.0, servers=1)
>>> round(q.wq, 6), round(q.utilisation, 6)
(4.0, 0.8)
>>> round(mmc(9.0, 1.0, 10).wq, 4)
0.6687
>>> round(t_quantile(0.995, 9), 4)
3.2498
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist, fmean, stdev


def erlang_b(servers: int, offered_load: float) -> float:
    """Erlang B: the chance an arrival finds all `servers` busy in M/M/c/c (no queue).

    `offered_load` is arrival rate / service rate, in Erlangs. Computed with the usual
    recursion B(k) = a B(k-1) / (k + a B(k-1)), which never overflows, unlike the
    textbook ratio of factorial sums.
    """
    if servers < 1:
        raise ValueError("servers must be at least 1")
    if offered_load < 0:
        raise ValueError("offered_load must not be negative")
    b = 1.0
    for k in range(1, servers + 1):
        b = offered_load * b / (k + offered_load * b)
    return b


def erlang_c(servers: int, offered_load: float) -> float:
    """Erlang C: the chance an arrival has to wait in M/M/c (an unbounded FIFO queue).

    Needs offered_load < servers (a stable queue).
    """
    if offered_load >= servers:
        raise ValueError("the queue is unstable: offered_load must be below servers")
    b = erlang_b(servers, offered_load)
    return servers * b / (servers - offered_load * (1 - b))


@dataclass(frozen=True)
class MMc:
    """Steady-state figures of an M/M/c queue (times in the unit of the rates)."""

    arrival_rate: float
    service_rate: float
    servers: int
    utilisation: float
    p_wait: float
    wq: float
    w: float
    lq: float
    l: float  # noqa: E741 - L is the standard name of the mean number in the system


def mmc(arrival_rate: float, service_rate: float, servers: int) -> MMc:
    """Poisson arrivals, exponential service, `servers` workers, FIFO, no limit.

    wq is the mean time queued before a worker takes the request (Erlang C over
    c mu - lambda); w adds the mean service time; lq and l follow from Little's law.
    """
    if arrival_rate <= 0 or service_rate <= 0:
        raise ValueError("arrival_rate and service_rate must be positive")
    load = arrival_rate / service_rate
    p_wait = erlang_c(servers, load)
    wq = p_wait / (servers * service_rate - arrival_rate)
    w = wq + 1 / service_rate
    return MMc(
        arrival_rate=arrival_rate,
        service_rate=service_rate,
        servers=servers,
        utilisation=load / servers,
        p_wait=p_wait,
        wq=wq,
        w=w,
        lq=arrival_rate * wq,
        l=arrival_rate * w,
    )


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with an integer number of degrees of freedom.

    Uses the finite series of Abramowitz and Stegun 26.7.3-4 in theta = atan(t / sqrt(df)),
    exact for integer df, so no special-function library is needed.
    """
    if df < 1:
        raise ValueError("df must be at least 1")
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:
        term, total = math.cos(theta), 0.0
        if df > 1:
            total = term
            for k in range(3, df - 1, 2):
                term *= c2 * (k - 1) / k
                total += term
        inside = 2 / math.pi * (theta + s * total)
    else:
        term, total = 1.0, 1.0
        for k in range(2, df - 1, 2):
            term *= c2 * (k - 1) / k
            total += term
        inside = s * total
    # `inside` is P(|T| < |t|).
    return 0.5 + math.copysign(inside / 2, t)


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with integer df (bisection on `t_cdf`)."""
    if not 0 < p < 1:
        raise ValueError("p must lie strictly between 0 and 1")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * hi:
            break
    return (lo + hi) / 2


@dataclass(frozen=True)
class Interval:
    """A confidence interval for a mean."""

    mean: float
    low: float
    high: float
    level: float
    n: int

    @property
    def half_width(self) -> float:
        """Half the interval's width."""
        return (self.high - self.low) / 2

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


def mean_interval(samples: Sequence[float], level: float = 0.99, t: bool = True) -> Interval:
    """Two-sided confidence interval for the mean of independent samples.

    With `t` (the default) it uses Student's t with n - 1 degrees of freedom, right for
    a few replications of roughly normal means; otherwise the normal quantile.
    """
    n = len(samples)
    if n < 2:
        raise ValueError("a confidence interval needs at least two samples")
    if not 0 < level < 1:
        raise ValueError("level must lie strictly between 0 and 1")
    p = (1 + level) / 2
    q = t_quantile(p, n - 1) if t else NormalDist().inv_cdf(p)
    mean = fmean(samples)
    half = q * stdev(samples) / math.sqrt(n)
    return Interval(mean=mean, low=mean - half, high=mean + half, level=level, n=n)
