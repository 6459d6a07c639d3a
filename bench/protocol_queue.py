"""The queue benchmark: wire messages simulated per wall second for a 100-agent load.

One broker (SQS flavour, its defaults), 50 producers and 49 queue servers that compete
for one request queue. Each producer makes Poisson request-reply calls (the caller
never blocks); each server has 4 workers with exponential service times (mean 20 ms).
A call is 8 wire messages: publish, confirm, deliver, ack for the request and again for
the reply, plus each consumer's heartbeats. Everything goes through the simulator's own
network and recorder, with the trace built at the end, as the kernel benchmark does;
the ratio is to the kernel's bare SimPy baseline (the docs' `Cable`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import simpy

from bench.kernel import print_against_bare
from protocols.node import Node
from protocols.queue import Broker, QueueEndpoint, QueueServer, QueueSettings
from protocols.workers import Job
from sim.nodes import BENCH_NETWORK, NodeWorld
from sim.trace import Recorder
from sim.world import sparse_gc

RATE = 2.0  # calls per second per producer
SERVICE_MEAN = 0.02
WORKERS = 4


def build(agents: int, seed: int = 1) -> tuple[simpy.Environment, Recorder, Broker]:
    """The world: a broker, half the rest producers, the others servers of `svc`."""
    producers = agents // 2
    servers = agents - producers - 1
    names = ["broker"] + [f"p{i}" for i in range(producers)] + [f"w{i}" for i in range(servers)]
    world = NodeWorld(names, BENCH_NETWORK, seed)
    env, recorder, streams, nodes = world.env, world.recorder, world.streams, world.nodes
    settings = QueueSettings(flavour="sqs", sample_interval=10.0)
    broker = Broker(nodes["broker"], settings)
    for i in range(servers):
        node = nodes[f"w{i}"]
        rng = streams.get(f"bench:service:w{i}")

        def handler(job: Job, node: Node = node, rng: Any = rng) -> None:
            node.after_work(rng.expovariate(1 / SERVICE_MEAN), lambda: job.reply(200))

        QueueServer(QueueEndpoint(node, settings), WORKERS, handler, queue="svc.requests")
    for i in range(producers):
        endpoint = QueueEndpoint(nodes[f"p{i}"], settings)
        env.process(_load(env, endpoint, streams.get(f"bench:arrivals:p{i}")))
    return env, recorder, broker


def _load(env: simpy.Environment, endpoint: QueueEndpoint, rng: Any) -> Iterator[simpy.Event]:
    n = 0
    name = endpoint.node.id
    while True:
        yield env.timeout(rng.expovariate(RATE))
        n += 1
        endpoint.client.call("svc", "task.run", f"{name}-{n}", timeout=30.0)


def measure(agents: int = 100, duration: float = 300.0) -> dict[str, float]:
    """Run the load for `duration` simulated seconds; wire messages and wall seconds."""
    env, recorder, _ = build(agents)
    started = time.perf_counter()
    with sparse_gc():
        env.run(until=duration)
    tables = recorder.tables()
    seconds = time.perf_counter() - started
    messages = len(tables["messages"])
    spans = tables["spans"]
    calls = int(((spans.kind == "producer") & (spans.outcome == "ok")).sum())
    return {"messages": messages, "seconds": seconds, "rate": messages / seconds, "calls": calls}


def main(argv: list[str]) -> None:
    """Print the queue benchmark and its ratio to bare SimPy (`--small`: a tenth of it)."""
    duration = 30.0 if "--small" in argv else 300.0
    r = measure(100, duration)
    print(f"queue: 100 agents, {duration:g} s, {r['calls']:,} calls, {r['messages']:,} messages")
    print_against_bare(r)


if __name__ == "__main__":
    main(sys.argv[1:])
