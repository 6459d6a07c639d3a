"""What an application holds to talk over a WebSocket: a channel.

A channel is a client's session (`session.WsSession`, which outlives its connections)
or a server's side of one connection (`connection.WsConn`). Both send and receive the
same way:

- `send(...)` puts a data message in the outbox and returns an event that fires with True
  once it is on the wire (the window allowing), or False when it cannot be sent (closed,
  or disconnected under `when_disconnected="fail"`, or the buffer is full). It never
  fails the event: a SimPy failure nobody waits on would stop the run.
- `recv()` returns an event with the next data message that no handler took, or None
  once the channel has closed for good: the `websockets` `recv()` loop.

A message is consumed when the application takes it (`recv`, or a handler on arrival):
that is what frees the sender's window (see `stream`). A call's request waits in the
outbox like any message, with its `Call` as its waiter: it ends in error if the request
cannot be sent, and is not sent once the call has ended.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

import simpy

from protocols.call import Call
from protocols.node import Node
from protocols.transport import Message
from protocols.websocket.settings import WebSocketSettings
from protocols.websocket.wire import PROTOCOL

# Who waits on a message in the outbox: a `send`'s event, a request's call, or nobody.
Waiter = simpy.Event | Call | None


class Reader(Protocol):
    """The stream a received message came on: told when it is queued and consumed."""

    def queued(self) -> None:
        """The message waits unread in the channel."""
        ...

    def consumed_one(self) -> None:
        """The application took the message."""
        ...


class Channel:
    """What an application talks to: a client's session, or a server's connection.

    `send` returns an event that fires with True once the message is on the wire, or
    False if it cannot be sent; `recv` an event with the next message nobody handled
    (None once the channel is closed for good).
    """

    def __init__(self, node: Node, settings: WebSocketSettings, peer: str) -> None:
        self.node = node
        self.settings = settings
        self.peer = peer
        # Messages waiting for the connection or its window: (message, waiter).
        self.outbox: deque[tuple[Message, Waiter]] = deque()
        # Messages received and not yet consumed, with the stream that brought them.
        self.inbox: deque[tuple[Message, Reader]] = deque()
        self.waiters: deque[simpy.Event] = deque()
        # Requests sent on the current connection and not yet answered, by message id.
        self.inflight: dict[str, tuple[Message, Call]] = {}

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

    def enqueue(self, app: Message, waiter: Waiter) -> None:
        """Queue a message for the wire (each kind of channel decides how)."""
        raise NotImplementedError

    def next_to_send(self) -> tuple[Message, simpy.Event | None] | None:
        """Take the next message worth sending from the outbox, with the event to tell once
        it is on the wire (None: nobody); None when the outbox holds nothing to send.

        A request whose call has ended is dropped; one that goes is kept in `inflight`.
        """
        outbox = self.outbox
        while outbox:
            app, waiter = outbox.popleft()
            if isinstance(waiter, Call):
                if waiter.result is not None:
                    continue  # the call ended while its request waited: do not send it
                self.inflight[app.msg_id] = (app, waiter)
                return app, None
            return app, waiter
        return None

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
        app, reader = self.inbox.popleft()
        reader.consumed_one()
        return app

    def arrived(self, reader: Reader, app: Message) -> None:
        """A data message for the application: to a waiting `recv`, or to the queue."""
        if self.waiters:
            reader.consumed_one()
            self.waiters.popleft().succeed(app)
            return
        self.inbox.append((app, reader))
        reader.queued()

    def refuse(self, app: Message, waiter: Waiter, why: str) -> None:
        """A message that will not be sent: its sender is told, its call ends in error."""
        if isinstance(waiter, Call):
            waiter.end(("error", 0, why))
        elif waiter is not None:
            waiter.succeed(False)

    def refuse_all(self, why: str) -> None:
        """Refuse everything in the outbox."""
        items = list(self.outbox)
        self.outbox.clear()
        for app, waiter in items:
            self.refuse(app, waiter, why)

    def release_waiters(self) -> None:
        """Closed for good: every pending `recv` gets None."""
        while self.waiters and not self.inbox:
            self.waiters.popleft().succeed(None)
