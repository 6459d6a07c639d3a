"""A server's worker pool serves queued work in arrival order, ties included.

Every request's wait is checked against the FIFO recursion (Lindley's for one worker,
Kiefer and Wolfowitz's for c): with arrivals A_n at the server and service times S_n,
request n starts at max(A_n, the earliest time a worker is free), to 1e-9. Constant
arrivals and constant service make departures and arrivals fall at the same instant,
where an arrival must not take the worker a queued request is owed.
"""

from __future__ import annotations

import heapq
from typing import Any

import pandas as pd
import pytest

import sim


def scenario(
    workers: int, arrivals: dict[str, Any], service: dict[str, Any], latency: float
) -> dict:
    """A client sending to one service over a constant-latency link, without timeouts."""
    return {
        "name": "fifo",
        "seed": 4,
        "duration": 400,
        "agents": [
            {"id": "client", "role": "client"},
            {"id": "svc", "role": "service", "workers": workers, "service_time": service},
        ],
        "channels": [{"from": "client", "to": "svc", "timeout": 100_000}],
        "network": {"default": {"latency": {"dist": "constant", "value": latency}}},
        "workload": [{"from": "client", "to": "svc", "end": 60, "arrivals": arrivals}],
    }


def fifo_waits(arrived: pd.Series, service: pd.Series, workers: int) -> list[float]:
    """The waits a FIFO queue with `workers` servers gives these arrivals (in order)."""
    free = [0.0] * workers
    waits = []
    for a, s in zip(arrived, service, strict=True):
        start = max(a, heapq.heappop(free))
        waits.append(start - a)
        heapq.heappush(free, start + s)
    return waits


def served(run: sim.Run) -> pd.DataFrame:
    """The service's spans in the order their requests reached it."""
    spans = run.spans[run.spans.agent == "svc"].sort_values(["start", "span_id"], kind="stable")
    assert (spans.outcome == "ok").all()
    return spans.assign(service=spans.end - spans.start - spans.wait)


CASES = {
    "D/D/1 ties": (1, {"kind": "constant", "rate": 1}, {"dist": "constant", "value": 1.0}, 0.25),
    "D/D/1 overload": (
        1,
        {"kind": "constant", "rate": 4},
        {"dist": "constant", "value": 0.5},
        0.25,
    ),
    "D/D/2 ties": (2, {"kind": "constant", "rate": 4}, {"dist": "constant", "value": 1.0}, 0.25),
    "M/M/1": (1, {"kind": "poisson", "rate": 0.9}, {"dist": "exponential", "mean": 1.0}, 0.0),
    "M/D/3": (3, {"kind": "poisson", "rate": 2.5}, {"dist": "constant", "value": 1.0}, 0.01),
    "M/M/3": (3, {"kind": "poisson", "rate": 2.7}, {"dist": "exponential", "mean": 1.0}, 0.0),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_every_wait_follows_the_fifo_recursion(case: str) -> None:
    workers, arrivals, service, latency = CASES[case]
    spans = served(sim.run(scenario(workers, arrivals, service, latency)))
    assert len(spans) > 50
    expected = fifo_waits(spans.start, spans.service, workers)
    off = [
        (row.span_id, row.start, row.wait, want)
        for row, want in zip(spans.itertuples(), expected, strict=True)
        if abs(row.wait - want) > 1e-9
    ]
    assert not off, f"{len(off)} of {len(spans)} waits break FIFO, first: {off[:3]}"
