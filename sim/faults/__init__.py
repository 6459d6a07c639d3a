"""Faults: what is broken now, apart from when it breaks.

- `state`: the `FaultState` the network and the agents read on their hot paths (active
  link effects, partitions, overloads, error budgets);
- `injection`: the `Injector`, which turns each fault window of a scenario on and off
  and records it.
"""

# A mypyc build of the hot path's modules, when one is built and current (see
# protocols.compiled), is imported in their place (`state` is one).
from protocols.compiled import extend as _extend

__path__ = _extend(__path__, __name__)

from sim.faults.injection import Injector, Lifecycle, fault_targets
from sim.faults.state import ErrorBudget, FaultState, LinkEffect, Partition, Scope

__all__ = [
    "ErrorBudget",
    "FaultState",
    "Injector",
    "Lifecycle",
    "LinkEffect",
    "Partition",
    "Scope",
    "fault_targets",
]
