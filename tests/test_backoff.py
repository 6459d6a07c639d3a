"""Retry policy: the AWS blog's backoff and jitter formulas, what is retried, Retry-After."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from protocols.resilience import RetryPolicy, RetrySettings, exponential, failure_kind


def policy(**kw) -> RetryPolicy:
    return RetryPolicy(RetrySettings(**kw))


def delays(p: RetryPolicy, seed: int, attempts: int = 6) -> list[float]:
    """The waits after attempts 1..`attempts`, each fed the previous one, from one stream."""
    rng = random.Random(seed)
    out, previous = [], 0.0
    for attempt in range(1, attempts + 1):
        previous = p.delay(attempt, previous, rng)
        out.append(previous)
    return out


def test_defaults_are_the_aws_sdk_standard_mode():
    s = RetrySettings()
    assert (s.max_attempts, s.backoff, s.jitter) == (3, "exponential", "full")
    assert (s.base, s.cap, s.multiplier) == (1.0, 20.0, 2.0)
    assert s.retry_on == ["timeout", "5xx", "429", "connection"]
    assert s.retry_non_idempotent is False
    assert s.respect_retry_after is True


def test_settings_reject_unknown_fields_and_bad_values():
    with pytest.raises(ValidationError, match="backof"):
        RetrySettings(backof="exponential")
    with pytest.raises(ValidationError):
        RetrySettings(jitter="half")
    with pytest.raises(ValidationError):
        RetrySettings(max_attempts=0)


def test_exponential_without_jitter_doubles_from_base_up_to_the_cap():
    assert delays(policy(jitter="none"), seed=1, attempts=7) == [1, 2, 4, 8, 16, 20, 20]
    assert delays(policy(jitter="none", base=0.1, cap=5), seed=1, attempts=8) == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    )
    assert delays(policy(jitter="none", base=0.5, multiplier=1.5, cap=100), 1, 4) == (
        pytest.approx([0.5, 0.75, 1.125, 1.6875])
    )
    # Far past the cap the power would overflow a float; the cap still holds.
    assert exponential(5000, 1.0, 20.0) == 20.0
    assert exponential(3, 0.0, 20.0) == 0.0


def test_constant_backoff_waits_base_every_time():
    assert delays(policy(backoff="constant", jitter="none", base=0.3), 1, 4) == [0.3] * 4
    # With full jitter each wait is a uniform draw below the constant.
    ref = random.Random(5)
    expected = [ref.uniform(0, 0.3) for _ in range(4)]
    assert delays(policy(backoff="constant", jitter="full", base=0.3), 5, 4) == expected


def test_full_jitter_draws_uniformly_below_the_exponential():
    ref = random.Random(42)
    expected = [ref.uniform(0, min(20.0, 1.0 * 2 ** (n - 1))) for n in range(1, 7)]
    got = delays(policy(jitter="full"), seed=42)
    assert got == expected
    # Literal values of the same stream, so a change of formula or of draw order shows.
    assert got[:3] == pytest.approx([0.6394267984578837, 0.05002151044533387, 1.100117273476477])
    assert got[4] == pytest.approx(11.783539426624198)


def test_equal_jitter_keeps_half_and_draws_the_other_half():
    ref = random.Random(42)
    expected = []
    for n in range(1, 7):
        v = min(20.0, 2 ** (n - 1))
        expected.append(v / 2 + ref.uniform(0, v / 2))
    got = delays(policy(jitter="equal"), seed=42)
    assert got == expected
    assert got[:3] == pytest.approx([0.8197133992289418, 1.025010755222667, 2.5500586367382385])


def test_decorrelated_jitter_grows_from_the_previous_wait():
    ref = random.Random(42)
    expected, sleep = [], 1.0
    for _ in range(6):
        sleep = min(20.0, ref.uniform(1.0, sleep * 3))
        expected.append(sleep)
    got = delays(policy(backoff="decorrelated"), seed=42)
    assert got == expected
    assert got[:3] == pytest.approx([2.2788535969157673, 1.1459767932795961, 1.67050233059843])
    # The jitter setting does not apply: decorrelated is its own jitter.
    assert delays(policy(backoff="decorrelated", jitter="none"), seed=42) == expected


def test_decorrelated_is_capped():
    got = delays(policy(backoff="decorrelated", base=1, cap=4), seed=3, attempts=30)
    assert max(got) <= 4
    assert got.count(4) > 0


def test_no_jitter_draws_nothing_from_the_stream():
    rng = random.Random(9)
    policy(jitter="none").delay(3, 0.0, rng)
    assert rng.random() == random.Random(9).random()


@given(
    attempt=st.integers(1, 60),
    base=st.floats(0.001, 10),
    cap=st.floats(0.001, 100),
    jitter=st.sampled_from(["none", "full", "equal"]),
    seed=st.integers(0, 1000),
)
def test_jittered_exponential_stays_within_its_bounds(attempt, base, cap, jitter, seed):
    p = policy(base=base, cap=cap, jitter=jitter)
    v = min(cap, base * 2.0 ** min(attempt - 1, 1000))
    d = p.delay(attempt, 0.0, random.Random(seed))
    low = {"none": v, "full": 0.0, "equal": v / 2}[jitter]
    assert low - 1e-12 <= d <= v + 1e-12


@given(previous=st.floats(0, 50), seed=st.integers(0, 1000))
def test_decorrelated_stays_between_base_and_three_times_the_previous(previous, seed):
    d = policy(backoff="decorrelated", base=0.5, cap=30).delay(2, previous, random.Random(seed))
    assert 0.5 <= d <= min(30, max(previous, 0.5) * 3) + 1e-12


def test_retry_after_longer_than_the_backoff_wins():
    p = policy(jitter="none", base=1.0)
    rng = random.Random(0)
    assert p.wait(1, 0.0, rng, retry_after=7.0) == 7.0
    assert p.wait(1, 0.0, rng, retry_after=0.5) == 1.0  # the backoff is longer
    assert p.wait(3, 0.0, rng) == 4.0
    # A Retry-After past retry_after_max is cut to it (urllib3's 6 hours).
    assert p.wait(1, 0.0, rng, retry_after=100_000) == 21600
    assert policy(respect_retry_after=False, jitter="none").wait(1, 0, rng, 7.0) == 1.0


def test_max_attempts_counts_the_first_attempt():
    p = policy(max_attempts=3)
    assert p.should_retry(1, "timeout")[0]
    assert p.should_retry(2, "timeout")[0]
    ok, why = p.should_retry(3, "timeout")
    assert not ok
    assert why == "not retried: a timeout on attempt 3 of 3"
    assert not policy(max_attempts=1).should_retry(1, "error", 503)[0]


def test_a_call_loop_makes_exactly_max_attempts_against_a_failing_server():
    p = policy(max_attempts=4, jitter="none", base=0.1)
    rng = random.Random(0)
    attempts, waits, previous, now = 0, [], 0.0, 0.0
    while True:
        attempts += 1
        now += 0.05  # the attempt's round trip; the server answers 503 every time
        ok, _ = p.should_retry(attempts, "error", 503)
        if not ok:
            break
        previous = p.wait(attempts, previous, rng)
        waits.append(previous)
        now += previous
    assert attempts == 4
    assert waits == pytest.approx([0.1, 0.2, 0.4])
    assert now == pytest.approx(4 * 0.05 + 0.7)


@pytest.mark.parametrize(
    ("outcome", "status", "retried"),
    [
        ("timeout", 0, True),
        ("error", 0, True),  # connection refused or reset: no answer
        ("error", 429, True),
        ("error", 500, True),
        ("error", 502, True),
        ("error", 503, True),
        ("error", 504, True),
        ("error", 400, False),
        ("error", 404, False),
        ("error", 409, False),
        ("error", 422, False),
        ("ok", 200, False),
        ("rejected", 0, False),
        ("deadline_exceeded", 0, False),
        ("cancelled", 0, False),
    ],
)
def test_only_timeouts_5xx_429_and_connection_failures_are_retried(outcome, status, retried):
    ok, why = policy().should_retry(1, outcome, status)
    assert ok is retried, why


def test_reasons_name_the_failure():
    p = policy()
    assert p.should_retry(1, "error", 404) == (
        False,
        "not retried: HTTP 404 is not a retryable failure",
    )
    assert p.should_retry(1, "error", 503, retry_after=2) == (
        True,
        "HTTP 503 on attempt 1 of 3: retrying after the server's Retry-After of 2 s",
    )
    assert p.should_retry(1, "rejected")[1].startswith("not retried: the call was refused")


def test_non_idempotent_requests_are_never_retried_unless_allowed():
    p = policy(max_attempts=10)
    for outcome, status in [("timeout", 0), ("error", 0), ("error", 503), ("error", 429)]:
        ok, why = p.should_retry(1, outcome, status, idempotent=False)
        assert not ok
        assert why.endswith("the request is not idempotent")
    assert policy(retry_non_idempotent=True).should_retry(1, "timeout", idempotent=False)[0]


def test_retry_on_narrows_what_is_retried():
    p = policy(retry_on=["5xx"])
    assert p.should_retry(1, "error", 500)[0]
    assert not p.should_retry(1, "timeout")[0]
    assert not p.should_retry(1, "error", 429)[0]
    assert p.should_retry(1, "timeout")[1] == "not retried: a timeout is not in retry_on"


def test_a_negative_retry_after_means_do_not_retry():
    ok, why = policy().should_retry(1, "error", 503, retry_after=-1)
    assert not ok
    assert "asked not to be retried" in why


def test_failure_kind():
    assert failure_kind("timeout", 0) == "timeout"
    assert failure_kind("error", 0) == "connection"
    assert failure_kind("error", 429) == "429"
    assert failure_kind("error", 599) == "5xx"
    assert failure_kind("error", 404) is None
    assert failure_kind("ok", 200) is None
