"""What a plugin role's calls give its code, shared by `sim.agents.plugin` and
`sim.agents.plugin_queue`: the event a call returns, a body between plugin agents with
its answer's key, and a protocol result as the code sees it."""

from __future__ import annotations

from typing import Any

import simpy

from protocols.call import Call, CallResult
from sim.agents.api import CallError, CallFailed, CallRejected, CallTimeout, Response

# The answer's room before the responder fills it in.
NO_BODY = object()


class Wrapped:
    """A request body between plugin agents: the caller's body and its answer's key."""

    __slots__ = ("data", "reply")

    def __init__(self, data: Any, reply: str) -> None:
        self.data = data
        self.reply = reply


class CallEvent(simpy.Event):
    """What `ctx.call` returns: fires with the Response or the CallError (which the
    handler's `yield` raises)."""

    def __init__(self, env: simpy.Environment, dst: str) -> None:
        super().__init__(env)
        self.dst = dst
        self.call: Call | None = None


def result_of(dst: str, result: CallResult, body: Any) -> Response | CallError:
    """A call's protocol result as its caller's code sees it."""
    outcome, status, error = result
    if outcome == "ok":
        return Response(status or 200, body, dst)
    if outcome in ("timeout", "deadline_exceeded"):
        return CallTimeout(dst, outcome, status, error)
    if outcome == "rejected":
        return CallRejected(dst, outcome, status, error)
    return CallFailed(dst, outcome, status, error)
