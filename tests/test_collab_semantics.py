"""What the collaboration promises its client and its trace: one request is one trace, a
fan-out's answer says whether it is whole, the critic reports after it has reviewed, a
poison result ends as its queue says, and discovery decides who gets work."""

from __future__ import annotations

import functools

import pandas as pd

import sim
from protocols.envelope import trace_id_for
from protocols.resilience import FanOutSettings
from sim import loading
from sim.agents.collaboration import POISONED, answer
from sim.otlp import export as otlp
from sim.trace import Run


@functools.cache
def collab(*overrides: str) -> Run:
    """A run of the collaboration scenario with `overrides` (cached: deterministic)."""
    return sim.run(loading.load("collaboration", list(overrides)))


def spans_of_trace(doc: dict) -> pd.DataFrame:
    """The spans of an OTLP document: trace id, span id and parent span id."""
    rows = [
        {
            "trace": s["traceId"],
            "span": s["spanId"],
            "parent": s.get("parentSpanId", ""),
            "name": s["name"],
        }
        for resource in doc["resourceSpans"]
        for scope in resource["scopeSpans"]
        for s in scope["spans"]
    ]
    return pd.DataFrame(rows)


# -- 1. one request, one trace ----------------------------------------------------------


def test_every_span_lies_in_its_parents_trace_negotiation_included() -> None:
    run = collab()
    s = run.spans
    talks = s[s["name"] == "negotiate"]
    assert len(talks) > 100  # the scenario negotiates: the test means something
    parent_cid = s.set_index("span_id")["correlation_id"]
    child = s[s["parent_id"] != ""]
    moved = child[child["parent_id"].map(parent_cid) != child["correlation_id"]]
    assert moved.empty, moved[["name", "kind", "correlation_id"]].head().to_dict("records")
    # The bids carry the task's correlation id too: following the task in Replay (by
    # correlation id) shows its WebSocket step.
    tasks = set(s.loc[s["name"] == "task.complete", "correlation_id"])
    bids = run.messages[run.messages["type"].str.startswith("negotiation.")]
    assert len(bids) > 100
    assert set(bids["correlation_id"]) <= tasks | set(s["correlation_id"])
    assert not bids["correlation_id"].str.startswith("neg-").any()
    per_task = bids.groupby("correlation_id").size()
    assert per_task.index.isin(tasks).mean() > 0.9


def test_otlp_export_gives_one_trace_per_request() -> None:
    run = collab()
    spans = spans_of_trace(otlp.to_otlp(run))
    by_id = spans.set_index("span")
    # Every span with a parent is in its parent's trace...
    child = spans[spans["parent"] != ""]
    assert (child["parent"].map(by_id["trace"]) == child["trace"]).all()
    # ...and each request the client sent is one trace: its root span is the only root,
    # and the negotiations are in the traces of the requests.
    s = run.spans
    roots = s[(s["parent_id"] == "") & (s["agent"] == "client")]
    requests = {trace_id_for(str(cid)) for cid in roots["correlation_id"]}
    per_trace = spans[spans["parent"] == ""].groupby("trace").size()
    assert (per_trace.reindex(sorted(requests)).fillna(0) == 1).all()
    talks = spans[spans["name"] == "negotiate"]
    assert len(talks) > 100
    assert talks["trace"].isin(requests).all()


# -- 2. a fan-out's answer says whether it is whole -------------------------------------


def client_answers(run: Run) -> pd.DataFrame:
    """The client's calls to the orchestrator (one per task), with their status."""
    s = run.spans
    return s[(s["agent"] == "client") & (s["parent_id"] == "") & (s["outcome"] != "open")]


def test_a_fanout_all_that_misses_a_result_answers_an_error_not_200() -> None:
    # critic-1 works 30 times slower for 30 s: its streams time out after the writer's
    # result came back, so the `all` fan-out of those tasks has one result of two.
    run = collab("faults=[{kind: overload, targets: [critic-1], factor: 30, start: 10, end: 40}]")
    s = run.spans
    done = s[s["name"] == "task.complete"]
    short = done[done["answered"] == 1]
    assert len(short) >= 3
    assert (short["outcome"] == "error").all()
    assert (short["status"] == 502).all()
    assert short["error"].str.startswith("all needs 2 results, got 1 of 2").all()
    # The client sees the failure: its call ends in error with the 502, and only whole
    # answers are 200.
    calls = client_answers(run).set_index("correlation_id")
    assert (calls.loc[short["correlation_id"], "status"] == 502).all()
    assert (calls.loc[short["correlation_id"], "outcome"] == "error").all()
    whole = done[done["status"] == 200]
    assert (whole["answered"] == 2).all()
    assert len(whole) > 50


def test_a_partial_at_deadline_answer_says_it_is_partial() -> None:
    run = sim.run("collaboration-partition")
    s = run.spans
    done = s[s["name"] == "task.complete"]
    partial = done[done["outcome"] == "partial"]
    assert len(partial) >= 1
    assert (partial["status"] == 206).all()
    assert (partial["answered"] == 1).all()
    calls = client_answers(run).set_index("correlation_id")
    # The client's span carries the 206 (a 2xx: not an error), whole answers a 200.
    assert (calls.loc[partial["correlation_id"], "status"] == 206).all()
    assert (calls.loc[partial["correlation_id"], "outcome"] == "ok").all()
    whole = done[done["outcome"] == "ok"]
    assert (calls.loc[whole["correlation_id"], "status"] == 200).all()
    # The OTLP export says so too: the HTTP status of the client's span.
    doc = otlp.to_otlp(run)
    statuses = {
        a["value"].get("intValue")
        for r in doc["resourceSpans"]
        for sc in r["scopeSpans"]
        for sp in sc["spans"]
        for a in sp["attributes"]
        if a["key"] == "http.response.status_code"
    }
    assert {"206", 206} & statuses


