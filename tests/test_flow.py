"""Flow invariants on hand-made runs: Little's law, pool conservation, retries, deadlines.

The generated-scenario oracle (tests/test_properties.py) runs the same checks
(tests/flow.py) over thousands of random scenarios; these pin the cases that once broke.
"""

from __future__ import annotations

import copy
import math
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


def cancelling(cancel: bool) -> dict[str, Any]:
    """A client calling, at 20/s for 200 s, a service of 50 workers (so nothing queues)
    whose exponential service time (mean 0.5 s) often outlasts the 0.4 s timeout, over a
    network with no latency (so the cancel reaches the server exactly at the timeout)."""
    return {
        "name": "cancel-on-timeout",
        "seed": 5,
        "duration": 200,
        "agents": [
            {"id": "c", "role": "client"},
            {
                "id": "s",
                "role": "service",
                "workers": 50,
                "service_time": {"dist": "exponential", "mean": 0.5},
            },
        ],
        "channels": [
            {
                "from": "c",
                "to": "s",
                "protocol": "http",
                "timeout": 0.4,
                "deadline": {"cancel_on_timeout": cancel},
            }
        ],
        "network": {"default": {"latency": {"dist": "constant", "value": 0.0}}},
        "workload": [{"from": "c", "to": "s", "arrivals": {"kind": "poisson", "rate": 20}}],
    }


def test_a_cancelled_request_frees_its_worker_at_the_timeout() -> None:
    # Busy time per request is min(service, timeout): E = m (1 - exp(-tau / m)) for an
    # exponential service of mean m = 0.5 and tau = 0.4 (0.2753 s), against m = 0.5 s
    # of work when nobody cancels (the wasted work shows).
    mean, tau = 0.5, 0.4
    run = sim.run(cancelling(True))
    assert flow.work_past_cancel(run) == [] and flow.littles_law(run) == []
    s = run.spans
    # (The few still at work when the run ends are left out.)
    served = s[(s["agent"] == "s") & (s["kind"] == "server") & (s["outcome"] != "open")]
    busy = served["end"] - served["start"] - served["wait"]
    cancelled = served["outcome"] == "cancelled"
    # Exactly at the timeout for every cancelled request, within it for every other.
    assert cancelled.sum() > 1000
    assert busy[cancelled].to_numpy() == pytest.approx(tau, abs=1e-9)
    assert (busy[~cancelled] < tau).all()
    timed_out = s[(s["agent"] == "c") & (s["outcome"] == "timeout")]
    assert len(timed_out) == cancelled.sum()
    # The share cut short is P(S > tau) = exp(-tau / m), and the mean busy time per
    # request m (1 - exp(-tau / m)), each within 4 standard errors of 4,000 requests.
    n = len(served)
    share = math.exp(-tau / mean)
    assert cancelled.mean() == pytest.approx(share, abs=4 * math.sqrt(share * (1 - share) / n))
    expected = mean * (1 - math.exp(-tau / mean))
    assert busy.mean() == pytest.approx(expected, abs=4 * busy.std() / math.sqrt(n))
    # Without cancellation the server works out every request: mean m, past the timeout.
    run = sim.run(cancelling(False))
    s = run.spans
    served = s[(s["agent"] == "s") & (s["kind"] == "server") & (s["outcome"] != "open")]
    busy = served["end"] - served["start"] - served["wait"]
    assert (served["outcome"] == "ok").all()
    assert busy.mean() == pytest.approx(mean, abs=4 * busy.std() / math.sqrt(len(served)))


