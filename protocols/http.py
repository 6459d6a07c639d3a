"""HTTP request-response: a client that blocks on each call, a server with workers.

The caller waits until a response, its timeout, or a refused connection. The server
puts each request in a worker pool with a bounded accept queue and answers 503 when the
queue is full. A call ends exactly once, whichever comes first; a late response is
delivered (it is on the wire) and ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from protocols.call import Call, CallResult, abort_all, status_result
from protocols.node import Node
from protocols.transport import Message
from protocols.workers import Job, WorkerPool

PROTOCOL = "http"
RESPONSE_BYTES = 256


class HttpClient:
    """The calling side: sends requests and matches responses to the calls waiting."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.pending: dict[str, Call] = {}

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
    ) -> Call:
        """Send a request; the Call ends on its response, its timeout or a refusal.

        `on_done` is told the result; code in a process yields `call.wait()` instead.
        """
        node = self.node
        now = node.env.now
        deadline = now + timeout if timeout is not None else math.nan
        span = node.journal.span_start(
            type_, "client", node.id, dst, PROTOCOL, now, parent, correlation_id, deadline
        )
        msg = Message(
            msg_id=node.new_id(),
            type=type_,
            src=node.id,
            dst=dst,
            kind="request",
            protocol=PROTOCOL,
            version=node.version,
            correlation_id=correlation_id,
            causation_id=causation_id,
            span=span,
            size_bytes=size_bytes,
            body=body,
        )
        call = Call(self, msg.msg_id, span, timeout, on_done)
        node.send(msg)
        return call

    def on_response(self, msg: Message) -> None:
        """A response arrived: end the call it answers (a late or duplicate one is ignored)."""
        call = self.pending.get(msg.causation_id)
        if call is not None:
            call.end(status_result(int(msg.body)))

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A request was refused: its call fails now."""
        if msg.kind == "request":
            call = self.pending.get(msg.msg_id)
            if call is not None:
                call.end(("error", 0, f"{msg.dst} refused the connection ({outcome})"))

    def reset(self) -> None:
        """The caller crashed: every call in flight ends in error, and nobody is told."""
        abort_all(self)


def send_response(node: Node, request: Message, status: int, span: int) -> None:
    """Send the response to `request` from `node`, with an HTTP status."""
    node.send(
        Message(
            msg_id=node.new_id(),
            type=request.type,
            src=node.id,
            dst=request.src,
            kind="response",
            protocol=PROTOCOL,
            version=node.version,
            correlation_id=request.correlation_id,
            causation_id=request.msg_id,
            span=span,
            attempt=request.attempt,
            size_bytes=RESPONSE_BYTES,
            body=status,
        )
    )


class HttpServer:
    """The serving side: a worker pool with a bounded accept queue.

    `handler(job)` runs when a worker takes a request; it ends with `job.reply(status)`.
    """

    def __init__(
        self,
        node: Node,
        workers: int,
        handler: Callable[[Job], None],
        queue_limit: int | None = None,
    ) -> None:
        self.node = node
        self.pool = WorkerPool(node, workers, handler, queue_limit)

    def on_request(self, msg: Message) -> None:
        """Admit a request to the pool, or answer 503 when its queue is full."""
        node = self.node
        now = node.env.now
        span = node.journal.span_start(
            msg.type, "server", node.id, msg.src, PROTOCOL, now, msg.span, msg.correlation_id
        )
        if not self.pool.submit(Job(self, msg, span, now)):
            node.journal.span_end(span, "rejected", now, error="accept queue full", status=503)
            send_response(node, msg, 503, span)

    def reply(self, job: Job, status: int, error: str = "") -> None:
        """Finish a job: close its span, answer the caller, free the worker."""
        node = self.node
        outcome = "ok" if 200 <= status < 300 else "error"
        if not error and outcome == "error":
            error = f"HTTP {status}"
        node.journal.span_end(job.span, outcome, node.env.now, error, wait=job.wait, status=status)
        send_response(node, job.msg, status, job.span)
        self.pool.done(job)

    def reset(self) -> None:
        """The server crashed: the requests it held are lost, their spans end in error."""
        node = self.node
        now = node.env.now
        for job in self.pool.drain():
            why = "crashed while queued" if math.isnan(job.started) else "crashed while serving"
            node.journal.span_end(job.span, "error", now, error=why)


class HttpEndpoint:
    """HTTP on one node: a client always, a server when the agent serves."""

    def __init__(self, node: Node, server: HttpServer | None = None) -> None:
        self.node = node
        self.client = HttpClient(node)
        self.server = server
        node.register(PROTOCOL, self)

    def on_message(self, msg: Message) -> None:
        """Route a request to the server and a response to the client."""
        if msg.kind == "response":
            self.client.on_response(msg)
        elif msg.kind == "request":
            if self.server is not None:
                self.server.on_request(msg)
            else:
                # Nothing listens here: the caller gets a 404 from the host.
                send_response(self.node, msg, 404, -1)

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A request of ours was refused."""
        self.client.on_bounce(msg, outcome)

    def reset(self) -> None:
        """The node crashed."""
        self.client.reset()
        if self.server is not None:
            self.server.reset()
