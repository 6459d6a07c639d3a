"""What the plugin primitives beyond a plain call (streams, sessions) need from the agent
that hosts a plugin role, and the event whose CallError a handler's `yield` raises.

`sim.agents.plugin` imports the primitives' modules (`plugin_stream`, `plugin_session`),
so they cannot import it back: they know the agent only as a `Host`, which
`PluginAgent` is.
"""

from __future__ import annotations

from typing import Any, Protocol

import simpy

from protocols.node import Node
from protocols.resilience import Policies
from sim import scenario as sc
from sim.agents.context import Context
from sim.agents.endpoints import Endpoints


class Raising(simpy.Event):
    """An event of ctx's that fires with a value, or with a CallError that the handler's
    `yield` raises where it waits (`ctx.call`, a stream's `next`/`done`, a session's
    `receive`)."""


class Host(Protocol):
    """The agent a plugin role runs on, as the stream and session primitives use it."""

    id: str
    node: Node
    ctx: Context
    endpoints: Endpoints

    def channel(self, dst: str) -> sc.Channel:
        """The scenario's channel from this agent to `dst`."""
        ...

    def check_protocol(self, dst: str, protocol: str | None) -> None:
        """Refuse an unknown `dst`, or a channel to it of another protocol."""
        ...

    def policies_to(self, dst: str) -> Policies:
        """The policies (breaker, retries, budget, throttle, deadline) of the channel to
        `dst`: the same objects its plain calls go through."""
        ...

    def reply_slot(self, dst: str, body: Any) -> tuple[Any, str | None]:
        """The body to send to `dst`, wrapped with a key for its answer's body when `dst`
        runs plugin code, and that key (None otherwise)."""
        ...

    def take_reply(self, reply: str | None) -> Any:
        """The answer's body left under `reply` (None if there is none)."""
        ...

    def new_correlation_id(self) -> str:
        """A new correlation id, for work that `main` starts (a new trace)."""
        ...


__all__ = ["Host", "Raising"]
