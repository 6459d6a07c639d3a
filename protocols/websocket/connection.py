"""One WebSocket connection seen from one side: opening, keepalive, closing.

It holds the reliable stream it runs over (`stream.Stream`, RFC 6455 over TCP) and
tells its owner (the endpoint, or a client's session) when it opens, closes, and
delivers a data message:

- **Opening handshake**: TCP (SYN / SYN-ACK), TLS 1.3 (one round trip, unless `tls` is
  off) and the HTTP upgrade (GET / 101), each a real `control` message, so loss, a
  partition or a crashed server hit it. A step with no answer is sent again after the
  retransmission timeout, as TCP does, until `open_timeout` (10 s) gives up.
- **Keepalive** (both sides, as websockets' client and server both do): a ping every
  `ping_interval` less the last round trip (websockets sleeps `ping_interval - latency`
  after each pong), and close 1011 "keepalive ping timeout" when no pong comes within
  `ping_timeout`.
- **Closing handshake**: a close frame, echoed by the peer; the side that began is done
  on the echo, the other when its echo is acknowledged; `close_timeout` bounds the wait.
  Failing a connection (1011, 1009) sends a close frame too; then a server aborts at
  once while a client waits for the server, as websockets' `Protocol.fail` does.
  Aborts (a reset, an unreachable peer, a crash) end the connection with 1006, a code
  that never goes on the wire.

A client connection has one span ("ws.connection"): `ok` after a clean close with 1000
or 1001 (websockets' ConnectionClosedOK), `error` with the close code in `status` and
`error` otherwise, `timeout` when the open timed out.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from protocols.handshake import Opening
from protocols.node import Node
from protocols.transport import Message
from protocols.websocket.channel import Channel, Waiter
from protocols.websocket.settings import WebSocketSettings
from protocols.websocket.stream import Stream
from protocols.websocket.wire import (
    ABNORMAL,
    CLEAN_CODES,
    CLOSE,
    CLOSED,
    CLOSING,
    CONNECTING,
    HANDSHAKE,
    INTERNAL_ERROR,
    NORMAL,
    OPEN,
    PING,
    PONG,
    TOO_BIG,
    UPGRADE,
    Frame,
    check_code,
    describe,
    rebody,
)


class ConnOwner(Protocol):
    """Who a connection reports to: the endpoint that accepted it, or a client's session."""

    def conn_opened(self, conn: WsConn) -> None:
        """The connection opened."""
        ...

    def conn_closed(self, conn: WsConn) -> None:
        """The connection closed."""
        ...

    def on_data(self, conn: WsConn, app: Message) -> None:
        """A data message arrived in order (its frame's payload as its body)."""
        ...


