"""Peak memory of a run's trace: in memory against spilled to Parquet as the run goes.

Each measurement runs in a fresh process (`ru_maxrss` is a process's peak), on the
kernel benchmark's fleet (`bench.kernel.pairs_scenario`: clients each calling their own
service over HTTP, two wire messages and two spans per request). A spilled run also
computes its summary from the files, as `python -m sim run --spill` does.

    python -m bench.spill            # 1M messages both ways, then 10M spilled, 10,000 agents
    python -m bench.spill --small    # 100k messages both ways
    python -m bench.spill --messages 1000000,2000000 --agents 10000   # spilled only
    python -m bench.spill --messages 1000000 --agents 10000 --memory  # and in memory

With `--messages`, each size is run with `--agents` agents (half clients, half services,
10 requests a second per client, two messages a request), so the simulated length is
messages / (agents x 10) seconds.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.kernel import pairs_scenario
from sim.world import World


def one(mode: str, pairs: int, rate: float, duration: float) -> dict[str, Any]:
    """Run the fleet once, `mode` "memory" or "spill"; its numbers and peak RSS."""
    scenario = pairs_scenario(pairs, rate, duration)
    with tempfile.TemporaryDirectory(prefix="bench-spill-") as directory:
        started = time.perf_counter()
        world = World(scenario, spill=directory if mode == "spill" else None)
        run = world.run()
        ran = time.perf_counter() - started
        run_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        summary = run.summary()
        total = time.perf_counter() - started
    return {
        "mode": mode,
        "agents": 2 * pairs,
        "messages": summary["messages"],
        "requests": summary["requests"],
        "run_seconds": round(ran, 1),
        "with_summary_seconds": round(total, 1),
        "run_peak_rss_mb": round(run_peak),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def measure(mode: str, pairs: int, rate: float, duration: float) -> dict[str, Any]:
    """`one` in a fresh interpreter, so that its peak is its own."""
    args = [sys.executable, "-m", "bench.spill", "--one", mode, str(pairs), str(rate)]
    done = subprocess.run([*args, str(duration)], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def show(r: dict[str, Any]) -> None:
    """One line per measurement."""
    print(
        f"  {r['mode']:<7} {r['agents']:>6,} agents {r['messages']:>11,} messages  "
        f"peak {r['peak_rss_mb']:>6,} MB (run {r['run_peak_rss_mb']:>6,} MB, then summary)  "
        f"run {r['run_seconds']:>7.1f} s  "
        f"+summary {r['with_summary_seconds']:>7.1f} s"
    )


RATE = 10.0  # requests per second per client


def sizes(argv: list[str]) -> list[tuple[int, float]]:
    """(pairs, duration) for each of `--messages N[,N...]` with `--agents A` (1,000)."""
    messages = [int(n) for n in _option(argv, "--messages", "").split(",") if n]
    agents = int(_option(argv, "--agents", "1000"))
    pairs = max(1, agents // 2)
    # Each client's requests make two messages: 2 x pairs x RATE messages a second.
    return [(pairs, n / (2 * pairs * RATE)) for n in messages]


def _option(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv[:-1] else default


def main(argv: list[str]) -> None:
    """Print peak memory in memory vs spilled, then the 10M-message spilled run."""
    if argv[:1] == ["--one"]:
        mode, pairs, rate, duration = argv[1], int(argv[2]), float(argv[3]), float(argv[4])
        print(json.dumps(one(mode, pairs, rate, duration)))
        return
    if "--messages" in argv:
        modes = ("memory", "spill") if "--memory" in argv else ("spill",)
        print("spill: peak memory of the trace (each run in its own process)")
        for pairs, duration in sizes(argv):
            for mode in modes:
                show(measure(mode, pairs, RATE, duration))
        return
    small = "--small" in argv
    # 500 pairs x 10 requests/s x 2 messages: 10,000 messages per simulated second.
    duration = 10.0 if small else 100.0
    print("spill: peak memory of the trace (each run in its own process)")
    for mode in ("memory", "spill"):
        show(measure(mode, 500, RATE, duration))
    if not small and "--no-10m" not in argv:
        # 5,000 clients and 5,000 services: 10,000 agents, 10M messages (target < 3 GB).
        show(measure("spill", 5000, RATE, 100.0))


if __name__ == "__main__":
    main(sys.argv[1:])
