"""The kernel benchmark: Switchboard's full trace against a bare SimPy loop.

Both sides simulate the same sends: clients send Poisson requests to services over a
link with normal latency, and each service answers each request. The bare loop is the
floor of what SimPy can do (a timeout per message and a Store per inbox, nothing
recorded); Switchboard adds seeded streams, fault checks, worker pools, spans and one
trace row per message. The figure of merit is the ratio of messages per wall second.
"""

from __future__ import annotations

import random
import resource
import sys
import time
from collections.abc import Iterator
from typing import Any

import simpy

from sim.scenario import Scenario
from sim.world import World


def pairs_scenario(pairs: int, rate: float, duration: float, seed: int = 1) -> Scenario:
    """`pairs` clients, each calling its own service at `rate` requests per second."""
    agents: list[dict[str, Any]] = []
    workload: list[dict[str, Any]] = []
    for i in range(pairs):
        agents.append({"id": f"c{i}", "role": "client"})
        agents.append(
            {
                "id": f"s{i}",
                "role": "service",
                "workers": 4,
                "service_time": {"dist": "exponential", "mean": 0.02},
            }
        )
        workload.append(
            {"from": f"c{i}", "to": f"s{i}", "arrivals": {"kind": "poisson", "rate": rate}}
        )
    return Scenario.model_validate(
        {
            "name": "bench-pairs",
            "seed": seed,
            "duration": duration,
            "sample_interval": 10.0,
            "agents": agents,
            "network": {"default": {"latency": {"dist": "normal", "mean": 0.005, "sd": 0.001}}},
            "workload": workload,
        }
    )


def bare_simpy(pairs: int, rate: float, duration: float, seed: int = 1) -> int:
    """The same sends in bare SimPy; returns the number of messages sent."""
    env = simpy.Environment()
    rng = random.Random(seed)
    inboxes = [simpy.Store(env) for _ in range(2 * pairs)]
    sent = 0

    def send(dst: int, msg: tuple[int, str]) -> None:
        nonlocal sent
        sent += 1
        latency = max(0.0, rng.gauss(0.005, 0.001))
        inbox = inboxes[dst]
        env.timeout(latency).callbacks.append(lambda _e: inbox.put(msg))

    def client(i: int) -> Iterator[simpy.Event]:
        while True:
            yield env.timeout(rng.expovariate(rate))
            send(pairs + i, (i, "request"))

    def server(j: int) -> Iterator[simpy.Event]:
        while True:
            msg = yield inboxes[j].get()
            send(msg[0], (j, "response"))

    def sink(i: int) -> Iterator[simpy.Event]:
        while True:
            yield inboxes[i].get()

    for i in range(pairs):
        env.process(client(i))
        env.process(sink(i))
        env.process(server(pairs + i))
    env.run(until=duration)
    return sent


def measure(pairs: int, rate: float, duration: float) -> dict[str, float]:
    """Run both sides once; messages per wall second for each, their ratio, peak RSS."""
    started = time.perf_counter()
    bare_sent = bare_simpy(pairs, rate, duration)
    bare_wall = time.perf_counter() - started

    scenario = pairs_scenario(pairs, rate, duration)
    started = time.perf_counter()
    world = World(scenario)
    world.env.run(until=duration)
    sim_wall = time.perf_counter() - started
    tables = world.recorder.tables()
    total_wall = time.perf_counter() - started
    ours = len(tables["messages"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "agents": 2 * pairs,
        "bare_messages": bare_sent,
        "bare_rate": bare_sent / bare_wall,
        "messages": ours,
        "spans": len(tables["spans"]),
        "sim_rate": ours / sim_wall,
        "traced_rate": ours / total_wall,
        "ratio": (ours / total_wall) / (bare_sent / bare_wall),
        "peak_rss_mb": peak_mb,
    }


def main(argv: list[str]) -> None:
    """Print the kernel benchmark (`--small` for a quick 100k-message version)."""
    small = "--small" in argv
    pairs, rate, duration = (500, 10.0, 100.0) if not small else (500, 10.0, 10.0)
    r = measure(pairs, rate, duration)
    print(f"kernel: {r['agents']} agents, {r['messages']:,} messages, {r['spans']:,} spans")
    print(f"  bare SimPy           {r['bare_rate']:>12,.0f} msg/s  ({r['bare_messages']:,} sends)")
    print(f"  switchboard (sim)    {r['sim_rate']:>12,.0f} msg/s")
    print(f"  switchboard (+trace) {r['traced_rate']:>12,.0f} msg/s")
    print(f"  ratio to bare SimPy  {r['ratio']:>12.2f}   (target >= 0.5)")
    print(f"  peak memory          {r['peak_rss_mb']:>12,.0f} MB     (target < 2048)")


if __name__ == "__main__":
    main(sys.argv[1:])
