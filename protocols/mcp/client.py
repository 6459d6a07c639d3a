"""The calling side of MCP Streamable HTTP: sessions, tool calls, resumption, re-issue.

A call is one `tools/call`. Under 2025-11-25 it first needs the callee's session: the
client POSTs `initialize` (calls made meanwhile wait for it), takes the Mcp-Session-Id
of the answer, sends `notifications/initialized`, then sends every call with the id. A
404 for the session (it expired, or the server restarted) drops it; with `reinitialize`
the client initializes again and re-sends the call (the spec's MUST), else the call
fails with python-sdk's "Session terminated" (32600).

The answer is a JSON body or an SSE stream. A stream that breaks (a hole, a reset, the
server closing it, `sse_read_timeout` of silence) is resumed under 2025-11-25 with a GET
carrying Last-Event-ID after the server's `retry:` or `reconnection_delay`; events it
already has are skipped, so it sees each exactly once (`lost_events` counts the ids it
never got); a stream that broke before its priming event has nothing to resume from,
and the call fails, as in python-sdk. Under 2026-07-28 the broken stream loses the request: the client closes it
(which cancels it at the server) and re-issues the call with a new request id. Both
give up after `max_reconnections`.

When the caller gives up (its timeout, a cancel), the client tells the server: a
notifications/cancelled POST (2025-11-25) or closing the stream (2026-07-28).

Once a 2025-11-25 session is initialized, a `listen.Listener` keeps its standalone GET
stream (the server's notifications and pings) and sends the client's pings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from protocols.call import Call, CallResult, abort_all, start_call_span, status_result
from protocols.inorder import InOrder, ReadsInOrder
from protocols.mcp.listen import Listener
from protocols.mcp.settings import DEFAULTS, McpSettings
from protocols.mcp.wire import (
    CALL_TOOL,
    CANCELLED,
    CLOSE,
    CLOSE_TYPE,
    EOF,
    INITIALIZE,
    INITIALIZED,
    OPEN,
    PROGRESS,
    PROTOCOL,
    RESET,
    RESULT,
    SESSION_TERMINATED,
    Answer,
    Frame,
    Get,
    Post,
)
from protocols.node import Node
from protocols.transport import Message

_EPS = 1e-9


class ToolCall(Call):
    """The Call of a tool: its end closes its stream and records the span's figures."""

    __slots__ = ("follow",)
    follow: Follow

    def end(self, result: CallResult) -> None:
        """End the call once (see Call.end), settling its stream first."""
        if self.result is None:
            self.follow.closing(result)
        super().end(result)


class SessionState:
    """The client's session with one server (2025-11-25)."""

    __slots__ = ("id", "initializing", "waiting")

    def __init__(self) -> None:
        self.id = ""
        self.initializing = False
        self.waiting: list[Follow] = []


class Follow(ReadsInOrder[Frame]):
    """One tool call on the client: its request ids, stream, events and tries."""

    def __init__(
        self, client: McpClient, settings: McpSettings, dst: str, type_: str,
        correlation_id: str, span: int, body: Any, attempt: int, deadline: float,
    ) -> None:  # fmt: skip
        self.client = client
        self.settings = settings
        self.dst = dst
        self.type = type_
        self.correlation_id = correlation_id
        self.span = span
        self.body = body
        self.attempt = attempt
        self.deadline = deadline
        self.call: ToolCall
        self.request_id = ""
        self.stream = ""  # the stream's key: the msg_id of the POST that opened it
        # The current connection's frames in order; `conn` is the msg_id of its request.
        self.reader: InOrder[Frame] = InOrder(
            client.node, settings.stall_timeout,
            lambda frame: client.read(self, frame), lambda _conn, at: client.stalled(self, at),
        )  # fmt: skip
        self.heard = 0.0
        self.last_event_id = 0
        self.events = 0
        self.lost = 0
        self.retry = settings.reconnection_delay
        self.tries = 0  # resumptions (2025-11-25) or re-issues (2026-07-28)
        self.posts = 0
        self.reinitialized = 0

    @property
    def ended(self) -> bool:
        """Whether the call is over."""
        return self.call.result is not None

    @property
    def connections(self) -> int:
        """POSTs of the call (re-issues included) and GETs resuming it."""
        gets = self.tries if self.settings.revision == "2025-11-25" else 0
        return self.posts + gets

    def closing(self, result: CallResult) -> None:
        """The call ends: tell the server if the caller gave up, record the span."""
        client = self.client
        outcome, status, error = result
        if outcome in ("timeout", "cancelled") and self.settings.cancel_on_timeout:
            client.give_up(self)
        client.forget(self)
        node = client.node
        node.journal.span_end(
            self.span, outcome, node.env.now, error=error, attempts=self.connections,
            status=status, lost_events=self.lost,
        )  # fmt: skip


