"""The roles a scenario may name, assembled in one place: role name -> agent class.

The world builds each of a scenario's agents from its `role` here. (Not to be confused
with the collaboration's `Registry` role, the agent that serves agent cards.)
"""

from __future__ import annotations

from sim.agents.collaboration import Orchestrator, Registry, Worker
from sim.agents.llm import LlmAgent
from sim.agents.roles import Agent, BrokerAgent, Client, Service

ROLES: dict[str, type[Agent]] = {
    "client": Client,
    "service": Service,
    "broker": BrokerAgent,
    "orchestrator": Orchestrator,
    "worker": Worker,
    "registry": Registry,
    "llm": LlmAgent,
}