def chain(propagate: bool) -> dict[str, Any]:
    """a -> b -> c over HTTP, every hop cancelling on timeout: a gives up after 0.4 s, b's
    own timeout to c is 10 s (capped by a's deadline only when it propagates)."""
    return {
        "name": "cancel-chain",
        "seed": 5,
        "duration": 100,
        "agents": [
            {"id": "a", "role": "client"},
            {
                "id": "b",
                "role": "service",
                "workers": 50,
                "service_time": {"dist": "exponential", "mean": 0.1},
                "calls": ["c"],
            },
            {
                "id": "c",
                "role": "service",
                "workers": 50,
                "service_time": {"dist": "exponential", "mean": 0.5},
            },
        ],
        "channels": [
            {
                "from": "a",
                "to": "b",
                "protocol": "http",
                "timeout": 0.4,
                "deadline": {"cancel_on_timeout": True},
            },
            {
                "from": "b",
                "to": "c",
                "protocol": "http",
                "timeout": 10,
                "deadline": {"cancel_on_timeout": True, "propagate": propagate},
            },
        ],
        "network": {"default": {"latency": {"dist": "constant", "value": 0.0}}},
        "workload": [{"from": "a", "to": "b", "arrivals": {"kind": "poisson", "rate": 10}}],
    }


@pytest.mark.parametrize("propagate", [True, False])
def test_a_cancelled_call_gives_its_connection_back(propagate: bool) -> None:
    # b's handler is cancelled when a times out, and it cancels its call to c. Without
    # propagation that call had not timed out itself: its connection stayed busy for
    # ever, and once 100 had leaked (httpx's pool size) every later call to c waited for
    # one until a gave up: 183 requests reached c for 987 calls.
    run = sim.run(chain(propagate))
    s, m = run.spans, run.messages
    calls = s[(s["agent"] == "b") & (s["kind"] == "client") & (s["start"] < 99)]
    sent = m[(m["src"] == "b") & (m["kind"] == "request")]
    assert calls["span_id"].isin(sent["span_id"]).all()
    assert (calls["wait"] == 0).all()
    assert flow.pool_waits_below_its_size(run) == []
    # c stops work on each call b cancelled, when b's cancel reaches it.
    assert flow.work_past_cancel(run) == []
    cancelled = calls[calls["outcome"] == "cancelled"]
    if not propagate:
        assert len(cancelled) > 500
    served = s[(s["agent"] == "c") & (s["kind"] == "server")]
    assert cancelled["span_id"].isin(served["parent_id"]).all()


def test_a_stream_does_not_reconnect_past_its_deadline() -> None:
    # Found by the fuzzer (a pause over an SSE client). Two streams break when their
    # server crashes (1.2 s) and wait the 3 s retry delay to reconnect, but their client
    # is paused from 1.5 s to 10 s: on waking it ran the overdue reconnects first and
    # sent two GETs at 10 s for streams whose 5 s timeouts had passed at 5 and 6 s (the
    # server opened streams for them with nobody reading).
    scenario = {
        "name": "sse-pause",
        "seed": 1,
        "duration": 20,
        "agents": [
            {"id": "c", "role": "client"},
            {"id": "s", "role": "service", "service_time": {"dist": "constant", "value": 4.0}},
        ],
        "channels": [{"from": "c", "to": "s", "protocol": "sse", "timeout": 5}],
        "workload": [{"from": "c", "to": "s", "arrivals": {"kind": "constant", "rate": 1}}],
        "faults": [
            {"kind": "crash", "targets": ["s"], "start": 1.2, "end": 1.3},
            {"kind": "pause", "targets": ["c"], "start": 1.5, "end": 10},
        ],
    }
    run = sim.run(scenario)
    assert flow.sends_past_deadline(run) == []
    s = run.spans
    first = s[(s["kind"] == "client") & s["correlation_id"].isin(["c-1", "c-2"])]
    assert first["outcome"].tolist() == ["timeout", "timeout"]
    assert first["attempts"].tolist() == [1, 1]


