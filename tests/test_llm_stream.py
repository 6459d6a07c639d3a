"""LLM answers streamed over SSE: token events in chunks, time to first token, limits.

An llm agent reached over an SSE channel streams its answer (sim.agents.llm,
protocols.llm.stream): admission at the GET as over HTTP (a 429 before any token, with
its Retry-After on the status line), the first token event at the time to first token,
then chunks at the decode speed, and a final event with the usage. The spans' `ttft`
column gives the time to first token (server: generated; client: received).
"""

from __future__ import annotations

import itertools
import math
import statistics
from typing import Any

import pandas as pd
import pytest

import sim
from protocols.llm import events_at_most, generated, next_chunk
from sim.checks import violations
from sim.distributions import Lognormal
from sim.otlp import to_otlp
from tests.test_accounting import check_accounting

LATENCY = 0.001  # every link's constant one-way latency in these scenarios

FAST = {
    "ttft": {"dist": "constant", "value": 0.2},
    "tokens_per_second": {"dist": "constant", "value": 100},
    "input_tokens": {"dist": "constant", "value": 1000},
    "output_tokens": {"dist": "constant", "value": 50},
}


def scenario(
    llm: dict[str, Any],
    rate: float = 1.0,
    duration: float = 300.0,
    workers: int = 1000,
    channel: dict[str, Any] | None = None,
    faults: list[dict[str, Any]] | None = None,
    protocol: str = "sse",
) -> dict[str, Any]:
    """A client streaming from one llm agent, over links of constant latency."""
    return {
        "name": "llm-stream-test",
        "seed": 7,
        "duration": duration,
        "agents": [
            {"id": "c", "role": "client"},
            {"id": "model", "role": "llm", "workers": workers, "llm": llm},
        ],
        "channels": [
            {"from": "c", "to": "model", "timeout": 120, "protocol": protocol, **(channel or {})}
        ],
        "network": {"default": {"latency": {"dist": "constant", "value": LATENCY}}},
        "workload": [{"from": "c", "to": "model", "arrivals": {"kind": "poisson", "rate": rate}}],
        "faults": faults or [],
    }


def served(run: sim.Run) -> pd.DataFrame:
    spans = run.spans
    return spans[(spans["kind"] == "server") & (spans["agent"] == "model")].sort_values("start")


def streams(run: sim.Run) -> pd.DataFrame:
    """The caller's stream spans: one per attempt (the client spans no client span is
    under; without retries, the request's own span)."""
    spans = run.spans
    clients = spans[spans["kind"] == "client"]
    return clients[~clients["span_id"].isin(clients["parent_id"])]


# --- the schedule of token events --------------------------------------------------------


def test_chunks_go_out_at_the_decode_speed_and_end_with_the_blocking_answer() -> None:
    per_token = 0.01
    plan, sent, at = [], 0, 0.0
    while sent < 120:
        sent, at = next_chunk(sent, at, 120, per_token, 50)
        plan.append((sent, round(at, 9)))
    # The first token alone at the TTFT, then 50 at a time, the last when all 120 are out.
    assert plan == [(1, 0.0), (51, 0.51), (101, 1.01), (120, 1.2)]
    assert len(plan) == events_at_most(120, per_token, 50, None)
    plan, sent, at = [], 0, 0.0
    while sent < 120:
        sent, at = next_chunk(sent, at, 120, per_token, 50, interval=0.25)
        plan.append((sent, round(at, 9)))
    assert plan == [(1, 0.0), (25, 0.25), (50, 0.5), (75, 0.75), (100, 1.0), (120, 1.2)]
    assert len(plan) <= events_at_most(120, per_token, 50, 0.25)
    assert generated(-0.1, 120, per_token) == 0
    assert generated(0.0, 120, per_token) == 1
    assert generated(0.5, 120, per_token) == 50
    assert generated(99.0, 120, per_token) == 120


def test_an_interval_shorter_than_a_token_sends_no_empty_event() -> None:
    sent, at, seen = 1, 0.0, []
    while sent < 5:
        sent, at = next_chunk(sent, at, 5, 1.0, 50, interval=0.3)
        seen.append(sent)
    assert seen == [2, 3, 4, 5]


