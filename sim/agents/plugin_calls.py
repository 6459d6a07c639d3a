"""What a plugin role's calls give its code, shared by `sim.agents.plugin` and
`sim.agents.plugin_queue`: the event a call returns, a body between plugin agents with
its answer's key, and a protocol result as the code sees it."""

from __future__ import annotations

from typing import Any

import simpy

from protocols.call import Call
from sim.agents.api import result_of
from sim.agents.plugin_host import Raising

__all__ = ["NO_BODY", "CallEvent", "Wrapped", "result_of"]

# The answer's room before the responder fills it in.
NO_BODY = object()


class Wrapped:
    """A request body between plugin agents: the caller's body and its answer's key."""

    __slots__ = ("data", "reply")

    def __init__(self, data: Any, reply: str) -> None:
        self.data = data
        self.reply = reply


class CallEvent(Raising):
    """What `ctx.call` returns: fires with the Response or the CallError (which the
    handler's `yield` raises)."""

    def __init__(self, env: simpy.Environment, dst: str) -> None:
        super().__init__(env)
        self.dst = dst
        self.call: Call | None = None
