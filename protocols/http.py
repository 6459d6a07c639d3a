"""HTTP request-response: a client that blocks on each call, a server with workers.

The caller waits until a response, its timeout, or a refused connection. The server
puts each request in a worker pool with a bounded accept queue and answers 503 when the
queue is full. A call ends exactly once, whichever comes first; a late response is
delivered (it is on the wire) and ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import simpy

from protocols.node import Node
from protocols.transport import Message
from protocols.workers import Job, WorkerPool

PROTOCOL = "http"
RESPONSE_BYTES = 256

# (outcome, status, error) of a finished call: outcome is a spans.outcome value.
CallResult = tuple[str, int, str]


class Call:
    """One request in flight: its request message, its span and, once ended, its result."""

    __slots__ = ("_event", "client", "epoch", "msg", "on_done", "result", "timeout")

    def __init__(
        self,
        client: HttpClient,
        msg: Message,
        timeout: float | None,
        on_done: Callable[[CallResult], None] | None,
    ) -> None:
        self.client = client
        self.msg = msg
        self.timeout = timeout
        self.on_done = on_done
        self.result: CallResult | None = None
        self._event: simpy.Event | None = None
        self.epoch = client.node.epoch

    @property
    def span(self) -> int:
        """The client span of this call."""
        return self.msg.span

    def wait(self) -> simpy.Event:
        """An event that fires with the CallResult, for code running in a process."""
        if self._event is None:
            self._event = self.client.node.env.event()
            if self.result is not None:
                self._event.succeed(self.result)
        return self._event

    def expire(self, _event: simpy.Event) -> None:
        """The timeout fired: the call ends unless it already has (or the caller crashed).

        A bound method rather than a closure: one timer per call is the hot path.
        """
        if self.result is None and self.epoch == self.client.node.epoch:
            self.client.node.when_running(self._timed_out)

    def _timed_out(self) -> None:
        self.end(("timeout", 0, f"no response within {self.timeout:g} s"))

    def end(self, result: CallResult) -> None:
        """End the call once: close its span and tell whoever waits."""
        if self.result is not None:
            return
        client = self.client
        client.pending.pop(self.msg.msg_id, None)
        self.result = result
        node = client.node
        node.journal.span_end(self.span, result[0], node.env.now, error=result[2], status=result[1])
        if self.on_done is not None:
            self.on_done(result)
        if self._event is not None:
            self._event.succeed(result)


def response_result(status: int) -> CallResult:
    """The result of a call answered with `status`."""
    if 200 <= status < 300:
        return "ok", status, ""
    return "error", status, f"HTTP {status}"


class HttpClient:
    """The calling side: sends requests and matches responses to the calls waiting."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.pending: dict[str, Call] = {}

    def request(
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
    ) -> Call:
        """Send a request; the Call ends on its response, its timeout or a refusal.

        `on_done` is told the result; code in a process yields `call.wait()` instead.
        """
        node = self.node
        now = node.env.now
        deadline = now + timeout if timeout is not None else math.nan
        span = node.journal.span_start(
            type_, "client", node.id, dst, PROTOCOL, now, parent, correlation_id, deadline
        )
        msg = Message(
            msg_id=node.new_id(),
            type=type_,
            src=node.id,
            dst=dst,
            kind="request",
            protocol=PROTOCOL,
            version=node.version,
            correlation_id=correlation_id,
            causation_id=causation_id,
            span=span,
            size_bytes=size_bytes,
            body=body,
        )
        call = Call(self, msg, timeout, on_done)
        self.pending[msg.msg_id] = call
        if timeout is not None:
            node.env.timeout(timeout).callbacks.append(call.expire)
        node.send(msg)
        return call

    def on_response(self, msg: Message) -> None:
        """A response arrived: end the call it answers (a late or duplicate one is ignored)."""
        call = self.pending.get(msg.causation_id)
        if call is not None:
            call.end(response_result(int(msg.body)))

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A request was refused: its call fails now."""
        if msg.kind == "request":
            call = self.pending.get(msg.msg_id)
            if call is not None:
                call.end(("error", 0, f"{msg.dst} refused the connection ({outcome})"))

    def reset(self) -> None:
        """The caller crashed: every call in flight ends in error, and nobody is told."""
        now = self.node.env.now
        for call in list(self.pending.values()):
            if call.result is None:
                call.result = ("error", 0, "caller crashed")
                self.node.journal.span_end(call.span, "error", now, error="caller crashed")
        self.pending.clear()


def send_response(node: Node, request: Message, status: int, span: int) -> None:
    """Send the response to `request` from `node`, with an HTTP status."""
    node.send(
        Message(
            msg_id=node.new_id(),
            type=request.type,
            src=node.id,
            dst=request.src,
            kind="response",
            protocol=PROTOCOL,
            version=node.version,
            correlation_id=request.correlation_id,
            causation_id=request.msg_id,
            span=span,
            attempt=request.attempt,
            size_bytes=RESPONSE_BYTES,
            body=status,
        )
    )


class HttpServer:
    """The serving side: a worker pool with a bounded accept queue.

    `handler(job)` runs when a worker takes a request; it ends with `reply(job, status)`.
    """

    def __init__(
        self,
        node: Node,
        workers: int,
        handler: Callable[[Job], None],
        queue_limit: int | None = None,
    ) -> None:
        self.node = node
        self.pool = WorkerPool(node, workers, handler, queue_limit)

    def on_request(self, msg: Message) -> None:
        """Admit a request to the pool, or answer 503 when its queue is full."""
        node = self.node
        now = node.env.now
        span = node.journal.span_start(
            msg.type, "server", node.id, msg.src, PROTOCOL, now, msg.span, msg.correlation_id
        )
        if not self.pool.submit(Job(msg, span, now)):
            node.journal.span_end(span, "rejected", now, error="accept queue full", status=503)
            self.respond(msg, 503, span)

    def reply(self, job: Job, status: int, error: str = "") -> None:
        """Finish a job: close its span, answer the caller, free the worker."""
        node = self.node
        outcome = "ok" if 200 <= status < 300 else "error"
        if not error and outcome == "error":
            error = f"HTTP {status}"
        node.journal.span_end(job.span, outcome, node.env.now, error, wait=job.wait, status=status)
        self.respond(job.msg, status, job.span)
        self.pool.done(job)

    def respond(self, request: Message, status: int, span: int) -> None:
        """Send the response to `request`."""
        send_response(self.node, request, status, span)

    def reset(self) -> None:
        """The server crashed: the requests it held are lost, their spans end in error."""
        node = self.node
        now = node.env.now
        for job in self.pool.drain():
            why = "crashed while queued" if math.isnan(job.started) else "crashed while serving"
            node.journal.span_end(job.span, "error", now, error=why)


class HttpEndpoint:
    """HTTP on one node: a client always, a server when the agent serves."""

    def __init__(self, node: Node, server: HttpServer | None = None) -> None:
        self.node = node
        self.client = HttpClient(node)
        self.server = server
        node.register(PROTOCOL, self)

    def on_message(self, msg: Message) -> None:
        """Route a request to the server and a response to the client."""
        if msg.kind == "response":
            self.client.on_response(msg)
        elif msg.kind == "request":
            if self.server is not None:
                self.server.on_request(msg)
            else:
                # Nothing listens here: the caller gets a 404 from the host.
                send_response(self.node, msg, 404, -1)

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A request of ours was refused."""
        self.client.on_bounce(msg, outcome)

    def reset(self) -> None:
        """The node crashed."""
        self.client.reset()
        if self.server is not None:
            self.server.reset()
