"""A small world for protocol tests: nodes over a perfect or a faulty network.

    h = Harness(["client", "server"], latency=0.01)
    h.fault({"kind": "partition", "groups": [["client"], ["server"]], "start": 10, "end": 20})
    client, server = h.node("client"), h.node("server")
    ...  # build protocol endpoints on the nodes
    h.run(60)
    h.messages, h.spans  # the recorder's tables

The network is the simulator's own (`sim.network.Network`), so messages are recorded
with their outcomes; with no fault and constant latency it is a perfect network. Faults
are scheduled by the simulator's injector, and crash, restart, pause and resume act on
the nodes directly.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import TypeAdapter

from protocols.node import Node
from sim import scenario as sc
from sim.faults import Injector
from sim.nodes import NodeWorld

_FAULT = TypeAdapter(sc.Fault)


class Harness:
    """Nodes on a network, a recorder, seeded streams and a fault injector."""

    def __init__(
        self,
        agents: list[str],
        latency: float = 0.001,
        seed: int = 1,
        network: dict[str, Any] | None = None,
    ) -> None:
        world = NodeWorld(
            agents,
            network or {"default": {"latency": {"dist": "constant", "value": latency}}},
            seed,
        )
        self.env = world.env
        self.recorder = world.recorder
        self.streams = world.streams
        self.state = world.state
        self.network = world.network
        self.nodes = world.nodes
        self._faults: list[sc.Fault] = []

    def node(self, agent: str) -> Node:
        """The node of `agent`."""
        return self.nodes[agent]

    def fault(self, fault: dict[str, Any]) -> None:
        """Schedule a fault window (a scenario `faults` item), before `run`."""
        self._faults.append(_FAULT.validate_python(fault))

    def run(self, until: float) -> None:
        """Run the simulation to `until` (faults are armed on the first call)."""
        if self._faults:
            Injector(
                self.env,
                self.state,
                self._faults,
                until,
                self.streams,
                self.recorder,
                self.nodes,  # nodes crash, pause and resume, as agents do
                lambda *_: None,
            )
            self._faults = []
        self.env.run(until=until)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The recorder's tables so far."""
        return self.recorder.tables()

    @property
    def messages(self) -> pd.DataFrame:
        """Every copy on the wire so far."""
        return self.tables["messages"]

    @property
    def spans(self) -> pd.DataFrame:
        """Every span so far."""
        return self.tables["spans"]
