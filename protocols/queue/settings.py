"""Queue settings: one engine, three broker flavours, each with its real defaults.

The engine (`protocols.queue.broker`) is the same for every flavour; a flavour is only a
set of defaults for its knobs. A knob given explicitly wins over the flavour's default:

    QueueSettings(flavour="rabbitmq")                     # delivery limit 20, no DLX
    QueueSettings(flavour="sqs", max_deliveries=5)        # a redrive policy, DLQ after 5

Sources (each broker's documentation):
- sqs: VisibilityTimeout 30 s; no RedrivePolicy unless set (maxReceiveCount 1..1000,
  moved when the receive count would exceed it); ReceiveMessage returns up to 10
  messages; long polls wait at most 20 s.
- rabbitmq: quorum queue delivery-limit 20 since 4.0, and since 4.3 only failed
  deliveries (reject, crash, lost connection) count toward it; over the limit the message
  is dropped unless a dead-letter exchange is set; basic.qos prefetch 0 = unlimited;
  consumer_timeout 30 min; unacked deliveries are requeued (near the head) when the
  consumer's connection closes, which heartbeats detect (60 s timeout, a frame every 30 s).
- redis-streams: consumer groups with a pending entries list (PEL); an entry idle longer
  than a min-idle-time is claimed (XAUTOCLAIM) with its delivery counter + 1; no built-in
  DLQ: the application moves an entry after N deliveries (XADD to a DLQ stream, XACK); a
  restarted consumer re-reads its own pending entries (XREADGROUP ... 0).
- pubsub (Google Cloud Pub/Sub, https://cloud.google.com/pubsub/docs/subscription-properties):
  ack deadline 10 s by default; the high-level client libraries extend it (lease
  management, modifyAckDeadline) up to an hour
  (https://cloud.google.com/pubsub/docs/lease-management); the retry policy is immediate
  redelivery unless exponential backoff is chosen, between a minimum (default 10 s) and a
  maximum (default 600 s) backoff, triggered by a nack or an expired ack deadline
  (RetryPolicy); no dead-letter policy by default, and with one, max_delivery_attempts
  (5..100, default 5) counts 1 + nacks + expired deadlines, after which the message is
  published to the dead-letter topic (lost if that topic has no subscription:
  DeadLetterPolicy); ordering keys deliver in order per key on a subscription with
  message ordering, a redelivered message holding back the later ones of its key;
  exactly-once delivery: no redelivery while a message is outstanding nor after a
  successful ack, and acks get an answer (only the latest delivery's ack succeeds; the
  client retries an ack until it is answered); push subscriptions: the broker POSTs each
  message, a 2xx is the ack, and on failures push backoff slows delivery (exponential,
  100 ms up to 60 s; https://cloud.google.com/pubsub/docs/push); a subscription filter
  on attributes; the Python client's flow control holds 1000 messages (prefetch).

Topics and ordered queues (any flavour reaches them through `topic`):
- A publish to a topic is copied to every subscription bound to it at that moment (a
  Pub/Sub subscription, an SQS queue subscribed to an SNS topic, a queue bound to a
  RabbitMQ topic exchange); each is a queue with its own consumers, backlog, acks and
  dead letters. A topic with no subscription drops the message (Pub/Sub: "messages
  published to a topic with no subscriptions are lost"); a subscription made later sees
  only later messages.
- `filter` keeps the messages whose attributes match (Pub/Sub subscription filter, SNS
  FilterPolicy on message attributes); every message has the attributes `type` and
  `producer`. `binding` is a RabbitMQ topic-exchange binding key matched against the
  routing key (the message type unless given): words split on '.', `*` one word, `#`
  zero or more (https://www.rabbitmq.com/tutorials/tutorial-five-python).
- SQS FIFO (`fifo`): messages of a message group are delivered in order, one in flight
  per group, and a publish whose deduplication id (its idempotency key, else its id) was
  accepted in the last 5 minutes is accepted and not delivered again (the deduplication
  interval; https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/
  sqs-additional-fifo-queue-recommendations.html).
"""

from __future__ import annotations

import string
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

Flavour = Literal["sqs", "rabbitmq", "redis-streams", "pubsub"]

