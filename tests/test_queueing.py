"""The simulator against queueing theory: M/M/c waits and utilisation.

A client sends Poisson requests over a zero-latency network to a service with c workers
and exponential service times, so the service is an M/M/c queue and its server spans'
`wait` is the queueing delay Wq of Erlang C. Each replication (its own seed) gives one
sample: the mean wait of the requests arriving between the warm-up and the end of the
arrivals. The arrivals stop before the run ends, so every request of the window is
served and none is left open to bias the mean.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import pandas as pd
import pytest

import sim
from sim.theory import erlang_b, erlang_c, mean_interval, mmc, t_cdf, t_quantile

LEVEL = 0.99


@dataclass(frozen=True)
class Case:
    """One M/M/c experiment: the queue, and how long and how often it is simulated."""

    arrival_rate: float
    service_rate: float
    servers: int
    horizon: float  # arrivals stop here
    warmup: float  # requests arriving earlier are not counted (the queue starts empty)
    seeds: tuple[int, ...]
    # The CI must be at most this fraction of Wq wide on each side, or the test could
    # pass by being vague.
    max_relative_half_width: float


# Lengths were measured, not guessed. One replication's mean wait has a standard
# deviation of about 48 / sqrt(window) for M/M/1 at rho=0.8 (300 replications of the
# FIFO recursion) and 6.1 / sqrt(window) for M/M/10 at rho=0.9 (120 simulated ones), so
# these give 99% half-widths near 8% and 11% of Wq. The limits below are about 1.6 times
# those: a fair sample standard deviation stays under them, a too-short run does not.
CASES = {
    "M/M/1 rho=0.8": Case(0.8, 1.0, 1, 13_000, 1_000, tuple(range(1, 17)), 0.14),
    "M/M/10 rho=0.9": Case(9.0, 1.0, 10, 3_100, 200, tuple(range(1, 21)), 0.18),
}
DRAIN = 300.0  # simulated seconds after the last arrival, so the queue empties


def scenario(case: Case) -> dict:
    """The M/M/c queue as a scenario: zero latency, no timeouts in the way."""
    return {
        "name": "mmc",
        "duration": case.horizon + DRAIN,
        "agents": [
            {"id": "client", "role": "client"},
            {
                "id": "svc",
                "role": "service",
                "workers": case.servers,
                "service_time": {"dist": "exponential", "mean": 1 / case.service_rate},
            },
        ],
        "channels": [{"from": "client", "to": "svc", "timeout": 100_000}],
        "network": {"default": {"latency": {"dist": "constant", "value": 0}}},
        "workload": [
            {
                "from": "client",
                "to": "svc",
                "end": case.horizon,
                "arrivals": {"kind": "poisson", "rate": case.arrival_rate},
            }
        ],
    }


@dataclass(frozen=True)
class Replication:
    """What one replication measured inside its window [warmup, horizon)."""

    mean_wait: float
    requests: int
    span_utilisation: float  # busy worker-seconds from server spans / (c x window)
    sampled_utilisation: float  # mean `in_flight` of the queue samples / c
    open_spans: int


def measure(case: Case, seed: int) -> Replication:
    """Run one replication and reduce it to its window's figures."""
    run = sim.run(scenario(case), seed=seed)
    spans = run.spans
    server = spans[spans["kind"] == "server"]
    window = server[(server["start"] >= case.warmup) & (server["start"] < case.horizon)]
    busy_from = server["start"] + server["wait"]
    overlap = server["end"].clip(upper=case.horizon) - busy_from.clip(lower=case.warmup)
    busy = overlap.clip(lower=0).sum()
    span = case.horizon - case.warmup
    queues = run.queues
    samples = queues[
        (queues["queue"] == "svc.workers")
        & (queues["time"] >= case.warmup)
        & (queues["time"] < case.horizon)
    ]
    return Replication(
        mean_wait=float(window["wait"].mean()),
        requests=len(window),
        span_utilisation=float(busy / (case.servers * span)),
        sampled_utilisation=float(samples["in_flight"].mean() / case.servers),
        open_spans=int((window["outcome"] != "ok").sum() + window["wait"].isna().sum()),
    )


