"""WebSocket for agents: sessions that reconnect, calls over a connection, a server side.

    ws = WebSocketEndpoint(node, WebSocketSettings(), server=WebSocketServer(node, 4, handler))
    session = ws.connect("critic")        # opens; reopens after an abnormal close
    session.send("draft", body=..., size_bytes=2048)  # an event: True once on the wire
    msg = yield session.recv()            # or ws.handle("draft", fn(channel, msg))
    call = ws.call("svc", "task", "t-1", timeout=5)   # request and reply over the connection

The layers, bottom up: `websocket_settings` (defaults, close codes, frames, backoff),
`websocket_channel` (send / recv as an application sees them), `websocket_stream` (the
TCP under it: ordered, reliable, with a window in messages), `websocket_conn` (opening
handshake, keepalive, closing handshake), `websocket_session` (a client's reconnecting
session). This module is the node's endpoint, which routes messages to connections,
accepts connections, and carries calls:

- **Calls**: a request goes out as a data message and the call ends on the response
  whose causation id is the request's id, on its timeout, or in error when the session
  closes for good. A request on the wire when the connection dropped is sent again on
  the next connection (attempt + 1): the server may do the work twice.
- **Server**: requests go to a worker pool; `job.reply(status)` answers on the
  connection the request came on (if it has closed, the reply is lost).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from protocols.call import Call, CallResult, abort_all, status_result
from protocols.node import Node
from protocols.transport import Message
from protocols.websocket_channel import CALL, CONNECTING, OPEN, Channel
from protocols.websocket_conn import WsConn
from protocols.websocket_session import WsSession
from protocols.websocket_settings import (
    PROTOCOL,
    RESPONSE_BYTES,
    RST,
    SIZES,
    SYN,
    Frame,
    WebSocketSettings,
)
from protocols.workers import Job, WorkerPool

Handler = Callable[[Channel, Message], None]

__all__ = [
    "Channel",
    "WebSocketEndpoint",
    "WebSocketServer",
    "WebSocketSettings",
    "WsConn",
    "WsSession",
]


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
    ) -> None:
        self.node = node
        self.pool = WorkerPool(node, workers, handler, queue_limit)
        self._conns: dict[int, WsConn] = {}

    def on_request(self, conn: WsConn, app: Message) -> None:
        """Admit a request to the pool, or answer 503 when its queue is full."""
        node = self.node
        now = node.env.now
        span = node.journal.span_start(
            app.type, "server", node.id, app.src, PROTOCOL, now, app.span, app.correlation_id
        )
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
        outcome = "ok" if 200 <= status < 300 else "error"
        if not error and outcome == "error":
            error = f"HTTP {status}"
        live = conn is not None and conn.state is OPEN
        if not live:
            outcome, error = "error", f"connection closed before the reply (status {status})"
        node.journal.span_end(job.span, outcome, node.env.now, error, wait=job.wait, status=status)
        if live:
            assert conn is not None
            respond(conn, job.msg, status, job.span)
        self.pool.done(job)

    def reset(self) -> None:
        """The server crashed: the requests it held are lost, their spans end in error."""
        node = self.node
        now = node.env.now
        for job in self.pool.drain():
            why = "crashed while queued" if math.isnan(job.started) else "crashed while serving"
            node.journal.span_end(job.span, "error", now, error=why)
        self._conns.clear()


class WebSocketEndpoint:
    """WebSocket on one node: client sessions, accepted connections, calls, a server.

    `accept=False` refuses incoming connections (a reset answers the SYN). `handle(type_,
    fn)` routes data messages of a type to `fn(channel, msg)`, consumed on arrival;
    others wait in the channel for `recv()`. `on_accept` hooks see each connection a
    client opens here; `on_reset` hooks run when the node crashes.
    """

    def __init__(
        self,
        node: Node,
        settings: WebSocketSettings | None = None,
        server: WebSocketServer | None = None,
        accept: bool = True,
    ) -> None:
        self.node = node
        self.settings = settings or WebSocketSettings()
        self.server = server
        self.accept = accept
        self.sessions: dict[str, WsSession] = {}
        self.conns: dict[str, WsConn] = {}
        self.pending: dict[str, Call] = {}
        self.handlers: dict[str, Handler] = {}
        self.on_accept: list[Callable[[WsConn], None]] = []
        self.on_reset: list[Callable[[], None]] = []
        node.register(PROTOCOL, self)

    # -- the application's side -------------------------------------------------------

    def connect(self, dst: str, parent: int = -1) -> WsSession:
        """The session to `dst`: the live one, or a new one that starts opening."""
        session = self.sessions.get(dst)
        if session is None:
            if dst == self.node.id:
                raise ValueError(f"{dst} cannot open a WebSocket to itself")
            session = self.sessions[dst] = WsSession(self, dst, parent)
            session.start()
        return session

    def channel(self, peer: str) -> Channel:
        """A way to talk to `peer`: our session to it, its open connection here, or a new one."""
        session = self.sessions.get(peer)
        if session is not None:
            return session
        for conn in reversed(self.conns.values()):
            if not conn.client and conn.peer == peer and conn.state is OPEN:
                return conn
        return self.connect(peer)

    def handle(self, type_: str, handler: Handler) -> None:
        """Hand data messages of `type_` to `handler(channel, msg)` as they arrive."""
        self.handlers[type_] = handler

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
        """Send a request over the connection to `dst` (opened or reused); see the module.

        The Call ends on the response, its timeout, or when the session closes for good
        (or drops, under `when_disconnected="fail"`); a refusal may end it before return.
        """
        node = self.node
        now = node.env.now
        deadline = now + timeout if timeout is not None else math.nan
        span = node.journal.span_start(
            type_, "client", node.id, dst, PROTOCOL, now, parent, correlation_id, deadline
        )
        app = Message(
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
        session = self.connect(dst)
        key, inflight = app.msg_id, session.inflight

        def done(result: CallResult) -> None:
            inflight.pop(key, None)
            if on_done is not None:
                on_done(result)

        call = Call(self, key, span, timeout, done)
        session.enqueue(app, CALL)
        return call

    # -- the node's side --------------------------------------------------------------

    def on_message(self, msg: Message) -> None:
        """Route a message to its connection; a SYN opens one; strangers get a reset."""
        frame = msg.body
        conn = self.conns.get(frame.conn)
        if conn is None:
            if msg.type == SYN:
                self._accept(msg)
            elif msg.type != RST and msg.kind != "ack":
                self._reset_peer(msg)
            return
        if msg.type == RST:
            what = "refused" if conn.state is CONNECTING else "reset"
            conn.abort(f"connection {what} by {msg.src}")
            return
        conn.on_frame(msg)

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A message of ours could not be delivered: its connection is gone (1006)."""
        frame = msg.body
        conn = self.conns.get(frame.conn) if isinstance(frame, Frame) else None
        if conn is not None:
            what = "refused" if conn.state is CONNECTING else "reset"
            conn.abort(f"connection {what}: {msg.dst} {outcome}")

    def reset(self) -> None:
        """The node crashed: every connection, session, call and job is gone."""
        for conn in list(self.conns.values()):
            conn.crashed()
        self.conns.clear()
        for session in self.sessions.values():
            session.closed = True
        self.sessions.clear()
        abort_all(self)
        if self.server is not None:
            self.server.reset()
        for hook in self.on_reset:
            hook()

    def _accept(self, msg: Message) -> None:
        if not self.accept:
            self._reset_peer(msg)  # nothing listens: the connection is refused
            return
        conn = WsConn(self, msg.body.conn, msg.src, "server", msg.span)
        self.conns[conn.id] = conn
        conn.accept_timeout()
        conn.on_frame(msg)

    def _reset_peer(self, msg: Message) -> None:
        node = self.node
        conn_id = msg.body.conn
        node.send(
            Message(
                msg_id=node.new_id(),
                type=RST,
                src=node.id,
                dst=msg.src,
                kind="control",
                protocol=PROTOCOL,
                version=node.version,
                correlation_id=conn_id,
                causation_id=msg.msg_id,
                span=msg.span,
                size_bytes=SIZES[RST],
                body=Frame(conn_id),
            )
        )

    # -- what connections tell their endpoint -----------------------------------------

    def conn_opened(self, conn: WsConn) -> None:
        """A connection opened."""
        if conn.session is not None:
            conn.session.opened(conn)
        else:
            for hook in self.on_accept:
                hook(conn)

    def conn_closed(self, conn: WsConn) -> None:
        """A connection closed."""
        self.conns.pop(conn.id, None)
        if conn.session is not None:
            conn.session.ended(conn)
        else:
            conn.refuse_all(f"connection from {conn.peer} closed ({conn.code})")
            conn.release_waiters()

    def on_data(self, conn: WsConn, app: Message) -> None:
        """A data message arrived in order: a response, a request, or the application's."""
        kind = app.kind
        if kind == "response":
            conn.consumed_one()
            call = self.pending.get(app.causation_id)
            if call is not None:
                call.end(status_result(int(app.body)))
        elif kind == "request":
            conn.consumed_one()
            if self.server is None:
                respond(conn, app, 404, -1)  # nothing serves calls here
            else:
                self.server.on_request(conn, app)
        else:
            channel: Channel = conn.session if conn.session is not None else conn
            handler = self.handlers.get(app.type)
            if handler is not None:
                conn.consumed_one()
                handler(channel, app)
            else:
                channel.arrived(conn, app)
