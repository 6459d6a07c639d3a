"""The calling side of A2A: one call follows one task to its end, in the channel's mode.

A call starts a task and ends when the task does: `completed` is `ok` (200), `failed`
an `error`, `canceled` `cancelled`, `rejected` `rejected`, whatever mode followed it:

- blocking: one SendMessage whose response comes at a terminal or interrupted state;
  a proxy that cuts the idle response ends the call (504): the client never learnt
  the task's id, so the task goes on without it.
- streaming: SendStreamingMessage; events until the stream closes. A stream that
  breaks (a proxy's cut, a reset, a hole, the read watchdog) is subscribed to again
  after `resubscribe_delay`: 1.0 sends the Task first, which holds the artifact so
  far; 0.3 does not, so the chunks made in between are lost to this client.
- polling: SendMessage with return_immediately, then GetTask every `poll_interval`.
- push: the same, with a webhook: the client waits for the server's POSTs and, on a
  terminal one, reads the task with GetTask. A lost notification leaves the client
  waiting until its timeout.

At an interrupted state the client's user answers with a message on the same task in
the same mode: after the channel's answer delay for input-required; after the auth
delay for auth-required, with credentials or (`auth_answer` says so) declining, which
makes the agent reject the task.

The artifact: a streaming client appends each chunk as it comes (append=true) and
takes a snapshot's artifact whole; the others read it from the final Task. At the end
the call's span counts, in `lost_events`, the chunks the client does not hold exactly
once (missing or duplicated), and a call that ended `ok` with any is `partial`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from protocols.a2a import lifecycle as lc
from protocols.a2a.settings import DEFAULTS, A2aSettings
from protocols.a2a.wire import (
    ARTIFACT,
    CANCEL,
    CARD,
    CARD_TYPE,
    CLOSE_TYPE,
    CUT_TYPE,
    EOF_TYPE,
    ERRORS,
    GET,
    PROTOCOL,
    SEND,
    STATUS,
    STREAM,
    SUBSCRIBE,
    TASK,
    UNSUPPORTED_OPERATION,
    Event,
    Push,
    Reply,
    Rpc,
    Snapshot,
)
from protocols.call import Call, CallResult, abort_all, start_call_span
from protocols.inorder import InOrder, ReadsInOrder
from protocols.node import Node
from protocols.transport import Message

_EPS = 1e-9
# The call's result at each terminal state of its task.
RESULTS: dict[str, tuple[str, int]] = {
    lc.COMPLETED: ("ok", 200),
    lc.FAILED: ("error", 500),
    lc.CANCELED: ("cancelled", 0),
    lc.REJECTED: ("rejected", 503),
}
# Replies arrive to a handler (Reply) or tell it no answer came (None, why).
OnReply = Callable[[Reply | None, str], None]


class TaskCall(Call):
    """The Call of a task: its end closes any stream and counts the artifact."""

    __slots__ = ("follow",)
    follow: Follow

    def end(self, result: CallResult) -> None:
        """End the call once (see Call.end), settling its task's bookkeeping first."""
        if self.result is None:
            result = self.follow.closing(result)
        super().end(result)


