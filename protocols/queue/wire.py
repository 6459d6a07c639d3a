"""What queue messages carry on the wire.

Every queue message is a `protocols.transport.Message` with `protocol="queue"` and one
of these kinds; its `body` is one of the small records below:

| kind      | from -> to          | body        | what                                    |
|-----------|---------------------|-------------|-----------------------------------------|
| `publish` | producer -> broker  | `Publish`   | a message for a queue; msg_id = its id  |
| `ack`     | broker -> producer  | `Confirm`   | publisher confirm                       |
| `deliver` | broker -> consumer  | `Delivery`  | msg_id = the message's id, attempt = its delivery count |
| `ack`     | consumer -> broker  | `Settle`    | done with it                            |
| `nack`    | consumer -> broker  | `Settle`    | nack / reject, with or without requeue  |
| `control` | consumer -> broker  | `Subscribe` | subscribe, heartbeat (the same), cancel |
| `control` | consumer -> broker  | `Extend`    | extend ack deadlines (modifyAckDeadline) |
| `ack`     | broker -> consumer  | `AckReply`  | an exactly-once ack's answer            |

A publish to a topic (`Publish.topic`) is copied by the broker into every subscription
of the topic; each copy keeps the message's msg_id (as a Pub/Sub messageId is the same
in every subscription), and its deliveries name the topic (`Delivery.topic`) beside the
subscription (`Delivery.queue`): a copy is the pair (msg_id, subscription). The trace
records that pair (the messages table's `subscription` column), and the ordering key a
publish gives and a delivery is ordered by (`ordering_key`).

A publish carries its request's deadline and idempotency key in the message's envelope
fields (`deadline`, `idempotency_key`); the broker keeps them and every delivery carries
them on, in its envelope and in its `Delivery`.

A publish that is re-sent after a lost confirm keeps its msg_id with `attempt` + 1; a
delivery keeps the message's msg_id, so the redeliveries of one message are the
`deliver` rows of its msg_id with `attempt` > 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROTOCOL = "queue"
# Size of acks, confirms and control frames: a header and a few ids.
CONTROL_BYTES = 64
# Size of a reply (a status and a few ids), as an HTTP response's.
REPLY_BYTES = 256


@dataclass(slots=True, frozen=True)
class Publish:
    """A message for `queue`; `reply_to` names the response queue of a request."""

    queue: str
    reply_to: str = ""
    payload: Any = None
    topic: bool = False  # `queue` names a topic: copy it to each of its subscriptions
    ordering_key: str = ""  # Pub/Sub ordering key, SQS FIFO message group ("": by settings)
    attributes: Mapping[str, str] | None = None  # for filters; routing_key for bindings


@dataclass(slots=True, frozen=True)
class Confirm:
    """The broker has stored the publish (the confirm's causation_id is its msg_id)."""

    queue: str


@dataclass(slots=True, frozen=True)
class Delivery:
    """One delivery of a stored message to one consumer, under a delivery tag."""

    queue: str
    tag: int
    msg_id: str
    type: str
    version: int
    producer: str
    correlation_id: str
    causation_id: str
    span: int  # the producer's span, so a consumer span can name it as its parent
    size_bytes: int
    payload: Any
    reply_to: str
    count: int  # delivery count: 1 on the first delivery
    enqueued_at: float  # first stored
    ready_at: float  # last made ready (stored, requeued, redriven)
    deadline: float = math.inf  # the request's deadline (absolute), as published
    idempotency_key: str = ""  # as published ("": its msg_id is the key)
    topic: str = ""  # the topic it was published to, when `queue` is its subscription
    ordering_key: str = ""  # the key it is delivered in order of ("": unordered)


@dataclass(slots=True, frozen=True)
class Settle:
    """A consumer is done with delivery `tag`: ack, or nack/reject (see `Consumer`)."""

    queue: str
    tag: int
    requeue: bool = False
    failed: bool = False  # a reject (counts toward a failures-only delivery limit)
    reason: str = ""


@dataclass(slots=True, frozen=True)
class Subscribe:
    """Subscribe (again: a heartbeat) or cancel a consumer of `queue`."""

    queue: str
    consumer: str
    session: int  # the consumer's incarnation: a new one means the old connection died
    prefetch: int
    heartbeat: float
    cancel: bool = False
    topic: str = ""  # subscribe the queue to this topic first (if it is not yet)


@dataclass(slots=True, frozen=True)
class Extend:
    """Extend the ack deadline of the deliveries `tags` of `queue` (modifyAckDeadline)."""

    queue: str
    tags: tuple[int, ...]


@dataclass(slots=True, frozen=True)
class AckReply:
    """The broker's answer to an ack on an exactly-once subscription."""

    queue: str
    tag: int
    ok: bool
