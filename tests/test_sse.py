"""Server-Sent Events over the harness: events, keep-alives, reconnects, replay, failures.

The server's job runs `work` seconds and emits a progress event every second, so a
stream that starts at 0 over a 10 ms link carries events 1..work (the last one final),
event k sent at k + 0.01 and read at k + 0.02.
"""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from protocols.sse import FINAL, SseClient, SseEndpoint, SseServer, SseSettings
from protocols.workers import Job
from tests.harness import Harness

PARTITION = {"kind": "partition", "groups": [["c"], ["s"]], "start": 20, "end": 30}


class World:
    """A client `c` and a stream server `s` whose every job takes `work` seconds."""

    def __init__(
        self,
        work: float = 60.0,
        settings: SseSettings | None = None,
        workers: int = 4,
        queue_limit: int | None = None,
        gate=None,
        faults: list[dict] = (),
        **harness,
    ) -> None:
        harness.setdefault("latency", 0.01)
        self.h = Harness(["c", "s"], **harness)
        for fault in faults:
            self.h.fault(fault)
        node = self.h.node("s")

        def handler(job: Job) -> None:
            node.after_work(work, lambda: job.reply(200))

        self.server = SseServer(node, workers, handler, queue_limit, settings, gate)
        SseEndpoint(node, self.server)
        self.client = SseEndpoint(self.h.node("c"), settings=settings).client
        self.events: list[tuple[float, int, str]] = []
        self.ids_of: dict[str, list[int]] = {}
        self.results: list[tuple] = []

    def open(self, timeout: float | None = None, size_bytes: int = 256):
        """Open a stream that records its events and its result."""

        def on_event(stream, frame) -> None:
            self.events.append((self.h.env.now, frame.event_id, frame.name))
            self.ids_of.setdefault(stream.key, []).append(frame.event_id)

        return self.client.open(
            "s",
            "task.run",
            "t-1",
            timeout=timeout,
            size_bytes=size_bytes,
            on_done=self.results.append,
            on_event=on_event,
        )

    @property
    def ids(self) -> list[int]:
        return [event_id for _, event_id, _ in self.events]

    def sent(self, kind: str, src: str | None = None):
        m = self.h.messages
        rows = m[m.kind == kind]
        return rows if src is None else rows[rows.src == src]


def test_a_stream_delivers_its_partial_events_in_order_then_the_final_one():
    w = World(work=5.0)
    node = w.h.node("s")
    # The handler reports a finding of its own between two progress events.
    w.server.handler = lambda job: (
        node.after(2.5, lambda: w.server.emit(job, "finding", {"hit": 1})),
        node.after_work(5.0, lambda: job.reply(200)),
    )
    stream = w.open()
    w.h.run(30)
    names = [name for _, _, name in w.events]
    assert names == ["progress", "progress", "finding", "progress", "progress", FINAL]
    assert w.ids == [1, 2, 3, 4, 5, 6]
    assert w.results == [("ok", 200, "")]
    assert stream.span_extras() == {
        "first_event_at": pytest.approx(1.02),
        "final_event_at": pytest.approx(5.02),
        "events": 6,
        "lost_events": 0,
    }
    client_span = w.h.spans.set_index("kind").loc["client"]
    assert (client_span.protocol, client_span.outcome, client_span.attempts) == ("sse", "ok", 1)
    assert client_span.end == pytest.approx(5.02)
    kinds = list(w.h.messages.kind)
    assert kinds == ["request", "response"] + ["event"] * 6 + ["control"]  # the body's end
    assert w.h.messages.type.iloc[-1] == "sse.eof"
    assert (w.h.messages.outcome == "delivered").all()
    assert (w.h.messages.protocol == "sse").all()


def test_keepalives_every_15_s_appear_in_the_messages_table_until_the_final_event():
    w = World(work=50.0)
    w.open()
    w.h.run(120)
    pings = w.sent("control")
    pings = pings[pings.type == "sse.keepalive"]
    assert len(pings) == 3
    assert list(pings.sent_at) == pytest.approx([15.01, 30.01, 45.01])
    assert w.results == [("ok", 200, "")]


