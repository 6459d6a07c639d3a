"""The serving side of Server-Sent Events: a job per stream, its events, its replay buffer.

A first GET becomes a job in the server's worker pool (the stream holds a worker while
its work runs) and is answered 200 at once, as a streaming response sends its headers
before its body; a full accept queue answers 503. While the job runs the server emits a
progress event every `progress_interval`, plus whatever the handler emits itself
(`emit`), then the final event when the handler calls `job.reply(status, error)`. A
keep-alive comment goes out every 15 s on an open connection.

A connection that breaks does not cancel the job (MCP: "a disconnect is not a
cancellation"): events go on into the stream's bounded replay buffer, and a reconnect
with Last-Event-ID gets those after that id. A finished stream is kept `retention`
seconds for a late reconnect; a reconnect for a stream the server does not hold (it
crashed, or the stream expired) is answered 404, which fails the client's stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from protocols.node import Node
from protocols.sse.settings import DEFAULTS, SseSettings
from protocols.sse.wire import (
    CLOSE,
    EOF,
    EOF_TYPE,
    FINAL,
    KEEPALIVE_TYPE,
    OPEN,
    PING,
    PROGRESS,
    PROTOCOL,
    RESET,
    RESET_TYPE,
    Frame,
    Open,
)
from protocols.transport import Message
from protocols.workers import Job, WorkerPool, adopted, end_span, server_span

# A refusal of a (re)connect: the status to answer with, 0 to accept.
Gate = Callable[[Message], int]
# The admission of a new stream (a model provider's limits), as an HTTP server's: given
# the GET, its span and the time, (status, why, retry_after, data); status 0 admits it
# and `data` goes to its ServerStream's `admitted`, any other refuses the stream before
# it starts, with the Retry-After on its status line.
Admit = Callable[[Message, int, float], tuple[int, str, float, Any]]


class ServerStream:
    """One stream on the server: its events so far and its current connection."""

    __slots__ = (
        "admitted",
        "attempt",
        "buffer",
        "client",
        "conn",
        "correlation_id",
        "final",
        "final_data",
        "key",
        "n",
        "next_id",
        "span",
        "type",
    )

    def __init__(self, key: str, msg: Message, span: int, buffer: int) -> None:
        self.key = key
        self.client = msg.src
        self.type = msg.type
        self.correlation_id = msg.correlation_id
        self.span = span
        self.next_id = 1
        # (event_id, name, data) of the latest events; the final one is kept apart.
        self.buffer: deque[tuple[int, str, Any]] = deque(maxlen=buffer)
        self.final: tuple[int, int, str] | None = None  # (event_id, status, error)
        self.final_data: Any = None  # what the final event carries (a model's usage)
        self.admitted: Any = None  # what the server's `admit` gave the stream
        self.conn = ""  # msg_id of the GET of the open connection; "" when none
        self.attempt = 0
        self.n = 0  # the next position on the connection


class SseServer:
    """The serving side: a worker pool of streams with a bounded accept queue.

    `handler(job)` runs when a worker takes a stream; it may call `emit(job, name, data)`
    for partial results and ends with `job.reply(status, error)`. `gate(msg)`, when set,
    may refuse any (re)connect with a status (an injected error, a connection limit).

    Set after construction: `admit` judges a new stream before it starts (see `Admit`);
    `resumable = False` refuses every reconnect with Last-Event-ID with 404, as a model
    provider's stream cannot be resumed; `on_hangup(stream)` is told when the client
    hangs up (or its connection is gone) while the stream's job still runs.
    """

    def __init__(
        self,
        node: Node,
        workers: int,
        handler: Callable[[Job], None],
        queue_limit: int | None = None,
        settings: SseSettings | None = None,
        gate: Gate | None = None,
        pool: WorkerPool | None = None,
    ) -> None:
        self.node = node
        self.settings = settings or DEFAULTS
        self.handler = handler
        self.gate = gate
        self.pool = adopted(pool, self, self._begin) or WorkerPool(
            node, workers, self._begin, queue_limit
        )
        self.streams: dict[str, ServerStream] = {}
        self.admit: Admit | None = None
        self.resumable = True
        self.on_hangup: Callable[[ServerStream], None] | None = None

    # -- connections ----------------------------------------------------------------------

    def on_request(self, msg: Message) -> None:
        """A GET: start a stream, resume one after Last-Event-ID, or refuse."""
        open_: Open = msg.body
        stream = self.streams.get(open_.stream)
        if stream is None:
            if open_.resume:
                # It crashed since, or the stream expired: the client cannot resume it.
                refuse(self.node, msg, 404, "no such stream", self.settings.response_bytes)
            else:
                self._start(msg, open_)
            return
        if msg.attempt <= stream.attempt:
            return  # a duplicate or a stale copy of a GET already answered
        if open_.resume and not self.resumable:
            refuse(
                self.node, msg, 404, "this server does not resume streams",
                self.settings.response_bytes,
            )  # fmt: skip
            return
        status = self.gate(msg) if self.gate is not None else 0
        if status:
            refuse(self.node, msg, status, "", self.settings.response_bytes)
            return
        self._connect(stream, msg, open_.last_event_id)

    def _start(self, msg: Message, open_: Open) -> None:
        node = self.node
        now = node.env.now
        span = server_span(node, msg, PROTOCOL, now)
        status = self.gate(msg) if self.gate is not None else 0
        why = f"HTTP {status}"
        retry_after, admitted = 0.0, None
        if not status and self.admit is not None:
            # The request as it was sent, its payload as the body (what the job sees).
            status, why, retry_after, admitted = self.admit(msg.copy(body=open_.body), span, now)
        if not status and self.pool.full():
            status, why = 503, "accept queue full"
        if status:
            node.journal.span_end(span, "rejected", now, error=why, status=status)
            refuse(node, msg, status, "", self.settings.response_bytes, span, retry_after)
            return
        stream = ServerStream(open_.stream, msg, span, self.settings.replay_buffer)
        stream.admitted = admitted
        self.streams[stream.key] = stream
        self._connect(stream, msg, 0)
        # The handler sees the request as it was sent, its payload as the body.
        self.pool.submit(Job(self, msg.copy(body=open_.body), span, now, data=stream))

    def _connect(self, stream: ServerStream, msg: Message, last_event_id: int) -> None:
        settings = self.settings
        stream.conn = msg.msg_id
        stream.attempt = msg.attempt
        stream.n = 0
        self._send(
            stream, "response", Frame(stream.key, 0, OPEN, status=200, retry=settings.server_retry)
        )
        for event_id, name, data in stream.buffer:
            if event_id > last_event_id:
                self._send_event(stream, event_id, name, data)
        final = stream.final
        if final is not None:
            if final[0] > last_event_id:
                self._send_final(stream)
            self._end(stream)  # the stream is over: the response ends after the replay
        else:
            self._keepalive(stream, stream.conn)

    def _keepalive(self, stream: ServerStream, conn: str) -> None:
        node = self.node
        interval = self.settings.keepalive
        size = self.settings.keepalive_bytes

        def ping() -> None:
            if stream.conn == conn:
                frame = Frame(stream.key, stream.n, PING)
                self._send(stream, "control", frame, KEEPALIVE_TYPE, size)
                node.after(interval, ping)

        node.after(interval, ping)

    def on_control(self, msg: Message) -> None:
        """The client hung up or its kernel reset the connection: stop sending on it."""
        frame: Frame = msg.body
        if frame.name in (CLOSE, RESET):
            stream = self.streams.get(frame.stream)
            if stream is not None and stream.conn == msg.causation_id:
                self._hung_up(stream)

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A frame could not reach the client (it is down): the connection is gone."""
        frame: Frame = msg.body
        stream = self.streams.get(frame.stream)
        if stream is not None and stream.conn == msg.causation_id:
            self._hung_up(stream)

    def _hung_up(self, stream: ServerStream) -> None:
        stream.conn = ""
        if self.on_hangup is not None and stream.final is None:
            self.on_hangup(stream)

    # -- events ---------------------------------------------------------------------------

    def _begin(self, job: Job) -> None:
        interval = self.settings.progress_interval
        if interval is not None:
            stream: ServerStream = job.data
            node = self.node

            def tick() -> None:
                if stream.final is None and self.streams.get(stream.key) is stream:
                    self.emit(job, PROGRESS)
                    node.after(interval, tick)

            node.after(interval, tick)
        self.handler(job)

    def emit(self, job: Job, name: str = PROGRESS, data: Any = None) -> int:
        """Emit a partial result of `job`'s stream; returns its event id (0 if over)."""
        stream: ServerStream = job.data
        if stream.final is not None or self.streams.get(stream.key) is not stream:
            return 0
        event_id = stream.next_id
        stream.next_id += 1
        stream.buffer.append((event_id, name, data))
        if stream.conn:
            self._send_event(stream, event_id, name, data)
        return event_id

    def reply(self, job: Job, status: int, error: str = "", outcome: str = "") -> None:
        """Finish a stream's job: its final event, its span, its worker. `outcome`, when
        given, is the span's instead of the one the status gives."""
        node = self.node
        stream: ServerStream = job.data
        if self.streams.get(stream.key) is not stream or stream.final is not None:
            self.pool.done(job)
            return  # lost in a crash, or replied twice
        _, error = end_span(node, job, status, error, outcome)
        stream.final = (stream.next_id, status, error)
        stream.next_id += 1
        if stream.conn:
            self._send_final(stream)
            self._end(stream)
        self.pool.done(job)
        # A crash before then makes the timer stale (and empties `streams` anyway).
        node.after(self.settings.retention, lambda: self.streams.pop(stream.key, None))

    def _send_event(self, stream: ServerStream, event_id: int, name: str, data: Any) -> None:
        frame = Frame(stream.key, stream.n, name, event_id, data=data)
        self._send(stream, "event", frame, stream.type, self.settings.event_bytes)

    def _send_final(self, stream: ServerStream) -> None:
        assert stream.final is not None
        event_id, status, error = stream.final
        frame = Frame(stream.key, stream.n, FINAL, event_id, status, error, data=stream.final_data)
        self._send(stream, "event", frame, stream.type, self.settings.event_bytes)

    def _end(self, stream: ServerStream) -> None:
        # The end of the body (the last chunk, then FIN): a client that lost the final
        # event sees a hole before it, or, if it has it all, closes anyway.
        self._send(stream, "control", Frame(stream.key, stream.n, EOF), EOF_TYPE, 5)
        stream.conn = ""

    def _send(
        self,
        stream: ServerStream,
        kind: str,
        frame: Frame,
        type_: str = "",
        size: int | None = None,
    ) -> None:
        node = self.node
        stream.n += 1
        node.send(
            Message(
                msg_id=node.new_id(),
                type=type_ or stream.type,
                src=node.id,
                dst=stream.client,
                kind=kind,
                protocol=PROTOCOL,
                version=node.version,
                correlation_id=stream.correlation_id,
                causation_id=stream.conn,
                span=stream.span,
                attempt=stream.attempt,
                size_bytes=self.settings.response_bytes if size is None else size,
                body=frame,
            )
        )

    # -- lifecycle ------------------------------------------------------------------------

    def reset(self) -> None:
        """The server crashed: its streams are lost; its kernel resets their connections."""
        if self.settings.crash_resets:
            for stream in self.streams.values():
                if stream.conn:
                    frame = Frame(stream.key, -1, RESET)
                    self._send(stream, "control", frame, RESET_TYPE, 0)
        self.pool.crash(owner=self)
        self.streams.clear()


def refuse(
    node: Node,
    msg: Message,
    status: int,
    error: str,
    size: int,
    span: int = -1,
    retry_after: float = 0.0,
) -> None:
    """Answer a GET with a status other than 200 (which fails the stream for good),
    with a Retry-After of `retry_after` seconds when it is above 0."""
    frame = Frame(msg.body.stream, 0, OPEN, status=status, error=error, retry_after=retry_after)
    node.send(node.answer(msg, frame, size, span))