def test_each_policy_answers_whole_partial_or_error() -> None:
    def settings(**kw: object) -> FanOutSettings:
        return FanOutSettings.model_validate(kw)

    all_ = settings(policy="all")
    assert answer(all_, 2, 2, "ok", "") == ("ok", 200, "")
    assert answer(all_, 2, 1, "error", "x")[:2] == ("error", 502)
    assert answer(all_, 2, 1, "timeout", "x")[:2] == ("error", 504)
    assert answer(all_, 2, 0, "error", "x")[:2] == ("error", 502)
    quorum = settings(policy="quorum", k=2)
    assert answer(quorum, 3, 2, "ok", "") == ("ok", 200, "")
    assert answer(quorum, 3, 1, "ok", "")[:2] == ("error", 502)
    assert answer(settings(policy="first"), 3, 1, "ok", "") == ("ok", 200, "")
    late = settings(policy="partial_at_deadline", deadline=5)
    assert answer(late, 2, 2, "ok", "") == ("ok", 200, "")
    assert answer(late, 2, 1, "partial", "1 of 2 answered")[:2] == ("partial", 206)
    assert answer(late, 2, 0, "timeout", "none")[:2] == ("error", 504)


# -- 3. the critic reports after the review --------------------------------------------


def test_the_critic_publishes_its_result_after_the_negotiation_has_ended() -> None:
    run = collab()
    m, s = run.messages, run.spans
    talks = s[s["name"] == "negotiate"]
    # When each task's negotiation ended, on the critic's side (its server span).
    ended = talks[talks["kind"] == "server"].groupby("correlation_id")["end"].max()
    assert len(ended) > 100
    results = m[(m["type"] == "task.result") & (m["kind"] == "publish") & (m["attempt"] == 1)]
    critics = results[results["src"].str.startswith("critic")]
    reviewed = critics[critics["correlation_id"].isin(ended.index)]
    assert len(reviewed) > 100
    # Every critic's result leaves after the negotiation of its task, never before.
    assert (reviewed["sent_at"] >= reviewed["correlation_id"].map(ended)).all()
    # The bids and the critic's result are in order in the task's own message stream.
    for cid in list(ended.index[:20]):
        task = m[m["correlation_id"] == cid].sort_values("seq")
        kinds = task["type"].tolist()
        last_bid = max(i for i, t in enumerate(kinds) if t.startswith("negotiation."))
        critic_result = task.index.get_indexer(
            task.index[(task["type"] == "task.result") & task["src"].str.startswith("critic")]
        )
        assert (critic_result > last_bid).all()


# -- 4. a poison result ends as its queue's on_error says --------------------------------


def poison_run(on_error: str, max_deliveries: int) -> Run:
    """collaboration-poison at zero latency, its result queues' on_error and limit set (on
    the broker too, which declares the queues)."""
    overrides = [
        "network.default.latency={dist: constant, value: 0}",
        f"agents.3.queue.max_deliveries={max_deliveries}",
    ]
    scenario = loading.load("collaboration-poison", overrides)
    for i, channel in enumerate(scenario.channels):
        if channel.protocol == "queue":
            overrides += [
                f"channels.{i}.queue.on_error={on_error}",
                f"channels.{i}.queue.max_deliveries={max_deliveries}",
            ]
    return sim.run(loading.load("collaboration-poison", overrides))


def poison_failures(run: Run) -> pd.Series:
    s = run.spans
    failed = s[(s["name"] == "task.result") & s["error"].str.startswith(POISONED)]
    return failed.groupby("correlation_id").size()


def test_a_poison_result_under_dead_letter_is_parked_at_once_not_requeued_at_zero_latency():
    # A limit of 1,000: requeued whatever on_error says, each poison result would go
    # round 1,000 times at the same instant before the broker parked it.
    run = poison_run("dead_letter", 1000)
    assert poison_failures(run).tolist() == [1, 1, 1]
    dead = run.messages[run.messages["outcome"] == "dead_lettered"]
    assert len(dead) == 3
    assert (dead["reason"] == POISONED).all()
    assert set(completions_of(run)["outcome"]) == {"ok"}


def test_a_poison_result_under_wait_comes_back_after_its_visibility_timeout():
    run = poison_run("wait", 2)
    s = run.spans
    failed = s[(s["name"] == "task.result") & s["error"].str.startswith(POISONED)]
    assert poison_failures(run).tolist() == [2, 2, 2]
    # Not settled: each came back one visibility timeout (30 s) after its first delivery.
    gaps = failed.groupby("correlation_id")["start"].agg(lambda t: t.max() - t.min())
    assert gaps.tolist() == [30.0, 30.0, 30.0]
    assert failed["error"].str.contains("visibility timeout").all()
    # The first one's third receive is over the limit: the broker parks it.
    dead = run.messages[run.messages["outcome"] == "dead_lettered"]
    assert len(dead) == 1 and dead["reason"].str.contains("maxReceiveCount 2").all()


def test_a_poison_result_under_reply_is_acked_and_dropped():
    run = poison_run("reply", 1000)
    assert poison_failures(run).tolist() == [1, 1, 1]
    assert not (run.messages["outcome"] == "dead_lettered").any()


def completions_of(run: Run) -> pd.DataFrame:
    s = run.spans
    return s[s["name"] == "task.complete"]