def test_a_10_s_partition_is_resumed_with_last_event_id_and_every_event_arrives_once():
    last_ids: list[int] = []
    w = World(faults=[PARTITION], gate=lambda msg: last_ids.append(msg.body.last_event_id) or 0)
    stream = w.open()
    w.h.run(120)
    # Events 20..29 were blackholed; the event sent at 30.01 showed the hole, which broke
    # the connection 1 s later (31.02); the client waited 3 s and asked from id 19 on.
    assert (w.sent("event").outcome == "partitioned").sum() == 10
    assert last_ids == [0, 19]
    gets = w.sent("request")
    assert list(gets.attempt) == [1, 2]
    assert gets.sent_at.iloc[1] == pytest.approx(31.02 + 3.0)
    assert stream.delays == [3.0]
    assert w.ids == list(range(1, 61))
    assert stream.lost_events == 0 and stream.connections == 2
    assert w.results == [("ok", 200, "")]
    assert w.h.spans.set_index("kind").loc["client", "attempts"] == 2


def test_a_gap_longer_than_the_replay_buffer_counts_the_lost_events():
    w = World(settings=SseSettings(replay_buffer=5), faults=[PARTITION])
    stream = w.open()
    w.h.run(120)
    # At the reconnect (34.03) the buffer holds events 30..34: 20..29 are gone.
    assert w.ids == list(range(1, 20)) + list(range(30, 61))
    assert stream.lost_events == 10
    assert stream.span_extras()["lost_events"] == 10
    assert w.results == [("ok", 200, "")]


def test_the_span_of_a_stream_that_lost_events_says_so():
    w = World(settings=SseSettings(replay_buffer=5), faults=[PARTITION])
    w.open()
    w.h.run(120)
    # The call got its final answer (it is not retried), but its span is partial: the
    # caller saw a subset of the stream, and the trace says how much is missing.
    assert w.results == [("ok", 200, "")]
    span = w.h.spans.set_index("kind").loc["client"]
    assert (span.outcome, span.status, span.attempts, span.lost_events) == ("partial", 200, 2, 10)
    assert span.error.startswith("10 event(s) lost")
    assert w.h.spans.set_index("kind").loc["server", "lost_events"] == -1


def test_a_stream_that_lost_nothing_records_zero_lost_events():
    w = World(faults=[PARTITION])
    w.open()
    w.h.run(120)
    span = w.h.spans.set_index("kind").loc["client"]
    assert (span.outcome, span.lost_events, span.error) == ("ok", 0, "")


def test_the_servers_retry_field_sets_the_reconnection_delay():
    w = World(settings=SseSettings(server_retry=1.5), faults=[PARTITION])
    stream = w.open()
    w.h.run(120)
    assert stream.delays == [1.5]
    assert w.sent("request").sent_at.iloc[1] == pytest.approx(31.02 + 1.5)
    assert w.ids == list(range(1, 61))


def test_settings_per_callee_and_a_retried_calls_attempts():
    w = World(faults=[PARTITION])
    node = w.h.node("c")
    per_callee = {"s": SseSettings(retry=2.0)}
    w.client = SseEndpoint(node, client=SseClient(node, per_callee.__getitem__)).client
    call = w.client.call("s", "task.run", "t-1", attempt=3, deadline=500.0)
    w.h.run(120)
    assert call.result == ("ok", 200, "")
    gets = w.sent("request")
    # A retried call's stream (attempt 3) numbers its reconnect 4, after a 2 s wait.
    assert list(gets.attempt) == [3, 4]
    assert gets.sent_at.iloc[1] == pytest.approx(31.02 + 2.0)
    assert w.h.spans.set_index("kind").loc["client", "deadline"] == 500.0


def test_a_503_on_reconnect_fails_the_stream_for_good():
    w = World(faults=[PARTITION], gate=lambda msg: 503 if msg.attempt > 1 else 0)
    stream = w.open()
    w.h.run(120)
    assert w.results == [("error", 503, "HTTP 503 on connect #2: failed for good")]
    assert len(w.sent("request")) == 2  # no reconnect after the 503
    assert stream.final_event_at != stream.final_event_at  # NaN: never came
    span = w.h.spans.set_index("kind").loc["client"]
    assert (span.outcome, span.status, span.end) == ("error", 503, pytest.approx(34.04))
    # The job was not cancelled by the lost client: it finished on the server.
    assert w.h.spans.set_index("kind").loc["server", "outcome"] == "ok"


