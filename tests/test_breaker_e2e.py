"""The circuit breaker end to end with Resilience4j's defaults, against a reference.

A client calls a service over HTTP through a breaker with every setting at Resilience4j's
default (failure rate 50%, a COUNT_BASED window of 100 calls, 100 calls minimum, 60 s in
OPEN, 10 permitted calls in HALF_OPEN, slow calls: 100% over 60 s). The service fails a
share of requests for a while, then recovers. The reference (tests/breaker_reference.py)
is written from
Resilience4j's documented state machine, apart from `protocols.resilience`: it replays the
trace's calls in time order, decides which it would have permitted, and must find every
transition, every rate and every rejection the simulator recorded.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import sim
from tests import breaker_reference
from tests.breaker_reference import Reference

# Resilience4j's CircuitBreakerConfig defaults.
OPEN_FOR = 60.0
HALF_OPEN_CALLS = 10


def scenario(
    fraction: float,
    recover_at: float,
    duration: float = 400.0,
    protocol: str = "http",
    retry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A client calling at 5/s a service that answers `fraction` of requests 500 from 10 s
    until `recover_at`, through a breaker with every default, over `protocol`."""
    channel: dict[str, Any] = {
        "from": "c", "to": "s", "protocol": protocol, "timeout": 5, "breaker": {}
    }  # fmt: skip
    agents: list[dict[str, Any]] = []
    if protocol == "queue":
        # The consumer answers a failure (else RabbitMQ requeues it until it succeeds).
        channel["queue"] = {"broker": "mq", "request_queue": "s.in", "on_error": "reply"}
        agents.append({"id": "mq", "role": "broker", "queue": {"flavour": "rabbitmq"}})
    if retry is not None:
        channel["retry"] = retry
    return {
        "name": "breaker-defaults",
        "seed": 11,
        "duration": duration,
        "agents": [
            {"id": "c", "role": "client"},
            {
                "id": "s",
                "role": "service",
                "workers": 8,
                "service_time": {"dist": "exponential", "mean": 0.05},
            },
            *agents,
        ],
        "channels": [channel],
        "workload": [{"from": "c", "to": "s", "arrivals": {"kind": "poisson", "rate": 5}}],
        "faults": [
            {
                "kind": "error",
                "targets": ["s"],
                "start": 10,
                "end": recover_at,
                "fraction": fraction,
                "status": 500,
            }
        ],
    }


def replay(run: sim.Run) -> Reference:
    """Feed the client's calls to a breaker with Resilience4j's defaults; assert it
    permits the calls the simulator let through and refuses those it refused."""
    ref = Reference()
    assert breaker_reference.replay(run, "c", "s", ref) == []
    return ref


def recorded(run: sim.Run) -> list[tuple[float, str, str, float, int]]:
    b = run.breakers
    return list(
        zip(b["time"], b["from_state"], b["to_state"], b["failure_rate"], b["calls"], strict=True)
    )


def same(
    got: list[tuple[float, str, str, float, int]], want: list[tuple[float, str, str, float, int]]
) -> None:
    assert [m[:3] for m in got] == [m[:3] for m in want]
    for g, w in zip(got, want, strict=True):
        assert g[4] == w[4], (g, w)
        assert g[3] == pytest.approx(w[3], nan_ok=True), (g, w)


def test_a_breaker_with_resilience4js_defaults_opens_waits_probes_and_closes() -> None:
    # 70% of requests fail from 10 s to 150 s: the window fills with 100 calls by about
    # 20 s and opens; each HALF_OPEN 60 s later sees ~7 of 10 fail until the service has
    # recovered, then 10 successes close it.
    run = sim.run(scenario(0.7, recover_at=150))
    ref = replay(run)
    moves = recorded(run)
    same(moves, ref.moves)
    states = [(f, t) for _, f, t, _, _ in moves]
    assert states[0] == ("CLOSED", "OPEN")
    assert states[-1] == ("HALF_OPEN", "CLOSED")
    opened = moves[0]
    # Opened at the first call where >= 100 calls were in and >= 50% of them failed.
    assert opened[4] == 100 and opened[3] >= 0.5
    # OPEN lasts at least 60 s (the first call after the wait moves it on).
    for (t0, _, to0, _, _), (t1, from1, _, _, _) in itertools.pairwise(moves):
        if to0 == "OPEN":
            assert from1 == "OPEN" and t1 >= t0 + OPEN_FOR
    # Each HALF_OPEN verdict is over its 10 permitted calls.
    verdicts = [m for m in moves if m[1] == "HALF_OPEN"]
    assert verdicts and all(m[4] == HALF_OPEN_CALLS for m in verdicts)
    # Every refusal is a rejected span that put nothing on the wire.
    s = run.spans
    rejected = s[(s["agent"] == "c") & s["error"].str.startswith("circuit breaker")]
    assert len(rejected) == ref.rejected > 200
    m = run.messages
    sent = m[(m["src"] == "c") & (m["kind"] == "request")]
    assert not sent["span_id"].isin(rejected["span_id"]).any()


