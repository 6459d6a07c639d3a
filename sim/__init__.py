"""Switchboard's simulator: scenarios in, Runs (traces) out.

>>> import sim
>>> run = sim.run("basic")
>>> run.summary()["requests"] > 0
True
>>> rows = sim.sweep("protocols-under-load", replications=1)  # doctest: +SKIP
>>> sim.means(rows)  # doctest: +SKIP
"""

from __future__ import annotations

from sim._version import __version__
from sim.checks import check
from sim.scenario import Scenario
from sim.sweeps.runner import sweep
from sim.sweeps.stats import means
from sim.trace.run import Run, load
from sim.world import run

__all__ = ["Run", "Scenario", "__version__", "check", "load", "means", "run", "sweep"]
