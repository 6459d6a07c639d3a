"""The serving side of MCP Streamable HTTP: sessions, tool calls as streams, resumption.

2025-11-25: `initialize` opens a session (its id in the Mcp-Session-Id header of the
answer); every later POST must carry it: none gets 400, an unknown or expired one 404
(the client must initialize again). A `tools/call` becomes a job in the worker pool and
is answered with an SSE stream: a priming event (an id, empty data, and `retry:` if
set), a `notifications/progress` every `progress_interval` while the job runs, then the
result, then the end of the body. With an event store every event is kept, and a GET
with Last-Event-ID replays those after it, of that stream only. A broken connection is
not a cancellation: the job goes on; `notifications/cancelled` stops it. With
`close_after`, the server closes each connection that long after it opened (SEP-1699),
and the client comes back with Last-Event-ID.

2026-07-28: no initialize, no sessions, no event ids, no resumption. The stream is
scoped to its request, and closing it (the client's FIN, or the client found down) is
the cancellation: the job stops.

Sessions expire lazily: a session idle for `session_idle_timeout` (no request and no
open stream) is gone when its next request arrives, which is answered 404.

2025-11-25's standalone GET stream (`standalone_stream`; else a GET that opens one gets
405): one per session (a second while it is connected gets 409, as python-sdk's
server answers), carrying the server's notifications/tools/list_changed every
`notify_interval` and its pings every `server_ping_interval`, each with an event id of
the session's standalone stream; with an event store they are kept, and a GET with
Last-Event-ID replays those after it. A ping the client does not answer (a POST of its
response) within `timeout` ends the session. `ping` POSTed by the client is answered
200 (2026-07-28 has no ping: 404).
"""

from __future__ import annotations

from collections.abc import Callable

from protocols.mcp.settings import DEFAULTS, McpSettings
from protocols.mcp.wire import (
    CALL_TOOL,
    CANCELLED,
    CLOSE,
    EOF,
    EOF_TYPE,
    INITIALIZE,
    INITIALIZED,
    LIST_CHANGED,
    OPEN,
    PING,
    PRIMING,
    PROGRESS,
    PROTOCOL,
    RESET,
    RESET_TYPE,
    RESPONSE,
    RESULT,
    STREAM_TYPE,
    Answer,
    Frame,
    Get,
    Post,
)
from protocols.node import Node
from protocols.transport import Message
from protocols.workers import Job, WorkerPool, adopted, end_span, server_span


class Session:
    """A 2025-11-25 session: when it was last used, its streams in flight, its
    standalone GET stream and the server's pings awaiting an answer."""

    __slots__ = ("id", "last_used", "pings", "standalone", "streams")

    def __init__(self, session_id: str, now: float) -> None:
        self.id = session_id
        self.last_used = now
        self.streams = 0
        self.standalone: Stream | None = None
        self.pings: set[str] = set()


class Stream:
    """One tool call's response stream: its events so far, its connection, its job."""

    __slots__ = (
        "attempt", "buffer", "client", "conn", "correlation_id", "done", "job", "key", "n",
        "next_id", "released", "session", "span", "type",
    )  # fmt: skip

    def __init__(self, key: str, msg: Message, session: Session | None) -> None:
        self.key = key
        self.client = msg.src
        self.type = msg.type
        self.correlation_id = msg.correlation_id
        self.session = session
        self.span = -1
        self.job: Job | None = None
        self.buffer: list[tuple[int, str, int, str]] = []  # (event id, name, status, error)
        self.next_id = 1
        self.conn = ""
        self.attempt = msg.attempt
        self.n = 0
        self.done = False
        self.released = False  # no longer counted among its session's open streams