class Follow(ReadsInOrder[Event]):
    """What the client knows of one call's task: its id, state, stream and artifact."""

    def __init__(
        self, client: A2aClient, settings: A2aSettings, dst: str, type_: str,
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
        self.call: TaskCall
        self.task_id = ""
        self.state = ""
        # The current stream's events in order; its connection (`conn`) is the request
        # that opened the stream, or the blocking send waiting for its answer.
        self.reader: InOrder[Event] = InOrder(
            client.node, settings.stall_timeout,
            lambda event: client.read(self, event), lambda _conn, at: client.stalled(self, at),
        )  # fmt: skip
        self.heard = 0.0
        self.chunks: list[int] = []  # chunk indexes as received (a repeat is a duplicate)
        self.total = -1  # chunks the finished task's artifact has (-1: not known)
        self.answering = False
        self.seen: set[int] = set()  # push notifications seen, by number
        self.subscribes = 0
        # The newest task state seen (its transition count): answers and pushes may
        # arrive out of order, and an older one must not undo a newer (the spec tells
        # receivers to go by the status timestamp).
        self.seq = 0

    @property
    def ended(self) -> bool:
        """Whether the call is over."""
        return self.call.result is not None

    def closing(self, result: CallResult) -> CallResult:
        """The call ends: hang up a stream, count the artifact into the span."""
        client = self.client
        if self.conn and self.settings.mode == "streaming" and not lc.closes_stream(self.state):
            client.hang_up(self)  # a timeout or a cancel; the server closes it otherwise
        client.forget(self)
        outcome, status, error = result
        if outcome not in ("cancelled", "timeout"):
            # Only a call given up on may be followed by a CancelTask for its task.
            client.tasks_of.pop(self.call.key, None)
        off = 0
        if self.total >= 0:
            distinct = len(set(self.chunks))
            missing = self.total - distinct
            dup = len(self.chunks) - distinct
            off = missing + dup
            if off and outcome == "ok":
                outcome = "partial"
                error = f"artifact: {missing} chunk(s) missing, {dup} duplicated"
        node = client.node
        node.journal.span_end(
            self.span, outcome, node.env.now, error=error, attempts=self.subscribes + 1,
            status=status, lost_events=off if self.total >= 0 else None,
        )  # fmt: skip
        return result


class A2aClient:
    """The client side: calls that follow tasks, and the webhook push notifications reach.

    `settings_for(dst)` gives the channel's settings; `answer_delay(dst)` draws how long
    the user takes to answer an input-required task; `auth_answer(dst)` how long the
    client takes to authorize an auth-required one, and whether it supplies the
    credentials (False: it declines). Without it credentials come after `answer_delay`.
    """

    def __init__(
        self,
        node: Node,
        settings: A2aSettings | Callable[[str], A2aSettings] | None = None,
        answer_delay: Callable[[str], float] | None = None,
        auth_answer: Callable[[str], tuple[float, bool]] | None = None,
    ) -> None:
        self.node = node
        if settings is None or isinstance(settings, A2aSettings):
            fixed = settings or DEFAULTS
            self.settings_for: Callable[[str], A2aSettings] = lambda _dst: fixed
        else:
            self.settings_for = settings
        self.answer_delay = answer_delay or (lambda _dst: 0.0)
        self.auth_answer = auth_answer or (lambda dst: (self.answer_delay(dst), True))
        self.pending: dict[str, Call] = {}
        self.follows: dict[str, Follow] = {}  # by call key
        self.by_task: dict[str, Follow] = {}
        self.conns: dict[str, Follow] = {}
        self.rpcs: dict[str, tuple[Follow | None, OnReply]] = {}
        self.cards: dict[str, tuple[bool, bool]] = {}
        self.tasks_of: dict[str, tuple[str, str]] = {}  # call key -> (dst, task id), for cancel

    # -- calls ----------------------------------------------------------------------------

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
        """Start a task on `dst` and follow it; the Call ends when the task does."""
        node = self.node
        span, deadline = start_call_span(
            node, type_, dst, PROTOCOL, timeout, deadline, parent, correlation_id
        )
        settings = self.settings_for(dst)
        key = node.new_id()
        follow = Follow(self, settings, dst, type_, correlation_id, span, body, attempt,
                        deadline if deadline == deadline else math.inf)  # fmt: skip
        call = TaskCall(self, key, span, timeout, on_done)
        call.follow = follow
        follow.call = call
        self.follows[key] = follow
        if settings.card and dst not in self.cards:
            self._rpc(follow, Rpc(CARD), CARD_TYPE, settings.rpc_timeout, self._carded)
        else:
            self._start(follow)
        return call

    def _carded(self, follow: Follow, reply: Reply | None, why: str) -> None:
        if reply is None or reply.card is None:
            follow.call.end(("error", 0, f"no Agent Card from {follow.dst}: {why}"))
            return
        self.cards[follow.dst] = reply.card
        self._start(follow)

    def _start(self, follow: Follow) -> None:
        mode = follow.settings.mode
        card = self.cards.get(follow.dst)
        if card is not None and settings_need(mode, card):
            code = UNSUPPORTED_OPERATION
            follow.call.end(("error", 400, f"{ERRORS[code]}: the Agent Card of {follow.dst} "
                                           f"lacks {mode}"))  # fmt: skip
            return
        self._send_message(follow)

    def _send_message(self, follow: Follow, declined: bool = False) -> None:
        """The first message, or the answer to an interrupted task, in the mode's way."""
        mode = follow.settings.mode
        rpc = Rpc(SEND, follow.task_id, payload=follow.body, declined=declined)
        if mode == "streaming":
            rpc.method = STREAM
            self._open_stream(follow, rpc)
        elif mode == "blocking":
            msg = self._rpc(follow, rpc, follow.type, None, self._blocking_reply)
            follow.conn = msg.msg_id
        else:
            rpc.return_immediately = True
            rpc.push = follow.call.key if mode == "push" else ""
            timeout = follow.settings.rpc_timeout
            self._rpc(follow, rpc, follow.type, timeout, self._accepted)

    # -- blocking -------------------------------------------------------------------------

    def _blocking_reply(self, follow: Follow, reply: Reply | None, why: str) -> None:
        follow.conn = ""
        if reply is None:
            follow.call.end(("error", 0, why))
        elif reply.status != 200:
            follow.call.end(("error", reply.status, f"HTTP {reply.status}: {reply.error}"))
        elif reply.task is None:
            follow.call.end(_error_result(reply))
        else:
            self._snapshot(follow, reply.task)

    # -- polling and push -----------------------------------------------------------------

    def _accepted(self, follow: Follow, reply: Reply | None, why: str) -> None:
        if reply is None:
            follow.call.end(("error", 0, f"SendMessage unanswered: {why}"))
        elif reply.task is None:
            follow.call.end(_error_result(reply))
        else:
            first = not follow.task_id
            self._learn(follow, reply.task.task_id)
            self._snapshot(follow, reply.task)
            if first and follow.settings.mode == "polling" and not follow.ended:
                self.node.after(follow.settings.poll_interval, lambda: self._poll(follow))

    def _poll(self, follow: Follow) -> None:
        if follow.ended:
            return
        self._rpc(follow, Rpc(GET, follow.task_id), follow.type,
                  follow.settings.rpc_timeout, self._polled)  # fmt: skip

    def _polled(self, follow: Follow, reply: Reply | None, why: str) -> None:
        if reply is not None and reply.task is None:
            follow.call.end(_error_result(reply))
            return
        if reply is not None and reply.task is not None:
            self._snapshot(follow, reply.task)
        if not follow.ended and follow.settings.mode == "polling":
            self.node.after(follow.settings.poll_interval, lambda: self._poll(follow))

    def on_push(self, msg: Message) -> None:
        """A push notification reached the webhook: answer 200, then act on it once."""
        node = self.node
        node.send(node.answer(msg, None, 64, -1))
        push: Push = msg.body
        # By the config's token: the notification may overtake SendMessage's answer.
        follow = self.follows.get(push.token) or self.by_task.get(push.task_id)
        if follow is not None:
            self._learn(follow, push.task_id)
        if follow is None or follow.ended or push.notification in follow.seen:
            return  # a duplicate (at-least-once), or a task this client no longer follows
        follow.seen.add(push.notification)
        if push.seq < follow.seq:
            return  # older than what the client knows
        follow.seq = push.seq
        if push.state in lc.TERMINAL:
            # The notification carries the status; the artifact is read with GetTask.
            follow.state = push.state
            self._rpc(follow, Rpc(GET, follow.task_id), follow.type,
                      follow.settings.rpc_timeout, self._fetched)  # fmt: skip
        else:
            self._state(follow, push.state)

    def _fetched(self, follow: Follow, reply: Reply | None, why: str) -> None:
        if reply is not None and reply.task is not None:
            self._snapshot(follow, reply.task)
        elif reply is None:
            # Try again: the task is over, only its result is missing.
            self.node.after(follow.settings.poll_interval, lambda: self._refetch(follow))
        else:
            follow.call.end(_error_result(reply))

    def _refetch(self, follow: Follow) -> None:
        if not follow.ended:
            self._rpc(follow, Rpc(GET, follow.task_id), follow.type,
                      follow.settings.rpc_timeout, self._fetched)  # fmt: skip

    # -- streaming ------------------------------------------------------------------------

    def _open_stream(self, follow: Follow, rpc: Rpc) -> None:
        msg = self._rpc(follow, rpc, follow.type, None, self._stream_refused)
        follow.reader.open(msg.msg_id)
        follow.heard = self.node.env.now
        self.conns[msg.msg_id] = follow
        self._watch(follow, msg.msg_id)

    def _stream_refused(self, follow: Follow, reply: Reply | None, why: str) -> None:
        # A stream's request answered with a JSON-RPC error (or not at all).
        if reply is None:
            self._broken(follow, why)
            return
        if follow.conn:
            self.conns.pop(follow.conn, None)
            follow.conn = ""
        if reply.code == UNSUPPORTED_OPERATION and follow.task_id:
            # SubscribeToTask on a task that ended meanwhile: read how it ended.
            self._rpc(follow, Rpc(GET, follow.task_id), follow.type,
                      follow.settings.rpc_timeout, self._fetched)  # fmt: skip
        else:
            follow.call.end(_error_result(reply))

    def _watch(self, follow: Follow, conn: str) -> None:
        settings = follow.settings
        node = self.node
        # Until the status line the connect timeout applies; then the read watchdog.
        limit = settings.rpc_timeout

        def check() -> None:
            if follow.conn != conn or follow.ended:
                return
            watch = limit if follow.reader.expected == 0 else settings.read_timeout
            if watch is None:
                node.after(settings.rpc_timeout, check)
                return
            idle = node.env.now - follow.heard
            if idle >= watch - _EPS:
                self._broken(follow, f"no bytes for {watch:g} s")
            else:
                node.after(watch - idle, check)

        node.after(limit, check)

    def on_event(self, msg: Message) -> None:
        """A piece of a stream: read it in order (TCP's job), holding any ahead of a hole."""
        event: Event = msg.body
        follow = self.conns.get(event.conn)
        if follow is None or follow.conn != event.conn or follow.ended:
            return
        follow.reader.arrive(event.n, event)

    def stalled(self, follow: Follow, at: int) -> None:
        """Event `at` of the follow's stream never arrived: the stream is broken."""
        if not follow.ended:
            self._broken(follow, f"event {at} of the stream never arrived")

    def read(self, follow: Follow, event: Event) -> None:
        """The follow's stream's next event, in order."""
        follow.heard = self.node.env.now
        name = event.name
        if name == TASK and event.snapshot is not None:
            self._learn(follow, event.snapshot.task_id)
            self._snapshot(follow, event.snapshot)
        elif name == ARTIFACT:
            self._learn(follow, event.task_id)
            follow.chunks.append(event.chunk)
        elif name == STATUS:
            self._learn(follow, event.task_id)
            if event.state == lc.COMPLETED:
                # The simulator's bookkeeping rides on the event (not on the wire): how
                # many chunks the artifact has, to count what this client missed.
                follow.total = event.chunk
            self._state(follow, event.state, event.reason)
        elif name == EOF_TYPE:
            self._stream_ended(follow)
        elif name == CUT_TYPE:
            self._broken(follow, event.reason or "the connection was cut")

    def on_control(self, msg: Message) -> None:
        """A stream's end, a cut or a keep-alive; a cut blocking send fails with 504."""
        event: Event = msg.body
        follow = self.conns.get(event.conn)
        if follow is not None:
            self.on_event(msg)
            return
        found = self.rpcs.get(event.conn)
        if found is not None and msg.type == CUT_TYPE:
            # A blocking send's response cut (by the proxy, or a reset): no answer comes.
            del self.rpcs[event.conn]
            waiting, on_reply = found
            if waiting is not None and not waiting.ended:
                on_reply(None, event.reason)

    def _stream_ended(self, follow: Follow) -> None:
        conn = follow.conn
        self.conns.pop(conn, None)
        self.rpcs.pop(conn, None)
        follow.conn = ""
        if follow.ended or follow.state in lc.INTERRUPTED:
            return
        if follow.state in lc.TERMINAL:
            self._finish(follow)
        else:
            self._broken(follow, "the stream ended before the task did", hang_up=False)

    def _broken(self, follow: Follow, why: str, hang_up: bool = True) -> None:
        if follow.ended:
            return
        if follow.conn:
            if hang_up:
                self.hang_up(follow)
            self.conns.pop(follow.conn, None)
            self.rpcs.pop(follow.conn, None)
            follow.conn = ""
        settings = follow.settings
        if not (follow.task_id and settings.resubscribe):
            follow.call.end(("error", 0, f"the stream broke: {why}"))
            return
        node = self.node

        def again() -> None:
            if not follow.ended and not follow.conn:
                follow.subscribes += 1
                self._open_stream(follow, Rpc(SUBSCRIBE, follow.task_id))

        node.after(settings.resubscribe_delay, again)

    def hang_up(self, follow: Follow) -> None:
        """Close the current stream (the client's FIN): the task goes on (spec §3.5.2)."""
        node = self.node
        node.send(
            Message(
                msg_id=node.new_id(), type=CLOSE_TYPE, src=node.id, dst=follow.dst,
                kind="control", protocol=PROTOCOL, version=node.version,
                correlation_id=follow.correlation_id, causation_id=follow.conn,
                span=follow.span, attempt=follow.attempt, size_bytes=0,
            )
        )  # fmt: skip

    # -- what the client learns -----------------------------------------------------------

    def _learn(self, follow: Follow, task_id: str) -> None:
        if task_id and not follow.task_id:
            follow.task_id = task_id
            self.by_task[task_id] = follow
            self.tasks_of[follow.call.key] = (follow.dst, task_id)

    def _snapshot(self, follow: Follow, task: Snapshot) -> None:
        self._learn(follow, task.task_id)
        if task.seq < follow.seq:
            return  # an answer that a newer push or event overtook
        follow.seq = task.seq
        # A Task carries the artifact whole: it replaces what the client holds.
        follow.chunks = list(range(task.chunks))
        if task.state == lc.COMPLETED:
            follow.total = task.chunks
        self._state(follow, task.state, task.error)

    def _state(self, follow: Follow, state: str, reason: str = "") -> None:
        if follow.ended:
            return
        follow.state = state
        if state in lc.TERMINAL:
            if reason and state != lc.COMPLETED:
                follow.call.end((*RESULTS[state], reason))
            else:
                self._finish(follow)
        elif state in lc.INTERRUPTED and not follow.answering:
            follow.answering = True
            if state == lc.AUTH_REQUIRED:
                delay, supplies = self.auth_answer(follow.dst)
            else:
                delay, supplies = self.answer_delay(follow.dst), True
            self.node.after(delay, lambda: self._answer(follow, declined=not supplies))
        elif state == lc.WORKING:
            follow.answering = False

    def _answer(self, follow: Follow, declined: bool = False) -> None:
        if follow.ended or follow.state not in lc.INTERRUPTED:
            return
        if follow.conn and follow.settings.mode == "streaming":
            # The server closes a stream at an interrupted state; its end may still be
            # on the way, and nothing more will come on it.
            self.conns.pop(follow.conn, None)
            self.rpcs.pop(follow.conn, None)
            follow.conn = ""
        self._send_message(follow, declined)

    def _finish(self, follow: Follow) -> None:
        outcome, status = RESULTS[follow.state]
        follow.call.end((outcome, status, "" if outcome == "ok" else f"task {follow.state}"))

    # -- RPCs -----------------------------------------------------------------------------

    def _rpc(
        self,
        follow: Follow,
        rpc: Rpc,
        type_: str,
        timeout: float | None,
        on_reply: Callable[[Follow, Reply | None, str], None],
    ) -> Message:
        node = self.node
        settings = follow.settings
        msg = Message(
            msg_id=node.new_id(), type=type_, src=node.id, dst=follow.dst, kind="request",
            protocol=PROTOCOL, version=node.version, correlation_id=follow.correlation_id,
            span=follow.span, attempt=follow.attempt, size_bytes=settings.request_bytes,
            body=rpc, deadline=follow.deadline,
        )  # fmt: skip
        self.rpcs[msg.msg_id] = (follow, lambda reply, why: on_reply(follow, reply, why))
        node.send(msg)
        if timeout is not None:

            def expire() -> None:
                found = self.rpcs.pop(msg.msg_id, None)
                if found is not None and not follow.ended:
                    found[1](None, f"no answer within {timeout:g} s")

            node.after(timeout, expire)
        return msg

    def on_response(self, msg: Message) -> None:
        """A JSON-RPC response: to the request that waits for it."""
        found = self.rpcs.pop(msg.causation_id, None)
        if found is None:
            return  # late, or a duplicate
        follow, on_reply = found
        if follow is None or not follow.ended:
            on_reply(msg.body, "")

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A request found the server down: no answer will come."""
        found = self.rpcs.pop(msg.msg_id, None)
        if found is not None:
            follow, on_reply = found
            if follow is None or not follow.ended:
                on_reply(None, f"{msg.dst} refused the connection ({outcome})")

    def cancel(self, dst: str, request_id: str, correlation_id: str = "", span: int = -1) -> None:
        """The caller gave up on call `request_id`: CancelTask its task, if it knows it."""
        known = self.tasks_of.pop(request_id, None)
        if known is None:
            return
        node = self.node
        node.send(
            Message(
                msg_id=node.new_id(), type=CANCEL, src=node.id, dst=dst, kind="request",
                protocol=PROTOCOL, version=node.version, correlation_id=correlation_id,
                span=span, size_bytes=self.settings_for(dst).request_bytes,
                body=Rpc(CANCEL, known[1]),
            )
        )  # fmt: skip

    def forget(self, follow: Follow) -> None:
        """The call ended: drop what routes to it (its task id stays known for a cancel)."""
        self.follows.pop(follow.call.key, None)
        if follow.task_id:
            self.by_task.pop(follow.task_id, None)
        if follow.conn:
            self.conns.pop(follow.conn, None)

    def reset(self) -> None:
        """The client crashed: its calls end in error, its streams are reset."""
        for follow in list(self.follows.values()):
            if follow.conn and follow.settings.mode == "streaming":
                self.hang_up(follow)
        abort_all(self)
        self.follows.clear()
        self.by_task.clear()
        self.conns.clear()
        self.rpcs.clear()
        self.tasks_of.clear()
        self.cards.clear()


def settings_need(mode: str, card: tuple[bool, bool]) -> bool:
    """Whether `mode` needs a capability the card (streaming, push) lacks."""
    streaming, push = card
    return (mode == "streaming" and not streaming) or (mode == "push" and not push)


def _error_result(reply: Reply) -> CallResult:
    name = ERRORS.get(reply.code, "JSON-RPC error")
    return "error", 400 if reply.code != -32603 else 500, f"{name} ({reply.code}): {reply.error}"
