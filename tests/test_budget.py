"""Retry budgets (Finagle ratio, AWS token bucket, gRPC throttle) and adaptive throttling."""

from __future__ import annotations

import random

import pytest
from pydantic import TypeAdapter, ValidationError

import sim
from protocols.resilience import (
    AdaptiveThrottle,
    AdaptiveThrottleSettings,
    GrpcThrottle,
    GrpcThrottleSettings,
    RatioBudget,
    RatioBudgetSettings,
    RetryBudgetSettings,
    TokenBucket,
    TokenBucketSettings,
    backend_accepted,
    make_budget,
)
from tests import flow


def all_failing(budget, requests: int, rate: float, retries_each: int = 2) -> int:
    """`requests` at `rate` per second, every attempt failing; returns the retries allowed."""
    allowed = 0
    for i in range(requests):
        now = i / rate
        budget.on_request(now)
        for _ in range(retries_each):
            budget.on_failure(now)
            if not budget.try_retry(now).allowed:
                break
            allowed += 1
    budget.on_failure(now)
    return allowed


# --- Finagle's ratio budget ------------------------------------------------------------


def test_ratio_budget_defaults_are_finagles():
    s = RatioBudgetSettings()
    assert (s.ratio, s.min_retries_per_second, s.ttl) == (0.2, 10, 10)
    with pytest.raises(ValidationError):
        RatioBudgetSettings(ttl=61)
    with pytest.raises(ValidationError):
        RatioBudgetSettings(percent=0.1)


def test_ratio_caps_retries_at_a_share_of_requests_plus_the_floor():
    # 1000 requests within 5 s, all failing: 10% of them plus 10/s over the 10 s ttl.
    budget = RatioBudget(RatioBudgetSettings(ratio=0.1, min_retries_per_second=10, ttl=10))
    assert all_failing(budget, 1000, rate=200) == 100 + 100
    # Without the floor, exactly the share.
    no_floor = RatioBudget(RatioBudgetSettings(ratio=0.1, min_retries_per_second=0))
    assert all_failing(no_floor, 1000, rate=200) == 100


def test_ratio_budget_over_a_long_run_allows_the_share_plus_the_floor_per_ttl():
    # 100 s at 100 requests per second: 10% of 10,000 plus 10/s for 100 s.
    budget = RatioBudget(RatioBudgetSettings(ratio=0.1, min_retries_per_second=10, ttl=10))
    assert all_failing(budget, 10_000, rate=100) == pytest.approx(1000 + 1000, rel=0.02)


def test_ratio_budget_refusal_says_why_and_costs_nothing():
    budget = RatioBudget(RatioBudgetSettings(ratio=0.5, min_retries_per_second=0, ttl=10))
    for _ in range(4):
        budget.on_request(0.0)
    assert budget.balance(0.0) == 2
    assert budget.try_retry(0.0).allowed and budget.try_retry(0.0).allowed
    grant = budget.try_retry(0.0)
    assert not grant.allowed
    assert grant.reason == (
        "retry budget spent: retries are limited to 50% of requests plus 0 per second over 10 s"
    )
    assert budget.balance(0.0) == 0


def test_ratio_budget_deposits_expire_after_the_ttl():
    budget = RatioBudget(RatioBudgetSettings(ratio=0.5, min_retries_per_second=0, ttl=10))
    for _ in range(100):
        budget.on_request(0.5)
    assert budget.balance(9.99) == 50
    assert budget.balance(10.0) == 0  # the slice of second 0 aged out
    assert not budget.try_retry(10.0).allowed


def test_ratio_budget_floor_alone_gives_retries_per_second():
    budget = RatioBudget(RatioBudgetSettings(ratio=0, min_retries_per_second=2, ttl=5))
    assert budget.balance(0) == 10
    assert sum(budget.try_retry(0).allowed for _ in range(15)) == 10
    # The withdrawals expire with the window, so the floor comes back.
    assert budget.balance(5.0) == 10
    empty = RatioBudget(RatioBudgetSettings(ratio=0, min_retries_per_second=0))
    empty.on_request(0)
    assert not empty.try_retry(0).allowed


def test_a_vanishing_ratio_earns_nothing_instead_of_overflowing():
    # 1e-320 / ... once raised OverflowError mid-run (found by tests/test_properties.py).
    budget = RatioBudget(RatioBudgetSettings(ratio=1e-320, min_retries_per_second=1, ttl=5))
    for _ in range(100):
        budget.on_request(0)
    assert budget.balance(0) == 5  # the floor alone, as with ratio 0