class WsConn(Channel):
    """One connection: a channel over the TCP stream `tcp`, reporting to `owner`.

    A server's connection is the channel its application talks to. A client's uses its
    session's queues (`mailbox`), which outlive it.
    """

    def __init__(
        self,
        owner: ConnOwner,
        node: Node,
        settings: WebSocketSettings,
        conn_id: str,
        peer: str,
        side: str,
        span: int,
        mailbox: Channel | None = None,
        attempt: int = 1,
    ) -> None:
        super().__init__(node, settings, peer)
        self.owner = owner
        self.id = conn_id
        self._span = span
        self.tcp = Stream(node, settings, conn_id, peer, span, self)
        self.client = side == "client"
        self.mailbox: Channel = mailbox if mailbox is not None else self
        self.attempt = attempt
        self.opened = False
        self.opened_at = math.nan
        # closing: the codes sent and received (0: none), who began, why, how it ended
        self.close_sent = 0
        self.close_rcvd = 0
        self.close_reason = ""
        self.initiated = False
        self.failing = False
        self.code = 0
        self.clean = False
        # keepalive
        self._pings = 0
        self._awaiting = 0
        self._ping_at = 0.0
        self.latency = math.nan
        # the client's handshake
        self._opening = Opening(HANDSHAKE, self.settings.tls)
        self._hs_msg: Message | None = None
        self._hs_at = 0.0
        self._hs_retx = False

    @property
    def span(self) -> int:
        """The connection's span (the client's, on both sides)."""
        return self._span

    @property
    def state(self) -> str:
        """connecting, open, closing or closed (RFC 6455)."""
        return self.tcp.state

    @property
    def finished(self) -> bool:
        """Whether the connection has closed."""
        return self.tcp.state is CLOSED

    def enqueue(self, app: Message, waiter: Waiter) -> None:
        """Server side: queue a message on this connection (refused once it is closing)."""
        if self.tcp.state in (CONNECTING, OPEN):
            self.outbox.append((app, waiter))
            self.pump()
        else:
            self.refuse(app, waiter, f"connection to {self.peer} closed")

    def pump(self) -> None:
        """Put queued data messages on the wire while the peer's window allows."""
        tcp = self.tcp
        mailbox = self.mailbox
        outbox = mailbox.outbox
        if tcp.state is not OPEN or not outbox:
            return
        limit = tcp.peer_consumed + tcp.peer_window
        while outbox and tcp.sent_data < limit:
            entry = mailbox.next_to_send()
            if entry is None:
                return
            app, waiter = entry
            tcp.sent_data += 1
            tcp.send_seq(app.type, app.kind, app.body, app=app)
            if waiter is not None:
                waiter.succeed(True)

    def window_opened(self) -> None:
        """The peer consumed more: send what waits (the stream's news)."""
        self.pump()

    # -- opening ----------------------------------------------------------------------

    def connect(self) -> None:
        """Client: start the opening handshake, bounded by `open_timeout`."""
        self._hs_send()
        if self.settings.open_timeout is not None:
            self.node.after(self.settings.open_timeout, self._open_expired)

    def accept_timeout(self) -> None:
        """Server: a half-open connection is dropped after `open_timeout`."""
        if self.settings.open_timeout is not None:
            self.node.after(self.settings.open_timeout, self._open_expired)

    def _hs_send(self) -> None:
        tcp = self.tcp
        frame = Frame(self.id, window=self.settings.max_queue)
        msg = tcp.wire(self._opening.step, "control", frame)
        self._hs_msg, self._hs_at, self._hs_retx = msg, self.node.env.now, False
        self.node.send(msg)
        tcp.arm(self.node.env.now + tcp.rto)

    def retransmit_handshake(self) -> bool:
        """The RTO expired while opening: a client sends its step again (the stream's news)."""
        if not self.client or self._hs_msg is None:
            return False
        self._hs_retx = True
        self._hs_msg = self._hs_msg.copy(attempt=self._hs_msg.attempt + 1)
        self.node.send(self._hs_msg)
        return True

    def on_frame(self, msg: Message) -> None:
        """A message of this connection arrived."""
        if msg.body.seq == 0 and msg.kind == "control":
            self._on_handshake(msg)
            return
        if self.tcp.state is CONNECTING:
            if not self.client:
                return
            self._opened(0)  # the server's frames overtook its 101: it has accepted
        self.tcp.receive(msg)

    def _on_handshake(self, msg: Message) -> None:
        if self.client:
            opening = self._opening
            if self.tcp.state is not CONNECTING or msg.type != opening.expected:
                return  # the answer to a step already done, sent again
            if not self._hs_retx:
                self.tcp.sample_rtt(self.node.env.now - self._hs_at)  # Karn's rule
            if opening.advance(msg.type):
                self._opened(msg.body.window)
            else:
                self._hs_send()
            return
        # The server answers every step, again if asked again (its answer was lost).
        answer = HANDSHAKE.answer(msg.type)
        tcp = self.tcp
        if answer is None or tcp.state not in (CONNECTING, OPEN):
            return
        frame = Frame(self.id, window=self.settings.max_queue)
        self.node.send(tcp.wire(answer, "control", frame, msg.msg_id))
        if msg.type == UPGRADE and tcp.state is CONNECTING:
            self._opened(msg.body.window)

    def _opened(self, window: int) -> None:
        self.tcp.opened(window)
        self.opened = True
        self.opened_at = self.node.env.now
        if self.settings.ping_interval is not None:
            self._schedule_ping(self.settings.ping_interval)
        self.owner.conn_opened(self)
        self.pump()

    def _open_expired(self) -> None:
        if self.tcp.state is CONNECTING:
            limit = self.settings.open_timeout
            self._finish(f"open timeout after {limit:g} s", outcome="timeout")

    # -- frames in order --------------------------------------------------------------

    def deliver(self, msg: Message) -> None:
        """A frame arrived in order (the stream's news): a control frame, or data."""
        kind = msg.kind
        frame: Frame = msg.body
        if kind == "ping":
            if self.tcp.state is OPEN:
                self.tcp.send_seq(PONG, "pong", frame.payload)
            return
        if kind == "pong":
            self._on_pong(frame.payload)
            return
        if msg.type == CLOSE:
            self._on_close_frame(frame)
            return
        if self.failing:
            return  # RFC 6455 7.1.7: a failing endpoint processes nothing more
        max_size = self.settings.max_size
        if max_size is not None and msg.size_bytes > max_size:
            self.fail(TOO_BIG, f"message too big: {msg.size_bytes} bytes > max_size {max_size}")
            return
        self.tcp.received += 1
        self.owner.on_data(self, rebody(msg, frame.payload, msg.attempt))

    # -- keepalive --------------------------------------------------------------------

    def _schedule_ping(self, delay: float) -> None:
        token = self._pings
        self.node.after(delay, lambda: self._ping(token))

    def _ping(self, token: int) -> None:
        if self.tcp.state is not OPEN or token != self._pings:
            return
        self._pings += 1
        n = self._pings
        self._ping_at = self.node.env.now
        self.tcp.send_seq(PING, "ping", n)
        timeout = self.settings.ping_timeout
        if timeout is None:
            assert self.settings.ping_interval is not None
            self._schedule_ping(self.settings.ping_interval)
        else:
            self._awaiting = n
            self.node.after(timeout, lambda: self._pong_due(n))

    def _on_pong(self, n: Any) -> None:
        if not n or n != self._awaiting:
            return  # unsolicited, or the answer to a ping already given up on
        self._awaiting = 0
        self.latency = self.node.env.now - self._ping_at
        assert self.settings.ping_interval is not None
        self._schedule_ping(max(0.0, self.settings.ping_interval - self.latency))

    def _pong_due(self, n: int) -> None:
        if self.tcp.state is OPEN and self._awaiting == n:
            self.fail(INTERNAL_ERROR, "keepalive ping timeout")

    # -- closing ----------------------------------------------------------------------

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Start the closing handshake; a connection still opening is dropped."""
        check_code(code)
        state = self.tcp.state
        if state is CONNECTING:
            self._finish("closed while opening", outcome="cancelled")
        elif state is OPEN:
            self.initiated = True
            self._begin_close(code, reason)

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): a close frame; a server aborts at once."""
        if self.tcp.state is not OPEN:
            return
        self.initiated = True
        self.failing = True
        self._begin_close(code, reason)
        if not self.client:
            self._finish()  # websockets: the server closes TCP without waiting

    def _begin_close(self, code: int, reason: str) -> None:
        self.close_sent, self.close_reason = code, reason
        self.tcp.state = CLOSING
        self.tcp.send_seq(CLOSE, "control", reason, code)
        if self.settings.close_timeout is not None:
            self.node.after(self.settings.close_timeout, self._close_expired)

    def _on_close_frame(self, frame: Frame) -> None:
        if self.close_rcvd:
            return
        self.close_rcvd = frame.code
        if self.close_sent:
            # Our close is answered (or both sides closed at once): done.
            self.tcp.send_ack()
            self._finish()
            return
        self._begin_close(frame.code, frame.payload or "")  # the echo

    def all_acked(self) -> None:
        """Every frame sent was acknowledged (the stream's news): an echo ends the close."""
        if self.tcp.state is CLOSING and self.close_rcvd:
            self._finish()  # our echo of the peer's close was acknowledged

    def _close_expired(self) -> None:
        if self.tcp.state is CLOSING:
            self._finish()

    def abort(self, reason: str) -> None:
        """The TCP connection is gone (a reset, an unreachable peer): 1006 at once.

        Once the peer's close frame is in, its TCP connection closing (a server closes
        first) ends a closing handshake rather than breaking the connection.
        """
        if self.tcp.state is CLOSING and self.close_rcvd:
            self._finish()
        else:
            self._finish(reason)

    def crashed(self) -> None:
        """This node crashed: the connection is gone and nobody is told."""
        if self.tcp.state is not CLOSED:
            self.tcp.state = CLOSED
            self.code = ABNORMAL
            self._end_span("error", "crashed", ABNORMAL)

    def _finish(self, reason: str = "", outcome: str | None = None) -> None:
        if self.tcp.state is CLOSED:
            return
        self.tcp.state = CLOSED
        self.clean = bool(self.close_sent and self.close_rcvd)
        code = self.close_sent if self.initiated else (self.close_rcvd or ABNORMAL)
        self.code = code
        why = reason or self.close_reason
        if outcome is None:
            outcome = "ok" if self.clean and code in CLEAN_CODES else "error"
        if outcome == "ok":
            error = ""
        elif not self.opened:
            error = why
        else:
            error = describe(code, why)
            if not self.clean and code != ABNORMAL:
                error += " (no closing handshake)"
        self._end_span(outcome, error, code)
        self.owner.conn_closed(self)

    def _end_span(self, outcome: str, error: str, code: int) -> None:
        if self.client:
            node = self.node
            node.journal.span_end(
                self._span, outcome, node.env.now, error=error, attempts=self.attempt, status=code
            )
