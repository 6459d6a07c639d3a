"""WebSocket over the harness: handshake, keepalive, close codes, reconnect backoff,
back-pressure, buffering while disconnected, calls, negotiation; perfect and faulty."""

from __future__ import annotations

import dataclasses

import pytest

import sim
from protocols.negotiation import Negotiator, Stance
from protocols.transport import Message
from protocols.websocket import (
    WebSocketEndpoint,
    WebSocketServer,
    WebSocketSettings,
    WsSession,
    rebody,
)
from protocols.workers import Job
from sim.streams import Streams
from tests.harness import Harness

BACKOFF = [3.1, 5.0158, 8.1155644, 13.1309832, 21.2459308, 34.3759161, 55.6202322, 89.9935357]


def endpoints(h: Harness, settings: WebSocketSettings | None = None, service: float = 0.5):
    """A client endpoint on "c" and a serving one on "s" (each request takes `service`)."""
    node = h.node("s")

    def handler(job: Job) -> None:
        node.after_work(service, lambda: job.reply(200))

    server = WebSocketEndpoint(node, settings, WebSocketServer(node, 2, handler))
    return WebSocketEndpoint(h.node("c"), settings), server


def at(h: Harness, t: float, action) -> None:
    """Do `action` at simulated time `t`."""
    h.env.timeout(t).callbacks.append(lambda _e: action())


def collect(endpoint: WebSocketEndpoint, type_: str = "note") -> list:
    """Record (time, body) of every `type_` message the endpoint receives."""
    got: list = []
    env = endpoint.node.env
    endpoint.handle(type_, lambda _ch, msg: got.append((env.now, msg.body)))
    return got


def conn_spans(h: Harness):
    return h.spans[h.spans.name == "ws.connection"].reset_index(drop=True)


# -- opening, sending both ways, keepalive ----------------------------------------------


@pytest.mark.parametrize(("tls", "round_trips"), [(True, 3), (False, 2)])
def test_the_open_costs_tcp_tls_and_upgrade_round_trips(tls, round_trips):
    h = Harness(["c", "s"], latency=0.01)
    client, _ = endpoints(h, WebSocketSettings(tls=tls))
    session = client.connect("s")
    h.run(1)
    assert session.open and session.conn is not None
    assert session.conn.opened_at == pytest.approx(round_trips * 0.02)
    hs = h.messages[h.messages.kind == "control"]
    assert len(hs) == 2 * round_trips and set(hs.protocol) == {"websocket"}
    assert list(hs.type[-2:]) == ["ws.upgrade", "ws.accept"]


def test_both_sides_send_at_any_time_and_pings_come_every_20_s():
    h = Harness(["c", "s"], latency=0.01)
    client, server = endpoints(h)
    at_client, at_server = collect(client), collect(server)
    accepted = []
    server.on_accept.append(accepted.append)
    session = client.connect("s")
    at(h, 1.0, lambda: session.send("note", "from c"))
    at(h, 1.0, lambda: accepted[0].send("note", "from s"))
    at(h, 2.5, lambda: accepted[0].send("note", "again from s"))
    h.run(65)
    assert [b for _, b in at_server] == ["from c"]
    assert [b for _, b in at_client] == ["from s", "again from s"]
    assert at_client[0][0] == pytest.approx(1.01)
    pings = h.messages[(h.messages.kind == "ping") & (h.messages.src == "c")]
    assert list(pings.sent_at) == pytest.approx([20.06, 40.06, 60.06])
    assert set(h.messages.protocol) == {"websocket"} and h.messages.outcome.eq("delivered").all()
    assert (h.messages.kind == "pong").sum() == 6  # both sides ping, as websockets does


# -- missed pongs, 1011, and the reconnect backoff --------------------------------------