# --- the AWS SDKs' retry quota ---------------------------------------------------------


def test_token_bucket_defaults_are_the_aws_sdks():
    s = TokenBucketSettings()
    assert (s.capacity, s.retry_cost, s.timeout_cost, s.success_refund) == (500, 5, 10, 1)


def test_500_tokens_pay_for_100_retries_after_errors_or_50_after_timeouts():
    errors = TokenBucket()
    assert sum(errors.try_retry(0).allowed for _ in range(150)) == 100
    assert errors.tokens == 0
    timeouts = TokenBucket()
    assert sum(timeouts.try_retry(0, after_timeout=True).allowed for _ in range(150)) == 50
    grant = timeouts.try_retry(0, after_timeout=True)
    assert grant == (
        False,
        0,
        "retry quota spent: 0 of 500 tokens left, a retry after a timeout costs 10",
    )


def test_token_bucket_refunds():
    bucket = TokenBucket()
    bucket.on_success(0)  # a first-try success on a full bucket: nothing to refund
    assert bucket.tokens == 500
    grant = bucket.try_retry(0)
    assert grant.allowed and grant.cost == 5 and bucket.tokens == 495
    bucket.on_success(1, last_cost=grant.cost)  # the retry succeeded: its cost comes back
    assert bucket.tokens == 500
    timeout_grant = bucket.try_retry(2, after_timeout=True)
    assert bucket.tokens == 490
    bucket.on_success(3)  # another request's first-try success: 1 token
    assert bucket.tokens == 491
    bucket.on_success(4, last_cost=timeout_grant.cost)
    assert bucket.tokens == 500  # refunds never overfill the bucket


def test_an_empty_bucket_refills_one_token_per_first_try_success():
    bucket = TokenBucket()
    while bucket.try_retry(0).allowed:
        pass
    for _ in range(4):
        bucket.on_success(1)
    assert not bucket.try_retry(1).allowed  # 4 tokens: a retry costs 5
    bucket.on_success(1)
    assert bucket.try_retry(1).allowed
    assert bucket.tokens == 0


# --- gRPC retry throttling -------------------------------------------------------------


def test_grpc_throttle_stops_retries_at_half_the_tokens():
    throttle = GrpcThrottle(GrpcThrottleSettings(max_tokens=10, token_ratio=0.1))
    for _ in range(4):
        throttle.on_failure(0)
    assert throttle.tokens == 6 and throttle.try_retry(0).allowed
    throttle.on_failure(0)
    assert throttle.tokens == 5
    grant = throttle.try_retry(0)
    assert not grant.allowed
    assert grant.reason == "retries throttled: 5 of 10 tokens left, at most half"
    throttle.on_success(0)  # +0.1, exactly (thousandths, no float drift)
    assert throttle.tokens == 5.1 and throttle.try_retry(0).allowed
    for _ in range(100):
        throttle.on_success(0)
    assert throttle.tokens == 10


# --- the SRE book's adaptive throttling ------------------------------------------------


def test_adaptive_throttle_defaults():
    s = AdaptiveThrottleSettings()
    assert (s.k, s.window) == (2.0, 120.0)


def test_adaptive_rejection_probability_is_the_sre_formula():
    throttle = AdaptiveThrottle()
    rng = random.Random(0)
    for i in range(100):
        throttle.admit(i * 0.1, rng)
        throttle.on_response(i * 0.1, accepted=i < 30)
    assert throttle.counts(10) == (100, 30)
    assert throttle.probability(10) == pytest.approx((100 - 2 * 30) / (100 + 1))
    # While accepts keep up with requests / K, nothing is rejected.
    healthy = AdaptiveThrottle()
    for i in range(100):
        assert healthy.admit(i, rng).allowed
        healthy.on_response(i, accepted=i % 2 == 0)
    assert healthy.probability(100) == 0.0


def test_adaptive_throttle_rejects_with_that_probability():
    throttle = AdaptiveThrottle(AdaptiveThrottleSettings(k=1.5))
    rng, ref = random.Random(7), random.Random(7)
    rejected = 0
    for i in range(2000):
        now = i * 0.05
        p = throttle.probability(now)
        requests, accepts = throttle.counts(now)
        assert p == max(0.0, (requests - 1.5 * accepts) / (requests + 1))
        expect_reject = p > 0 and ref.random() < p
        grant = throttle.admit(now, rng)
        assert grant.allowed is not expect_reject
        rejected += not grant.allowed
        if grant.allowed:
            # A backend that accepts one attempt in four it receives.
            throttle.on_response(now, accepted=i % 4 == 0)
    assert rejected > 100


