"""The AWS blog's experiment: N clients contend for one row, each retrying until it wins.

"Exponential Backoff And Jitter" (AWS Architecture Blog, 2015) found that exponential
backoff without jitter still clusters retries, so its clients make nearly as many calls
as clients that do not back off at all, and that jittered backoff roughly halves the work
and finishes sooner. `bench.contention` is the blog's model as a SimPy simulation.
"""

from __future__ import annotations

import math
import statistics

import pytest

from bench.contention import STRATEGIES, mean_calls, run_contention

RUNS = 20  # runs averaged per point, as the blog averages 100


@pytest.fixture(scope="module")
def calls() -> dict[int, dict[str, float]]:
    """Mean calls per run for every strategy at 50 and 100 clients."""
    return {n: {s: mean_calls(n, s, RUNS, seed=1) for s in STRATEGIES} for n in (50, 100)}


@pytest.mark.parametrize("clients", [50, 100])
def test_no_backoff_makes_the_most_calls_and_exponential_without_jitter_is_next(calls, clients):
    c = calls[clients]
    jittered = max(c["full"], c["decorrelated"], c["equal"])
    assert c["none"] > 1.05 * c["exponential"], c
    assert c["exponential"] > 1.6 * jittered, c


@pytest.mark.parametrize("clients", [50, 100])
def test_full_and_decorrelated_jitter_need_far_fewer_calls(calls, clients):
    c = calls[clients]
    # Every client succeeds once, so the calls are at least the clients; jitter keeps the
    # waste to a few calls per client while the unjittered strategies waste O(N) each.
    for strategy in ("full", "decorrelated"):
        assert clients <= c[strategy] < 10 * clients, c
    assert c["none"] > 12 * clients, c


def test_the_work_grows_faster_than_the_clients_without_jitter(calls):
    # Doubling the clients roughly quadruples the calls without jitter, not with it.
    assert calls[100]["none"] > 3.2 * calls[50]["none"]
    assert calls[100]["exponential"] > 2.6 * calls[50]["exponential"]
    assert calls[100]["full"] < 2.7 * calls[50]["full"]


def test_exponential_without_jitter_also_takes_far_longer():
    def finished(strategy: str) -> float:
        runs = [run_contention(50, STRATEGIES[strategy], seed) for seed in range(5)]
        return sum(r.finished_at for r in runs) / len(runs)

    assert finished("exponential") > 5 * finished("full")
    assert finished("exponential") > 5 * finished("decorrelated")


def test_a_run_is_deterministic_and_every_client_succeeds_once():
    a = run_contention(30, STRATEGIES["full"], seed=4)
    b = run_contention(30, STRATEGIES["full"], seed=4)
    assert a == b
    assert a.calls - a.failures == 30
    assert run_contention(30, STRATEGIES["full"], seed=5) != a


# Brooker's own simulator (aws-samples/aws-arch-backoff-simulator, src/backoff_simulator.py)
# at N=100, 100 runs per point as it averages them; each figure is the mean of three such
# points (seeds 1-3), run under Python 3: (seconds to the last success, writes per run).
PUBLISHED_N100 = {
    "exponential": (63.391, 1853.3),
    "decorrelated": (4.620, 1001.1),
    "equal": (6.609, 812.8),
    "full": (4.907, 796.2),
    "none": (2.030, 2423.6),
}


@pytest.mark.parametrize("strategy", list(PUBLISHED_N100))
def test_the_model_gives_the_published_numbers_at_100_clients(strategy: str) -> None:
    runs = [run_contention(100, STRATEGIES[strategy], seed) for seed in range(100)]
    expected_time, expected_calls = PUBLISHED_N100[strategy]
    for name, values, expected in (
        ("completion time", [r.finished_at for r in runs], expected_time),
        ("writes", [r.calls for r in runs], expected_calls),
    ):
        mean = statistics.fmean(values)
        # The standard error of our mean and of the published one (300 runs), at about
        # 3.9 sigma: a test that fails by chance once in 10,000, and a 15% error (the
        # 10 ms decorrelated base) fails by dozens of sigma.
        error = statistics.stdev(values) * math.sqrt(1 / len(values) + 1 / 300)
        assert abs(mean - expected) < 3.9 * error + 1e-9, (
            f"{strategy}: {name} {mean:.3f}, published {expected} (+- {error:.3f})"
        )
