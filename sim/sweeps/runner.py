"""Running a sweep: every run of a grid of overrides, one row of metrics per run.

`sweep(spec)` (`sim.sweep`) runs every cell of the grid `replications` times, each
replication with its own seed (the same seeds in every cell, so cells are compared on
common random numbers), and returns one row per run with the run's summary metrics.
`sim.sweeps.stats.means(rows)` (`sim.means`) gives each cell's means.

Runs go to a local process pool over all cores by default, or to Dask
(`sweeps.on_dask`): a cluster of `client=`, a scheduler's address, or `scheduler="local"`
for a LocalCluster of `workers` processes. Either way every run gets the same seed and
gives the same row, rows come back as runs finish, and a run that fails is a row with its
error, never the end of the sweep.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd

from sim.sweeps.spec import RunTask, SweepSpec, expand, fingerprint, load_spec
from sim.sweeps.task import ERROR_KINDS, METRICS, failed_row, metrics_of, run_task

__all__ = [
    "ERROR_KINDS",
    "METRICS",
    "Progress",
    "iter_rows",
    "metrics_of",
    "run_task",
    "sweep",
    "to_frame",
    "usable_cores",
]

Progress = Callable[[int, int, dict[str, Any]], None]


def sweep(
    source: str | Path | dict[str, Any] | SweepSpec,
    workers: int | None = None,
    client: Any = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
    replications: int | None = None,
) -> pd.DataFrame:
    """Run a sweep and return one row per run, in grid order.

    `source` is a sweep file, a built-in sweep's name, a dict or a SweepSpec. Runs go to
    `client` (a `distributed.Client`) or a cluster at `scheduler` (`tcp://HOST:PORT`) when
    given, or with `scheduler="local"` to a Dask LocalCluster of `workers` processes
    started for this sweep, else to a local pool of `workers` processes (default: every
    core; 1 runs them in this process). `progress(done, total, row)` is told of each run as it finishes.
    The frame's `attrs["sweep"]` holds the spec.
    """
    spec = load_spec(source)
    if replications is not None:
        spec = spec.model_copy(update={"replications": replications})
    tasks = expand(spec)
    rows: list[dict[str, Any]] = []
    for row in iter_rows(tasks, workers=workers, client=client, scheduler=scheduler):
        rows.append(row)
        if progress is not None:
            progress(len(rows), len(tasks), row)
    return to_frame(spec, rows)


def iter_rows(
    tasks: list[RunTask],
    workers: int | None = None,
    client: Any = None,
    scheduler: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Rows of `tasks` as their runs finish (not in grid order)."""
    if client is not None or scheduler is not None:
        from sim.sweeps import on_dask  # imports dask.distributed, a second's work

        if client is not None:
            yield from on_dask.dask_rows(tasks, client)
            return
        assert scheduler is not None
        with on_dask.client_for(scheduler, workers or usable_cores()) as own:
            yield from on_dask.dask_rows(tasks, own)
        return
    n = min(workers or usable_cores(), len(tasks)) if tasks else 1
    if n <= 1:
        for task in tasks:
            yield run_task(task)
        return
    with _pool(n) as pool:
        yield from _pool_rows(pool, tasks)


def usable_cores() -> int:
    """Cores this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _pool(workers: int) -> Executor:
    # forkserver: workers are forked from a clean process that has imported the simulator
    # once, so they start fast and do not inherit the caller's threads (Streamlit's,
    # Jupyter's), which a plain fork would copy in whatever state their locks were in.
    methods = multiprocessing.get_all_start_methods()
    method = "forkserver" if "forkserver" in methods else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["sim.sweeps.task", "sim.world"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def _pool_rows(pool: Executor, tasks: list[RunTask]) -> Iterator[dict[str, Any]]:
    futures: dict[Future[dict[str, Any]], RunTask] = {
        pool.submit(run_task, task): task for task in tasks
    }
    for future in as_completed(futures):
        yield _result(future, futures[future])


def _result(future: Future[dict[str, Any]], task: RunTask) -> dict[str, Any]:
    # run_task never raises; a future still fails when its worker process dies.
    try:
        return future.result()
    except Exception as exc:
        return failed_row(task, f"the run's worker failed: {exc.__class__.__name__}: {exc}")


def to_frame(spec: SweepSpec, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a frame in grid order with every column present, whatever finished."""
    axes = [axis.name for axis in spec.axes]
    frame = pd.DataFrame(rows)
    metric_cols = [*METRICS, *sorted(c for c in frame.columns if c.startswith("errors."))]
    for name in ERROR_KINDS:
        if f"errors.{name}" not in metric_cols:
            metric_cols.append(f"errors.{name}")
    columns = ["index", *axes, "replication", "seed", *metric_cols, "error", "wall_seconds"]
    frame = frame.reindex(columns=columns)
    if not frame.empty:
        frame = frame.sort_values("index", kind="stable").reset_index(drop=True)
    for column in metric_cols:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["error"] = frame["error"].fillna("").astype(str)
    frame.attrs["sweep"] = spec.model_dump(mode="json")
    frame.attrs["fingerprint"] = fingerprint(spec)
    return frame
