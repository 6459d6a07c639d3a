"""What an application holds to talk over a WebSocket: a channel.

A channel is a client's session (`protocols.websocket_session.WsSession`, which outlives
its connections) or a server's side of one connection (`WsConn`). Both send and receive
the same way:

- `send(...)` puts a data message in the outbox and returns an event that fires with True
  once it is on the wire (the window allowing), or False when it cannot be sent (closed,
  or disconnected under `when_disconnected="fail"`, or the buffer is full). It never
  fails the event: a SimPy failure nobody waits on would stop the run.
- `recv()` returns an event with the next data message that no handler took, or None
  once the channel has closed for good: the `websockets` `recv()` loop.

A message is consumed when the application takes it (`recv`, or a handler on arrival):
that is what frees the sender's window (see `protocols.websocket_stream`).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import simpy

from protocols.transport import Message
from protocols.websocket_settings import PROTOCOL

if TYPE_CHECKING:
    from protocols.websocket import WebSocketEndpoint
    from protocols.websocket_stream import Stream

# The states of a connection (RFC 6455 section 4 and 7).
CONNECTING, OPEN, CLOSING, CLOSED = "connecting", "open", "closing", "closed"
# Marks an outbox entry that carries a call's request (not an application send).
CALL: Any = object()


class Channel:
    """What an application talks to: a client's session, or a server's connection.

    `send` returns an event that fires with True once the message is on the wire, or
    False if it cannot be sent; `recv` an event with the next message nobody handled
    (None once the channel is closed for good).
    """

    def __init__(self, endpoint: WebSocketEndpoint, peer: str) -> None:
        self.ep = endpoint
        self.node = endpoint.node
        self.settings = endpoint.settings
        self.peer = peer
        # Messages waiting for the connection or its window: (message, waiter).
        self.outbox: deque[tuple[Message, Any]] = deque()
        # Messages received and not yet consumed, with the connection that brought them.
        self.inbox: deque[tuple[Message, Stream]] = deque()
        self.waiters: deque[simpy.Event] = deque()

    @property
    def span(self) -> int:
        """The span the channel's messages belong to."""
        return -1

    @property
    def finished(self) -> bool:
        """Whether nothing more will arrive."""
        return False

    def send(
        self,
        type_: str,
        body: Any = None,
        size_bytes: int = 256,
        correlation_id: str = "",
        causation_id: str = "",
        kind: str = "event",
        span: int = -1,
    ) -> simpy.Event:
        """Send a data message to the peer; the event fires with True once on the wire."""
        node = self.node
        app = Message(
            msg_id=node.new_id(),
            type=type_,
            src=node.id,
            dst=self.peer,
            kind=kind,
            protocol=PROTOCOL,
            version=node.version,
            correlation_id=correlation_id,
            causation_id=causation_id,
            span=self.span if span < 0 else span,
            size_bytes=size_bytes,
            body=body,
        )
        event = node.env.event()
        self.enqueue(app, event)
        return event

    def enqueue(self, app: Message, waiter: Any) -> None:
        """Queue a message for the wire (each kind of channel decides how)."""
        raise NotImplementedError

    def recv(self) -> simpy.Event:
        """The next message that no handler took (None once the channel has closed)."""
        event = self.node.env.event()
        if self.inbox:
            event.succeed(self._take())
        elif self.finished:
            event.succeed(None)
        else:
            self.waiters.append(event)
        return event

    def _take(self) -> Message:
        app, conn = self.inbox.popleft()
        conn.consumed_one()
        return app

    def arrived(self, conn: Stream, app: Message) -> None:
        """A data message for the application: to a waiting `recv`, or to the queue."""
        if self.waiters:
            conn.consumed_one()
            self.waiters.popleft().succeed(app)
            return
        self.inbox.append((app, conn))
        if conn.received - conn.consumed >= self.settings.max_queue:
            conn.reading_paused = True

    def refuse(self, app: Message, waiter: Any, why: str) -> None:
        """A message that will not be sent: its sender is told, its call ends in error."""
        if waiter is CALL:
            call = self.ep.pending.get(app.msg_id)
            if call is not None:
                call.end(("error", 0, why))
        elif waiter is not None:
            waiter.succeed(False)

    def refuse_all(self, why: str) -> None:
        """Refuse everything in the outbox."""
        items = list(self.outbox)
        self.outbox.clear()  # cleared in place: a client's connections share it
        for app, waiter in items:
            self.refuse(app, waiter, why)

    def release_waiters(self) -> None:
        """Closed for good: every pending `recv` gets None."""
        while self.waiters and not self.inbox:
            self.waiters.popleft().succeed(None)
