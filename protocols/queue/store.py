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

    def has_credit(self) -> bool:
        """Whether one more delivery fits under its prefetch limit."""
        return self.prefetch == 0 or len(self.unacked) < self.prefetch


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

    @property
    def depth(self) -> int:
        """Messages ready for delivery."""
        return len(self.ready)

    @property
    def held(self) -> int:
        """Messages it holds: ready or in flight."""
        return len(self.ready) + len(self.in_flight)
