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


def mg1_waits(
    arrival_rate: float, service_moments: tuple[float, float, float], discipline: str = "fifo"
) -> tuple[float, float]:
    """The first two moments (E[W], E[W^2]) of the time queued in an M/G/1 queue.

    `service_moments` are E[S], E[S^2] and E[S^3]. FIFO is Pollaczek-Khinchine's:
    E[W] = lambda E[S^2] / (2 (1 - rho)) and E[W^2] = 2 E[W]^2 + lambda E[S^3] / (3 (1 - rho)).
    Non-preemptive LIFO ("lifo") has the same mean, since the order does not change the
    work queued, but a request that finds the server busy waits for the whole busy
    period its residual service starts: E[W^2] = E[W^2 of FIFO] / (1 - rho), larger.
    (That busy period, started by work R, has E[B_R^2] = E[R^2] / (1 - rho)^2
    + lambda E[R] E[B^2], with E[B^2] = E[S^2] / (1 - rho)^3 and R the residual service,
    met with probability rho.)

    >>> mg1_waits(0.5, (1.0, 2.0, 6.0))  # M/M/1 at rho = 0.5
    (1.0, 4.0)
    >>> mg1_waits(0.5, (1.0, 2.0, 6.0), "lifo")
    (1.0, 8.0)
    """
    mean, second, third = service_moments
    rho = arrival_rate * mean
    if not 0 < rho < 1:
        raise ValueError("the queue is unstable: arrival_rate x E[S] must lie in (0, 1)")
    wait = arrival_rate * second / (2 * (1 - rho))
    square = 2 * wait**2 + arrival_rate * third / (3 * (1 - rho))
    if discipline == "lifo":
        return wait, square / (1 - rho)
    if discipline != "fifo":
        raise ValueError(f"unknown discipline {discipline!r}: expected 'fifo' or 'lifo'")
    return wait, square


def priority_waits(
    arrival_rates: Sequence[float], service_means: Sequence[float], service_squares: Sequence[float]
) -> list[float]:
    """Mean time queued of each class of a non-preemptive priority M/G/1 queue.

    Classes are listed highest priority first; class k has Poisson arrivals at
    `arrival_rates[k]` and service times with mean `service_means[k]` and second moment
    `service_squares[k]`. Cobham's formula (1954): W_k = W0 / ((1 - s_{k-1}) (1 - s_k)),
    where W0 = sum_i lambda_i E[S_i^2] / 2 is the mean residual work in service and s_k
    the load of classes 1..k.

    >>> [round(w, 6) for w in priority_waits([0.25, 0.25], [1.0, 1.0], [2.0, 2.0])]
    [0.666667, 1.333333]
    """
    if not len(arrival_rates) == len(service_means) == len(service_squares):
        raise ValueError("give each class an arrival rate, a mean and a second moment")
    residual = sum(lam * s2 for lam, s2 in zip(arrival_rates, service_squares, strict=True)) / 2
    waits, above = [], 0.0
    for lam, mean in zip(arrival_rates, service_means, strict=True):
        load = above + lam * mean
        if load >= 1:
            raise ValueError("the queue is unstable: the classes' load must stay below 1")
        waits.append(residual / ((1 - above) * (1 - load)))
        above = load
    return waits


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


def batch_means(samples: Sequence[float], batches: int) -> list[float]:
    """The means of `batches` consecutive, equal batches of `samples` (the remainder of
    the division is left out), for `mean_interval` over one long, correlated run.

    Queue waits are correlated from one request to the next; means of long batches are
    nearly independent, so their interval is honest where one over single waits is not.

    >>> batch_means([1.0, 2.0, 3.0, 4.0, 5.0], 2)
    [1.5, 3.5]
    """
    if batches < 2:
        raise ValueError("batch means need at least two batches")
    size = len(samples) // batches
    if size < 1:
        raise ValueError("fewer samples than batches")
    return [fmean(samples[i * size : (i + 1) * size]) for i in range(batches)]


def mmck_blocking(arrival_rate: float, service_rate: float, servers: int, capacity: int) -> float:
    """The chance an arrival is turned away by an M/M/c/K queue: c servers, at most K
    requests in the system (K - c waiting), Poisson arrivals, exponential service.

    By PASTA an arrival sees the time-stationary distribution, p_n proportional to
    a^n / n! for n <= c and a^n / (c! c^(n-c)) above (a = lambda / mu), so the answer is
    p_K (Gross and Harris, Fundamentals of Queueing Theory, section 2.5). K = c is
    Erlang B; c = 1 is the M/M/1/K formula (1 - rho) rho^K / (1 - rho^(K+1)). The terms
    are built by the ratio p_n / p_(n-1) = a / min(n, c), which never overflows.

    >>> round(mmck_blocking(0.8, 1.0, 1, 3), 6)  # M/M/1/3
    0.173442
    >>> round(mmck_blocking(5.0, 1.0, 10, 10), 6) == round(erlang_b(10, 5.0), 6)
    True
    """
    if arrival_rate <= 0 or service_rate <= 0:
        raise ValueError("arrival_rate and service_rate must be positive")
    if servers < 1 or capacity < servers:
        raise ValueError("need at least one server and a capacity of at least the servers")
    load = arrival_rate / service_rate
    term, total = 1.0, 1.0
    for n in range(1, capacity + 1):
        term *= load / min(n, servers)
        total += term
    return term / total


def mmc_wait_tail(arrival_rate: float, service_rate: float, servers: int, t: float) -> float:
    """P(Wq > t) in a FIFO M/M/c queue: C(c, a) e^(-(c mu - lambda) t), Erlang C times the
    tail of the exponential wait of those who wait (Kleinrock, Queueing Systems I, 3.40).
    For c = 1 it is rho e^(-(mu - lambda) t).

    >>> round(mmc_wait_tail(0.5, 1.0, 1, 0.0), 6)
    0.5
    """
    if t < 0:
        raise ValueError("t must not be negative")
    p_wait = erlang_c(servers, arrival_rate / service_rate)
    return p_wait * math.exp(-(servers * service_rate - arrival_rate) * t)


def mm1_sojourn_tail(arrival_rate: float, service_rate: float, t: float) -> float:
    """P(T > t) for the time in system T (wait plus service) of a FIFO M/M/1 queue:
    T is exponential with rate mu - lambda, so e^(-(mu - lambda) t) (Kleinrock 3.26).

    The share of callers whose timeout `t` fires first, when the server keeps working
    on abandoned requests (no cancellation), so the queue stays M/M/1.

    >>> round(mm1_sojourn_tail(0.5, 1.0, 2.0), 6)
    0.367879
    """
    if not 0 < arrival_rate < service_rate:
        raise ValueError("the queue is unstable: arrival_rate must be below service_rate")
    if t < 0:
        raise ValueError("t must not be negative")
    return math.exp(-(service_rate - arrival_rate) * t)


def truncated_geometric(failure: float, max_attempts: int) -> list[float]:
    """P(a call makes k attempts), k = 1..max_attempts, when each attempt fails on its own
    with probability `failure` and a failed one is retried until `max_attempts`:
    q^(k-1) (1 - q) below the cap, and q^(n-1) at the cap (the last attempt is made
    whatever its result). The mean is (1 - q^n) / (1 - q); the call fails with q^n.

    >>> truncated_geometric(0.5, 3)
    [0.5, 0.25, 0.25]
    """
    if not 0 <= failure <= 1:
        raise ValueError("failure must lie in [0, 1]")
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    probs = [failure ** (k - 1) * (1 - failure) for k in range(1, max_attempts)]
    return [*probs, failure ** (max_attempts - 1)]