class McpClient:
    """The client side of MCP: sessions per server and tool calls over them."""

    def __init__(
        self, node: Node, settings: McpSettings | Callable[[str], McpSettings] | None = None
    ) -> None:
        self.node = node
        if settings is None or isinstance(settings, McpSettings):
            fixed = settings or DEFAULTS
            self.settings_for: Callable[[str], McpSettings] = lambda _dst: fixed
        else:
            self.settings_for = settings
        self.pending: dict[str, Call] = {}
        self.follows: dict[str, Follow] = {}
        self.sessions: dict[str, SessionState] = {}
        self.conns: dict[str, Follow] = {}  # by the msg_id of a POST or GET
        self.requests: dict[str, Callable[[Answer | None, str], None]] = {}
        self.listeners: dict[str, Listener] = {}  # by server: its session's GET stream

    def call(
        self,
        dst: str,
        type_: str,
        correlation_id: str,
        timeout: float | None = None,
        parent: int = -1,
        size_bytes: int = 512,
        body: Any = None,
        causation_id: str = "",
        on_done: Callable[[CallResult], None] | None = None,
        attempt: int = 1,
        idempotency_key: str = "",
        deadline: float | None = None,
    ) -> Call:
        """Call a tool on `dst`; the Call ends with its result, its timeout or a failure."""
        node = self.node
        span, deadline = start_call_span(
            node, type_, dst, PROTOCOL, timeout, deadline, parent, correlation_id
        )
        settings = self.settings_for(dst)
        key = node.new_id()
        follow = Follow(self, settings, dst, type_, correlation_id, span, body, attempt,
                        deadline if deadline == deadline else math.inf)  # fmt: skip
        call = ToolCall(self, key, span, timeout, on_done)
        call.follow = follow
        follow.call = call
        self.follows[key] = follow
        self._send(follow)
        return call

    # -- sessions -------------------------------------------------------------------------

    def _send(self, follow: Follow) -> None:
        if follow.settings.revision == "2026-07-28":
            self._post_call(follow)
            return
        session = self.sessions.setdefault(follow.dst, SessionState())
        if session.id:
            self._post_call(follow)
            return
        session.waiting.append(follow)
        if not session.initializing:
            self._initialize(follow.dst, follow)

    def _initialize(self, dst: str, follow: Follow) -> None:
        session = self.sessions[dst]
        session.initializing = True

        def answered(answer: Answer | None, why: str) -> None:
            session.initializing = False
            waiting, session.waiting = session.waiting, []
            if answer is None or answer.status != 200:
                why = why if answer is None else f"HTTP {answer.status}: {answer.error}"
                for each in waiting:
                    if not each.ended:
                        status = 0 if answer is None else answer.status
                        each.call.end(("error", status, f"initialize failed: {why}"))
                return
            session.id = answer.session
            self._post(follow, Post(INITIALIZED, session=session.id), None)
            self._listen(dst, session, follow)
            for each in waiting:
                if not each.ended:
                    self._post_call(each)

        self._post(follow, Post(INITIALIZE), answered, follow.settings.timeout)

    def _listen(self, dst: str, session: SessionState, follow: Follow) -> None:
        """Keep the new session's GET stream and pings (python-sdk opens the stream once
        notifications/initialized is sent)."""
        self._unlisten(dst)
        settings = follow.settings
        if not settings.get_stream and settings.ping_interval is None:
            return
        sid = session.id

        def current() -> bool:
            return self.sessions.get(dst) is session and session.id == sid

        def drop() -> None:
            if current():
                session.id = ""

        listener = Listener(self.node, settings, dst, sid, follow.correlation_id,
                            self.requests, current, drop)  # fmt: skip
        self.listeners[dst] = listener
        listener.start()

    def _unlisten(self, dst: str) -> None:
        listener = self.listeners.pop(dst, None)
        if listener is not None:
            listener.stop()

    def _expired(self, follow: Follow, session_id: str) -> None:
        # 404: the session is gone. Drop it (unless a newer one replaced it already).
        session = self.sessions.get(follow.dst)
        if session is not None and session.id == session_id:
            session.id = ""
            self._unlisten(follow.dst)
        if not follow.settings.reinitialize or follow.reinitialized >= 1:
            error = f"Session terminated ({SESSION_TERMINATED}): HTTP 404"
            follow.call.end(("error", 404, error))
            return
        follow.reinitialized += 1
        self._send(follow)

    # -- the call -------------------------------------------------------------------------

    def _post_call(self, follow: Follow) -> None:
        node = self.node
        follow.request_id = node.new_id()
        session = self.sessions.get(follow.dst)
        session_id = session.id if session is not None else ""
        if follow.settings.revision == "2026-07-28":
            session_id = ""
        post = Post(CALL_TOOL, follow.request_id, session_id, follow.body)
        follow.posts += 1

        def answered(answer: Answer | None, why: str) -> None:
            # A JSON answer: the result, or a refusal (404: the session is gone).
            if answer is None:
                follow.call.end(("error", 0, why))
            elif answer.status == 404 and session_id:
                self._expired(follow, session_id)
            else:
                follow.call.end(status_result(answer.status, answer.error))

        msg = self._post(follow, post, answered)
        follow.stream = msg.msg_id
        follow.reader.open(msg.msg_id)
        follow.last_event_id = 0
        follow.heard = node.env.now
        self.conns[msg.msg_id] = follow
        self._watch(follow, msg.msg_id)

    def _resume(self, follow: Follow) -> None:
        if follow.ended or follow.conn:
            return
        node = self.node
        session = self.sessions.get(follow.dst)
        get = Get(follow.stream, follow.last_event_id, session.id if session else "")
        msg = Message(
            msg_id=node.new_id(), type=follow.type, src=node.id, dst=follow.dst,
            kind="request", protocol=PROTOCOL, version=node.version,
            correlation_id=follow.correlation_id, span=follow.span,
            attempt=follow.attempt + follow.tries, size_bytes=256, body=get,
            deadline=follow.deadline,
        )  # fmt: skip
        follow.reader.open(msg.msg_id)
        follow.heard = node.env.now
        self.conns[msg.msg_id] = follow

        def refused(answer: Answer | None, why: str) -> None:
            if answer is not None and answer.status == 404 and get.session:
                self._expired(follow, get.session)
            elif answer is not None:
                follow.call.end(status_result(answer.status, answer.error or "resume refused"))

        self.requests[msg.msg_id] = refused
        node.send(msg)
        self._watch(follow, msg.msg_id)

    def _watch(self, follow: Follow, conn: str) -> None:
        node = self.node
        settings = follow.settings

        def check() -> None:
            if follow.conn != conn or follow.ended:
                return
            # The HTTP timeout until the status line, then the SSE read timeout.
            limit = settings.timeout if follow.reader.expected == 0 else settings.sse_read_timeout
            idle = node.env.now - follow.heard
            if idle >= limit - _EPS:
                self._broken(follow, f"no bytes for {limit:g} s")
            else:
                node.after(limit - idle, check)

        node.after(settings.timeout, check)

    # -- the stream -----------------------------------------------------------------------

    def on_frame(self, msg: Message) -> None:
        """A piece of a response stream: read it in order, holding any ahead of a hole."""
        frame: Frame = msg.body
        listener = self.listeners.get(msg.src)
        if (
            listener is not None
            and listener.reader.conn
            and listener.reader.conn == msg.causation_id
        ):
            listener.on_frame(msg)
            return
        follow = self.conns.get(msg.causation_id)
        if follow is None or follow.conn != msg.causation_id or follow.ended:
            if msg.kind == "event" and follow is None:
                self._refuse(msg)
            return
        if frame.n < 0:
            self._broken(follow, "the server reset the connection", hang_up=False)
            return
        follow.reader.arrive(frame.n, frame)

    def stalled(self, follow: Follow, at: int) -> None:
        """Frame `at` of the follow's connection never arrived: the connection is broken."""
        if not follow.ended:
            self._broken(follow, f"frame {at} of the stream never arrived")

    def read(self, follow: Follow, frame: Frame) -> None:
        """The follow's connection's next frame, in order."""
        follow.heard = self.node.env.now
        name = frame.name
        if frame.retry is not None:
            follow.retry = frame.retry
        if name == OPEN:
            self.requests.pop(follow.conn, None)
            return
        if name == RESET:
            self._broken(follow, "the server closed the connection", hang_up=False)
            return
        if name == EOF:
            self._broken(follow, "the response ended before its result", hang_up=False)
            return
        event_id = frame.event_id
        if event_id:
            if event_id <= follow.last_event_id:
                return  # already seen
            follow.lost += event_id - follow.last_event_id - 1
            follow.last_event_id = event_id
        if name == PROGRESS:
            follow.events += 1
        elif name == RESULT:
            self.conns.pop(follow.conn, None)
            follow.conn = ""
            follow.call.end(status_result(frame.status, frame.error))

    def _broken(self, follow: Follow, why: str, hang_up: bool = True) -> None:
        if follow.ended:
            return
        if follow.conn:
            if hang_up:
                self._hang_up(follow)
            self.conns.pop(follow.conn, None)
            self.requests.pop(follow.conn, None)
            follow.conn = ""
        settings = follow.settings
        if follow.tries >= settings.max_reconnections:
            follow.call.end(("error", 0, f"gave up after {follow.tries} reconnection(s): {why}"))
            return
        if settings.revision == "2025-11-25" and not follow.last_event_id:
            # No event id yet: nothing to resume from. python-sdk fails the request.
            follow.call.end(("error", 0, f"the POST's stream broke before its first event: {why}"))
            return
        follow.tries += 1
        if settings.revision == "2026-07-28":
            # The request is lost with its stream: re-issue it with a new request id.
            self.node.after(0.0, lambda: None if follow.ended else self._post_call(follow))
        else:
            self.node.after(follow.retry, lambda: self._resume(follow))

    def _refuse(self, msg: Message) -> None:
        # An event on a connection this client closed: its TCP answers with a reset,
        # which is how a server whose client's FIN was lost learns the stream is gone.
        node = self.node
        node.send(
            Message(
                msg_id=node.new_id(), type=CLOSE_TYPE, src=node.id, dst=msg.src,
                kind="control", protocol=PROTOCOL, version=node.version,
                correlation_id=msg.correlation_id, causation_id=msg.causation_id,
                span=msg.span, attempt=msg.attempt, size_bytes=0,
                body=Frame(msg.body.stream, -1, CLOSE),
            )
        )  # fmt: skip

    def _hang_up(self, follow: Follow) -> None:
        node = self.node
        node.send(
            Message(
                msg_id=node.new_id(), type=CLOSE_TYPE, src=node.id, dst=follow.dst,
                kind="control", protocol=PROTOCOL, version=node.version,
                correlation_id=follow.correlation_id, causation_id=follow.conn,
                span=follow.span, attempt=follow.attempt, size_bytes=0,
                body=Frame(follow.stream, -1, CLOSE),
            )
        )  # fmt: skip

    def give_up(self, follow: Follow) -> None:
        """The caller gave up: cancel the request at the server."""
        if follow.settings.revision == "2026-07-28":
            if follow.conn:
                self._hang_up(follow)  # closing the stream is the cancellation
            return
        session = self.sessions.get(follow.dst)
        if follow.request_id and session is not None and session.id:
            post = Post(CANCELLED, session=session.id, payload=follow.request_id)
            self._post(follow, post, None)

    # -- plain exchanges ------------------------------------------------------------------

    def _post(
        self,
        follow: Follow,
        post: Post,
        on_answer: Callable[[Answer | None, str], None] | None,
        timeout: float | None = None,
    ) -> Message:
        node = self.node
        msg = Message(
            msg_id=node.new_id(), type=follow.type if post.method == CALL_TOOL else post.method,
            src=node.id, dst=follow.dst, kind="request", protocol=PROTOCOL,
            version=node.version, correlation_id=follow.correlation_id, span=follow.span,
            attempt=follow.attempt + (follow.tries if post.method == CALL_TOOL else 0),
            size_bytes=follow.settings.request_bytes, body=post,
            deadline=follow.deadline,
        )  # fmt: skip
        if on_answer is not None:
            self.requests[msg.msg_id] = on_answer
        node.send(msg)
        if timeout is not None and on_answer is not None:

            def expire() -> None:
                found = self.requests.pop(msg.msg_id, None)
                if found is not None:
                    found(None, f"no answer within {timeout:g} s")

            node.after(timeout, expire)
        return msg

    def on_answer(self, msg: Message) -> None:
        """A plain HTTP answer: to the request that waits for it."""
        found = self.requests.pop(msg.causation_id, None)
        if found is not None:
            found(msg.body, "")

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A request found the server down."""
        found = self.requests.pop(msg.msg_id, None)
        follow = self.conns.get(msg.msg_id)
        if follow is not None and follow.conn == msg.msg_id:
            self._broken(follow, f"{msg.dst} refused the connection ({outcome})", hang_up=False)
        elif found is not None:
            found(None, f"{msg.dst} refused the connection ({outcome})")

    def forget(self, follow: Follow) -> None:
        """The call ended: drop what routes to it."""
        self.follows.pop(follow.call.key, None)
        if follow.conn:
            self.conns.pop(follow.conn, None)
            self.requests.pop(follow.conn, None)

    def reset(self) -> None:
        """The client crashed: its calls end in error, its sessions are forgotten."""
        abort_all(self)
        self.follows.clear()
        self.sessions.clear()
        self.listeners.clear()
        self.conns.clear()
        self.requests.clear()
