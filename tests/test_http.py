"""HTTP over the harness: calls, timeouts, refusals, the accept queue."""

from __future__ import annotations

import pytest

from protocols.http import (
    HttpClient,
    HttpClientSettings,
    HttpEndpoint,
    HttpServer,
    HttpServerSettings,
)
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


def client_with(h: Harness, agent: str = "c", **settings) -> HttpEndpoint:
    """An HTTP client on `agent` whose pools use these settings."""
    node = h.node(agent)
    chosen = HttpClientSettings(**settings)
    return HttpEndpoint(node, client=HttpClient(node, lambda _dst: chosen))


def test_a_pool_of_two_makes_eight_of_ten_concurrent_calls_wait():
    h = Harness(["c", "s"], latency=0.01)
    serve_in(h, "s", 1.0, workers=10)
    client = client_with(h, max_connections=2, pool_timeout=30)
    results = []
    for i in range(10):
        client.client.call("s", "task", f"t-{i}", timeout=10, on_done=results.append)
    h.run(30)
    assert [r[0] for r in results] == ["ok"] * 10
    calls = h.spans[h.spans.kind == "client"].sort_values("start")
    waited = calls[calls.wait > 0]
    assert len(waited) == 8
    # They take the two connections in turns of about 1.02 s (work plus a round trip).
    assert sorted(waited.wait.round(2)) == pytest.approx(
        [1.06, 1.06, 2.08, 2.08, 3.1, 3.1, 4.12, 4.12]
    )
    # Only two connections were ever opened: the rest reused them.
    assert (h.messages.type == "tcp.syn").sum() == 2


def test_a_pool_timeout_rejects_the_call_without_touching_the_wire():
    h = Harness(["c", "s"], latency=0.01)
    serve_in(h, "s", 10.0, workers=10)
    client = client_with(h, max_connections=1, pool_timeout=2)
    results = []
    for i in range(3):
        client.client.call("s", "task", f"t-{i}", timeout=30, on_done=results.append)
    h.run(30)
    outcomes = [r[0] for r in results]
    assert outcomes.count("rejected") == 2 and outcomes.count("ok") == 1
    rejected = h.spans[h.spans.outcome == "rejected"]
    assert (rejected.wait == 2).all() and (rejected.end - rejected.start == 2).all()
    assert (h.messages.kind == "request").sum() == 1


def test_a_deadline_that_passes_while_waiting_for_a_connection_ends_the_call():
    h = Harness(["c", "s"], latency=0.01)
    serve_in(h, "s", 3.0, workers=10)
    client = client_with(h, max_connections=1, pool_timeout=30)
    first = client.client.call("s", "task", "t-1", timeout=10)
    # Its deadline (1 s from now) passes long before the one connection is free (~3 s).
    second = client.client.call("s", "task", "t-2", timeout=1)
    h.run(30)
    assert first.result == ("ok", 200, "")
    assert second.result == (
        "timeout",
        0,
        "the deadline passed while waiting for a free connection to s",
    )
    spans = h.spans.set_index("correlation_id")
    assert spans.loc["t-2", "end"] == 1.0 and spans.loc["t-2", "wait"] == 1.0
    # Nothing went on the wire for it.
    assert (h.messages.kind == "request").sum() == 1


def test_a_deadline_that_passes_while_connecting_ends_the_call_and_keeps_the_connection():
    h = Harness(["c", "s"], latency=0.3)  # TCP then TLS: 1.2 s to open a connection
    serve_in(h, "s", 0.1)
    client = HttpEndpoint(h.node("c"))
    late = client.client.call("s", "task", "t-1", timeout=1)
    h.env.timeout(2).callbacks.append(lambda _e: client.client.call("s", "task", "t-2", timeout=5))
    h.run(30)
    assert late.result == ("timeout", 0, "the deadline passed while connecting to s")
    calls = h.spans[h.spans.kind == "client"].set_index("correlation_id")
    assert calls.loc["t-1", "end"] == 1.0 and calls.loc["t-2", "outcome"] == "ok"
    m = h.messages
    # Only the second call's request went out, on the connection the first one opened.
    assert list(m.correlation_id[m.kind == "request"]) == ["t-2"]
    assert (m.type == "tcp.syn").sum() == 1


def test_an_overloaded_server_answers_503_with_retry_after():
    h = Harness(["c", "s"], latency=0.01)
    node = h.node("s")
    server = HttpServer(
        node,
        1,
        lambda job: node.after_work(5.0, lambda: job.reply(200)),
        queue_limit=0,
        settings=HttpServerSettings(retry_after=2.5),
    )
    HttpEndpoint(node, server)
    client = HttpEndpoint(h.node("c"))
    calls = [client.client.call("s", "task", f"t-{i}", timeout=30) for i in range(2)]
    h.run(30)
    assert [c.result[1] for c in calls] == [200, 503]
    assert calls[1].retry_after == 2.5
    responses = h.messages[h.messages.kind == "response"]
    assert len(responses) == 2


