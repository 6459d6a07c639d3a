"""MCP Streamable HTTP over the harness: sessions, resumption, expiry, stateless re-issue.

Every tool call works 20 s and its stream carries a notifications/progress every 5 s,
over a 10 ms link. Under 2025-11-25 the first call initializes (0.00-0.02 s), so its
stream's events (ids: 1 priming, 2.. progress) go out at 0.03, 5.03, 10.03, 15.03 and
its result at 20.03.
"""

from __future__ import annotations

import pytest

from protocols.mcp import McpClient, McpEndpoint, McpServer, McpSettings
from protocols.workers import Job
from tests.harness import Harness

CUT = {"kind": "partition", "groups": [["c"], ["s"]], "start": 8, "end": 12}


class World:
    """A client `c` and an MCP server `s` whose every tool call takes `work` seconds."""

    def __init__(self, work: float = 20.0, faults: list[dict] = (), **settings) -> None:
        self.h = Harness(["c", "s"], latency=0.01)
        for fault in faults:
            self.h.fault(fault)
        settings.setdefault("progress_interval", 5.0)
        self.settings = McpSettings(**settings)
        node = self.h.node("s")

        def handler(job: Job) -> None:
            node.after_work(work, lambda: job.reply(200))

        self.server = McpServer(node, 4, handler, None, self.settings)
        McpEndpoint(node, self.server)
        c = self.h.node("c")
        self.client = McpEndpoint(c, client=McpClient(c, self.settings)).client
        self.results: list[tuple] = []

    def call_at(self, at: float, timeout: float = 60.0) -> None:
        env = self.h.env

        def later():
            yield env.timeout(at)
            self.client.call("s", "tools/call", f"r{at:g}", timeout=timeout,
                             on_done=self.results.append)  # fmt: skip

        env.process(later())

    def sent(self, type_: str, kind: str):
        m = self.h.messages
        return m[(m.type == type_) & (m.kind == kind)]

    def spans(self, kind: str):
        s = self.h.spans
        return s[(s.name == "tools/call") & (s.kind == kind)]


def test_2025_initializes_once_then_calls_with_its_session() -> None:
    w = World()
    w.call_at(0)
    w.call_at(100)
    w.h.run(200)
    assert w.results == [("ok", 200, ""), ("ok", 200, "")]
    assert len(w.sent("initialize", "request")) == 1
    assert len(w.sent("notifications/initialized", "request")) == 1
    calls = w.client.sessions["s"]
    assert calls.id in w.server.sessions


def test_2025_a_stream_resumed_with_last_event_id_replays_exactly_the_missed_events() -> None:
    # Event 3 (10.03 s) is lost in the partition; event 4 (15.03 s) shows the hole, which
    # breaks the connection at 16.04 s; the GET at 17.04 s (Last-Event-ID: 2) gets 3 and
    # 4 replayed, then the result live.
    w = World(faults=[CUT])
    w.call_at(0)
    w.h.run(100)
    assert w.results == [("ok", 200, "")]
    get = w.sent("tools/call", "request").iloc[1]
    assert (get.sent_at, get.attempt) == (pytest.approx(17.04), 2)
    resumed = w.h.messages[w.h.messages.attempt == 2]
    assert resumed.kind.tolist() == ["request", "response", "event", "event", "event", "control"]
    # After the status line: events 3 and 4 replayed at once, the result live.
    replayed = resumed[resumed.kind == "event"]
    assert replayed.sent_at.tolist() == pytest.approx([17.05, 17.05, 20.03])
    client = w.spans("client").iloc[0]
    assert (client.outcome, client.lost_events, client.attempts) == ("ok", 0, 2)
    assert w.spans("server").outcome.tolist() == ["ok"]  # the disconnect cancelled nothing


def test_2025_without_an_event_store_the_answer_of_a_broken_stream_is_lost() -> None:
    w = World(faults=[CUT], event_store=False, sse_read_timeout=30.0)
    w.call_at(0)
    w.h.run(200)
    assert w.results[0][0] == "timeout"
    assert w.spans("server").outcome.tolist() == ["ok"]  # the work was done, for nobody


