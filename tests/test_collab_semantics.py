"""What the collaboration promises its client and its trace: one request is one trace, a
fan-out's answer says whether it is whole, the critic reports after it has reviewed, a
poison result ends as its queue says, and discovery decides who gets work."""

from __future__ import annotations

import functools

import pandas as pd
import pytest

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


# -- 8. discovery that matters -------------------------------------------------------------


def assignments(run: Run, workers: list[str]) -> pd.Series:
    """When sub-tasks were first sent to `workers` (the first GET of each stream)."""
    m = run.messages
    first = m[
        (m["protocol"] == "sse")
        & (m["kind"] == "request")
        & (m["attempt"] == 1)
        & m["dst"].isin(workers)
        & ~m["duplicate"]
    ]
    return first["sent_at"]


CRASHED = "faults=[{kind: crash, targets: [writer-3, critic-3], start: 20}]"


def test_workers_whose_heartbeats_lapse_get_no_more_work() -> None:
    # Heartbeats every 5 s, cards kept 15 s: writer-3 and critic-3 crash for good at 20 s,
    # their last heartbeat was at 20 s at the latest, so their cards lapse by 35 s.
    run = collab("agents.2.discovery={heartbeat: 5, ttl: 15}", CRASHED)
    sent = assignments(run, ["writer-3", "critic-3"])
    assert (sent < 20).sum() > 5
    assert sent.max() < 35.1
    # The live workers take every task from then on, and the tasks complete.
    s = run.spans
    done = s[(s["name"] == "task.complete") & (s["start"] > 60)]
    assert len(done) > 40 and (done["outcome"] == "ok").all()
    assert (assignments(run, ["writer-1", "critic-1", "writer-2", "critic-2"]) > 36).sum() > 80
    # The heartbeats are there, one every 5 s per live worker (the first one waits for
    # its connection's handshake), answered by the registry.
    beats = run.messages[(run.messages["type"] == "agent.heartbeat")]
    writer_1 = beats[(beats["src"] == "writer-1") & (beats["kind"] == "request")]
    assert len(writer_1) == 24
    assert writer_1["sent_at"].diff().iloc[2:].round(6).eq(5).all()
    assert not beats[beats["src"] == "writer-3"]["sent_at"].gt(20).any()


def test_static_cards_keep_sending_work_to_crashed_workers() -> None:
    # The same crash with static cards (no heartbeats): every fourth pair of sub-tasks
    # still goes to the crashed workers, and those tasks fail, to the end of the run.
    run = collab("agents.2.discovery={heartbeat: null}", CRASHED)
    assert assignments(run, ["writer-3", "critic-3"]).max() > 100
    s = run.spans
    late = s[(s["name"] == "task.complete") & (s["start"] > 60)]
    assert (late["outcome"] == "error").sum() > 5


def test_the_orchestrator_uses_its_card_cache_while_the_registry_is_down() -> None:
    # The registry is down from 30 s to 60 s; the orchestrator may use the cards it got
    # last for 15 s: tasks that arrive until then complete, later ones fail discovery.
    run = collab("agents.2.discovery={cache_ttl: 15}",
                 "faults=[{kind: crash, targets: [registry], start: 30, end: 60}]")  # fmt: skip
    s = run.spans
    cached = s[s["name"] == "agent.card.cache"]
    assert len(cached) >= 5
    assert cached["start"].between(30, 45).all()
    assert cached["error"].str.contains("6 cached cards").all()
    # Those tasks went on to their workers and completed.
    done = s[s["name"] == "task.complete"].set_index("correlation_id")
    assert (done.loc[cached["correlation_id"], "outcome"] == "ok").all()
    # Once the cards are older than 15 s, discovery fails until the registry is back.
    failed = done[done["error"].str.startswith("discovery failed")]
    assert len(failed) >= 5
    assert failed["start"].between(44, 60).all()
    after = done[done["start"] > 65]
    assert (after["outcome"] == "ok").all()


def test_without_a_cache_every_task_fails_while_the_registry_is_down() -> None:
    run = collab("agents.2.discovery={cache_ttl: 0}",
                 "faults=[{kind: crash, targets: [registry], start: 30, end: 60}]")  # fmt: skip
    s = run.spans
    assert not (s["name"] == "agent.card.cache").any()
    done = s[s["name"] == "task.complete"]
    failed = done[done["error"].str.startswith("discovery failed")]
    assert failed["start"].between(30, 60).all()
    assert failed["start"].min() < 32
    assert len(failed) >= 20


def test_a_card_must_outlive_the_gap_between_heartbeats() -> None:
    with pytest.raises(sim.ScenarioError, match="a card must outlive the gap between heartbeats"):
        loading.load("collaboration", ["agents.2.discovery={heartbeat: 10, ttl: 5}"])
