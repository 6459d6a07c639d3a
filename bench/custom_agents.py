"""A role written in Python (sim.role) against the built-in role it re-implements.

The built-in `service` (work, then call each downstream agent in turn, then answer) is
rewritten on the agent API in a few lines; both run the same load of 100 client/service
pairs, interleaved, best of three. The figure of merit is the rewrite's wall-clock speed
as a share of the built-in's (issue 14's goal: 0.8 or more), and the traces must be the
same (every table's digest but `agents`, which names the role).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

import sim
from bench.kernel import pairs_scenario
from sim.plugins import register_role, unregister_role
from sim.scenario import Scenario
from sim.trace import run_digests
from sim.world import World

ROLE = "bench-service"


class Service:
    """The built-in `service` role on the agent API."""

    def on_request(self, ctx: sim.AgentContext, request: sim.Request) -> Generator[Any, Any, None]:
        """Work for a service time, call each downstream agent, then answer."""
        yield ctx.work()
        for callee in ctx.spec.calls:
            try:
                yield ctx.call(callee, request.type)
            except sim.CallTimeout as exc:
                ctx.respond(504, error=f"call to {callee} failed: {exc.error}")
                return
            except sim.CallError as exc:
                ctx.respond(502, error=f"call to {callee} failed: {exc.error}")
                return


def _rewritten(scenario: Scenario) -> Scenario:
    data = scenario.model_dump(by_alias=True)
    for agent in data["agents"]:
        if agent["role"] == "service":
            agent["role"] = ROLE
    return Scenario.model_validate(data)


def _timed(scenario: Scenario) -> tuple[float, dict[str, str]]:
    started = time.perf_counter()
    run = World(scenario).run()
    return time.perf_counter() - started, run_digests(run)


def measure(duration: float = 60.0, rounds: int = 3) -> dict[str, Any]:
    """Wall seconds of the built-in and the rewritten role (best of `rounds`, interleaved)."""
    register_role(ROLE, Service)
    try:
        builtin = pairs_scenario(100, 10.0, duration)
        custom = _rewritten(builtin)
        best = {"builtin": float("inf"), "custom": float("inf")}
        digests: dict[str, dict[str, str]] = {}
        for _ in range(rounds):
            for name, scenario in (("builtin", builtin), ("custom", custom)):
                seconds, digests[name] = _timed(scenario)
                best[name] = min(best[name], seconds)
    finally:
        unregister_role(ROLE)
    differ = {t for t in digests["builtin"] if digests["builtin"][t] != digests["custom"][t]}
    return {**best, "ratio": best["builtin"] / best["custom"], "differ": sorted(differ)}


def main(argv: list[str]) -> None:
    """Print the rewrite's speed as a share of the built-in's."""
    r = measure(duration=10.0 if "--small" in argv else 60.0)
    same = r["differ"] == ["agents"]
    print(
        f"custom agents: the service role rewritten in Python runs at {r['ratio']:.2f} of the "
        f"built-in's speed ({r['builtin']:.2f} s vs {r['custom']:.2f} s); "
        + ("same trace" if same else f"traces differ in {', '.join(r['differ'])}")
    )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