def test_2025_the_server_closing_connections_is_resumed_after_its_retry() -> None:
    w = World(close_after=7.0, server_retry=0.5)
    w.call_at(0)
    w.h.run(100)
    assert w.results == [("ok", 200, "")]
    gets = w.sent("tools/call", "request")
    assert gets.sent_at.tolist() == pytest.approx([0.02, 7.54, 15.06])
    assert w.spans("client").lost_events.tolist() == [0]


def test_2025_an_expired_session_gets_404_and_the_client_reinitializes() -> None:
    w = World(session_idle_timeout=50.0)
    w.call_at(0)
    w.call_at(100)
    w.h.run(200)
    assert w.results == [("ok", 200, ""), ("ok", 200, "")]
    assert w.sent("initialize", "request").sent_at.tolist() == pytest.approx([0.0, 100.02])
    refused = w.spans("server")
    assert refused.status.tolist() == [200, 404, 200]
    assert w.sent("tools/call", "request").sent_at.tolist() == pytest.approx([0.02, 100, 100.04])


def test_2025_without_reinitialize_a_404_ends_the_call_as_python_sdk_1_29_does() -> None:
    w = World(session_idle_timeout=50.0, reinitialize=False)
    w.call_at(0)
    w.call_at(100)
    w.h.run(200)
    assert w.results[1] == ("error", 404, "Session terminated (32600): HTTP 404")


def test_2025_a_timeout_sends_notifications_cancelled_which_stops_the_work() -> None:
    w = World(work=100.0)
    w.call_at(0, timeout=30.0)
    w.h.run(200)
    assert w.results == [("timeout", 0, "no response within 30 s")]
    cancel = w.sent("notifications/cancelled", "request")
    assert cancel.sent_at.tolist() == pytest.approx([30.0])
    assert w.spans("server").outcome.tolist() == ["cancelled"]


def test_a_call_cancelled_while_queued_waited_until_its_cancel() -> None:
    # Five calls on four workers: the fifth queues until its client gives up at 10 s and
    # cancels it. Was a NaN wait (its start minus its arrival, never started); HTTP
    # records the time it waited, and so does MCP now.
    w = World(work=100.0)
    for at in (1.0, 1.0, 1.0, 1.0):
        w.call_at(at, timeout=30.0)
    w.call_at(1.5, timeout=10.0)
    w.h.run(200)
    servers = w.spans("server")
    assert servers.outcome.tolist() == ["cancelled"] * 5
    assert servers["wait"].notna().all()
    queued = servers[servers["start"] == servers["start"].max()].iloc[0]
    assert queued["end"] == pytest.approx(11.51)
    assert queued["wait"] == pytest.approx(queued["end"] - queued["start"])
    assert (servers.loc[servers.index != queued.name, "wait"] == 0.0).all()


def test_2026_has_no_initialize_and_no_session() -> None:
    w = World(revision="2026-07-28")
    w.call_at(0)
    w.h.run(100)
    assert w.results == [("ok", 200, "")]
    assert w.sent("initialize", "request").empty
    assert not w.server.sessions


def test_2026_a_dropped_stream_cancels_the_call_and_the_client_reissues_it() -> None:
    # Event at 10.01 s lost, the hole seen at 15.01 s breaks the stream at 16.02 s: the
    # client closes it (the server cancels the first call) and re-issues at once.
    w = World(revision="2026-07-28", faults=[CUT])
    w.call_at(0)
    w.h.run(100)
    assert w.results == [("ok", 200, "")]
    posts = w.sent("tools/call", "request")
    assert posts.sent_at.tolist() == pytest.approx([0.0, 16.02])
    assert posts.attempt.tolist() == [1, 2]
    assert w.spans("server").outcome.tolist() == ["cancelled", "ok"]
    client = w.spans("client").iloc[0]
    assert (client.attempts, client.end) == (2, pytest.approx(36.04))


