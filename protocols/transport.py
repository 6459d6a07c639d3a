"""The transport interface every protocol runs over, and a perfect transport for tests.

A protocol sends a `Message` from one agent to another and is told of its delivery
through the receiver callback that the destination attached. The simulator's faulty
network (`sim.network.Network`) and `PerfectTransport` below implement the same
interface, so a protocol is unit-tested over the perfect one and runs unchanged over the
faulty one, as httpx's clients do over its mock transport.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import simpy

from protocols._mypyc import mypyc_attr


@dataclass(slots=True, init=False)
class Message:
    """One message on the wire; a duplicate or a redelivery is another Message."""

    msg_id: str
    type: str
    src: str
    dst: str
    kind: str = "request"
    protocol: str = "http"
    version: int = 1
    correlation_id: str = ""
    causation_id: str = ""
    # Index of the span that sent it in the recorder (-1: none); ids are made at the end.
    span: int = -1
    attempt: int = 1
    size_bytes: int = 0
    body: Any = None
    duplicate: bool = False
    # Envelope fields carried on the wire (see protocols/envelope.py); the defaults mean
    # "none": no trace context yet, no deadline, and the idempotency key is `msg_id`.
    traceparent: str = ""
    deadline: float = math.inf
    idempotency_key: str = ""
    # This copy's row in the trace, set by the network when it is sent.
    seq: int = -1

    # Written out rather than generated (init=False), with the fields' order and
    # defaults: mypyc compiles this one, and leaves a generated one interpreted, a Python
    # call per message on the compiled path.
    def __init__(
        self, msg_id: str, type: str, src: str, dst: str, kind: str = "request",
        protocol: str = "http", version: int = 1, correlation_id: str = "",
        causation_id: str = "", span: int = -1, attempt: int = 1, size_bytes: int = 0,
        body: Any = None, duplicate: bool = False, traceparent: str = "",
        deadline: float = math.inf, idempotency_key: str = "", seq: int = -1,
    ) -> None:  # fmt: skip
        self.msg_id = msg_id
        self.type = type
        self.src = src
        self.dst = dst
        self.kind = kind
        self.protocol = protocol
        self.version = version
        self.correlation_id = correlation_id
        self.causation_id = causation_id
        self.span = span
        self.attempt = attempt
        self.size_bytes = size_bytes
        self.body = body
        self.duplicate = duplicate
        self.traceparent = traceparent
        self.deadline = deadline
        self.idempotency_key = idempotency_key
        self.seq = seq

    def copy(self, **changes: Any) -> Message:
        """A copy with some fields changed (the duplicate a network injects, say)."""
        return replace(self, **changes)


Receiver = Callable[[Message], None]
# Told when a message could not be delivered: the message and its outcome.
Bounce = Callable[[Message, str], None]


# A class to derive from rather than a Protocol: compiled, a node's `transport.send` is
# then a direct call through the class's table of methods, not a generic one (two per
# request). Interpreted transports (a test's) may derive from it too.
@mypyc_attr(allow_interpreted_subclasses=True)
class Transport:
    """What a protocol needs from the network under it."""

    env: simpy.Environment

    def attach(self, agent: str, receive: Receiver, bounce: Bounce | None = None) -> None:
        """Deliver messages addressed to `agent` to `receive`; refusals go to `bounce`."""
        raise NotImplementedError

    def send(self, msg: Message) -> int:
        """Put a message on the wire; returns its sequence number in the trace."""
        raise NotImplementedError

    def mark(self, msg: Message, outcome: str, reason: str = "") -> None:
        """Change a delivered message's outcome (`rejected`, `dead_lettered`, ...)."""
        raise NotImplementedError


class PerfectTransport(Transport):
    """A network that never fails: every message arrives after a fixed latency."""

    def __init__(self, env: simpy.Environment, latency: float = 0.0) -> None:
        self.env = env
        self.latency = latency
        self.sent: list[Message] = []
        self.marks: list[tuple[int, str, str]] = []
        self._receivers: dict[str, Receiver] = {}

    def attach(self, agent: str, receive: Receiver, bounce: Bounce | None = None) -> None:
        """Register the receiver of `agent` (bounces never happen here)."""
        self._receivers[agent] = receive

    def send(self, msg: Message) -> int:
        """Deliver `msg` after the fixed latency; returns its index in `sent`."""
        self.sent.append(msg)
        msg.seq = len(self.sent) - 1
        receive = self._receivers[msg.dst]
        self.env.timeout(self.latency).callbacks.append(lambda _event: receive(msg))
        return len(self.sent) - 1

    def mark(self, msg: Message, outcome: str, reason: str = "") -> None:
        """Remember the outcome a receiver gave a message (in `marks`)."""
        self.marks.append((msg.seq, outcome, reason))
