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