def test_2026_a_lost_hang_up_is_learnt_from_the_reset_of_the_next_event() -> None:
    # The client's FIN is lost in a longer partition; the server's next event after it
    # heals meets the client's reset, and the server stops the orphaned work then.
    w = World(revision="2026-07-28", faults=[{**CUT, "end": 25}], timeout=5.0,
              sse_read_timeout=12.0, work=60.0)  # fmt: skip
    w.call_at(0, timeout=200)
    w.h.run(300)
    first = w.spans("server").iloc[0]
    assert first.outcome == "cancelled"
    assert first.end < 60.0


def test_an_unquoted_revision_in_yaml_is_read_as_the_revision_it_names() -> None:
    import datetime

    settings = McpSettings.model_validate({"revision": datetime.date(2026, 7, 28)})
    assert settings.revision == "2026-07-28"


def test_2025_a_session_with_a_stream_open_does_not_expire() -> None:
    # A (10 s) ends and is dropped from the event store 300 s later; B (500 s) is still
    # streaming when C comes at 400 s: the session is in use, so C needs no new
    # initialize. (Released twice, at its end and when dropped, A would let it expire.)
    h = Harness(["c", "s"], latency=0.01)
    settings = McpSettings(session_idle_timeout=60.0, progress_interval=None)
    node = h.node("s")

    def handler(job: Job) -> None:
        node.after_work(job.msg.body, lambda: job.reply(200))

    McpEndpoint(node, McpServer(node, 4, handler, None, settings))
    client = McpEndpoint(h.node("c"), client=McpClient(h.node("c"), settings)).client
    results = []

    def calls():
        for at, work in ((0, 10.0), (5, 500.0), (400, 1.0)):
            yield h.env.timeout(at - h.env.now)
            client.call("s", "tools/call", f"r{at}", timeout=900, body=work,
                        on_done=results.append)  # fmt: skip

    h.env.process(calls())
    h.run(600)
    m = h.messages
    assert len(m[(m.type == "initialize") & (m.kind == "request")]) == 1
    assert results == [("ok", 200, "")] * 3


# -- 2025-11-25: the standalone GET stream and pings --------------------------------------


def test_2025_the_client_opens_the_get_stream_once_initialized_and_hears_the_server() -> None:
    w = World(notify_interval=5.0)
    w.call_at(0)
    w.h.run(40)
    gets = w.sent("mcp.stream", "request")
    # Right after notifications/initialized, as python-sdk's start_get_stream.
    assert gets.sent_at.tolist() == pytest.approx([0.02])
    told = w.sent("notifications/tools/list_changed", "event")
    assert told.sent_at.tolist() == pytest.approx([5.03 + 5 * i for i in range(7)])
    listener = w.client.listeners["s"]
    assert (listener.notifications, listener.lost) == ([1, 2, 3, 4, 5, 6, 7], 0)


@pytest.mark.parametrize(
    ("store", "heard", "lost"), [(True, [1, 2, 3, 4, 5], 0), (False, [1, 4, 5], 2)]
)
def test_2025_a_cut_get_stream_resumes_with_last_event_id_and_replays_exactly_the_missed(
    store: bool, heard: list[int], lost: int
) -> None:
    # Notification 2 (10.03 s) is lost in the partition; 3 (15.03 s) shows the hole, which
    # breaks the GET stream at 16.04 s; the GET at 17.04 s (Last-Event-ID: 1) gets 2 and 3
    # replayed from the event store (none without one), then 4 and 5 live.
    w = World(notify_interval=5.0, faults=[CUT], event_store=store)
    w.call_at(0)
    w.h.run(27)
    gets = w.sent("mcp.stream", "request")
    assert gets.sent_at.tolist() == pytest.approx([0.02, 17.04])
    listener = w.client.listeners["s"]
    assert (listener.notifications, listener.lost) == (heard, lost)


