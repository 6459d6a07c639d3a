"""Discovery: the registry's agent cards, renewed by the workers' heartbeats.

A worker renews its card with a heartbeat (`agent.heartbeat`) every `discovery.heartbeat`
seconds; the registry lists, in answer to `agent.card`, the workers whose card is
younger than `discovery.ttl`, so a worker that stops (crashed, cut off, stalled) stops
getting work once its card lapses. The orchestrator (`sim.agents.collaboration`) keeps
the cards it got last and uses them while the registry does not answer.
"""

from __future__ import annotations

import math

from protocols.workers import Job
from sim import scenario as sc
from sim.agents.context import Context
from sim.agents.roles import Service
from sim.agents.steps import DISCOVER, HEARTBEAT


def registry_of(scenario: sc.Scenario) -> sc.Agent | None:
    """The scenario's registry (the first agent with role registry), if it has one."""
    return next((a for a in scenario.agents if a.role == "registry"), None)


def answer_key(registry: str, correlation_id: str) -> str:
    """Where the registry leaves its answer to a discovery call (see Context.answers)."""
    return f"{registry}:{correlation_id}"


class Registry(Service):
    """Serves agent cards over HTTP (`agent.card`): the workers' discovery endpoint.

    A worker's card is listed while it is renewed: each heartbeat (`agent.heartbeat`)
    keeps it for the discovery's `ttl`; a worker that stops (it crashed, it is cut off,
    it stalls) drops out once its last heartbeat is that old. With no heartbeat set the
    cards are static: every worker of the scenario, up or down. Cards live in memory: a
    crash loses them until the workers' next heartbeats. The answer lists the workers
    in the scenario's order.
    """

    role = "registry"

    def __init__(self, ctx: Context, spec: sc.Agent) -> None:
        super().__init__(ctx, spec)
        self.discovery = spec.discovery
        self.workers = [a.id for a in ctx.scenario.agents if a.role == "worker"]
        self.cards: dict[str, float] = {}  # worker -> when its card expires
        self.node.on_crash.append(self.cards.clear)

    def live(self, now: float) -> list[str]:
        """The workers whose cards are listed at `now`."""
        if self.discovery.heartbeat is None:
            return list(self.workers)
        cards = self.cards
        return [w for w in self.workers if cards.get(w, -math.inf) > now]

    def _handle(self, job: Job) -> None:
        if self._injected_error(job):
            return
        msg, now = job.msg, self.ctx.env.now
        if msg.type == HEARTBEAT and msg.src in self.workers:
            self.cards[msg.src] = now + self.discovery.ttl
        elif msg.type == DISCOVER:
            self.ctx.answers[answer_key(self.id, msg.correlation_id)] = self.live(now)
        work = self._work_time()
        self.node.after_work(work, lambda: job.reply(200))