# The defaults of each flavour; keys are QueueSettings fields.
FLAVOURS: dict[str, dict[str, Any]] = {
    "sqs": {
        "visibility_timeout": 30.0,  # VisibilityTimeout default
        "max_deliveries": None,  # no RedrivePolicy by default
        "limit_counts": "deliveries",  # ApproximateReceiveCount counts every receive
        "dead_letter": True,  # a redrive policy always names a DLQ
        "dead_letter_by": "broker",
        "on_error": "wait",  # no DeleteMessage: visible again after the timeout
        "prefetch": 10,  # ReceiveMessage MaxNumberOfMessages, at most 10
        "requeue_on_disconnect": False,  # no connections: only the visibility timer
        "resume_pending": False,
        "requeue_at_head": False,  # standard queues: best-effort order
        "heartbeat": 20.0,  # a long poll waits at most 20 s, then polls again
    },
    "rabbitmq": {
        "visibility_timeout": 1800.0,  # consumer_timeout 30 min
        "max_deliveries": 20,  # quorum queue delivery-limit (4.0+)
        "limit_counts": "failures",  # 4.3: only failed deliveries count
        "dead_letter": False,  # no dead-letter exchange by default: dropped
        "dead_letter_by": "broker",
        "on_error": "requeue",  # basic.reject(requeue=true)
        "prefetch": 0,  # basic.qos default: unlimited
        "requeue_on_disconnect": True,  # unacked deliveries requeued on connection loss
        "resume_pending": False,
        "requeue_at_head": True,  # requeued at (or near) its original position
        "heartbeat": 30.0,  # 60 s heartbeat timeout, a frame every 30 s
    },
    "redis-streams": {
        "visibility_timeout": 60.0,  # XAUTOCLAIM min-idle-time: no server default
        "max_deliveries": None,  # no built-in limit: the application sets one
        "limit_counts": "deliveries",  # XPENDING times-delivered
        "dead_letter": True,  # the application's DLQ stream
        "dead_letter_by": "consumer",  # the consumer moves it (XADD + XACK)
        "on_error": "wait",  # no XACK: it stays pending until claimed
        "prefetch": 0,  # XREADGROUP without COUNT returns every new entry
        "requeue_on_disconnect": False,  # the PEL keeps it for its owner
        "resume_pending": True,  # a restarted consumer re-reads its PEL (id 0)
        "requeue_at_head": True,  # idle pending entries are claimed before new ones
        "heartbeat": 20.0,  # a blocking XREADGROUP re-issued every 20 s (our choice)
    },
    "pubsub": {
        "visibility_timeout": 10.0,  # ackDeadlineSeconds default
        "max_deliveries": None,  # no dead-letter policy by default (with one: 5..100)
        "limit_counts": "deliveries",  # 1 + nacks + expired deadlines
        "dead_letter": True,  # a dead-letter policy always names a topic
        "dead_letter_by": "broker",
        "on_error": "requeue",  # message.nack(): redelivered per the retry policy
        "prefetch": 1000,  # the Python client's flow control: max_messages 1000
        "requeue_on_disconnect": False,  # a lost stream: deadlines expire
        "resume_pending": False,
        "requeue_at_head": False,
        "heartbeat": 20.0,  # the streaming pull's keep-alive (our choice)
        "lease_extension": 3600.0,  # the client libraries' max lease: one hour
    },
}

# Push backoff of a push subscription after failed pushes (Pub/Sub: 100 ms up to 60 s).
PUSH_BACKOFF = (0.1, 60.0)


