"""The serving side of request-reply over a queue, and idempotent receivers.

A `QueueServer` consumes a request queue (`<agent>.requests` unless told otherwise; many
servers on one queue compete for its messages), puts each delivery in a worker pool
(the prefetch bounds how many it holds) and runs `handler(job)` as HTTP's server does.
When the handler calls `job.reply(status)`:

- status < 500: the effect is applied (counted in `effects`, per message id), the reply
  is published to the request's `reply_to` queue, and the delivery is acked;
- status >= 500: per `on_error`, the delivery is left unacked (redelivered after the
  visibility timeout), rejected with requeue, rejected to the DLQ, or acked with the
  error as its reply. Past the delivery limit the broker dead-letters it.

A request carries its caller's deadline (`Delivery.deadline`): its consumer span records
it, the handler's own calls are capped by it, and with `drop_expired` a request whose
deadline has passed when a worker takes it is acked without work and answered 504
(`deadline_exceeded`), as an HTTP server with `drop_expired` does.

With a `Deduper` (or `idempotent=True` in the settings) the server is an idempotent
receiver: a delivery whose idempotency key (its message id when the request has none)
was already applied is acked, answered with the stored status, and not applied again,
so effects stay exactly-once under at-least-once delivery. The dedupe store is a
database beside the consumer, not in its memory: it survives the consumer's crash
(otherwise a crash between the effect and the ack would apply the effect twice).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import simpy

from protocols.queue.client import Consumer, Host
from protocols.queue.settings import QueueSettings
from protocols.queue.wire import PROTOCOL, REPLY_BYTES, Delivery
from protocols.transport import Message
from protocols.workers import Job, WorkerPool, adopted


class Deduper:
    """A dedupe store: results by idempotency key, each kept for `ttl` seconds."""

    def __init__(self, env: simpy.Environment, ttl: float = 300.0) -> None:
        self.env = env
        self.ttl = ttl
        # key -> (expiry, result); insertion order is expiry order (one TTL, one clock).
        self._done: dict[str, tuple[float, Any]] = {}

    def _prune(self) -> None:
        now = self.env.now
        done = self._done
        while done:
            key, (expiry, _) = next(iter(done.items()))
            if expiry > now:
                return
            del done[key]

    def seen(self, key: str) -> bool:
        """Whether the effect of `key` was applied within the TTL."""
        self._prune()
        return key in self._done

    def result(self, key: str) -> Any:
        """The result stored with `key` (None if none)."""
        entry = self._done.get(key)
        return None if entry is None else entry[1]

    def record(self, key: str, result: Any = None) -> bool:
        """Apply-once: True (and store `result`) if `key` is new, False if a duplicate."""
        if self.seen(key):
            return False
        self._done[key] = (self.env.now + self.ttl, result)
        return True

    def __len__(self) -> int:
        self._prune()
        return len(self._done)


class ServerHost(Host, Protocol):
    """The endpoint a queue server serves on: a `Host` that resets its server on a crash."""

    def add_server(self, server: QueueServer) -> None:
        """Make `server` this endpoint's server."""
        ...