def test_2025_a_server_offering_no_get_stream_answers_405_and_the_client_gives_up() -> None:
    w = World(standalone_stream=False)
    w.call_at(0)
    w.h.run(60)
    assert w.results == [("ok", 200, "")]  # the calls do not need it
    # python-sdk counts the 405 as a failure, tries once more after 1 s, then stops.
    assert w.sent("mcp.stream", "request").sent_at.tolist() == pytest.approx([0.02, 1.04])
    listener = w.client.listeners["s"]
    assert listener.stopped
    assert (
        listener.why == "gave the GET stream up after 2 failure(s): HTTP 405: no standalone stream"
    )


def test_2025_a_second_get_stream_on_a_session_is_refused_409() -> None:
    w = World()
    w.call_at(0)
    w.h.run(1)
    session = next(iter(w.server.sessions))
    from protocols.mcp.wire import Answer, Get
    from protocols.transport import Message

    answers: list[Answer] = []
    w.server._answer = lambda msg, status, session="", error="": answers.append(status)
    w.server.on_request(Message("x", "mcp.stream", "c", "s", body=Get("", 0, session)))
    assert answers == [409]


def test_2025_pings_answered_keep_the_session() -> None:
    w = World(ping_interval=30.0, get_stream=False)
    w.call_at(0)
    w.call_at(100)
    w.h.run(150)
    pings = w.sent("ping", "request")
    assert pings.sent_at.tolist() == pytest.approx([30.02, 60.02, 90.02, 120.02])
    assert len(w.sent("ping", "response")) == 4
    assert len(w.sent("initialize", "request")) == 1
    assert w.results == [("ok", 200, "")] * 2


def test_2025_an_unanswered_ping_breaks_the_session_and_the_next_call_initializes_again() -> None:
    # The ping at 30.02 s is lost in the partition; at 60.02 s (python-sdk's 30 s timeout)
    # the client takes the session for broken and drops it, so the call at 100 s
    # initializes a new session instead of meeting a 404 (and pings it from 130.02 s).
    w = World(ping_interval=30.0, get_stream=False,
              faults=[{**CUT, "start": 29, "end": 35}])  # fmt: skip
    w.call_at(0)
    w.call_at(100)
    w.h.run(150)
    assert w.sent("ping", "request").sent_at.tolist() == pytest.approx([30.02, 130.02])
    assert w.sent("initialize", "request").sent_at.tolist() == pytest.approx([0.0, 100.0])
    assert w.results == [("ok", 200, "")] * 2
    assert w.spans("server").status.tolist() == [200, 200]  # no 404 on the way


@pytest.mark.parametrize("store", [True, False])
def test_2025_a_server_ping_left_unanswered_ends_the_session(store: bool) -> None:
    # The server pings over the GET stream every 20 s; the one at 40.03 s is lost in the
    # partition, and the one at 60.03 s shows the hole: the client resumes the stream at
    # 62.04 s. With an event store both pings are replayed and answered, and the session
    # lives. Without one, the ping of 40.03 s is never answered: at 70.03 s the server
    # ends the session; the client's GETs get 404, and so does its call at 100 s, which
    # initializes again.
    w = World(server_ping_interval=20.0, event_store=store,
              faults=[{**CUT, "start": 35, "end": 45}])  # fmt: skip
    w.call_at(0)
    w.call_at(100)
    w.h.run(150)
    pings = w.sent("ping", "event")
    assert pings.sent_at.tolist()[:3] == pytest.approx([20.03, 40.03, 60.03])
    answered = w.sent("response", "request").sent_at.tolist()
    assert w.results == [("ok", 200, "")] * 2
    if store:
        assert answered[:3] == pytest.approx([20.04, 62.06, 62.06])
        assert len(w.sent("initialize", "request")) == 1
    else:
        assert answered[:1] == pytest.approx([20.04])
        assert answered[1] > 100  # the new session's
        gets = w.sent("mcp.stream", "request").sent_at.tolist()
        assert gets[1:4] == pytest.approx([62.04, 71.04, 72.06])  # resume, then 404 twice
        assert w.sent("initialize", "request").sent_at.tolist() == pytest.approx([0.0, 100.02])
        assert w.spans("server").status.tolist() == [200, 404, 200]
