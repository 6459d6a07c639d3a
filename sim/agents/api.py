"""The values a plugin role's code sees: requests, answers, call errors, fan-out results.

A plugin role is a class whose methods handle requests by type, as SimPy processes:

    @sim.role("planner", settings=PlannerSettings)
    class Planner:
        def on_task_run(self, ctx, request):        # requests of type "task.run"
            yield ctx.work(0.05)
            try:
                answer = yield ctx.call("search", "tool.search", {"q": request.body})
            except sim.CallTimeout:
                return "no search results in time"   # the answer's body, status 200
            return answer.body

        def main(self, ctx):                        # optional: runs while the agent is up
            while True:
                yield ctx.sleep(1.0)

What `ctx` offers is `sim.agents.plugin.AgentContext`; docs/agents.md walks through it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class CallError(Exception):
    """A call that did not end with a 2xx answer: `outcome` (a span outcome), `status`
    (an HTTP-like status, 0 when no answer came), `error` (why), `dst` (the callee)."""

    def __init__(self, dst: str, outcome: str, status: int = 0, error: str = "") -> None:
        super().__init__(dst, outcome, status, error)
        self.dst = dst
        self.outcome = outcome
        self.status = status
        self.error = error

    def __str__(self) -> str:
        status = f" ({self.status})" if self.status else ""
        why = f": {self.error}" if self.error else ""
        return f"call to {self.dst} ended {self.outcome}{status}{why}"


class CallTimeout(CallError):
    """No answer within the call's timeout, or its deadline passed (`deadline_exceeded`)."""


class CallRejected(CallError):
    """Refused before it went out: an open circuit breaker or the adaptive throttle."""


class CallFailed(CallError):
    """Answered with an error status (`status`), or failed with none (reset, unreachable,
    cancelled: `status` 0)."""


@dataclass(frozen=True)
class Request:
    """A request a handler serves: its type, body, sender and trace identity."""

    type: str
    body: Any
    src: str
    protocol: str
    correlation_id: str
    msg_id: str
    # Absolute simulated time the caller stops waiting (inf: none); see ctx.time_left.
    deadline: float = math.inf
    # The message version its sender speaks (its agent's `version`); see ctx.read.
    version: int = 1


@dataclass(frozen=True)
class Response:
    """A call's 2xx answer: its status and the body its responder gave (`ctx.respond`,
    or a handler's return value; None from a built-in role)."""

    status: int
    body: Any = None
    dst: str = ""


@dataclass(frozen=True)
class FanOutResult:
    """How a fan-out ended (`protocols.resilience.fanout`): `outcome` is `ok`, `partial`,
    `error` or `timeout`; `answered` counts OK answers; `results` holds, per call in the
    order given, its Response, its CallError, or None while it was still running."""

    outcome: str
    answered: int
    error: str
    results: list[Response | CallError | None] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the policy got what it needed (`partial` is not ok)."""
        return self.outcome == "ok"

    @property
    def responses(self) -> list[Response]:
        """The OK answers, in call order."""
        return [r for r in self.results if isinstance(r, Response)]


class Unreadable(ValueError):
    """A request whose body the schema registry cannot read (`ctx.read`): invalid for
    the version it claims, or with no converter to a version the reader reads. `reason`
    says why in one sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Readable:
    """A request's body as the schema registry read it (`ctx.read`): the data (a dict),
    the version it is now in, and whether it was converted from the sender's."""

    data: dict[str, Any]
    version: int
    converted: bool = False


@dataclass(frozen=True)
class StreamEvent:
    """One event of a stream (`ctx.stream`) as it arrived: its name (`progress` unless
    the server named it), its data (what `ctx.emit` sent; None for the server's own
    progress ticks), its id on the stream, and the attempt of the call it came on (a
    retried stream starts over: its new attempt's events count from 1 again)."""

    name: str
    data: Any
    id: int
    attempt: int = 1


@dataclass(frozen=True)
class SessionMessage:
    """One message that arrived on a WebSocket session (`ctx.connect`, `on_session`):
    its type, its body, who sent it, and its message id on the record."""

    type: str
    body: Any
    src: str
    msg_id: str


def result_of(dst: str, result: tuple[str, int, str], body: Any) -> Response | CallError:
    """A call's protocol result `(outcome, status, error)` as its caller's code sees it."""
    outcome, status, error = result
    if outcome == "ok":
        return Response(status or 200, body, dst)
    if outcome in ("timeout", "deadline_exceeded"):
        return CallTimeout(dst, outcome, status, error)
    if outcome == "rejected":
        return CallRejected(dst, outcome, status, error)
    return CallFailed(dst, outcome, status, error)


def handles(*types: str) -> Callable[[F], F]:
    """Mark a method as the handler of requests of these types:
    `@handles("task.run", "task.retry")`. Without it, a method `on_task_run` handles
    `task.run` ('.' and '-' read as '_'), and `on_request` any type without a handler."""
    if not types or not all(isinstance(t, str) and t for t in types):
        raise ValueError("handles() needs one or more request types, e.g. handles('task.run')")

    def mark(method: F) -> F:
        method._handles = types  # type: ignore[attr-defined]
        return method

    return mark


def method_name(type_: str) -> str:
    """The method that handles requests of `type_` by name: `task.run` -> `on_task_run`."""
    return "on_" + re.sub(r"[^0-9A-Za-z_]", "_", type_)


def declared_handlers(cls: type) -> dict[str, str]:
    """The request types `@handles` marks on `cls`'s methods -> the methods' names."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name, member in vars(klass).items():
            for type_ in getattr(member, "_handles", ()):
                found[type_] = name
    return found


__all__ = [
    "CallError",
    "CallFailed",
    "CallRejected",
    "CallTimeout",
    "FanOutResult",
    "Readable",
    "Request",
    "Response",
    "SessionMessage",
    "StreamEvent",
    "Unreadable",
    "declared_handlers",
    "handles",
    "method_name",
    "result_of",
]
