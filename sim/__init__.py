"""Switchboard's simulator: scenarios in, Runs (traces) out.

>>> import sim
>>> run = sim.run("basic")
>>> run.summary()["requests"] > 0
True
>>> sim.checks.violations(run)
{}
>>> rows = sim.sweep("protocols-under-load", replications=1)  # doctest: +SKIP
>>> sim.means(rows)  # doctest: +SKIP

The public API, and where each name lives:

- `run` (sim.world): a scenario (a Scenario, a file, a built-in name, a dict) -> Run;
- `load` and `Run` (sim.trace): a saved run, and the trace itself;
- `check` (sim.checks): every invariant's violations in a Run;
- `sweep` and `means` (sim.sweeps): a grid of runs as rows, and each cell's means;
- `Scenario` (sim.scenario): the scenario file's model;
- `ScenarioError` (sim.loading) and `UserError` (sim.cli): a scenario that cannot be
  read or is invalid, and any other mistake of the user's, each as sentences;
- agents written in Python (docs/agents.md): `role` and `register_role` (sim.plugins)
  register a class as a role scenarios may name, `load_plugins` imports modules that
  do; `handles`, `Request`, `Response`, `FanOutResult`, `StreamEvent`, `SessionMessage`
  and the call errors `CallError`,
  `CallTimeout`, `CallRejected`, `CallFailed` (sim.agents.api) are what its code uses,
  and `AgentContext` (sim.agents.plugin) is the `ctx` it yields on.

The packages: `trace` (the tables, the recorder, the Run), `agents` (the roles),
`faults` (state and injection), `otlp` (OpenTelemetry out and in), `sweeps`, `cli`
(`python -m sim`).
"""

# A mypyc build of the hot path's modules, when one is built and current (see
# protocols.compiled), is imported in their place.
from protocols.compiled import extend as _extend

__path__ = _extend(__path__, __name__)

from sim._version import __version__
from sim.agents.api import (
    CallError,
    CallFailed,
    CallRejected,
    CallTimeout,
    FanOutResult,
    Readable,
    Request,
    Response,
    SessionMessage,
    StreamEvent,
    Unreadable,
    handles,
)
from sim.agents.plugin import AgentContext
from sim.agents.plugin_queue import Published
from sim.checks import check
from sim.cli.errors import UserError
from sim.loading import ScenarioError
from sim.plugins import PluginError, load_plugins, register_role, role
from sim.scenario import Scenario
from sim.sweeps.runner import sweep
from sim.sweeps.stats import means
from sim.trace.run import Run, load
from sim.world import run

__all__ = [
    "AgentContext",
    "CallError",
    "CallFailed",
    "CallRejected",
    "CallTimeout",
    "FanOutResult",
    "PluginError",
    "Published",
    "Readable",
    "Request",
    "Response",
    "Run",
    "Scenario",
    "ScenarioError",
    "SessionMessage",
    "StreamEvent",
    "Unreadable",
    "UserError",
    "__version__",
    "check",
    "handles",
    "load",
    "load_plugins",
    "means",
    "register_role",
    "role",
    "run",
    "sweep",
]
