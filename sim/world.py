"""The world: builds a SimPy environment from a scenario and runs it into a Run."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import simpy

from protocols.transport import Message
from sim import scenario as sc
from sim.agents import POISON, ROLES, AgentProcess, Service
from sim.context import Context
from sim.faults import FaultState, Injector
from sim.network import Network
from sim.recorder import Recorder
from sim.run import Run, manifest_for
from sim.streams import Streams

Progress = Callable[[float], None]


class World:
    """Everything a run owns: clock, streams, journal, network, agents and faults."""

    def __init__(self, scenario: sc.Scenario) -> None:
        self.scenario = scenario
        self.env = simpy.Environment()
        self.recorder = Recorder()
        self.ctx = Context(
            env=self.env,
            scenario=scenario,
            streams=Streams(scenario.seed),
            recorder=self.recorder,
            faults=FaultState(),
        )
        self.agents: dict[str, AgentProcess] = {
            spec.id: ROLES[spec.role](self.ctx, spec) for spec in scenario.agents
        }
        self.network = Network(
            self.env,
            scenario.network,
            list(self.agents),
            self.ctx.streams,
            self.recorder,
            self.ctx.faults,
            is_up=lambda agent: self.agents[agent].up,
        )
        self.ctx.network = self.network
        for agent in self.agents.values():
            self.network.attach(agent.id, agent.receive, agent.bounce)
            self.recorder.agent(
                agent=agent.id,
                role=agent.spec.role,
                version=agent.spec.version,
                workers=agent.spec.workers,
                calls=",".join(agent.spec.calls),
            )
        self.injector = Injector(
            self.env,
            self.ctx.faults,
            scenario.faults,
            scenario.duration,
            self.ctx.streams,
            self.recorder,
            self.agents,
            self._inject_poison,
        )
        self._services = [a for a in self.agents.values() if isinstance(a, Service)]
        for agent in self.agents.values():
            agent.start()
        self.env.process(self._sample_queues())

    def run(self, progress: Progress | None = None, steps: int = 50) -> Run:
        """Run to the scenario's end; `progress` is told the simulated fraction done."""
        started = time.perf_counter()
        duration = self.scenario.duration
        for step in range(1, steps + 1):
            self.env.run(until=duration * step / steps)
            if progress is not None:
                progress(step / steps)
        wall = time.perf_counter() - started
        return Run(self.recorder.tables(), manifest_for(self.scenario, wall))

    def _sample_queues(self) -> Iterator[simpy.Event]:
        interval = self.scenario.sample_interval
        rec = self.recorder
        while True:
            now = self.env.now
            for service in self._services:
                rec.queue_sample(
                    now,
                    f"{service.id}.workers",
                    service.depth,
                    service.busy,
                    enqueued=service.enqueued,
                    acked=service.completed,
                )
            yield self.env.timeout(interval)

    def _inject_poison(self, fault: sc.PoisonFault, fault_id: str, index: int) -> None:
        sender = self.agents[fault.src]
        if sender.up:
            sender.spawn(_poison_call(sender, fault, f"{fault_id}-{index + 1}"))


def _poison_call(sender: AgentProcess, fault: sc.PoisonFault, correlation_id: str) -> Iterator[Any]:
    # A paused sender sends it when the pause ends, as it does its own requests.
    yield from sender.unpaused()
    return (yield from sender.call(fault.dst, fault.type, correlation_id, body=POISON))


def simulate(scenario: sc.Scenario, progress: Progress | None = None) -> Run:
    """Run a validated scenario and return its trace."""
    return World(scenario).run(progress)


__all__ = ["Message", "World", "simulate"]
