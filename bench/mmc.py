"""A plain M/M/c queue three ways: Switchboard's own path, ciw, and a bare SimPy Resource.

Customers arrive as a Poisson stream (rate lambda) and each holds one of `c` servers for
an exponential time (rate mu = 1). Switchboard runs it as a workload client calling a
service with `c` workers over HTTP, with zero latency, no timeouts, a connection pool
that never limits, and the full trace built (its tables are part of the time). ciw
(a queueing library, `pip install ciw`) and a SimPy `Resource` model with a process per
customer run the same queue. The figure of merit is customers served per wall second,
as a ratio of Switchboard's to each baseline's, best of three, interleaved in one process
(issue 18's goals: at least 1.5 of ciw's and 0.8 of bare SimPy's).

    python -m bench.mmc [--small]
"""

from __future__ import annotations

import gc
import random
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import simpy

from sim.scenario import Scenario
from sim.world import World, sparse_gc

# (name, arrival rate, servers, simulated seconds: about 30k customers each)
MODELS = (("M/M/1", 0.8, 1, 40_000.0), ("M/M/10", 9.0, 10, 3_500.0))
# Nothing of the HTTP client may shape the queue: every call gets a connection at once,
# and keeps it (handshakes happen only while the pool grows to the peak concurrency).
_UNLIMITED = 1_000_000


def mmc_scenario(arrival_rate: float, servers: int, duration: float, seed: int = 1) -> Scenario:
    """A client sending Poisson requests to a service with `servers` workers, no latency."""
    return Scenario.model_validate(
        {
            "name": "bench-mmc",
            "seed": seed,
            "duration": duration,
            "sample_interval": duration,
            "agents": [
                {"id": "client", "role": "client"},
                {
                    "id": "service",
                    "role": "service",
                    "workers": servers,
                    "service_time": {"dist": "exponential", "mean": 1.0},
                },
            ],
            "network": {"default": {"latency": {"dist": "constant", "value": 0.0}}},
            "channels": [
                {
                    "from": "client",
                    "to": "service",
                    "timeout": None,
                    "http": {
                        "max_connections": _UNLIMITED,
                        "max_keepalive": _UNLIMITED,
                        "keepalive_expiry": 1e12,
                        "pool_timeout": 1e12,
                        "tls": False,
                    },
                }
            ],
            "workload": [
                {
                    "from": "client",
                    "to": "service",
                    "arrivals": {"kind": "poisson", "rate": arrival_rate},
                }
            ],
        }
    )


def switchboard(arrival_rate: float, servers: int, duration: float, plain: bool = False) -> int:
    """Customers served (client spans answered) by Switchboard, its trace built."""
    world = World(mmc_scenario(arrival_rate, servers, duration), plain=plain)
    with sparse_gc():
        world.env.run(until=duration)
    spans = world.recorder.tables()["spans"]
    return int(((spans["kind"] == "client") & (spans["outcome"] == "ok")).sum())


def ciw_run(arrival_rate: float, servers: int, duration: float, seed: int = 1) -> int:
    """Customers served by ciw's simulation of the same queue."""
    import ciw  # a dev dependency: only this benchmark needs it

    ciw.seed(seed)
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=arrival_rate)],
        service_distributions=[ciw.dists.Exponential(rate=1.0)],
        number_of_servers=[servers],
    )
    simulation = ciw.Simulation(network)
    simulation.simulate_until_max_time(duration)
    return len(simulation.get_all_records())


def bare_simpy(arrival_rate: float, servers: int, duration: float, seed: int = 1) -> int:
    """Customers served by SimPy's textbook model: a Resource, a process per customer."""
    env = simpy.Environment()
    rng = random.Random(seed)
    desk = simpy.Resource(env, capacity=servers)
    served = 0

    def customer() -> Iterator[simpy.Event]:
        nonlocal served
        with desk.request() as turn:
            yield turn
            yield env.timeout(rng.expovariate(1.0))
        served += 1

    def source() -> Iterator[simpy.Event]:
        while True:
            yield env.timeout(rng.expovariate(arrival_rate))
            env.process(customer())

    env.process(source())
    env.run(until=duration)
    return served


RUNNERS: dict[str, Callable[[float, int, float], int]] = {
    "switchboard": switchboard,
    "ciw": ciw_run,
    "simpy": bare_simpy,
}


def measure(scale: float = 1.0, rounds: int = 3) -> list[dict[str, Any]]:
    """Customers per wall second of each runner on each model (best of `rounds`,
    interleaved), and Switchboard's ratios to ciw and bare SimPy."""
    results = []
    for name, arrival_rate, servers, duration in MODELS:
        best: dict[str, float] = {}
        customers: dict[str, int] = {}
        for _ in range(rounds):
            for runner, run in RUNNERS.items():
                gc.collect()
                started = time.perf_counter()
                customers[runner] = run(arrival_rate, servers, duration * scale)
                rate = customers[runner] / (time.perf_counter() - started)
                best[runner] = max(best.get(runner, 0.0), rate)
        results.append(
            {
                "model": name,
                "customers": customers,
                "rates": best,
                "vs_ciw": best["switchboard"] / best["ciw"],
                "vs_simpy": best["switchboard"] / best["simpy"],
            }
        )
    return results


def main(argv: list[str]) -> None:
    """Print customers per wall second and the ratios (`--small`: a tenth of the work)."""
    rounds = 3
    results = measure(scale=0.1 if "--small" in argv else 1.0, rounds=rounds)
    print(f"mmc: customers per wall second, zero latency, trace built (best of {rounds})")
    for r in results:
        rates, n = r["rates"], r["customers"]
        print(
            f"  {r['model']:<7} switchboard {rates['switchboard']:>8,.0f}  ciw {rates['ciw']:>8,.0f}"
            f"  simpy {rates['simpy']:>8,.0f}  ({n['switchboard']:,} customers)"
            f"  ratio vs ciw {r['vs_ciw']:.2f} (goal 1.5), vs SimPy {r['vs_simpy']:.2f} (goal 0.8)"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