class QueueSettings(BaseModel):
    """Broker, producer and consumer knobs of a queue channel (defaults by flavour)."""

    # Field defaults are the sqs flavour's; the schema lists every flavour's defaults, in
    # a copy of FLAVOURS typed as pydantic's JSON dict (dict is invariant in its values).
    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra={"x-flavour-defaults": {**FLAVOURS}}
    )

    flavour: Flavour = Field("sqs", description="Which broker's semantics and defaults.")
    broker: str = Field("broker", min_length=1, description="The agent that runs the broker.")
    visibility_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds an unacked delivery stays invisible before it is redelivered "
        "(SQS visibility timeout, RabbitMQ consumer_timeout, Redis claim min-idle-time).",
    )
    max_deliveries: int | None = Field(
        None,
        ge=1,
        description="Deliveries (or failed ones, see limit_counts) after which a message "
        "is dead-lettered; None: redelivered for ever.",
    )
    limit_counts: Literal["deliveries", "failures"] = Field(
        "deliveries",
        description="What counts toward max_deliveries: every delivery, or only failed "
        "ones (reject, consumer crash or lost connection; not nack or a timeout).",
    )
    dead_letter: bool = Field(
        True, description="Past the limit or on reject: to '<queue>.dlq' (True) or dropped."
    )
    dead_letter_by: Literal["broker", "consumer"] = Field(
        "broker",
        description="Who moves a message past the limit: the broker, or the consumer that "
        "receives it once more (Redis Streams has no built-in DLQ).",
    )
    on_error: Literal["wait", "requeue", "dead_letter", "reply"] = Field(
        "wait",
        description="What a queue server does when its handler answers >= 500: leave it "
        "unacked (redelivered after the visibility timeout), reject it with requeue, "
        "reject it to the DLQ, or ack it and send the error back as the reply.",
    )
    prefetch: int = Field(10, ge=0, description="Unacked deliveries per consumer; 0 = unlimited.")
    requeue_on_disconnect: bool = Field(
        False,
        description="When the broker loses a consumer's connection (it crashed, or missed "
        "two heartbeats), requeue its unacked deliveries at once (RabbitMQ).",
    )
    resume_pending: bool = Field(
        False,
        description="A consumer that comes back (new session) gets its own pending "
        "deliveries again at once (Redis XREADGROUP with id 0).",
    )
    requeue_at_head: bool = Field(False, description="Requeued messages go to the head.")
    heartbeat: float = Field(
        20.0,
        gt=0,
        description="Seconds between a consumer's heartbeats (re-polls); the broker drops "
        "a consumer it has not heard from in two of them.",
    )
    reconnect_delay: float = Field(
        5.0,
        gt=0,
        description="Seconds a consumer waits to reconnect after the broker refused it "
        "(the RabbitMQ Java client's network recovery interval).",
    )
    confirm_timeout: float = Field(
        5.0, gt=0, description="Seconds a producer waits for a publisher confirm, then re-sends."
    )
    publish_attempts: int = Field(
        3, ge=1, description="Sends of one publish before the producer gives up (AWS SDK: 3)."
    )
    idempotent: bool = Field(
        False,
        description="Queue servers dedupe deliveries by idempotency key, else message id "
        "(a Deduper).",
    )
    dedupe_ttl: float = Field(
        300.0, gt=0, description="Seconds a dedupe key is kept (SQS FIFO's 5-minute window)."
    )
    drop_expired: bool = Field(
        False,
        description="A queue server acks a request without working on it, and answers 504, "
        "when its deadline has passed by the time a worker takes it (or is closer than "
        "`drop_margin`), as an HTTP server's drop_expired.",
    )
    drop_margin: float = Field(
        0.0,
        ge=0,
        description="Seconds of work a request must still have time for to be worth starting.",
    )
    sample_interval: float | None = Field(
        1.0, gt=0, description="Seconds between queue samples; None: the caller samples."
    )
    request_queue: str = Field("{dst}.requests", description="Queue of the requests to {dst}.")
    reply_queue: str = Field("{agent}.replies", description="Response queue of {agent}.")
    topic: str | None = Field(
        None,
        min_length=1,
        description="Publish to this topic (a Pub/Sub or SNS topic, a RabbitMQ topic "
        "exchange) instead of the queue: the queue is one of its subscriptions, and every "
        "subscription gets a copy of each message.",
    )
    filter: dict[str, str] = Field(
        default_factory=dict,
        description="Subscription filter: only messages whose attributes equal these "
        "(each message has `type` and `producer`).",
    )
    binding: str = Field(
        "#",
        min_length=1,
        description="RabbitMQ topic-exchange binding key, matched against the routing key "
        "(the message type): `*` is one word, `#` zero or more.",
    )
    ordered: bool = Field(
        False,
        description="Pub/Sub message ordering: in order per ordering key, one in flight per "
        "key; a failing message holds back the later ones of its key.",
    )
    order_by: Literal["producer", "correlation_id"] | None = Field(
        None,
        description="The ordering key (or FIFO message group) of a message when its "
        "publisher gives none; set, it also says the consumer needs that order (a check).",
    )
    fifo: bool = Field(
        False,
        description="SQS FIFO queue: message groups in order, one in flight per group, and "
        "publishes deduplicated within dedupe_ttl (the 5-minute deduplication interval).",
    )
    exactly_once: bool = Field(
        False,
        description="Pub/Sub exactly-once delivery: acks are answered and re-sent until "
        "answered, so a successfully acked message is never redelivered.",
    )
    retry: Literal["immediate", "exponential"] = Field(
        "immediate",
        description="Redelivery after a nack or an expired deadline: at once, or after an "
        "exponential backoff from min_backoff to max_backoff (Pub/Sub retry policy).",
    )
    min_backoff: float = Field(10.0, ge=0, le=600, description="Retry policy: first delay.")
    max_backoff: float = Field(600.0, ge=0, le=600, description="Retry policy: longest delay.")
    dead_letter_topic: str | None = Field(
        None,
        min_length=1,
        description="Past max_deliveries, publish the message to this topic (Pub/Sub "
        "dead-letter topic) instead of '<queue>.dlq'.",
    )
    push_endpoint: str | None = Field(
        None,
        min_length=1,
        description="Push subscription: the broker sends each message to this agent "
        "unasked (an HTTP POST whose 2xx is the ack) and backs off while it fails.",
    )
    lease_extension: float | None = Field(
        None,
        gt=0,
        description="Seconds a consumer keeps extending the ack deadline of a delivery it "
        "holds (Pub/Sub lease management, modifyAckDeadline); None: never.",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _flavour_defaults(
        cls, data: Any, handler: ModelWrapValidatorHandler[QueueSettings]
    ) -> QueueSettings:
        # A knob left out takes the flavour's default, not the field's. The knobs set
        # explicitly stay the model's fields_set, so that `over` can tell them apart.
        if not isinstance(data, dict):
            return handler(data)
        defaults = FLAVOURS.get(data.get("flavour", "sqs"))
        if defaults is None:
            return handler(data)  # the Literal check names the bad flavour
        settings = handler({**defaults, **data})
        explicit = {name for name in data if name in cls.model_fields}
        object.__setattr__(settings, "__pydantic_fields_set__", explicit)
        return settings

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Only the knobs set explicitly: read back, the settings are the same, and a
        # channel's still take from its broker's what it left unset (see `over`).
        dumped: dict[str, Any] = handler(self)
        return {k: v for k, v in dumped.items() if k in self.model_fields_set}

    @model_validator(mode="after")
    def _backoff_bounds(self) -> QueueSettings:
        if self.min_backoff > self.max_backoff:
            raise ValueError(
                f"min_backoff {self.min_backoff:g} s is longer than max_backoff "
                f"{self.max_backoff:g} s"
            )
        return self

    @property
    def in_order(self) -> bool:
        """Whether the queue delivers in order per key (ordering keys or a FIFO queue)."""
        return self.ordered or self.fifo

    def explicit(self) -> dict[str, Any]:
        """The knobs set explicitly (the rest are the flavour's defaults)."""
        return self.model_dump()

    def over(self, defaults: QueueSettings | None) -> QueueSettings:
        """These settings, where a knob left unset takes the one `defaults` set explicitly
        (its flavour included, not its `broker`), then the flavour's default: a queue
        channel's settings over its broker's."""
        if defaults is None:
            return self
        # The broker a channel names is its own choice, never its broker's.
        inherited = {k: v for k, v in defaults.explicit().items() if k != "broker"}
        return QueueSettings.model_validate({**inherited, **self.explicit()})

    def requests_of(self, dst: str) -> str:
        """The queue that carries requests to `dst`."""
        return fill(self.request_queue, "dst", dst)

    def replies_of(self, agent: str) -> str:
        """The response queue of `agent`."""
        return fill(self.reply_queue, "agent", agent)


def fill(template: str, field: str, value: str) -> str:
    """`template` with each `{field}` replaced by `value`, as `str.format` would.

    Only the bare field is filled: `str.format` would also reach attributes and indexes,
    or pad to any width (a MemoryError), so anything else raises ValueError.
    """
    parts = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        parts.append(literal)
        if name is None:
            continue
        if name != field or spec or conversion:
            raise ValueError(f"a queue name template may use only {{{field}}}: {template!r}")
        parts.append(value)
    return "".join(parts)
