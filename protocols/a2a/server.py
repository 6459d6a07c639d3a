"""The serving side of A2A: tasks, their streams and blocking waits, push notifications.

A message without a task id creates a task (SUBMITTED) and a job in the server's worker
pool; a worker taking it makes it WORKING and runs the handler, which ends with
`job.reply(status, error)`: 2xx completes the task, anything else fails it. While it
works the task emits an artifact chunk every `chunk_interval` (append=true), the last
one (last_chunk=true) with its completion. With `input_required` a task may, when first
taken, ask its client for input: it frees its worker until the client's next message
on the task, which puts it back in the queue as WORKING. With `auth_required` a task
may likewise need credentials its client must supply (AUTH_REQUIRED, spec §7.6): the
client's message on the task brings them (WORKING again), or declines (REJECTED); a
task still waiting after `auth_timeout` FAILS.

How a client learns of it, by the request's method:

- `SendMessage` (blocking): the response waits until the task is terminal or
  interrupted (spec §3.2.2);
- `SendMessage` with return_immediately: answered at once; then `GetTask` polls, or
  push notifications POST the task's status to the client's webhook on each terminal
  or interrupted state (A2A "streaming and async": "typically" those);
- `SendStreamingMessage` / `SubscribeToTask`: a stream: its status line, the Task first
  (1.0; 0.3's resubscribe does not send it), then status and artifact events; it closes
  at a terminal or interrupted state (1.0, spec §3.1.2 and §11.7). Closing one stream
  leaves the task and other streams alone (§3.5.2). No events are replayed (§3.7).

A proxy in front of the server (`proxy_idle_timeout`) cuts any response that sent no
byte for that long: a blocking send's client gets 504, a stream just ends. It sits at
the server in this model, so a cut reaches the client one link latency later.

Push delivery is at least once, as the spec asks: each notification is a span (name
`a2a.push`) that ends `ok` at the first 2xx, or `error` once every attempt failed
(`push_retries` retries, 0 in a2a-python). A late 2xx after a retry went out still
counts, so a webhook may see a notification twice.

Every state change is a row of the trace's `tasks` table (`Journal.task_transition`);
the task's server span ends at its terminal state.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from protocols.a2a import lifecycle as lc
from protocols.a2a.settings import DEFAULTS, A2aSettings
from protocols.a2a.wire import (
    ARTIFACT,
    CANCEL,
    CARD,
    CLOSE_TYPE,
    CUT_TYPE,
    EOF_TYPE,
    GET,
    PROTOCOL,
    PUSH_NOT_SUPPORTED,
    PUSH_TYPE,
    SEND,
    STATUS,
    STREAM,
    SUBSCRIBE,
    TASK,
    TASK_NOT_CANCELABLE,
    TASK_NOT_FOUND,
    UNSUPPORTED_OPERATION,
    Event,
    Push,
    Reply,
    Rpc,
    Snapshot,
)
from protocols.node import Node
from protocols.transport import Message
from protocols.workers import Job, WorkerPool, adopted, server_span

OPEN = "open"  # a stream's status line (200), position 0 of its connection
KEEPALIVE_TYPE = "a2a.keepalive"

# The span outcome and status of a task's server span at each terminal state.
ENDINGS = {
    lc.COMPLETED: ("ok", 200),
    lc.FAILED: ("error", 500),
    lc.CANCELED: ("cancelled", 0),
    lc.REJECTED: ("rejected", 503),
}


class Task:
    """One task on the server: its state, its job, its artifact so far, who follows it."""

    __slots__ = (
        "asked",
        "authed",
        "chunks",
        "client",
        "conns",
        "correlation_id",
        "error",
        "id",
        "job",
        "last_chunk",
        "notifications",
        "push",
        "seq",
        "span",
        "state",
        "type",
    )

    def __init__(self, task_id: str, msg: Message, span: int) -> None:
        self.id = task_id
        self.client = msg.src
        self.type = msg.type
        self.correlation_id = msg.correlation_id
        self.span = span
        self.state = lc.CREATED
        self.job: Job | None = None
        self.chunks = 0
        self.last_chunk = False
        self.asked = False
        self.authed = False  # asked its client for credentials already
        self.push = ""  # the push config's token ("" for none)
        self.notifications = 0
        self.seq = 0  # transitions so far: what orders snapshots and pushes
        self.error = ""
        self.conns: list[Conn] = []  # open responses: streams and blocking sends

    def snapshot(self) -> Snapshot:
        """The Task as GetTask returns it."""
        return Snapshot(self.id, self.state, self.chunks, self.last_chunk, self.error, self.seq)


class Conn:
    """An open response of this server: a task stream or a blocking send's wait."""

    __slots__ = ("attempt", "client", "key", "last_byte", "n", "open", "request", "stream")

    def __init__(self, request: Message, stream: bool, now: float) -> None:
        self.key = request.msg_id
        self.client = request.src
        self.request = request
        self.attempt = request.attempt
        self.stream = stream
        self.n = 0
        self.last_byte = now
        self.open = True