def test_a_request_ended_while_queued_or_serving_records_the_time_it_waited() -> None:
    # Two workers at 5/s of 0.5 s jobs (rho 1.25): a queue builds; callers give up after
    # 1 s and cancel, and the service crashes at 30.5 s. A request cancelled or lost in
    # the crash recorded a wait of 0 however long it had queued, so the pool's queue at
    # 30 s held 6 jobs where the spans' waits said 4.
    scenario = {
        "name": "queued-and-cancelled",
        "seed": 2,
        "duration": 60,
        "agents": [
            {"id": "c", "role": "client"},
            {
                "id": "s",
                "role": "service",
                "workers": 2,
                "service_time": {"dist": "exponential", "mean": 0.5},
            },
        ],
        "channels": [
            {
                "from": "c",
                "to": "s",
                "protocol": "http",
                "timeout": 1.0,
                "deadline": {"cancel_on_timeout": True},
            }
        ],
        "network": {"default": {"latency": {"dist": "exponential", "mean": 0.002}}},
        "workload": [{"from": "c", "to": "s", "arrivals": {"kind": "poisson", "rate": 5}}],
        "faults": [{"kind": "crash", "targets": ["s"], "start": 30.5, "end": 31}],
    }
    run = sim.run(scenario)
    assert flow.littles_law(run) == []
    s = run.spans
    served = s[(s["agent"] == "s") & (s["kind"] == "server")]
    queued = served[served["error"] == "crashed while queued"]
    assert len(queued) > 0
    assert (queued["wait"] == queued["end"] - queued["start"]).all()
    closed = served[served["outcome"] != "open"]
    assert (closed["wait"] <= closed["end"] - closed["start"] + 1e-12).all()
    # One worker kept busy by a second client's 2 s jobs: the first client's requests,
    # cancelled after 0.4 s, are all cancelled before a worker takes them, and waited
    # all their lives.
    scenario["agents"][1].update(workers=1, service_time={"dist": "constant", "value": 2.0})
    scenario["agents"].append({"id": "d", "role": "client"})
    scenario["channels"][0]["timeout"] = 0.4
    scenario["channels"].append({"from": "d", "to": "s", "protocol": "http", "timeout": 10})
    scenario["workload"] = [
        {"from": "d", "to": "s", "arrivals": {"kind": "constant", "rate": 0.5}},
        {"from": "c", "to": "s", "arrivals": {"kind": "constant", "rate": 2}, "start": 0.1},
    ]
    scenario["faults"] = []
    run = sim.run(scenario)
    assert flow.littles_law(run) == []
    s = run.spans
    cancelled = s[(s["agent"] == "s") & (s["outcome"] == "cancelled")]
    never_worked = cancelled[cancelled["wait"] == cancelled["end"] - cancelled["start"]]
    assert len(never_worked) > 50


def test_a_cancel_that_overtakes_its_request_stops_it_on_arrival() -> None:
    # Messages take 0-0.3 s each, independently: a caller that gives up after 0.2 s sends
    # its cancel, which often arrives before the request. The server ignored a cancel for
    # a request it did not hold, then worked on the request when it came (found by the
    # fuzzer: s0 served 0.19 s of work cancelled 0.015 s before it arrived).
    scenario = {
        "name": "cancel-overtakes",
        "seed": 4,
        "duration": 60,
        "agents": [
            {"id": "c", "role": "client"},
            {
                "id": "s",
                "role": "service",
                "workers": 50,
                "service_time": {"dist": "constant", "value": 0.5},
            },
        ],
        "channels": [
            {
                "from": "c",
                "to": "s",
                "protocol": "http",
                "timeout": 0.2,
                "deadline": {"cancel_on_timeout": True},
            }
        ],
        "network": {"default": {"latency": {"dist": "uniform", "low": 0.0, "high": 0.3}}},
        "workload": [{"from": "c", "to": "s", "arrivals": {"kind": "poisson", "rate": 10}}],
    }
    run = sim.run(scenario)
    assert flow.work_past_cancel(run) == []
    s = run.spans
    early = s[s["error"].str.endswith("cancelled it before it arrived")]
    assert len(early) > 10
    # No work, no answer: it ends as it arrives.
    assert (early["end"] == early["start"]).all()
    m = run.messages
    answers = m[(m["kind"] == "response") & m["span_id"].isin(early["span_id"])]
    assert answers.empty