def test_missed_pongs_close_1011_and_reconnects_follow_the_backoff():
    h = Harness(["c", "s"], latency=0.01, seed=7)
    client, _ = endpoints(h)
    h.fault({"kind": "partition", "groups": [["c"], ["s"]], "start": 5, "end": 400})
    h.fault({"kind": "partition", "groups": [["c"], ["s"]], "start": 600, "end": 700})
    session = client.connect("s")
    h.run(800)
    first = Streams(7).get("websocket:c->s").random() * 5.0
    # The connection had opened: retried at once; then each failed open backs off.
    assert session.delays[0] == 0.0
    assert session.delays[1] == pytest.approx(first) and 0 <= first <= 5
    assert session.delays[2:10] == pytest.approx(BACKOFF)
    assert session.delays[10] == 90.0
    spans = conn_spans(h)
    assert spans.status[0] == 1011 and "keepalive ping timeout" in spans.error[0]
    assert spans.end[0] == pytest.approx(50.06)  # 20 s ping, 20 s timeout, 10 s close
    failed = spans[(spans.start > 50) & (spans.start < 400)]
    assert len(failed) == 10 and set(failed.outcome) == {"timeout"}
    assert set(failed.status) == {1006}  # 1006: local only, never in a close frame
    # It opened after the first outage, which reset the backoff: the second starts over.
    second = session.delays[11:]
    assert second[0] == 0.0 and 0 <= second[1] <= 5 and second[2:] == pytest.approx(BACKOFF[:3])
    assert session.open and session.opens == 3


def test_a_paused_server_misses_pongs_and_the_client_comes_back():
    h = Harness(["c", "s"], latency=0.01)
    client, _ = endpoints(h)
    h.fault({"kind": "pause", "targets": ["s"], "start": 5, "end": 75})
    session = client.connect("s")
    h.run(200)
    spans = conn_spans(h)
    assert spans.status[0] == 1011
    assert session.open and session.opens == 2
    # 1006 is local only: no close frame ever carries it.
    assert (h.messages.type == "ws.close").sum() >= 1


def test_a_refused_connection_backs_off_from_its_first_failure():
    h = Harness(["c", "s"], latency=0.01)
    client = WebSocketEndpoint(h.node("c"))
    WebSocketEndpoint(h.node("s"), accept=False)  # nothing listens: a reset answers the SYN
    session = client.connect("s")
    h.run(30)
    first = Streams(1).get("websocket:c->s").random() * 5.0
    assert session.delays[:4] == pytest.approx([first, *BACKOFF[:3]])
    spans = conn_spans(h)
    assert set(spans.outcome[:-1]) == {"error"} and "refused" in spans.error[0]
    assert session.opens == 0 and h.spans.end.isna().sum() <= 1


# -- close codes ------------------------------------------------------------------------


def test_a_normal_close_is_ok_and_final():
    h = Harness(["c", "s"], latency=0.01)
    client, server = endpoints(h)
    closed = []
    server.on_accept.append(closed.append)
    session = client.connect("s")
    at(h, 5, session.close)
    h.run(60)
    span = conn_spans(h).iloc[0]
    assert (span.outcome, span.status, span.end) == ("ok", 1000, pytest.approx(5.02))
    assert session.finished and session.delays == []
    assert closed[0].code == 1000 and closed[0].clean
    assert list(h.messages[h.messages.sent_at >= 5].type) == ["ws.close", "ws.close", "ws.ack"]
    with pytest.raises(ValueError, match="1006"):
        closed[0].close(1006)  # local only: never sent


def test_a_server_going_away_1001_makes_the_client_reconnect_at_once():
    h = Harness(["c", "s"], latency=0.01)
    client, server = endpoints(h)
    accepted = []
    server.on_accept.append(accepted.append)
    session = client.connect("s")
    at(h, 5, lambda: accepted[0].close(1001, "restarting"))
    h.run(10)
    spans = conn_spans(h)
    assert (spans.outcome[0], spans.status[0]) == ("ok", 1001)
    assert session.delays == [0.0] and session.open and len(accepted) == 2


def test_a_message_over_max_size_closes_1009():
    h = Harness(["c", "s"], latency=0.01)
    client, server = endpoints(h)
    got = collect(server)
    session = client.connect("s")
    at(h, 1, lambda: session.send("note", "huge", size_bytes=2**20 + 1))
    at(h, 1, lambda: session.send("note", "small"))
    h.run(5)
    assert conn_spans(h).status[0] == 1009 and "message too big" in conn_spans(h).error[0]
    assert got == [] and session.open  # reconnected; what was in flight is lost
    assert session.lost == 1


# -- back-pressure ----------------------------------------------------------------------


