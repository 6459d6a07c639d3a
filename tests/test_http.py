"""HTTP over the harness: calls, timeouts, refusals, the accept queue."""

from __future__ import annotations

import pytest

from protocols.http import HttpEndpoint, HttpServer
from protocols.workers import Job
from tests.harness import Harness


def serve_in(h: Harness, agent: str, seconds: float, workers: int = 1, queue_limit=None):
    """An HTTP server on `agent` whose every request takes `seconds`."""
    node = h.node(agent)

    def handler(job: Job) -> None:
        node.after_work(seconds, lambda: job.reply(200))

    return HttpEndpoint(node, HttpServer(node, workers, handler, queue_limit))


def test_a_call_ends_with_the_servers_answer():
    h = Harness(["c", "s"], latency=0.01)
    serve_in(h, "s", 0.5)
    client = HttpEndpoint(h.node("c"))
    results = []
    client.client.call("s", "task", "t-1", timeout=5, on_done=results.append)
    h.run(10)
    assert results == [("ok", 200, "")]
    spans = h.spans.set_index("kind")
    # A new connection: a TCP and a TLS round trip, then the request and its answer.
    assert spans.loc["client", "end"] - spans.loc["client", "start"] == pytest.approx(0.56)
    m = h.messages
    assert list(m.type[m.kind == "control"]) == [
        "tcp.syn",
        "tcp.syn-ack",
        "tls.client-hello",
        "tls.server-finished",
    ]
    assert list(m.kind[m.kind != "control"]) == ["request", "response"]
    assert (m.outcome == "delivered").all()


def test_a_slow_server_makes_the_call_time_out_once():
    h = Harness(["c", "s"])
    serve_in(h, "s", 3.0)
    client = HttpEndpoint(h.node("c"))
    results = []
    client.client.call("s", "task", "t-1", timeout=1, on_done=results.append)
    h.run(10)
    assert results == [("timeout", 0, "no response within 1 s")]
    # The late response still crossed the wire, and was ignored.
    assert (h.messages.kind == "response").sum() == 1


def test_a_full_accept_queue_answers_503():
    h = Harness(["c", "s"])
    serve_in(h, "s", 1.0, workers=1, queue_limit=1)
    client = HttpEndpoint(h.node("c"))
    results = []
    for i in range(3):
        client.client.call("s", "task", f"t-{i}", timeout=10, on_done=results.append)
    h.run(10)
    assert sorted(r[1] for r in results) == [200, 200, 503]
    server = h.spans[h.spans.kind == "server"]
    assert sorted(server.outcome) == ["ok", "ok", "rejected"]


def test_a_crashed_server_refuses_the_connection():
    h = Harness(["c", "s"])
    serve_in(h, "s", 0.1)
    client = HttpEndpoint(h.node("c"))
    h.fault({"kind": "crash", "targets": ["s"], "start": 0, "end": 5})
    results = []
    h.env.process(_call_at(h, client, 1.0, results))
    h.run(10)
    assert results[0][0] == "error" and "refused" in results[0][2]
    assert list(h.messages.type) == ["tcp.syn"]
    assert list(h.messages.outcome) == ["unavailable"]


def _call_at(h, client, t, results):
    yield h.env.timeout(t)
    client.client.call("s", "task", "t-1", timeout=5, on_done=results.append)
