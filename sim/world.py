"""The world: builds a SimPy environment from a scenario and runs it into a Run.

`run` is `sim.run`: a scenario (a Scenario, a file, a built-in name or a dict) with
overrides in, its Run out. `World` assembles what a run owns: an agent of its role
(`sim.agents.registry`) for each of the scenario's agents, the network, the faults and
the recorder.
"""

from __future__ import annotations

import copy
import gc
import os
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import simpy

from protocols import kernel
from protocols.node import Node
from sim import loading
from sim import scenario as sc
from sim.agents.context import Context
from sim.agents.plugin import PluginAgent
from sim.agents.registry import make_agent
from sim.agents.roles import POISON, Agent, Service
from sim.faults.injection import Injector
from sim.faults.state import FaultState
from sim.network import Network
from sim.streams import Streams
from sim.trace.recorder import Recorder
from sim.trace.run import Run, manifest_for
from sim.trace.spill import SpillingRecorder

Progress = Callable[[float], None]


class World:
    """Everything a run owns: clock, streams, journal, network, agents and faults."""

    def __init__(
        self,
        scenario: sc.Scenario,
        plain: bool | None = None,
        strict: bool = False,
        spill: str | Path | None = None,
    ) -> None:
        """`plain` forces SimPy's public API only (see protocols.kernel); the trace is
        the same either way. `strict`: the first exception a plugin role's code raises
        stops the run, and `run` raises it (otherwise it answers 500 and the run goes on).
        `spill`: a directory the trace is written to as the run goes on
        (`sim.trace.spill`); `run` then returns a `LazyRun` reading it."""
        self.scenario = scenario
        self.env = kernel.environment(plain)
        self.recorder = Recorder() if spill is None else SpillingRecorder(spill)
        self.ctx = Context(
            env=self.env,
            scenario=scenario,
            streams=Streams(scenario.seed),
            recorder=self.recorder,
            faults=FaultState(),
            strict=strict,
        )
        self.agents: dict[str, Agent] = {}
        # Asked for every delivery: a dict of nodes is one lookup less than the agents.
        nodes: dict[str, Node] = {}
        self.network = Network(
            self.env,
            scenario.network,
            [spec.id for spec in scenario.agents],
            self.ctx.streams,
            self.recorder,
            self.ctx.faults,
            is_up=lambda agent: nodes[agent].up,
        )
        self.network.use_nodes(nodes)
        self.ctx.network = self.network
        for spec in scenario.agents:
            self.agents[spec.id] = make_agent(self.ctx, spec)
            for pool in self.agents[spec.id].endpoints.pools.values():
                pool.use_order(spec.queue_order)  # the agents' pools are built FIFO
            nodes[spec.id] = self.agents[spec.id].node
            self.recorder.agent(
                agent=spec.id,
                role=spec.role,
                version=spec.version,
                workers=spec.workers,
                calls=",".join(spec.calls),
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
            self._operate_breaker,
        )
        self._services = [a for a in self.agents.values() if isinstance(a, Service | PluginAgent)]
        for agent in self.agents.values():
            agent.start()
        self.env.process(self._sample_queues())

    def run(self, progress: Progress | None = None, steps: int = 50) -> Run:
        """Run to the scenario's end; `progress` is told the simulated fraction done."""
        started = time.perf_counter()
        duration = self.scenario.duration
        with sparse_gc():
            for step in range(1, steps + 1):
                try:
                    self.env.run(until=duration * step / steps)
                except Exception:
                    failure = self.ctx.failure
                    if failure is None:
                        raise
                    # Plugin code raised under `strict`: that exception, with its own
                    # traceback (SimPy raises a copy of it).
                    raise failure from None
                if progress is not None:
                    progress(step / steps)
        wall = time.perf_counter() - started
        manifest = manifest_for(self.scenario, wall)
        manifest["kernel"] = "fast" if kernel.fast(self.env) else "plain"
        # A broker's verdict on a copy still on the wire is given now.
        self.recorder.settle_verdicts()
        if isinstance(self.recorder, SpillingRecorder):
            return self.recorder.finish(manifest)
        return Run(self.recorder.tables(), manifest)

    def _sample_queues(self) -> Generator[simpy.Event, Any, None]:
        interval = self.scenario.sample_interval
        rec = self.recorder
        while True:
            now = self.env.now
            for service in self._services:
                sampled: set[int] = set()
                for pool in service.pools.values():
                    if id(pool) in sampled:
                        continue  # one pool shared by the agent's protocols
                    sampled.add(id(pool))
                    # The agent's workers, whatever protocols bring them work.
                    rec.queue_sample(
                        now,
                        f"{service.id}.workers",
                        pool.depth,
                        pool.busy,
                        enqueued=pool.enqueued,
                        acked=pool.completed,
                    )
            yield self.env.timeout(interval)

    def _inject_poison(self, fault: sc.PoisonFault, fault_id: str, index: int) -> None:
        sender = self.agents[fault.src]
        if sender.up:
            # A paused sender sends it when the pause ends, as it does its own requests.
            sender.node.when_running(
                lambda: sender.call(fault.dst, fault.type, f"{fault_id}-{index + 1}", body=POISON)
            )

    def _operate_breaker(self, agent: str, peer: str, action: str, reason: str) -> None:
        self.agents[agent].operate_breaker(peer, action, reason)


