"""One Server-Sent Events stream on the client: the EventSource processing model.

A stream opens with a GET; a 200 opens it, any other status fails it for good (WHATWG
§9.2: "fail the connection"). Events are dispatched in id order, each once. When the
connection breaks the stream waits the reconnection time (3 s, or what the server's
`retry:` said) and sends a new GET with `Last-Event-ID`; the server replays what followed.
Ids that never arrive (they fell out of the server's replay buffer) are counted lost, and
the stream's span records them (`lost_events`; `partial` when the final event came).

How the stream notices a broken connection, since the simulated network has no TCP:

- a **hole**: a frame arrives ahead of one still missing; after `stall_timeout` (1 s, TCP's
  minimum retransmission timeout) the missing copy is taken as lost and the connection as
  broken, since nothing will retransmit it. Frames that arrive out of order within the
  window are put back in order, as TCP does. A lost final event shows as a hole before
  the end of the body that follows it;
- **silence**: no bytes (status line, event or keep-alive) for `read_timeout` (twice the
  15 s keep-alive), as on a blackhole, or a GET that is never answered;
- a **reset**: the server's process crashed and its kernel reset the connection, or the
  GET was refused (the server is down); or the body **ended** before the final event.

The watchdogs count the client's own running time, so a client that was paused (a GC
stall) reads what arrived meanwhile before it judges the silence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from protocols.call import Call, CallResult, status_result
from protocols.node import Node
from protocols.sse.settings import SseSettings
from protocols.sse.wire import (
    CLOSE,
    CLOSE_TYPE,
    EOF,
    FINAL,
    OPEN,
    PING,
    PROTOCOL,
    RESET,
    Frame,
    Open,
)
from protocols.transport import Message

CONNECTING = "connecting"
OPEN_STATE = "open"
WAITING = "waiting"  # between a broken connection and the next GET
CLOSED = "closed"

EventHook = Callable[["SseStream", Frame], None]
# Told of a stream that has closed (its call ended), by whoever holds it.
ClosedHook = Callable[["SseStream"], None]

_EPS = 1e-9


def running(node: Node) -> float:
    """Seconds `node` has been running (not paused): the watchdogs' clock."""
    return node.env.now - node.paused_time()


class StreamCall(Call):
    """The Call of a stream: its end closes the stream and records its attempts."""

    __slots__ = ("stream",)
    # Set by the client right after it makes the call.
    stream: SseStream

    def end(self, result: CallResult) -> None:
        """End the call once (see Call.end), closing its stream first."""
        if self.result is None:
            self.stream.closing(result)
        super().end(result)