class McpServer:
    """An MCP server: tool calls in a worker pool, answered over Streamable HTTP.

    `handler(job)` runs a tool call and ends with `job.reply(status, error)`.
    """

    def __init__(
        self,
        node: Node,
        workers: int,
        handler: Callable[[Job], None],
        queue_limit: int | None = None,
        settings: McpSettings | None = None,
        pool: WorkerPool | None = None,
    ) -> None:
        self.node = node
        self.settings = settings or DEFAULTS
        self.handler = handler
        self.pool = adopted(pool, self, self._begin) or WorkerPool(
            node, workers, self._begin, queue_limit
        )
        self.sessions: dict[str, Session] = {}
        self.streams: dict[str, Stream] = {}
        self.by_request: dict[str, Stream] = {}

    @property
    def stateless(self) -> bool:
        """Whether this is the 2026-07-28 revision (no sessions, no resumption)."""
        return self.settings.revision == "2026-07-28"

    # -- requests -------------------------------------------------------------------------

    def on_request(self, msg: Message) -> None:
        """A POST (by method) or a GET resuming a stream."""
        body = msg.body
        if isinstance(body, Get):
            self._resume(msg, body)
            return
        post: Post = body
        method = post.method
        if method == INITIALIZE:
            if self.stateless:
                self._answer(msg, 400, error="no initialize in 2026-07-28")
                return
            created = Session(self.node.new_id(), self.node.env.now)
            self.sessions[created.id] = created
            self._answer(msg, 200, created.id)
            return
        session: Session | None = None
        if not self.stateless:
            session, status = self._session(post.session)
            if session is None:
                why = "no session id" if status == 400 else f"session {post.session} not found"
                self._answer(msg, status, error=why)
                if method == CALL_TOOL:
                    span = server_span(self.node, msg, PROTOCOL, self.node.env.now)
                    self.node.journal.span_end(span, "error", self.node.env.now, why, status=status)
                return
        if method == PING:
            if self.stateless:
                self._answer(msg, 404, error="no ping in 2026-07-28")
            else:
                self._answer(msg, 200)
        elif method == RESPONSE:
            if session is not None:
                session.pings.discard(post.request_id)
            self._answer(msg, 202)
        elif method == INITIALIZED:
            self._answer(msg, 202)
        elif method == CANCELLED:
            stream = self.by_request.get(str(post.payload))
            if stream is not None:
                self._cancel(stream, "notifications/cancelled")
            self._answer(msg, 202)
        elif method == CALL_TOOL:
            self._call(msg, post, session)

    def _session(self, session_id: str) -> tuple[Session | None, int]:
        if not session_id:
            return None, 400
        session = self.sessions.get(session_id)
        if session is None:
            return None, 404
        now = self.node.env.now
        idle = self.settings.session_idle_timeout
        if idle is not None and not session.streams and now - session.last_used >= idle:
            self._close_session(session)  # expired while nobody used it
            return None, 404
        session.last_used = now
        return session, 200

    def _call(self, msg: Message, post: Post, session: Session | None) -> None:
        node = self.node
        now = node.env.now
        stream = Stream(msg.msg_id, msg, session)
        stream.span = span = server_span(node, msg, PROTOCOL, now)
        if self.pool.full():
            node.journal.span_end(span, "rejected", now, error="accept queue full", status=503)
            self._answer(msg, 503, error="accept queue full")
            return
        job = Job(self, msg.copy(body=post.payload), span, now, data=stream)
        stream.job = job
        self.streams[stream.key] = stream
        self.by_request[post.request_id] = stream
        if session is not None:
            session.streams += 1
        if not self.settings.json_response:
            self._connect(stream, msg)
            if not self.stateless:
                self._event(stream, PRIMING, retry=self.settings.server_retry)
        self.pool.submit(job)

    def _resume(self, msg: Message, get: Get) -> None:
        if self.stateless:
            self._answer(msg, 405, error="no GET stream in 2026-07-28")
            return
        session, status = self._session(get.session)
        if session is None:
            self._answer(msg, status, error="session not found")
            return
        if not get.stream or get.stream == standalone_key(session):
            self._standalone(msg, get, session)
            return
        stream = self.streams.get(get.stream)
        if stream is None or not self.settings.event_store:
            # Without an event store the GET is a standalone stream, which never carries
            # a response: the request's answer is lost to this client.
            self._open_empty(msg, get.stream)
            return
        self._connect(stream, msg)
        for event_id, name, status_, error in stream.buffer:
            if event_id > get.last_event_id:
                self._frame(stream, "event", Frame(stream.key, 0, name, event_id, status_, error))
        if stream.done:
            self._end(stream)

    def _standalone(self, msg: Message, get: Get, session: Session) -> None:
        """A GET for the session's standalone stream: open it, or reconnect it and replay
        what the event store kept after Last-Event-ID."""
        if not self.settings.standalone_stream:
            self._answer(msg, 405, error="no standalone stream")
            return
        stream = session.standalone
        if stream is not None and stream.conn:
            self._answer(msg, 409, error="Conflict: Only one SSE stream is allowed per session")
            return
        if stream is None:
            stream = session.standalone = Stream(standalone_key(session), msg, session)
            stream.type = STREAM_TYPE
            self.streams[stream.key] = stream
            self._speak(session, stream)
        self._connect(stream, msg)
        for event_id, name, status_, error in stream.buffer:
            if event_id > get.last_event_id:
                self._frame(stream, "event", Frame(stream.key, 0, name, event_id, status_, error),
                            name)  # fmt: skip

    def _speak(self, session: Session, stream: Stream) -> None:
        """The server's own messages on a session's standalone stream, while it lives."""
        node = self.node
        settings = self.settings

        def alive() -> bool:
            return self.sessions.get(session.id) is session

        notify = settings.notify_interval
        if notify is not None:

            def tick() -> None:
                if alive():
                    self._event(stream, LIST_CHANGED)
                    node.after(notify, tick)

            node.after(notify, tick)
        every = settings.server_ping_interval
        if every is not None:
            timeout = settings.timeout

            def ping() -> None:
                if not alive():
                    return
                node.after(every, ping)
                if not stream.conn:
                    return  # no channel to ping the client on
                ping_id = str(stream.next_id)
                session.pings.add(ping_id)
                self._event(stream, PING)

                def expire() -> None:
                    if ping_id in session.pings and alive():
                        # Unanswered: the client is taken for gone, and its session ended.
                        self._close_session(session)

                node.after(timeout, expire)

            node.after(every, ping)

    def _close_session(self, session: Session) -> None:
        """End a session: forget it, and end its standalone stream."""
        del self.sessions[session.id]
        stream = session.standalone
        if stream is not None:
            if stream.conn:
                self._end(stream)
            self.streams.pop(stream.key, None)

    def _connect(self, stream: Stream, msg: Message) -> None:
        stream.conn = msg.msg_id
        stream.attempt = msg.attempt
        stream.n = 0
        # The status line is the HTTP response; the events are its body.
        self._frame(stream, "response", Frame(stream.key, 0, OPEN, status=200))
        close_after = self.settings.close_after
        if close_after is not None and not self.stateless:
            conn = stream.conn

            def close() -> None:
                if stream.conn == conn and not stream.done:
                    self._frame(stream, "control", Frame(stream.key, 0, RESET), RESET_TYPE)
                    stream.conn = ""

            self.node.after(close_after, close)

    def _open_empty(self, msg: Message, key: str) -> None:
        node = self.node
        frame = Frame(key, 0, OPEN, status=200)
        node.send(
            Message(
                msg_id=node.new_id(), type=msg.type, src=node.id, dst=msg.src, kind="response",
                protocol=PROTOCOL, version=node.version, correlation_id=msg.correlation_id,
                causation_id=msg.msg_id, span=msg.span, attempt=msg.attempt, size_bytes=64,
                body=frame,
            )
        )  # fmt: skip

    # -- the job --------------------------------------------------------------------------

    def _begin(self, job: Job) -> None:
        stream: Stream = job.data
        interval = self.settings.progress_interval
        if interval is not None and not self.settings.json_response:
            node = self.node

            def tick() -> None:
                if not stream.done and self.streams.get(stream.key) is stream:
                    self._event(stream, PROGRESS)
                    node.after(interval, tick)

            node.after(interval, tick)
        self.handler(job)

    def reply(self, job: Job, status: int, error: str = "") -> None:
        """The tool call finished: its result (the last event, or the JSON answer)."""
        stream: Stream = job.data
        self.pool.done(job)
        if self.streams.get(stream.key) is not stream or stream.done:
            return  # cancelled, or lost in a crash
        end_span(self.node, job, status, error)
        if self.settings.json_response:
            self._answer(job.msg, status, error=error)
            self._forget(stream)
            return
        self._event(stream, RESULT, status, error)
        stream.done = True
        if stream.conn:
            self._end(stream)
        if self.stateless or not self.settings.event_store:
            self._forget(stream)
        else:
            # Kept for a late resumption (one within the client's read timeout), then
            # dropped: the event store does not grow for ever.
            self._release(stream)
            keep = self.settings.sse_read_timeout
            self.node.after(keep, lambda: self._forget(stream))

    def _cancel(self, stream: Stream, why: str) -> None:
        job = stream.job
        if stream.done or job is None:
            return
        stream.done = True
        node = self.node
        now = node.env.now
        node.journal.span_end(job.span, "cancelled", now, error=why, wait=job.waited(now))
        job.cancelled = True
        self.pool.withdraw(job)
        if job.on_cancel is not None:
            job.on_cancel()
        self._forget(stream)

    def _release(self, stream: Stream) -> None:
        session = stream.session
        if stream.released:
            return
        stream.released = True
        if session is not None and session.streams:
            session.streams -= 1
            session.last_used = self.node.env.now

    def _forget(self, stream: Stream) -> None:
        if self.streams.get(stream.key) is stream:
            del self.streams[stream.key]
        self._release(stream)
        for request_id, found in list(self.by_request.items()):
            if found is stream:
                del self.by_request[request_id]

    # -- frames ---------------------------------------------------------------------------

    def _event(
        self, stream: Stream, name: str, status: int = 0, error: str = "",
        retry: float | None = None,
    ) -> None:  # fmt: skip
        event_id = 0
        if not self.stateless:
            event_id = stream.next_id
            stream.next_id += 1
            if self.settings.event_store:
                stream.buffer.append((event_id, name, status, error))
        if stream.conn:
            frame = Frame(stream.key, 0, name, event_id, status, error, retry)
            # The standalone stream's events are typed by what they carry.
            self._frame(stream, "event", frame, name if stream.type == STREAM_TYPE else "")

    def _end(self, stream: Stream) -> None:
        self._frame(stream, "control", Frame(stream.key, 0, EOF), EOF_TYPE)
        stream.conn = ""

    def _frame(self, stream: Stream, kind: str, frame: Frame, type_: str = "") -> None:
        node = self.node
        if frame.n >= 0:  # a crash's reset (-1) acts at once, out of order
            frame.n = stream.n
            stream.n += 1
        size = self.settings.event_bytes if kind != "control" else 8
        node.send(
            Message(
                msg_id=node.new_id(), type=type_ or stream.type, src=node.id, dst=stream.client,
                kind=kind, protocol=PROTOCOL, version=node.version,
                correlation_id=stream.correlation_id, causation_id=stream.conn, span=stream.span,
                attempt=stream.attempt, size_bytes=size, body=frame,
            )
        )  # fmt: skip

    def _answer(self, msg: Message, status: int, session: str = "", error: str = "") -> None:
        node = self.node
        size = self.settings.response_bytes if status != 202 else 0
        node.send(node.answer(msg, Answer(status, session, error), size, -1))

    # -- the client's side of the connection ----------------------------------------------

    def on_control(self, msg: Message) -> None:
        """The client closed a stream's connection: 2026-07-28 cancels the request."""
        frame: Frame = msg.body
        stream = self.streams.get(frame.stream)
        if stream is None or stream.conn != msg.causation_id or frame.name != CLOSE:
            return
        stream.conn = ""
        if self.stateless:
            self._cancel(stream, "the client closed the stream")

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A frame found the client down: the connection is gone (2026-07-28: cancelled)."""
        frame = msg.body
        if not isinstance(frame, Frame):
            return
        stream = self.streams.get(frame.stream)
        if stream is not None and stream.conn == msg.causation_id:
            stream.conn = ""
            if self.stateless:
                self._cancel(stream, f"the client is gone ({outcome})")

    def reset(self) -> None:
        """The server crashed: sessions and streams are gone, connections reset."""
        for stream in self.streams.values():
            if stream.conn:
                self._frame(stream, "control", Frame(stream.key, -1, RESET), RESET_TYPE)
        self.pool.crash(owner=self)
        self.sessions.clear()
        self.streams.clear()
        self.by_request.clear()


def standalone_key(session: Session) -> str:
    """The key of a session's standalone GET stream."""
    return f"{session.id}/get"
