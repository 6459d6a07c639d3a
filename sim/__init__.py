"""Switchboard's simulator: scenarios in, Runs (traces) out.

>>> import sim
>>> run = sim.run("basic")
>>> run.summary()["requests"] > 0
True
>>> rows = sim.sweep("protocols-under-load", replications=1)  # doctest: +SKIP
>>> sim.sweep.means(rows)  # doctest: +SKIP
"""

from __future__ import annotations

# `sim.sweep` is the sweep module made callable: `sim.sweep("protocols-under-load")` runs
# a sweep, and `sim.sweep.means(rows)` reaches the module's other functions.
import sim.sweep as _sweep_module  # noqa: F401
from sim._version import __version__
from sim.checks import check
from sim.scenario import Scenario
from sim.trace.run import Run, load
from sim.world import run

__all__ = ["Run", "Scenario", "__version__", "check", "load", "run"]