# --- streams in a run ------------------------------------------------------------------


def test_a_stream_sends_token_events_then_a_final_event_with_the_usage() -> None:
    run = sim.run(scenario({**FAST, "output_tokens": {"dist": "constant", "value": 120}}, 1.0, 30))
    model = served(run)
    ok = model[model["outcome"] == "ok"]
    assert len(ok) > 20 and (ok["protocol"] == "sse").all()
    assert (ok["input_tokens"] == 1000).all() and (ok["output_tokens"] == 120).all()
    # Queueing (none) + TTFT on the server; one latency more for the caller to hear it.
    assert (ok["ttft"] - 0.2).abs().max() < 1e-9
    callers = streams(run)
    done = callers[callers["outcome"] == "ok"]
    assert (done["ttft"] - (0.2 + 2 * LATENCY)).abs().max() < 1e-9
    # Same end as a blocking answer: TTFT + 120 tokens at 100 per s.
    assert ((ok["end"] - ok["start"]) - 1.4).abs().max() < 1e-9
    # The events of a stream carry the server's span.
    events = run.messages[run.messages["kind"] == "event"]
    per_stream = events.groupby("span_id").size()
    assert (
        per_stream[ok["span_id"]] == 4 + 1
    ).all()  # 1 + 50 + 50 + 19 tokens, then the final event
    # A refused stream had no first token.
    assert model.loc[model["status"] == 429, "ttft"].isna().all()


def test_spans_that_are_no_model_calls_have_no_time_to_first_token() -> None:
    assert sim.run("basic").spans["ttft"].isna().all()


def test_chunking_bounds_the_number_of_event_messages() -> None:
    llm = {
        **FAST,
        "output_tokens": {"dist": "uniform", "low": 200, "high": 1000},
        "max_tokens": 1000,
    }
    counts = {}
    for name, stream in (
        ("one", {"chunk_tokens": 1}),
        ("chunk", {"chunk_tokens": 100}),
        ("interval", {"interval": 2.0}),
    ):
        run = sim.run(scenario({**llm, "stream": stream}, rate=2.0, duration=60))
        model = served(run)
        ok = model[model["outcome"] == "ok"].set_index("span_id")
        assert len(ok) > 80
        # A stream's events carry its server span's id; the final event is one of them.
        events = run.messages[run.messages["kind"] == "event"]
        per_stream = events.groupby("span_id").size()[ok.index]
        chunk, interval = stream.get("chunk_tokens", 50), stream.get("interval")
        bound = pd.Series(
            [events_at_most(n, 0.01, chunk, interval) + 1 for n in ok["output_tokens"]],
            index=ok.index,
        )
        assert (per_stream <= bound).all(), name
        counts[name] = int(per_stream.sum())
        if name == "one":
            assert (per_stream == ok["output_tokens"] + 1).all()  # an event per token
    assert counts["chunk"] * 50 < counts["one"]
    assert counts["interval"] * 50 < counts["one"]


def test_time_to_first_token_percentiles_match_its_distribution() -> None:
    ttft = {"dist": "lognormal", "mean": 0.8, "p99": 2.4}
    run = sim.run(scenario({**FAST, "ttft": ttft}, rate=20, duration=200))
    model = served(run)
    ok = model[model["outcome"] == "ok"]
    assert (ok["wait"] == 0).all()  # 1000 workers: no queue, so ttft is the draw
    mu, sigma = Lognormal.model_validate(ttft).params()
    normal = statistics.NormalDist(mu, sigma)
    assert len(ok) > 3500
    for q, tolerance in ((0.1, 0.03), (0.5, 0.03), (0.9, 0.04), (0.99, 0.08)):
        expected = math.exp(normal.inv_cdf(q))
        assert float(ok["ttft"].quantile(q)) == pytest.approx(expected, rel=tolerance), q
    # What the caller sees is the same, one round trip of the network later.
    callers = streams(run)
    seen = callers.loc[callers["outcome"] == "ok", "ttft"] - 2 * LATENCY
    for q in (0.5, 0.99):
        assert float(seen.quantile(q)) == pytest.approx(math.exp(normal.inv_cdf(q)), rel=0.08), q


