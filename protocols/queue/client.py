"""The agent's side of a queue: publishing with confirms, consuming, request-reply.

They live on the agent's `QueueEndpoint` (see `endpoint`), which they know only as a
`Host`, so this module imports neither the endpoint nor the server:

- a `Publisher`: each publish waits for the broker's confirm; if none comes within the
  confirm timeout (it was lost, or the broker refused or never got the publish), the
  publish is sent again with the same msg_id, up to `publish_attempts` sends and never
  past the message's deadline. A lost confirm therefore leaves two copies in the broker:
  at-least-once, from the start.
- `Consumer`s, one per queue it reads: a consumer subscribes with its prefetch and
  re-subscribes every heartbeat (so a restarted broker learns of it again; after a
  refusal it reconnects sooner, after `reconnect_delay`), and settles
  each delivery with `ack`, `nack` (release, requeue) or `reject` (requeue, or to the DLQ).
- a `QueueClient` for request-reply: `call(...)` publishes a request to
  `<dst>.requests` with `reply_to` = this agent's response queue and returns at once; the
  reply is matched to its call by the request's message id (the AMQP correlation id,
  carried back as the reply's causation_id) and late or duplicate replies are ignored.
  Over a channel with a `topic`, the request is published to the topic: every
  subscription gets it, each subscriber may answer, and the call ends on the first answer
  (the others are late replies).

  A reply no call waits for goes to `unmatched` first, if set: the agent's own
  request-reply (a publish with `reply_to`, its reply awaited by the request's id).

Pub/Sub client behaviour, by the settings: with `lease_extension`, a consumer extends
the ack deadline of every delivery it holds (lease management: an `Extend` at half the
deadline, until it settles it or has held it that long); with `exactly_once`, an ack is
re-sent every second (`ACK_RETRY`) until the broker answers it (`AckReply`), as long as
the delivery is leased.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

from protocols.call import Call, CallResult, abort_all, status_result
from protocols.node import Node
from protocols.queue.settings import QueueSettings
from protocols.queue.wire import (
    CONTROL_BYTES,
    PROTOCOL,
    AckReply,
    Delivery,
    Extend,
    Publish,
    Settle,
    Subscribe,
)
from protocols.transport import Message

# Seconds between re-sends of an unanswered exactly-once ack: the Pub/Sub client
# libraries retry acks of exactly-once subscriptions from 1 s on (ours do not back off).
ACK_RETRY = 1.0

# Told whether a publish was confirmed, and why not.
Confirmed = Callable[[bool, str], None]


class Host(Protocol):
    """The endpoint that publishers, consumers and callers of one node live on."""

    node: Node
    settings: QueueSettings
    publisher: Publisher

    def add_consumer(self, consumer: Consumer) -> None:
        """Route the deliveries of `consumer.queue` to `consumer`."""
        ...


class _Outgoing:
    """A publish waiting for its confirm, with the settings it is published under."""

    __slots__ = ("msg", "on_confirm", "refused", "settings")

    def __init__(self, msg: Message, on_confirm: Confirmed | None, settings: QueueSettings) -> None:
        self.msg = msg
        self.on_confirm = on_confirm
        self.settings = settings
        self.refused = ""


class Publisher:
    """Publishes with publisher confirms, re-sending after a confirm timeout."""

    def __init__(self, endpoint: Host) -> None:
        self.node = endpoint.node
        self.settings = endpoint.settings
        self.unconfirmed: dict[str, _Outgoing] = {}
        self.republished = 0

    def publish(
        self,
        queue: str,
        type_: str,
        body: Any = None,
        *,
        msg_id: str | None = None,
        correlation_id: str = "",
        causation_id: str = "",
        span: int = -1,
        size_bytes: int = 256,
        reply_to: str = "",
        on_confirm: Confirmed | None = None,
        deadline: float = math.inf,
        idempotency_key: str = "",
        settings: QueueSettings | None = None,
        topic: bool = False,
        ordering_key: str = "",
        attributes: dict[str, str] | None = None,
    ) -> str:
        """Publish `body` to `queue` on the broker; returns the message id.

        With `topic`, `queue` names a topic: the broker copies the message into each of
        its subscriptions (filtered on `attributes`; `routing_key` among them is matched
        against RabbitMQ bindings). `ordering_key` is its Pub/Sub ordering key or SQS
        FIFO message group (ordered queues derive one when it is "").

        `on_confirm(True, "")` once the broker confirms it, or `on_confirm(False, why)`
        after `publish_attempts` sends without a confirm. `deadline` (absolute) and
        `idempotency_key` travel with it to its consumer. `settings` (the endpoint's when
        None) name the broker and the producer's confirm timeout and attempts.
        """
        node = self.node
        settings = settings or self.settings
        msg = Message(
            msg_id=msg_id or node.new_id(),
            type=type_,
            src=node.id,
            dst=settings.broker,
            kind="publish",
            protocol=PROTOCOL,
            version=node.version,
            correlation_id=correlation_id,
            causation_id=causation_id,
            span=span,
            size_bytes=size_bytes,
            body=Publish(queue, reply_to, body, topic, ordering_key, attributes),
            deadline=deadline,
            idempotency_key=idempotency_key,
        )
        out = _Outgoing(msg, on_confirm, settings)
        self.unconfirmed[msg.msg_id] = out
        self._send(out)
        return msg.msg_id

    def _send(self, out: _Outgoing) -> None:
        msg = out.msg
        self.node.send(msg)
        self.node.after(out.settings.confirm_timeout, lambda: self._no_confirm(out, msg))

    def _no_confirm(self, out: _Outgoing, sent: Message) -> None:
        if self.unconfirmed.get(sent.msg_id) is not out or out.msg is not sent:
            return  # confirmed, or sent again since
        if sent.attempt >= out.settings.publish_attempts:
            del self.unconfirmed[sent.msg_id]
            why = out.refused or "no confirm"
            if out.on_confirm is not None:
                out.on_confirm(False, f"publish failed after {sent.attempt} attempts: {why}")
            return
        if self.node.env.now >= sent.deadline:
            # Nobody waits for it any more (one deadline covers every attempt, as in
            # gRPC): a re-send would only make its consumer work for nothing. Its call
            # ends by its own timer, at that deadline.
            del self.unconfirmed[sent.msg_id]
            return
        # Same message id, next attempt: if only the confirm was lost, a duplicate.
        self.republished += 1
        out.msg = sent.copy(attempt=sent.attempt + 1)
        self._send(out)

    def on_confirm(self, msg: Message) -> None:
        """The broker confirmed a publish (a second confirm of it is ignored)."""
        out = self.unconfirmed.pop(msg.causation_id, None)
        if out is not None and out.on_confirm is not None:
            out.on_confirm(True, "")

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """The broker refused a publish: the confirm timer sends it again."""
        out = self.unconfirmed.get(msg.msg_id)
        if out is not None:
            out.refused = f"broker {msg.dst} {outcome}"

    def reset(self) -> None:
        """The producer crashed: what it had not seen confirmed is forgotten."""
        self.unconfirmed.clear()


class Consumer:
    """A consumer of one queue on this node: subscribes, heartbeats, settles deliveries.

    `on_delivery(delivery)` is called for each delivery; whoever handles it settles it
    with `ack`, `nack` or `reject` (or not at all: it is redelivered after the
    visibility timeout). A consumer resubscribes by itself after its node restarts, and
    sends nothing while its node is down. `settings` (the endpoint's when None) name its
    broker, heartbeat, prefetch and, where the consumer moves messages to the DLQ
    itself, the delivery limit. With a `topic`, its queue is a subscription of that topic
    (made when the broker first hears of this consumer, if it is not one yet).
    """

    def __init__(
        self,
        endpoint: Host,
        queue: str,
        on_delivery: Callable[[Delivery], None],
        prefetch: int | None = None,
        start: bool = True,
        settings: QueueSettings | None = None,
        topic: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        # The topic its queue subscribes to on its first subscribe (if not yet bound).
        self.topic = topic
        self.node = endpoint.node
        self.settings = settings or endpoint.settings
        self.queue = queue
        self.on_delivery = on_delivery
        self.prefetch = self.settings.prefetch if prefetch is None else prefetch
        self.active = False
        self.moved = 0  # deliveries this consumer moved to the DLQ itself
        # Deliveries held (not settled yet) by tag, with when each arrived: leased.
        self.held: dict[int, float] = {}
        self._leasing = False
        # Exactly-once acks not answered yet, by tag; and their answers so far.
        self.unanswered: dict[int, Message] = {}
        self.acks_confirmed = 0
        self.acks_failed = 0
        self._chain = 0  # the heartbeat chain that is current
        self._retrying = -1  # the epoch in which a reconnect is pending (-1: none)
        endpoint.add_consumer(self)
        self.node.on_restart.append(self._restarted)
        if start:
            self.start()

    def start(self) -> None:
        """Subscribe, and keep re-subscribing every heartbeat."""
        self.active = True
        self._chain += 1
        self._beat(self._chain)

    def stop(self) -> None:
        """Cancel the subscription (unacked deliveries stay until settled or expired)."""
        self.active = False
        self._chain += 1
        self._control(cancel=True)

    def refused(self) -> None:
        """The broker refused a message of ours (it is down): reconnect after a delay.

        The heartbeat would do it too, but a client library reconnects sooner. A refusal
        heard while the node is down (it crashed after sending) is void: the restart
        subscribes afresh.
        """
        node = self.node
        if not self.active or not node.up or self._retrying == node.epoch:
            return
        self._retrying = node.epoch

        def retry() -> None:
            self._retrying = -1
            if self.active:
                self._control(cancel=False)

        node.after(self.settings.reconnect_delay, retry)

    def _restarted(self) -> None:
        self._retrying = -1
        # What it held died with it: the broker redelivers after the deadlines.
        self.held.clear()
        self.unanswered.clear()
        if self.active:
            self._chain += 1
            self._beat(self._chain)

    def _beat(self, chain: int) -> None:
        if chain != self._chain or not self.active:
            return
        self._control(cancel=False)
        self.node.after(self.settings.heartbeat, lambda: self._beat(chain))

    def _control(self, cancel: bool) -> None:
        node = self.node
        if not node.up:
            return  # a crashed consumer sends nothing; its restart subscribes again
        node.send(
            Message(
                msg_id=node.new_id(),
                type="queue.cancel" if cancel else "queue.subscribe",
                src=node.id,
                dst=self.settings.broker,
                kind="control",
                protocol=PROTOCOL,
                version=node.version,
                size_bytes=CONTROL_BYTES,
                body=Subscribe(
                    self.queue,
                    node.id,
                    node.epoch,
                    self.prefetch,
                    self.settings.heartbeat,
                    cancel,
                    self.topic or "",
                ),
            )
        )

    def on_deliver(self, msg: Message) -> None:
        """A delivery arrived: hand it on, or move it (Redis: the consumer owns the DLQ)."""
        delivery: Delivery = msg.body
        if not self.active:
            self.nack(delivery)
            return
        settings = self.settings
        limit = settings.max_deliveries
        if settings.dead_letter_by == "consumer" and limit is not None and delivery.count > limit:
            # XPENDING says it was delivered `limit` times already: XADD it to the
            # DLQ stream and XACK it, without handling it again.
            self.moved += 1
            self.reject(delivery, reason=f"delivered {delivery.count - 1} times (max {limit})")
            return
        if settings.lease_extension is not None:
            self.held[delivery.tag] = self.node.env.now
            self._lease()
        self.on_delivery(delivery)

    def _lease(self) -> None:
        """Keep extending the deadlines of held deliveries, every half deadline."""
        if self._leasing:
            return
        self._leasing = True
        node = self.node
        epoch = node.epoch
        settings = self.settings
        every = settings.visibility_timeout / 2

        def renew() -> None:
            if node.epoch != epoch or not node.up:
                self._leasing = False
                return
            horizon = node.env.now - (settings.lease_extension or 0.0)
            for tag in [t for t, since in self.held.items() if since <= horizon]:
                del self.held[tag]  # held as long as the lease may last: let it expire
            if not self.held:
                self._leasing = False
                return
            node.send(
                Message(
                    msg_id=node.new_id(),
                    type="queue.modack",
                    src=node.id,
                    dst=settings.broker,
                    kind="control",
                    protocol=PROTOCOL,
                    version=node.version,
                    size_bytes=CONTROL_BYTES,
                    body=Extend(self.queue, tuple(self.held)),
                )
            )
            node.after(every, renew)

        node.after(every, renew)

    def on_ack_reply(self, reply: AckReply) -> None:
        """The broker answered an exactly-once ack: done, or it failed (redelivered)."""
        if self.unanswered.pop(reply.tag, None) is None:
            return  # answered already
        self.held.pop(reply.tag, None)
        if reply.ok:
            self.acks_confirmed += 1
        else:
            self.acks_failed += 1

    def ack(self, delivery: Delivery, span: int = -1) -> None:
        """Done with it: the broker forgets it."""
        self._settle(delivery, "ack", Settle(delivery.queue, delivery.tag), span)

    def nack(self, delivery: Delivery, requeue: bool = True, span: int = -1) -> None:
        """Give it back without failing it (basic.nack, XNACK SILENT-like): requeued."""
        body = Settle(delivery.queue, delivery.tag, requeue=requeue, reason="nacked")
        self._settle(delivery, "nack", body, span)

    def reject(
        self, delivery: Delivery, requeue: bool = False, reason: str = "", span: int = -1
    ) -> None:
        """It failed: requeue it (a failed delivery) or send it to the DLQ with `reason`."""
        body = Settle(delivery.queue, delivery.tag, requeue, failed=True, reason=reason)
        self._settle(delivery, "nack", body, span)

    def _settle(self, delivery: Delivery, kind: str, body: Settle, span: int) -> None:
        node = self.node
        if not node.up:
            return  # the broker redelivers what a crashed consumer held
        msg = Message(
            msg_id=node.new_id(),
            type=delivery.type,
            src=node.id,
            dst=self.settings.broker,
            kind=kind,
            protocol=PROTOCOL,
            version=node.version,
            correlation_id=delivery.correlation_id,
            causation_id=delivery.msg_id,
            span=span,
            attempt=delivery.count,
            size_bytes=CONTROL_BYTES,
            body=body,
        )
        if kind == "ack" and self.settings.exactly_once:
            # Kept leased and re-sent until the broker answers it.
            self.unanswered[delivery.tag] = msg
            node.send(msg)
            self._ack_again(delivery.tag, msg, node.epoch)
            return
        self.held.pop(delivery.tag, None)
        node.send(msg)

    def _ack_again(self, tag: int, msg: Message, epoch: int) -> None:
        node = self.node

        def resend() -> None:
            if node.epoch != epoch or self.unanswered.get(tag) is not msg:
                return
            if tag not in self.held:
                self.unanswered.pop(tag, None)  # its lease ran out: the broker moved on
                return
            node.send(msg.copy(msg_id=node.new_id()))
            node.after(ACK_RETRY, resend)

        node.after(ACK_RETRY, resend)


class QueueClient:
    """Request-reply over the broker: the caller never blocks on a call."""

    def __init__(self, endpoint: Host) -> None:
        self.endpoint = endpoint
        self.node = endpoint.node
        self.pending: dict[str, Call] = {}
        # The consumer of each response queue, by (broker, queue): calls made under other
        # settings may use another broker or response queue.
        self.consumers: dict[tuple[str, str], Consumer] = {}
        self.late_replies = 0
        # Told of a reply no call of this client waits for; True if it was expected
        # there (an agent's own request-reply), else it counts as late.
        self.unmatched: Callable[[Delivery], bool] | None = None

    def call(
        self,
        dst: str,
        type_: str,
        correlation_id: str,
        timeout: float | None = 5.0,
        parent: int = -1,
        size_bytes: int = 256,
        body: Any = None,
        causation_id: str = "",
        on_done: Callable[[CallResult], None] | None = None,
        deadline: float | None = None,
        idempotency_key: str = "",
        settings: QueueSettings | None = None,
        ordering_key: str = "",
    ) -> Call:
        """Publish a request to `dst`'s request queue; the Call ends on its reply.

        The Call ends on the reply matched to it (a status >= 400 is an error), its
        timeout, or a publish that was never confirmed. `on_done` is told the result;
        code in a process yields `call.wait()`. `deadline` (absolute; `timeout` from now
        when None) and `idempotency_key` travel with the request to its consumer.
        `settings` (the endpoint's when None) are the channel's: its broker, its queues.
        `ordering_key` is the request's own ordering key or FIFO group ("": its queue
        derives one, if it is ordered).
        """
        node = self.node
        settings = settings or self.endpoint.settings
        reply_queue = self.listen(settings)
        now = node.env.now
        if deadline is None:
            deadline = now + timeout if timeout is not None else math.inf
        span = node.journal.span_start(
            type_, "producer", node.id, dst, PROTOCOL, now, parent, correlation_id,
            deadline if deadline != math.inf else math.nan,
        )  # fmt: skip
        msg_id = node.new_id()
        call = Call(self, msg_id, span, timeout, on_done)
        self.endpoint.publisher.publish(
            settings.topic or settings.requests_of(dst),
            type_,
            body,
            msg_id=msg_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
            span=span,
            size_bytes=size_bytes,
            reply_to=reply_queue,
            on_confirm=lambda ok, why: self._confirmed(msg_id, ok, why),
            deadline=deadline,
            idempotency_key=idempotency_key,
            settings=settings,
            topic=settings.topic is not None,
            ordering_key=ordering_key,
        )
        return call

    def listen(self, settings: QueueSettings) -> str:
        """Consume this node's response queue under `settings` (once); its name."""
        reply_queue = settings.replies_of(self.node.id)
        key = (settings.broker, reply_queue)
        if key not in self.consumers:
            self.consumers[key] = Consumer(
                self.endpoint, reply_queue, lambda d: self._on_reply(d, key), 0, settings=settings
            )
        return reply_queue

    def _confirmed(self, msg_id: str, ok: bool, why: str) -> None:
        """The broker confirmed the publish of `msg_id`, or it never will (`why`)."""
        if ok:
            return
        call = self.pending.get(msg_id)
        if call is not None:
            call.end(("error", 0, why))

    def _on_reply(self, delivery: Delivery, consumer: tuple[str, str]) -> None:
        call = self.pending.get(delivery.causation_id)
        if call is not None:
            # A queue server's reply carries its status; any other reply counts as a 200.
            payload = delivery.payload
            call.end(status_result(payload if isinstance(payload, int) else 200))
        elif self.unmatched is None or not self.unmatched(delivery):
            self.late_replies += 1  # its call ended already (timeout, a duplicate reply)
        self.consumers[consumer].ack(delivery)

    def reset(self) -> None:
        """The caller crashed: its calls end in error, and nobody is told."""
        abort_all(self)
