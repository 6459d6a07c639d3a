"""The SSE benchmark: wire messages simulated per wall second for a 100-agent load.

Half the agents are clients, half stream servers; client i streams from server i, one
stream at a time, opening the next after a short think time. Each stream's job runs an
exponential time (mean 10 s) and emits a progress event every second, then the final
event; streams longer than 15 s carry keep-alives. Everything goes through the
simulator's own network and recorder, with the trace built at the end, as the kernel
benchmark does; the ratio is to the kernel's bare SimPy baseline (the docs' `Cable`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import simpy

from bench.kernel import print_against_bare
from protocols.node import Node
from protocols.sse import SseEndpoint, SseServer
from protocols.workers import Job
from sim.nodes import BENCH_NETWORK, NodeWorld
from sim.trace import Recorder
from sim.world import sparse_gc

WORK_MEAN = 10.0
THINK_MEAN = 1.0


def build(agents: int, seed: int = 1) -> tuple[simpy.Environment, Recorder, list[Any]]:
    """The world: `agents // 2` client/server pairs on a 5 ms (sd 1 ms) network."""
    pairs = agents // 2
    names = [f"c{i}" for i in range(pairs)] + [f"s{i}" for i in range(pairs)]
    world = NodeWorld(names, BENCH_NETWORK, seed)
    env, recorder, streams, nodes = world.env, world.recorder, world.streams, world.nodes
    clients = []
    for i in range(pairs):
        server_node = nodes[f"s{i}"]
        work = streams.get(f"bench:work:s{i}")

        def handler(job: Job, node: Node = server_node, rng: Any = work) -> None:
            node.after_work(rng.expovariate(1 / WORK_MEAN), lambda: job.reply(200))

        SseEndpoint(server_node, SseServer(server_node, 4, handler))
        clients.append(SseEndpoint(nodes[f"c{i}"]).client)
    for i, client in enumerate(clients):
        think = streams.get(f"bench:think:c{i}")
        env.process(_loop(env, client, f"s{i}", think))
    return env, recorder, clients


def _loop(env: simpy.Environment, client: Any, dst: str, think: Any) -> Iterator[simpy.Event]:
    n = 0
    while True:
        n += 1
        yield client.call(dst, "task.run", f"{client.node.id}-{n}", timeout=300).wait()
        yield env.timeout(think.expovariate(1 / THINK_MEAN))


def measure(agents: int = 100, duration: float = 3600.0) -> dict[str, float]:
    """Run the load for `duration` simulated seconds; wire messages and wall seconds."""
    env, recorder, _ = build(agents)
    started = time.perf_counter()
    with sparse_gc():
        env.run(until=duration)
    tables = recorder.tables()
    seconds = time.perf_counter() - started
    messages = len(tables["messages"])
    spans = tables["spans"]
    streams = int(((spans.kind == "client") & (spans.outcome == "ok")).sum())
    return {
        "messages": messages,
        "seconds": seconds,
        "rate": messages / seconds,
        "streams": streams,
    }


def main(argv: list[str]) -> None:
    """Print the SSE benchmark and its ratio to bare SimPy (`--small`: a tenth of it)."""
    duration = 360.0 if "--small" in argv else 3600.0
    r = measure(100, duration)
    print(f"sse: 100 agents, {duration:g} s, {r['streams']:,} streams, {r['messages']:,} messages")
    print_against_bare(r)


if __name__ == "__main__":
    main(sys.argv[1:])
