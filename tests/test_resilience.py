"""Resilience end to end: timeout cascades, retry storms and what stops them."""

from __future__ import annotations

import pytest

import sim
from sim.checks import no_traffic_through_open_breakers, violations
from sim.metrics import requests, wasted_work

OFFERED = 85.0  # requests per second in the retry-storm scenarios


def trace(run, correlation_id):
    """The spans of one trace, by (agent, kind)."""
    spans = run.spans[run.spans["correlation_id"] == correlation_id]
    return {(row.agent, row.kind): row for row in spans.itertuples()}


def first_failed(run):
    roots = requests(run.spans)
    failed = roots[(roots["outcome"] != "ok") & roots["start"].between(30, 50)]
    return failed["correlation_id"].iloc[0]


def test_shrinking_timeouts_fail_from_the_bottom_up_and_waste_nothing():
    run = sim.run("timeout-cascade")
    t = trace(run, first_failed(run))
    c_to_d, b_to_c, a_to_b = t[("C", "client")], t[("B", "client")], t[("A", "client")]
    # C's call times out first, at its deadline, 10 s after it began...
    assert c_to_d.outcome == "timeout"
    assert c_to_d.end == pytest.approx(c_to_d.start + 10, abs=1e-6)
    assert c_to_d.end == pytest.approx(c_to_d.deadline)
    # ... and the error reaches B and then A within milliseconds, before their deadlines.
    assert (b_to_c.outcome, b_to_c.status) == ("error", 504)
    assert (a_to_b.outcome, a_to_b.status) == ("error", 502)
    assert c_to_d.end < b_to_c.end < a_to_b.end < c_to_d.end + 0.1
    assert c_to_d.deadline < b_to_c.deadline < a_to_b.deadline
    # C told D to stop: D's work is cancelled, and no work outlives its caller.
    assert t[("D", "server")].outcome == "cancelled"
    assert wasted_work(run.spans)["wasted"].sum() < 0.5
    assert not violations(run)


def test_inverted_timeouts_give_up_from_the_top_down_and_waste_work():
    run = sim.run("timeout-cascade-inverted")
    spans = run.spans
    slowest = spans[(spans["agent"] == "C") & (spans["kind"] == "client")]
    t = trace(run, slowest[slowest["outcome"] == "timeout"]["correlation_id"].iloc[0])
    a_to_b, b_to_c, c_to_d = t[("A", "client")], t[("B", "client")], t[("C", "client")]
    # A gives up first, then B, then C: each at its own deadline, 10, 15 and 20 s after
    # its call began, while the deeper hops still work for it.
    for call, seconds in ((a_to_b, 10), (b_to_c, 15), (c_to_d, 20)):
        assert call.outcome == "timeout"
        assert call.end == pytest.approx(call.start + seconds, abs=1e-6)
    assert a_to_b.end < b_to_c.end < c_to_d.end
    wasted = wasted_work(run.spans)
    assert wasted["wasted"].sum() > 30
    # The broken configuration is flagged, as the scenario says it expects.
    assert "deadlines_shrink" in violations(run, include_expected=True)
    assert not violations(run)


def goodput(run, start, end):
    """OK requests per second answered in [start, end)."""
    roots = requests(run.spans)
    ok = roots[(roots["outcome"] == "ok") & roots["end"].between(start, end, inclusive="left")]
    return len(ok) / (end - start)


@pytest.fixture(scope="module")
def storm():
    return sim.run("retry-storm")


def test_a_retry_storm_outlives_its_trigger(storm):
    # Before the 5 s pause at 30 s the service keeps up; long after it, goodput is
    # near zero and the retries alone keep it overloaded.
    assert goodput(storm, 10, 30) == pytest.approx(OFFERED, rel=0.1)
    assert goodput(storm, 120, 180) < 0.05 * OFFERED
    attempts = storm.spans[(storm.spans["kind"] == "client") & (storm.spans["parent_id"] != "")]
    late = attempts[attempts["start"] > 120]
    assert len(late) / 60 > 3 * OFFERED  # every request is tried again and again


@pytest.mark.parametrize("fix", ["budget", "breaker", "shedding"])
def test_a_budget_a_breaker_or_shedding_brings_goodput_back(fix):
    run = sim.run(f"retry-storm-{fix}")
    assert goodput(run, 120, 180) == pytest.approx(OFFERED, rel=0.1)
    assert not violations(run)


def test_an_open_breaker_puts_nothing_on_the_wire():
    run = sim.run("retry-storm-breaker")
    states = run.breakers["to_state"].tolist()
    assert "OPEN" in states and "HALF_OPEN" in states and "CLOSED" in states
    assert no_traffic_through_open_breakers(run).empty
    refused = run.spans[(run.spans["outcome"] == "rejected") & (run.spans["kind"] == "client")]
    assert len(refused) > 0
    assert refused["error"].str.contains("circuit breaker").all()


def test_each_attempt_is_a_child_span_and_the_parent_counts_them(storm):
    spans = storm.spans
    parents = requests(spans)
    retried = parents[parents["attempts"] > 1].iloc[0]
    children = spans[spans["parent_id"] == retried["span_id"]]
    assert len(children) == retried["attempts"]
    assert sorted(children["start"]) == list(children["start"])


def _retrying_hop(propagate: bool) -> dict:
    """client -(1 s)-> api -(retries, 5 s attempts)-> db, where db is paused for good."""
    return {
        "name": "retrying-hop",
        "duration": 10,
        "agents": [
            {"id": "client", "role": "client"},
            {"id": "api", "role": "service", "calls": ["db"]},
            {"id": "db", "role": "service"},
        ],
        "channels": [
            {"from": "client", "to": "api", "timeout": 1.0},
            {"from": "api", "to": "db", "timeout": 5.0, "retry": {"max_attempts": 3},
             "deadline": {"propagate": propagate}},
        ],
        "workload": [{"from": "client", "to": "api", "arrivals": {"kind": "constant", "rate": 1}}],
        "faults": [{"kind": "pause", "targets": ["db"], "start": 0}],
    }  # fmt: skip


@pytest.mark.parametrize("propagate", [True, False])
def test_a_retrying_calls_deadline_is_its_callers_only_when_it_honours_it(propagate):
    # The span over a retrying call's attempts said its caller's deadline even when the
    # hop ignores it (propagate: false), so it looked overdue while its attempts ran on.
    run = sim.run(_retrying_hop(propagate))
    spans = run.spans.set_index("span_id")
    calls = spans[(spans["agent"] == "api") & (spans["kind"] == "client")]
    over = calls[calls.index.isin(calls["parent_id"])]  # its attempts are its children
    assert len(over) >= 1
    upstream = spans.loc[spans.loc[over["parent_id"], "parent_id"], "deadline"].to_numpy()
    if propagate:
        assert (over["deadline"].to_numpy() == upstream).all()
        assert violations(run) == {}
    else:
        assert over["deadline"].isna().all()
        # Its attempts outlive their caller's deadline: the check says so of the attempts.
        found = violations(run)
        assert list(found) == ["deadlines_shrink"]
        assert not found["deadlines_shrink"]["span_id"].isin(over.index).any()
