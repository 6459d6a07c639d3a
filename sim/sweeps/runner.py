"""Running a sweep: every run of a grid of overrides, one row of metrics per run.

`sweep(spec)` (`sim.sweep`) runs every cell of the grid `replications` times, each
replication with its own seed (the same seeds in every cell, so cells are compared on
common random numbers), and returns one row per run with the run's summary metrics.
`sim.sweeps.stats.means(rows)` (`sim.means`) gives each cell's means.

Runs go to a local process pool over all cores by default, or to a Dask distributed
cluster (`client=` or `scheduler=`); either way rows come back as runs finish, and a run
that fails is a row with its error, never the end of the sweep.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd

from sim.loading import ScenarioError
from sim.sweeps.spec import RunTask, SweepSpec, expand, fingerprint, load_spec

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

Progress = Callable[[int, int, dict[str, Any]], None]


def run_task(task: RunTask) -> dict[str, Any]:
    """Run one cell of a sweep and return its row; never raises (an error is a row)."""
    from sim.loading import validate
    from sim.world import simulate

    row: dict[str, Any] = {
        "index": task.index,
        **task.labels,
        "replication": task.replication,
        "seed": task.seed,
        "error": "",
    }
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
    given, else to a local pool of `workers` processes (default: every core; 1 runs them
    in this process). `progress(done, total, row)` is told of each run as it finishes.
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
        yield from _dask_rows(tasks, client, scheduler)
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
        context.set_forkserver_preload(["sim.sweeps.runner", "sim.world"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def _pool_rows(pool: Executor, tasks: list[RunTask]) -> Iterator[dict[str, Any]]:
    futures: dict[Future[dict[str, Any]], RunTask] = {
        pool.submit(run_task, task): task for task in tasks
    }
    for future in as_completed(futures):
        yield _result(future, futures[future])


def _dask_rows(
    tasks: list[RunTask], client: Any, scheduler: str | None
) -> Iterator[dict[str, Any]]:
    try:
        import distributed
    except ImportError:  # pragma: no cover - a runtime dependency, but say so plainly
        raise ScenarioError(["running on a cluster needs dask.distributed installed"]) from None
    own = client is None
    if own:
        try:
            client = distributed.Client(scheduler, timeout=10)
        except ValueError as exc:  # "missing port number in address 'foo'": the user's typo
            raise ScenarioError(
                [
                    f"'{scheduler}' is not a Dask scheduler address ({exc}); expected e.g. "
                    "tcp://10.0.0.5:8786"
                ]
            ) from None
        except (OSError, TimeoutError) as exc:  # refused, unreachable, timed out
            reason = str(exc) or exc.__class__.__name__
            reason = reason[:1].lower() + reason[1:]
            raise ScenarioError(
                [f"cannot reach the Dask scheduler at {scheduler}: {reason}"]
            ) from None
        except Exception as exc:
            # Something that is not a Dask scheduler answered; Dask misreads its reply as
            # anything (a MemoryError for a frame of exabytes, say), so name no details.
            raise ScenarioError(
                [f"what answers at {scheduler} is not a Dask scheduler ({exc.__class__.__name__})"]
            ) from None
    try:
        futures = client.map(run_task, tasks, pure=False)
        owner = {f.key: t for f, t in zip(futures, tasks, strict=True)}
        for future in distributed.as_completed(futures):
            yield _result(future, owner[future.key])
    finally:
        if own:
            client.close()


def _result(future: Any, task: RunTask) -> dict[str, Any]:
    # run_task never raises; a future still fails when its worker process dies.
    try:
        return future.result()
    except Exception as exc:
        return {
            "index": task.index,
            **task.labels,
            "replication": task.replication,
            "seed": task.seed,
            "error": f"the run's worker failed: {exc.__class__.__name__}: {exc}",
            "wall_seconds": math.nan,
        }


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
