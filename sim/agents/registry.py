"""The roles a scenario may name, assembled in one place: role name -> agent factory.

The world builds each of a scenario's agents from its `role` here (`make_agent`): a
built-in role's agent from `ROLES`, or a `PluginAgent` hosting the class a plugin
registered under that name (`sim.plugins`). The collaboration's roles are built in but
written on the plugin API, so a `PluginAgent` hosts their classes too. (Not to be
confused with the collaboration's `Registry` role, the agent that serves agent cards.)
"""

from __future__ import annotations

from collections.abc import Callable

from sim import scenario as sc
from sim.agents.collaboration import Orchestrator, Registry, Worker
from sim.agents.context import Context
from sim.agents.llm import LlmAgent
from sim.agents.plugin import PluginAgent
from sim.agents.roles import Agent, BrokerAgent, Client, Service
from sim.plugins import PluginRole, plugin_role


def hosted(name: str, cls: type) -> Callable[[Context, sc.Agent], Agent]:
    """A built-in role written on the plugin API: its agents host `cls` as a plugin's."""
    entry = PluginRole(name, cls)

    def make(ctx: Context, spec: sc.Agent) -> Agent:
        return PluginAgent(ctx, spec, entry)

    return make


ROLES: dict[str, Callable[[Context, sc.Agent], Agent]] = {
    "client": Client,
    "service": Service,
    "broker": BrokerAgent,
    "orchestrator": hosted("orchestrator", Orchestrator),
    "worker": hosted("worker", Worker),
    "registry": hosted("registry", Registry),
    "llm": LlmAgent,
}


def make_agent(ctx: Context, spec: sc.Agent) -> Agent:
    """The agent `spec` describes, of its role: built-in, or registered by a plugin."""
    builtin = ROLES.get(spec.role)
    if builtin is not None:
        return builtin(ctx, spec)
    entry = plugin_role(spec.role)
    if entry is None:
        # Validation accepted the role, so it was registered then: it has been since removed.
        raise KeyError(f"role '{spec.role}' is not registered (any more)")
    return PluginAgent(ctx, spec, entry)
