"""The broker: durable named queues with competing consumers, redelivery and DLQs.

A broker is an agent on its own node, so it crashes, pauses and is partitioned like any
other. What it models (one engine; the flavour only changes the knobs, see `settings`):

- **Durable queues.** A crash loses the broker's connections (its subscriptions) and
  nothing it has stored: ready messages, unacked deliveries with their visibility
  deadlines, the DLQs and the counters survive. On restart the visibility timers run on
  to their old deadlines (SQS, Redis), or, where connection loss requeues unacked
  deliveries (RabbitMQ), every unacked delivery is requeued at once. A publish sent to a
  down broker is refused by the network (`unavailable`) and the producer re-sends it.
- **Competing consumers.** The consumers of a queue form its group: the broker pushes
  `deliver` messages round-robin to those with credit (at most `prefetch` unacked each).
  Fan-out to several groups is several queues, as SQS (behind SNS) and RabbitMQ
  (exchanges) do it.
- **At-least-once.** An unacked delivery is made ready again after the visibility
  timeout with its delivery count + 1; a lost ack, a slow consumer or a crashed one all
  end that way. Past `max_deliveries` the message moves to `<queue>.dlq` (or is dropped
  when `dead_letter` is off), with a reason kept in `dead_letters`.
- **Consumer liveness.** A consumer re-subscribes every heartbeat; one not heard from
  in two heartbeats, or whose host refuses a delivery, has lost its connection: the
  broker stops pushing to it (and with `requeue_on_disconnect` requeues its unacked
  deliveries). A consumer that subscribes with a new session (it restarted) replaces
  its old connection, and with `resume_pending` gets its own pending deliveries again.

- **Topics.** A publish to a topic is copied into each subscription bound to it (one
  queue each, with its own consumers, backlog, acks and dead letters) that its filter
  and binding let it into; a topic with no subscription drops it. See `settings` for the
  sources of these semantics and `routing` for filters, bindings and ordering keys.
- **Ordered queues** (ordering keys, SQS FIFO groups): a message is delivered only when
  no earlier message of its key is in flight or waiting out a backoff, so a failing one
  holds its key back until it is acked or dead-lettered; other keys flow. FIFO queues
  also drop a publish whose deduplication id was accepted within `dedupe_ttl`.
- **Pub/Sub.** Consumers may extend a delivery's ack deadline (`Extend`); a retry
  policy may hold a nacked or expired message back before it is ready again; past the
  limit a message may go to a dead-letter topic; exactly-once subscriptions answer each
  ack (`AckReply`); a push subscription delivers to its endpoint unasked and backs off
  (`PUSH_BACKOFF`) while deliveries fail (refused, nacked, or past their deadline).

Totals are exact: for every queue, at every moment,
`enqueued == acked + dead_lettered + waiting + in_flight` (`waiting`: ready, or held back
by a retry backoff; a message dropped past the limit without a DLQ counts as
dead-lettered; a redrive counts as acked on the DLQ and enqueued again on its queue).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import simpy

from protocols.node import Node
from protocols.queue.routing import attributes_of, key_of, retry_delay, takes
from protocols.queue.settings import PUSH_BACKOFF, QueueSettings
from protocols.queue.store import DLQ_SUFFIX, DeadLetter, Queue, Stored, Subscription, Topic
from protocols.queue.wire import (
    CONTROL_BYTES,
    PROTOCOL,
    AckReply,
    Confirm,
    Delivery,
    Extend,
    Publish,
)
from protocols.transport import Message

LIMIT_NAMES = {
    "sqs": "maxReceiveCount",
    "rabbitmq": "delivery_limit",
    "redis-streams": "max",
    "pubsub": "max_delivery_attempts",
}
# A float remainder of a timer too small to move the clock.
EPSILON = 1e-9


class Broker:
    """The broker agent's queue endpoint (see the module docstring for the semantics).

    `settings` are the broker's (its sample interval) and apply to every queue that
    neither `queues` (settings by queue name, each applied when its queue is first used)
    nor `declare` gives its own; `on_dead_letter` is told of each dead letter (the
    simulator marks its trace rows).
    """

    def __init__(
        self,
        node: Node,
        settings: QueueSettings | None = None,
        on_dead_letter: Callable[[DeadLetter], None] | None = None,
        queues: Mapping[str, QueueSettings] | None = None,
    ) -> None:
        self.node = node
        self.settings = settings or QueueSettings()
        self.on_dead_letter = on_dead_letter
        self.queue_settings: dict[str, QueueSettings] = dict(queues or {})
        self.queues: dict[str, Queue] = {}
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        # The last session seen per consumer: kept across drops and crashes, as a Redis
        # group keeps its consumers, so only a consumer's restart counts as new.
        self._sessions: dict[tuple[str, str], int] = {}
        self.dead_letters: list[DeadLetter] = []
        self.topics: dict[str, Topic] = {}
        self._tags = itertools.count(1)
        self._delays = itertools.count(1)
        node.register(PROTOCOL, self)
        node.on_restart.append(self._recover)
        # The subscriptions named by their queues' settings exist from the start.
        for name, queue_settings in self.queue_settings.items():
            if queue_settings.topic is not None:
                self.subscribe(queue_settings.topic, name)
        if self.settings.sample_interval is not None:
            self._sample_every(self.settings.sample_interval)

    # -- queues -----------------------------------------------------------------------

    def declare(self, name: str, settings: QueueSettings | None = None) -> Queue:
        """The queue `name`, created if new with `settings`, else its own from `queues`,
        else the broker's."""
        queue = self.queues.get(name)
        if queue is None:
            settings = settings or self.queue_settings.get(name, self.settings)
            queue = self.queues[name] = Queue(name, settings)
            if settings.push_endpoint is not None:
                # A push subscription: its endpoint is its consumer, never asked for.
                sub = Subscription(name, settings.push_endpoint, 0, settings.prefetch,
                                   settings.heartbeat, self.node.env.now, push=True)  # fmt: skip
                self.subscriptions[name, sub.consumer] = sub
                queue.consumers.append(sub)
        return queue

    def subscribe(self, topic: str, queue: str, settings: QueueSettings | None = None) -> Topic:
        """Bind `queue` (declared with `settings` if new) to `topic` as a subscription.

        It gets copies of the messages published from now on, not of earlier ones.
        """
        found = self.topics.get(topic)
        if found is None:
            found = self.topics[topic] = Topic(topic)
        self.declare(queue, settings)
        if queue not in found.subscriptions:
            found.subscriptions.append(queue)
        return found

    def _dlq_of(self, queue: Queue) -> Queue:
        name = queue.name + DLQ_SUFFIX
        dlq = self.queues.get(name)
        if dlq is None:
            # A DLQ keeps what it gets: no limit, no DLQ of its own.
            settings = queue.settings.model_copy(update={"max_deliveries": None})
            dlq = self.queues[name] = Queue(name, settings, is_dlq=True)
        return dlq

    # -- the endpoint -----------------------------------------------------------------

    def on_message(self, msg: Message) -> None:
        """Route a publish, an ack/nack or a subscription message."""
        kind = msg.kind
        if kind == "publish":
            self._on_publish(msg)
        elif kind == "ack" or kind == "nack":
            self._on_settle(msg)
        elif kind == "control":
            if isinstance(msg.body, Extend):
                self._on_extend(msg)
            else:
                self._on_subscribe(msg)

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A delivery whose host refused it: that consumer's connection is gone."""
        if msg.kind != "deliver" or outcome != "unavailable":
            return
        sub = self.subscriptions.get((msg.body.queue, msg.dst))
        # Only if the refused delivery went to this connection, not to a newer one.
        if sub is None or msg.body.tag not in sub.unacked:
            return
        if sub.push:
            # The endpoint refused the POST: a failed push, retried after a backoff.
            queue = self.queues[sub.queue]
            m = queue.in_flight.pop(msg.body.tag, None)
            sub.unacked.pop(msg.body.tag, None)
            self._push_failed(sub)
            if m is not None:
                self._requeue(queue, m, failed=True)
            self._dispatch(queue)
            return
        self._lost(sub)

    def reset(self) -> None:
        """The broker crashed: its connections are gone; its queues are durable.

        A push subscription is configuration, not a connection: it stays.
        """
        pushed = {k: s for k, s in self.subscriptions.items() if s.push}
        self.subscriptions.clear()
        self.subscriptions.update(pushed)
        for queue in self.queues.values():
            queue.consumers[:] = [s for s in queue.consumers if s.push]
            for sub in queue.consumers:
                sub.unacked.clear()

    def _recover(self) -> None:
        # Timers died with the crash: re-arm each unacked delivery's visibility timer,
        # or requeue them all where a lost connection requeues (every one was lost).
        now = self.node.env.now
        for queue in self.queues.values():
            for key, (_m, ready_at) in list(queue.delayed.items()):
                self._wake_after(queue, key, max(ready_at - now, 0.0))
            if queue.settings.requeue_on_disconnect:
                stored = list(queue.in_flight.values())
                queue.in_flight.clear()
                for m in reversed(stored) if queue.settings.requeue_at_head else stored:
                    self._requeue(queue, m, failed=False)
            else:
                for tag, m in queue.in_flight.items():
                    self._arm(queue, tag, max(m.invisible_until - now, 0.0))

    # -- publish ----------------------------------------------------------------------

    def _on_publish(self, msg: Message) -> None:
        body: Publish = msg.body
        if body.topic:
            stored_in = self._fan_out(msg, body)
        else:
            queue = self.declare(body.queue)
            self._store(queue, self._stored(msg, body))
            stored_in = [queue]
        # Stored (durably, at once): confirm it, then deliver.
        self._ack_to(msg, Confirm(body.queue), msg.span)
        for queue in stored_in:
            self._dispatch(queue)

    def _stored(self, msg: Message, body: Publish) -> Stored:
        now = self.node.env.now
        stored = Stored(
            msg.msg_id, msg.type, msg.version, msg.src, msg.correlation_id, msg.causation_id,
            msg.span, msg.size_bytes, body.payload, body.reply_to, now, now,
        )  # fmt: skip
        # The request's deadline and key travel on with it (the envelope's fields).
        stored.deadline, stored.idempotency_key = msg.deadline, msg.idempotency_key
        stored.ordering_key = body.ordering_key
        return stored

    def _fan_out(self, msg: Message, body: Publish) -> list[Queue]:
        """Copy a publish into each subscription of its topic that takes it; returns
        the subscriptions that took it."""
        topic = self.topics.get(body.queue)
        if topic is None:
            topic = self.topics[body.queue] = Topic(body.queue)
        topic.published += 1
        if not topic.subscriptions:
            topic.dropped += 1  # no subscription: nobody will ever get it
            return []
        attributes = attributes_of(msg.type, msg.src, body.attributes)
        took = []
        for name in topic.subscriptions:
            queue = self.declare(name)
            if takes(queue.settings, attributes):
                stored = self._stored(msg, body)
                stored.topic = topic.name
                self._store(queue, stored)
                took.append(queue)
            else:
                topic.filtered += 1
        return took

    def _store(self, queue: Queue, stored: Stored) -> None:
        """Enqueue `stored` (unless a FIFO queue saw its deduplication id lately); the
        caller dispatches."""
        settings = queue.settings
        if settings.fifo:
            now = self.node.env.now
            dedup = queue.dedup
            while dedup:  # one window, one clock: insertion order is expiry order
                first, expiry = next(iter(dedup.items()))
                if expiry > now:
                    break
                del dedup[first]
            key = stored.idempotency_key or stored.msg_id
            if key in dedup:
                queue.deduplicated += 1
                return
            dedup[key] = now + settings.dedupe_ttl
        stored.ordering_key = key_of(
            settings, stored.ordering_key, stored.producer, stored.correlation_id
        )
        queue.enqueued += 1
        queue.ready.append(stored)

    # -- delivery ---------------------------------------------------------------------

    def _dispatch(self, queue: Queue) -> None:
        """Push ready messages to consumers with credit, round-robin."""
        consumers = queue.consumers
        ready = queue.ready
        n = len(consumers)
        now = self.node.env.now
        ordered = queue.settings.in_order
        while ready and n:
            for _ in range(n):
                sub = consumers[queue.next_consumer % n]
                queue.next_consumer += 1
                if sub.has_credit() and sub.paused_until <= now:
                    break
            else:
                return  # every consumer is at its prefetch limit (or backing off)
            if not ordered:
                self._deliver(queue, ready.popleft(), sub)
                continue
            m = self._next_in_order(queue)
            if m is None:
                return  # every ready message waits behind an earlier one of its key
            self._deliver(queue, m, sub)

    def _next_in_order(self, queue: Queue) -> Stored | None:
        """The first ready message whose key has nothing in flight (taken off `ready`)."""
        busy = queue.busy_keys
        for i, m in enumerate(queue.ready):
            if m.ordering_key == "" or m.ordering_key not in busy:
                del queue.ready[i]
                if m.ordering_key:
                    busy.add(m.ordering_key)
                return m
        return None

    def _deliver(self, queue: Queue, m: Stored, sub: Subscription) -> None:
        node = self.node
        now = node.env.now
        m.deliveries += 1
        if m.deliveries > 1:
            queue.redelivered += 1
        tag = next(self._tags)
        visibility = queue.settings.visibility_timeout
        m.tag, m.consumer, m.invisible_until = tag, sub.consumer, now + visibility
        queue.in_flight[tag] = m
        sub.unacked[tag] = None
        self._arm(queue, tag, visibility)
        m.sent = node.send(
            Message(
                msg_id=m.msg_id,
                type=m.type,
                src=node.id,
                dst=sub.consumer,
                kind="deliver",
                protocol=PROTOCOL,
                version=m.version,
                correlation_id=m.correlation_id,
                causation_id=m.causation_id,
                span=m.span,
                attempt=m.deliveries,
                size_bytes=m.size_bytes,
                body=Delivery(
                    queue.name, tag, m.msg_id, m.type, m.version, m.producer,
                    m.correlation_id, m.causation_id, m.span, m.size_bytes, m.payload,
                    m.reply_to, m.deliveries, m.enqueued_at, m.ready_at, m.deadline,
                    m.idempotency_key, "" if queue.is_dlq else m.topic, m.ordering_key,
                ),
                deadline=m.deadline,
                idempotency_key=m.idempotency_key,
            )
        )  # fmt: skip

    def _arm(self, queue: Queue, tag: int, delay: float) -> None:
        self.node.after(delay, lambda: self._expire(queue, tag))

    def _expire(self, queue: Queue, tag: int) -> None:
        # The visibility timeout (consumer timeout, claim idle time) of delivery `tag`.
        m = queue.in_flight.get(tag)
        if m is None:
            return  # acked, or requeued already
        left = m.invisible_until - self.node.env.now
        if left > EPSILON:
            self._arm(queue, tag, left)  # its consumer extended the deadline
            return
        del queue.in_flight[tag]
        sub = self.subscriptions.get((queue.name, m.consumer))
        self._release(queue, m, tag)
        if sub is not None and sub.push:
            self._push_failed(sub)  # the endpoint did not answer in time
        self._requeue(queue, m, failed=False)
        self._dispatch(queue)

    def _release(self, queue: Queue, m: Stored, tag: int) -> None:
        sub = self.subscriptions.get((queue.name, m.consumer))
        if sub is not None:
            sub.unacked.pop(tag, None)

    def _requeue(self, queue: Queue, m: Stored, failed: bool) -> None:
        """Make `m` ready again, or dead-letter it past the delivery limit."""
        settings = queue.settings
        if failed:
            m.failures += 1
        limit = settings.max_deliveries
        if limit is not None and settings.dead_letter_by == "broker" and not queue.is_dlq:
            count = m.failures if settings.limit_counts == "failures" else m.deliveries
            if count >= limit:
                name = LIMIT_NAMES[settings.flavour]
                self._dead_letter(
                    queue, m, f"{name} {limit} reached ({count} {settings.limit_counts})"
                )
                return
        delay = retry_delay(settings, m.deliveries)
        if delay > 0:
            # The retry policy holds it back; its key stays busy meanwhile.
            key = next(self._delays)
            queue.delayed[key] = (m, self.node.env.now + delay)
            self._wake_after(queue, key, delay)
            return
        self._ready_again(queue, m)

    def _ready_again(self, queue: Queue, m: Stored) -> None:
        m.ready_at = self.node.env.now
        if m.ordering_key:
            # Ahead of the later messages of its key, which waited behind it.
            queue.busy_keys.discard(m.ordering_key)
            queue.ready.appendleft(m)
        elif queue.settings.requeue_at_head:
            queue.ready.appendleft(m)
        else:
            queue.ready.append(m)

    def _wake_after(self, queue: Queue, key: int, delay: float) -> None:
        def wake() -> None:
            entry = queue.delayed.pop(key, None)
            if entry is not None:
                self._ready_again(queue, entry[0])
                self._dispatch(queue)

        self.node.after(delay, wake)

    def _dead_letter(self, queue: Queue, m: Stored, reason: str) -> None:
        now = self.node.env.now
        queue.dead_lettered += 1
        if m.ordering_key:
            queue.busy_keys.discard(m.ordering_key)  # its key flows again
        deliveries = m.deliveries
        # The delivery given up on (the DLQ's own delivery of `m`, below, is a new one).
        delivery = m.sent
        dlq_name = ""
        dead_letter_topic = queue.settings.dead_letter_topic
        if dead_letter_topic is not None and not queue.is_dlq:
            dlq_name = dead_letter_topic
            self._to_dead_letter_topic(m, dead_letter_topic)
        elif queue.settings.dead_letter and not queue.is_dlq:
            dlq = self._dlq_of(queue)
            dlq_name = dlq.name
            # In the DLQ its deliveries count afresh, as for any message stored there.
            m.deliveries = m.failures = 0
            m.ready_at = now
            dlq.enqueued += 1
            dlq.ready.append(m)
            self._dispatch(dlq)
        record = DeadLetter(
            m.msg_id, queue.name, dlq_name, deliveries, reason, now, m.type, m.producer,
            m.correlation_id, delivery,
        )  # fmt: skip
        self.dead_letters.append(record)
        journal = self.node.journal
        span = journal.span_start(
            m.type, "dead_letter", self.node.id, m.producer, PROTOCOL, now, m.span,
            m.correlation_id,
        )  # fmt: skip
        where = f"dead-lettered to {dlq_name}" if dlq_name else "dropped (no DLQ)"
        if self._is_subscription(queue.name):
            where = f"{queue.name}: {where}"  # which subscription's copy, of a fan-out
        journal.span_end(span, "error", now, error=f"{where}: {reason}", attempts=deliveries)
        if self.on_dead_letter is not None:
            if m.topic and not queue.is_dlq:
                # The copies of a fan-out share its msg_id: name this subscription's, so
                # the dead letter marks its own copy and not another subscription's.
                journal.dead_letter_copy(m.msg_id, queue.name)
            self.on_dead_letter(record)

    def _to_dead_letter_topic(self, m: Stored, topic: str) -> None:
        """Publish `m` to the dead-letter topic: a fresh message in each subscription."""
        found = self.topics.get(topic)
        if found is None:
            found = self.topics[topic] = Topic(topic)
        found.published += 1
        if not found.subscriptions:
            found.dropped += 1  # lost: Pub/Sub asks for a subscription on it
            return
        now = self.node.env.now
        for name in found.subscriptions:
            copy = Stored(
                m.msg_id, m.type, m.version, m.producer, m.correlation_id, m.causation_id,
                m.span, m.size_bytes, m.payload, m.reply_to, now, now,
            )  # fmt: skip
            copy.deadline, copy.idempotency_key = m.deadline, m.idempotency_key
            copy.topic = topic
            queue = self.declare(name)
            self._store(queue, copy)
            self._dispatch(queue)

    def _is_subscription(self, name: str) -> bool:
        return any(name in t.subscriptions for t in self.topics.values())

    # -- acks -------------------------------------------------------------------------

    def _on_settle(self, msg: Message) -> None:
        body = msg.body
        queue = self.queues.get(body.queue)
        if queue is None:
            return
        sub = self.subscriptions.get((body.queue, msg.src))
        if sub is not None:
            sub.last_seen = self.node.env.now
        m = queue.in_flight.pop(body.tag, None)
        if msg.kind == "ack" and queue.settings.exactly_once:
            # Only the latest delivery's ack succeeds, and the consumer is told.
            self._answer_ack(msg, queue.name, body.tag, m is not None)
        if m is None:
            return  # a stale tag: already redelivered, requeued or acked
        self._release(queue, m, body.tag)
        if sub is not None and sub.push:
            if msg.kind == "ack":
                sub.backoff = 0.0  # a success ends the push backoff
            else:
                self._push_failed(sub)
        if msg.kind == "ack":
            queue.acked += 1
            if m.ordering_key:
                queue.busy_keys.discard(m.ordering_key)
        elif body.requeue:
            self._requeue(queue, m, failed=body.failed)
        else:
            self._dead_letter(queue, m, body.reason or "rejected by the consumer")
        self._dispatch(queue)

    def _answer_ack(self, msg: Message, queue: str, tag: int, ok: bool) -> None:
        self._ack_to(msg, AckReply(queue, tag, ok))

    def _ack_to(self, msg: Message, body: object, span: int = -1) -> None:
        """Answer `msg` with a broker `ack` carrying `body` (a publish's Confirm, an
        exactly-once ack's AckReply), in `span` (-1: none, a Message's default)."""
        node = self.node
        reply = Message(
            msg_id=node.new_id(),
            type=msg.type,
            src=node.id,
            dst=msg.src,
            kind="ack",
            protocol=PROTOCOL,
            version=node.version,
            correlation_id=msg.correlation_id,
            causation_id=msg.msg_id,
            attempt=msg.attempt,
            span=span,
            size_bytes=CONTROL_BYTES,
            body=body,
        )
        node.send(reply)

    def _on_extend(self, msg: Message) -> None:
        # modifyAckDeadline: each delivery still held by this consumer gets a fresh one.
        body: Extend = msg.body
        queue = self.queues.get(body.queue)
        if queue is None:
            return
        until = self.node.env.now + queue.settings.visibility_timeout
        for tag in body.tags:
            m = queue.in_flight.get(tag)
            if m is not None and m.consumer == msg.src:
                m.invisible_until = max(m.invisible_until, until)

    def _push_failed(self, sub: Subscription) -> None:
        """A push failed: hold the subscription's pushes back, twice as long each time."""
        now = self.node.env.now
        if now < sub.paused_until:
            return  # pushes sent together failed together: one failure, one step
        low, high = PUSH_BACKOFF
        sub.backoff = min(high, max(low, sub.backoff * 2))
        sub.paused_until = now + sub.backoff
        queue = self.queues[sub.queue]
        self.node.after(sub.backoff, lambda: self._dispatch(queue))

    # -- consumers --------------------------------------------------------------------

    def _on_subscribe(self, msg: Message) -> None:
        body = msg.body
        key = (body.queue, body.consumer)
        sub = self.subscriptions.get(key)
        if body.cancel:
            if sub is not None and not sub.push:
                self._drop(sub)
            return
        if body.topic:
            self.subscribe(body.topic, body.queue)
        queue = self.declare(body.queue)
        if queue.settings.push_endpoint is not None:
            return  # a push subscription is not pulled from: nothing to subscribe
        known = self._sessions.get(key, -1)
        if body.session < known:
            return  # a late heartbeat of a connection already replaced
        restarted = body.session > known
        self._sessions[key] = body.session
        if sub is not None and restarted:
            self._lost(sub)  # a new connection: the old one is dead
            sub = None
        now = self.node.env.now
        if sub is None:
            sub = Subscription(
                body.queue, body.consumer, body.session, body.prefetch, body.heartbeat, now
            )
            self.subscriptions[key] = sub
            queue.consumers.append(sub)
            self._watch(sub)
            if restarted and known >= 0 and queue.settings.resume_pending:
                self._resume(queue, sub)
        sub.prefetch = body.prefetch
        sub.last_seen = now
        self._dispatch(queue)

    def _resume(self, queue: Queue, sub: Subscription) -> None:
        # XREADGROUP ... 0: the consumer reads its own pending entries again, count + 1.
        mine = [(tag, m) for tag, m in queue.in_flight.items() if m.consumer == sub.consumer]
        for tag, m in mine:
            del queue.in_flight[tag]
            self._deliver(queue, m, sub)

    def _watch(self, sub: Subscription) -> None:
        # Two missed heartbeats and the connection is considered lost.
        timeout = 2 * sub.heartbeat
        key = (sub.queue, sub.consumer)

        def check() -> None:
            if self.subscriptions.get(key) is not sub:
                return
            left = sub.last_seen + timeout - self.node.env.now
            # A tolerance, as a float remainder too small to move the clock would loop.
            if left <= 1e-9:
                self._lost(sub)
            else:
                self.node.after(left, check)

        self.node.after(timeout, check)

    def _drop(self, sub: Subscription) -> None:
        key = (sub.queue, sub.consumer)
        if self.subscriptions.get(key) is sub:
            del self.subscriptions[key]
        queue = self.queues[sub.queue]
        if sub in queue.consumers:
            queue.consumers.remove(sub)

    def _lost(self, sub: Subscription) -> None:
        """A consumer's connection is gone: stop pushing; maybe requeue its deliveries."""
        self._drop(sub)
        queue = self.queues[sub.queue]
        tags = list(sub.unacked)
        sub.unacked.clear()
        settings = queue.settings
        if not settings.requeue_on_disconnect:
            return  # they stay in flight until their visibility timeout
        for tag in reversed(tags) if settings.requeue_at_head else tags:
            m = queue.in_flight.pop(tag, None)
            if m is not None:
                self._requeue(queue, m, failed=True)  # a lost connection is a failure
        self._dispatch(queue)

    # -- DLQ and samples --------------------------------------------------------------

    def redrive(self, queue: str, max_messages: int | None = None) -> int:
        """Move the ready messages of `<queue>.dlq` back to `queue`; returns how many.

        Like SQS's redrive (StartMessageMoveTask): their delivery counts start afresh.
        A down broker moves nothing.
        """
        dlq = self.queues.get(queue + DLQ_SUFFIX)
        if dlq is None or not self.node.up:
            return 0
        target = self.declare(queue)
        now = self.node.env.now
        moved = 0
        while dlq.ready and (max_messages is None or moved < max_messages):
            m = dlq.ready.popleft()
            dlq.acked += 1
            m.deliveries = m.failures = 0
            m.ready_at = now
            target.enqueued += 1
            target.ready.append(m)
            moved += 1
        self._dispatch(target)
        return moved

    def dlq_messages(self, queue: str) -> list[Stored]:
        """The messages held in `<queue>.dlq` now (ready, then in flight)."""
        dlq = self.queues.get(queue + DLQ_SUFFIX)
        if dlq is None:
            return []
        return [*dlq.ready, *dlq.in_flight.values()]

    def sample(self) -> None:
        """Write one sample of every queue to the journal."""
        now = self.node.env.now
        journal = self.node.journal
        queues = self.queues
        for queue in list(queues.values()):
            dlq = queues.get(queue.name + DLQ_SUFFIX)
            journal.queue_sample(
                now, queue.name, queue.waiting, len(queue.in_flight),
                dlq.held if dlq is not None else 0, queue.enqueued, queue.acked,
                queue.redelivered, queue.dead_lettered,
            )  # fmt: skip

    def _sample_every(self, interval: float) -> None:
        # The broker's monitor, not the broker: it samples the durable state even
        # while the broker is down or paused, so it runs on the clock, not the node.
        env = self.node.env

        def tick(_event: simpy.Event | None = None) -> None:
            self.sample()
            env.timeout(interval).callbacks.append(tick)

        tick()
