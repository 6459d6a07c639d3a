"""The M/M/c benchmark (bench/mmc.py) measures a real M/M/c queue on each side, and the
plain SimPy path gives the same trace as the fast one on it."""

from __future__ import annotations

import numpy as np
import pytest

from bench.mmc import bare_simpy, ciw_run, mmc_scenario
from sim.trace import run_digests
from sim.world import World

DURATION = 1500.0


@pytest.mark.parametrize(("arrival_rate", "servers"), [(0.8, 1), (9.0, 10)])
def test_switchboard_side_is_an_mmc_queue(arrival_rate: float, servers: int) -> None:
    duration = DURATION / servers
    run = World(mmc_scenario(arrival_rate, servers, duration)).run()
    spans = run.tables["spans"]
    client = spans[spans["kind"] == "client"]
    server = spans[spans["kind"] == "server"]
    done = client[client["outcome"] != "open"]
    # Every request answered is answered ok: no timeout, no pool limit shapes the queue.
    assert (done["outcome"] == "ok").all()
    expected = arrival_rate * duration
    assert abs(len(client) - expected) < 4 * np.sqrt(expected)
    # Zero latency: a request is served the instant it arrives; service times are Exp(1).
    served = server[server["outcome"] == "ok"]
    service = served["end"] - served["start"] - served["wait"]
    assert abs(service.mean() - 1.0) < 0.1
    # Never more than `servers` requests in service at once, and some wait only when all
    # servers are busy (a c-server FIFO queue).
    begins = (served["start"] + served["wait"]).to_numpy()
    ends = served["end"].to_numpy()
    events = sorted([(t, 1) for t in begins] + [(t, -1) for t in ends], key=lambda e: (e[0], e[1]))
    level, peak = 0, 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak == servers
    assert (served["wait"] > 0).any()
    # Only the handshakes of the connections the pool grew to, besides requests and answers.
    kinds = run.tables["messages"]["kind"].value_counts()
    assert kinds.get("control", 0) <= 2 * len(client) / 10


@pytest.mark.parametrize(("arrival_rate", "servers"), [(0.8, 1), (9.0, 10)])
def test_plain_path_gives_the_same_trace(arrival_rate: float, servers: int) -> None:
    duration = 300.0 / servers
    fast = World(mmc_scenario(arrival_rate, servers, duration), plain=False).run()
    plain = World(mmc_scenario(arrival_rate, servers, duration), plain=True).run()
    assert fast.manifest["kernel"] == "fast" and plain.manifest["kernel"] == "plain"
    a, b = run_digests(fast), run_digests(plain)
    assert {t for t in a if a[t] != b[t]} == set()


def test_baselines_serve_the_same_load() -> None:
    pytest.importorskip("ciw")
    expected = 0.8 * DURATION
    for served in (ciw_run(0.8, 1, DURATION), bare_simpy(0.8, 1, DURATION)):
        assert abs(served - expected) < 5 * np.sqrt(expected)
