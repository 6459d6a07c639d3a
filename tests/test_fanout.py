"""Fan-out policies over HTTP calls to workers with different speeds."""

from __future__ import annotations

import pytest

from protocols.http import HttpEndpoint, HttpServer
from protocols.resilience import FanOut, FanOutSettings
from tests.harness import Harness

# Worker i takes SPEEDS[i] seconds; w3 fails.
SPEEDS = {"w0": 1.0, "w1": 2.0, "w2": 3.0, "w3": 0.5}


def fan_out(settings: dict, workers=("w0", "w1", "w2", "w3"), timeout=10.0):
    h = Harness(["boss", *SPEEDS], latency=0.0)
    for w, seconds in SPEEDS.items():
        node = h.node(w)
        status = 500 if w == "w3" else 200

        def handler(job, node=node, seconds=seconds, status=status):
            node.after_work(seconds, lambda: job.reply(status))

        HttpEndpoint(node, HttpServer(node, 4, handler))
    boss = HttpEndpoint(h.node("boss"))
    results = []
    fan = FanOut(
        h.node("boss"),
        "review",
        "t-1",
        len(workers),
        lambda i, parent: boss.client.call(
            workers[i], "review", "t-1", timeout=timeout, parent=parent
        ),
        FanOutSettings(**settings),
        on_done=results.append,
    )
    h.run(30)
    span = h.spans[h.spans.kind == "internal"].iloc[0]
    return fan, results, span


def test_all_fails_when_one_worker_fails():
    _, results, span = fan_out({"policy": "all"})
    assert results == [("error", 0, "only 0 of 4 needed answers came back")]
    # It knew at 0.5 s (plus the handshake), when w3 failed.
    assert span.end == pytest.approx(0.5)


def test_all_succeeds_when_every_worker_answers():
    _, results, span = fan_out({"policy": "all"}, workers=("w0", "w1", "w2"))
    assert results == [("ok", 3, "")]
    assert span.answered == 3 and span.end == pytest.approx(3.0)


def test_a_quorum_of_two_ends_with_the_second_answer():
    _, results, span = fan_out({"policy": "quorum", "k": 2})
    assert results == [("ok", 2, "")]
    assert span.end == pytest.approx(2.0)


def test_first_ends_with_the_first_ok_answer_not_the_first_failure():
    _, results, span = fan_out({"policy": "first"})
    assert results == [("ok", 1, "")]
    assert span.end == pytest.approx(1.0)


def test_partial_at_deadline_returns_the_subset_that_answered():
    fan, results, span = fan_out({"policy": "partial_at_deadline", "deadline": 2.5})
    assert results == [("partial", 2, "2 of 4 answered")]
    assert span.outcome == "partial" and span.answered == 2
    assert span.end == pytest.approx(2.5)
    # The slow worker's call went on after the fan-out returned.
    assert fan.calls[2].result == ("ok", 200, "")


def test_a_quorum_that_cannot_be_reached_fails_at_once():
    _, results, _ = fan_out({"policy": "quorum", "k": 5})
    assert results[0][0] == "error"