def test_a_full_accept_queue_answers_503_to_a_first_connect():
    w = World(workers=1, queue_limit=0)
    w.open()
    w.open()
    w.h.run(120)
    assert sorted(r[1] for r in w.results) == [200, 503]
    server = w.h.spans[w.h.spans.kind == "server"]
    assert sorted(server.outcome) == ["ok", "rejected"]


def test_a_server_crash_resets_the_stream_and_the_restarted_server_answers_404():
    w = World(faults=[{"kind": "crash", "targets": ["s"], "start": 10.5, "end": 20}])
    stream = w.open()
    w.h.run(120)
    # The reset reaches the client at 10.51; it retries every 3 s, refused while the
    # server is down; the restarted server no longer knows the stream.
    gets = w.sent("request")
    assert list(gets.outcome) == ["delivered"] + ["unavailable"] * 3 + ["delivered"]
    assert list(gets.sent_at) == pytest.approx([0, 13.51, 16.53, 19.55, 22.57])
    assert w.results == [("error", 404, "no such stream on connect #5: failed for good")]
    assert w.ids == list(range(1, 11))
    assert stream.status == 404
    server = w.h.spans.set_index("kind").loc["server"]
    assert (server.outcome, server.error) == ("error", "crashed while serving")


def test_without_a_reset_the_client_notices_a_crash_by_its_read_timeout():
    settings = SseSettings(crash_resets=False, backoff="exponential")
    w = World(settings=settings, faults=[{"kind": "crash", "targets": ["s"], "start": 10.5}])
    stream = w.open()
    w.h.run(200)
    # Last byte at 10.02, silence for 30 s, then 3 s; refusals double the wait.
    assert w.sent("request").sent_at.iloc[1] == pytest.approx(10.02 + 30 + 3)
    assert stream.delays[:6] == [3.0, 6.0, 12.0, 24.0, 48.0, 60.0]
    assert w.results == []  # still reconnecting when the run ends
    assert w.h.spans.set_index("kind").loc["client", "outcome"] == "open"


def test_more_than_a_thousand_refused_reconnects_keep_the_capped_delay():
    # retry * 2 ** 1024 overflows a float: it raised OverflowError mid-run before.
    settings = SseSettings(crash_resets=False, backoff="exponential", backoff_cap=0.01)
    w = World(settings=settings, faults=[{"kind": "crash", "targets": ["s"], "start": 10.5}])
    stream = w.open()
    w.h.run(90)
    assert len(stream.delays) > 1100 and max(stream.delays) == 3.0
    assert stream.delays[-1] == 0.01
    assert w.h.spans.set_index("kind").loc["client", "outcome"] == "open"


def test_a_client_crash_ends_its_call_and_the_server_stops_sending():
    w = World(faults=[{"kind": "crash", "targets": ["c"], "start": 10.5, "end": 15}])
    w.open()
    w.h.run(120)
    spans = w.h.spans.set_index("kind")
    assert (spans.loc["client", "outcome"], spans.loc["client", "error"]) == (
        "error",
        "caller crashed",
    )
    assert w.results == []  # nobody is told: the caller is gone
    # The client's kernel reset reached the server at 10.51: nothing was sent after it,
    # and the job went on to its end.
    from_server = w.h.messages[w.h.messages.src == "s"]
    assert from_server.sent_at.max() == pytest.approx(10.01)
    assert spans.loc["server", "outcome"] == "ok"


def test_a_client_crash_without_reset_is_noticed_by_the_servers_failed_send():
    settings = SseSettings(crash_resets=False)
    w = World(settings=settings, faults=[{"kind": "crash", "targets": ["c"], "start": 10.5}])
    w.open()
    w.h.run(120)
    from_server = w.h.messages[w.h.messages.src == "s"]
    # The event sent at 11.01 was refused; the server stopped at once.
    assert list(from_server.outcome.tail(1)) == ["unavailable"]
    assert from_server.sent_at.max() == pytest.approx(11.01)