@functools.cache
def replications(name: str) -> tuple[Replication, ...]:
    """Every replication of a case, run once per test session, on up to two cores."""
    case = CASES[name]
    workers = min(2, os.cpu_count() or 1)
    if workers < 2 or "fork" not in mp.get_all_start_methods():
        return tuple(measure(case, seed) for seed in case.seeds)
    # Replications are independent runs, so they parallelise perfectly; fork shares the
    # already-imported simulator with the workers.
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        return tuple(pool.map(measure, [case] * len(case.seeds), case.seeds))


# --- the theory itself -----------------------------------------------------------------


def test_erlang_formulas_match_known_values():
    assert mmc(0.8, 1.0, 1).wq == pytest.approx(4.0)
    assert mmc(9.0, 1.0, 10).wq == pytest.approx(0.6687, abs=5e-5)
    # M/M/1: the chance to wait is the utilisation.
    assert erlang_c(1, 0.7) == pytest.approx(0.7)
    # Erlang B with one server is a / (1 + a); a textbook table value for c=10, a=5.
    assert erlang_b(1, 3.0) == pytest.approx(0.75)
    assert erlang_b(10, 5.0) == pytest.approx(0.018385, abs=1e-6)
    q = mmc(9.0, 1.0, 10)
    assert q.lq == pytest.approx(9.0 * q.wq)  # Little's law
    assert q.utilisation == pytest.approx(0.9)
    with pytest.raises(ValueError, match="unstable"):
        mmc(10.0, 1.0, 10)


@pytest.mark.parametrize(
    ("df", "quantile"),
    [(1, 63.6567), (2, 9.9248), (4, 4.6041), (9, 3.2498), (30, 2.7500), (1000, 2.5808)],
)
def test_t_quantile_matches_tables(df, quantile):
    assert t_quantile(0.995, df) == pytest.approx(quantile, abs=1e-3)
    assert t_quantile(0.005, df) == pytest.approx(-quantile, abs=1e-3)
    assert t_cdf(quantile, df) == pytest.approx(0.995, abs=1e-5)


def test_mean_interval_covers_and_narrows():
    ci = mean_interval([1.0, 2.0, 3.0, 4.0], level=0.99)
    assert ci.mean == pytest.approx(2.5)
    # sd = 1.29099, t(0.995, 3) = 5.84091
    assert ci.half_width == pytest.approx(5.84091 * 1.290994 / 2, rel=1e-5)
    assert 2.5 in ci and 10.0 not in ci
    assert mean_interval([1.0, 2.0, 3.0, 4.0], level=0.9).half_width < ci.half_width


# --- the simulator against it ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_mean_wait_matches_erlang_c(name):
    case = CASES[name]
    theory = mmc(case.arrival_rate, case.service_rate, case.servers)
    reps = replications(name)
    # Every request of the window was served: an open one would bias the mean down.
    assert all(r.open_spans == 0 for r in reps)
    expected_requests = case.arrival_rate * (case.horizon - case.warmup)
    assert all(r.requests > 0.95 * expected_requests for r in reps)
    ci = mean_interval([r.mean_wait for r in reps], level=LEVEL)
    report = (
        f"{name}: Wq theory {theory.wq:.4f}, simulated {ci.mean:.4f}, "
        f"{LEVEL:.0%} CI [{ci.low:.4f}, {ci.high:.4f}] over {ci.n} replications"
    )
    print(report)
    assert theory.wq in ci, report
    assert ci.half_width < case.max_relative_half_width * theory.wq, report


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_utilisation_matches_offered_load(name):
    case = CASES[name]
    rho = mmc(case.arrival_rate, case.service_rate, case.servers).utilisation
    reps = replications(name)
    from_spans = mean_interval([r.span_utilisation for r in reps], level=LEVEL)
    assert rho in from_spans, from_spans
    assert from_spans.half_width < 0.02
    # The queue samples see the same busy workers, at one-second ticks.
    sampled = pd.Series([r.sampled_utilisation for r in reps])
    assert sampled.mean() == pytest.approx(rho, abs=0.02)
    assert (sampled - pd.Series([r.span_utilisation for r in reps])).abs().max() < 0.03