class QueueServer:
    """Consumes a request queue into a worker pool; `handler(job)` ends with job.reply.

    `settings` (the endpoint's when None) are the queue's: its consumer, `on_error`,
    idempotence, `drop_expired`. Servers of several queues (or protocols) on one node may
    share one `pool` (`WorkerPool.shared`), which each adopts.
    """

    def __init__(
        self,
        endpoint: ServerHost,
        workers: int,
        handler: Callable[[Job], None],
        queue: str | None = None,
        prefetch: int | None = None,
        dedupe: Deduper | None = None,
        settings: QueueSettings | None = None,
        pool: WorkerPool | None = None,
    ) -> None:
        node = endpoint.node
        self.endpoint = endpoint
        self.node = node
        self.settings = settings or endpoint.settings
        self.queue = queue or self.settings.requests_of(node.id)
        self._handler = handler
        # The handler runs as is unless expired requests are dropped: a call less each.
        begin = self.begin if self.settings.drop_expired else handler
        # `pool`: shared with the node's other queue servers, or its other protocols'.
        self.pool = adopted(pool, self, begin) or WorkerPool(node, workers, begin)
        if dedupe is None and self.settings.idempotent:
            dedupe = Deduper(node.env, self.settings.dedupe_ttl)
        self.dedupe = dedupe
        # Effects applied, per idempotency key (the message id when the request has none):
        # 1 each when exactly once.
        self.effects: dict[str, int] = {}
        self.duplicates = 0  # deliveries acked without applying their effect again
        endpoint.add_server(self)
        self.consumer = Consumer(
            endpoint,
            self.queue,
            self._on_delivery,
            prefetch,
            settings=self.settings,
            topic=self.settings.topic,
        )

    def _on_delivery(self, d: Delivery) -> None:
        node = self.node
        now = node.env.now
        # The deadline the request arrived with (NaN: none), as HTTP servers record it.
        span = node.journal.span_start(
            d.type, "consumer", node.id, d.producer, PROTOCOL, now, d.span, d.correlation_id,
            d.deadline if d.deadline != math.inf else math.nan,
        )  # fmt: skip
        dedupe = self.dedupe
        key = d.idempotency_key or d.msg_id
        if dedupe is not None and dedupe.seen(key):
            status = dedupe.result(key)
            self.duplicates += 1
            node.journal.span_end(
                span, "ok", now, "duplicate: acked, effect not applied again",
                wait=now - d.ready_at, attempts=d.count, status=status,
            )  # fmt: skip
            self._answer(d, status, span)
            self.consumer.ack(d, span)
            return
        request = Message(
            msg_id=d.msg_id,
            type=d.type,
            src=d.producer,
            dst=node.id,
            kind="request",
            protocol=PROTOCOL,
            version=d.version,
            correlation_id=d.correlation_id,
            causation_id=d.causation_id,
            span=d.span,
            attempt=d.count,
            size_bytes=d.size_bytes,
            body=d.payload,
            deadline=d.deadline,
            idempotency_key=d.idempotency_key,
        )
        # Its wait counts from when the broker made it ready: broker queue + pool queue.
        self.pool.submit(Job(self, request, span, d.ready_at, data=d), bounded=False)

    def begin(self, job: Job) -> None:
        """A worker took the job: drop it if its deadline passed (when set), else handle."""
        settings = self.settings
        now = self.node.env.now
        if settings.drop_expired and job.msg.deadline <= now + settings.drop_margin:
            # Nobody waits for its answer: ack it (no redelivery), answer 504, no work.
            d: Delivery = job.data
            why = "deadline exceeded before work began"
            self.node.journal.span_end(
                job.span, "deadline_exceeded", now, why, job.wait, d.count, 504
            )
            self._answer(d, 504, job.span)
            self.consumer.ack(d, job.span)
            self.pool.done(job)
            return
        self._handler(job)

    def reply(self, job: Job, status: int, error: str = "") -> None:
        """Finish a job: apply and answer (then ack), or fail it per `on_error`."""
        if self.pool.running.get(id(job)) is not job:
            return  # lost in a crash, or answered already
        node = self.node
        now = node.env.now
        d: Delivery = job.data
        journal = node.journal
        on_error = self.settings.on_error
        if status >= 500 and on_error != "reply":
            error = error or f"status {status}"
            journal.span_end(
                job.span, "error", now, error, wait=job.wait, attempts=d.count, status=status
            )
            if on_error == "requeue":
                self.consumer.reject(d, requeue=True, reason=error, span=job.span)
            elif on_error == "dead_letter":
                self.consumer.reject(d, requeue=False, reason=error, span=job.span)
            # "wait": no ack; the broker redelivers it after the visibility timeout.
            self.pool.done(job)
            return
        key = d.idempotency_key or d.msg_id
        first = self.dedupe.record(key, status) if self.dedupe is not None else True
        if not first:
            self.duplicates += 1  # a copy handled at the same time got there first
        elif status < 400:
            self.effects[key] = self.effects.get(key, 0) + 1
            journal.effect(now, node.id, key, d.msg_id, d.correlation_id)
        outcome = "ok" if status < 400 else "error"
        if outcome == "error" and not error:
            error = f"status {status}"
        journal.span_end(job.span, outcome, now, error, job.wait, d.count, status)
        self._answer(d, status, job.span)
        self.consumer.ack(d, job.span)
        self.pool.done(job)

    def dead_letter(self, job: Job, reason: str) -> None:
        """Refuse a job for good (an unreadable message, say): to the DLQ with `reason`."""
        if self.pool.running.get(id(job)) is not job:
            return
        d: Delivery = job.data
        now = self.node.env.now
        self.node.journal.span_end(
            job.span, "rejected", now, reason, wait=job.wait, attempts=d.count
        )
        self.consumer.reject(d, requeue=False, reason=reason, span=job.span)
        self.pool.done(job)

    def _answer(self, d: Delivery, status: Any, span: int) -> None:
        if d.reply_to and status is not None:
            # On the broker the request came from: this queue's.
            self.endpoint.publisher.publish(
                d.reply_to,
                d.type,
                status,
                correlation_id=d.correlation_id,
                causation_id=d.msg_id,
                span=span,
                size_bytes=REPLY_BYTES,
                settings=self.settings,
            )

    def reset(self) -> None:
        """The server crashed: the deliveries it held are lost (the broker redelivers)."""
        self.pool.crash(attempts=True, owner=self)
