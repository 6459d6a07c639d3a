"""A bare world of protocol nodes on the simulator's network, without a scenario.

Protocol tests and benchmarks build their agents by hand on nodes; this is the one place
that wires the clock, the journal, the seeded streams, the fault state and the network
under them, the same way `sim.world.World` does for a scenario.
"""

from __future__ import annotations

from typing import Any

from protocols import kernel
from protocols.node import Node
from sim import scenario as sc
from sim.faults.state import FaultState
from sim.network import Network
from sim.streams import Streams
from sim.trace.recorder import Recorder

# The default link of benchmarks: 5 ms, sd 1 ms.
BENCH_NETWORK = {"default": {"latency": {"dist": "normal", "mean": 0.005, "sd": 0.001}}}


class NodeWorld:
    """Nodes named `agents` on a network built from `network` (a scenario's section)."""

    def __init__(self, agents: list[str], network: dict[str, Any], seed: int = 1) -> None:
        self.env = kernel.environment()
        self.recorder = Recorder()
        self.streams = Streams(seed)
        self.state = FaultState()
        self.nodes: dict[str, Node] = {}
        self.network = Network(
            self.env,
            sc.Network.model_validate(network),
            agents,
            self.streams,
            self.recorder,
            self.state,
            is_up=lambda agent: self.nodes[agent].up,
        )
        ids = iter(range(1, 1 << 62))
        for agent in agents:
            self.nodes[agent] = Node(
                agent,
                self.env,
                self.network,
                self.recorder,
                lambda: f"m{next(ids)}",
                self.streams.get,
            )
        # Asked for `up` and `sends` directly, as the world's network does.
        self.network.use_nodes(self.nodes)
