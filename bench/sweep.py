"""The sweep benchmark: how well a sweep spreads over processes, locally and on Dask.

One sweep of 32 runs (the built-in protocols-under-load shape: 4 protocols x 8 loads, one
replication, a clean network, 120 simulated seconds each, about half a second of work
per run) is timed three ways in this one process: in-process (1 worker), on a local pool
of 2 processes, and on a Dask LocalCluster of 2 worker processes with 1 thread each.
The figures of merit are the pool's speedup over one worker (ideally the number of
cores) and Dask's overhead over the pool (scheduling, serialisation, the network hop);
each time is the best of two tries (one with `--small`, at a tenth of the duration).
On a shared machine the wall times are at the mercy of other work, so each parallel path
also reports how busy its workers were (time inside runs over workers x wall time): the
machinery's own cost, which contention scales out of.

Each timing is of `sweep(...)` alone, as a user waits for it: the local one includes
forking its pool from the already-running fork server; the Dask one assumes a running
cluster (its start-up is printed apart, not counted). Both are warmed up first (the fork
server started, the Dask workers' imports done), so neither pays a one-off cost the
other does not. Runs vary tenfold in cost (a 150% load does more than a 10% one), so the
pool's last runs can leave a core idle: the speedup includes that tail, as a user sees it.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pandas as pd

from sim import sweeps as sw

LOADS = [0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.25, 1.5]


def spec(duration: float) -> dict[str, Any]:
    """4 protocols x 8 loads x 1 replication of request-response, `duration` s each."""
    return {
        "name": "bench-sweep",
        "scenario": "request-response",
        "seed": 1,
        "replications": 1,
        "axes": [
            {
                "name": "protocol",
                "path": "channels.0.protocol",
                "values": ["http", "queue", "sse", "websocket"],
            },
            {"name": "load", "path": "workload.0.arrivals.rate", "values": LOADS, "scale": 40},
            {"name": "duration", "path": "duration", "values": [duration]},
        ],
    }


def _timed(**how: Any) -> tuple[float, float, pd.DataFrame]:
    """Wall seconds, this process's CPU seconds and the rows of one sweep."""
    started, cpu = time.perf_counter(), time.process_time()
    rows = sw.sweep(how.pop("source"), **how)
    return time.perf_counter() - started, time.process_time() - cpu, rows


def _busy(rows: pd.DataFrame, seconds: float, workers: int = 2) -> float:
    """The share of the workers' time spent inside runs: what the sweep machinery (start-up,
    hand-off, an idle worker at the end) leaves is the rest. Other work on the machine
    slows the runs and the sweep alike, so this share is steadier than the wall times."""
    return float(rows["wall_seconds"].sum()) / (workers * seconds)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    # Speed must not cost correctness: every path gives the very same rows.
    drop = ["wall_seconds"]
    return a.drop(columns=drop).equals(b.drop(columns=drop))


def measure(duration: float = 120.0, repeats: int = 2) -> dict[str, Any]:
    """Wall seconds of the same sweep on 1 worker, a 2-process pool and a 2-worker Dask
    cluster, with the pool's speedup and Dask's overhead over the pool.

    Each is the best of `repeats`, taken in turn (1, pool, Dask, 1, pool, Dask, ...) so
    that a burst of other work on the machine does not fall on one path alone.
    """
    from distributed import Client, LocalCluster

    source = spec(duration)
    warm = spec(1.0)
    sw.sweep(warm, workers=2)  # starts the fork server, which later pools fork from
    started = time.perf_counter()
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2)
        startup = time.perf_counter() - started
        sw.sweep(warm, client=client)  # the workers import the simulator once
        times: dict[str, list[float]] = {"one": [], "two": [], "dask": []}
        share: list[float] = []
        busy: dict[str, list[float]] = {"two": [], "dask": []}
        for _ in range(repeats):
            # The idle cluster stays up while the local paths run, as a user's would.
            seconds, cpu, rows_one = _timed(source=source, workers=1)
            times["one"].append(seconds)
            # The share of a core the in-process sweep got: below ~95%, other work on
            # the machine was taking CPU and every figure here is noisy.
            share.append(cpu / seconds)
            seconds, _, rows_two = _timed(source=source, workers=2)
            times["two"].append(seconds)
            busy["two"].append(_busy(rows_two, seconds))
            seconds, _, rows_dask = _timed(source=source, client=client)
            times["dask"].append(seconds)
            busy["dask"].append(_busy(rows_dask, seconds))
    one, two, dask = (min(times[k]) for k in ("one", "two", "dask"))
    work = float(rows_one["wall_seconds"].sum())
    return {
        "runs": len(rows_one),
        "duration": duration,
        "run_seconds": work / len(rows_one),
        "one": one,
        "two": two,
        "dask": dask,
        "times": times,
        "core_share": min(share),
        "busy": {k: max(v) for k, v in busy.items()},
        "load_average": os.getloadavg()[0],
        "startup": startup,
        "speedup": one / two,
        "overhead": dask / two - 1,
        "same": _same(rows_one, rows_two) and _same(rows_one, rows_dask),
    }


def main(argv: list[str]) -> None:
    """Print the sweep's wall times side by side."""
    small = "--small" in argv
    r = measure(duration=12.0 if small else 120.0, repeats=1 if small else 2)
    print(
        f"sweep: {r['runs']} runs (4 protocols x 8 loads, {r['duration']:g} s simulated, "
        f"{r['run_seconds']:.2f} s of work per run on average)"
    )
    print(f"  1 worker, in process          {r['one']:>7.2f} s")
    print(
        f"  local pool, 2 processes       {r['two']:>7.2f} s   speedup {r['speedup']:.2f}   "
        f"workers busy {r['busy']['two']:.0%}"
    )
    print(
        f"  Dask, 2 workers x 1 thread    {r['dask']:>7.2f} s   "
        f"overhead {r['overhead']:+.1%} vs the pool   workers busy {r['busy']['dask']:.0%} "
        f"(cluster start-up {r['startup']:.1f} s, not counted)"
    )
    every = "  ".join(f"{k} " + "/".join(f"{t:.2f}" for t in ts) for k, ts in r["times"].items())
    print(f"  same rows on every path       {'yes' if r['same'] else 'NO'}   (each try: {every})")
    print(
        f"  noise: the in-process sweep got {r['core_share']:.0%} of a core at worst; "
        f"load average {r['load_average']:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