def test_past_the_rate_limit_the_answer_is_429_with_the_refill_time():
    h = Harness(["c", "s"], latency=0.0)
    node = h.node("s")
    server = HttpServer(
        node,
        10,
        lambda job: job.reply(200),
        settings=HttpServerSettings(rate_limit=2.0, burst=3),
    )
    HttpEndpoint(node, server)
    client = client_with(h, tls=False)
    calls = [client.client.call("s", "task", f"t-{i}", timeout=30) for i in range(5)]
    h.run(5)
    assert [c.result[1] for c in calls] == [200, 200, 200, 429, 429]
    # The bucket is empty: a token comes back every 0.5 s.
    assert calls[3].retry_after == pytest.approx(0.5)
    limited = h.spans[h.spans.status == 429]
    assert list(limited.sort_values("kind").outcome) == ["error", "error", "rejected", "rejected"]


def test_an_idempotency_key_replays_the_result_and_refuses_while_in_flight():
    h = Harness(["c", "s"], latency=0.01)
    node = h.node("s")
    server = HttpServer(node, 4, lambda job: node.after_work(1.0, lambda: job.reply(201)))
    HttpEndpoint(node, server)
    client = HttpEndpoint(h.node("c"))
    first = client.client.call("s", "order", "o-1", timeout=10, idempotency_key="k1")
    calls = {}

    def later(t, name):
        yield h.env.timeout(t)
        calls[name] = client.client.call("s", "order", "o-1", timeout=10, idempotency_key="k1")

    h.env.process(later(0.5, "during"))
    h.env.process(later(3.0, "after"))
    h.run(10)
    assert first.result[1] == 201
    assert calls["during"].result[1] == 409
    assert calls["after"].result[1] == 201
    # The handler ran once: one effect for the key.
    effects = h.tables["effects"]
    assert list(effects.key) == ["k1"]
    replayed = h.spans[(h.spans.kind == "server") & (h.spans.error == "replayed")]
    assert len(replayed) == 1


def test_an_idle_connection_past_its_keepalive_expiry_is_not_reused():
    h = Harness(["c", "s"], latency=0.01)
    serve_in(h, "s", 0.1, workers=2)
    client = client_with(h, keepalive_expiry=5.0)

    def calls():
        for t in (0.0, 2.0, 10.0):
            yield h.env.timeout(t - h.env.now)
            client.client.call("s", "task", f"t-{t}", timeout=5)

    h.env.process(calls())
    h.run(20)
    # Reused after 2 s of idleness, replaced after 8 s.
    assert (h.messages.type == "tcp.syn").sum() == 2


def test_a_partition_makes_the_connect_time_out_after_syn_retransmissions():
    h = Harness(["c", "s"], latency=0.01)
    serve_in(h, "s", 0.1)
    client = HttpEndpoint(h.node("c"))
    h.fault({"kind": "partition", "groups": [["c"], ["s"]], "start": 0, "end": 60})
    call = client.client.call("s", "task", "t-1", timeout=5)
    h.run(30)
    assert call.result == ("error", 0, "could not connect to s within 5 s")
    syns = h.messages[h.messages.type == "tcp.syn"]
    # Sent at 0, then retransmitted after 1 s and 2 s more (Linux's doubling RTO).
    assert list(syns.sent_at) == [0.0, 1.0, 3.0]
    assert list(syns.attempt) == [1, 2, 3]
    assert (syns.outcome == "partitioned").all()


def test_a_connection_opened_before_a_server_restart_is_reset():
    h = Harness(["c", "s"], latency=0.01)
    serve_in(h, "s", 0.1)
    client = HttpEndpoint(h.node("c"))
    h.fault({"kind": "crash", "targets": ["s"], "start": 1, "end": 2})
    results = []

    def calls():
        client.client.call("s", "task", "before", timeout=5, on_done=results.append)
        yield h.env.timeout(3)
        client.client.call("s", "task", "after", timeout=5, on_done=results.append)
        yield h.env.timeout(1)
        client.client.call("s", "task", "again", timeout=5, on_done=results.append)

    h.env.process(calls())
    h.run(10)
    assert results[0] == ("ok", 200, "")
    assert results[1] == ("error", 0, "s reset the connection")
    assert results[2] == ("ok", 200, "")
    assert (h.messages.type == "tcp.rst").sum() == 1
