"""What is broken now: the fault state the network and the agents ask on their hot paths.

The injector (`sim.faults.injection`) decides when each fault begins and ends and edits
this state; the network and the agents only read it (`network_faults_active` first, so
the common case of no fault costs one attribute read).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from sim.distributions import Sampler


@dataclass(slots=True)
class Scope:
    """Which messages a network fault touches, by their (src, dst)."""

    targets: frozenset[str] = frozenset()
    first: frozenset[str] = frozenset()
    second: frozenset[str] = frozenset()
    one_way: bool = False

    def matches(self, src: str, dst: str) -> bool:
        """Whether a message from src to dst is in scope."""
        if self.targets:
            return src in self.targets or dst in self.targets
        if self.first:
            if src in self.first and dst in self.second:
                return True
            return not self.one_way and src in self.second and dst in self.first
        return True


@dataclass(slots=True)
class Partition:
    """Agents in different groups cannot reach each other (or only one way)."""

    group_of: dict[str, int]
    one_way: bool
    isolate: frozenset[str] = frozenset()

    def cuts(self, src: str, dst: str) -> bool:
        """Whether a message from src to dst is blocked."""
        if self.isolate:
            if self.one_way:
                return src in self.isolate and dst not in self.isolate
            return (src in self.isolate) != (dst in self.isolate)
        gs, gd = self.group_of.get(src), self.group_of.get(dst)
        if gs is None or gd is None or gs == gd:
            return False
        return not self.one_way or gs == 0


@dataclass(slots=True)
class LinkEffect:
    """An active latency, loss or duplicate fault."""

    kind: str
    scope: Scope
    add: Sampler | None = None
    multiply: float | None = None
    probability: float = 0.0


@dataclass
class FaultState:
    """The faults active at the current simulated time."""

    effects: list[LinkEffect] = field(default_factory=list)
    partitions: list[Partition] = field(default_factory=list)
    overload: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, list[ErrorBudget]] = field(default_factory=dict)

    @property
    def network_faults_active(self) -> bool:
        """Whether any fault that touches messages is on."""
        return bool(self.effects or self.partitions)

    def partitioned(self, src: str, dst: str) -> bool:
        """Whether an active partition blocks src -> dst."""
        return any(partition.cuts(src, dst) for partition in self.partitions)

    def service_factor(self, agent: str) -> float:
        """The product of the active overload factors on `agent`."""
        factors = self.overload.get(agent)
        if not factors:
            return 1.0
        return math.prod(factors)

    def error_status(self, agent: str) -> int:
        """The status a failing agent answers this request with, or 0 to serve it."""
        for budget in self.errors.get(agent, ()):
            status = budget.draw()
            if status:
                return status
        return 0


@dataclass(slots=True)
class ErrorBudget:
    """An error fault on one agent: a fraction of requests, or the first N, fail."""

    status: int
    fraction: float | None
    first: int | None
    rng: random.Random

    def draw(self) -> int:
        """The status for the next request (0 when it is served normally)."""
        if self.first is not None:
            if self.first > 0:
                self.first -= 1
                return self.status
            return 0
        if self.fraction and self.rng.random() < self.fraction:
            return self.status
        return 0
