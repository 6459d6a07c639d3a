"""What the collaboration promises its client and its trace: one request is one trace, a
fan-out's answer says whether it is whole, the critic reports after it has reviewed, a
poison result ends as its queue says, and discovery decides who gets work."""

from __future__ import annotations

import functools

import pandas as pd

import sim
from protocols.envelope import trace_id_for
from protocols.resilience import FanOutSettings
from sim.agents.collaboration import answer
from sim import loading
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
