"""The client's side of a 2025-11-25 session beyond its calls: the GET stream and pings.

The standalone GET stream carries what the server says unprompted (here
notifications/tools/list_changed, and the server's pings, which the client answers
with a POST). It is opened once the session is initialized, as python-sdk's
`handle_get_stream` does, and kept as it keeps it: a clean close (the server ending the
connection) reconnects at once after `retry:` or `reconnection_delay`; a failure (an
error status such as 405 from a server that offers none, a reset, a hole, no bytes for
`sse_read_timeout`) counts, and `max_reconnections` failures in a row end it. A
reconnection carries Last-Event-ID, so a server with an event store replays what was
missed; `notifications` holds the event ids received, each once, and `lost` counts the
ids skipped.

Pings (`ping_interval`): the client POSTs `ping` and waits `timeout` for its answer;
none (or a 404) is a broken session, which the client drops: its next call initializes
again.
"""

from __future__ import annotations

from collections.abc import Callable

from protocols.inorder import InOrder
from protocols.mcp.settings import McpSettings
from protocols.mcp.wire import (
    CLOSE,
    CLOSE_TYPE,
    EOF,
    OPEN,
    PING,
    PROTOCOL,
    RESET,
    RESPONSE,
    STREAM_TYPE,
    Answer,
    Frame,
    Get,
    Post,
)
from protocols.node import Node
from protocols.transport import Message

_EPS = 1e-9
# The client's requests waiting for a plain answer, by msg_id: told the answer, or
# None and why none came.
Waiting = dict[str, Callable[[Answer | None, str], None]]


