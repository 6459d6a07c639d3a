"""Streaming in the Python agent API: `ctx.stream` (read SSE events as they arrive) and
`ctx.emit` (send them), through the channel's policies.

Over a perfect network every event and the final answer reach the reader, one event
message each on the record; over loss the stream reconnects with Last-Event-ID and
still delivers every event; a crash or a partition fails the stream with the CallError
a call would raise; emit over another protocol, and an exception in a stream's
handler, are error spans. The checks and the message accounting hold throughout.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

import sim
from sim.plugins import register_role, unregister_role
from tests.test_accounting import check_accounting

PARTS = 3


class Reader:
    """Streams a document from its writer: each part as it comes, then the answer."""

    def on_task_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        s = ctx.stream("writer", "doc.write", {"parts": PARTS})
        seen: list[Any] = []
        attempts: set[int] = set()
        try:
            while (event := (yield s.next())) is not None:
                if event.name == "part":
                    seen.append(event.data["part"])
                    attempts.add(event.attempt)
            answer = yield s.done()
        except sim.CallTimeout as exc:
            ctx.respond(504, error=f"stream timed out: {exc.error}")
            return None
        except sim.CallRejected:
            ctx.respond(503, error="the breaker refused the stream")
            return None
        except sim.CallFailed as exc:
            ctx.respond(502, error=f"stream failed ({exc.status}): {exc.error}")
            return None
        # The parts of the attempt that answered, in order, then its answer's body.
        last = [p for p in seen[-PARTS:]]
        if last != list(range(PARTS)) or answer.body != {"parts": PARTS}:
            ctx.respond(500, error=f"wrong stream: {seen} then {answer.body!r}")
            return None
        ctx.durable.setdefault("attempts", []).append(max(attempts))
        return seen


class Writer:
    """Writes a document in parts, sending each as an event once it is done."""

    def on_doc_write(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        for part in range(request.body["parts"]):
            yield ctx.work(0.05)
            ctx.emit({"part": part}, event="part")
        return {"parts": request.body["parts"]}


class Emitter:
    """Emits whatever protocol its request came over."""

    def on_task_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.work(0.01)
        ctx.emit("hello")


class BrokenWriter:
    """Sends one part, then its code raises."""

    def on_doc_write(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.work(0.05)
        ctx.emit({"part": 0}, event="part")
        raise KeyError("the second part")


@pytest.fixture(autouse=True)
def roles() -> Iterator[None]:
    register_role("t-reader", Reader)
    register_role("t-writer", Writer)
    register_role("t-broken-writer", BrokenWriter)
    register_role("t-emitter", Emitter)
    yield
    for name in ("t-reader", "t-writer", "t-broken-writer", "t-emitter"):
        unregister_role(name)


PERFECT = {"default": {"latency": {"dist": "constant", "value": 0.005}}}
LOSSY = {"default": {"latency": {"dist": "normal", "mean": 0.005, "sd": 0.001}, "loss": 0.05,
                     "duplicate": 0.02}}  # fmt: skip


def scenario(network: dict[str, Any], writer: str = "t-writer", **channel: Any) -> dict[str, Any]:
    """client -> reader (plugin) -> writer (plugin) over SSE."""
    return {
        "name": "stream",
        "seed": 3,
        "duration": 30,
        "agents": [
            {"id": "client", "role": "client"},
            {"id": "reader", "role": "t-reader", "workers": 8},
            {"id": "writer", "role": writer, "workers": 8},
        ],
        "channels": [
            {"from": "client", "to": "reader", "timeout": 10},
            {"from": "reader", "to": "writer", "protocol": "sse", "timeout": 5, **channel},
        ],
        "network": copy.deepcopy(network),
        "workload": [{"from": "client", "to": "reader", "type": "task.run",
                      "arrivals": {"kind": "poisson", "rate": 4}}],
    }  # fmt: skip


def holds(run: sim.Run) -> None:
    assert sim.checks.violations(run) == {}
    check_accounting(run)


def spans(run: sim.Run, agent: str, kind: str, name: str) -> Any:
    """The spans of `agent` of that kind and name that began in time to end in the run
    (a stream's timeout is 5 s)."""
    s = run.spans
    s = s[s["start"] < run.duration - 6]
    return s[(s["agent"] == agent) & (s["kind"] == kind) & (s["name"] == name)]


def events_sent(run: sim.Run) -> Any:
    m = run.messages
    return m[(m["src"] == "writer") & (m["protocol"] == "sse") & (m["kind"] == "event")]


def test_a_stream_delivers_each_event_then_the_answer_on_a_perfect_network() -> None:
    run = sim.run(scenario(PERFECT))
    holds(run)
    served = spans(run, "reader", "server", "task.run")
    streams = spans(run, "reader", "client", "doc.write")
    written = spans(run, "writer", "server", "doc.write")
    n = len(served)
    assert n > 80
    assert (served["outcome"] == "ok").all() and (served["status"] == 200).all()
    # One stream per task, under the task's span; one server span per stream.
    assert len(streams) == len(written) == n
    assert set(streams["parent_id"]) == set(served["span_id"])
    assert (streams["outcome"] == "ok").all() and (streams["attempts"] == 1).all()
    assert (written["outcome"] == "ok").all()
    # Each stream: three part events and the final one, each one message on the wire.
    events = events_sent(run)
    events = events[events["correlation_id"].isin(served["correlation_id"])]
    assert len(events) == (PARTS + 1) * n
    assert (events.groupby("correlation_id").size() == PARTS + 1).all()
    assert (events["outcome"] == "delivered").all()
    # The reader waited for the parts as they came: each task took the writer's work.
    assert ((served["end"] - served["start"]) >= PARTS * 0.05).all()
    assert run.summary()["exceptions"] == 0


def test_a_lossy_network_reconnects_with_last_event_id_and_loses_no_event() -> None:
    run = sim.run(scenario(LOSSY))
    holds(run)  # streams_complete: no event was lost for good
    served = spans(run, "reader", "server", "task.run")
    streams = spans(run, "reader", "client", "doc.write")
    ok = served[served["outcome"] == "ok"]
    assert len(ok) > 60
    # Some streams needed more than one connection, and still got every part in order
    # (a wrong order or a missing part would have answered 500).
    assert (streams["attempts"] > 1).any()
    assert not (served["status"] == 500).any()
    assert set(served["status"]) <= {200, 502, 504}


def test_a_crash_of_the_writer_fails_its_streams_as_calls_fail() -> None:
    data = scenario(PERFECT)
    data["faults"] = [{"kind": "crash", "targets": ["writer"], "start": 10, "end": 12}]
    run = sim.run(data)
    holds(run)
    served = spans(run, "reader", "server", "task.run")
    streams = spans(run, "reader", "client", "doc.write")
    failed = served[served["status"] == 502]
    # The streams in flight at the crash were reset; while it is down, refused. Either
    # way the reader's code caught a CallFailed and answered 502.
    assert len(failed) > 0
    assert failed["error"].str.startswith("stream failed").all()
    assert (streams["outcome"] == "error").sum() == len(failed)
    # Before and after, every task got its stream.
    assert (served.loc[(served["start"] < 9.5) | (served["start"] > 12), "status"] == 200).all()


def test_a_partition_times_a_stream_out_and_a_retry_starts_it_over() -> None:
    # The channel's HTTP method (POST) is not idempotent: its retries are opted in.
    data = scenario(PERFECT, timeout=1, retry={"max_attempts": 3, "retry_non_idempotent": True})
    data["faults"] = [{"kind": "partition", "groups": [["reader"], ["writer"]],
                       "start": 10, "end": 11.5}]  # fmt: skip
    run = sim.run(data)
    holds(run)
    served = spans(run, "reader", "server", "task.run")
    streams = spans(run, "reader", "client", "doc.write")
    # With a retry policy a stream's span holds its attempts, each an SSE stream.
    requests = streams[streams["parent_id"].isin(served["span_id"])]
    attempts = streams[streams["parent_id"].isin(requests["span_id"])]
    assert len(requests) == len(served)
    assert (attempts["outcome"] == "timeout").any()
    retried = requests[requests["attempts"] > 1]
    assert len(retried) > 0
    # Some retried streams succeeded: their reader read the new attempt's parts.
    assert (retried["outcome"] == "ok").any()
    assert (served["status"] == 504).any() or (served["outcome"] == "ok").all()


def test_an_open_breaker_rejects_a_stream_before_it_goes_out() -> None:
    data = scenario(
        PERFECT,
        timeout=1,
        breaker={"failure_rate": 0.5, "window": 10, "min_calls": 5, "open_for": 3},
    )
    data["faults"] = [{"kind": "error", "targets": ["writer"], "fraction": 1.0, "status": 503,
                       "start": 10, "end": 16}]  # fmt: skip
    run = sim.run(data)
    holds(run)
    served = spans(run, "reader", "server", "task.run")
    streams = spans(run, "reader", "client", "doc.write")
    assert set(served["status"]) == {200, 502, 503}
    assert (streams["outcome"] == "rejected").sum() == (served["status"] == 503).sum()
    assert len(run.breakers) > 0


def test_emit_over_another_protocol_is_an_error_span_with_one_sentence() -> None:
    data = scenario(PERFECT)
    data["agents"][1]["role"] = "t-emitter"  # the client calls it over HTTP
    run = sim.run(data)
    holds(run)
    served = spans(run, "reader", "server", "task.run")
    assert len(served) > 0 and (served["status"] == 500).all()
    line = Emitter.on_task_run.__code__.co_firstlineno + 2
    assert set(served["error"]) == {
        "raised RuntimeError: emit() sends a stream event, and this 'task.run' request came "
        f"over http: only a request over SSE has a stream to send it on (at "
        f"test_agent_stream.py:{line})"
    }
    # Only the spans of the code that raised count (not the client's of the 500).
    assert run.summary()["exceptions"] == (run.spans["kind"] == "server").sum()


def test_an_exception_in_a_streams_handler_is_an_error_span_and_a_500_to_the_reader() -> None:
    run = sim.run(scenario(PERFECT, writer="t-broken-writer"))
    holds(run)
    written = spans(run, "writer", "server", "doc.write")
    served = spans(run, "reader", "server", "task.run")
    line = BrokenWriter.on_doc_write.__code__.co_firstlineno + 3
    assert (written["outcome"] == "error").all() and (written["status"] == 500).all()
    assert set(written["error"]) == {
        f"raised KeyError: 'the second part' (at test_agent_stream.py:{line})"
    }
    # The reader read the one part, then its stream failed with the 500.
    assert (served["status"] == 502).all()
    assert served["error"].str.startswith("stream failed (500): raised KeyError").all()
    # Each stream carried its one part and the final (500) event.
    events = events_sent(run)
    events = events[events["correlation_id"].isin(written["correlation_id"])]
    assert len(events) == 2 * len(written)
    # The writer's spans count, not the streams' spans that the final event told the
    # same sentence (an SSE final event carries the error).
    all_written = run.spans[(run.spans["agent"] == "writer") & (run.spans["kind"] == "server")]
    assert run.summary()["exceptions"] == (all_written["outcome"] == "error").sum()


def test_stream_over_a_channel_that_is_not_sse_says_so() -> None:
    data = scenario(PERFECT)
    data["channels"][1]["protocol"] = "http"
    run = sim.run(data)
    served = spans(run, "reader", "server", "task.run")
    assert (served["status"] == 500).all()
    assert (
        served["error"]
        .str.startswith(
            "raised ValueError: stream() needs an SSE channel, and the channel from reader to "
            "writer is http"
        )
        .all()
    )
