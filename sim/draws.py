"""The hot path's draws as compiled objects: the same numbers as the distributions' samplers.

`sim.distributions` builds a sampler per component as a closure over a seeded stream;
the network draws one latency per message and a service one service time per request.
The distribution models are pydantic classes and stay interpreted, so each draw through
their closure is a call into the interpreter. `draw_of` gives the same draws from an
object of this module (compiled with the hot path, see `protocols.compiled`), whose
`draw()` compiled callers reach directly: the same expressions on the same stream, in
the same order, so every number is the same as the sampler's (the tests compare them).
Distributions without a written-out draw here are wrapped, and draw through their
sampler as before.
"""

from __future__ import annotations

import math
import random

from sim.distributions import Constant, Distribution, Exponential, Normal, Sampler

# random.TWOPI, as `Random.gauss` uses it.
TWOPI = 2.0 * math.pi


class Draw:
    """A sampler as an object: `draw()` (or calling it) gives the next value."""

    def draw(self) -> float:
        """The next value."""
        raise NotImplementedError

    def __call__(self) -> float:
        return self.draw()


class ConstantDraw(Draw):
    """`Constant.sampler`: always `value`, no draw from the stream."""

    def __init__(self, value: float) -> None:
        self.value = value

    def draw(self) -> float:
        """The constant."""
        return self.value


class ExponentialDraw(Draw):
    """`Exponential.sampler`: `rng.expovariate(1 / mean)` written out, as there."""

    def __init__(self, mean: float, rng: random.Random) -> None:
        self.rate = 1.0 / mean
        self.random = rng.random

    def draw(self) -> float:
        """The next exponential value."""
        return -math.log(1.0 - self.random()) / self.rate


class NormalDraw(Draw):
    """`Normal.sampler`: `rng.gauss(mean, sd)` drawn again while negative, with `gauss`
    written out as `random.Random.gauss` computes it, its spare value kept on the stream
    (`gauss_next`) where `gauss` keeps it, so draws interleave with any other of the
    stream's as before."""

    def __init__(self, mean: float, sd: float, rng: random.Random) -> None:
        self.mu = mean
        self.sd = sd
        self.rng = rng
        self.random = rng.random

    def draw(self) -> float:
        """The next value of the normal truncated to [0, inf)."""
        rng, mu, sd = self.rng, self.mu, self.sd
        while True:
            # Random.gauss(mu, sd), statement for statement.
            z: float | None = rng.gauss_next  # type: ignore[attr-defined]
            rng.gauss_next = None  # type: ignore[attr-defined]
            if z is None:
                x2pi = self.random() * TWOPI
                g2rad = math.sqrt(-2.0 * math.log(1.0 - self.random()))
                z = math.cos(x2pi) * g2rad
                rng.gauss_next = math.sin(x2pi) * g2rad  # type: ignore[attr-defined]
            x = mu + z * sd
            # The sampler's `while x < 0.0: x = gauss(mu, sd)`.
            if not x < 0.0:
                return x


class SamplerDraw(Draw):
    """Any other distribution: its own sampler, called."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def draw(self) -> float:
        """The sampler's next value."""
        return self.sampler()


def draw_of(dist: Distribution, rng: random.Random) -> Draw:
    """The draws of `dist` (a distribution model of `sim.distributions`) from `rng`:
    the same values, in the same order, as `dist.sampler(rng)` gives."""
    if isinstance(dist, Constant):
        return ConstantDraw(dist.value)
    if isinstance(dist, Exponential):
        return ExponentialDraw(dist.mean_, rng)
    if isinstance(dist, Normal):
        return NormalDraw(dist.mean_, dist.sd, rng)
    return SamplerDraw(dist.sampler(rng))
