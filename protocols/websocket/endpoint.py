"""WebSocket on one node: client sessions, accepted connections, calls, a server.

The endpoint routes each delivered frame to its connection by the connection's id,
accepts connections (a SYN opens one; a frame for a connection it does not hold is
answered with a reset), and hands each data message that arrives in order to the client
(a response), the server (a request) or the application (a handler for its type, or the
channel's queue for `recv`). It owns the routing tables: sessions and connections
report to it (`add_conn`, `drop_conn`, `drop_session`) rather than write them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocols.call import Call, CallResult
from protocols.node import Node
from protocols.transport import Message
from protocols.websocket.channel import Channel
from protocols.websocket.client import WebSocketClient
from protocols.websocket.connection import WsConn
from protocols.websocket.server import WebSocketServer, respond
from protocols.websocket.session import WsSession
from protocols.websocket.settings import WebSocketSettings
from protocols.websocket.wire import CONNECTING, OPEN, PROTOCOL, RST, SIZES, SYN, Frame

Handler = Callable[[Channel, Message], None]


class WebSocketEndpoint:
    """WebSocket on one node: client sessions, accepted connections, calls, a server.

    `accept=False` refuses incoming connections (a reset answers the SYN). `handle(type_,
    fn)` routes data messages of a type to `fn(channel, msg)`, consumed on arrival;
    `fallback`, when set, takes those of every other type the same way (an application
    that routes by what the message says, not by its type); without it they wait in
    the channel for `recv()`. `on_accept` hooks see each connection a client opens
    here, `on_conn_closed` hooks each of those that closes; `on_reset` hooks run when
    the node crashes.
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
        self.client = WebSocketClient(node, self.connect)
        self.handlers: dict[str, Handler] = {}
        self.fallback: Handler | None = None
        self.on_accept: list[Callable[[WsConn], None]] = []
        self.on_conn_closed: list[Callable[[WsConn], None]] = []
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
        attempt: int = 1,
        idempotency_key: str = "",
        deadline: float | None = None,
    ) -> Call:
        """Call `dst` over the connection to it (see `WebSocketClient.call`)."""
        return self.client.call(
            dst, type_, correlation_id, timeout, parent, size_bytes, body, causation_id,
            on_done, attempt, idempotency_key, deadline,
        )  # fmt: skip

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
        self.client.reset()
        if self.server is not None:
            self.server.reset()
        for hook in self.on_reset:
            hook()

    def _accept(self, msg: Message) -> None:
        if not self.accept:
            self._reset_peer(msg)  # nothing listens: the connection is refused
            return
        conn = WsConn(self, self.node, self.settings, msg.body.conn, msg.src, "server", msg.span)
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

    # -- what connections and sessions tell their endpoint ------------------------------

    def add_conn(self, conn: WsConn) -> None:
        """A session opened a connection: route its frames to it."""
        self.conns[conn.id] = conn

    def drop_conn(self, conn: WsConn) -> None:
        """A connection closed: stop routing its frames."""
        self.conns.pop(conn.id, None)

    def drop_session(self, session: WsSession) -> None:
        """A session closed for good: the next connect to its peer opens a new one."""
        if self.sessions.get(session.peer) is session:
            del self.sessions[session.peer]

    def conn_opened(self, conn: WsConn) -> None:
        """A connection accepted here opened."""
        for hook in self.on_accept:
            hook(conn)

    def conn_closed(self, conn: WsConn) -> None:
        """A connection accepted here closed: what waits on it is refused."""
        self.conns.pop(conn.id, None)
        conn.refuse_all(f"connection from {conn.peer} closed ({conn.code})")
        conn.release_waiters()
        for hook in self.on_conn_closed:
            hook(conn)

    def on_data(self, conn: WsConn, app: Message) -> None:
        """A data message arrived in order: a response, a request, or the application's."""
        kind = app.kind
        tcp = conn.tcp
        if kind == "response":
            tcp.consumed_one()
            self.client.on_response(app)
        elif kind == "request":
            tcp.consumed_one()
            if self.server is None:
                respond(conn, app, 404, -1)  # nothing serves calls here
            else:
                self.server.on_request(conn, app)
        else:
            channel = conn.mailbox
            handler = self.handlers.get(app.type) or self.fallback
            if handler is not None:
                tcp.consumed_one()
                handler(channel, app)
            else:
                channel.arrived(tcp, app)
