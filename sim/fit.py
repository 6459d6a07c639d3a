"""Fit a scenario distribution to measured durations, and say how well it fits.

Candidates are the scenario's own distributions (`sim.distributions`), fitted by maximum
likelihood: constant (when the samples barely vary, or nearly all sit at the median),
exponential (the mean), normal (mean and standard deviation) and lognormal (the mean and
standard deviation of the logs, given to the scenario as its mean and p99). The best is the one with the smallest
Kolmogorov-Smirnov distance D, the largest gap between the samples' and the model's
cumulative distribution; D below about 1.36/sqrt(n) is what samples drawn from the
model itself would show 95% of the time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sim.distributions import Z99

# Below this coefficient of variation a duration is taken as constant.
CONSTANT_CV = 0.02
# The lognormal a scenario can state: p99 at most exp(Z99^2 / 2) times the mean.
_MAX_LOG_GAP = Z99 * Z99 / 2


@dataclass(frozen=True)
class Fit:
    """A fitted distribution (as a scenario writes it) and its quality."""

    dist: dict[str, Any]
    ks: float  # Kolmogorov-Smirnov distance D to the samples
    n: int
    mean: float  # of the samples
    p50: float
    p99: float

    @property
    def acceptable(self) -> bool:
        """Whether D is within what samples of the model itself show 95% of the time."""
        return self.n > 0 and self.ks <= 1.36 / math.sqrt(self.n)


def quantile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted samples (linear interpolation, as numpy's default)."""
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def fit(samples: Sequence[float]) -> Fit:
    """The best-fitting distribution of `samples` (non-negative durations, seconds)."""
    ordered = sorted(max(0.0, float(x)) for x in samples if x == x)  # drop NaN
    n = len(ordered)
    if n == 0:
        return Fit({"dist": "constant", "value": 0.0}, 0.0, 0, math.nan, math.nan, math.nan)
    mean = sum(ordered) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in ordered) / max(n - 1, 1))
    summary = (n, mean, quantile(ordered, 0.5), quantile(ordered, 0.99))
    if n < 2 or mean <= 0 or sd / mean < CONSTANT_CV:
        return Fit({"dist": "constant", "value": _round(mean)}, 0.0, *summary)
    median = summary[2]
    candidates = [
        _exponential(mean),
        _normal(mean, sd),
        _lognormal(ordered),
        # A point mass with a few outliers: a fixed link latency whose first messages
        # also carried a connection's handshakes (the simulator adds those itself).
        ({"dist": "constant", "value": _round(median)}, lambda x: 1.0 if x >= median else 0.0),
    ]
    best = min(
        ((dist, _ks(ordered, cdf)) for dist, cdf in candidates if dist is not None),
        key=lambda pair: pair[1],
    )
    return Fit(best[0], best[1], *summary)


Cdf = Callable[[float], float]


def _exponential(mean: float) -> tuple[dict[str, Any], Cdf]:
    return {"dist": "exponential", "mean": _round(mean)}, lambda x: 1 - math.exp(-x / mean)


def _normal(mean: float, sd: float) -> tuple[dict[str, Any], Cdf]:
    return (
        {"dist": "normal", "mean": _round(mean), "sd": _round(sd)},
        lambda x: _phi((x - mean) / sd),
    )


def _lognormal(ordered: Sequence[float]) -> tuple[dict[str, Any] | None, Cdf]:
    logs = [math.log(x) for x in ordered if x > 0]
    if len(logs) < 2:
        return None, lambda x: 0.0
    mu = sum(logs) / len(logs)
    sigma = math.sqrt(sum((v - mu) ** 2 for v in logs) / (len(logs) - 1))
    # The scenario states it by mean and p99, which bounds sigma (Lognormal._solvable).
    sigma = min(sigma, Z99 - 1e-6)
    if sigma <= 0 or Z99 * sigma - sigma * sigma / 2 > _MAX_LOG_GAP:
        return None, lambda x: 0.0
    mean = math.exp(mu + sigma * sigma / 2)
    p99 = math.exp(mu + Z99 * sigma)
    dist = {"dist": "lognormal", "mean": _round(mean), "p99": _round(p99)}
    return dist, lambda x: _phi((math.log(x) - mu) / sigma) if x > 0 else 0.0


def _ks(ordered: Sequence[float], cdf: Cdf) -> float:
    n = len(ordered)
    worst = 0.0
    for i, x in enumerate(ordered):
        model = cdf(x)
        worst = max(worst, abs(model - i / n), abs((i + 1) / n - model))
    return worst


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def _round(value: float) -> float:
    """Six significant digits: a scenario file a person reads."""
    return float(f"{value:.6g}")
