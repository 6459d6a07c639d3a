"""An HTTP client's connections to one callee: reuse, the wait for one, the pool timeout.

As httpx's pool over HTTP/1.1: one request per connection at a time; a free keep-alive
connection is reused (the most recently used first) unless idle past
`keepalive_expiry`; with `max_connections` busy a call waits in FIFO order for one, up
to `pool_timeout`, then is `rejected` without touching the wire. The pool decides; the
client it serves (a `Dialer`) opens the connections and sends on them.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from protocols.call import Call
from protocols.handshake import Opening
from protocols.http.settings import HttpClientSettings
from protocols.http.wire import HANDSHAKE
from protocols.node import Node
from protocols.transport import Message


class Dialer(Protocol):
    """The client a pool serves: it opens connections and sends requests on them."""

    node: Node

    def connect(self, pool: Pool, ex: Exchange) -> None:
        """Open a new connection to the pool's callee for `ex`."""
        ...

    def send_on(self, conn: Connection, ex: Exchange) -> None:
        """Send the exchange's request on an open connection."""
        ...

    def forget(self, ex: Exchange) -> None:
        """Drop the bookkeeping of an exchange whose call has ended."""
        ...

    def closed(self, conn: Connection) -> None:
        """A connection of the pool has closed."""
        ...


class Exchange:
    """A call and the request it sends, while it looks for a connection."""

    __slots__ = ("call", "msg", "queued_at", "read_timeout", "sent", "settings", "waiting")

    # The absolute deadline travels on the request message (msg.deadline): the client
    # ends the call when it passes before the request could be sent.

    def __init__(
        self, call: Call, msg: Message, settings: HttpClientSettings, read_timeout: float | None
    ) -> None:
        self.call = call
        self.msg = msg
        self.settings = settings
        self.read_timeout = read_timeout
        self.queued_at: float | None = None
        self.waiting = False
        self.sent = False


class Connection:
    """One TCP (+TLS) connection from the client to a callee."""

    __slots__ = ("exchange", "id", "idle_since", "opening", "pool", "rto", "state")

    def __init__(self, conn_id: int, pool: Pool) -> None:
        self.id = conn_id
        self.pool = pool
        self.state = "connecting"  # connecting -> busy <-> idle -> closed
        self.opening = Opening(HANDSHAKE, pool.settings.tls)
        self.rto = pool.settings.syn_rto
        self.idle_since = 0.0
        self.exchange: Exchange | None = None


class Pool:
    """The connections from this client to one callee."""

    def __init__(self, client: Dialer, dst: str, settings: HttpClientSettings) -> None:
        self.client = client
        self.dst = dst
        self.settings = settings
        self.open = 0
        self.idle: list[Connection] = []
        self.waiting: deque[Exchange] = deque()

    def acquire(self, ex: Exchange) -> None:
        """Give the exchange a connection now, open one, or queue it for one."""
        conn = self.fresh_idle() if self.idle else None
        if conn is not None:
            self.client.send_on(conn, ex)
        elif self.open < self.settings.max_connections:
            self.client.connect(self, ex)
        else:
            node = self.client.node
            ex.waiting = True
            ex.queued_at = node.now()
            self.waiting.append(ex)
            node.after(self.settings.pool_timeout, lambda: self._pool_timeout(ex))

    def release(self, conn: Connection) -> None:
        """A response came back: the connection serves the next waiter or goes idle."""
        conn.exchange = None
        while self.waiting:
            ex = self.waiting.popleft()
            ex.waiting = False
            if ex.call.result is None:
                self.client.send_on(conn, ex)
                return
        if len(self.idle) < self.settings.max_keepalive:
            conn.state = "idle"
            conn.idle_since = self.client.node.now()
            self.idle.append(conn)
        else:
            self.discard(conn)

    def discard(self, conn: Connection) -> None:
        """Close a connection; a waiting call may open a new one in its place."""
        if conn.state == "closed":
            return
        if conn.state == "idle":
            self.idle.remove(conn)
        conn.state = "closed"
        conn.exchange = None
        self.open -= 1
        self.client.closed(conn)
        while self.waiting and self.open < self.settings.max_connections:
            ex = self.waiting.popleft()
            ex.waiting = False
            if ex.call.result is None:
                self.client.connect(self, ex)

    def fresh_idle(self) -> Connection | None:
        """The most recently used idle connection still within its keep-alive, if any
        (those past it are closed on the way)."""
        now = self.client.node.now()
        expiry = self.settings.keepalive_expiry
        while self.idle:
            conn = self.idle.pop()  # the most recently used: it is the least likely stale
            if now - conn.idle_since <= expiry:
                return conn
            conn.state = "busy"  # so that discard does not look for it in `idle`
            self.discard(conn)
        return None

    def _pool_timeout(self, ex: Exchange) -> None:
        if not ex.waiting or ex.call.result is not None:
            return
        self.waiting.remove(ex)
        ex.waiting = False
        waited = self.client.node.now() - (ex.queued_at or 0.0)
        self.client.forget(ex)
        ex.call.queued = waited
        ex.call.end(("rejected", 0, f"no free connection within {waited:g} s (pool timeout)"))