def test_adaptive_throttle_forgets_after_the_window():
    throttle = AdaptiveThrottle()
    rng = random.Random(1)
    for i in range(50):
        throttle.admit(i, rng)  # never accepted
    assert throttle.probability(50) == pytest.approx(50 / 51)
    # The request made at 49 s is remembered for 120 s, in one-second slices.
    assert throttle.counts(168.9) == (1, 0)
    assert throttle.probability(169.0) == 0.0


def test_a_throttled_request_says_why():
    throttle = AdaptiveThrottle()
    for _ in range(50):
        throttle.admit(0, random.Random(1))
    # p = 50/51 now; Random(0)'s first draw is 0.84, below it.
    grant = throttle.admit(1, random.Random(0))
    assert grant == (
        False,
        0,
        "throttled locally with probability 98.0% (50 requests, 0 accepted in the last "
        "120 s, K = 2)",
    )


def test_backend_accepted():
    assert backend_accepted("ok", 200)
    assert backend_accepted("error", 500)
    assert backend_accepted("error", 404)
    assert not backend_accepted("error", 503)
    assert not backend_accepted("error", 429)
    assert not backend_accepted("error", 0)
    assert not backend_accepted("timeout", 0)


def test_budget_settings_choose_the_budget_by_kind():
    adapter = TypeAdapter(RetryBudgetSettings)
    assert isinstance(make_budget(adapter.validate_python({"kind": "ratio"})), RatioBudget)
    bucket = make_budget(adapter.validate_python({"kind": "token_bucket", "capacity": 50}))
    assert isinstance(bucket, TokenBucket) and bucket.tokens == 50
    assert isinstance(make_budget(adapter.validate_python({"kind": "grpc"})), GrpcThrottle)
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "leaky"})
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "token_bucket", "cost": 5})


def drained_then_restarted(policy: dict) -> dict:
    """A client whose every call fails (503, retried) for 40 s, so its retry budget or
    throttle is spent within 10 s; the client crashes at 10 s and restarts at 12 s."""
    channel = {
        "from": "c", "to": "s", "protocol": "http", "timeout": 2,
        "retry": {"max_attempts": 3, "backoff": "constant", "base": 0.1, "jitter": "none"},
        "http": {"idempotency_key": True}, **policy,
    }  # fmt: skip
    return {
        "name": "budget-across-restart",
        "seed": 1,
        "duration": 40,
        "agents": [
            {"id": "c", "role": "client"},
            {
                "id": "s",
                "role": "service",
                "workers": 4,
                "service_time": {"dist": "constant", "value": 0.01},
            },
        ],
        "channels": [channel],
        "network": {"default": {"latency": {"dist": "constant", "value": 0.005}}},
        "workload": [{"from": "c", "to": "s", "arrivals": {"kind": "constant", "rate": 5}}],
        "faults": [
            {
                "kind": "error",
                "targets": ["s"],
                "fraction": 1.0,
                "status": 503,
                "start": 0,
                "end": 40,
            },
            {"kind": "crash", "targets": ["c"], "start": 10, "end": 12},
        ],
    }


@pytest.mark.parametrize(
    "policy",
    [
        {"budget": {"kind": "token_bucket", "capacity": 50}},
        {"budget": {"kind": "grpc"}},
        {"throttle": {"k": 2.0}},
    ],
    ids=["token_bucket", "grpc", "adaptive_throttle"],
)
def test_a_restarted_caller_starts_with_a_fresh_budget_and_throttle(policy: dict) -> None:
    # They live in the caller's process, as its breaker does: a crash loses them. They
    # were kept, so the first call after the restart found the bucket empty ("0 of 50
    # tokens left"), the gRPC tokens at 0, the throttle's 60 refusals still counted.
    run = sim.run(drained_then_restarted(policy))
    s = run.spans
    requests = s[(s["agent"] == "c") & (s["parent_id"] == "")].sort_values("start")
    before = requests[requests["start"] < 10]
    first = requests[requests["start"] >= 12].iloc[0]
    # Spent before the crash...
    assert before["error"].str.contains("retry refused|throttled locally").any()
    # ...fresh after it: the first call is let through (and, with a budget, retried).
    assert first["attempts"] >= (1 if "throttle" in policy else 2), first["error"]
    assert "retry refused" not in first["error"] and first["outcome"] != "rejected"
    assert flow.budgets_after_restart(run) == []