@pytest.mark.parametrize(("fraction", "opens"), [(0.3, False), (0.5, True), (0.9, True)])
def test_the_breaker_opens_only_at_a_failure_rate_of_half_over_100_calls(
    fraction: float, opens: bool
) -> None:
    run = sim.run(scenario(fraction, recover_at=120, duration=300))
    ref = replay(run)
    same(recorded(run), ref.moves)
    assert (len(ref.moves) > 0) is opens


def test_a_hundred_calls_over_a_minute_open_it_by_the_slow_call_rate() -> None:
    # From 10 s to 100 s every request takes 65 s (0.05 s x 1,300) and succeeds, on a
    # pool of 100 connections: the others wait 5 s for one and are refused (no verdict).
    # Once 100 slow calls are the window, 100% >= 100% opens it; calls let through before
    # it opened land in the HALF_OPEN window as they finish, as in Resilience4j.
    sc = scenario(0.0, recover_at=20, duration=300)
    sc["faults"] = [{"kind": "overload", "targets": ["s"], "start": 10, "end": 100, "factor": 1300}]
    sc["agents"][1].update(service_time={"dist": "constant", "value": 0.05}, workers=600)
    sc["channels"][0]["timeout"] = None
    run = sim.run(sc)
    ref = replay(run)
    same(recorded(run), ref.moves)
    b = run.breakers
    assert b["reason"].iloc[0] == (
        "slow-call rate 100.0% >= 100% (calls over 60 s) over the last 100 calls"
    )
    assert b["slow_rate"].iloc[0] == 1.0 and b["failure_rate"].iloc[0] == 0.0
    assert [(f, t) for f, t in zip(b["from_state"], b["to_state"], strict=True)] == [
        ("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")
    ]  # fmt: skip
    refused = run.spans["error"].str.startswith("no free connection")
    assert refused.sum() > 100  # pool timeouts: no verdict, never counted


@pytest.mark.parametrize("protocol", ["http", "queue", "sse", "websocket"])
@pytest.mark.parametrize(
    "retry", [None, {"max_attempts": 3, "backoff": "exponential", "base": 0.2}]
)
def test_the_breaker_judges_every_attempt_over_every_protocol(
    protocol: str, retry: dict[str, Any] | None
) -> None:
    # Each attempt asks the breaker; a retry it refuses ends its request, rejected.
    run = sim.run(scenario(0.7, recover_at=150, duration=300, protocol=protocol, retry=retry))
    ref = replay(run)
    moves = recorded(run)
    same(moves, ref.moves)
    assert [(f, t) for _, f, t, _, _ in moves][:3] == [
        ("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "OPEN")
    ]  # fmt: skip
    assert moves[-1][1:3] == ("HALF_OPEN", "CLOSED")
    assert ref.rejected > 100


def test_a_caller_that_crashes_with_its_probe_in_flight_restarts_with_a_closed_breaker() -> None:
    # The breaker opens on the callee's errors (0-2.3 s) and half-opens at 2.4 s with one
    # permitted call, which takes 1 s; the caller crashes at 3 s with it in flight. The
    # probe never ended, so its permit never came back: HALF_OPEN refused every call for
    # the rest of the run (270 of them) though the callee had long recovered. A restarted
    # process builds its breakers anew (Resilience4j's state lives in memory).
    sc = {
        "name": "crash-in-half-open",
        "seed": 1,
        "duration": 30,
        "agents": [
            {"id": "c", "role": "client"},
            {
                "id": "s",
                "role": "service",
                "workers": 20,
                "service_time": {"dist": "constant", "value": 1.0},
            },
        ],
        "channels": [
            {
                "from": "c",
                "to": "s",
                "protocol": "http",
                "timeout": 5,
                "breaker": {"window": 4, "min_calls": 4, "open_for": 2, "half_open_calls": 1},
            }
        ],
        "workload": [{"from": "c", "to": "s", "arrivals": {"kind": "constant", "rate": 10}}],
        "faults": [
            {
                "kind": "error",
                "targets": ["s"],
                "start": 0,
                "end": 2.3,
                "fraction": 1.0,
                "status": 500,
            },
            {"kind": "crash", "targets": ["c"], "start": 3.0, "end": 3.5},
        ],
    }
    run = sim.run(sc)
    b = run.breakers
    assert list(zip(b["time"], b["from_state"], b["to_state"], strict=True)) == [
        (pytest.approx(0.302), "CLOSED", "OPEN"),
        (pytest.approx(2.4), "OPEN", "HALF_OPEN"),
        (3.0, "HALF_OPEN", "CLOSED"),
    ]
    assert b["reason"].iloc[-1] == "the caller crashed: it restarts with a new breaker"
    s = run.spans
    later = s[(s["agent"] == "c") & (s["kind"] == "client") & (s["start"] > 3.5)]
    assert len(later) > 250 and not (later["outcome"] == "rejected").any()