def test_tokens_per_second_percentiles_match_its_distribution() -> None:
    llm = {
        **FAST,
        "tokens_per_second": {"dist": "normal", "mean": 100, "sd": 15},
        "output_tokens": {"dist": "constant", "value": 500},
        "max_tokens": 1000,
    }
    model = served(sim.run(scenario(llm, rate=20, duration=200)))
    ok = model[model["outcome"] == "ok"]
    assert len(ok) > 3500
    # From the first token to the last: 500 tokens at the request's speed.
    speeds = 500 / (ok["end"] - ok["start"] - ok["ttft"])
    normal = statistics.NormalDist(100, 15)
    for q in (0.1, 0.5, 0.9, 0.99):
        assert float(speeds.quantile(q)) == pytest.approx(normal.inv_cdf(q), rel=0.02), q


# --- limits ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "per_request"),
    [
        ({"input_tokens_per_minute": 60_000}, 1000),  # Anthropic ITPM: the input
        ({"tokens_per_minute": 90_000}, 1000 + 500),  # OpenAI TPM: input + max_tokens
    ],
    ids=["itpm", "tpm"],
)
def test_accepted_tokens_per_minute_converge_to_the_limit_when_streaming(
    limits: dict[str, Any], per_request: int
) -> None:
    limit = next(iter(limits.values()))
    demand = 3 * limit / 60 / per_request
    run = sim.run(
        scenario({**FAST, "max_tokens": 500, "limits": limits}, rate=demand, duration=660)
    )
    model = served(run)
    admitted = model[model["status"] == 200]
    assert (model["status"] == 429).sum() > len(admitted)  # the limit binds
    steady = admitted[(admitted["start"] >= 60) & (admitted["start"] < 660 - 10)]
    accepted = len(steady) * per_request / ((660 - 10 - 60) / 60)
    assert accepted == pytest.approx(limit, rel=0.02)


def test_a_429_comes_before_the_stream_with_the_exact_retry_after() -> None:
    retry = {"preset": "anthropic-sdk", "max_attempts": 20}
    run = sim.run(
        scenario(
            {**FAST, "limits": {"input_tokens_per_minute": 30_000}},
            rate=1.0,
            duration=240,
            channel={"retry": retry},
        )
    )
    model = served(run)
    refused = model[model["status"] == 429]
    assert len(refused) > 20 and (refused["outcome"] == "rejected").all()
    assert refused["ttft"].isna().all() and (refused["output_tokens"] == 0).all()
    # No token event ever went out on a refused stream: its status line said 429.
    callers = streams(run).set_index("span_id")
    limited = callers[callers["status"] == 429]
    events = run.messages[run.messages["kind"] == "event"]
    assert not events["span_id"].isin(limited.index).any()
    # Replaying the bucket from the admissions: each retry waited exactly until it held
    # the request's 1000 input tokens again.
    rate, level, updated = 30_000 / 60, 30_000.0, 0.0
    following: dict[str, str] = {}
    for _, group in callers.reset_index().sort_values("start").groupby("parent_id"):
        ids = group["span_id"].tolist()
        following.update(itertools.pairwise(ids))
    checked = 0
    for start, status, parent in model[["start", "status", "parent_id"]].itertuples(index=False):
        level = min(30_000.0, level + (start - updated) * rate)
        updated = start
        if status != 429:
            level -= 1000
            continue
        nxt = following.get(parent)
        if nxt is None:
            continue
        observed = callers.loc[nxt, "start"] - callers.loc[parent, "end"]
        assert abs(observed - (1000 - level) / rate) <= 1e-9
        checked += 1
    assert checked > 20


