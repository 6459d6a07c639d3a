"""The serving side of calls over WebSocket: a worker pool; replies go back on the
connection the request came on (if it has closed by then, the reply is lost)."""

from __future__ import annotations

from collections.abc import Callable

from protocols.node import Node
from protocols.transport import Message
from protocols.websocket.connection import WsConn
from protocols.websocket.wire import OPEN, PROTOCOL, RESPONSE_BYTES
from protocols.workers import Job, WorkerPool, adopted, end_span, server_span


def respond(conn: WsConn, request: Message, status: int, span: int) -> None:
    """Answer `request` on `conn` with an HTTP-like status."""
    reply = conn.node.answer(request, status, RESPONSE_BYTES, span)
    conn.enqueue(reply, None)


class WebSocketServer:
    """The serving side of calls: a worker pool; replies go back on the request's connection.

    `handler(job)` runs when a worker takes a request; it ends with `job.reply(status)`.
    """

    def __init__(
        self,
        node: Node,
        workers: int,
        handler: Callable[[Job], None],
        queue_limit: int | None = None,
        pool: WorkerPool | None = None,
    ) -> None:
        self.node = node
        self.pool = adopted(pool, self, handler) or WorkerPool(node, workers, handler, queue_limit)
        self._conns: dict[int, WsConn] = {}

    def on_request(self, conn: WsConn, app: Message) -> None:
        """Admit a request to the pool, or answer 503 when its queue is full."""
        node = self.node
        now = node.env.now
        span = server_span(node, app, PROTOCOL, now)
        job = Job(self, app, span, now)
        self._conns[id(job)] = conn
        if not self.pool.submit(job):
            self._conns.pop(id(job), None)
            node.journal.span_end(span, "rejected", now, error="accept queue full", status=503)
            respond(conn, app, 503, span)

    def reply(self, job: Job, status: int, error: str = "") -> None:
        """Finish a job: close its span, answer on its connection, free the worker."""
        node = self.node
        conn = self._conns.pop(id(job), None)
        if conn is not None and conn.state is OPEN:
            end_span(node, job, status, error)
            respond(conn, job.msg, status, job.span)
        else:
            lost = f"connection closed before the reply (status {status})"
            end_span(node, job, status, lost, "error")
        self.pool.done(job)

    def reset(self) -> None:
        """The server crashed: the requests it held are lost, their spans end in error."""
        self.pool.crash(owner=self)
        self._conns.clear()
