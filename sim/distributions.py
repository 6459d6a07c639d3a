"""Latency and service-time distributions: the scenario models and their samplers.

Every distribution is a small pydantic model (so a scenario file names it with `dist:`)
and knows how to turn itself into a sampler: a zero-argument function drawing from a
seeded `random.Random`. Samplers are built once per component, not per draw, because the
network draws one latency per message on the hot path.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim.limits import MIN_PARETO_ALPHA

Sampler = Callable[[], float]

# z of the standard normal at 0.99: the lognormal is given by its mean and p99.
Z99 = 2.3263478740408408


def quoted(value: object) -> str:
    """A name the user wrote, quoted back in a sentence: cut to 40 characters (a name
    of thousands of characters makes a line no one reads)."""
    text = str(value)
    return f"'{text if len(text) <= 40 else text[:37] + '...'}'"


class FieldError(ValueError):
    """A whole-model check that fails because of one field: error reports name `field`.

    Pydantic locates a model validator's error at the model; the loader appends `field`
    so the user reads `agents.1.service_time.p99`, not just `agents.1.service_time`.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Constant(_Dist):
    """Always the same value."""

    dist: Literal["constant"] = "constant"
    value: float = Field(ge=0)

    def sampler(self, rng: random.Random) -> Sampler:
        """A sampler that ignores `rng` and returns `value`."""
        value = self.value
        return lambda: value

    def mean(self) -> float:
        """The distribution's mean."""
        return self.value


class Uniform(_Dist):
    """Uniform on [low, high]."""

    dist: Literal["uniform"] = "uniform"
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise FieldError("high", f"must be at least low ({self.low:g}), got {self.high:g}")
        return self

    def sampler(self, rng: random.Random) -> Sampler:
        """A sampler drawing uniformly between low and high."""
        low, span, draw = self.low, self.high - self.low, rng.random
        return lambda: low + span * draw()

    def mean(self) -> float:
        """The distribution's mean."""
        return (self.low + self.high) / 2


class Normal(_Dist):
    """Normal with mean and sd, truncated at 0: a latency is never negative.

    Truncated, not clamped: a negative draw is drawn again, so no probability mass
    piles up at exactly 0 (clamping made a zero-latency spike of up to half the draws).
    """

    dist: Literal["normal"] = "normal"
    mean_: float = Field(alias="mean", ge=0)
    sd: float = Field(ge=0)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def sampler(self, rng: random.Random) -> Sampler:
        """A sampler drawing from the normal truncated to [0, inf) (by rejection)."""
        mu, sd, gauss = self.mean_, self.sd, rng.gauss

        def draw() -> float:
            # mean >= 0, so at least half the draws are accepted.
            x = gauss(mu, sd)
            while x < 0.0:
                x = gauss(mu, sd)
            return x

        return draw

    def mean(self) -> float:
        """The mean of the truncated distribution: mu + sd * phi(a) / (1 - Phi(a)),
        a = -mu / sd."""
        if self.sd == 0:
            return self.mean_
        a = -self.mean_ / self.sd
        phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
        tail = 0.5 * math.erfc(a / math.sqrt(2))
        return self.mean_ + self.sd * phi / tail


class Exponential(_Dist):
    """Exponential with the given mean (memoryless service or inter-arrival times)."""

    dist: Literal["exponential"] = "exponential"
    mean_: float = Field(alias="mean", gt=0)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def sampler(self, rng: random.Random) -> Sampler:
        """A sampler drawing exponential values."""
        # rng.expovariate(rate), written out (its exact expression, so the same draws):
        # a Python call less per draw, and services draw one per request.
        rate, draw, log = 1.0 / self.mean_, rng.random, math.log
        return lambda: -log(1.0 - draw()) / rate

    def mean(self) -> float:
        """The distribution's mean."""
        return self.mean_


class Lognormal(_Dist):
    """Lognormal given by its mean and its 99th percentile, as latency SLOs are stated."""

    dist: Literal["lognormal"] = "lognormal"
    mean_: float = Field(alias="mean", gt=0)
    p99: float = Field(gt=0)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _solvable(self) -> Lognormal:
        if self.p99 <= self.mean_:
            raise FieldError("p99", f"must be greater than mean ({self.mean_:g}), got {self.p99:g}")
        if math.log(self.p99 / self.mean_) > Z99 * Z99 / 2:
            limit = math.exp(Z99 * Z99 / 2)
            raise FieldError(
                "p99",
                f"can be at most {limit:.2f} times the mean for a lognormal, got "
                f"{self.p99 / self.mean_:.2f} times",
            )
        return self

    def params(self) -> tuple[float, float]:
        """(mu, sigma) of the underlying normal.

        From mean = exp(mu + s^2/2) and p99 = exp(mu + z s): s^2/2 - z s + ln(p99/mean) = 0;
        the smaller root is the one whose p99 lies above the mean.
        """
        gap = math.log(self.p99 / self.mean_)
        sigma = Z99 - math.sqrt(Z99 * Z99 - 2 * gap)
        mu = math.log(self.mean_) - sigma * sigma / 2
        return mu, sigma

    def sampler(self, rng: random.Random) -> Sampler:
        """A sampler drawing lognormal values with the stated mean and p99."""
        mu, sigma = self.params()
        draw = rng.lognormvariate
        return lambda: draw(mu, sigma)

    def mean(self) -> float:
        """The distribution's mean."""
        return self.mean_


class Pareto(_Dist):
    """Pareto (type I) with minimum `scale` and tail index `alpha`: the heavy tail."""

    dist: Literal["pareto"] = "pareto"
    scale: float = Field(gt=0)
    alpha: float = Field(gt=0)

    @model_validator(mode="after")
    def _finite_draws(self) -> Pareto:
        if self.alpha < MIN_PARETO_ALPHA:
            raise FieldError(
                "alpha",
                f"must be at least {MIN_PARETO_ALPHA:g}, got {self.alpha:g}: a smaller tail "
                "index draws values past the largest float",
            )
        return self

    def sampler(self, rng: random.Random) -> Sampler:
        """A sampler drawing Pareto values (at least `scale`).

        A draw too large for a float is infinite: a guard only, since validation keeps
        alpha where no draw overflows.
        """
        scale, alpha, draw = self.scale, self.alpha, rng.paretovariate

        def pareto() -> float:
            try:
                return scale * draw(alpha)
            except OverflowError:
                return math.inf

        return pareto

    def mean(self) -> float:
        """The distribution's mean (infinite when alpha <= 1)."""
        if self.alpha <= 1:
            return math.inf
        return self.alpha * self.scale / (self.alpha - 1)


Distribution = Annotated[
    Constant | Uniform | Normal | Exponential | Lognormal | Pareto,
    Field(discriminator="dist"),
]

ZERO = Constant(value=0.0)