def test_a_cut_stream_still_consumed_its_tokens() -> None:
    # The caller gives up after 2 s; a 500-token answer takes 0.2 + 5 s.
    llm = {
        **FAST,
        "output_tokens": {"dist": "constant", "value": 500},
        "max_tokens": 1000,
        "limits": {"output_tokens_per_minute": 1_000_000},
        "model": "claude-sonnet-4.6",
    }
    run = sim.run(scenario(llm, rate=1.0, duration=60, channel={"timeout": 2}))
    model = served(run)
    cut = model[model["outcome"] == "cancelled"]
    assert len(cut) > 40 and (cut["status"] == 499).all()
    # Cut when the caller's hang-up arrived: 2 s after it opened, one latency later.
    expected = math.floor((2 + LATENCY - LATENCY - 0.2) * 100)
    assert (cut["output_tokens"] - expected).abs().max() <= 1
    assert (cut["input_tokens"] == 1000).all()
    assert cut["error"].str.contains("the client closed the stream after").all()
    assert (cut["cost"] > 1000 * 3 / 1e6).all()
    summary = run.summary()
    assert summary["tokens_out"] == int(model["output_tokens"].clip(lower=0).sum())
    callers = streams(run)
    assert (callers.loc[callers["outcome"] != "open", "outcome"] == "timeout").all()
    check_accounting(run)


def test_a_reconnect_is_refused_as_a_provider_cannot_resume_a_stream() -> None:
    # Every frame from the model is lost from 10 s to 10.5 s: the streams then open
    # break, their reconnects are answered 404, and the model stops generating for them.
    fault = {
        "kind": "loss",
        "groups": [["model"], ["c"]],
        "probability": 1.0,
        "start": 10,
        "end": 10.5,
    }
    llm = {**FAST, "output_tokens": {"dist": "constant", "value": 500}, "max_tokens": 1000}
    run = sim.run(scenario(llm, rate=2.0, duration=40, faults=[fault]))
    callers = streams(run)
    failed = callers[callers["status"] == 404]
    assert len(failed) > 0
    assert failed["error"].str.contains("does not resume streams").all()
    assert violations(run) == {}


def test_a_streaming_run_over_a_lossy_network_keeps_every_check() -> None:
    loss = {"kind": "loss", "groups": [["c"], ["model"]], "probability": 0.02, "start": 0}
    llm = {
        **FAST,
        "output_tokens": {"dist": "uniform", "low": 50, "high": 400},
        "max_tokens": 500,
        "limits": {"tokens_per_minute": 90_000},
        "model": "gpt-4o",
    }
    run = sim.run(
        scenario(
            llm,
            rate=2.0,
            duration=120,
            channel={"timeout": 30, "retry": {"preset": "openai-sdk"}},
            faults=[loss],
        )
    )
    assert (run.messages["outcome"] == "dropped").sum() > 20
    model = served(run)
    assert set(model["outcome"]) >= {"ok", "rejected", "cancelled"}
    check_accounting(run)
    assert violations(run) == {}
    summary = run.summary()
    billed = model[model["input_tokens"] >= 0]
    assert summary["tokens_out"] == int(billed["output_tokens"].sum())
    assert summary["cost"] == pytest.approx(float(billed["cost"].sum()))


def test_an_llm_agent_is_called_over_http_or_sse_only() -> None:
    bad = scenario(FAST, protocol="websocket")
    with pytest.raises(sim.ScenarioError, match=r"over http .* or sse"):
        sim.run(bad)


