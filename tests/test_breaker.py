"""Circuit breaker: transitions under scripted outcomes match hand-computed sequences."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import sim
from protocols.resilience import BreakerSettings, CircuitBreaker, State, is_failure, verdict
from sim import ScenarioError, loading

F, S = True, False  # a failed call, a successful one


class Log:
    """Collects transitions as the `breakers` table would get them."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def __call__(self, now, from_state, to_state, reason, failure_rate, slow_rate, calls):
        self.rows.append((now, from_state, to_state, reason, failure_rate, slow_rate, calls))

    @property
    def moves(self) -> list[tuple[float, str, str]]:
        return [(r[0], r[1], r[2]) for r in self.rows]


def breaker(**kw) -> tuple[CircuitBreaker, Log]:
    log = Log()
    return CircuitBreaker(BreakerSettings(**kw), on_transition=log), log


def feed(b: CircuitBreaker, calls: list[tuple[float, bool]], duration: float = 0.1) -> None:
    """Each call is acquired and recorded at its time (it must be permitted)."""
    for now, failed in calls:
        assert b.acquire(now), f"call at {now} was rejected"
        b.record(now, duration, failed)


def test_defaults_are_resilience4j():
    s = BreakerSettings()
    assert (s.window_type, s.window, s.min_calls) == ("count", 100, 100)
    assert (s.failure_rate, s.slow_rate, s.slow_call) == (0.5, 1.0, 60.0)
    assert (s.open_for, s.half_open_calls, s.automatic_transition) == (60.0, 10, False)
    assert (s.max_half_open, s.after_half_open) == (0.0, "OPEN")
    with pytest.raises(ValidationError, match="threshold"):
        BreakerSettings(threshold=0.5)
    with pytest.raises(ValidationError):
        BreakerSettings(failure_rate=0)


def test_count_window_opens_then_half_open_success_closes():
    b, log = breaker(window=10, min_calls=5, open_for=10, half_open_calls=3)
    # Four calls are below the minimum: 2 of 4 failed is not judged.
    feed(b, [(1, S), (2, S), (3, F), (4, F)])
    assert b.state == State.CLOSED and log.rows == []
    feed(b, [(5, F)])  # 3 of 5 = 60%
    assert log.rows == [
        (5, "CLOSED", "OPEN", "failure rate 60.0% >= 50% over the last 10 calls", 0.6, 0.0, 5)
    ]
    # Rejected until the 10 s wait has elapsed; then the next call is let through.
    assert not b.acquire(6)
    assert not b.acquire(14.9)
    assert b.rejected == 2
    assert b.state == State.OPEN
    assert b.acquire(15)
    assert log.rows[1][:4] == (15, "OPEN", "HALF_OPEN", "wait of 10 s in OPEN elapsed")
    # Three calls are permitted in HALF_OPEN, no more.
    assert b.acquire(15.1) and b.acquire(15.2)
    assert not b.acquire(15.3)
    assert b.rejected == 3
    b.record(16, 0.1, S)
    b.record(17, 0.1, S)
    assert b.state == State.HALF_OPEN  # no verdict before all three have completed
    b.record(18, 0.1, S)
    assert log.rows[2] == (
        18,
        "HALF_OPEN",
        "CLOSED",
        "0 of 3 permitted calls failed (0.0% < 50%) and 0 were slow (0.0% < 100%)",
        0.0,
        0.0,
        3,
    )
    # CLOSED starts with an empty window.
    failure_rate, slow_rate, calls = b.metrics(18)
    assert math.isnan(failure_rate) and math.isnan(slow_rate) and calls == 0


def test_count_window_evicts_the_oldest_call():
    b, log = breaker(window=10, min_calls=5)
    feed(b, [(t, F if t in (0, 9) else S) for t in range(10)])  # 2 of 10
    # Each new failure pushes out the oldest call: the first F, then successes.
    feed(b, [(10, F)])  # evicts F: 2 of 10
    assert b.metrics(10) == (0.2, 0.0, 10)
    feed(b, [(11, F), (12, F)])  # 3, then 4 of 10
    assert b.state == State.CLOSED
    feed(b, [(13, F)])  # 5 of 10 = 50% >= 50%
    assert log.moves == [(13, "CLOSED", "OPEN")]
    assert log.rows[0][4:] == (0.5, 0.0, 10)


