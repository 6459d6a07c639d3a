"""When faults happen: the injector turns each fault window of a scenario on and off.

The injector (Maelstrom's nemesis) turns each fault of the scenario on at its start and
off at its end with one SimPy process per fault, by editing the `FaultState`
(`sim.faults.state`) that the network and the agents read, by crashing, pausing and
restarting agents, or by acting on a circuit breaker as an operator would (force it open,
disable it, reset it). It records each window in the `faults` table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Generator, Mapping
from typing import Any, Protocol

import simpy

from sim import scenario as sc
from sim.faults.state import ErrorBudget, FaultState, LinkEffect, Partition, Scope
from sim.streams import Streams
from sim.trace.recorder import Recorder

# operate_breaker(agent, peer, action, reason): an operator's action on the breaker of
# agent's channel to peer ("force_open", "disable" or "reset").
BreakerOperator = Callable[[str, str, str, str], None]


class Lifecycle(Protocol):
    """What a crash or pause fault acts on: an agent, or a bare node."""

    def crash(self) -> None: ...

    def restart(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...


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
    for end in ("src", "dst", "agent", "peer"):
        agent = getattr(fault, end, None)
        if agent and agent not in targets:
            targets.append(agent)
    return targets


def _end_of(fault: sc.Fault) -> float:
    """When a fault's window ends (NaN: never); a breaker reset is an instant."""
    if isinstance(fault, sc.BreakerFault) and fault.action == "reset":
        return fault.start
    return fault.end if fault.end is not None else math.nan


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
        agents: Mapping[str, Lifecycle],
        inject_poison: Callable[[sc.PoisonFault, str, int], None],
        operate_breaker: BreakerOperator | None = None,
    ) -> None:
        self.env = env
        self.state = state
        self._agents = agents
        self._streams = streams
        self._inject_poison = inject_poison
        self._operate_breaker = operate_breaker
        self._duration = duration
        for i, fault in enumerate(faults):
            fault_id = f"f{i}-{fault.kind}"
            params = fault.model_dump(
                mode="json", by_alias=True, exclude={"kind", "start", "end", "targets", "groups"}
            )
            recorder.fault(
                fault_id=fault_id,
                kind=fault.kind,
                start=fault.start,
                end=_end_of(fault),
                targets=",".join(fault_targets(fault)),
                params=json.dumps(params, sort_keys=True),
            )
            if fault.start < duration:
                env.process(self._window(fault, fault_id))

    def _window(self, fault: sc.Fault, fault_id: str) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(fault.start)
        if isinstance(fault, sc.PoisonFault):
            yield from self._poison(fault, fault_id)
            return
        if isinstance(fault, sc.OverloadedFault):
            yield from self._overloaded(fault, fault_id)
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

            def restart() -> None:
                for agent in fault.targets:
                    self._agents[agent].restart()

            return restart
        if isinstance(fault, sc.PauseFault):
            for agent in fault.targets:
                self._agents[agent].pause()

            def resume() -> None:
                for agent in fault.targets:
                    self._agents[agent].resume()

            return resume
        if isinstance(fault, sc.BreakerFault):
            return self._breaker(fault, fault_id)
        raise AssertionError(f"unhandled fault kind {fault.kind}")

    def _breaker(self, fault: sc.BreakerFault, fault_id: str) -> Callable[[], None]:
        """An operator's action on a breaker now; its end (if any) resets the breaker."""
        operate = self._operate_breaker
        if operate is None:
            raise AssertionError("breaker actions need the world's agents")
        operate(fault.agent, fault.peer, fault.action, f"operator: {fault.action} ({fault_id})")

        def reset() -> None:
            reason = f"operator: end of {fault.action} ({fault_id})"
            operate(fault.agent, fault.peer, "reset", reason)

        return reset

    def _overloaded(
        self, fault: sc.OverloadedFault, fault_id: str
    ) -> Generator[simpy.Event, Any, None]:
        """Each burst: the targets refuse a fraction of requests with the fault's status
        (the agents ask `FaultState.error_status`, as for an error fault)."""
        budgets = [
            (
                agent,
                ErrorBudget(
                    status=fault.status,
                    fraction=fault.fraction,
                    first=None,
                    rng=self._streams.get(f"fault:{fault_id}:{agent}"),
                ),
            )
            for agent in fault.targets
        ]
        errors = self.state.errors
        for start, end in fault.bursts(self._duration):
            if start > self.env.now:
                yield self.env.timeout(start - self.env.now)
            for agent, budget in budgets:
                errors.setdefault(agent, []).append(budget)
            if fault.end is None and fault.burst is None:
                return  # on for good
            yield self.env.timeout(end - start)
            for agent, budget in budgets:
                errors[agent].remove(budget)

    def _poison(self, fault: sc.PoisonFault, fault_id: str) -> Generator[simpy.Event, Any, None]:
        span = (fault.end - fault.start) if fault.end is not None else 0.0
        gap = span / fault.count if fault.count > 1 else 0.0
        for i in range(fault.count):
            if i and gap:
                yield self.env.timeout(gap)
            self._inject_poison(fault, fault_id, i)
