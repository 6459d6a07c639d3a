"""One run of a sweep, as a process (local or a Dask worker) runs it: a row of metrics.

Kept apart from `runner` (which decides where runs go) so that the Dask path
(`sweeps.on_dask`) and the local pool both import the same function the workers call,
and a worker unpickles a task by importing only this module and the simulator.
"""

from __future__ import annotations

import math
import time
from typing import Any

from sim.loading import ScenarioError
from sim.sweeps.spec import RunTask

# The metrics of a row, in the order tables show them; all numbers.
METRICS = (
    "requests",
    "ok",
    "success_rate",
    "error_rate",
    "goodput",
    "p50",
    "p95",
    "p99",
    "messages",
    "amplification",
    "served",
    "redone",
    "held",
    "lost",
    "lost_rate",
    "dead_lettered",
    "breaker_open_time",
    "wasted_work",
)
# Errors by kind become columns `errors.<kind>`; these always exist so that every sweep's
# table has them, even when no run saw one.
ERROR_KINDS = ("timeout", "error", "unavailable", "deadline_exceeded", "rejected", "open_circuit")


def run_task(task: RunTask) -> dict[str, Any]:
    """Run one cell of a sweep and return its row; never raises (an error is a row)."""
    from sim.loading import validate
    from sim.world import simulate

    row = _head(task)
    started = time.perf_counter()
    try:
        if isinstance(task.data, dict) and "__error__" in task.data:
            raise ScenarioError([task.data["__error__"]])
        run = simulate(validate(task.data, task.label))
        row.update(metrics_of(run.summary()))
    except ScenarioError as exc:
        row["error"] = f"invalid scenario: {exc.lines[0].removeprefix(task.label + ': ')}"
    except Exception as exc:  # a bug in one run must not end the sweep
        row["error"] = f"{exc.__class__.__name__}: {exc}"
    row["wall_seconds"] = time.perf_counter() - started
    return row


def run_batch(tasks: list[RunTask]) -> list[dict[str, Any]]:
    """The rows of several runs, one after another: one Dask task for a few runs, so
    that the scheduler's cost per task is shared by them. Only the rows travel back
    (a few hundred bytes each), never a run's trace."""
    return [run_task(task) for task in tasks]


def failed_row(task: RunTask, error: str) -> dict[str, Any]:
    """The row of a run that gave no row of its own (its worker process died)."""
    return {**_head(task), "error": error, "wall_seconds": math.nan}


def metrics_of(summary: dict[str, Any]) -> dict[str, Any]:
    """A sweep row's metric columns from a Run's summary."""
    out = {name: summary.get(name) for name in METRICS if name in summary}
    requests = summary.get("requests") or 0
    out["error_rate"] = 1.0 - summary["success_rate"] if requests else 0.0
    out["lost_rate"] = summary.get("lost", 0) / requests if requests else 0.0
    errors = summary.get("errors_by_kind", {})
    for kind in sorted({*ERROR_KINDS, *errors}):
        out[f"errors.{kind}"] = errors.get(kind, 0)
    return out


def _head(task: RunTask) -> dict[str, Any]:
    # Where the run sits in the grid: the columns every row has, whatever became of it.
    return {
        "index": task.index,
        **task.labels,
        "replication": task.replication,
        "seed": task.seed,
        "error": "",
    }
