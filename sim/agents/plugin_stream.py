"""Streaming for plugin roles: `ctx.stream` (the caller's side) and `ctx.emit` (the
server's side) over a Server-Sent Events channel.

A stream is a call over the channel's policies (deadline, breaker, throttle, retries:
`protocols.resilience.ResilientCaller`, sharing the channel's `Policies` with its plain
calls) whose attempts are SSE streams (`protocols.sse`), which reconnect with
Last-Event-ID as the EventSource does. Each event of the stream (not the final one) is
queued for the handler as it arrives; the handler takes them one at a time:

    s = ctx.stream("tool", "tool.search", {"q": "..."})
    while (ev := (yield s.next())) is not None:   # a StreamEvent: name, data, id
        partial.append(ev.data)
    answer = yield s.done()                       # the final answer: a Response

`next()` fires with the next event, or None once the stream has ended well; when it
failed, `next()` (after the events that did arrive) and `done()` raise the CallError a
`ctx.call` would. A retried stream starts over on the server: the events of its new
attempt follow those of the failed one, with `attempt` one higher.

The server side: a handler serving a request that came over SSE sends events to its
caller with `ctx.emit(data)`; its answer (`respond`, or its return value) is the final
event, which ends the stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from protocols.call import Call, CallResult
from protocols.resilience import ResilientCaller
from protocols.sse import FINAL, PROGRESS, SseServer, SseStream
from protocols.sse.wire import CLOSE, EOF, OPEN, PING, RESET, Frame
from protocols.workers import Job
from sim.agents.api import CallError, Response, StreamEvent, result_of
from sim.agents.plugin_host import Host, Raising

# Frame names the SSE machinery uses for itself: an emitted event cannot take them.
RESERVED = frozenset({FINAL, OPEN, PING, EOF, RESET, CLOSE})


class StreamDesk:
    """An agent's streams in flight, so that a crash ends them (one per plugin agent).

    Each stream has its own `ResilientCaller` (its attempts must report their events to
    it), over the channel's shared policies; the desk, not each caller, is what the
    node's crash hooks hold, so a finished stream leaves nothing behind.
    """

    def __init__(self, host: Host) -> None:
        self.host = host
        self.live: dict[int, ResilientCaller] = {}
        host.node.on_crash.append(self._crashed)

    def caller(self, dst: str, attempt: Callable[..., Call]) -> ResilientCaller:
        """A caller to `dst` through its channel's policies, making attempts with `attempt`."""
        node = self.host.node
        caller = ResilientCaller(node, self.host.policies_to(dst), attempt, "sse", None)
        # Not the node's own crash hook: the desk resets the callers still live.
        node.on_crash.remove(caller.reset)
        self.live[id(caller)] = caller
        return caller

    def finished(self, caller: ResilientCaller) -> None:
        """A stream ended: forget its caller."""
        self.live.pop(id(caller), None)

    def _crashed(self) -> None:
        # The requests in flight end in error (their attempts the SSE client ends).
        for caller in list(self.live.values()):
            caller.reset()
        self.live.clear()