class SseStream:
    """One stream on the client: its connection, its events, and what it counted.

    Read after (or during) the run: `events` (dispatched, each id once), `lost_events`
    (ids skipped because the server no longer had them), `first_event_at` and
    `final_event_at` (simulated times, NaN until then), `first_event` (its name),
    `connections` (GETs sent),
    `delays` (seconds waited before each reconnect), `status` (of the final event or of
    the failing connect), `state`.
    """

    __slots__ = (
        "attempt",
        "body",
        "call",
        "causation_id",
        "conn",
        "connections",
        "correlation_id",
        "deadline",
        "delays",
        "dst",
        "events",
        "expected",
        "failures",
        "final_event_at",
        "first_attempt",
        "first_event",
        "first_event_at",
        "heard",
        "held",
        "hole_at",
        "idempotency_key",
        "key",
        "last_error",
        "last_event_id",
        "lost_events",
        "node",
        "on_closed",
        "on_event",
        "opened",
        "retry",
        "settings",
        "size_bytes",
        "span",
        "state",
        "status",
        "type",
    )

    def __init__(
        self,
        node: Node,
        settings: SseSettings,
        key: str,
        dst: str,
        type_: str,
        correlation_id: str,
        causation_id: str,
        span: int,
        size_bytes: int,
        body: Any,
        on_event: EventHook | None,
        first_attempt: int = 1,
        deadline: float = math.inf,
        idempotency_key: str = "",
        on_closed: ClosedHook | None = None,
    ) -> None:
        self.node = node
        self.settings = settings
        self.on_closed = on_closed
        # The GETs' `attempt` runs on from the call's (a retried call starts higher).
        self.first_attempt = first_attempt
        self.attempt = first_attempt
        self.deadline = deadline
        self.idempotency_key = idempotency_key
        self.key = key
        self.dst = dst
        self.type = type_
        self.correlation_id = correlation_id
        self.causation_id = causation_id
        self.span = span
        self.size_bytes = size_bytes
        self.body = body
        self.on_event = on_event
        self.call: StreamCall
        self.state = CONNECTING
        self.conn = ""  # msg_id of the GET of the current connection; "" between them
        self.connections = 0
        self.opened = False  # a 200 came on some connection: the server knows the stream
        self.retry = self.settings.retry
        self.failures = 0  # reconnects in a row that failed before opening (for backoff)
        self.expected = 0  # the next position on the connection
        self.held: dict[int, Frame] = {}  # frames that arrived ahead of a hole
        self.hole_at = -1
        self.heard = 0.0  # running time of the last byte read
        self.last_event_id = 0
        self.events = 0
        self.lost_events = 0
        self.first_event_at = math.nan
        self.first_event = ""  # the name of the first event dispatched
        self.final_event_at = math.nan
        self.status = 0
        self.delays: list[float] = []
        self.last_error = ""

    def span_extras(self) -> dict[str, float | int]:
        """The stream's figures for the span's extra columns."""
        return {
            "first_event_at": self.first_event_at,
            "final_event_at": self.final_event_at,
            "events": self.events,
            "lost_events": self.lost_events,
        }

    def close(self) -> None:
        """The application closes the stream (EventSource.close()): the call is cancelled."""
        self.call.end(("cancelled", 0, "closed by the client"))

    # -- connections ----------------------------------------------------------------------

    def connect(self, msg_id: str) -> None:
        """Send a GET (with Last-Event-ID after the first) and watch the new connection."""
        node = self.node
        resume = self.opened
        self.connections += 1
        self.attempt = self.first_attempt + self.connections - 1
        self.conn = msg_id
        self.state = CONNECTING
        self.expected = 0
        self.held.clear()
        self.hole_at = -1
        self.heard = running(node)
        node.send(
            Message(
                msg_id=msg_id,
                type=self.type,
                src=node.id,
                dst=self.dst,
                kind="request",
                protocol=PROTOCOL,
                version=node.version,
                correlation_id=self.correlation_id,
                causation_id=self.causation_id,
                span=self.span,
                attempt=self.attempt,
                size_bytes=self.settings.reconnect_bytes if resume else self.size_bytes,
                # Until a 200 came the server may never have seen the stream: ask anew,
                # with the request's payload.
                body=Open(self.key, self.last_event_id, None if resume else self.body, resume),
                deadline=self.deadline,
                idempotency_key=self.idempotency_key,
            )
        )
        self._watch(msg_id)

    def _watch(self, conn: str) -> None:
        # One timer per connection at a time: it re-arms for the time left since the last
        # byte rather than being pushed back by every byte.
        node = self.node
        limit = self.settings.read_limit()

        def check() -> None:
            if self.conn != conn:
                return
            idle = running(node) - self.heard
            if idle >= limit - _EPS:
                self.broken(f"no bytes for {limit:g} s", failed=self.state == CONNECTING)
            else:
                node.after(limit - idle, check)

        node.after(limit, check)

    def _watch_hole(self) -> None:
        node = self.node
        conn, at, since = self.conn, self.expected, running(node)
        window = self.settings.stall_timeout
        self.hole_at = at

        def check() -> None:
            if self.conn != conn or self.expected != at:
                return  # the hole was filled, or the connection is gone
            left = window - (running(node) - since)
            if left > _EPS:
                node.after(left, check)
            else:
                self.broken(f"frame {at} of the connection never arrived", failed=False)

        node.after(window, check)

    def broken(self, why: str, failed: bool, hang_up: bool = True) -> None:
        """The connection broke (a network error): reconnect after the retry delay.

        `failed` is true when the connection never opened, which is what the backoff
        counts; `hang_up` sends the client's FIN on an open connection.
        """
        if self.state == CLOSED:
            return
        if self.state == OPEN_STATE and hang_up:
            self.send_close()
        self.conn = ""
        self.state = WAITING
        self.held.clear()
        self.last_error = why
        settings = self.settings
        if settings.max_reconnects is not None and self.connections > settings.max_reconnects:
            self.call.end(("error", 0, f"gave up after {self.connections} connections: {why}"))
            return
        self.failures = self.failures + 1 if failed else 0
        delay = self.retry
        if settings.backoff == "exponential" and self.failures:
            # 2.0 ** 1024 overflows a float; the cap is passed long before.
            delay = min(self.retry * 2.0 ** min(self.failures, 1000), settings.backoff_cap)
        self.delays.append(delay)
        self.node.after(delay, self._reconnect)

    def send_close(self, name: str = CLOSE) -> None:
        """Hang up the current connection (the client's FIN, or its kernel's reset)."""
        node = self.node
        node.send(
            Message(
                msg_id=node.new_id(),
                type=CLOSE_TYPE,
                src=node.id,
                dst=self.dst,
                kind="control",
                protocol=PROTOCOL,
                version=node.version,
                correlation_id=self.correlation_id,
                causation_id=self.conn,
                span=self.span,
                attempt=self.attempt,
                size_bytes=0,
                body=Frame(self.key, -1, name),
            )
        )

    def _reconnect(self) -> None:
        if self.state != WAITING:
            return
        if self.node.env.now >= self.deadline:
            # Past the stream's deadline (a client waking from a pause runs its overdue
            # reconnect before its overdue timeout): nobody would read the stream it
            # opens. Its timer ends the call; one with none ends here.
            if self.call.timeout is None:
                self.call.end(("timeout", 0, "the deadline passed before it could reconnect"))
            return
        self.connect(self.node.new_id())

    # -- what arrives ---------------------------------------------------------------------

    def arrive(self, frame: Frame) -> None:
        """A frame of the current connection: read it in order, holding any ahead of a hole."""
        n = frame.n
        if n < 0:
            if frame.name == RESET:
                failed = self.state == CONNECTING
                self.broken("the server reset the connection", failed, hang_up=False)
            return
        if n < self.expected or n in self.held:
            return  # a duplicate copy: TCP would have discarded it
        if n > self.expected:
            self.held[n] = frame
        else:
            conn = self.conn
            self._read(frame)
            held = self.held
            while self.conn == conn and self.expected in held:
                self._read(held.pop(self.expected))
        if self.held and self.hole_at != self.expected and self.state != CLOSED:
            self._watch_hole()

    def _read(self, frame: Frame) -> None:
        self.expected += 1
        self.heard = running(self.node)
        if frame.retry is not None:
            self.retry = frame.retry
        name = frame.name
        if name == OPEN:
            if frame.status != 200:
                self.status = frame.status
                self.call.retry_after = frame.retry_after
                why = frame.error or f"HTTP {frame.status}"
                n = self.connections
                self.call.end(("error", frame.status, f"{why} on connect #{n}: failed for good"))
            else:
                self.state = OPEN_STATE
                self.opened = True
                self.failures = 0
            return
        if name == PING:
            return
        if name == EOF:
            # The body ended before the final event (read in order, so it is not here):
            # the spec reestablishes the connection after a normal end of body.
            self.broken("the response ended before the final event", False, hang_up=False)
            return
        event_id = frame.event_id
        if event_id <= self.last_event_id:
            return  # already dispatched: a server that replays inclusively
        self.lost_events += event_id - self.last_event_id - 1
        self.last_event_id = event_id
        self.events += 1
        now = self.node.env.now
        if math.isnan(self.first_event_at):
            self.first_event_at = now
            self.first_event = name
        if self.on_event is not None:
            self.on_event(self, frame)
        if name == FINAL:
            self.final_event_at = now
            self.status = frame.status
            self.call.end(status_result(frame.status, frame.error))

    def closing(self, result: CallResult) -> None:
        """The call ends: close the connection, record the span, tell `on_closed`.

        The span records the events lost (`lost_events`); a stream that ended OK having
        lost some is `partial`, with how many in its error. The call's result is left
        as it is: the caller did get its final answer, and must not retry for it.
        """
        if self.state == OPEN_STATE and math.isnan(self.final_event_at):
            self.send_close()  # a timeout or a cancel: the client hangs up
        self.state = CLOSED
        self.conn = ""
        self.held.clear()
        node = self.node
        outcome, status, error = result
        if outcome == "ok" and self.lost_events:
            # The final answer came, but not every event before it: the caller got a
            # subset of the stream, which the span says (the call itself succeeded).
            outcome = "partial"
            error = (
                f"{self.lost_events} event(s) lost: they had left {self.dst}'s replay "
                "buffer when the stream reconnected"
            )
        node.journal.span_end(
            self.span,
            outcome,
            node.env.now,
            error=error,
            attempts=self.connections,
            status=status,
            lost_events=self.lost_events,
        )
        if self.on_closed is not None:
            self.on_closed(self)
