"""What the collaboration promises its client and its trace: one request is one trace, a
fan-out's answer says whether it is whole, the critic reports after it has reviewed, a
poison result ends as its queue says, and discovery decides who gets work."""

from __future__ import annotations

import functools

import pandas as pd

import sim
from protocols.envelope import trace_id_for
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