def test_an_mcp_call_cancelled_while_queued_waited_until_its_cancel() -> None:
    # One worker kept busy by `d`'s 20 s tool calls; `c` asks every 2 s and gives up
    # after 3 s (2025-11-25 sends notifications/cancelled), so its calls are cancelled
    # in the queue. Their spans recorded a NaN wait (no worker ever took them), where
    # HTTP's record the time they waited.
    scenario = {
        "name": "mcp-cancelled-in-queue",
        "seed": 4,
        "duration": 120,
        "agents": [
            {"id": "c", "role": "client"},
            {"id": "d", "role": "client"},
            {"id": "tools", "role": "service", "workers": 1,
             "service_time": {"dist": "constant", "value": 20.0}},
        ],
        "channels": [
            {"from": "c", "to": "tools", "protocol": "mcp", "timeout": 3,
             "mcp": {"revision": "2025-11-25"}},
            {"from": "d", "to": "tools", "protocol": "mcp", "timeout": 200,
             "mcp": {"revision": "2025-11-25"}},
        ],
        "network": {"default": {"latency": {"dist": "constant", "value": 0.01}}},
        "workload": [
            {"from": "d", "to": "tools", "arrivals": {"kind": "constant", "rate": 0.05}},
            {"from": "c", "to": "tools", "arrivals": {"kind": "constant", "rate": 0.5},
             "start": 1},
        ],
    }  # fmt: skip
    run = sim.run(scenario)
    s = run.spans
    cancelled = s[(s["agent"] == "tools") & (s["outcome"] == "cancelled")]
    in_queue = cancelled[cancelled["wait"] == cancelled["end"] - cancelled["start"]]
    assert len(in_queue) > 20
    assert flow.cancelled_waits(run) == []
    assert flow.littles_law(run) == []


def broker_queue(flavour: str, visibility: float, service: float) -> dict[str, Any]:
    """A client publishing to two workers over `flavour`'s queue at 8/s for 30 s, four
    poison messages among them (dead-lettered after three deliveries)."""
    return {
        "name": "broker-queue",
        "seed": 3,
        "duration": 30,
        "sample_interval": 0.5,
        "agents": [
            {"id": "c", "role": "client"},
            {"id": "s", "role": "service", "workers": 2,
             "service_time": {"dist": "exponential", "mean": service}},
            {"id": "mq", "role": "broker", "queue": {"flavour": flavour}},
        ],
        "channels": [
            {"from": "c", "to": "s", "protocol": "queue", "timeout": 5,
             "queue": {"broker": "mq", "visibility_timeout": visibility, "max_deliveries": 3}},
        ],
        "network": {"default": {"latency": {"dist": "exponential", "mean": 0.01}}},
        "workload": [{"from": "c", "to": "s", "arrivals": {"kind": "poisson", "rate": 8}}],
        "faults": [{"kind": "poison", "from": "c", "to": "s", "start": 5, "end": 20, "count": 4}],
    }  # fmt: skip


@pytest.mark.parametrize("flavour", ["sqs", "rabbitmq", "redis-streams"])
@pytest.mark.parametrize(("visibility", "service"), [(10.0, 0.2), (0.5, 0.3)])
def test_littles_law_holds_on_a_broker_queue_from_its_messages(
    flavour: str, visibility: float, service: float
) -> None:
    # Quiet, then overloaded with work outlasting the visibility timeout: hundreds of
    # redeliveries, stale acks, dead letters. The queue's samples agree with what its
    # messages say at every sample, and L = lambda W over the run.
    run = sim.run(broker_queue(flavour, visibility, service))
    last = run.queues[run.queues["queue"] == "s.requests"].iloc[-1]
    assert last["enqueued"] > 200 and last["acked"] > 0
    assert flow.broker_littles_law(run) == []


def test_broker_littles_law_sees_a_dead_letter_missing_from_the_trace() -> None:
    # The defect of tests/fuzz_repros/broker-parks-a-copy-still-on-the-wire, on SQS: the
    # visibility timeout (0.5 s) runs out while each delivery travels (0.8 s), and the
    # broker parks the message. Without its row, the messages say it is still queued.
    from tests.test_recorder import on_the_wire

    run = sim.run(on_the_wire("sqs", 0.5, 0.8))
    assert flow.broker_littles_law(run) == []
    m = run.messages
    parked = m.index[m["outcome"] == "dead_lettered"]
    assert len(parked) > 10
    broken = copy.copy(run)
    broken.tables = dict(run.tables, messages=m.drop(parked[:1]))
    said = flow.broker_littles_law(broken)
    assert len(said) == 1 and "api.requests at " in said[0] and "held" in said[0]