def test_a_receive_queue_of_16_makes_a_fast_sender_wait_for_a_slow_receiver():
    h = Harness(["c", "s"], latency=0.01)
    client, server = endpoints(h)
    env = h.env
    consumed = [0]
    sent: list[tuple[float, int]] = []

    def reader(conn):
        while True:
            msg = yield conn.recv()
            if msg is None:
                return
            consumed[0] += 1
            yield env.timeout(1.0)

    def writer(session: WsSession):
        yield env.timeout(1.0)
        for i in range(40):
            ok = yield session.send("note", i)
            assert ok
            sent.append((env.now, i + 1 - consumed[0]))

    server.on_accept.append(lambda conn: env.process(reader(conn)))
    env.process(writer(client.connect("s")))
    h.run(60)
    times = [t for t, _ in sent]
    assert times[:16] == pytest.approx([1.0] * 16)  # the window: 16 at once
    assert max(unread for _, unread in sent) <= 16  # never more unconsumed than max_queue
    # The reader stops at 16 queued and resumes at the low-water mark (4): 12 more at once.
    assert times[16] > 1.0 and min(times[17:29]) > 12 and len(set(times[17:29])) == 1
    assert min(times[29:]) > times[28] + 10
    assert consumed[0] >= 40 - 1 or times[-1] < 60


# -- sends while disconnected -----------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "limit", "delivered", "refused"),
    [("buffer", 1024, 5, 0), ("buffer", 3, 3, 2), ("fail", 1024, 0, 5)],
)
def test_sends_while_disconnected_are_buffered_or_fail(mode, limit, delivered, refused):
    h = Harness(["c", "s"], latency=0.01)
    settings = WebSocketSettings(when_disconnected=mode, send_buffer=limit)
    client, server = endpoints(h, settings)
    got = collect(server)
    h.fault({"kind": "partition", "groups": [["c"], ["s"]], "start": 5, "end": 70})
    session = client.connect("s")
    results: list = []
    for i in range(5):
        at(h, 55 + i, lambda i=i: session.send("note", i).callbacks.append(results.append))
    h.run(200)
    assert [e.value for e in results].count(False) == refused
    assert [b for _, b in got] == list(range(delivered))
    reopened = conn_spans(h).start.iloc[-1]
    assert all(t > reopened for t, _ in got)


# -- calls ------------------------------------------------------------------------------


def test_calls_share_one_connection():
    h = Harness(["c", "s"], latency=0.01)
    client, _ = endpoints(h)
    results: list = []
    client.call("s", "task", "t-1", timeout=5, on_done=results.append)
    at(h, 2, lambda: client.call("s", "task", "t-2", timeout=5, on_done=results.append))
    h.run(10)
    assert results == [("ok", 200, ""), ("ok", 200, "")]
    assert (h.messages.type == "ws.syn").sum() == 1
    calls = h.spans[(h.spans.kind == "client") & (h.spans.name == "task")]
    assert list(calls.end - calls.start) == pytest.approx([0.58, 0.52])


@pytest.mark.parametrize(
    ("down_until", "timeout", "outcome"), [(6, 60, "ok"), (100, 40, "timeout")]
)
def test_a_server_crash_mid_call(down_until, timeout, outcome):
    h = Harness(["c", "s"], latency=0.01)
    client, _ = endpoints(h, service=2.0)
    h.fault({"kind": "crash", "targets": ["s"], "start": 1, "end": down_until})
    results: list = []
    client.call("s", "task", "t-1", timeout=timeout, on_done=results.append)
    h.run(150)
    assert [r[0] for r in results] == [outcome]
    server = h.spans[h.spans.kind == "server"]
    assert server.error.iloc[0] == "crashed while serving"
    spans = conn_spans(h)
    assert spans.status[0] == 1006 and spans.outcome[0] == "error"
    if outcome == "ok":
        # The request on the dead connection went again on the next one.
        requests = h.messages[h.messages.kind == "request"]
        assert sorted(set(requests.attempt)) == [1, 2]
        assert list(server.outcome) == ["error", "ok"]


def test_a_resend_after_a_retransmission_numbers_on_from_it():
    # The request's frame is unacknowledged when the server crashes and comes straight
    # back: the retransmission (attempt 2) meets a reset, and the request goes again on a
    # new connection as attempt 3, never as a second attempt 2 (found by the oracle).
    h = Harness(["c", "s"], latency=0.0)
    client, _ = endpoints(h, service=0.125)
    h.fault({"kind": "crash", "targets": ["s"], "start": 1, "end": 1})
    results: list = []
    at(h, 0.9, lambda: client.call("s", "task", "t-1", timeout=None, on_done=results.append))
    h.run(10)
    assert results == [("ok", 200, "")]
    requests = h.messages[h.messages.kind == "request"]
    assert list(requests.attempt) == [1, 2, 3]
    assert (h.messages.type == "ws.rst").sum() == 1


