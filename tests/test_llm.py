"""LLM-backed agents: provider limits, the exact Retry-After, latency, tokens and cost.

The `llm` role (sim.agents.llm) over the provider gateway (protocols.llm): per-minute
limits as continuously refilling buckets, 429 with the seconds until the bucket holds
enough, 400 past the context window, "overloaded" bursts of 529, time to first token
and decode speed as configured, and tokens and cost on the server spans and in the
summary. The SDK retry presets are checked in tests/test_backoff.py's style here too.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from typing import Any

import pandas as pd
import pytest

import sim
from protocols.llm import Gateway, LlmLimits, TokenBucket
from protocols.resilience import RetryPolicy, RetrySettings
from sim.checks import violations
from sim.distributions import Lognormal
from sim.otlp import to_otlp
from tests.test_accounting import check_accounting

LATENCY = 0.001  # every link's constant one-way latency in these scenarios


def scenario(
    llm: dict[str, Any],
    rate: float = 1.0,
    duration: float = 300.0,
    workers: int = 1000,
    channel: dict[str, Any] | None = None,
    faults: list[dict[str, Any]] | None = None,
    arrivals: str = "poisson",
) -> dict[str, Any]:
    """A client sending to one llm agent, over links of constant latency."""
    return {
        "name": "llm-test",
        "seed": 5,
        "duration": duration,
        "agents": [
            {"id": "c", "role": "client"},
            {"id": "model", "role": "llm", "workers": workers, "llm": llm},
        ],
        "channels": [{"from": "c", "to": "model", "timeout": 120, **(channel or {})}],
        "network": {"default": {"latency": {"dist": "constant", "value": LATENCY}}},
        "workload": [{"from": "c", "to": "model", "arrivals": {"kind": arrivals, "rate": rate}}],
        "faults": faults or [],
    }


FAST = {
    "ttft": {"dist": "constant", "value": 0.2},
    "tokens_per_second": {"dist": "constant", "value": 100},
    "input_tokens": {"dist": "constant", "value": 1000},
    "output_tokens": {"dist": "constant", "value": 50},
}


def model_spans(run: sim.Run) -> pd.DataFrame:
    spans = run.spans
    return spans[(spans["kind"] == "server") & (spans["agent"] == "model")].sort_values("start")


# --- the bucket and the gateway ----------------------------------------------------------


def test_a_per_minute_bucket_holds_the_limit_and_refills_a_sixtieth_per_second() -> None:
    bucket = TokenBucket.per_minute(600)
    bucket.take(600, 0.0)
    assert bucket.wait(100, 0.0) == pytest.approx(10.0)
    assert bucket.refill(5.0) == pytest.approx(50.0)
    assert bucket.refill(1000.0) == 600  # never above its capacity
    assert math.isinf(bucket.wait(601, 1000.0))


def test_each_refusal_s_retry_after_is_exactly_when_the_bucket_holds_enough() -> None:
    limits = LlmLimits(input_tokens_per_minute=30_000, requests_per_minute=50)
    gateway = Gateway(limits, "anthropic")
    rng = random.Random(3)
    now, refusals = 0.0, 0
    for _ in range(2000):
        now += rng.expovariate(2.0)
        tokens = rng.randint(200, 3000)
        verdict = gateway.admit(now, tokens, 1024)
        if verdict.admitted:
            continue
        refusals += 1
        assert verdict.status == 429 and verdict.retry_after > 0
        name = verdict.limit
        bucket = gateway.buckets[name]
        need = 1.0 if name == "requests" else float(tokens)
        # Every limit holds enough at exactly now + retry_after, and the short one did not
        # a microsecond before.
        at = now + verdict.retry_after
        for other, amount in gateway.needs(tokens, 1024).items():
            b = gateway.buckets[other]
            assert b.level + (at - b.updated) * b.rate >= amount - 1e-9
        short = bucket.level + (at - 1e-6 - bucket.updated) * bucket.rate
        assert short < need
        assert abs(bucket.wait(need, now) - verdict.retry_after) <= 1e-9
        assert verdict.remaining["anthropic-ratelimit-input-tokens-remaining"] >= 0
    assert refusals > 100


def test_openai_counts_max_tokens_in_its_tokens_per_minute_and_context_window() -> None:
    gateway = Gateway(
        LlmLimits(tokens_per_minute=10_000, context_window=4096, context_counts_max_tokens=True),
        "openai",
    )
    refused = gateway.admit(0.0, 3118, 1000)
    assert refused.status == 400
    assert "4118 tokens > 4096" in refused.why
    assert gateway.admit(0.0, 3000, 1000).admitted
    assert gateway.buckets["tokens"].level == pytest.approx(6000)
    assert gateway.admit(0.0, 3000, 1000).admitted
    again = gateway.admit(0.0, 3000, 1000)
    assert again.status == 429
    assert again.retry_after == pytest.approx((4000 - 2000) / (10_000 / 60))
    assert again.remaining == {"x-ratelimit-remaining-tokens": 2000}


def test_anthropic_charges_output_tokens_as_generated() -> None:
    gateway = Gateway(LlmLimits(output_tokens_per_minute=600), "anthropic")
    assert gateway.admit(0.0, 10, 4096).admitted  # max_tokens is not reserved
    gateway.settle(1.0, 1200)  # a long answer puts the bucket in debt
    verdict = gateway.admit(1.0, 10, 4096)
    assert verdict.status == 429
    # From 600 - 1200 = -600 (it was full: nothing to refill) to one token, at 10 per s.
    assert verdict.retry_after == pytest.approx(60.1)


# --- limits in a run -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "per_request"),
    [
        ({"input_tokens_per_minute": 60_000}, 1000),  # Anthropic ITPM: the input
        ({"tokens_per_minute": 90_000}, 1000 + 500),  # OpenAI TPM: input + max_tokens
    ],
    ids=["itpm", "tpm"],
)
def test_accepted_tokens_per_minute_converge_to_the_limit(
    limits: dict[str, Any], per_request: int
) -> None:
    # Demand is three times the limit: admissions settle at the limit's rate.
    limit = next(iter(limits.values()))
    demand = 3 * limit / 60 / per_request
    run = sim.run(
        scenario({**FAST, "max_tokens": 500, "limits": limits}, rate=demand, duration=660)
    )
    spans = model_spans(run)
    admitted = spans[spans["status"] == 200]
    assert (spans["status"] == 429).sum() > len(admitted)  # the limit binds
    steady = admitted[(admitted["start"] >= 60) & (admitted["start"] < 660 - 10)]
    minutes = (660 - 10 - 60) / 60
    accepted = len(steady) * per_request / minutes
    assert accepted == pytest.approx(limit, rel=0.02)


def test_each_429_s_retry_after_is_the_time_until_the_bucket_refills() -> None:
    # The SDK preset waits exactly the Retry-After: each attempt after a 429 starts that
    # long after the 429 reached the caller. Replaying the bucket from the trace's
    # admissions gives the time the 429 should have named.
    retry = {"preset": "anthropic-sdk", "max_attempts": 20}
    limit = 30_000
    run = sim.run(
        scenario(
            {**FAST, "limits": {"input_tokens_per_minute": limit}},
            rate=1.0,
            duration=240,
            channel={"retry": retry},
        )
    )
    spans = run.spans
    served = model_spans(run)
    attempts = spans[(spans["kind"] == "client") & (spans["parent_id"] != "")]
    attempt = attempts.set_index("span_id")
    rate = limit / 60
    level, updated = float(limit), 0.0
    checked = 0
    events = served[["start", "status", "outcome", "parent_id"]].itertuples(index=False)
    next_attempt = {}
    for _, group in attempts.sort_values("start").groupby("parent_id"):
        ids = group["span_id"].tolist()
        next_attempt.update(itertools.pairwise(ids))
    for start, status, outcome, parent in events:
        level = min(limit, level + (start - updated) * rate)
        updated = start
        if status == 200 or outcome == "open":  # admitted (and answered, or not yet)
            level -= 1000
            continue
        assert status == 429
        following = next_attempt.get(parent)
        if following is None:
            continue
        expected = (1000 - level) / rate
        observed = attempt.loc[following, "start"] - attempt.loc[parent, "end"]
        assert abs(observed - expected) <= 1e-9, (start, observed, expected)
        checked += 1
    assert checked > 20


def test_a_prompt_over_the_context_window_is_answered_400_and_not_retried() -> None:
    llm = {
        **FAST,
        "model": "claude-sonnet-4.6",
        "input_tokens": {"dist": "constant", "value": 250_000},
    }
    run = sim.run(
        scenario(llm, rate=0.5, duration=20, channel={"retry": {"preset": "anthropic-sdk"}})
    )
    served = model_spans(run)
    assert len(served) > 0 and (served["status"] == 400).all()
    assert served["error"].str.contains("250000 tokens > 200000 maximum").all()
    requests = run.spans[(run.spans["kind"] == "client") & (run.spans["parent_id"] == "")]
    assert (requests["attempts"] == 1).all() and (requests["status"] == 400).all()


def test_the_concurrency_limit_answers_429_until_the_first_answer() -> None:
    llm = {**FAST, "limits": {"concurrency": 2}}
    run = sim.run(scenario(llm, rate=20, duration=10, arrivals="constant"))
    served = model_spans(run)
    refused = served[served["status"] == 429]
    assert len(refused) > 0
    assert refused["error"].str.contains("concurrency limit 2").all()
    # Never more than two admitted requests overlap.
    ok = served[served["status"] == 200]
    for start in ok["start"]:
        assert ((ok["start"] <= start) & (ok["end"] > start)).sum() <= 2


# --- latency ---------------------------------------------------------------------------


def test_time_to_first_token_percentiles_match_its_distribution() -> None:
    ttft = {"dist": "lognormal", "mean": 0.8, "p99": 2.4}
    llm = {**FAST, "ttft": ttft}
    served = model_spans(sim.run(scenario(llm, rate=20, duration=200)))
    # Decoding takes 50 tokens / 100 per s; there is no queue (1000 workers).
    assert (served["wait"] == 0).all()
    draws = served["end"] - served["start"] - 0.5
    mu, sigma = Lognormal.model_validate(ttft).params()
    normal = statistics.NormalDist(mu, sigma)
    assert len(draws) > 3500
    for q, tolerance in ((0.1, 0.03), (0.5, 0.03), (0.9, 0.04), (0.99, 0.08)):
        expected = math.exp(normal.inv_cdf(q))
        assert float(draws.quantile(q)) == pytest.approx(expected, rel=tolerance), q


def test_tokens_per_second_percentiles_match_its_distribution() -> None:
    llm = {
        **FAST,
        "tokens_per_second": {"dist": "normal", "mean": 100, "sd": 15},
        "output_tokens": {"dist": "constant", "value": 500},
        "max_tokens": 1000,
    }
    served = model_spans(sim.run(scenario(llm, rate=20, duration=200)))
    speeds = 500 / (served["end"] - served["start"] - 0.2)
    normal = statistics.NormalDist(100, 15)
    for q in (0.1, 0.5, 0.9, 0.99):
        assert float(speeds.quantile(q)) == pytest.approx(normal.inv_cdf(q), rel=0.02), q


# --- faults ----------------------------------------------------------------------------


def test_the_overloaded_fault_answers_529_in_its_bursts_only() -> None:
    fault = {
        "kind": "overloaded",
        "targets": ["model"],
        "start": 20,
        "end": 40,
        "burst": 5,
        "every": 10,
    }
    run = sim.run(scenario(FAST, rate=10, duration=60, faults=[fault]))
    served = model_spans(run)
    served = served[served["outcome"] != "open"]
    in_burst = served["start"].between(20, 25, inclusive="left") | served["start"].between(
        30, 35, inclusive="left"
    )
    assert (served.loc[in_burst, "status"] == 529).all() and in_burst.sum() > 50
    assert (served.loc[~in_burst, "status"] == 200).all()
    assert served.loc[in_burst, "error"].str.contains("overloaded_error").all()
    assert run.faults["kind"].tolist() == ["overloaded"]


def test_an_overloaded_fault_must_fit_its_bursts_in_their_period() -> None:
    bad = {"kind": "overloaded", "targets": ["model"], "start": 0, "burst": 5, "every": 2}
    with pytest.raises(sim.ScenarioError, match="must fit in its period"):
        sim.run(scenario(FAST, faults=[bad]))


# --- tokens and money ------------------------------------------------------------------


def test_cost_is_tokens_times_price_and_the_summary_totals_them() -> None:
    llm = {
        **FAST,
        "model": "gpt-4o",
        "output_tokens": {"dist": "uniform", "low": 10, "high": 400},
        "limits": {"tokens_per_minute": 60_000},
    }
    run = sim.run(scenario(llm, rate=1.5, duration=120))
    served = model_spans(run)
    ok = served[served["status"] == 200]
    refused = served[served["status"] == 429]
    assert len(ok) > 50 and len(refused) > 10
    expected = ok["input_tokens"] * 2.5 / 1e6 + ok["output_tokens"] * 10.0 / 1e6
    assert (ok["cost"] - expected).abs().max() < 1e-12
    assert (refused[["input_tokens", "output_tokens"]] == 0).all().all()
    assert (refused["cost"] == 0).all()
    # Client spans are no model calls: they say nothing.
    clients = run.spans[run.spans["kind"] == "client"]
    assert (clients["input_tokens"] == -1).all() and clients["cost"].isna().all()
    summary = run.summary()
    assert summary["tokens_in"] == int(ok["input_tokens"].sum())
    assert summary["tokens_out"] == int(ok["output_tokens"].sum())
    assert summary["cost"] == pytest.approx(float(expected.sum()))


def test_a_run_without_model_calls_has_no_token_totals() -> None:
    summary = sim.run("basic").summary()
    assert not {"tokens_in", "tokens_out", "cost"} & set(summary)


def test_a_request_body_gives_the_input_tokens() -> None:
    from sim.agents.llm import body_input_tokens

    assert body_input_tokens({"input_tokens": 1234}) == 1234
    assert body_input_tokens({"prompt": "hi"}) is None
    assert body_input_tokens(None) is None


# --- the built-in scenario -------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline() -> sim.Run:
    return sim.run("llm-pipeline")


def test_the_pipeline_hits_the_token_limits_at_its_peak(pipeline: sim.Run) -> None:
    spans = pipeline.spans
    models = spans[(spans["kind"] == "server") & spans["agent"].isin(["claude", "gpt"])]
    limited = models[models["status"] == 429]
    assert set(limited["agent"]) == {"claude", "gpt"}
    assert limited["start"].between(60, 135).all()  # the spike, and its backlog
    assert (models["status"] == 529).sum() > 0
    assert len(pipeline.breakers) > 0
    summary = pipeline.summary()
    assert summary["tokens_in"] > 0 and summary["cost"] > 0


def test_the_pipeline_keeps_the_accounting_and_every_check(pipeline: sim.Run) -> None:
    check_accounting(pipeline)
    assert violations(pipeline) == {}


def test_model_calls_export_the_genai_semantic_conventions(pipeline: sim.Run) -> None:
    document = to_otlp(pipeline)
    found: dict[str, dict[str, Any]] = {}
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                attrs = {a["key"]: a["value"] for a in span["attributes"]}
                if "gen_ai.usage.input_tokens" in attrs and span["kind"] == 2:
                    found[attrs["gen_ai.provider.name"]["stringValue"]] = attrs
    assert set(found) == {"anthropic", "openai"}
    claude = found["anthropic"]
    assert claude["gen_ai.request.model"] == {"stringValue": "claude-sonnet-4.6"}
    assert claude["gen_ai.system"] == {"stringValue": "anthropic"}
    assert claude["gen_ai.operation.name"] == {"stringValue": "chat"}
    assert "gen_ai.usage.output_tokens" in claude


# --- the SDK retry presets -------------------------------------------------------------


def test_the_sdk_presets_are_the_official_python_sdks_defaults() -> None:
    openai = RetrySettings(preset="openai-sdk")
    assert openai.max_attempts == 3  # max_retries = 2
    assert (openai.base, openai.cap, openai.multiplier, openai.jitter) == (0.5, 8.0, 2.0, "sdk")
    assert set(openai.retry_on) == {"timeout", "connection", "408", "409", "429", "5xx"}
    assert openai.retry_non_idempotent
    assert RetrySettings(preset="anthropic-sdk", max_attempts=5).max_attempts == 5
    policy = RetryPolicy(openai)
    rng = random.Random(1)
    first = [policy.wait(1, 0.0, rng) for _ in range(500)]
    second = [policy.wait(2, 0.0, rng) for _ in range(500)]
    assert min(first) >= 0.375 and max(first) <= 0.5
    assert min(second) >= 0.75 and max(second) <= 1.0
    assert policy.wait(7, 0.0, rng) <= 8.0


def test_the_sdk_presets_honour_retry_after_as_the_sdks_do() -> None:
    rng = random.Random(2)
    anthropic = RetryPolicy(RetrySettings(preset="anthropic-sdk"))
    openai = RetryPolicy(RetrySettings(preset="openai-sdk"))
    assert anthropic.wait(1, 0.0, rng, retry_after=0.123456789) == 0.123456789  # exactly
    assert anthropic.wait(1, 0.0, rng, retry_after=90.0) <= 0.5  # over 60 s: the backoff
    assert anthropic.should_retry(1, "error", 429, retry_after=90.0)[0]
    again, why = openai.should_retry(1, "error", 429, retry_after=130.0)
    assert not again and "over 120 s" in why
    assert openai.should_retry(1, "error", 529)[0]
    assert openai.should_retry(1, "error", 409)[0] and openai.should_retry(1, "error", 408)[0]
    # Without a preset 409 is no retryable failure, as before.
    assert RetryPolicy().should_retry(1, "error", 409) == (
        False,
        "not retried: HTTP 409 is not a retryable failure",
    )


def test_a_service_with_parallel_calls_fans_out_to_all_of_them_at_once() -> None:
    slow = {"dist": "constant", "value": 1.0}
    data = {
        "name": "fan",
        "seed": 1,
        "duration": 20,
        "agents": [
            {"id": "c", "role": "client"},
            {
                "id": "p",
                "role": "service",
                "workers": 8,
                "calls": ["a", "b"],
                "parallel_calls": True,
            },
            {"id": "a", "role": "service", "workers": 8, "service_time": slow},
            {"id": "b", "role": "service", "workers": 8, "service_time": slow},
        ],
        "network": {"default": {"latency": {"dist": "constant", "value": LATENCY}}},
        "workload": [{"from": "c", "to": "p", "arrivals": {"kind": "constant", "rate": 1}}],
    }
    run = sim.run(data)
    spans = run.spans.set_index("span_id")
    fans = spans[(spans["protocol"] == "fanout") & (spans["outcome"] != "open")]
    assert len(fans) >= 18 and (fans["answered"] == 2).all() and (fans["outcome"] == "ok").all()
    calls = spans[(spans["kind"] == "client") & (spans["agent"] == "p")]
    # Both calls of a request start together: under 1.1 s for two 1 s calls.
    for _, pair in calls.groupby("parent_id"):
        assert len(pair) == 2 and pair["start"].nunique() == 1
    served = spans[
        (spans["kind"] == "server") & (spans["agent"] == "p") & (spans["outcome"] == "ok")
    ]
    assert ((served["end"] - served["start"]) < 1.1).all()