def test_half_open_failure_reopens_and_the_wait_restarts():
    b, log = breaker(window=4, min_calls=4, open_for=10, half_open_calls=3)
    feed(b, [(0, F), (1, F), (2, S), (3, S)])
    assert log.moves == [(3, "CLOSED", "OPEN")]
    feed(b, [(13, F), (13.5, F), (14, S)])  # 2 of 3 permitted calls failed
    assert log.moves[1:] == [(13, "OPEN", "HALF_OPEN"), (14, "HALF_OPEN", "OPEN")]
    assert log.rows[2][3] == (
        "2 of 3 permitted calls failed, 0 were slow: failure rate 66.7% >= 50%"
    )
    assert log.rows[2][4] == pytest.approx(2 / 3)
    assert not b.acquire(23.9)
    assert b.acquire(24)
    assert log.moves[3] == (24, "OPEN", "HALF_OPEN")


def test_the_open_wait_can_grow_after_each_failed_half_open():
    b, log = breaker(
        window=2,
        min_calls=2,
        open_for=10,
        open_for_multiplier=2,
        open_for_max=30,
        half_open_calls=1,
    )
    feed(b, [(0, F), (1, F)])  # open at 1 for 10 s
    feed(b, [(11, F)])  # half-open at 11, fails: open for 20 s
    assert not b.acquire(30.9)
    feed(b, [(31, F)])  # half-open at 31, fails: open for 40 s, capped at 30
    assert not b.acquire(60.9)
    feed(b, [(61, S)])  # closes: the next opening waits 10 s again
    feed(b, [(62, F), (63, F)])
    assert b.acquire(73)
    assert [m[0] for m in log.moves] == [1, 11, 11, 31, 31, 61, 61, 63, 73]


def test_a_thousand_failed_half_opens_keep_the_wait_at_its_cap():
    # open_for * 2 ** 1100 overflows a float: it raised OverflowError mid-run before.
    b, _log = breaker(
        window=1, min_calls=1, open_for=0.001, open_for_multiplier=2, open_for_max=0.001,
        half_open_calls=1,
    )  # fmt: skip
    now = 0.0
    feed(b, [(now, F)])
    for _ in range(1100):
        now += 0.001
        feed(b, [(now, F)])  # half-open, fails: open again for the capped 1 ms
    assert b.state == State.OPEN and not b.acquire(now + 0.0009) and b.acquire(now + 0.001)


def test_time_window_aggregates_per_second_and_slides():
    b, log = breaker(window_type="time", window=10, min_calls=5)
    feed(b, [(0.2, F), (0.7, F), (1.5, S), (2.5, S), (3.5, S), (4.5, S)])  # 2 of 6
    assert b.state == State.CLOSED
    # At 10.1 the window holds seconds 1..10: both failures of second 0 are gone.
    feed(b, [(10.1, F)])
    assert b.metrics(10.1) == (0.2, 0.0, 5)
    feed(b, [(10.5, F)])  # 2 of 6: still closed (6 of 8 without eviction would be 50%)
    assert b.state == State.CLOSED
    # At 11.2 second 1 (the success at 1.5) slides out: 3 of 6 = 50%.
    feed(b, [(11.2, F)])
    assert log.rows == [
        (11.2, "CLOSED", "OPEN", "failure rate 50.0% >= 50% over the last 10 s", 0.5, 0.0, 6)
    ]


def test_time_window_does_not_clamp_the_minimum_and_empties_with_time():
    b, _ = breaker(window_type="time", window=10, min_calls=20)
    feed(b, [(0.01 * i, F) for i in range(15)])  # 15 failures: fewer than 20 calls
    assert b.state == State.CLOSED
    assert b.metrics(0.5) == (1.0, 0.0, 15)
    assert b.metrics(9.99)[2] == 15
    assert b.metrics(10.0)[2] == 0


def test_count_window_clamps_the_minimum_to_its_size():
    b, log = breaker(window=10, min_calls=100)
    feed(b, [(t, F) for t in range(9)])
    assert b.state == State.CLOSED
    feed(b, [(9, F)])
    assert log.moves == [(9, "CLOSED", "OPEN")]


def test_the_default_minimum_is_100_calls():
    b, log = breaker()
    feed(b, [(t, F) for t in range(99)])
    assert b.state == State.CLOSED
    feed(b, [(99, F)])
    assert log.rows[0][2:] == (
        "OPEN",
        "failure rate 100.0% >= 50% over the last 100 calls",
        1.0,
        0.0,
        100,
    )


def test_slow_calls_open_it():
    b, log = breaker(window=4, min_calls=4, slow_call=2.0, slow_rate=0.5)
    # Durations 1, 3, 2, 3 s, all successes: 2.0 is not slow (slow means longer).
    for now, duration in [(1, 1.0), (4, 3.0), (6, 2.0)]:
        assert b.acquire(now - duration)
        b.record(now, duration, S)
    assert b.state == State.CLOSED
    b.acquire(6)
    b.record(9, 3.0, S)  # 2 of 4 slow = 50%
    assert log.rows == [
        (
            9,
            "CLOSED",
            "OPEN",
            "slow-call rate 50.0% >= 50% (calls over 2 s) over the last 4 calls",
            0.0,
            0.5,
            4,
        )
    ]