def test_a_call_too_big_for_the_server_fails_instead_of_looping():
    h = Harness(["c", "s"], latency=0.01)
    client, _ = endpoints(h)
    results: list = []
    client.call("s", "task", "t-1", timeout=30, size_bytes=2**21, on_done=results.append)
    client.call("s", "task", "t-2", timeout=30, on_done=results.append)
    h.run(40)
    assert results[0][0] == "error" and "1009" in results[0][2]
    assert (h.messages.kind == "request").sum() == 3  # the small one went again once
    assert results[1] == ("ok", 200, "")


def test_a_crashed_client_comes_back_on_a_new_connection():
    h = Harness(["c", "s"], latency=0.01)
    client, server = endpoints(h)
    h.fault({"kind": "crash", "targets": ["c"], "start": 5, "end": 10})
    results: list = []
    client.call("s", "task", "t-1", timeout=5, on_done=results.append)
    at(h, 12, lambda: client.call("s", "task", "t-2", timeout=5, on_done=results.append))
    h.run(60)
    assert results == [("ok", 200, ""), ("ok", 200, "")]  # the crash ended no call in flight
    spans = conn_spans(h)
    assert (spans.outcome[0], spans.error[0]) == ("error", "crashed")
    # The server's side of the old connection ends at its next frame: the client resets it.
    assert len(server.conns) == 1 and (h.messages.type == "ws.rst").sum() >= 1


# -- the network's faults are hidden by TCP ---------------------------------------------


def test_loss_and_duplicates_cost_latency_never_messages():
    h = Harness(["c", "s"], latency=0.01)
    client, server = endpoints(h)
    got = collect(server)
    h.fault({"kind": "loss", "targets": ["c"], "probability": 0.2, "start": 0})
    h.fault({"kind": "duplicate", "targets": ["c"], "probability": 0.2, "start": 0})
    session = client.connect("s")
    for i in range(50):
        at(h, 1 + i * 0.5, lambda i=i: session.send("note", i))
    h.run(120)
    assert [b for _, b in got] == list(range(50))  # once each, in order
    notes = h.messages[h.messages.type == "note"]
    assert (notes.attempt > 1).any() and (notes.outcome == "dropped").any()


def test_a_lost_frame_with_frames_behind_it_is_resent_before_the_timeout():
    # Fast retransmit (RFC 5681) and NewReno: the frames after a hole come back as
    # duplicate acknowledgements, and the third resends the lost one within a few round
    # trips; before, each loss held the connection for the whole 1 s timeout.
    h = Harness(["c", "s"], latency=0.01)
    client, server = endpoints(h)
    got = collect(server)
    h.fault({"kind": "loss", "targets": ["c"], "probability": 0.05, "start": 0})
    session = client.connect("s")
    for i in range(200):
        at(h, 1 + i * 0.02, lambda i=i: session.send("note", i))
    h.run(30)
    assert [b for _, b in got] == list(range(200))
    notes = h.messages[h.messages.type == "note"]
    resent = notes.groupby("msg_id").sent_at.agg(["min", "max", "size"])
    resent = resent[resent["size"] > 1]
    assert len(resent) >= 5
    assert ((resent["max"] - resent["min"]) < 0.2).all()
    assert got[-1][0] < 5.1  # the last note, sent at 4.98 s, is not held back by a loss


# -- negotiation ------------------------------------------------------------------------


def negotiators(h: Harness, writer_limit: float = 55.0, critic_limit: float = 65.0):
    writer_ws = WebSocketEndpoint(h.node("w"))
    critic_ws = WebSocketEndpoint(h.node("k"))
    writer = Negotiator(writer_ws, Stance(position=80, limit=writer_limit, think=0.5))
    critic = Negotiator(critic_ws, Stance(position=40, limit=critic_limit, think=1.0))
    return writer, critic


@pytest.mark.parametrize("starter", ["writer", "critic"])
def test_a_negotiation_completes_whoever_starts_it(starter):
    h = Harness(["w", "k"], latency=0.02)
    writer, critic = negotiators(h)
    first, second = (writer, critic) if starter == "writer" else (critic, writer)
    peer = "k" if starter == "writer" else "w"
    outcomes: list = []
    first.start(peer, deadline=60, threshold=2.0, on_done=outcomes.append)
    h.run(70)
    [result] = outcomes
    assert result.outcome == "agreed" and result.rounds >= 2 and result.initiator
    assert 55 - 2 <= result.value <= 65 + 2
    assert [r.outcome for r in second.results] == ["agreed"]
    span = h.spans[(h.spans.name == "negotiate") & (h.spans.kind == "client")].iloc[0]
    assert span.outcome == "ok" and span.attempts == result.rounds