@contextmanager
def sparse_gc() -> Iterator[None]:
    """Leave the cyclic garbage collector off while a run goes on.

    A run allocates millions of small objects that live until its end (the trace) and
    makes few reference cycles (finished calls and work drop their callbacks); the
    collector would rescan the survivors again and again, which took a third of the run's
    time. Cycles left by the run are collected when the collector is back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def simulate(
    scenario: sc.Scenario,
    progress: Progress | None = None,
    plain: bool | None = None,
    strict: bool = False,
    spill: str | Path | None = None,
) -> Run:
    """Run a validated scenario and return its trace (`plain`, `strict`, `spill`: see
    `World`). `SWITCHBOARD_TRACE=memory` forces the in-memory trace even when `spill`
    is given: the run is then saved to `spill` at its end (the same files)."""
    if spill is not None and os.environ.get("SWITCHBOARD_TRACE") == "memory":
        run = World(scenario, plain, strict).run(progress)
        run.save(spill)
        return run
    return World(scenario, plain, strict, spill).run(progress)


def run(
    scenario: sc.Scenario | str | Path | dict[str, Any],
    seed: int | None = None,
    progress: Progress | None = None,
    plain_simpy: bool | None = None,
    strict: bool = False,
    spill: str | Path | None = None,
    **overrides: Any,
) -> Run:
    """Run a scenario (a Scenario, a path, a built-in name, or a dict) and return its Run.

    `overrides` are dotted paths with `__` for dots, e.g. `agents__1__workers=8`, applied
    before validation; `seed` replaces the scenario's seed. `plain_simpy=True` runs on
    SimPy's public API only, without the kernel's shortcuts (same trace, slower).
    `strict=True` stops at the first exception a plugin role's code raises and raises it
    here, with its traceback; otherwise that request answers 500 and the run goes on.
    `spill="DIR"` writes the trace to Parquet files in DIR as the run goes on, so it is
    never whole in memory, and returns a `sim.trace.lazy.LazyRun` reading them (same
    tables and digests as the in-memory run; `SWITCHBOARD_TRACE=memory` forces that).
    """
    if isinstance(scenario, sc.Scenario):
        data = scenario.model_dump(mode="json", by_alias=True, exclude_unset=False)
        label = scenario.name
    elif isinstance(scenario, dict):
        data, label = scenario, "scenario"
    else:
        path = loading.resolve(str(scenario) if isinstance(scenario, Path) else scenario)
        data, label = loading.read_data(path), str(path)
    data = copy.deepcopy(data)
    if seed is not None:
        data["seed"] = seed
    for key, value in overrides.items():
        loading.set_path(data, key.replace("__", "."), value)
    return simulate(loading.validate(data, label), progress, plain_simpy, strict, spill)


__all__ = ["World", "run", "simulate"]
