"""What every agent of a run shares: the clock, the network, the journal, the faults."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import simpy

from protocols.transport import Transport
from sim.faults import FaultState
from sim.recorder import Recorder
from sim.scenario import Scenario
from sim.streams import Streams


@dataclass
class Context:
    """The run's shared state, owned by the world and handed to each agent."""

    env: simpy.Environment
    scenario: Scenario
    streams: Streams
    recorder: Recorder
    faults: FaultState
    network: Transport | None = None
    _msg_ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def new_msg_id(self) -> str:
        """A run-unique message id (a duplicate or a redelivery keeps its original's)."""
        return f"m{next(self._msg_ids)}"