def test_the_side_that_did_not_open_the_connection_can_negotiate_over_it():
    h = Harness(["w", "k"], latency=0.02)
    writer, critic = negotiators(h)
    writer.ep.connect("k")  # the writer opens the connection...
    talks: list = []
    at(
        h, 1, lambda: talks.append(critic.start("w", deadline=60, threshold=2.0))
    )  # ...the critic bids
    h.run(70)
    assert talks[0].outcome is not None and talks[0].outcome.outcome == "agreed"
    assert (h.messages.type == "ws.syn").sum() == 1


def test_a_negotiation_that_cannot_agree_ends_at_its_deadline():
    h = Harness(["w", "k"], latency=0.02)
    writer, critic = negotiators(h, writer_limit=70, critic_limit=50)
    talk = writer.start("k", deadline=30, threshold=2.0)
    h.run(40)
    assert talk.outcome is not None
    assert (talk.outcome.outcome, talk.outcome.ended) == ("deadline", 30)
    assert talk.outcome.rounds > 5 and talk.done.triggered
    assert [r.outcome for r in critic.results] == ["deadline"]
    spans = h.spans[h.spans.name == "negotiate"]
    assert set(spans.outcome) == {"deadline_exceeded"}


def test_a_negotiation_completes_over_a_lossy_slow_network():
    h = Harness(["w", "k"], latency=0.02)
    h.fault({"kind": "loss", "targets": ["w"], "probability": 0.2, "start": 0})
    h.fault({"kind": "latency", "targets": ["k"], "multiply": 10, "start": 0})
    writer, _ = negotiators(h)
    talk = writer.start("k", deadline=120, threshold=2.0)
    h.run(130)
    assert talk.outcome is not None and talk.outcome.outcome == "agreed"
    assert (h.messages.outcome == "dropped").any()


# -- determinism ------------------------------------------------------------------------


def test_a_faulty_run_is_deterministic():
    def run():
        h = Harness(["c", "s"], latency=0.01, seed=3)
        client, _ = endpoints(h)
        h.fault({"kind": "loss", "targets": ["c"], "probability": 0.1, "start": 0})
        h.fault({"kind": "partition", "groups": [["c"], ["s"]], "start": 10, "end": 80})
        for i in range(20):
            at(h, i * 5.0, lambda i=i: client.call("s", "task", f"t-{i}", timeout=30))
        h.run(200)
        return h.messages, h.spans

    (m1, s1), (m2, s2) = run(), run()
    assert m1.equals(m2) and s1.equals(s2)


def test_rebody_copies_every_field():
    values = {f.name: f"x-{f.name}" for f in dataclasses.fields(Message)}
    original = Message(**values)
    assert rebody(original, "body", 7) == original.copy(body="body", attempt=7)


def test_a_refusal_before_the_call_returns_ends_a_retrying_channels_request() -> None:
    # A full send buffer refuses a request inside the call that sends it: the resilience
    # layer got the attempt's result before the attempt itself, and the run aborted.
    scenario = {
        "name": "ws-refuse",
        "duration": 5,
        "agents": [
            {"id": "client", "role": "client"},
            {"id": "svc", "workers": 2, "service_time": {"dist": "constant", "value": 0.01}},
        ],
        "channels": [
            {
                "from": "client",
                "to": "svc",
                "protocol": "websocket",
                "timeout": 2,
                "websocket": {"send_buffer": 1},
                "retry": {"max_attempts": 3, "backoff": "constant", "base": 0.5},
            }
        ],
        "network": {"default": {"latency": {"dist": "constant", "value": 0.05}}},
        "workload": [
            {"from": "client", "to": "svc", "arrivals": {"kind": "bursts", "size": 5, "every": 10}}
        ],
    }
    run = sim.run(scenario)
    roots = run.spans[(run.spans.agent == "client") & (run.spans.parent_id == "")]
    requests = roots[roots.name == "task.run"]
    assert len(requests) == 5
    # One goes out while the connection opens, the send buffer holds nothing more.
    assert requests.outcome.tolist().count("ok") == 1
    refused = requests[requests.outcome == "error"]
    assert len(refused) == 4
    assert (refused.error == "send buffer to svc full (1)").all()
