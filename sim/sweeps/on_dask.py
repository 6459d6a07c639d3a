"""A sweep's runs on Dask: a LocalCluster this process starts, or a running scheduler.

Runs go to the workers in batches (`batches`): one Dask task runs several runs one
after another and sends back only their rows, so the scheduler's cost per task (a few
milliseconds of messages and bookkeeping) is shared by several runs. Batches shrink as
the sweep goes on ("guided" scheduling): the first are large, the last are single runs,
so that the workers finish together instead of one waiting for another's last large
batch. Each batch takes runs from across the grid (in the order of a golden-ratio
sequence, which no axis's length lines up with), since neighbouring runs cost alike: a
high load does ten times the work of a low one.

A worker process that dies (a crash in C code, the operating system's out-of-memory
killer) takes its batch with it, and Dask blames every task that was on that worker.
The runs of such batches are therefore tried again one at a time once the rest are done:
a run that still kills its worker is then the culprit, and its row says so in one
sentence naming it; the others get their rows as usual.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import multiprocessing.forkserver
from collections.abc import Iterator
from typing import Any

from sim.loading import ScenarioError
from sim.sweeps.spec import RunTask
from sim.sweeps.task import failed_row, run_batch

# `scheduler="local"` (`--dask local`): a LocalCluster on this machine.
LOCAL = "local"
# A batch is at most 1/SHARE of the runs not yet batched per worker thread: the larger,
# the more tasks and the more evenly the workers end.
SHARE = 2
# At most this many runs per task: past it the saving per task is nil, and a long batch
# delays progress and, if its worker dies, costs more to redo.
MAX_BATCH = 16
_GOLDEN = (math.sqrt(5) - 1) / 2
# Dask settings of the LocalCluster `--dask local` starts. Its housekeeping runs in each
# worker process beside the run (and holds the GIL while it does) and in this process
# beside the scheduler: with Dask's defaults it takes ~3% of each worker's core and ~5%
# of another while idle, a tenth of that with these (measured with psutil over 10 s).
LOCAL_CONFIG: dict[str, Any] = {
    # A worker that dies fails its tasks at once instead of Dask trying them on three
    # more workers: `dask_rows` runs them again one by one to find which run killed it.
    "distributed.scheduler.allowed-failures": 0,
    # The statistical profiler samples the running thread's stack every 10 ms, for a
    # dashboard this cluster does not serve.
    "distributed.worker.profile.enabled": False,
    # A worker gets its next batch when it finishes one, not one ahead (Dask's 1.1 tasks
    # per thread, rounded up, is two): a batch held ahead by a busy worker would wait
    # while another stands idle at the end. The hand-off costs a message of milliseconds
    # per batch. With nothing held ahead, work stealing has nothing to move.
    "distributed.scheduler.worker-saturation": 1.0,
    "distributed.scheduler.work-stealing": False,
    # Host metrics for the dashboard, the event loop's responsiveness check, and the
    # memory watch that pauses or restarts a worker near its limit: less often.
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.tick.interval": "500ms",
    "distributed.worker.memory.monitor-interval": "500ms",
    "distributed.nanny.memory.monitor-interval": "500ms",
}


def batches(tasks: list[RunTask], threads: int) -> list[list[RunTask]]:
    """`tasks` in batches for `threads` worker threads, largest first: each holds
    1/SHARE of the remaining tasks per thread (at most MAX_BATCH, at least one), taken
    from across the grid; together they hold each task once."""
    # Runs by the fractional part of index x golden ratio: every stretch of this order
    # spreads over the whole grid, whatever the lengths of its axes.
    order = sorted(tasks, key=lambda task: (task.index * _GOLDEN) % 1.0)
    out: list[list[RunTask]] = []
    start = 0
    while start < len(order):
        size = max(1, min(MAX_BATCH, (len(order) - start) // (SHARE * max(threads, 1))))
        out.append(order[start : start + size])
        start += size
    return out


@contextlib.contextmanager
def client_for(scheduler: str, workers: int) -> Iterator[Any]:
    """A `distributed.Client` on a LocalCluster of `workers` processes
    (`scheduler="local"`, see `local_cluster`), or on the scheduler at that address;
    closed on leaving."""
    if scheduler == LOCAL:
        with local_cluster(workers) as client:
            yield client
        return
    client = _connect(_distributed(), scheduler)
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def local_cluster(workers: int) -> Iterator[Any]:
    """A client of a new LocalCluster on this machine, as `--dask local` starts it:
    `workers` processes of one thread each (a run is pure Python: threads would only
    share the GIL), forked with the simulator already imported; shut down on leaving."""
    import dask

    distributed = _distributed()
    with (
        dask.config.set(LOCAL_CONFIG),
        _forked_workers(),
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            # No dashboard; the scheduler's HTTP endpoints (health, metrics) on a free
            # port, not on 8787, which another cluster may hold (Dask warns on stderr).
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
            silence_logs=logging.CRITICAL,  # a restarted worker is reported in its row
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def dask_rows(tasks: list[RunTask], client: Any) -> Iterator[dict[str, Any]]:
    """Rows of `tasks` run on `client`'s cluster, as their batches finish."""
    distributed = _distributed()
    threads = sum(client.nthreads().values())
    groups = batches(tasks, threads)
    futures = client.map(run_batch, groups, pure=False)
    owner = {future.key: group for future, group in zip(futures, groups, strict=True)}
    # Only `as_completed` holds the futures: each is let go once its rows are read, so
    # the cluster drops them (and cannot rerun a finished batch when a worker dies).
    finished, futures = distributed.as_completed(futures), []
    orphans: list[RunTask] = []
    for future in finished:
        group = owner[future.key]
        try:
            rows = future.result()
        except distributed.KilledWorker:
            orphans.extend(group)
            continue
        except Exception as exc:  # e.g. the workers cannot import the simulator
            error = f"the run's worker failed: {exc.__class__.__name__}: {exc}"
            rows = [failed_row(task, error) for task in group]
        yield from rows
    for task in sorted(orphans, key=lambda t: t.index):
        yield _alone(distributed, client, task)


