"""The simulator against queueing theory: M/M/c waits and utilisation.

A client sends Poisson requests over a zero-latency network to a service with c workers
and exponential service times, so the service is an M/M/c queue and its server spans'
`wait` is the queueing delay Wq of Erlang C. One long run per case is cut into equal
windows of arrival time (batch means): each window gives one sample, the mean wait of the
requests arriving in it. The arrivals stop before the run ends, so every request is
served and none is left open to bias the mean.

Each interval is a 95% one whose half-width must be under 5% of the theoretical value,
with the theory inside it: a simulator whose mean were 5% off would put the theory
outside the interval, so such a bias fails the test.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pandas as pd
import pytest

import sim
from sim.theory import erlang_b, erlang_c, mean_interval, mmc, t_cdf, t_quantile

LEVEL = 0.95
# The half-width may be at most this fraction of the theoretical value.
MAX_RELATIVE_HALF_WIDTH = 0.05
BATCHES = 30


@dataclass(frozen=True)
class Case:
    """One M/M/c experiment: the queue, and how long it is simulated."""

    arrival_rate: float
    service_rate: float
    servers: int
    horizon: float  # arrivals stop here
    warmup: float  # requests arriving earlier are not counted (the queue starts empty)


# Rates are high so that the run is short in simulated seconds (few queue samples) for
# its requests. Lengths were measured, not guessed: with the FIFO recursion over 2 million
# requests, one request's contribution to the variance of the mean wait is about 27 Wq^2
# for M/M/1 at rho=0.5 and 50 Wq^2 for M/M/2 at rho=0.5, so 120,000 and 160,000 requests
# give 95% half-widths near 2.9% and 3.5% of Wq, under the 5% limit with room for the
# noise of the estimated standard deviation. Busier queues (M/M/1 at 0.8, M/M/10 at 0.9)
# need 220,000 and 1.3 million requests for the same 5%, past what a test may take.
CASES = {
    "M/M/1 rho=0.5": Case(50.0, 100.0, 1, 2_402, 2),
    "M/M/2 rho=0.5": Case(100.0, 100.0, 2, 1_602, 2),
}
DRAIN = 10.0  # simulated seconds after the last arrival, so the queue empties


def scenario(case: Case) -> dict:
    """The M/M/c queue as a scenario: zero latency, no timeouts in the way."""
    return {
        "name": "mmc",
        "duration": case.horizon + DRAIN,
        "sample_interval": 0.1,  # a sample every ten mean service times
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
class Batches:
    """What one run measured, per window of [warmup, horizon)."""

    mean_wait: tuple[float, ...]
    requests: tuple[int, ...]
    span_utilisation: tuple[float, ...]  # busy worker-seconds from server spans / (c x window)
    sampled_utilisation: float  # mean `in_flight` of the queue samples / c, whole window
    open_spans: int


def measure(case: Case, seed: int = 1) -> Batches:
    """Run the case once and reduce it to its windows' figures."""
    run = sim.run(scenario(case), seed=seed)
    server = run.spans[run.spans["kind"] == "server"]
    width = (case.horizon - case.warmup) / BATCHES
    busy_from = server["start"] + server["wait"]
    waits, counts, busy = [], [], []
    for k in range(BATCHES):
        low, high = case.warmup + k * width, case.warmup + (k + 1) * width
        window = server[(server["start"] >= low) & (server["start"] < high)]
        waits.append(float(window["wait"].mean()))
        counts.append(len(window))
        overlap = server["end"].clip(upper=high) - busy_from.clip(lower=low)
        busy.append(float(overlap.clip(lower=0).sum() / (case.servers * width)))
    counted = server[(server["start"] >= case.warmup) & (server["start"] < case.horizon)]
    queues = run.queues
    samples = queues[
        (queues["queue"] == "svc.workers")
        & (queues["time"] >= case.warmup)
        & (queues["time"] < case.horizon)
    ]
    return Batches(
        mean_wait=tuple(waits),
        requests=tuple(counts),
        span_utilisation=tuple(busy),
        sampled_utilisation=float(samples["in_flight"].mean() / case.servers),
        open_spans=int((counted["outcome"] != "ok").sum() + counted["wait"].isna().sum()),
    )


@functools.cache
def batches(name: str) -> Batches:
    """The case's run, once per test session."""
    return measure(CASES[name])


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
    run = batches(name)
    # Every request of the window was served: an open one would bias the mean down.
    assert run.open_spans == 0
    expected_requests = case.arrival_rate * (case.horizon - case.warmup) / BATCHES
    assert all(n > 0.95 * expected_requests for n in run.requests)
    ci = mean_interval(run.mean_wait, level=LEVEL)
    report = (
        f"{name}: Wq theory {theory.wq:.5f}, simulated {ci.mean:.5f}, {LEVEL:.0%} CI "
        f"[{ci.low:.5f}, {ci.high:.5f}] (half-width {ci.half_width / theory.wq:.1%} of "
        f"theory) over {ci.n} batches of {sum(run.requests)} requests"
    )
    print(report)
    assert theory.wq in ci, report
    assert ci.half_width < MAX_RELATIVE_HALF_WIDTH * theory.wq, report


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_utilisation_matches_offered_load(name):
    case = CASES[name]
    rho = mmc(case.arrival_rate, case.service_rate, case.servers).utilisation
    run = batches(name)
    from_spans = mean_interval(run.span_utilisation, level=LEVEL)
    report = f"{name}: rho {rho}, from spans {from_spans}"
    print(report)
    assert rho in from_spans, report
    assert from_spans.half_width < MAX_RELATIVE_HALF_WIDTH * rho, report
    # The queue samples see the same busy workers, at their ticks.
    spans = pd.Series(run.span_utilisation).mean()
    assert run.sampled_utilisation == pytest.approx(rho, abs=0.02)
    assert run.sampled_utilisation == pytest.approx(spans, abs=0.01)
