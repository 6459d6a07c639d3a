"""A call in flight, for every protocol: it ends once, with one result.

Whatever carries it (an HTTP request, a queue request-reply, an SSE stream, a message
over a WebSocket), a call from the caller's side is the same thing: a span opened when
it starts, a timeout, and exactly one end: the answer, the timeout, or a failure. The
protocol that owns the call keeps it in its `pending` map until it ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import simpy

from protocols._mypyc import mypyc_attr
from protocols.node import Node

# (outcome, status, error): outcome is a spans.outcome value ("ok", "error", "timeout",
# "rejected", ...), status an HTTP-like code or 0, error a sentence or "".
CallResult = tuple[str, int, str]


class CallOwner(Protocol):
    """The protocol endpoint a call belongs to."""

    node: Node
    pending: dict[str, Call]


# Subclassed by other protocols' calls (SSE streams, A2A tasks, MCP tools), which are
# not compiled.
@mypyc_attr(allow_interpreted_subclasses=True)
class Call:
    """One call in flight: its key in its owner's `pending`, its span, its result."""

    __slots__ = (
        "_event",
        "attempts",
        "epoch",
        "key",
        "on_done",
        "owner",
        "queued",
        "result",
        "retry_after",
        "span",
        "timeout",
    )

    def __init__(
        self,
        owner: CallOwner,
        key: str,
        span: int,
        timeout: float | None,
        on_done: Callable[[CallResult], None] | None = None,
    ) -> None:
        self.owner = owner
        self.key = key
        self.span = span
        self.timeout = timeout
        self.on_done = on_done
        self.result: CallResult | None = None
        # Seconds the server asked the caller to wait (Retry-After), if it did.
        self.retry_after = 0.0
        # Seconds the call queued before it could be sent (a connection pool's wait).
        self.queued: float | None = None
        # Attempts made, for a request that retries (its span counts them).
        self.attempts: int | None = None
        self._event: simpy.Event | None = None
        self.epoch = owner.node.epoch
        owner.pending[key] = self
        if timeout is not None:
            # A bound method rather than a closure: one timer per call is the hot path.
            owner.node.env.timeout(timeout).callbacks.append(self.expire)

    def wait(self) -> simpy.Event:
        """An event that fires with the CallResult, for code running in a process."""
        if self._event is None:
            self._event = self.owner.node.env.event()
            if self.result is not None:
                self._event.succeed(self.result)
        return self._event

    def expire(self, _event: object = None) -> None:
        """The timeout fired: the call ends, unless it has already or the caller crashed."""
        if self.result is None and self.epoch == self.owner.node.epoch:
            self.owner.node.when_running(self._timed_out)

    def _timed_out(self) -> None:
        self.end(("timeout", 0, f"no response within {self.timeout:g} s"))
        # The owner may need to clean up (an HTTP client closes the connection).
        on_timeout = getattr(self.owner, "on_timeout", None)
        if on_timeout is not None:
            on_timeout(self)

    def end(self, result: CallResult) -> None:
        """End the call once: close its span, forget it, tell whoever waits."""
        if self.result is not None:
            return
        owner = self.owner
        owner.pending.pop(self.key, None)
        self.result = result
        node = owner.node
        # Positional: once per call, and keywords cost more.
        node.journal.span_end(
            self.span, result[0], node.now(), result[2], self.queued, self.attempts, result[1]
        )
        # Dropped once told: a callback that refers back to this call (most do) would
        # otherwise keep both alive in a reference cycle.
        on_done, self.on_done = self.on_done, None
        if on_done is not None:
            on_done(result)
        if self._event is not None:
            self._event.succeed(result)

    def abort(self, why: str) -> None:
        """The caller crashed: the call ends in error and nobody is told."""
        if self.result is None:
            self.result = ("error", 0, why)
            node = self.owner.node
            node.journal.span_end(self.span, "error", node.now(), error=why)


def abort_all(owner: CallOwner, why: str = "caller crashed") -> None:
    """End every call of `owner` in error (its node crashed)."""
    for call in list(owner.pending.values()):
        call.abort(why)
    owner.pending.clear()


def status_outcome(status: int, error: str = "") -> tuple[str, str]:
    """The span outcome of an answer with an HTTP-like `status`, and the span's error.

    A 2xx is `ok` (with `error` as given); anything else is an `error`, which says
    "HTTP <status>" unless `error` says more. Every server and client judges an answer
    this way, but a queue server's reply (see `protocols.queue.server`).
    """
    if 200 <= status < 300:
        return "ok", error
    return "error", error or f"HTTP {status}"


def status_result(status: int, error: str = "") -> CallResult:
    """The result of a call answered with an HTTP-like `status` (and the answer's `error`):
    the outcome of `status_outcome`, with no error when it is `ok`."""
    outcome, why = status_outcome(status, error)
    return outcome, status, why if outcome != "ok" else ""


def start_call_span(
    node: Node, type_: str, dst: str, protocol: str, timeout: float | None,
    deadline: float | None, parent: int, correlation_id: str,
) -> tuple[int, float]:  # fmt: skip
    """Start a caller's span now; return it and the call's absolute deadline: `deadline`
    if given, else now + `timeout`, NaN when there is neither."""
    now = node.now()
    if deadline is None:
        deadline = now + timeout if timeout is not None else math.nan
    span = node.journal.span_start(
        type_, "client", node.id, dst, protocol, now, parent, correlation_id, deadline
    )
    return span, deadline
