"""Fault windows: which faults are active now, and what they do to a message or agent.

The injector (Maelstrom's nemesis) turns each fault of the scenario on at its start and
off at its end with one SimPy process per fault. The network and the agents ask it
questions on their hot paths (`network_faults_active` first, so the common case of no
fault costs one attribute read).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import simpy

from sim import scenario as sc
from sim.distributions import Sampler
from sim.streams import Streams
from sim.trace.recorder import Recorder

if TYPE_CHECKING:
    from sim.agents import Agent


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


def scope_of(fault: sc.LatencyFault | sc.LossFault | sc.DuplicateFault) -> Scope:
    """The Scope a network fault's targets or groups describe."""
    if fault.targets:
        return Scope(targets=frozenset(fault.targets))
    if fault.groups:
        return Scope(
            first=frozenset(fault.groups[0]),
            second=frozenset(fault.groups[1]),
            one_way=fault.direction == "one-way",
        )
    return Scope()


def partition_of(fault: sc.PartitionFault) -> Partition:
    """The Partition a partition fault describes."""
    groups = {agent: i for i, group in enumerate(fault.groups) for agent in group}
    return Partition(
        group_of=groups, one_way=fault.direction == "one-way", isolate=frozenset(fault.targets)
    )


def fault_targets(fault: sc.Fault) -> list[str]:
    """Agents a fault names, for the `faults` table."""
    targets = list(getattr(fault, "targets", []))
    for group in getattr(fault, "groups", []):
        targets.extend(a for a in group if a not in targets)
    for end in ("src", "dst"):
        agent = getattr(fault, end, None)
        if agent and agent not in targets:
            targets.append(agent)
    return targets


class Injector:
    """Turns the scenario's faults on and off, and records each window."""

    def __init__(
        self,
        env: simpy.Environment,
        state: FaultState,
        faults: list[sc.Fault],
        duration: float,
        streams: Streams,
        recorder: Recorder,
        agents: dict[str, Agent],
        inject_poison: Callable[[sc.PoisonFault, str, int], None],
    ) -> None:
        self.env = env
        self.state = state
        self._agents = agents
        self._streams = streams
        self._inject_poison = inject_poison
        for i, fault in enumerate(faults):
            fault_id = f"f{i}-{fault.kind}"
            params = fault.model_dump(
                mode="json", by_alias=True, exclude={"kind", "start", "end", "targets", "groups"}
            )
            recorder.fault(
                fault_id=fault_id,
                kind=fault.kind,
                start=fault.start,
                end=fault.end if fault.end is not None else math.nan,
                targets=",".join(fault_targets(fault)),
                params=json.dumps(params, sort_keys=True),
            )
            if fault.start < duration:
                env.process(self._window(fault, fault_id))

    def _window(self, fault: sc.Fault, fault_id: str) -> Iterator[simpy.Event]:
        yield self.env.timeout(fault.start)
        if isinstance(fault, sc.PoisonFault):
            yield from self._poison(fault, fault_id)
            return
        undo = self._apply(fault, fault_id)
        if fault.end is None:
            return
        yield self.env.timeout(fault.end - fault.start)
        undo()

    def _apply(self, fault: sc.Fault, fault_id: str) -> Callable[[], None]:
        state = self.state
        if isinstance(fault, sc.PartitionFault):
            partition = partition_of(fault)
            state.partitions.append(partition)
            return lambda: state.partitions.remove(partition)
        if isinstance(fault, sc.LatencyFault | sc.LossFault | sc.DuplicateFault):
            effect = LinkEffect(kind=fault.kind, scope=scope_of(fault))
            if isinstance(fault, sc.LatencyFault):
                rng = self._streams.get(f"fault:{fault_id}")
                effect.add = fault.add.sampler(rng) if fault.add is not None else None
                effect.multiply = fault.multiply
            else:
                effect.probability = fault.probability
            state.effects.append(effect)
            return lambda: state.effects.remove(effect)
        if isinstance(fault, sc.OverloadFault):
            for agent in fault.targets:
                state.overload.setdefault(agent, []).append(fault.factor)

            def undo_overload() -> None:
                for agent in fault.targets:
                    state.overload[agent].remove(fault.factor)

            return undo_overload
        if isinstance(fault, sc.ErrorFault):
            budgets = []
            for agent in fault.targets:
                budget = ErrorBudget(
                    status=fault.status,
                    fraction=fault.fraction,
                    first=fault.first,
                    rng=self._streams.get(f"fault:{fault_id}:{agent}"),
                )
                state.errors.setdefault(agent, []).append(budget)
                budgets.append((agent, budget))

            def undo_errors() -> None:
                for agent, budget in budgets:
                    state.errors[agent].remove(budget)

            return undo_errors
        if isinstance(fault, sc.CrashFault):
            for agent in fault.targets:
                self._agents[agent].crash()
            return lambda: [self._agents[a].restart() for a in fault.targets] and None
        if isinstance(fault, sc.PauseFault):
            for agent in fault.targets:
                self._agents[agent].pause()
            return lambda: [self._agents[a].resume() for a in fault.targets] and None
        raise AssertionError(f"unhandled fault kind {fault.kind}")

    def _poison(self, fault: sc.PoisonFault, fault_id: str) -> Iterator[simpy.Event]:
        span = (fault.end - fault.start) if fault.end is not None else 0.0
        gap = span / fault.count if fault.count > 1 else 0.0
        for i in range(fault.count):
            if i and gap:
                yield self.env.timeout(gap)
            self._inject_poison(fault, fault_id, i)
