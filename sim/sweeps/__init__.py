"""Sweeps: many runs of one scenario across a grid of overrides, and their statistics.

    import sim
    rows = sim.sweep("protocols-under-load")        # one row per run (sweeps.runner)
    table = sim.means(rows)                          # per cell: means and 95% CIs
    sim.sweeps.save(rows, "runs/sweeps/mine")        # rows, means and sweep.json
    rows = sim.sweeps.load("runs/sweeps/mine")

- `spec`: sweep files (a base scenario, axes of overrides, replications) and their grid;
- `runner`: every run of a sweep, in this process, on local processes or on Dask, as rows;
- `task`: one run as a worker runs it, a row of metrics (and a batch of them);
- `on_dask`: runs on a Dask LocalCluster or scheduler, in batches, a dead worker's run named;
- `stats`: each cell's means with confidence intervals;
- `store`: a sweep saved to a directory, read back, or cached there.
"""

from sim.sweeps.runner import ERROR_KINDS, METRICS, iter_rows, metrics_of, run_task, sweep, to_frame
from sim.sweeps.spec import (
    Axis,
    RunTask,
    SweepSpec,
    builtin_sweeps,
    expand,
    fingerprint,
    load_spec,
    run_count,
)
from sim.sweeps.stats import LEVEL, axis_columns, means, metric_columns
from sim.sweeps.store import cached, load, save

__all__ = [
    "ERROR_KINDS",
    "LEVEL",
    "METRICS",
    "Axis",
    "RunTask",
    "SweepSpec",
    "axis_columns",
    "builtin_sweeps",
    "cached",
    "expand",
    "fingerprint",
    "iter_rows",
    "load",
    "load_spec",
    "means",
    "metric_columns",
    "metrics_of",
    "run_count",
    "run_task",
    "save",
    "sweep",
    "to_frame",
]
