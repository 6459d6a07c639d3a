"""Agents: the roles a scenario's agents play, and what they share.

- `context`: the `Context` every agent of a run shares (clock, network, journal, faults);
- `endpoints`: the protocol endpoints each agent gets from the scenario's channels;
- `roles`: the `Agent` base and the basic roles (client, service, broker);
- `collaboration`: the collaboration's orchestrator (and, re-exported, its other roles),
  written on the plugin API as its worker and registry are;
- `worker`: the collaboration's worker (sub-tasks, drafts negotiated, results queued);
- `discovery`: the registry, its agent cards and the workers' heartbeats;
- `plugin` (and `plugin_*`): the host of roles written on the plugin API, and its `ctx`;
- `steps`: the names of the collaboration's spans and its nine steps;
- `registry`: `ROLES`, every role a scenario may name, assembled in one place.
"""

# A mypyc build of the hot path's modules, when one is built and current (see
# protocols.compiled), is imported in their place.
from protocols.compiled import extend as _extend

__path__ = _extend(__path__, __name__)

from sim.agents.collaboration import STEPS, Orchestrator, Registry, Worker
from sim.agents.context import Context
from sim.agents.registry import ROLES
from sim.agents.roles import POISON, Agent, BrokerAgent, Client, Service

__all__ = [
    "POISON",
    "ROLES",
    "STEPS",
    "Agent",
    "BrokerAgent",
    "Client",
    "Context",
    "Orchestrator",
    "Registry",
    "Service",
    "Worker",
]
