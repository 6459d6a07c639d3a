"""The contention experiment of "Exponential Backoff And Jitter" (AWS Architecture Blog, 2015).

N clients each want to update one shared row once, with optimistic concurrency: read the
row's version, then write it back; the write succeeds only if the version is unchanged,
so an attempt fails when another client's write lands inside it (between its read and
its write). A client whose write fails waits as its retry policy says and tries again,
until it succeeds. Every message crosses a network whose delay is `|Normal(mean, sd)|`.
This is the model of the blog's simulator (aws-samples/aws-arch-backoff-simulator):
10 ms +- 2 ms per hop; backoff from a 5 ms base capped at 2 s (see `STRATEGIES`).

`run_contention` returns how many writes (calls) the clients made, and when the last one
succeeded. Notebooks can sweep it over clients and strategies; `STRATEGIES` holds the
blog's five, built on the formulas of `protocols.resilience.backoff`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import simpy

from protocols.resilience import RetryPolicy, RetrySettings

# No limit on attempts: every client keeps trying until it succeeds.
_FOREVER = 1_000_000_000

STRATEGIES: dict[str, RetrySettings] = {
    "none": RetrySettings(max_attempts=_FOREVER, backoff="constant", jitter="none", base=0.0),
    "exponential": RetrySettings(
        max_attempts=_FOREVER, backoff="exponential", jitter="none", base=0.01, cap=2.0
    ),
    "equal": RetrySettings(
        max_attempts=_FOREVER, backoff="exponential", jitter="equal", base=0.01, cap=2.0
    ),
    "full": RetrySettings(
        max_attempts=_FOREVER, backoff="exponential", jitter="full", base=0.01, cap=2.0
    ),
    # Brooker's simulator gives every strategy a 5 ms base. Its exponential wait after
    # failure n is 5 ms * 2^n (n from 1), which is our base * 2^(n-1) with base 10 ms;
    # decorrelated jitter draws from [base, 3 * previous] starting at the base itself,
    # so it takes the 5 ms (10 ms made about 850 writes at N=100 instead of about 1,000).
    "decorrelated": RetrySettings(
        max_attempts=_FOREVER, backoff="decorrelated", base=0.005, cap=2.0
    ),
}


@dataclass(frozen=True)
class ContentionResult:
    """One run: writes attempted, writes that failed, and when the last client finished."""

    clients: int
    calls: int
    failures: int
    finished_at: float


class _Row:
    """The contended resource: one row with a version."""

    def __init__(self) -> None:
        self.version = 0
        self.calls = 0
        self.failures = 0


def run_contention(
    clients: int,
    retry: RetrySettings,
    seed: int,
    net_mean: float = 0.010,
    net_sd: float = 0.002,
) -> ContentionResult:
    """Run `clients` clients to completion with the `retry` strategy; deterministic per seed."""
    env = simpy.Environment()
    row = _Row()
    policy = RetryPolicy(retry)
    # Separate streams, so the network's draws do not depend on how many waits were drawn.
    net = random.Random(f"contention-net-{seed}")
    waits = random.Random(f"contention-backoff-{seed}")

    def hop() -> float:
        return abs(net.normalvariate(net_mean, net_sd))

    def client() -> simpy.events.ProcessGenerator:
        attempt = 0
        previous = 0.0
        yield env.timeout(hop())  # the first read request
        while True:
            seen = row.version  # the read, at the server
            yield env.timeout(hop() + hop())  # its answer, then the write request
            row.calls += 1
            ok = row.version == seen
            if ok:
                row.version += 1
            else:
                row.failures += 1
            yield env.timeout(hop())  # the write's answer
            if ok:
                return
            attempt += 1
            previous = policy.delay(attempt, previous, waits)
            yield env.timeout(previous + hop())  # back off, then read again

    for _ in range(clients):
        env.process(client())
    env.run()
    return ContentionResult(clients, row.calls, row.failures, env.now)


def mean_calls(clients: int, strategy: str, runs: int, seed: int = 0) -> float:
    """Calls per run of `strategy` (a `STRATEGIES` key), averaged over `runs` seeds."""
    total = 0
    for i in range(runs):
        total += run_contention(clients, STRATEGIES[strategy], seed * 100_003 + i).calls
    return total / runs
