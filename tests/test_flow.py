"""Flow invariants on hand-made runs: Little's law, pool conservation, retries, deadlines.

The generated-scenario oracle (tests/test_properties.py) runs the same checks
(tests/flow.py) over thousands of random scenarios; these pin the cases that once broke.
"""

from __future__ import annotations

from typing import Any

import pytest

import sim
from tests import flow


def one_service(workers: int = 2, rate: float = 8.0, **extra: Any) -> dict[str, Any]:
    """A client calling one service over HTTP at `rate` per second for 40 s."""
    scenario: dict[str, Any] = {
        "name": "one-service",
        "seed": 3,
        "duration": 40,
        "agents": [
            {"id": "c", "role": "client"},
            {
                "id": "s",
                "role": "service",
                "workers": workers,
                "service_time": {"dist": "exponential", "mean": 0.2},
            },
        ],
        "channels": [{"from": "c", "to": "s", "protocol": "http", "timeout": 5}],
        "workload": [{"from": "c", "to": "s", "arrivals": {"kind": "poisson", "rate": rate}}],
    }
    scenario.update(extra)
    return scenario


def test_littles_law_holds_on_a_service_and_its_gauges_match_its_spans() -> None:
    run = sim.run(one_service())
    assert flow.littles_law(run) == []
    jobs = flow.pool_jobs(run, "s")
    # L = lambda W over the window: an M/M/2 at a = 8 * 0.2 = 1.6 holds L = 4.4 jobs on
    # average (Erlang C); 40 s of one sample path lands near it.
    area = flow.integral(jobs, run.duration)
    assert 2.5 < area / run.duration < 7
    sojourns = (jobs["end"].clip(upper=run.duration) - jobs["start"]).sum()
    assert area == pytest.approx(sojourns, rel=1e-12)


def test_a_crash_takes_its_lost_jobs_out_of_the_pools_counts() -> None:
    # Five workers busy at 20 s when the service crashes for 5 s: the jobs it held are
    # lost. The pool's samples counted them in and never out (enqueued 427 against 418
    # acked with nothing left inside).
    scenario = one_service(
        workers=5,
        rate=20.0,
        faults=[{"kind": "crash", "targets": ["s"], "start": 20, "end": 25}],
    )
    run = sim.run(scenario)
    lost = run.spans[run.spans["error"].str.startswith("crashed while")]
    assert len(lost) > 0
    assert flow.pool_conservation(run) == []
    last = run.queues[run.queues["queue"] == "s.workers"].iloc[-1]
    assert last["enqueued"] == last["acked"] + last["depth"] + last["in_flight"]


def queue_call_partitioned(timeout: float) -> dict[str, Any]:
    """A client publishing a request a second to a service over a queue, cut off from the
    broker by a partition from 0.5 s to 20 s: every publish and re-publish is lost."""
    return {
        "name": "publish-while-partitioned",
        "seed": 1,
        "duration": 30,
        "agents": [
            {"id": "c", "role": "client"},
            {"id": "s", "role": "service", "service_time": {"dist": "constant", "value": 0.01}},
            {"id": "mq", "role": "broker", "queue": {"flavour": "sqs"}},
        ],
        "channels": [
            {
                "from": "c",
                "to": "s",
                "protocol": "queue",
                "timeout": timeout,
                "queue": {"broker": "mq", "request_queue": "s.in"},
            }
        ],
        "workload": [{"from": "c", "to": "s", "arrivals": {"kind": "constant", "rate": 1}}],
        "faults": [{"kind": "partition", "targets": ["c"], "start": 0.5, "end": 20}],
    }


def test_a_publisher_stops_resending_a_request_once_its_deadline_has_passed() -> None:
    # Found by the fuzzer (shrunk): a call over a queue times out at 0.875 s, but its
    # publisher re-sent the publish after the 5 s confirm timeout (attempt 2 at 6 s) and
    # again at 11 s, for a request nobody waited for: the consumer would work on it.
    run = sim.run(queue_call_partitioned(timeout=0.875))
    assert flow.sends_past_deadline(run) == []
    m = run.messages
    publishes = m[(m["src"] == "c") & (m["kind"] == "publish")]
    assert (publishes["attempt"] == 1).all()
    # With a deadline past the confirm timeout, the re-sends go out as before (at-least-
    # once): 5 s after the first send, and 10 s after, while the deadline allows.
    run = sim.run(queue_call_partitioned(timeout=12))
    m = run.messages
    again = m[(m["src"] == "c") & (m["kind"] == "publish") & (m["correlation_id"] == "c-2")]
    assert again["attempt"].tolist() == [1, 2, 3]
    assert flow.sends_past_deadline(run) == []
