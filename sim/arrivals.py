"""Arrival processes of a workload: pure generators of absolute arrival times.

Each takes the workload's arrival model, a seeded stream and a window, and yields the
times at which requests arrive, in order. Time-varying rates (ramp, spike) use thinning
(Lewis and Shedler, 1979): candidates at the peak rate, each kept with probability
rate(t) / peak, which gives an exact non-homogeneous Poisson process.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator

from sim import scenario as sc


def arrival_times(
    model: sc.Poisson | sc.ConstantRate | sc.Bursts | sc.Ramp | sc.Spike,
    rng: random.Random,
    start: float,
    end: float,
) -> Iterator[float]:
    """Arrival times in [start, end) for one workload."""
    if isinstance(model, sc.Poisson):
        yield from _poisson(lambda t: model.rate, model.rate, rng, start, end)
    elif isinstance(model, sc.ConstantRate):
        gap = 1.0 / model.rate
        n = 0
        while (t := start + n * gap) < end:
            yield t
            n += 1
    elif isinstance(model, sc.Bursts):
        yield from _merge(_bursts(model, start, end), _background(model, rng, start, end))
    elif isinstance(model, sc.Ramp):
        span = end - start

        def ramp(t: float) -> float:
            frac = (t - start) / span if span > 0 else 0.0
            return model.start_rate + (model.end_rate - model.start_rate) * frac

        peak = max(model.start_rate, model.end_rate)
        yield from _poisson(ramp, peak, rng, start, end)
    elif isinstance(model, sc.Spike):

        def spike(t: float) -> float:
            inside = model.spike_start <= t < model.spike_end
            return model.spike_rate if inside else model.rate

        peak = max(model.rate, model.spike_rate)
        yield from _poisson(spike, peak, rng, start, end)
    else:  # pragma: no cover - the scenario model admits no other kind
        raise TypeError(f"unknown arrivals {model!r}")


def _poisson(
    rate: Callable[[float], float], peak: float, rng: random.Random, start: float, end: float
) -> Iterator[float]:
    t = start
    while True:
        t += rng.expovariate(peak)
        if t >= end:
            return
        # Thinning draws only when the rate is below its peak, so a constant rate
        # costs one draw per arrival.
        r = rate(t)
        if r >= peak or rng.random() * peak < r:
            yield t


def _bursts(model: sc.Bursts, start: float, end: float) -> Iterator[float]:
    n = 0
    while (t := start + n * model.every) < end:
        for _ in range(model.size):
            yield t
        n += 1


def _background(model: sc.Bursts, rng: random.Random, start: float, end: float) -> Iterator[float]:
    if model.rate > 0:
        yield from _poisson(lambda t: model.rate, model.rate, rng, start, end)


def _merge(a: Iterator[float], b: Iterator[float]) -> Iterator[float]:
    x, y = next(a, math.inf), next(b, math.inf)
    while x < math.inf or y < math.inf:
        if x <= y:
            yield x
            x = next(a, math.inf)
        else:
            yield y
            y = next(b, math.inf)
