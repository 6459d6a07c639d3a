"""WebSocket sessions for plugin roles: `ctx.connect` (the side that opens one) and
`on_session` (the side that serves it).

A session is a conversation between two agents over the WebSocket channel that joins
them: either side sends typed messages (`send`) and takes those that arrive, in order
(`receive`), until one side closes it. It runs over the agent's one WebSocket to that
peer (`protocols.websocket`: the handshake, keepalive, TCP's ordering and
retransmission, reconnection), which it shares with the calls and other sessions to
that peer, as several conversations share one socket. Each message it sends is one
data message on the record, carrying its own type and the session's id:

| message          | from    | says                                              |
|------------------|---------|---------------------------------------------------|
| `session.open`   | opener  | open a session (the server runs `on_session`)      |
| `session.accept` | server  | it runs: the opener's `connect` gives the session |
| any other type   | either  | the application's message (`send`)                |
| `session.close`  | either  | the session ended: 200 normally, else why (status) |

    ws = yield ctx.connect("critic")               # CallTimeout, CallFailed if not
    ws.send("draft", {"text": "..."})              # yield it to wait until on the wire
    msg = yield ws.receive(timeout=2.0)            # a SessionMessage; None once closed
    ws.close()

    def on_session(self, ctx, session):            # the serving side: one per session
        while (msg := (yield session.receive())) is not None:
            session.send("review", {"ok": True})

A session lives on one connection: when that connection closes (a crash, a partition
long enough for the keepalive to give up), the session ends with an error on both
sides; the application opens a new one if it wants to go on. Each side has one span
per session (`ws.session`: `client` for the opener, `server` for the other, its child)
whose `attempts` counts the application's messages it sent and received.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import simpy

from protocols.transport import Message
from protocols.websocket import PROTOCOL, Channel, WsConn, WsSession
from sim.agents.api import CallError, CallFailed, CallTimeout, SessionMessage
from sim.agents.plugin_host import Host, Raising

SPAN = "ws.session"
OPEN_TYPE, ACCEPT_TYPE, CLOSE_TYPE = "session.open", "session.accept", "session.close"
CONTROL = (OPEN_TYPE, ACCEPT_TYPE, CLOSE_TYPE)
CONTROL_BYTES = 128
NORMAL = 200


@dataclass(slots=True)
class SessionData:
    """The body of a session's message: its session, the application's data, and, on a
    close, how the session ended (`status` 200 normally, else why: `error`)."""

    session: str
    data: Any = None
    status: int = 0
    error: str = ""


class Session:
    """One side of a session: what `ctx.connect` gives, and what `on_session` serves.

    `peer` is the other agent; `closed` says whether it has ended, `status` and
    `error` how (200: closed normally by either side); `sent` and `received` count the
    application's messages.
    """

    def __init__(
        self,
        desk: SessionDesk,
        channel: Channel,
        peer: str,
        sid: str,
        span: int,
        correlation_id: str,
        causation_id: str,
        client: bool,
    ) -> None:
        self.peer = peer
        self.id = sid
        self.span = span
        self.correlation_id = correlation_id
        self.causation_id = causation_id
        self.client = client
        self.closed = False
        self.status = 0
        self.error = ""
        self.sent = 0
        self.received = 0
        # The connection the session lives on: a server's is the one it was opened
        # over; an opener's, the one its `session.open` went out on.
        self.conn: WsConn | None = channel if isinstance(channel, WsConn) else None
        self._desk = desk
        self._channel = channel
        self._inbox: deque[SessionMessage] = deque()
        self._waiters: deque[Raising] = deque()
        self._opening: Raising | None = None

    @property
    def _env(self) -> simpy.Environment:
        return self._desk.host.ctx.env

    # -- what the application does -----------------------------------------------------

    def send(self, type: str, body: Any = None, size_bytes: int = 256) -> simpy.Event:
        """Send a message of `type` to the peer. The event fires with True once it is on
        the wire, or False if it cannot go (the session or its connection has closed,
        or the send buffer is full); yield it only to wait for that."""
        if not isinstance(type, str) or not type or type in CONTROL:
            raise ValueError(f"send() needs a message type other than {list(CONTROL)}, "
                             f"got {type!r}")  # fmt: skip
        if self.closed or self._opening is not None:
            refused = self._env.event()
            refused.succeed(False)
            return refused
        self.sent += 1
        return self._put(type, SessionData(self.id, body), size_bytes)

    def receive(self, timeout: float | None = None) -> Raising:
        """An event that fires with the next SessionMessage, or None once the session
        has been closed normally; it raises CallTimeout when nothing came within
        `timeout` seconds, and CallFailed when the session ended in error."""
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"receive() needs a timeout >= 0 seconds, got {timeout!r}")
        waiter = Raising(self._env)
        if self._inbox:
            waiter.succeed(self._inbox.popleft())
        elif self.closed:
            waiter.succeed(self._ending())
        else:
            self._waiters.append(waiter)
            if timeout is not None:
                self._desk.host.node.after(timeout, lambda: self._expire(waiter, timeout))
        return waiter

    def close(self) -> None:
        """End the session normally: the peer's `receive` gets None from then on."""
        if not self.closed:
            self._put(CLOSE_TYPE, SessionData(self.id, status=NORMAL), CONTROL_BYTES)
            self._end(NORMAL, "")

    abandon = close

    def fail(self, status: int, error: str) -> None:
        """End the session in error (`on_session` raised: 500): the peer's `receive`
        raises CallFailed with this status and error."""
        if not self.closed:
            body = SessionData(self.id, status=status, error=error)
            self._put(CLOSE_TYPE, body, CONTROL_BYTES)
            self._end(status, error)

    # -- the machinery -----------------------------------------------------------------

    def _put(self, type_: str, body: SessionData, size_bytes: int) -> simpy.Event:
        return self._channel.send(type_, body, size_bytes, self.correlation_id,
                                  self.causation_id, span=self.span)  # fmt: skip

    def _ending(self) -> CallError | None:
        if self.status == NORMAL:
            return None
        return CallFailed(self.peer, "error", self.status, self.error)

    def _expire(self, waiter: Raising, timeout: float) -> None:
        if waiter.triggered:
            return
        self._waiters.remove(waiter)
        waiter.succeed(CallTimeout(self.peer, "timeout", 0, f"no message within {timeout:g} s"))

    def _arrived(self, app: Message) -> None:
        self.received += 1
        body: SessionData = app.body
        message = SessionMessage(app.type, body.data, app.src, app.msg_id)
        if self._waiters:
            self._waiters.popleft().succeed(message)
        else:
            self._inbox.append(message)

    def _end(self, status: int, error: str, outcome: str = "", wake: bool = True) -> None:
        """The session ended (`status` 200: normally): its span, its waiters."""
        if self.closed:
            return
        self.closed = True
        self.status, self.error = status, error
        self._desk.sessions.pop(self.id, None)
        node = self._desk.host.node
        outcome = outcome or ("ok" if status == NORMAL else "error")
        node.journal.span_end(self.span, outcome, node.env.now, error=error,
                              attempts=self.sent + self.received, status=status)  # fmt: skip
        if not wake:
            return
        opening, self._opening = self._opening, None
        if opening is not None:
            failure: CallError = (
                CallTimeout(self.peer, outcome, status, error)
                if outcome == "timeout"
                else CallFailed(self.peer, "error", status, error)
            )
            opening.succeed(failure)
        end = self._ending()
        while self._waiters:
            self._waiters.popleft().succeed(end)