def test_the_default_slow_threshold_is_every_call_over_a_minute():
    b, log = breaker(window=3, min_calls=3)
    for t in range(3):
        b.acquire(t)
        b.record(t + 61, 61, S)
    assert log.rows[0][3] == (
        "slow-call rate 100.0% >= 100% (calls over 60 s) over the last 3 calls"
    )


def test_automatic_transition_gives_a_timer():
    b, log = breaker(window=2, min_calls=2, open_for=10, automatic_transition=True)
    assert b.next_transition_at() is None
    feed(b, [(0, F), (5, F)])
    assert b.next_transition_at() == 15
    b.tick(14.9)
    assert b.state == State.OPEN
    b.tick(15)
    assert b.state == State.HALF_OPEN
    assert log.rows[1][:4] == (
        15,
        "OPEN",
        "HALF_OPEN",
        "wait of 10 s in OPEN elapsed (automatic transition)",
    )
    assert b.next_transition_at() is None


def test_without_automatic_transition_open_waits_for_a_call():
    b, log = breaker(window=2, min_calls=2, open_for=10)
    feed(b, [(0, F), (5, F)])
    assert b.next_transition_at() is None
    b.tick(1000)
    assert b.state == State.OPEN
    assert b.acquire(1000)
    assert log.moves[-1] == (1000, "OPEN", "HALF_OPEN")


def test_half_open_without_a_verdict_gives_up_after_max_half_open():
    b, log = breaker(window=2, min_calls=2, open_for=10, half_open_calls=3, max_half_open=5)
    feed(b, [(0, F), (1, F), (11, S)])  # half-open at 11, one of three calls completed
    assert b.next_transition_at() == 16
    b.tick(16)
    assert log.rows[-1][:4] == (
        16,
        "HALF_OPEN",
        "OPEN",
        "no verdict within 5 s in HALF_OPEN (1 of 3 permitted calls completed)",
    )
    b2, log2 = breaker(
        window=2, min_calls=2, open_for=10, max_half_open=5, after_half_open="CLOSED"
    )
    feed(b2, [(0, F), (1, F), (11, S)])
    assert b2.acquire(17)  # no timer was set: the next call notices
    assert log2.moves[-1] == (17, "HALF_OPEN", "CLOSED")


def test_forced_open_rejects_everything_and_disabled_lets_everything_by():
    b, log = breaker(window=2, min_calls=2, open_for=1)
    b.force_open(1)
    assert b.state == State.FORCED_OPEN
    assert not any(b.acquire(t) for t in (2, 100, 10_000))
    assert b.rejected == 3
    assert b.next_transition_at() is None
    b.disable(20_000)
    for t in range(20_001, 20_101):
        assert b.acquire(t)
        b.record(t, 100.0, F)
    assert b.state == State.DISABLED
    b.reset(30_000)
    assert b.state == State.CLOSED
    assert log.moves == [
        (1, "CLOSED", "FORCED_OPEN"),
        (20_000, "FORCED_OPEN", "DISABLED"),
        (30_000, "DISABLED", "CLOSED"),
    ]
    assert [r[3] for r in log.rows] == ["forced open", "disabled", "reset"]
    # A reset of a closed breaker empties its window and reports nothing.
    feed(b, [(30_001, F)])
    b.reset(30_002)
    feed(b, [(30_003, F)])
    assert b.state == State.CLOSED and len(log.rows) == 3


def test_consecutive_mode():
    b, log = breaker(
        mode="consecutive", consecutive_failures=3, consecutive_successes=2, open_for=5
    )
    feed(b, [(0, F), (1, F), (2, S), (3, F), (4, F)])
    assert b.state == State.CLOSED  # a success broke the run
    feed(b, [(5, F)])
    assert log.rows[0][:4] == (5, "CLOSED", "OPEN", "3 consecutive failures")
    # HALF_OPEN permits as many calls as the successes it needs.
    assert b.acquire(10) and b.acquire(10)
    assert not b.acquire(10)
    b.record(11, 0.1, S)
    b.record(12, 0.1, S)
    assert log.rows[2][:4] == (12, "HALF_OPEN", "CLOSED", "2 consecutive successes in HALF_OPEN")
    feed(b, [(13, F), (14, F), (15, F), (20, S), (20.5, F)])
    assert log.moves[3:] == [
        (15, "CLOSED", "OPEN"),
        (20, "OPEN", "HALF_OPEN"),
        (20.5, "HALF_OPEN", "OPEN"),
    ]
    assert log.rows[-1][3] == "a permitted call failed in HALF_OPEN"


