"""The TCP under a WebSocket: an ordered, reliable stream with a window in messages.

The simulator's network loses, duplicates and reorders messages; TCP hides that from
the WebSocket, at the price of latency. So every frame after the opening handshake is
numbered (`Frame.seq`); the receiver delivers in order, keeps early frames aside, drops
duplicates, and acknowledges the last frame it has in order: piggybacked on any frame it
sends, or in an `ack` message after the delayed-ACK time (200 ms, Linux). Frames not
acknowledged within the retransmission timeout (RFC 6298: 1 s at first and at least,
then from the measured round trip; doubling on each expiry, up to 120 s) are sent again
(go-back-N). A loss with frames behind it is repaired sooner, as every TCP since Reno
does (RFC 5681 3.2, RFC 6582): the receiver acknowledges an out-of-order, duplicate or
gap-filling frame at once, and three duplicate acknowledgements make the sender resend
the first unacknowledged frame without waiting for the timeout; while it recovers, each
partial acknowledgement resends the next hole (NewReno). Without this, one lost frame
held a busy connection for a whole second. A WebSocket message is delivered once and in
order, or the connection breaks.

The window: acknowledgements also carry how many data messages the receiving
application has consumed. The sender keeps at most the peer's `max_queue` data messages
unconsumed (in flight or queued at the receiver); further sends wait in the outbox. When
the receiver's queue reaches `max_queue` it stops reading (its consumed count is frozen)
until the application drains it to the low-water mark, then opens the window at once:
what websockets does by pausing and resuming the transport. Control frames (ping, pong,
close) are numbered and retransmitted too, but never wait for the window.

A stream is one part of a connection (`connection.WsConn` holds one): it tells the
connection above it, through the `StreamUser` interface, of the frames it delivers in
order, of a window that opened, and of a retransmission timeout while opening.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Protocol

from protocols.node import Node
from protocols.transport import Message
from protocols.websocket.settings import WebSocketSettings
from protocols.websocket.wire import (
    ACK,
    CLOSED,
    CONNECTING,
    OPEN,
    PROTOCOL,
    SIZES,
    Frame,
    rebody,
)

INF = math.inf


class StreamUser(Protocol):
    """The connection a stream carries: what the stream tells the layer above it."""

    def deliver(self, msg: Message) -> None:
        """A numbered frame arrived in order."""
        ...

    def all_acked(self) -> None:
        """Every frame sent has been acknowledged."""
        ...

    def retransmit_handshake(self) -> bool:
        """The RTO expired while opening: send the handshake step again (False: nothing)."""
        ...

    def window_opened(self) -> None:
        """The peer consumed more data messages: more may be sent."""
        ...


class Stream:
    """One TCP connection's stream, from one side, under the connection `user`.

    `state` is the connection's (RFC 6455: connecting, open, closing, closed): the stream
    stops numbering, acknowledging and retransmitting once it is closed.
    """

    def __init__(
        self,
        node: Node,
        settings: WebSocketSettings,
        conn_id: str,
        peer: str,
        span: int,
        user: StreamUser,
    ) -> None:
        self.node = node
        self.settings = settings
        self.id = conn_id
        self.peer = peer
        self.span = span
        self.user = user
        self.state = CONNECTING
        s = settings
        # numbering, acknowledgement, in-order delivery
        self.snd_seq = 0
        self.snd_acked = 0
        self.unacked: deque[Message] = deque()
        # The application messages behind unacknowledged frames, by sequence number: a
        # retransmission counts as an attempt of the message itself, so a resend on the
        # next connection numbers on from it instead of repeating its attempt.
        self.apps: dict[int, Message] = {}
        self.rcv_next = 1
        self.early: dict[int, Message] = {}
        self.rep_ack = 0
        self.rep_consumed = 0
        self._ack_timer = False
        # retransmission timeout (RFC 6298), one lazy timer
        self.srtt = math.nan
        self.rttvar = 0.0
        self.rto = s.rto_initial
        self.rto_deadline = INF
        self._timer = False
        # fast retransmit and NewReno recovery (RFC 5681 3.2, RFC 6582)
        self.dupacks = 0
        self.recover = 0  # the highest frame sent when recovery began; 0: not recovering
        # After a timeout resent everything, duplicates of those copies are no news of a
        # hole: no fast retransmit until what was sent then is acknowledged (RFC 6582 3.2).
        self.after_timeout = 0
        # the window, in data messages
        self.sent_data = 0
        self.peer_consumed = 0
        self.peer_window = s.max_queue
        self.received = 0
        self.consumed = 0
        self.advertised = 0
        self.reading_paused = False

    # -- sending ----------------------------------------------------------------------

    def wire(self, type_: str, kind: str, frame: Frame, causation_id: str = "") -> Message:
        """A frame of this connection that the stream does not number (a handshake step)."""
        node = self.node
        return Message(
            msg_id=node.new_id(),
            type=type_,
            src=node.id,
            dst=self.peer,
            kind=kind,
            protocol=PROTOCOL,
            version=node.version,
            correlation_id=self.id,
            causation_id=causation_id,
            span=self.span,
            size_bytes=SIZES[type_],
            body=frame,
        )

    def send_seq(
        self, type_: str, kind: str, payload: Any = None, code: int = 0, app: Message | None = None
    ) -> None:
        """Number a frame and send it; it is retransmitted until acknowledged.

        `app` is the application's data message the frame carries (its copy goes out).
        """
        self.snd_seq += 1
        frame = Frame(self.id, self.snd_seq, self.rcv_next - 1, self.advertised, payload, code)
        if app is None:
            msg = self.wire(type_, kind, frame)
        else:
            msg = rebody(app, frame, app.attempt)
            self.apps[self.snd_seq] = app
        self.rep_ack, self.rep_consumed = frame.ack, frame.consumed
        self.unacked.append(msg)
        if self.rto_deadline == INF:
            self.arm(self.node.env.now + self.rto)
        self.node.send(msg)

    def send_ack(self) -> None:
        """Acknowledge what arrived in order, and tell how much was consumed, at once."""
        frame = Frame(self.id, 0, self.rcv_next - 1, self.advertised)
        self.rep_ack, self.rep_consumed = frame.ack, frame.consumed
        self.node.send(self.wire(ACK, "ack", frame))

    def _owe_ack(self) -> None:
        if not self._ack_timer:
            self._ack_timer = True
            self.node.after(self.settings.ack_delay, self._ack_due)

    def _ack_due(self) -> None:
        self._ack_timer = False
        if self.state is not CLOSED and (
            self.rcv_next - 1 > self.rep_ack or self.advertised > self.rep_consumed
        ):
            self.send_ack()

    # -- retransmission ---------------------------------------------------------------

    def base_rto(self) -> float:
        """The retransmission timeout from the measured round trip (RFC 6298)."""
        s = self.settings
        if math.isnan(self.srtt):
            return s.rto_initial
        return min(max(s.rto_min, self.srtt + 4 * self.rttvar), s.rto_max)

    def sample_rtt(self, rtt: float) -> None:
        """Fold a measured round trip into the smoothed estimate (RFC 6298)."""
        if math.isnan(self.srtt):
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt

    def arm(self, at: float) -> None:
        """Set the retransmission deadline to `at`."""
        # One lazy timer per connection: moving the deadline later costs nothing; the
        # timer re-arms itself when it fires early.
        self.rto_deadline = at
        if not self._timer:
            self._timer = True
            self.node.after(at - self.node.env.now, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = False
        if self.state is CLOSED or self.rto_deadline == INF:
            return
        now = self.node.env.now
        if now < self.rto_deadline - 1e-9:
            self.arm(self.rto_deadline)
            return
        self.rto = min(self.rto * 2, self.settings.rto_max)
        if self.state is CONNECTING:
            if not self.user.retransmit_handshake():
                self.rto_deadline = INF
                return
        elif self.unacked:
            ack, consumed = self.rcv_next - 1, self.advertised
            unacked = self.unacked
            for i, old in enumerate(unacked):
                f = old.body
                frame = Frame(f.conn, f.seq, ack, consumed, f.payload, f.code)
                unacked[i] = rebody(old, frame, old.attempt + 1)
                app = self.apps.get(f.seq)
                if app is not None:
                    app.attempt = old.attempt + 1
                self.node.send(unacked[i])
            self.rep_ack, self.rep_consumed = ack, consumed
            self.recover, self.dupacks, self.after_timeout = 0, 0, self.snd_seq
        else:
            self.rto_deadline = INF
            return
        self.arm(now + self.rto)

    # -- receiving --------------------------------------------------------------------

    def receive(self, msg: Message) -> None:
        """A numbered frame or an acknowledgement of this connection arrived."""
        frame: Frame = msg.body
        self._take_ack(frame)
        seq = frame.seq
        if seq == 0 or self.state is CLOSED:
            return
        if seq != self.rcv_next:
            if seq > self.rcv_next:
                self.early[seq] = msg
            # An out-of-order or duplicate frame is acknowledged at once (RFC 5681 4.2):
            # the duplicate acknowledgements tell the sender of the hole.
            self.send_ack()
            return
        self.rcv_next += 1
        user = self.user
        user.deliver(msg)
        early = self.early
        gap = bool(early)
        while early and self.state is not CLOSED:
            nxt = early.pop(self.rcv_next, None)
            if nxt is None:
                break
            self.rcv_next += 1
            user.deliver(nxt)
        if self.state is not CLOSED:
            if gap:
                self.send_ack()  # it filled (part of) a gap: say so at once
            else:
                self._owe_ack()

    def _take_ack(self, frame: Frame) -> None:
        if frame.ack > self.snd_acked:
            self.snd_acked = frame.ack
            self.dupacks = 0
            unacked = self.unacked
            apps = self.apps
            while unacked and unacked[0].body.seq <= frame.ack:
                apps.pop(unacked.popleft().body.seq, None)
            self.rto = self.base_rto()
            if self.recover:
                if frame.ack >= self.recover:
                    self.recover = 0
                elif unacked:
                    self._resend_first()  # a partial acknowledgement: the next hole
            if unacked:
                self.arm(self.node.env.now + self.rto)
            else:
                self.rto_deadline = INF
                self.user.all_acked()
                if self.state is CLOSED:
                    return
        elif (
            frame.seq == 0
            and frame.ack == self.snd_acked
            and frame.consumed == self.peer_consumed
            and self.unacked
            and self.state is not CLOSED
        ):
            # A duplicate acknowledgement: nothing new acknowledged, no window update.
            self.dupacks += 1
            if self.dupacks == 3 and not self.recover and self.snd_acked >= self.after_timeout:
                self.recover = self.snd_seq
                self._resend_first()
        if frame.consumed > self.peer_consumed:
            self.peer_consumed = frame.consumed
            self.user.window_opened()

    def _resend_first(self) -> None:
        """Send the first unacknowledged frame again, now (fast retransmit)."""
        old = self.unacked[0]
        f = old.body
        frame = Frame(f.conn, f.seq, self.rcv_next - 1, self.advertised, f.payload, f.code)
        new = rebody(old, frame, old.attempt + 1)
        self.unacked[0] = new
        app = self.apps.get(f.seq)
        if app is not None:
            app.attempt = new.attempt
        self.rep_ack, self.rep_consumed = frame.ack, frame.consumed
        self.node.send(new)

    def consumed_one(self) -> None:
        """The application took one data message of this connection."""
        self.consumed += 1
        if self.state is CLOSED:
            return
        if self.reading_paused:
            if self.received - self.consumed <= self.settings.low_water:
                self.reading_paused = False
                self.advertised = self.consumed
                self.send_ack()  # reading resumes: open the window now
            return
        self.advertised = self.consumed
        if self.advertised - self.rep_consumed >= max(1, self.settings.max_queue // 2):
            self.send_ack()  # half the window freed: tell the sender before it stalls
        else:
            self._owe_ack()

    def queued(self) -> None:
        """A data message of this connection waits unread: stop reading at `max_queue`."""
        if self.received - self.consumed >= self.settings.max_queue:
            self.reading_paused = True

    def opened(self, window: int) -> None:
        """The opening handshake is done: open, with the peer's window if it sent one."""
        self.state = OPEN
        if window:
            self.peer_window = window
        self.rto = self.base_rto()
        self.rto_deadline = INF