class SessionDesk:
    """An agent's sessions, both sides: opens them, routes their messages, ends them.

    `serve(session)` runs the role's `on_session` for a session a peer opened (False:
    the role has none, and the session is refused with 501).
    """

    def __init__(self, host: Host, serve: Callable[[Session], bool]) -> None:
        self.host = host
        self.serve = serve
        self.sessions: dict[str, Session] = {}
        self._ids = itertools.count(1)
        endpoint = host.endpoints.websocket
        if endpoint is not None:
            endpoint.fallback = self._on_message
            endpoint.on_conn_closed.append(self._conn_closed)
            endpoint.on_reset.append(self._crashed)

    def connect(
        self, dst: str, lineage: tuple[int, str, str, float], timeout: float | None
    ) -> Raising:
        """Open a session to `dst`: an event that fires with the Session once the peer
        runs it, or raises CallTimeout (nothing within `timeout`: the channel's, capped
        by the request's deadline) or CallFailed (refused, or the connection closed)."""
        host = self.host
        host.check_protocol(dst, None)
        protocol = host.channel(dst).protocol
        endpoint = host.endpoints.websocket
        if protocol != "websocket" or endpoint is None:
            raise ValueError(
                f"connect() needs a WebSocket channel, and the channel from {host.id} to "
                f"{dst} is {protocol}; set `protocol: websocket` on it"
            )
        if timeout is not None and not timeout > 0:
            raise ValueError(f"connect() needs a timeout > 0 seconds, got {timeout!r}")
        parent, cid, cause, deadline = lineage
        node = host.node
        now = node.env.now
        if timeout is None:
            timeout = host.channel(dst).timeout
        if math.isfinite(deadline):
            timeout = min(timeout, deadline - now) if timeout is not None else deadline - now
        ws = endpoint.connect(dst)
        if self._ws_closed not in ws.on_close:
            ws.on_close.append(self._ws_closed)
        sid = f"{host.id}/s{next(self._ids)}"
        span = node.journal.span_start(SPAN, "client", host.id, dst, PROTOCOL, now, parent, cid)
        session = Session(self, ws, dst, sid, span, cid, cause, client=True)
        opening = session._opening = Raising(node.env)
        self.sessions[sid] = session

        def on_wire(event: simpy.Event) -> None:
            if not event.value:
                session._end(0, f"the WebSocket to {dst} refused to send the session's open")
            elif session._opening is not None:
                session.conn = ws.conn  # the connection it went out on

        session._put(OPEN_TYPE, SessionData(sid), CONTROL_BYTES).callbacks.append(on_wire)
        if timeout is not None:
            why = f"{dst} did not accept the session within {max(timeout, 0.0):g} s"
            node.after(max(timeout, 0.0), lambda: self._open_expired(session, why))
        return opening

    def _open_expired(self, session: Session, why: str) -> None:
        if session._opening is not None:
            session._end(0, why, "timeout")

    # -- what arrives --------------------------------------------------------------------

    def _on_message(self, channel: Channel, app: Message) -> None:
        body = app.body
        if not isinstance(body, SessionData):
            return  # not a session's: nothing here reads it
        session = self.sessions.get(body.session)
        type_ = app.type
        if type_ == OPEN_TYPE:
            if session is None and isinstance(channel, WsConn):
                self._opened(channel, app, body)
            return
        if session is None:
            if type_ != CLOSE_TYPE:
                # It ended here (or never was, since a crash): the peer should know.
                reply = SessionData(body.session, status=404, error="no such session")
                channel.send(CLOSE_TYPE, reply, CONTROL_BYTES, app.correlation_id,
                             app.msg_id, span=app.span)  # fmt: skip
            return
        if type_ == ACCEPT_TYPE:
            opening, session._opening = session._opening, None
            if opening is not None:
                if session.conn is None:
                    session.conn = getattr(channel, "conn", None)
                opening.succeed(session)
        elif type_ == CLOSE_TYPE:
            session._end(
                body.status,
                body.error or ("" if body.status == NORMAL else f"{app.src} ended the session"),
            )
        else:
            session._arrived(app)

    def _opened(self, conn: WsConn, app: Message, body: SessionData) -> None:
        """A peer opened a session here: accept it and serve it, or refuse it (501)."""
        host = self.host
        node = host.node
        span = node.journal.span_start(SPAN, "server", host.id, app.src, PROTOCOL, node.env.now,
                                       app.span, app.correlation_id)  # fmt: skip
        session = Session(self, conn, app.src, body.session, span, app.correlation_id,
                          app.msg_id, client=False)  # fmt: skip
        self.sessions[session.id] = session
        # The code starts from the event loop, after the accept has gone out first.
        if self.serve(session):
            session._put(ACCEPT_TYPE, SessionData(session.id), CONTROL_BYTES)
            return
        why = f"{host.id} serves no sessions (its role has no on_session)"
        session._put(CLOSE_TYPE, SessionData(session.id, status=501, error=why), CONTROL_BYTES)
        session._end(501, why)

    # -- connections ending --------------------------------------------------------------

    def _ws_closed(self, _ws: WsSession, conn: WsConn) -> None:
        self._conn_closed(conn)

    def _conn_closed(self, conn: WsConn) -> None:
        """A connection closed: the sessions on it end in error."""
        why = f"connection to {conn.peer} closed ({conn.code})"
        for session in [s for s in self.sessions.values() if s.conn is conn]:
            session._end(0, why)

    def _crashed(self) -> None:
        # The node crashed: its sessions end, and nobody here is left to tell.
        for session in list(self.sessions.values()):
            session._end(0, "crashed", wake=False)
        self.sessions.clear()


__all__ = ["SPAN", "Session", "SessionData", "SessionDesk"]
