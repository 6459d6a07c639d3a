"""The sweep benchmark (issue 18): what Dask costs over a serial sweep, and what it gains.

One sweep of 96 runs (the built-in protocols-under-load shape: 4 protocols x 8 loads, 3
replications, a clean network, 60 simulated seconds each, about half a second of work per
run on a quiet core; runs vary tenfold in cost with the load)
is timed in this one process four ways: serially in this process, on a local pool of 2
processes, and on Dask LocalClusters of 1 and of 2 worker processes (one thread each),
started as `sim sweep --dask local` starts them (`sim.sweeps.on_dask.local_cluster`).
The goal's two ratios:

- overhead = (Dask, 1 worker) / (serial) - 1: scheduling, serialisation, the hop to the
  worker process and back, as a user pays it for nothing on one core (goal: under 10%);
- speed-up = (Dask, 1 worker) / (Dask, 2 workers): what a second worker gives (goal: 1.9
  or more on a machine with 2 free cores).

Each time is the best of `repeats` tries, taken in turn (serial, pool, Dask 1, Dask 2,
serial, ...) so that a burst of other work on the machine does not fall on one path alone.
Each is of `sweep(...)` alone, as a user waits for it with a running cluster; a cluster's
start-up (which `--dask local` adds once per sweep) is printed apart. A cluster runs only
while its own sweep is timed, and is warmed up first.

On a shared machine the wall times are at the mercy of other work (the share of a core
the serial sweep got and the load average say how much), so the same two ratios are also
given from CPU seconds, which other work hardly changes: the overhead as the CPU the Dask
sweep took in all its processes (the worker's, and this one's, where the scheduler and
client run) over the serial sweep's; the speed-up as the 1-worker sweep's CPU over what
each would take on two free cores (its busiest worker's, or half of all its processes'
if that is more): the imbalance between the workers and every process's own cost count,
other work does not.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

import pandas as pd

from sim import sweeps as sw
from sim.sweeps import on_dask

LOADS = [0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.25, 1.5]


def spec(duration: float, replications: int = 3) -> dict[str, Any]:
    """4 protocols x 8 loads x `replications` of request-response, `duration` s each."""
    return {
        "name": "bench-sweep",
        "scenario": "request-response",
        "seed": 1,
        "replications": replications,
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


def _timed(**how: Any) -> tuple[float, float, list[float], pd.DataFrame]:
    """Wall seconds, this process's CPU seconds, each Dask worker's CPU seconds (none off
    Dask) and the rows of one sweep."""
    client = how.get("client")
    before = client.run(time.process_time) if client is not None else {}
    started, cpu = time.perf_counter(), time.process_time()
    rows = sw.sweep(how.pop("source"), **how)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    after = client.run(time.process_time) if client is not None else {}
    return wall, cpu, [after[w] - before[w] for w in before if w in after], rows


def _on_two_cores(cpu: dict[str, Any]) -> float:
    """Wall seconds a Dask sweep would take on two free cores, from its CPU seconds: its
    busiest worker's, or all its processes' (workers, scheduler, client) over two cores."""
    return max(max(cpu["workers"]), (sum(cpu["workers"]) + cpu["main"]) / 2)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    # Speed must not cost correctness: every path gives the very same rows.
    drop = ["wall_seconds"]
    return a.drop(columns=drop).equals(b.drop(columns=drop))


def measure(duration: float = 60.0, repeats: int = 2) -> dict[str, Any]:
    """Wall seconds of the same sweep serially, on a 2-process pool and on Dask
    LocalClusters of 1 and 2 workers; Dask's overhead and its 2-worker speed-up."""
    source = spec(duration)
    warm = spec(1.0, replications=1)
    sw.sweep(warm, workers=2)  # starts the fork server, which pools and clusters fork from
    workers = {"serial": 1, "pool2": 2, "dask1": 1, "dask2": 2}
    times: dict[str, list[float]] = {name: [] for name in workers}
    cpus: dict[str, list[dict[str, Any]]] = {name: [] for name in workers}
    startup: dict[str, list[float]] = {"dask1": [], "dask2": []}
    rows: dict[str, pd.DataFrame] = {}
    share: list[float] = []
    for _ in range(repeats):
        for name, n in workers.items():
            with contextlib.ExitStack() as stack:
                how: dict[str, Any] = {"workers": n}
                if name.startswith("dask"):
                    # A cluster only while it is measured: an idle one's scheduler would
                    # share this process (and its GIL) with the serial sweep.
                    started = time.perf_counter()
                    client = stack.enter_context(on_dask.local_cluster(n))
                    startup[name].append(time.perf_counter() - started)
                    sw.sweep(warm, client=client)  # the first task's hand-off, once
                    how = {"client": client}
                seconds, cpu, on_workers, rows[name] = _timed(source=source, **how)
            times[name].append(seconds)
            cpus[name].append({"main": cpu, "workers": on_workers})
            if name == "serial":
                # The share of a core the serial sweep got: below ~95%, other work on the
                # machine was taking CPU and every figure here is noisy.
                share.append(cpu / seconds)
    best = {name: min(ts) for name, ts in times.items()}
    # The CPU figures of each path's least costly try.
    serial_cpu = min(c["main"] for c in cpus["serial"])
    one_cpu = min(c["main"] + sum(c["workers"]) for c in cpus["dask1"])
    one_wall = min(_on_two_cores(c) for c in cpus["dask1"])
    two_wall = min(_on_two_cores(c) for c in cpus["dask2"])
    work = float(rows["serial"]["wall_seconds"].sum())
    return {
        "runs": len(rows["serial"]),
        "duration": duration,
        "run_seconds": work / len(rows["serial"]),
        **best,
        "times": times,
        "core_share": min(share),
        "load_average": os.getloadavg()[0],
        "startup": {name: min(ts) for name, ts in startup.items()},
        "overhead": best["dask1"] / best["serial"] - 1,
        "speedup": best["dask1"] / best["dask2"],
        "pool_speedup": best["serial"] / best["pool2"],
        "cpu_overhead": one_cpu / serial_cpu - 1,
        "cpu_speedup": one_wall / two_wall,
        "cpus": cpus,
        "same": all(_same(rows["serial"], r) for r in rows.values()),
    }


