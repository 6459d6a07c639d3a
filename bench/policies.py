"""The cost of the resilience policies: the same 100-agent HTTP load with and without
a circuit breaker and retries on every channel, as a ratio of wire messages per second.

The load is healthy (no faults), so the policies add bookkeeping but no extra traffic:
the ratio is their overhead on the hot path.
"""

from __future__ import annotations

import sys
import time

from bench.kernel import pairs_scenario
from sim.scenario import Scenario
from sim.world import World, sparse_gc

POLICIES = {
    "retry": {"max_attempts": 3, "backoff": "exponential", "jitter": "full", "base": 0.1},
    "breaker": {"window": 100, "min_calls": 20},
    "budget": {"kind": "ratio", "ratio": 0.1},
}


def with_policies(scenario: Scenario) -> Scenario:
    """The scenario with a breaker, retries and a retry budget on every client's channel."""
    data = scenario.model_dump(mode="json", by_alias=True)
    data["channels"] = [{"from": w["from"], "to": w["to"], **POLICIES} for w in data["workload"]]
    return Scenario.model_validate(data)


def rate(scenario: Scenario) -> tuple[int, float]:
    """Wire messages and messages per wall second of one run (trace included)."""
    world = World(scenario)
    started = time.perf_counter()
    with sparse_gc():
        world.env.run(until=scenario.duration)
    messages = len(world.recorder.tables()["messages"])
    return messages, messages / (time.perf_counter() - started)


def measure(agents: int = 100, duration: float = 300.0) -> dict[str, float]:
    """Messages per second without and with the policies, and their ratio."""
    plain = pairs_scenario(agents // 2, 10.0, duration)
    n_plain, r_plain = rate(plain)
    n_policies, r_policies = rate(with_policies(plain))
    return {
        "messages": n_plain,
        "plain_rate": r_plain,
        "policies_messages": n_policies,
        "policies_rate": r_policies,
        "ratio": r_policies / r_plain,
    }


def main(argv: list[str]) -> None:
    """Print the policies' overhead."""
    r = measure(duration=60.0 if "--small" in argv else 300.0)
    print(f"policies: {r['messages']:,} messages, 100 agents")
    print(f"  without breaker and retries {r['plain_rate']:>10,.0f} msg/s")
    print(f"  with breaker and retries    {r['policies_rate']:>10,.0f} msg/s")
    print(f"  ratio                       {r['ratio']:>10.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