def test_rejected_calls_are_counted_and_never_sent():
    """A callee failing in [10, 30): calls every second; only permitted ones hit the wire."""
    b, log = breaker(window=5, min_calls=5, open_for=7, half_open_calls=2)
    wire = []
    for t in range(45):
        if b.acquire(t):
            wire.append(t)
            b.record(t, 0.1, 10 <= t < 30)
    # Opens at 12 (3 of 5 failed); each HALF_OPEN of two calls fails until the callee heals.
    assert log.moves == [
        (12, "CLOSED", "OPEN"),
        (19, "OPEN", "HALF_OPEN"),
        (20, "HALF_OPEN", "OPEN"),
        (27, "OPEN", "HALF_OPEN"),
        (28, "HALF_OPEN", "OPEN"),
        (35, "OPEN", "HALF_OPEN"),
        (36, "HALF_OPEN", "CLOSED"),
    ]
    assert wire == [*range(13), 19, 20, 27, 28, *range(35, 45)]
    assert b.rejected == 18 == 45 - len(wire)


def test_a_released_permit_can_be_used_again():
    b, _ = breaker(window=2, min_calls=2, open_for=1, half_open_calls=1)
    feed(b, [(0, F), (0.5, F)])
    assert b.acquire(2)
    assert not b.acquire(2)
    b.release(2.1)  # that call never reached the wire (e.g. its deadline had passed)
    assert b.acquire(2.2)


def test_late_results_land_in_the_open_window_without_a_transition():
    b, log = breaker(window=4, min_calls=2, open_for=10)
    feed(b, [(0, F), (1, F)])
    b.record(2, 0.1, S)  # permitted while CLOSED, answered while OPEN
    assert b.state == State.OPEN
    assert b.metrics(2) == (pytest.approx(2 / 3), 0.0, 3)
    assert len(log.rows) == 1


@pytest.mark.parametrize(
    ("outcome", "status", "expected"),
    [
        ("timeout", 0, "failure"),
        ("error", 0, "failure"),
        ("error", 500, "failure"),
        ("error", 503, "failure"),
        ("error", 404, "success"),
        ("error", 429, "success"),
        ("ok", 200, "success"),
        ("rejected", 0, "ignored"),
        ("deadline_exceeded", 0, "ignored"),
        ("cancelled", 0, "ignored"),
    ],
)
def test_verdict(outcome, status, expected):
    assert verdict(outcome, status) == expected
    assert is_failure(outcome, status) is (expected == "failure")


@given(
    outcomes=st.lists(st.booleans(), max_size=80),
    size=st.integers(1, 20),
    min_calls=st.integers(1, 25),
    threshold=st.sampled_from([0.2, 0.25, 0.5, 0.75, 1.0]),
)
def test_count_window_opens_exactly_when_a_brute_force_count_says(
    outcomes, size, min_calls, threshold
):
    b, log = breaker(window=size, min_calls=min_calls, failure_rate=threshold)
    expected = None
    for i in range(len(outcomes)):
        last = outcomes[max(0, i + 1 - size) : i + 1]
        if len(last) >= min(min_calls, size) and sum(last) / len(last) >= threshold:
            expected = i
            break
    for i, failed in enumerate(outcomes):
        if b.state != State.CLOSED:
            break
        b.acquire(i)
        b.record(i, 0.1, failed)
    opened = log.rows[0][0] if log.rows else None
    assert opened == expected


def test_the_open_to_half_open_row_reports_the_rates_that_opened_it_not_nan():
    # A time window of 10 s and an OPEN wait of 30 s: by the time OPEN ends, every second
    # of the window it kept has slid out, and a live reading of it would have no calls.
    b, log = breaker(window_type="time", window=10, min_calls=4, open_for=30, slow_call=0.5)
    feed(b, [(1, F), (1.5, S), (2, F)])
    b.record(2.5, 1.0, F)  # a slow failure: 3 of 4 failed, 1 of 4 slow -> OPEN
    assert log.moves == [(2.5, "CLOSED", "OPEN")]
    assert not b.acquire(10)
    assert b.acquire(32.5)  # the wait elapsed: HALF_OPEN lets it by
    opened, half_open = log.rows
    assert half_open[1:3] == ("OPEN", "HALF_OPEN")
    assert half_open[4:] == opened[4:] == (0.75, 0.25, 4)


