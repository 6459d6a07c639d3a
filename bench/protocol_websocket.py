"""The WebSocket benchmark: wire messages simulated per wall second for a 100-agent load.

Half the agents are clients, half servers; client i opens one WebSocket to server i and
both sides then send messages at any time (Poisson, `RATE` per second each way), each
consumed on arrival by a handler. Everything on the wire counts: the opening handshake,
the data messages, the delayed acknowledgements and window updates of the stream under
the WebSocket, and the keepalive pings and pongs of both sides. It all goes through the
simulator's own network and recorder, with the trace built at the end, as the kernel
benchmark does; the ratio is to the kernel's bare SimPy baseline (the docs' `Cable`).
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

import simpy

from bench.kernel import print_against_bare
from protocols.websocket import Channel, WebSocketEndpoint
from sim.nodes import BENCH_NETWORK, NodeWorld
from sim.trace import Recorder
from sim.world import sparse_gc

RATE = 2.0  # messages per second, each way, per pair


def build(agents: int, seed: int = 1) -> tuple[simpy.Environment, Recorder]:
    """The world: `agents // 2` client/server pairs on a 5 ms (sd 1 ms) network."""
    pairs = agents // 2
    names = [f"c{i}" for i in range(pairs)] + [f"s{i}" for i in range(pairs)]
    world = NodeWorld(names, BENCH_NETWORK, seed)
    env, recorder, streams, nodes = world.env, world.recorder, world.streams, world.nodes
    for i in range(pairs):
        server = WebSocketEndpoint(nodes[f"s{i}"])
        client = WebSocketEndpoint(nodes[f"c{i}"])
        for endpoint in (server, client):
            endpoint.handle("chat", _ignore)
        # The server starts talking once the client's connection is in.
        server.on_accept.append(lambda conn, s=streams: _talk(conn, s.get(f"bench:{conn.id}")))
        session = client.connect(f"s{i}")
        _talk(session, streams.get(f"bench:c{i}"))
    return env, recorder


def _ignore(_channel: Channel, _msg: Any) -> None:
    """Consume a message on arrival."""


def _talk(channel: Channel, rng: random.Random) -> None:
    """Send a message after each exponential gap, for ever."""
    node = channel.node

    def next_one() -> None:
        if not channel.finished:
            channel.send("chat", None, 512)
            node.after(rng.expovariate(RATE), next_one)

    node.after(rng.expovariate(RATE), next_one)


def measure(agents: int = 100, duration: float = 600.0) -> dict[str, float]:
    """Run the load for `duration` simulated seconds; wire messages and wall seconds."""
    env, recorder = build(agents)
    started = time.perf_counter()
    with sparse_gc():
        env.run(until=duration)
    tables = recorder.tables()
    seconds = time.perf_counter() - started
    messages = tables["messages"]
    return {
        "messages": len(messages),
        "seconds": seconds,
        "rate": len(messages) / seconds,
        "data": int((messages.kind == "event").sum()),
        "acks": int((messages.kind == "ack").sum()),
    }


def main(argv: list[str]) -> None:
    """Print the WebSocket benchmark and its ratio to bare SimPy (`--small`: a tenth)."""
    duration = 60.0 if "--small" in argv else 600.0
    r = measure(100, duration)
    print(
        f"websocket: 100 agents, {duration:g} s, {r['messages']:,} messages "
        f"({r['data']:,} data, {r['acks']:,} acks)"
    )
    print_against_bare(r)


if __name__ == "__main__":
    main(sys.argv[1:])