def main(argv: list[str]) -> None:
    """Print the sweep's wall times and the goal's two ratios."""
    small = "--small" in argv
    r = measure(duration=6.0 if small else 60.0, repeats=1 if small else 2)
    print(
        f"sweep: {r['runs']} runs (4 protocols x 8 loads x 3, {r['duration']:g} s simulated, "
        f"{r['run_seconds']:.2f} s of work per run on average)"
    )
    print(f"  serial, in process            {r['serial']:>7.2f} s")
    print(
        f"  local pool, 2 processes       {r['pool2']:>7.2f} s   "
        f"speed-up {r['pool_speedup']:.2f} over serial"
    )
    print(
        f"  Dask, 1 worker                {r['dask1']:>7.2f} s   overhead "
        f"{r['overhead']:+.1%} over serial (goal < 10%)"
    )
    print(
        f"  Dask, 2 workers               {r['dask2']:>7.2f} s   speed-up "
        f"{r['speedup']:.2f} over 1 worker (goal >= 1.9)"
    )
    every = "  ".join(f"{k} " + "/".join(f"{t:.2f}" for t in ts) for k, ts in r["times"].items())
    print(f"  same rows on every path       {'yes' if r['same'] else 'NO'}   (each try: {every})")
    print(
        f"  from CPU seconds              overhead {r['cpu_overhead']:+.1%}   "
        f"speed-up {r['cpu_speedup']:.2f} on two free cores"
    )
    cpu = "  ".join(
        f"{k} "
        + "/".join(f"{c['main']:.1f}+" + "+".join(f"{w:.1f}" for w in c["workers"]) for c in cs)
        for k, cs in r["cpus"].items()
        if k != "pool2"
    )
    print(f"  CPU s (this process+workers)  {cpu}")
    print(
        f"  cluster start-up (not counted): 1 worker {r['startup']['dask1']:.1f} s, "
        f"2 workers {r['startup']['dask2']:.1f} s"
    )
    print(
        f"  noise: the serial sweep got {r['core_share']:.0%} of a core at worst; "
        f"load average {r['load_average']:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
