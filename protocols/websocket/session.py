"""A client's WebSocket session: one peer, successive connections, reconnection.

It is what `async for ws in websockets.connect(uri)` gives an application, plus the
buffer many clients add (socket.io, reconnecting-websocket):

- After a close that is not a normal one (anything but 1000 from the server, or a close
  the application asked for) the client opens again, unless `reconnect` is off.
- A connection that had opened is reopened at once: websockets resets its backoff after
  every successful open (`connect.__aiter__`: `delays = None` in its `else` branch).
  Each failed open (timeout, refused, reset) waits the next delay of
  `websockets.client.backoff`: uniform in [0, 5] s, then 3.1 s x 1.618^n, then 90 s.
  `delays` keeps every delay chosen, for tests and for the trace's reader.
- While disconnected, sends wait in the outbox up to `send_buffer` messages (then they
  are refused), or, with `when_disconnected="fail"`, are refused at once, as the
  library's `send()` raises ConnectionClosed. During the very first open they always
  wait: an application awaits `connect()` before it sends.
- A call's request on the wire when the connection dropped cannot be answered on it: it
  goes again, first, on the next connection (attempt + 1); under "fail" the call fails,
  and after the server's 1009 (message too big) too, as it would only be refused again.
  Other data messages on the wire then are lost, and counted in `lost`.

The session owns its connections (each reports to it); it knows its endpoint only as a
`SessionOwner`, which routes the connections' frames and their data messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from protocols.call import Call
from protocols.node import Node
from protocols.transport import Message
from protocols.websocket.channel import Channel, Waiter
from protocols.websocket.connection import WsConn
from protocols.websocket.settings import WebSocketSettings, backoff
from protocols.websocket.wire import (
    CONNECTING,
    NORMAL,
    OPEN,
    PROTOCOL,
    TOO_BIG,
    check_code,
    describe,
)

# A request on the wire: the message and its call.
Request = tuple[Message, Call]


class SessionOwner(Protocol):
    """The endpoint a session lives on: it routes frames to connections by their id."""

    node: Node
    settings: WebSocketSettings

    def add_conn(self, conn: WsConn) -> None:
        """Route the frames of `conn` to it from now on."""
        ...

    def drop_conn(self, conn: WsConn) -> None:
        """`conn` has closed: stop routing its frames."""
        ...

    def on_data(self, conn: WsConn, app: Message) -> None:
        """A data message arrived on `conn` (a response, a request, or the application's)."""
        ...

    def drop_session(self, session: WsSession) -> None:
        """`session` has closed for good: the next connect to its peer makes a new one."""
        ...


class WsSession(Channel):
    """A client's connection to one server, across reconnects.

    `delays` lists every reconnect delay chosen (0 after a connection that had opened);
    `attempts` counts opens tried and `opens` those that succeeded; `lost` counts data
    messages on the wire when a connection dropped (TCP gives no delivery guarantee).
    """

    def __init__(self, owner: SessionOwner, dst: str, parent: int = -1) -> None:
        super().__init__(owner.node, owner.settings, dst)
        self.owner = owner
        self.parent = parent
        self.conn: WsConn | None = None
        self.delays: list[float] = []
        self.attempts = 0
        self.opens = 0
        self.lost = 0
        self.closed = False
        self.disconnected = False
        self._by_app = False
        self._backoff: Iterator[float] | None = None
        self._rng = self.node.stream(f"websocket:{self.node.id}->{dst}")
        self.on_open: list[Callable[[WsSession], None]] = []
        self.on_close: list[Callable[[WsSession, WsConn], None]] = []

    @property
    def span(self) -> int:
        """The current connection's span."""
        return self.conn.span if self.conn is not None else -1

    @property
    def open(self) -> bool:
        """Whether a connection is open now."""
        return self.conn is not None and self.conn.state is OPEN

    @property
    def finished(self) -> bool:
        """Whether the session has closed for good."""
        return self.closed

    def start(self) -> None:
        """Open the first connection."""
        self._open()

    def _open(self) -> None:
        if self.closed:
            return
        node = self.node
        self.attempts += 1
        span = node.journal.span_start(
            "ws.connection", "client", node.id, self.peer, PROTOCOL, node.env.now, self.parent
        )
        conn = WsConn(
            self,
            node,
            self.settings,
            f"ws-{node.new_id()}",
            self.peer,
            "client",
            span,
            self,
            self.attempts,
        )
        self.conn = conn
        self.owner.add_conn(conn)
        conn.connect()

    def enqueue(self, app: Message, waiter: Waiter) -> None:
        """Send now if open; else hold it in the bounded buffer, or refuse it."""
        if self.closed:
            self.refuse(app, waiter, f"connection to {self.peer} closed")
            return
        conn = self.conn
        if conn is not None and conn.state is OPEN:
            self.outbox.append((app, waiter))
            conn.pump()
            return
        s = self.settings
        if self.disconnected and s.when_disconnected == "fail":
            self.refuse(app, waiter, f"not connected to {self.peer}")
        elif len(self.outbox) >= s.send_buffer:
            self.refuse(app, waiter, f"send buffer to {self.peer} full ({s.send_buffer})")
        else:
            self.outbox.append((app, waiter))

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Close for good: the closing handshake, and no reconnect."""
        check_code(code)
        if self.closed:
            return
        self._by_app = True
        conn = self.conn
        if conn is not None and conn.state in (CONNECTING, OPEN):
            conn.close(code, reason)
        elif conn is None:
            self._give_up(f"closed by {self.node.id}")

    # -- what its connections tell it ---------------------------------------------------

    def conn_opened(self, conn: WsConn) -> None:
        """A connection of this session opened: the backoff starts over."""
        self.opens += 1
        self._backoff = None
        self.disconnected = False
        for hook in self.on_open:
            hook(self)

    def on_data(self, conn: WsConn, app: Message) -> None:
        """A data message arrived on a connection of this session: the endpoint's to route."""
        self.owner.on_data(conn, app)

    def conn_closed(self, conn: WsConn) -> None:
        """A connection of this session closed: reconnect, or close for good."""
        self.owner.drop_conn(conn)
        if conn is not self.conn:
            return
        self.conn = None
        s = self.settings
        # The requests on the wire whose calls still wait.
        requests = [r for r in self.inflight.values() if r[1].result is None]
        self.inflight.clear()
        self.lost += sum(1 for m in conn.tcp.unacked if m.kind == "event")
        why = f"connection to {self.peer} closed ({conn.code})"
        peer_done = not conn.initiated and conn.close_rcvd == NORMAL
        if self._by_app or peer_done or not s.reconnect:
            for m, call in requests:
                self.refuse(m, call, why)
            self._give_up(why)
        else:
            self.disconnected = True
            if not conn.initiated and conn.close_rcvd == TOO_BIG:
                requests = self._too_big(requests, describe(TOO_BIG, conn.close_reason))
            if s.when_disconnected == "fail":
                for m, call in requests:
                    self.refuse(m, call, why)
                self.refuse_all(why)
            else:
                for m, call in reversed(requests):
                    m.attempt += 1
                    self.outbox.appendleft((m, call))
            if conn.opened:
                delay = 0.0  # websockets: a connection that opened is retried at once
            else:
                if self._backoff is None:
                    self._backoff = backoff(s, self._rng)
                delay = next(self._backoff)
            self.delays.append(delay)
            self.node.after(delay, self._open)
        for hook in self.on_close:
            hook(self, conn)

    def _too_big(self, requests: list[Request], why: str) -> list[Request]:
        """After the server's 1009, fail the requests it refused, so none loops for ever.

        The close does not say which message was too big: those over our own max_size
        (the library's default on both sides) are; if none is, every one in flight.
        """
        limit = self.settings.max_size
        big = [r for r in requests if limit is None or r[0].size_bytes > limit] or requests
        for m, call in big:
            self.refuse(m, call, why)
        refused = {m.msg_id for m, _ in big}
        return [r for r in requests if r[0].msg_id not in refused]

    def _give_up(self, why: str) -> None:
        self.closed = True
        self.refuse_all(why)
        self.release_waiters()
        self.owner.drop_session(self)