class PushState:
    """One push notification being delivered: its span and attempts."""

    __slots__ = ("attempts", "body", "done", "span", "task")

    def __init__(self, task: Task, body: Push, span: int) -> None:
        self.task = task
        self.body = body
        self.span = span
        self.attempts = 0
        self.done = False


class A2aServer:
    """An A2A agent's server: tasks in a worker pool, their streams and notifications.

    `handler(job)` runs when a worker takes a task and ends with `job.reply(status,
    error)`; `job.data` is the Task. `draw()` gives a uniform number in [0, 1) (the
    run's stream for this server), for `input_required`.
    """

    def __init__(
        self,
        node: Node,
        workers: int,
        handler: Callable[[Job], None],
        queue_limit: int | None = None,
        settings: A2aSettings | None = None,
        pool: WorkerPool | None = None,
    ) -> None:
        self.node = node
        self.settings = settings or DEFAULTS
        self.handler = handler
        self.pool = adopted(pool, self, self._begin) or WorkerPool(
            node, workers, self._begin, queue_limit
        )
        self.tasks: dict[str, Task] = {}
        self.conns: dict[str, tuple[Task, Conn]] = {}
        self.pushes: dict[str, PushState] = {}  # by the msg_id of each attempt's POST
        self._random = node.stream(f"a2a-input:{node.id}")
        self._auth_random: random.Random | None = None  # made on first use

    # -- requests -------------------------------------------------------------------------

    def on_request(self, msg: Message) -> None:
        """A JSON-RPC request: route it by method."""
        rpc: Rpc = msg.body
        method = rpc.method
        if method == CARD:
            s = self.settings
            self._answer(msg, Reply(CARD, card=(s.streaming, s.push_notifications)))
        elif method in (SEND, STREAM):
            if method == STREAM and not self.settings.streaming:
                self._error(msg, UNSUPPORTED_OPERATION, "streaming is not supported")
            elif rpc.push and not self.settings.push_notifications:
                self._error(msg, PUSH_NOT_SUPPORTED, "push notifications are not supported")
            elif rpc.task_id:
                self._continue(msg, rpc)
            else:
                self._create(msg, rpc)
        elif method == GET:
            task = self.tasks.get(rpc.task_id)
            if task is None:
                self._error(msg, TASK_NOT_FOUND, f"no task {rpc.task_id}")
            else:
                self._answer(msg, Reply(GET, task.snapshot()))
        elif method == CANCEL:
            self._cancel(msg, rpc)
        elif method == SUBSCRIBE:
            self._subscribe(msg, rpc)

    def _create(self, msg: Message, rpc: Rpc) -> None:
        node = self.node
        now = node.env.now
        span = server_span(node, msg, PROTOCOL, now)
        task = Task(node.new_id(), msg, span)
        task.push = rpc.push
        self.tasks[task.id] = task
        job = Job(self, msg.copy(body=rpc.payload), span, now, data=task)
        task.job = job
        if self.pool.full():
            self.transition(task, lc.REJECTED, "accept queue full")
        else:
            self.transition(task, lc.SUBMITTED, "message received")
        self._respond(task, msg, rpc)
        if task.state == lc.SUBMITTED:
            self.pool.submit(job)

    def _continue(self, msg: Message, rpc: Rpc) -> None:
        # A message on an existing task: the client's answer to input-required.
        task = self.tasks.get(rpc.task_id)
        if task is None:
            self._error(msg, TASK_NOT_FOUND, f"no task {rpc.task_id}")
            return
        if task.state in lc.TERMINAL:
            self._error(msg, UNSUPPORTED_OPERATION, f"task {task.id} is {task.state}")
            return
        task.push = task.push or rpc.push
        if rpc.declined and task.state in lc.INTERRUPTED:
            # The client will not give what the task waits for: the agent cannot go on,
            # and refuses the task (REJECTED, "at creation or later").
            why = "no credentials" if task.state == lc.AUTH_REQUIRED else "no input"
            self.transition(task, lc.REJECTED, f"the client declined: {why}")
            self._respond(task, msg, rpc)
            return
        resumed = task.state in lc.INTERRUPTED
        if resumed:
            self.transition(task, lc.WORKING, "the client answered")
        self._respond(task, msg, rpc)
        if resumed and task.job is not None and not self.pool.submit(task.job):
            self.transition(task, lc.FAILED, "accept queue full")

    def _respond(self, task: Task, msg: Message, rpc: Rpc) -> None:
        if rpc.method == STREAM:
            self._open_stream(task, msg, snapshot=True)
        elif rpc.return_immediately or task.state in lc.TERMINAL:
            self._answer(msg, Reply(rpc.method, task.snapshot()))
        else:
            # Blocking: the response waits for a terminal or interrupted state.
            self._open(task, Conn(msg, False, self.node.env.now))

    def _cancel(self, msg: Message, rpc: Rpc) -> None:
        task = self.tasks.get(rpc.task_id)
        if task is None:
            self._error(msg, TASK_NOT_FOUND, f"no task {rpc.task_id}")
            return
        if task.state in lc.TERMINAL:
            self._error(msg, TASK_NOT_CANCELABLE, f"task {task.id} is {task.state}")
            return
        self.transition(task, lc.CANCELED, "the client cancelled it")
        job = task.job
        if job is not None:
            job.cancelled = True
            self.pool.withdraw(job)
            if job.on_cancel is not None:
                job.on_cancel()
        self._answer(msg, Reply(CANCEL, task.snapshot()))

    def _subscribe(self, msg: Message, rpc: Rpc) -> None:
        task = self.tasks.get(rpc.task_id)
        if task is None:
            self._error(msg, TASK_NOT_FOUND, f"no task {rpc.task_id}")
        elif task.state in lc.TERMINAL:
            self._error(msg, UNSUPPORTED_OPERATION, f"task {task.id} is {task.state}")
        else:
            self._open_stream(task, msg, snapshot=self.settings.version == "1.0")

    # -- the lifecycle --------------------------------------------------------------------

    def transition(self, task: Task, to: str, reason: str) -> None:
        """Move `task` to state `to` (refused by `lifecycle.check` if not allowed), record
        it, and tell its followers: streams, blocking sends, the webhook."""
        lc.check(task.state, to)
        node = self.node
        now = node.env.now
        from_state, task.state = task.state, to
        task.seq += 1
        node.journal.task_transition(
            now, task.id, node.id, from_state, to, reason, task.span, task.correlation_id
        )
        if to == lc.FAILED or to == lc.REJECTED:
            task.error = reason
        ends = lc.closes_stream(to)
        for conn in list(task.conns):
            if conn.stream:
                self._event(task, conn, Event(conn.key, 0, STATUS, task.id, to, task.chunks,
                                              task.last_chunk, reason=reason))  # fmt: skip
                if ends:
                    self._close(task, conn, EOF_TYPE)
            elif ends:
                self._answer(conn.request, Reply(SEND, task.snapshot()))
                self._drop(task, conn)
        if task.push and (to in lc.TERMINAL or to in lc.INTERRUPTED):
            self._push(task)
        if to in lc.TERMINAL:
            outcome, status = ENDINGS[to]
            node.journal.span_end(task.span, outcome, now, error=task.error, status=status)

    def _begin(self, job: Job) -> None:
        task: Task = job.data
        if task.state in lc.TERMINAL or self.tasks.get(task.id) is not task:
            self.pool.done(job)
            return
        if task.state == lc.SUBMITTED:
            self.transition(task, lc.WORKING, "a worker took it")
        settings = self.settings
        if (
            not task.asked
            and settings.input_required
            and (self._random.random() < settings.input_required)
        ):
            task.asked = True
            self.transition(task, lc.INPUT_REQUIRED, "the agent asks its client for input")
            self.pool.done(job)  # the worker is free while the client thinks
            return
        if not task.authed and settings.auth_required and self._needs_auth():
            task.authed = True
            self.transition(task, lc.AUTH_REQUIRED, "the task needs the client's credentials")
            self.pool.done(job)  # the worker is free while the client authorizes
            self._await_credentials(task)
            return
        interval = settings.chunk_interval
        if interval is not None:
            node = self.node

            def tick() -> None:
                if task.job is job and task.state == lc.WORKING and not task.last_chunk:
                    self._chunk(task, last=False)
                    node.after(interval, tick)

            node.after(interval, tick)
        self.handler(job)

    def _needs_auth(self) -> bool:
        # A stream of its own, made on first use: runs that never ask draw nothing.
        if self._auth_random is None:
            self._auth_random = self.node.stream(f"a2a-auth:{self.node.id}")
        return self._auth_random.random() < self.settings.auth_required

    def _await_credentials(self, task: Task) -> None:
        """Fail `task` if it is still waiting at this auth-required when the agent's
        `auth_timeout` runs out (the client never answered, or its answer was lost)."""
        limit = self.settings.auth_timeout
        if limit is None:
            return
        seq = task.seq

        def expire() -> None:
            if self.tasks.get(task.id) is task and task.seq == seq:
                self.transition(task, lc.FAILED, f"no credentials within {limit:g} s")

        self.node.after(limit, expire)

    def _chunk(self, task: Task, last: bool) -> None:
        index = task.chunks
        task.chunks += 1
        task.last_chunk = last
        for conn in list(task.conns):
            if conn.stream:
                self._event(task, conn, Event(conn.key, 0, ARTIFACT, task.id, task.state,
                                              index, last))  # fmt: skip

    def reply(self, job: Job, status: int, error: str = "") -> None:
        """The handler finished the task's work: its last chunk, then COMPLETED or FAILED."""
        task: Task = job.data
        self.pool.done(job)
        if self.tasks.get(task.id) is not task or task.job is not job:
            return  # lost in a crash
        if task.state in lc.TERMINAL:
            return  # cancelled meanwhile
        if 200 <= status < 300:
            self._chunk(task, last=True)
            self.transition(task, lc.COMPLETED, "the work is done")
        else:
            self.transition(task, lc.FAILED, error or f"HTTP {status}")

    # -- connections ----------------------------------------------------------------------

    def _open_stream(self, task: Task, msg: Message, snapshot: bool) -> None:
        conn = Conn(msg, True, self.node.env.now)
        self._open(task, conn)
        # The status line is the HTTP response; the events are its body.
        self._send(conn, "response", Event(conn.key, 0, OPEN, task.id), task.type)
        if snapshot:
            self._event(task, conn, Event(conn.key, 0, TASK, task.id, task.state,
                                          snapshot=task.snapshot()))  # fmt: skip
        if lc.closes_stream(task.state):
            self._close(task, conn, EOF_TYPE)

    def _open(self, task: Task, conn: Conn) -> None:
        task.conns.append(conn)
        self.conns[conn.key] = (task, conn)
        settings = self.settings
        if settings.proxy_idle_timeout is not None:
            self._watch_idle(task, conn, settings.proxy_idle_timeout)
        if conn.stream and settings.keepalive is not None:
            self._keepalive(task, conn, settings.keepalive)

    def _watch_idle(self, task: Task, conn: Conn, limit: float) -> None:
        node = self.node

        def check() -> None:
            if not conn.open:
                return
            idle = node.env.now - conn.last_byte
            if idle >= limit - 1e-9:
                why = f"the proxy cut a response idle for {limit:g} s"
                self._close(task, conn, CUT_TYPE, why)
            else:
                node.after(limit - idle, check)

        node.after(limit, check)

    def _keepalive(self, task: Task, conn: Conn, interval: float) -> None:
        node = self.node

        def ping() -> None:
            if conn.open:
                self._send(conn, "control", Event(conn.key, 0, "ping", task.id), KEEPALIVE_TYPE)
                node.after(interval, ping)

        node.after(interval, ping)

    def _event(self, task: Task, conn: Conn, event: Event) -> None:
        self._send(conn, "event", event, task.type)

    def _close(self, task: Task, conn: Conn, type_: str, why: str = "") -> None:
        # The end of a stream's body, or a proxy's cut: a blocking send waiting for its
        # answer gets the proxy's 504 instead.
        if conn.open and not conn.stream and type_ == CUT_TYPE:
            self._answer(conn.request, Reply(SEND, code=0, error=why, status=504))
        elif conn.open:
            self._send(conn, "control", Event(conn.key, 0, type_, task.id, reason=why), type_)
        self._drop(task, conn)

    def _drop(self, task: Task, conn: Conn) -> None:
        conn.open = False
        if conn in task.conns:
            task.conns.remove(conn)
        self.conns.pop(conn.key, None)

    def _send(self, conn: Conn, kind: str, event: Event, type_: str) -> None:
        node = self.node
        conn.n += 1
        event.n = conn.n - 1
        conn.last_byte = node.env.now
        size = self.settings.event_bytes if kind == "event" else 16
        node.send(
            Message(
                msg_id=node.new_id(), type=type_, src=node.id, dst=conn.client, kind=kind,
                protocol=PROTOCOL, version=node.version,
                correlation_id=conn.request.correlation_id, causation_id=conn.key,
                span=conn.request.span, attempt=conn.attempt, size_bytes=size, body=event,
            )
        )  # fmt: skip

    def _answer(self, msg: Message, reply: Reply) -> None:
        node = self.node
        node.send(node.answer(msg, reply, self.settings.response_bytes, -1))

    def _error(self, msg: Message, code: int, why: str) -> None:
        self._answer(msg, Reply(msg.body.method, code=code, error=why))

    def on_control(self, msg: Message) -> None:
        """The client closed a stream (its FIN or its kernel's reset): stop sending on it."""
        if msg.type == CLOSE_TYPE:
            found = self.conns.get(msg.causation_id)
            if found is not None:
                self._drop(*found)

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """What we sent found the client down: its connection is gone, or a push failed."""
        if msg.type == PUSH_TYPE and msg.kind == "request":
            push = self.pushes.pop(msg.msg_id, None)
            if push is not None:
                self._push_failed(push, f"the webhook at {msg.dst} refused it ({outcome})")
            return
        found = self.conns.get(msg.causation_id)
        if found is not None:
            self._drop(*found)

    # -- push notifications ---------------------------------------------------------------

    def _push(self, task: Task) -> None:
        node = self.node
        task.notifications += 1
        span = node.journal.span_start(
            PUSH_TYPE, "client", node.id, task.client, PROTOCOL, node.env.now, task.span,
            task.correlation_id,
        )  # fmt: skip
        self._push_attempt(
            PushState(
                task, Push(task.id, task.state, task.notifications, task.push, task.seq), span
            )
        )

    def _push_attempt(self, push: PushState) -> None:
        node = self.node
        push.attempts += 1
        msg_id = node.new_id()
        self.pushes[msg_id] = push
        task = push.task
        node.send(
            Message(
                msg_id=msg_id, type=PUSH_TYPE, src=node.id, dst=task.client, kind="request",
                protocol=PROTOCOL, version=node.version, correlation_id=task.correlation_id,
                span=push.span, attempt=push.attempts, size_bytes=self.settings.event_bytes,
                body=push.body,
            )
        )  # fmt: skip
        timeout = self.settings.push_timeout

        def expire() -> None:
            if self.pushes.pop(msg_id, None) is push:
                self._push_failed(push, f"no 2xx from the webhook within {timeout:g} s")

        node.after(timeout, expire)

    def _push_failed(self, push: PushState, why: str) -> None:
        if push.done:
            return
        node = self.node
        settings = self.settings
        if push.attempts <= settings.push_retries:
            delay = settings.push_backoff * 2.0 ** min(push.attempts - 1, 60)
            node.after(delay, lambda: None if push.done else self._push_attempt(push))
            return
        push.done = True
        node.journal.span_end(
            push.span, "error", node.env.now,
            error=f"push lost: {push.attempts} attempt(s) failed, the last: {why}",
            attempts=push.attempts,
        )  # fmt: skip

    def on_push_ack(self, msg: Message) -> None:
        """The webhook answered a push POST: delivered (a late answer to an earlier
        attempt counts too)."""
        push = self.pushes.pop(msg.causation_id, None)
        if push is None or push.done:
            return
        push.done = True
        node = self.node
        node.journal.span_end(push.span, "ok", node.env.now, attempts=push.attempts, status=200)

    # -- lifecycle ------------------------------------------------------------------------

    def reset(self) -> None:
        """The server crashed: its tasks are lost (in memory), its connections reset."""
        node = self.node
        now = node.env.now
        for task, conn in list(self.conns.values()):
            if conn.open:
                self._send(conn, "control", Event(conn.key, 0, CUT_TYPE, task.id,
                                                  reason="the server reset the connection"),
                           CUT_TYPE)  # fmt: skip
        self.pool.crash(owner=self)
        for task in self.tasks.values():
            if task.state not in lc.TERMINAL:
                node.journal.span_end(task.span, "error", now, error="crashed with the task")
        for push in {id(p): p for p in self.pushes.values()}.values():
            if not push.done:
                push.done = True
                node.journal.span_end(push.span, "error", now, error="crashed while pushing")
        self.tasks.clear()
        self.conns.clear()
        self.pushes.clear()
