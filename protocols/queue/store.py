"""What the broker holds: queues, stored messages, subscriptions and dead letters.

Plain records, kept apart from the broker's behaviour (`protocols.queue.broker`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from protocols.queue.settings import QueueSettings

DLQ_SUFFIX = ".dlq"


@dataclass(slots=True, eq=False)
class Stored:
    """A message the broker holds, with its delivery state."""

    msg_id: str
    type: str
    version: int
    producer: str
    correlation_id: str
    causation_id: str
    span: int
    size_bytes: int
    payload: Any
    reply_to: str
    enqueued_at: float
    ready_at: float
    deliveries: int = 0  # delivery count (the `attempt` of its deliver messages)
    failures: int = 0  # failed deliveries (RabbitMQ 4.3's x-delivery-count)
    tag: int = 0  # current delivery tag while in flight
    consumer: str = ""  # owner while in flight (the PEL owner, for Redis)
    invisible_until: float = 0.0  # when the current delivery's visibility ends
    deadline: float = math.inf  # the request's deadline (absolute), carried by its publish
    idempotency_key: str = ""  # the publish's (its msg_id is the key when none)
    ordering_key: str = ""  # its ordering key or FIFO message group ("": unordered)
    topic: str = ""  # the topic it was copied from into a subscription ("": published to a queue)
    sent: int = -1  # the trace seq of its latest delivery's copy (-1: none, or not traced)


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """One message dead-lettered: moved to `dlq`, or dropped when `dlq` is empty."""

    msg_id: str
    queue: str
    dlq: str
    deliveries: int
    reason: str
    time: float
    type: str = ""
    producer: str = ""
    correlation_id: str = ""
    # The trace seq of the delivery the broker gave up on (-1: none): its copy may still
    # be on the wire when the broker parks the message.
    delivery: int = -1


@dataclass(slots=True, eq=False)
class Subscription:
    """A consumer's connection to one queue, as the broker knows it."""

    queue: str
    consumer: str
    session: int
    prefetch: int
    heartbeat: float
    last_seen: float
    unacked: dict[int, None] = field(default_factory=dict)  # tags, in delivery order
    push: bool = False  # the broker pushes to it unasked (a push subscription)
    paused_until: float = 0.0  # push backoff: nothing is pushed before then
    backoff: float = 0.0  # the push backoff's current delay (0: none)

    def has_credit(self) -> bool:
        """Whether one more delivery fits under its prefetch limit."""
        return self.prefetch == 0 or len(self.unacked) < self.prefetch


@dataclass(slots=True, eq=False)
class Topic:
    """A topic: the subscriptions (queue names) each publish is copied to, and totals."""

    name: str
    subscriptions: list[str] = field(default_factory=list)
    published: int = 0  # publishes stored (a FIFO duplicate or a re-send counts again)
    dropped: int = 0  # published while it had no subscription: lost
    filtered: int = 0  # copies a subscription's filter or binding did not take


class Queue:
    """A named queue: ready messages, deliveries in flight, consumers and totals."""

    def __init__(self, name: str, settings: QueueSettings, is_dlq: bool = False) -> None:
        self.name = name
        self.settings = settings
        self.is_dlq = is_dlq
        self.ready: deque[Stored] = deque()
        self.in_flight: dict[int, Stored] = {}
        self.consumers: list[Subscription] = []
        self.next_consumer = 0  # round-robin position
        self.enqueued = 0
        self.acked = 0
        self.redelivered = 0
        self.dead_lettered = 0
        # Ordered queues: the keys with a message in flight or waiting out a backoff.
        self.busy_keys: set[str] = set()
        # Messages waiting out a retry backoff, with when they are ready again.
        self.delayed: dict[int, tuple[Stored, float]] = {}
        # FIFO deduplication ids accepted, with when they leave the window.
        self.dedup: dict[str, float] = {}
        self.deduplicated = 0  # publishes accepted but not stored again (FIFO)

    @property
    def depth(self) -> int:
        """Messages ready for delivery."""
        return len(self.ready)

    @property
    def waiting(self) -> int:
        """Messages not in flight: ready, or waiting out a retry backoff."""
        return len(self.ready) + len(self.delayed)

    @property
    def held(self) -> int:
        """Messages it holds: ready, waiting or in flight."""
        return len(self.ready) + len(self.delayed) + len(self.in_flight)
