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
    since: float | None = None,
) -> Iterator[float]:
    """Arrival times in [start, end) for one workload.

    With `since` (a client restarting mid-window) only times from `since` on are
    yielded, but the process keeps the shape of the whole window: a ramp goes on from
    the rate it had reached, constant arrivals and bursts keep their phase.
    """
    first = start if since is None else max(start, since)
    if isinstance(model, sc.Poisson):
        # `_poisson` at a constant rate, written out: the workload's hot loop, and the
        # same draws (a constant rate never thins).
        # rng.expovariate(rate), written out (its exact expression, so the same draws):
        # a Python call less per arrival.
        rate, t, draw, log = model.rate, first, rng.random, math.log
        while True:
            t += -log(1.0 - draw()) / rate
            if t >= end:
                return
            yield t
    elif isinstance(model, sc.ConstantRate):
        gap = 1.0 / model.rate
        for n in range(_skip(start, first, gap), _ticks(start, end, gap)):
            t = start + n / model.rate
            if t >= first:
                yield t
    elif isinstance(model, sc.Bursts):
        yield from _merge(_bursts(model, start, first, end), _background(model, rng, first, end))
    elif isinstance(model, sc.Ramp):
        span = end - start

        def ramp(t: float) -> float:
            frac = (t - start) / span if span > 0 else 0.0
            return model.start_rate + (model.end_rate - model.start_rate) * frac

        peak = max(model.start_rate, model.end_rate)
        yield from _poisson(ramp, peak, rng, first, end)
    elif isinstance(model, sc.Spike):

        def spike(t: float) -> float:
            inside = model.spike_start <= t < model.spike_end
            return model.spike_rate if inside else model.rate

        peak = max(model.rate, model.spike_rate)
        yield from _poisson(spike, peak, rng, first, end)
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


def _ticks(start: float, end: float, gap: float) -> int:
    """How many of start, start + gap, start + 2 gap, ... lie before `end`.

    Counted from the window's length rather than by adding up gaps, whose rounding
    errors let one tick too many in: 49 per second over 1 s must give 49, not 50.
    """
    span = (end - start) / gap
    if span <= 0:
        return 0
    return math.ceil(span - 1e-9 * max(1.0, span))


def _skip(start: float, first: float, gap: float) -> int:
    # Ticks surely before `first`; the one at its edge is left to the caller's `t >= first`,
    # so resuming yields exactly the whole schedule's times from `first` on.
    return max(0, _ticks(start, first, gap) - 1)


def _bursts(model: sc.Bursts, start: float, first: float, end: float) -> Iterator[float]:
    for n in range(_skip(start, first, model.every), _ticks(start, end, model.every)):
        t = start + n * model.every
        if t >= first:
            for _ in range(model.size):
                yield t


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