class Listener:
    """One session's standalone GET stream and pings, on the client.

    `waiting` is the client's table of requests waiting for a plain answer; `current()`
    says whether the session is still the client's (a listener of a session
    dropped or replaced stops); `drop()` drops the session (a ping went unanswered).
    """

    def __init__(
        self, node: Node, settings: McpSettings, dst: str, session: str, correlation_id: str,
        waiting: Waiting, current: Callable[[], bool], drop: Callable[[], None],
    ) -> None:  # fmt: skip
        self.node = node
        self.settings = settings
        self.dst = dst
        self.session = session
        self.correlation_id = correlation_id
        self.waiting = waiting
        self.current = current
        self.drop = drop
        self.reader: InOrder[Frame] = InOrder(node, settings.stall_timeout, self._read, self._hole)
        self.key = ""  # the stream's key, from its status line
        self.last_event_id = 0
        self.notifications: list[int] = []  # event ids of the notifications received
        self.lost = 0
        self.failures = 0  # in a row
        self.retry = settings.reconnection_delay
        self.heard = 0.0
        self.opened = False  # the current connection's status line arrived
        self.gets = 0
        self.pings = 0
        self.stopped = False
        self.why = ""  # why the listener stopped, if it gave up or found the session dead

    def start(self) -> None:
        """Open the GET stream (if the channel wants it) and start pinging."""
        if self.settings.get_stream:
            self._get()
        if self.settings.ping_interval is not None:
            self.node.after(self.settings.ping_interval, self._ping)

    def stop(self) -> None:
        """The session is over for the client: close the stream, stop pinging."""
        if self.stopped:
            return
        self.stopped = True
        if self.reader.conn:
            self._hang_up()
            self.reader.conn = ""

    # -- the GET stream -------------------------------------------------------------------

    def _get(self) -> None:
        if self.stopped or not self.current():
            self.stop()
            return
        node = self.node
        self.gets += 1
        msg = self._message("request", STREAM_TYPE, 256,
                            Get(self.key, self.last_event_id, self.session))  # fmt: skip
        self.reader.open(msg.msg_id)
        self.opened = False
        self.heard = node.env.now
        self.waiting[msg.msg_id] = self._refused
        node.send(msg)
        self._watch(msg.msg_id)

    def _refused(self, answer: Answer | None, why: str) -> None:
        if answer is None:
            self._failed(why)
        elif answer.status != 200:
            self._failed(f"HTTP {answer.status}: {answer.error}", hang_up=False)

    def _watch(self, conn: str) -> None:
        node = self.node
        settings = self.settings

        def check() -> None:
            if self.reader.conn != conn or self.stopped:
                return
            # The HTTP timeout until the status line, then the SSE read timeout.
            limit = settings.sse_read_timeout if self.opened else settings.timeout
            idle = node.env.now - self.heard
            if idle >= limit - _EPS:
                self._failed(f"no bytes for {limit:g} s")
            else:
                node.after(limit - idle, check)

        node.after(settings.timeout, check)

    def on_frame(self, msg: Message) -> None:
        """A piece of the GET stream's current connection."""
        frame: Frame = msg.body
        if frame.n < 0:
            self._failed("the server reset the connection", hang_up=False)
        else:
            self.reader.arrive(frame.n, frame)

    def _hole(self, conn: str, at: int) -> None:
        if not self.stopped:
            self._failed(f"frame {at} of the GET stream never arrived")

    def _read(self, frame: Frame) -> None:
        self.heard = self.node.env.now
        if frame.retry is not None:
            self.retry = frame.retry
        name = frame.name
        if name == OPEN:
            self.waiting.pop(self.reader.conn, None)
            self.opened = True
            self.key = frame.stream
        elif name in (EOF, RESET):
            # The server ended the connection cleanly: come back (python-sdk resets its
            # count of failures).
            self.reader.conn = ""
            self.failures = 0
            self.node.after(self.retry, self._get)
        elif frame.event_id > self.last_event_id:
            self.lost += frame.event_id - self.last_event_id - 1
            self.last_event_id = frame.event_id
            self.failures = 0
            if name == PING:
                # The server's ping: the response is a POST of its own.
                post = Post(RESPONSE, str(frame.event_id), self.session)
                self.node.send(self._message("request", RESPONSE, 128, post))
            else:
                self.notifications.append(frame.event_id)

    def _failed(self, why: str, hang_up: bool = True) -> None:
        if self.stopped or not self.reader.conn:
            return
        if hang_up:
            self._hang_up()
        self.waiting.pop(self.reader.conn, None)
        self.reader.conn = ""
        self.failures += 1
        if self.failures >= self.settings.max_reconnections:
            self.stopped = True  # python-sdk gives the GET stream up for good
            self.why = f"gave the GET stream up after {self.failures} failure(s): {why}"
            return
        self.node.after(self.retry, self._get)

    def _hang_up(self) -> None:
        frame = Frame(self.key, -1, CLOSE)
        msg = self._message("control", CLOSE_TYPE, 0, frame)
        msg.causation_id = self.reader.conn
        self.node.send(msg)

    # -- pings ----------------------------------------------------------------------------

    def _ping(self) -> None:
        if self.stopped or not self.current():
            return
        self.pings += 1
        msg = self._message("request", PING, 64, Post(PING, session=self.session))
        timeout = self.settings.timeout

        def on_answer(answer: Answer | None, why: str) -> None:
            if answer is None or answer.status != 200:
                self._broken(why or f"the ping got HTTP {answer.status if answer else 0}")

        def expire() -> None:
            if self.waiting.pop(msg.msg_id, None) is not None:
                self._broken(f"no answer to ping within {timeout:g} s")

        self.waiting[msg.msg_id] = on_answer
        self.node.send(msg)
        self.node.after(timeout, expire)
        interval = self.settings.ping_interval
        if interval is not None:
            self.node.after(interval, self._ping)

    def _broken(self, why: str) -> None:
        # An unanswered ping: the session is taken for dead (spec: a stale connection).
        if self.stopped or not self.current():
            return
        self.drop()
        self.stop()
        self.why = f"the session is broken: {why}"

    def _message(self, kind: str, type_: str, size: int, body: object) -> Message:
        node = self.node
        return Message(
            msg_id=node.new_id(), type=type_, src=node.id, dst=self.dst, kind=kind,
            protocol=PROTOCOL, version=node.version, correlation_id=self.correlation_id,
            size_bytes=size, body=body,
        )  # fmt: skip
