"""The compiled hot path's draws (sim.draws) give the samplers' numbers, in order."""

from __future__ import annotations

import random

import pytest

from sim.distributions import Constant, Exponential, Lognormal, Normal, Uniform
from sim.draws import ConstantDraw, ExponentialDraw, NormalDraw, SamplerDraw, draw_of

DISTS = [
    (Constant(value=0.25), ConstantDraw),
    (Exponential(mean=0.02), ExponentialDraw),
    (Normal(mean=0.005, sd=0.001), NormalDraw),
    # Mostly negative draws: the truncation draws again, from the same stream.
    (Normal(mean=0.0, sd=1.0), NormalDraw),
    (Lognormal(mean=0.1, p99=0.5), SamplerDraw),
    (Uniform(low=0.1, high=0.2), SamplerDraw),
]


@pytest.mark.parametrize(("dist", "kind"), DISTS)
def test_a_draw_gives_the_samplers_values_from_the_same_stream(dist: object, kind: type) -> None:
    sampler = dist.sampler(random.Random(7))  # type: ignore[attr-defined]
    draw = draw_of(dist, random.Random(7))  # type: ignore[arg-type]
    assert type(draw) is kind
    assert [draw.draw() for _ in range(1001)] == [sampler() for _ in range(1001)]
    assert draw() == sampler()  # callable, as a sampler is


def test_normal_draws_interleave_with_other_gauss_calls_on_the_stream() -> None:
    # Random.gauss keeps a spare value on the stream: a gauss of someone else's between
    # two draws takes it, as it would between two of the sampler's.
    ours, theirs = random.Random(3), random.Random(3)
    draw, sampler = NormalDraw(1.0, 0.5, ours), Normal(mean=1.0, sd=0.5).sampler(theirs)
    seen, expected = [], []
    for _ in range(100):
        seen += [draw.draw(), ours.gauss(0.0, 1.0), ours.random()]
        expected += [sampler(), theirs.gauss(0.0, 1.0), theirs.random()]
    assert seen == expected