def test_a_call_that_times_out_hangs_up_and_the_server_stops_sending():
    w = World()
    w.open(timeout=10.0)
    w.h.run(120)
    assert w.results == [("timeout", 0, "no response within 10 s")]
    assert list(w.sent("control", src="c").type) == ["sse.close"]
    assert w.h.messages[w.h.messages.src == "s"].sent_at.max() == pytest.approx(10.01)


def test_a_paused_client_reads_what_arrived_and_keeps_its_connection():
    w = World(faults=[{"kind": "pause", "targets": ["c"], "start": 10.5, "end": 50}])
    stream = w.open()
    w.h.run(120)
    assert stream.connections == 1  # 39.5 s of pause is not 39.5 s of silence
    assert w.ids == list(range(1, 61))


def test_a_server_stall_longer_than_the_read_timeout_makes_the_client_reconnect():
    w = World(faults=[{"kind": "pause", "targets": ["s"], "start": 10.5, "end": 50}])
    stream = w.open()
    w.h.run(150)
    assert stream.connections == 2
    assert w.sent("request").sent_at.iloc[1] == pytest.approx(10.02 + 30 + 3)
    # Ticks are held by the stall and resume a second apart from its end (50, 51, ...),
    # so the job, done at 99.51, emits one more progress event than without it.
    assert w.ids == list(range(1, 62)) and w.events[-1][2] == FINAL
    assert w.results == [("ok", 200, "")]


def test_a_lost_first_get_is_sent_again_and_starts_the_stream():
    w = World(faults=[{**PARTITION, "start": 0, "end": 5}])
    stream = w.open(size_bytes=2000)
    w.h.run(150)
    # The server never saw the first GET: after 30 s of silence and 3 s the client asks
    # again for the stream from the start, payload and all, and the server starts it.
    gets = w.sent("request")
    assert list(gets.outcome) == ["partitioned", "delivered"]
    assert list(gets.size_bytes) == [2000, 2000]
    server = w.h.spans.set_index("kind").loc["server"]
    assert server.start == pytest.approx(33.01)
    assert w.ids == list(range(1, 61)) and stream.connections == 2


def faulty(seed: int) -> World:
    """Random latency (reordering), duplicates and loss on every message."""
    network = {
        "default": {
            "latency": {"dist": "normal", "mean": 0.05, "sd": 0.03},
            "duplicate": 0.2,
            "loss": 0.03,
        }
    }
    return World(seed=seed, network=network)


def test_loss_duplicates_and_reordering_still_give_every_event_once_in_order():
    w = faulty(seed=3)
    stream = w.open()
    w.h.run(400)
    assert w.ids == list(range(1, 61))
    assert stream.connections > 2 and stream.lost_events == 0
    assert (w.h.messages.duplicate & (w.h.messages.kind == "event")).any()
    assert w.results == [("ok", 200, "")]


@pytest.mark.parametrize("seed", range(1, 9))
def test_streams_survive_heavy_loss_partitions_and_stalls(seed):
    network = {
        "default": {
            "latency": {"dist": "normal", "mean": 0.05, "sd": 0.04},
            "duplicate": 0.2,
            "loss": 0.1,
        }
    }
    stall = {"kind": "pause", "targets": ["s" if seed % 2 else "c"], "start": 40, "end": 80}
    w = World(seed=seed, network=network, faults=[PARTITION, stall])
    streams = [w.open() for _ in range(4)]
    w.h.run(900)
    assert [s.call.result for s in streams] == [("ok", 200, "")] * 4
    for s in streams:
        ids = w.ids_of[s.key]
        assert ids == list(range(1, len(ids) + 1)) and s.lost_events == 0


def test_a_faulty_run_is_deterministic():
    tables = []
    for _ in range(2):
        w = faulty(seed=5)
        w.open()
        w.h.run(400)
        tables.append(w.h.messages.drop(columns=["msg_id"]))
    assert tables[0].equals(tables[1])


def test_the_settings_have_the_real_defaults_and_refuse_unknown_fields():
    s = SseSettings()
    assert (s.retry, s.keepalive, s.read_limit(), s.stall_timeout) == (3.0, 15.0, 30.0, 1.0)
    assert SseSettings(keepalive=5).read_limit() == 10
    assert math.isclose(SseSettings(read_timeout=45).read_limit(), 45)
    with pytest.raises(ValidationError):
        SseSettings(retry_ms=3000)
