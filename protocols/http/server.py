"""The HTTP server: connections, a worker pool with an accept queue, 429/503, and
Idempotency-Key semantics.

- A request comes on a connection the server accepted (the client's handshake); one on
  a connection it does not know (it restarted since) is answered with a reset.
- A full accept queue answers 503 with Retry-After; past the rate limit (a token
  bucket) the answer is 429 with the Retry-After that the bucket needs to refill.
- Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): the first request with a
  key is processed; a retry while the original is in flight gets 409; a retry after it
  completed gets the stored result replayed, without running the handler again. The
  store lives in memory: a crash forgets it.
- A cancel (`http.cancel`, the caller gave up) takes its request out of the queue or
  frees its worker; one that overtook its request on the network stops it on arrival.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

from protocols.call import status_outcome
from protocols.http.settings import HttpServerSettings
from protocols.http.wire import (
    CANCEL,
    CONTROL_BYTES,
    HANDSHAKE,
    PROTOCOL,
    RESPONSE_BYTES,
    RST,
    SYN,
    HttpRequest,
    HttpResponse,
)
from protocols.node import Node
from protocols.transport import Message
from protocols.workers import Job, WorkerPool, adopted

IN_FLIGHT: Final = -1
# Seconds a cancel is kept for a request that has not arrived: far longer than any
# request lags behind the cancel sent after it.
CANCEL_TTL = 60.0
# Cancels kept before the expired ones are swept out.
CANCELS_KEPT = 1024

# A check a server's owner makes of each request before it queues (an LLM provider's
# limits): given the request, its span and the time, (status, why, retry_after, data);
# status 0 admits it and `data` goes to its job, any other is the answer at once.
Admit = Callable[[Message, int, float], tuple[int, str, float, Any]]


def send_response(
    node: Node, request: Message, status: int, span: int, retry_after: float = 0.0
) -> None:
    """Send the response to `request` from `node`."""
    node.transport.send(
        node.answer(request, HttpResponse(status, retry_after), RESPONSE_BYTES, span)
    )


def send_control(node: Node, to: Message, type_: str) -> None:
    """Answer a handshake step (or reset) on the connection `to` came on."""
    node.send(
        Message(
            msg_id=node.new_id(),
            type=type_,
            src=node.id,
            dst=to.src,
            kind="control",
            protocol=PROTOCOL,
            version=node.version,
            correlation_id=to.correlation_id,
            causation_id=to.msg_id,
            span=to.span,
            size_bytes=CONTROL_BYTES,
            body=to.body.conn if isinstance(to.body, HttpRequest) else to.body,
        )
    )


class HttpServer:
    """The serving side. `handler(job)` runs when a worker takes a request and ends with
    `job.reply(status, error)`."""

    def __init__(
        self,
        node: Node,
        workers: int,
        handler: Callable[[Job], None],
        queue_limit: int | None = None,
        settings: HttpServerSettings | None = None,
        pool: WorkerPool | None = None,
    ) -> None:
        self.node = node
        self.settings = settings or HttpServerSettings()
        self._handler = handler
        # `pool`: the agent's, shared with its other protocols' servers.
        self.pool = adopted(pool, self, self.begin) or WorkerPool(
            node, workers, self.begin, queue_limit
        )
        self.connections: dict[tuple[str, int], bool] = {}
        # Requests taken in and not yet answered, by message id (to cancel them).
        self.jobs: dict[str, Job] = {}
        # Idempotency key -> (status, or IN_FLIGHT; time the stored result expires).
        self.results: dict[str, tuple[int, float]] = {}
        # Cancels of requests not (or no longer) held, by message id -> when forgotten:
        # a cancel that overtook its request on the network stops it when it arrives, as
        # the connection's close would (TCP keeps a connection's bytes in order).
        self.cancelled: dict[str, float] = {}
        self._tokens = float(self.settings.burst)
        self._refilled = 0.0
        self.admit: Admit | None = None

    # -- connections ------------------------------------------------------------------

    def on_control(self, msg: Message) -> None:
        """Answer the client's handshake steps; a cancel stops work on a request."""
        answer = HANDSHAKE.answer(msg.type)
        if answer is not None:
            if msg.type == SYN:
                self.connections[(msg.src, msg.body)] = True
            elif (msg.src, msg.body) not in self.connections:
                return  # TLS on a connection it never accepted: no answer
            send_control(self.node, msg, answer)
        elif msg.type == CANCEL:
            self.cancel(msg.causation_id, f"{msg.src} cancelled it")

    def cancel(self, msg_id: str, why: str) -> None:
        """Stop work on a request: out of the queue, or its worker freed; no answer."""
        job = self.jobs.pop(msg_id, None)
        if job is None or job.cancelled:
            if job is None:
                self._remember_cancel(msg_id)
            return
        job.cancelled = True
        node = self.node
        now = node.now()
        node.journal.span_end(job.span, "cancelled", now, why, wait=job.waited(now))
        self.pool.withdraw(job)
        key = job.msg.idempotency_key
        if key:
            self.results.pop(key, None)
        if job.on_cancel is not None:
            job.on_cancel()

    # -- requests ---------------------------------------------------------------------

    def on_request(self, msg: Message) -> None:
        """Admit a request to the pool, or answer it at once (reset, 429, 409, replay, 503)."""
        node = self.node
        body: HttpRequest = msg.body
        if (msg.src, body.conn) not in self.connections:
            send_control(node, msg, RST)
            return
        now = node.now()
        # server_span(), inline: once per request.
        deadline = msg.deadline
        span = node.journal.span_start(
            msg.type, "server", node.id, msg.src, PROTOCOL, now, msg.span, msg.correlation_id,
            deadline if deadline != math.inf else math.nan,
        )  # fmt: skip
        settings = self.settings
        if self.cancelled and msg.msg_id in self.cancelled:
            # Its caller cancelled it before it arrived: no work, and no answer.
            node.journal.span_end(
                span, "cancelled", now, f"{msg.src} cancelled it before it arrived"
            )
            return
        if settings.rate_limit is not None and not self._admit(now):
            wait = (1.0 - self._tokens) / settings.rate_limit
            self._refuse(msg, span, 429, "rate limited", wait)
            return
        key = msg.idempotency_key or (msg.msg_id if settings.dedupe else "")
        if key:
            stored = self.results.get(key)
            if stored is not None and stored[1] > now:
                if stored[0] == IN_FLIGHT:
                    self._refuse(msg, span, 409, "the original request is still in flight")
                else:
                    self._replay(msg, span, stored[0])
                return
        data = None
        if self.admit is not None:
            status, why, retry_after, data = self.admit(msg, span, now)
            if status:
                self._refuse(msg, span, status, why, retry_after)
                return
        job = Job(self, msg, span, now, data)
        if not self.pool.submit(job):
            self._refuse(msg, span, 503, "accept queue full", self.settings.retry_after)
            return
        if not job.cancelled:
            self.jobs[msg.msg_id] = job
        if key:
            self.results[key] = (IN_FLIGHT, now + self.settings.idempotency_ttl)

    def begin(self, job: Job) -> None:
        """A worker took the job: drop it if its deadline passed (when set), else handle."""
        settings = self.settings
        if settings.drop_expired and job.msg.deadline <= self.node.now() + settings.drop_margin:
            self.finish(job, 504, "deadline exceeded before work began", "deadline_exceeded")
            return
        self._handler(job)

    def reply(self, job: Job, status: int, error: str = "") -> None:
        """Finish a job the handler ran: record its effect, store its result, answer."""
        if job.cancelled:
            return  # the caller cancelled it: nobody waits for the answer
        node = self.node
        msg = job.msg
        key = msg.idempotency_key or msg.msg_id
        node.journal.effect(node.now(), node.id, key, msg.msg_id, msg.correlation_id)
        self.finish(job, status, error)

    def finish(self, job: Job, status: int, error: str = "", outcome: str = "") -> None:
        """Close the job's span, store its result for its key, answer, free the worker."""
        node = self.node
        now = node.now()
        # end_span() and status_outcome(), inline: once per request.
        if 200 <= status < 300:
            judged = "ok"
        else:
            judged, error = "error", error or f"HTTP {status}"
        span = job.span
        wait = job.started - job.arrived
        node.journal.span_end(span, outcome or judged, now, error, wait, None, status)
        msg = job.msg
        self.jobs.pop(msg.msg_id, None)
        settings = self.settings
        key = msg.idempotency_key or (msg.msg_id if settings.dedupe else "")
        if key:
            self.results[key] = (status, now + settings.idempotency_ttl)
        # send_response(), inline.
        node.transport.send(node.answer(msg, HttpResponse(status, 0.0), RESPONSE_BYTES, span))
        self.pool.done(job)

    def _remember_cancel(self, msg_id: str) -> None:
        """Keep a cancel for a request not held (overtaken, or answered already) a while."""
        now = self.node.now()
        cancelled = self.cancelled
        if len(cancelled) >= CANCELS_KEPT:
            for key in [k for k, until in cancelled.items() if until <= now]:
                del cancelled[key]
        cancelled[msg_id] = now + CANCEL_TTL

    def _admit(self, now: float) -> bool:
        rate, burst = self.settings.rate_limit or math.inf, self.settings.burst
        self._tokens = min(burst, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def _refuse(
        self, msg: Message, span: int, status: int, why: str, retry_after: float = 0.0
    ) -> None:
        now = self.node.now()
        self.node.journal.span_end(span, "rejected", now, error=why, status=status)
        send_response(self.node, msg, status, span, retry_after)

    def _replay(self, msg: Message, span: int, status: int) -> None:
        now = self.node.now()
        outcome, _ = status_outcome(status)
        self.node.journal.span_end(span, outcome, now, error="replayed", status=status)
        send_response(self.node, msg, status, span)

    def reset(self) -> None:
        """A crash: the requests held are lost, connections and stored results forgotten."""
        self.pool.crash(owner=self)
        self.connections.clear()
        self.results.clear()
        self.cancelled.clear()
        self.jobs.clear()
        self._tokens = float(self.settings.burst)