def _alone(distributed: Any, client: Any, task: RunTask) -> dict[str, Any]:
    # The only task on the cluster: if its worker dies, this run is what killed it.
    future = client.submit(run_batch, [task], pure=False)
    try:
        rows: list[dict[str, Any]] = future.result()
        return rows[0]
    except distributed.KilledWorker:
        return failed_row(
            task,
            f"run {task.index} ({task.label}) killed its Dask worker process each time "
            "it was tried",
        )
    except Exception as exc:
        return failed_row(task, f"the run's worker failed: {exc.__class__.__name__}: {exc}")


@contextlib.contextmanager
def _forked_workers() -> Iterator[None]:
    """Have the LocalCluster fork its workers from this process's fork server, which has
    imported Dask and the simulator once, instead of spawning fresh interpreters that
    import both again (seconds each on a busy machine; a restart after a crash too)."""
    import dask

    if "forkserver" not in multiprocessing.get_all_start_methods():  # not on Linux
        yield
        return
    # The server reads its preload list when it starts, so start it now: Dask would
    # otherwise start it with its own list, which lacks the simulator. One already
    # running (a local pool's) has the simulator; a worker then imports Dask itself.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["distributed", "sim.sweeps.task", "sim.world"])
    multiprocessing.forkserver.ensure_running()
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        yield


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:  # pragma: no cover - a dependency, but say so plainly
        raise ScenarioError(
            ["running a sweep on Dask needs dask.distributed (pip install 'dask[distributed]')"]
        ) from None
    return distributed


def _connect(distributed: Any, scheduler: str) -> Any:
    """A client of the scheduler at `scheduler`, or one sentence saying why not."""
    try:
        return distributed.Client(scheduler, timeout=10)
    except ValueError as exc:  # "missing port number in address 'foo'": the user's typo
        raise ScenarioError(
            [
                f"'{scheduler}' is not a Dask scheduler address ({exc}); expected e.g. "
                "tcp://10.0.0.5:8786, or 'local' for a cluster on this machine"
            ]
        ) from None
    except (OSError, TimeoutError) as exc:  # refused, unreachable, timed out
        reason = str(exc) or exc.__class__.__name__
        reason = reason[:1].lower() + reason[1:]
        raise ScenarioError([f"cannot reach the Dask scheduler at {scheduler}: {reason}"]) from None
    except Exception as exc:
        # Something that is not a Dask scheduler answered; Dask misreads its reply as
        # anything (a MemoryError for a frame of exabytes, say), so name no details.
        raise ScenarioError(
            [f"what answers at {scheduler} is not a Dask scheduler ({exc.__class__.__name__})"]
        ) from None
