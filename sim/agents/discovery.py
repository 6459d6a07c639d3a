"""Discovery: the registry's agent cards, renewed by the workers' heartbeats.

A worker renews its card with a heartbeat (`agent.heartbeat`) every `discovery.heartbeat`
seconds; the registry lists, in answer to `agent.card`, the workers whose card is
younger than `discovery.ttl`, so a worker that stops (crashed, cut off, stalled) stops
getting work once its card lapses. The orchestrator (`sim.agents.collaboration`) keeps
the cards it got last and uses them while the registry does not answer.

The registry is a role written on the plugin API (docs/agents.md), as the
collaboration's other roles are: its code uses `ctx` only.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import simpy

from sim import scenario as sc
from sim.agents.api import Request
from sim.agents.plugin import AgentContext


def registry_of(scenario: sc.Scenario) -> sc.Agent | None:
    """The scenario's registry (the first agent with role registry), if it has one."""
    return next((a for a in scenario.agents if a.role == "registry"), None)


def workers_of(scenario: sc.Scenario) -> list[str]:
    """The scenario's workers, in its order: the cards when they are static."""
    return [a.id for a in scenario.agents if a.role == "worker"]


class Registry:
    """Serves agent cards over HTTP (`agent.card`): the workers' discovery endpoint.

    A worker's card is listed while it is renewed: each heartbeat (`agent.heartbeat`)
    keeps it for the discovery's `ttl`; a worker that stops (it crashed, it is cut off,
    it stalls) drops out once its last heartbeat is that old. With no heartbeat set the
    cards are static: every worker of the scenario, up or down. Cards live in `ctx.state`:
    a crash loses them until the workers' next heartbeats. The answer's body lists the
    workers in the scenario's order.
    """

    def on_agent_heartbeat(
        self, ctx: AgentContext, request: Request
    ) -> Generator[simpy.Event, Any, None]:
        """Renew the sender's card (from when the heartbeat arrived), then do the work."""
        if request.src in workers_of(ctx.scenario):
            ctx.state.setdefault("cards", {})[request.src] = ctx.now + ctx.spec.discovery.ttl
        yield ctx.work()

    def on_agent_card(
        self, ctx: AgentContext, request: Request
    ) -> Generator[simpy.Event, Any, list[str]]:
        """The cards listed when the request arrived, after the work."""
        workers = workers_of(ctx.scenario)
        if ctx.spec.discovery.heartbeat is not None:
            cards = ctx.state.get("cards", {})
            now = ctx.now
            workers = [w for w in workers if cards.get(w, -math.inf) > now]
        yield ctx.work()
        return workers

    def on_request(self, ctx: AgentContext, request: Request) -> Generator[simpy.Event, Any, None]:
        """Any other request: a service's work."""
        yield ctx.work()


__all__ = ["Registry", "registry_of", "workers_of"]