def test_time_to_first_token_is_exported_as_the_genai_attribute() -> None:
    run = sim.run(scenario({**FAST, "model": "gpt-4o"}, rate=1.0, duration=10))
    found = []
    for resource in to_otlp(run)["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                attrs = {a["key"]: a["value"] for a in span["attributes"]}
                if "gen_ai.response.time_to_first_chunk" in attrs:
                    found.append(attrs["gen_ai.response.time_to_first_chunk"]["doubleValue"])
    assert found and all(abs(v - 0.2) < 0.01 for v in found)


def test_a_blocking_answer_records_its_time_to_first_token_on_the_server_only() -> None:
    # Over HTTP the caller hears nothing before the whole answer; the model's span still
    # says when its first token was generated (queueing + TTFT).
    run = sim.run(scenario(FAST, rate=5.0, duration=20, workers=1, protocol="http"))
    model = served(run)
    ok = model[model["outcome"] == "ok"]
    assert (ok["wait"] > 0).any()  # one worker: some queue
    assert ((ok["ttft"] - (ok["wait"] + 0.2)).abs() < 1e-9).all()
    assert run.spans.loc[run.spans["kind"] == "client", "ttft"].isna().all()


def test_a_blocking_request_its_caller_cancels_bills_what_was_generated() -> None:
    # The caller gives up after 0.7 s and tells the model (HTTP's cancel): the model
    # stops, and bills the input and the output it had generated (0.2 s to the first
    # token, then 100 per s: about 50 of 1000). A caller that merely times out without
    # telling it is billed in full, as a provider does not notice.
    llm = {**FAST, "output_tokens": {"dist": "constant", "value": 1000}, "max_tokens": 1000}
    told = {"timeout": 0.7, "deadline": {"cancel_on_timeout": True}}
    run = sim.run(scenario(llm, rate=1.0, duration=30, channel=told, protocol="http"))
    model = served(run)
    cut = model[model["outcome"] != "open"]
    assert len(cut) > 20 and (cut["outcome"] == "cancelled").all()
    assert (cut["input_tokens"] == 1000).all()
    # (The request reaches the model a few ms after the call starts: 49 or 50 tokens.)
    assert cut["output_tokens"].between(45, 50).all()
    assert ((cut["ttft"] - 0.2).abs() < 1e-9).all()
    untold = sim.run(scenario(llm, 1.0, 30, channel={"timeout": 0.7}, protocol="http"))
    done = served(untold)
    done = done[done["outcome"] != "open"]
    assert (done["outcome"] == "ok").all() and (done["output_tokens"] == 1000).all()


def test_a_stream_cut_while_it_queued_bills_nothing() -> None:
    # One serving slot busy with a patient caller's long answers (5.2 s); an impatient
    # caller hangs up after 1 s, mostly while its stream still queues: the model never
    # starts those, and bills them nothing.
    data = scenario(
        {**FAST, "output_tokens": {"dist": "constant", "value": 500}, "max_tokens": 500},
        rate=0.5,
        duration=120,
        workers=1,
    )
    data["agents"].append({"id": "impatient", "role": "client"})
    data["channels"].append({"from": "impatient", "to": "model", "timeout": 1.0, "protocol": "sse"})
    data["workload"].append(
        {"from": "impatient", "to": "model", "arrivals": {"kind": "poisson", "rate": 0.5}}
    )
    run = sim.run(data)
    model = served(run)
    never = model[model["error"].str.contains("before it began")]
    assert len(never) > 10
    assert (never["outcome"] == "cancelled").all() and (never["status"] == 499).all()
    assert (never["peer"] == "impatient").all()
    assert (never[["input_tokens", "output_tokens", "cost"]] == 0).all().all()
    assert never["ttft"].isna().all()
    check_accounting(run)
    assert violations(run) == {}


def test_an_overloaded_burst_refuses_streams_before_they_start() -> None:
    fault = {
        "kind": "overloaded",
        "targets": ["model"],
        "start": 10,
        "end": 20,
        "burst": 5,
        "every": 10,
    }
    run = sim.run(scenario(FAST, rate=10, duration=30, faults=[fault]))
    model = served(run)
    burst = model[model["start"].between(10, 15, inclusive="left")]
    assert len(burst) > 30 and (burst["status"] == 529).all()
    assert burst["error"].str.contains("overloaded_error").all()
    assert (
        model.loc[~model.index.isin(burst.index) & (model["outcome"] != "open"), "status"] == 200
    ).all()
    callers = streams(run)
    assert (callers["status"] == 529).sum() == len(burst)  # the status line said 529
    events = run.messages[run.messages["kind"] == "event"]
    assert not events["span_id"].isin(burst["span_id"]).any()