class Stream:
    """What `ctx.stream` gives: the stream's events as they arrive, then its answer.

    `events` counts the events received so far; `ended` says whether the call is over
    (the answer, or its failure, is in); `result` is then the Response or CallError.
    """

    def __init__(
        self,
        host: Host,
        desk: StreamDesk,
        dst: str,
        type_: str,
        body: Any,
        lineage: tuple[int, str, str, float],
        size_bytes: int = 256,
    ) -> None:
        host.check_protocol(dst, None)
        protocol = host.channel(dst).protocol
        if protocol != "sse":
            raise ValueError(
                f"stream() needs an SSE channel, and the channel from {host.id} to {dst} is "
                f"{protocol}; set `protocol: sse` on it, or use call()"
            )
        self.dst = dst
        self.events = 0
        self.result: Response | CallError | None = None
        self._host = host
        self._desk = desk
        self._queue: deque[StreamEvent] = deque()
        self._next: deque[Raising] = deque()
        self._done: list[Raising] = []
        parent, cid, cause, deadline = lineage
        sent, self._reply = host.reply_slot(dst, body)
        endpoint = host.endpoints.sse
        assert endpoint is not None  # an SSE channel from this agent gives it one
        client = endpoint.client

        def attempt(
            dst: str, type_: str, correlation_id: str, timeout: float | None = None,
            parent: int = -1, size_bytes: int = 256, body: Any = None, causation_id: str = "",
            on_done: Callable[[CallResult], None] | None = None, attempt: int = 1,
            idempotency_key: str = "", deadline: float | None = None,
        ) -> Call:  # fmt: skip
            stream = client.open(
                dst, type_, correlation_id, timeout, parent, size_bytes, body, causation_id,
                on_done, self._arrived, attempt, idempotency_key, deadline,
            )  # fmt: skip
            return stream.call

        self._caller = desk.caller(dst, attempt)
        timeout = host.channel(dst).timeout
        self.call = self._caller.call(type_, cid, timeout, parent, size_bytes, sent, cause,
                                      deadline, self._ended)  # fmt: skip

    # -- what the handler yields on ----------------------------------------------------

    def next(self) -> Raising:
        """An event that fires with the next StreamEvent, or None once the stream has
        ended well; a failed stream raises its CallError (after the events that came)."""
        waiter = Raising(self._host.ctx.env)
        if self._queue:
            waiter.succeed(self._queue.popleft())
        elif self.result is not None:
            waiter.succeed(None if isinstance(self.result, Response) else self.result)
        else:
            self._next.append(waiter)
        return waiter

    def done(self) -> Raising:
        """An event that fires with the final answer (a Response), or raises the
        CallError the stream failed with. Events not read yet stay readable."""
        waiter = Raising(self._host.ctx.env)
        if self.result is not None:
            waiter.succeed(self.result)
        else:
            self._done.append(waiter)
        return waiter

    @property
    def ended(self) -> bool:
        """Whether the stream's call is over (its answer or its failure is in)."""
        return self.result is not None

    closed = ended

    def close(self) -> None:
        """Stop reading: the call ends `cancelled` and the client hangs up (the server's
        work goes on: an SSE disconnect is not a cancellation)."""
        if self.result is None:
            self._caller.cancel(self.call, "closed by the client")

    abandon = close

    # -- what the protocol tells it ----------------------------------------------------

    def _arrived(self, stream: SseStream, frame: Frame) -> None:
        if frame.name == FINAL or self.result is not None:
            return  # the final event ends the call, which `_ended` hears
        self.events += 1
        event = StreamEvent(frame.name, frame.data, frame.event_id, stream.first_attempt)
        # A pause holds what the handler does with the event until it ends.
        self._host.node.when_running(lambda: self._give(event))

    def _give(self, event: StreamEvent) -> None:
        if self._next:
            self._next.popleft().succeed(event)
        else:
            self._queue.append(event)

    def _ended(self, result: CallResult) -> None:
        self._desk.finished(self._caller)
        body = self._host.take_reply(self._reply)
        outcome = result_of(self.dst, result, body)
        self._host.node.when_running(lambda: self._settle(outcome))

    def _settle(self, outcome: Response | CallError) -> None:
        self.result = outcome
        end = None if isinstance(outcome, Response) else outcome
        while self._next:
            if self._queue:
                self._next.popleft().succeed(self._queue.popleft())
            else:
                self._next.popleft().succeed(end)
        for waiter in self._done:
            waiter.succeed(outcome)
        self._done.clear()


def emit(job: Job | None, responded: bool, data: Any, event: str) -> int:
    """Send one event to the caller of the SSE request `job` now: its id on the stream.

    Anything but a request that came over SSE (and is not answered yet) has no stream
    to send it on: a clear error, which the handler's span records as any exception.
    """
    if job is None:
        raise RuntimeError("emit() sends an event to a caller over SSE, and main() serves none")
    msg = job.msg
    if msg.protocol != "sse" or not isinstance(job.owner, SseServer):
        raise RuntimeError(
            f"emit() sends a stream event, and this '{msg.type}' request came over "
            f"{msg.protocol}: only a request over SSE has a stream to send it on"
        )
    if responded:
        raise RuntimeError(f"request {msg.msg_id} has been answered: its stream has ended")
    if not isinstance(event, str) or not event or event in RESERVED:
        raise ValueError(f"emit() needs an event name other than {sorted(RESERVED)}, got {event!r}")
    return job.owner.emit(job, event, data)


__all__ = ["PROGRESS", "RESERVED", "Stream", "StreamDesk", "emit"]