def test_forced_open_and_disabled_report_the_rates_they_were_entered_with():
    b, log = breaker(window=10, min_calls=10)
    feed(b, [(1, F), (2, S), (3, S), (4, S)])
    b.force_open(5, "operator")
    assert not b.acquire(6)
    b.disable(50, "operator")
    b.reset(60, "operator")
    assert log.moves == [(5, "CLOSED", "FORCED_OPEN"), (50, "FORCED_OPEN", "DISABLED"),
                         (60, "DISABLED", "CLOSED")]  # fmt: skip
    assert {row[4:] for row in log.rows} == {(0.25, 0.0, 4)}


@pytest.mark.parametrize("name", ["collaboration-overload", "retry-storm-breaker"], ids=lambda n: n)
def test_breaker_rows_of_built_in_scenarios_have_rates(name: str) -> None:
    rows = sim.run(name).breakers
    assert len(rows) > 0
    assert rows["failure_rate"].notna().all() and rows["slow_rate"].notna().all()


# -- operator actions from a scenario ---------------------------------------------------


def storm_with(actions: list[dict]) -> sim.Run:
    """retry-storm-breaker (users -> api has a breaker) with breaker `actions` added."""
    import sim

    data = loading.read_data(loading.builtin_path("retry-storm-breaker"))
    base = {"kind": "breaker", "agent": "users", "peer": "api"}
    data["faults"] = [*data["faults"], *({**base, **a} for a in actions)]
    return sim.run(loading.validate(data, "storm.yaml"))


def test_a_scenario_forces_a_breaker_open_disables_it_and_resets_it():
    run = storm_with(
        [
            {"action": "force_open", "start": 10, "end": 20},
            {"action": "disable", "start": 25},
            {"action": "reset", "start": 100},
        ]
    )
    b = run.breakers
    operator = b[b["reason"].str.startswith("operator")]
    moves = zip(operator["time"], operator["from_state"], operator["to_state"], strict=True)
    assert list(moves) == [
        (10, "CLOSED", "FORCED_OPEN"),
        (20, "FORCED_OPEN", "CLOSED"),
        (25, "CLOSED", "DISABLED"),
        (100, "DISABLED", "CLOSED"),
    ]
    assert operator["reason"].tolist() == [
        "operator: force_open (f1-breaker)",
        "operator: end of force_open (f1-breaker)",
        "operator: disable (f2-breaker)",
        "operator: reset (f3-breaker)",
    ]
    assert operator["failure_rate"].notna().all()
    s = run.spans
    calls = s[(s["agent"] == "users") & (s["parent_id"] == "")]
    # Forced open: every call is refused locally, nothing goes on the wire.
    forced = calls[calls["start"].between(10, 20, inclusive="left")]
    assert len(forced) > 100
    assert (forced["outcome"] == "rejected").all()
    assert forced["error"].str.contains("FORCED_OPEN").all()
    sent = run.messages[(run.messages["src"] == "users") & (run.messages["kind"] == "request")]
    assert not sent["sent_at"].between(10, 20, inclusive="left").any()
    # Disabled through the storm (the pause at 30-35 s opens it otherwise): nothing is
    # refused and the failures open nothing, until the reset.
    disabled = calls[(calls["start"] >= 25) & (calls["end"] < 100)]
    assert len(disabled) > 100 and not (disabled["outcome"] == "rejected").any()
    assert (disabled["outcome"] != "ok").sum() > 100
    assert not b["time"].between(25, 100, inclusive="neither").any()
    # Reset into a storm it did not damp, the breaker opens at once.
    assert b[b["time"] > 100].iloc[0][["from_state", "to_state"]].tolist() == ["CLOSED", "OPEN"]
    # The faults table has each action; a reset is an instant.
    f = run.faults[run.faults["kind"] == "breaker"]
    assert f["targets"].tolist() == ["users,api"] * 3
    assert f["end"].tolist()[::2] == [20, 100]


def test_a_breaker_action_must_name_a_channel_with_a_breaker():
    with pytest.raises(ScenarioError, match="from 'api' to 'users' has no breaker to act on"):
        storm_with([{"action": "force_open", "start": 10, "agent": "api", "peer": "users"}])
    with pytest.raises(ScenarioError, match=r"faults\.1\.end: a reset happens at one time"):
        storm_with([{"action": "reset", "start": 10, "end": 20}])
    with pytest.raises(ScenarioError, match=r"faults\.1\.peer: unknown agent 'nobody'"):
        storm_with([{"action": "disable", "start": 10, "peer": "nobody"}])
