"""What every agent of a run shares: the clock, the network, the journal, the faults."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import simpy

from protocols.transport import Transport
from sim.faults.state import FaultState
from sim.scenario import Scenario
from sim.streams import Streams
from sim.trace.recorder import Recorder


@dataclass
class Context:
    """The run's shared state, owned by the world and handed to each agent."""

    env: simpy.Environment
    scenario: Scenario
    streams: Streams
    recorder: Recorder
    faults: FaultState
    network: Transport | None = None
    # What an answer says that its protocol's response does not carry (an HTTP response
    # here is a status, not a body): the responder leaves it under a key both sides know
    # (a plugin-API call's reply key: the registry's agent cards, say), the caller takes
    # it once the response has reached it.
    answers: dict[str, Any] = field(default_factory=dict)
    # Plugin roles' code (sim.agents.plugin): with `strict`, the first exception it
    # raises stops the run and is kept here, for the world to raise again as it was.
    strict: bool = False
    failure: BaseException | None = None
    # A run-unique message id per call (a duplicate or a redelivery keeps its
    # original's): m1, m2... Made in C, by a map over a counter, since every message
    # takes one; a method would be a Python call per message.
    new_msg_id: Callable[[], str] = field(
        init=False, default_factory=lambda: map("m{}".format, itertools.count(1)).__next__
    )
