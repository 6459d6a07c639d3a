"""Switchboard's simulator: scenarios in, Runs (traces) out.

>>> import sim
>>> run = sim.run("basic")
>>> run.summary()["requests"] > 0
True
>>> rows = sim.sweep("protocols-under-load", replications=1)  # doctest: +SKIP
>>> sim.sweep.means(rows)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

__version__ = "0.1.0"

# Loading the submodule `sim.run` binds the package attribute `run` to that module,
# which would shadow the function `run` below after its first call. Loading it here,
# before the function is defined, lets the function keep the name.
import sim.run as _run_module  # noqa: F401

# `sim.sweep` is the sweep module made callable: `sim.sweep("protocols-under-load")` runs
# a sweep, and `sim.sweep.means(rows)` reaches the module's other functions.
import sim.sweep as _sweep_module  # noqa: F401
from sim.run import Run
from sim.scenario import Scenario

__all__ = ["Run", "Scenario", "__version__", "load", "run"]


def run(
    scenario: Any,
    seed: int | None = None,
    progress: Any = None,
    plain_simpy: bool | None = None,
    **overrides: Any,
) -> Any:
    """Run a scenario (a Scenario, a path, a built-in name, or a dict) and return its Run.

    `overrides` are dotted paths with `__` for dots, e.g. `agents__1__workers=8`, applied
    before validation; `seed` replaces the scenario's seed. `plain_simpy=True` runs on
    SimPy's public API only, without the kernel's shortcuts (same trace, slower).
    """
    from sim import loading
    from sim.scenario import Scenario
    from sim.world import simulate

    if isinstance(scenario, Scenario):
        data = scenario.model_dump(mode="json", by_alias=True, exclude_unset=False)
        label = scenario.name
    elif isinstance(scenario, dict):
        data, label = scenario, "scenario"
    else:
        path = loading.resolve(str(scenario) if isinstance(scenario, Path) else scenario)
        data, label = loading.read_data(path), str(path)
    data = copy.deepcopy(data)
    if seed is not None:
        data["seed"] = seed
    for key, value in overrides.items():
        loading.set_path(data, key.replace("__", "."), value)
    return simulate(loading.validate(data, label), progress, plain_simpy)


def load(directory: str | Path) -> Any:
    """Load a saved Run from its directory."""
    from sim.run import Run

    return Run.load(directory)
