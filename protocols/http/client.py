"""The HTTP client: a connection pool per callee, handshakes, and calls that block.

Semantics of httpx over HTTP/1.1:
- one request per connection at a time, so concurrency per callee is the pool size
  (the pool per callee, with its reuse and its FIFO wait, is in `pool`);
- a new connection costs a TCP round trip and, with TLS 1.3, one more; both are real
  control messages, so loss, partitions and crashes hit them (a lost SYN is sent again
  after 1 s, then 2 s..., as Linux does, until the connect timeout);
- after a read timeout the connection is closed: the response may still come on it;
- the request's deadline bounds the whole call: one that passes while the call waits
  for a pooled connection or for its connection to open ends it (`timeout`), and the
  request never goes on the wire.
A request that finds its connection gone on the server (the server restarted) is
answered with a reset.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

from protocols.call import Call, CallResult, abort_all, status_result
from protocols.http.pool import Connection, Exchange, Pool
from protocols.http.settings import HttpClientSettings
from protocols.http.wire import (
    CANCEL,
    CONTROL_BYTES,
    PROTOCOL,
    SYN_ACK,
    TLS_DONE,
    HttpRequest,
    HttpResponse,
)
from protocols.kernel import Timers
from protocols.node import Node
from protocols.transport import Message

DEFAULTS = HttpClientSettings()


class HttpClient:
    """The calling side: pools per callee, calls that end once."""

    def __init__(
        self, node: Node, settings: Callable[[str], HttpClientSettings] | None = None
    ) -> None:
        self.node = node
        self.pending: dict[str, Call] = {}
        self.connections: dict[int, Connection] = {}
        self._settings = settings or (lambda _dst: DEFAULTS)
        self._pools: dict[str, Pool] = {}
        self._conn_ids = itertools.count(1)
        self._exchanges: dict[str, Exchange] = {}
        # Read timeouts: set on every call, and almost never due.
        self._read_timers = Timers(node.env, Call.expire)

    def pool(self, dst: str) -> Pool:
        """The pool of connections to `dst`."""
        pool = self._pools.get(dst)
        if pool is None:
            pool = self._pools[dst] = Pool(self, dst, self._settings(dst))
        return pool

    def call(
        self,
        dst: str,
        type_: str,
        correlation_id: str,
        timeout: float | None = 5.0,
        parent: int = -1,
        size_bytes: int = 256,
        body: Any = None,
        causation_id: str = "",
        on_done: Callable[[CallResult], None] | None = None,
        attempt: int = 1,
        idempotency_key: str = "",
        deadline: float | None = None,
    ) -> Call:
        """Make an HTTP call; it ends on the response, a timeout, a refusal or a reset.

        `timeout` is the read timeout, counted from when the request is sent; the pool
        and connect timeouts come from the callee's settings. `deadline` (absolute) travels
        with the request so the server can drop work nobody waits for. `on_done` is told the
        result; code in a process yields `call.wait()` instead.
        """
        node = self.node
        now = node.now()
        pool = self._pools.get(dst) or self.pool(dst)
        settings = pool.settings
        if deadline is None:
            deadline = now + timeout if timeout is not None else math.nan
        span = node.journal.span_start(
            type_, "client", node.id, dst, PROTOCOL, now, parent, correlation_id, deadline
        )
        msg_id = node.new_id()
        if settings.idempotency_key and not idempotency_key:
            idempotency_key = f"{node.id}:{correlation_id}:{type_}"
        # Positional: a Message built from keywords costs several times more, once per call.
        msg = Message(
            msg_id, type_, node.id, dst, "request", PROTOCOL, node.version, correlation_id,
            causation_id, span, attempt, size_bytes, HttpRequest(0, settings.method, body),
            False, "", deadline if deadline == deadline else math.inf, idempotency_key,
        )  # fmt: skip
        call = Call(self, msg_id, span, None, on_done)
        ex = Exchange(call, msg, settings, timeout)
        self._exchanges[msg_id] = ex
        # Pool.acquire's first step, inline, and Pool.fresh_idle's common case in it: the
        # most recently used idle connection is within its keep-alive.
        idle = pool.idle
        if idle and now - idle[-1].idle_since <= settings.keepalive_expiry:
            self.send_on(idle.pop(), ex)
        else:
            pool.acquire(ex)  # no fresh idle one left: it opens one or queues the call
            if not ex.sent and msg.deadline != math.inf:
                # It waits for a connection: no longer than its deadline.
                node.after(msg.deadline - now, lambda: self._deadline_passed(ex))
        return call

    def _deadline_passed(self, ex: Exchange) -> None:
        """The deadline of a request not yet sent has passed: the call ends, and the
        request never goes out (a connection it was opening goes to the pool)."""
        call = ex.call
        if ex.sent or call.result is not None:
            return
        now = self.node.now()
        dst = ex.msg.dst
        if ex.waiting:
            self.pool(dst).waiting.remove(ex)
            ex.waiting = False
        where = "waiting for a free connection" if ex.queued_at is not None else "connecting"
        self.forget(ex)
        call.queued = now - ex.queued_at if ex.queued_at is not None else 0.0
        call.end(("timeout", 0, f"the deadline passed while {where} to {dst}"))

    # -- connections ------------------------------------------------------------------

    def connect(self, pool: Pool, ex: Exchange) -> None:
        """Open a new connection to the pool's callee for `ex`."""
        conn = Connection(next(self._conn_ids), pool)
        conn.exchange = ex
        pool.open += 1
        self.connections[conn.id] = conn
        self._handshake(conn)
        node = self.node
        node.after(pool.settings.connect_timeout, lambda: self._connect_timeout(conn))

    def _handshake(self, conn: Connection, attempt: int = 1) -> None:
        node = self.node
        ex = conn.exchange
        self.node.send(
            Message(
                msg_id=node.new_id(),
                type=conn.opening.step,
                src=node.id,
                dst=conn.pool.dst,
                kind="control",
                protocol=PROTOCOL,
                version=node.version,
                correlation_id=ex.msg.correlation_id if ex else "",
                span=ex.call.span if ex else -1,
                attempt=attempt,
                size_bytes=CONTROL_BYTES,
                body=conn.id,
            )
        )
        step, rto = conn.opening.step, conn.rto
        conn.rto *= 2

        def retransmit() -> None:
            if conn.state == "connecting" and conn.opening.step == step:
                self._handshake(conn, attempt + 1)

        node.after(rto, retransmit)

    def _on_control(self, msg: Message) -> None:
        conn = self.connections.get(msg.body)
        if conn is None or conn.state != "connecting":
            return
        opened = conn.opening.advance(msg.type)
        if opened is None:
            return  # not the answer it waits for (one to a step sent again, say)
        if not opened:
            # The next step has its own retransmission timer, from the first RTO.
            conn.rto = conn.pool.settings.syn_rto
            self._handshake(conn)
            return
        ex = conn.exchange
        conn.exchange = None
        if ex is None or ex.call.result is not None:
            conn.pool.release(conn)
        else:
            self.send_on(conn, ex)

    def _connect_timeout(self, conn: Connection) -> None:
        if conn.state != "connecting":
            return
        ex = conn.exchange
        conn.pool.discard(conn)
        if ex is not None:
            self.forget(ex)
            timeout = conn.pool.settings.connect_timeout
            ex.call.end(("error", 0, f"could not connect to {conn.pool.dst} within {timeout:g} s"))

    def send_on(self, conn: Connection, ex: Exchange) -> None:
        """Send the exchange's request on an open connection; its read timer starts.

        A request whose deadline has passed is not sent: its call ends, and the
        connection serves the next one.
        """
        msg = ex.msg
        node = self.node
        now = node.now()
        if msg.deadline <= now:
            self._deadline_passed(ex)
            conn.exchange = None
            conn.pool.release(conn)
            return
        ex.sent = True
        conn.state = "busy"
        conn.exchange = ex
        msg.body.conn = conn.id
        call = ex.call
        # Time spent waiting for a connection is the client span's `wait`.
        call.queued = now - ex.queued_at if ex.queued_at is not None else 0.0
        # The read timeout runs from the send, but never past the request's deadline: the
        # handshake and the pool wait have used some of it.
        read = ex.read_timeout
        if msg.deadline != math.inf:
            left = max(0.0, msg.deadline - now)
            read = left if read is None else min(read, left)
        # The message names the configured timeout; the timer may fire a little earlier.
        call.timeout = ex.read_timeout if ex.read_timeout is not None else read
        if read is not None:
            self._read_timers.add(read, call)
        node.transport.send(msg)

    def forget(self, ex: Exchange) -> None:
        """Drop the bookkeeping of an exchange whose call has ended."""
        self._exchanges.pop(ex.msg.msg_id, None)

    def closed(self, conn: Connection) -> None:
        """A connection has closed: forget it."""
        self.connections.pop(conn.id, None)

    # -- the transport's news ---------------------------------------------------------

    def on_response(self, msg: Message) -> None:
        """A response arrived: end the call it answers, give back its connection."""
        ex = self._exchanges.pop(msg.causation_id, None)
        if ex is None:
            return  # a late or duplicate response: the call has ended
        response: HttpResponse = msg.body
        call = ex.call
        conn = self.connections.get(ex.msg.body.conn)
        if call.result is None:
            call.retry_after = response.retry_after
            status = response.status
            # status_result(), inline: most answers are a plain 200.
            call.end(("ok", status, "") if 200 <= status < 300 else status_result(status))
        if conn is not None and conn.exchange is ex:
            conn.pool.release(conn)

    def on_reset(self, msg: Message) -> None:
        """The server did not know the connection (it restarted): the call fails."""
        conn = self.connections.get(msg.body)
        if conn is None:
            return
        ex = conn.exchange
        conn.pool.discard(conn)
        if ex is not None and ex.call.result is None:
            self._exchanges.pop(ex.msg.msg_id, None)
            ex.call.end(("error", 0, f"{conn.pool.dst} reset the connection"))

    def on_control(self, msg: Message) -> None:
        """A handshake answer or a reset from a server."""
        if msg.type in (SYN_ACK, TLS_DONE):
            self._on_control(msg)
        else:
            self.on_reset(msg)

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """The callee is down: a connecting or sending call fails with a refusal."""
        if msg.kind == "control":
            conn = self.connections.get(msg.body)
            if conn is None or conn.state != "connecting":
                return
            ex = conn.exchange
            conn.pool.discard(conn)
            if ex is not None:
                self._exchanges.pop(ex.msg.msg_id, None)
                ex.call.end(("error", 0, f"{msg.dst} refused the connection ({outcome})"))
        elif msg.kind == "request":
            ex = self._exchanges.pop(msg.msg_id, None)
            if ex is None:
                return
            conn = self.connections.get(msg.body.conn)
            if conn is not None:
                conn.pool.discard(conn)
            ex.call.end(("error", 0, f"{msg.dst} reset the connection ({outcome})"))

    def on_timeout(self, call: Call) -> None:
        """A call's read timeout fired: httpx closes the connection it was on."""
        ex = self._exchanges.pop(call.key, None)
        if ex is None:
            return
        conn = self.connections.get(ex.msg.body.conn)
        if conn is not None and conn.exchange is ex:
            conn.pool.discard(conn)

    def cancel(self, dst: str, request_id: str, correlation_id: str = "", span: int = -1) -> None:
        """Tell `dst` to stop working on request `request_id` (the caller gave up).

        A request on the wire loses its connection, as httpx closes one whose request
        was cancelled mid-flight (no answer will come to give it back); one still
        waiting for a connection leaves the queue.
        """
        ex = self._exchanges.pop(request_id, None)
        if ex is not None:
            if ex.waiting:
                self.pool(ex.msg.dst).waiting.remove(ex)
                ex.waiting = False
            conn = self.connections.get(ex.msg.body.conn) if ex.sent else None
            if conn is not None and conn.exchange is ex:
                conn.pool.discard(conn)
        node = self.node
        node.send(
            Message(
                msg_id=node.new_id(),
                type=CANCEL,
                src=node.id,
                dst=dst,
                kind="control",
                protocol=PROTOCOL,
                version=node.version,
                correlation_id=correlation_id,
                causation_id=request_id,
                span=span,
                size_bytes=CONTROL_BYTES,
            )
        )

    def reset(self) -> None:
        """The caller crashed: its calls end in error, its connections are gone."""
        abort_all(self)
        self.connections.clear()
        self._pools.clear()
        self._exchanges.clear()
