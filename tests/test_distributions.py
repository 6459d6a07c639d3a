"""Distributions draw what their names promise."""

from __future__ import annotations

import math
import random
import statistics

from sim.distributions import Normal


def test_normal_is_truncated_at_zero_not_clamped() -> None:
    dist = Normal(mean=0.0, sd=1.0)
    draw = dist.sampler(random.Random(7))
    values = [draw() for _ in range(40_000)]
    # Clamping put half the draws at exactly 0; truncation puts none there.
    assert min(values) > 0.0
    assert sum(v == 0.0 for v in values) == 0
    # The half-normal's mean is sd * sqrt(2 / pi); 95% interval of the sample mean.
    expected = math.sqrt(2 / math.pi)
    assert dist.mean() == expected
    half_width = 1.96 * statistics.stdev(values) / math.sqrt(len(values))
    assert abs(statistics.fmean(values) - expected) < half_width + 1e-12


def test_normal_far_from_zero_draws_as_the_plain_normal() -> None:
    # Five sd above 0: a rejection never happens, so the stream is the plain normal's.
    dist = Normal(mean=0.005, sd=0.001)
    draw, plain = dist.sampler(random.Random(3)), random.Random(3)
    assert [draw() for _ in range(1_000)] == [plain.gauss(0.005, 0.001) for _ in range(1_000)]
    assert math.isclose(dist.mean(), 0.005, rel_tol=1e-6)
