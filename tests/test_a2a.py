"""A2A over the harness: the task lifecycle, the four modes, resubscribe, push, cancel.

The server's every task works `work` seconds and emits an artifact chunk every
`chunk_interval` (10 s): a 60 s task started at 0 over a 10 ms link makes chunks at
10..50 s and its last one with its completion at 60.03 s, six chunks in all.
"""

from __future__ import annotations

import pytest

from protocols.a2a import A2aClient, A2aEndpoint, A2aServer, A2aSettings, InvalidTransition
from protocols.a2a import lifecycle as lc
from protocols.workers import Job
from tests.harness import Harness


class World:
    """A client `c` and an A2A agent `s` whose every task takes `work` seconds."""

    def __init__(
        self,
        work: float = 60.0,
        faults: list[dict] = (),
        answer: float = 5.0,
        auth: tuple[float, bool] | None = None,
        **settings,
    ) -> None:
        self.h = Harness(["c", "s"], latency=0.01)
        for fault in faults:
            self.h.fault(fault)
        self.settings = A2aSettings(**settings)
        node = self.h.node("s")

        def handler(job: Job) -> None:
            node.after_work(work, lambda: job.reply(200))

        self.server = A2aServer(node, 4, handler, None, self.settings)
        A2aEndpoint(node, self.server)
        c = self.h.node("c")
        client = A2aClient(c, self.settings, lambda _: answer, (lambda _: auth) if auth else None)
        self.client = A2aEndpoint(c, client=client).client
        self.results: list[tuple] = []

    def call(self, timeout: float = 300.0):
        return self.client.call("s", "task.run", "r1", timeout=timeout, on_done=self.results.append)

    def run(self, until: float = 400.0) -> None:
        self.h.run(until)

    @property
    def tasks(self):
        return self.h.tables["tasks"]

    def transitions(self) -> list[tuple[str, str]]:
        return list(zip(self.tasks.from_state, self.tasks.to_state, strict=True))

    def span(self, name: str = "task.run", kind: str = "client"):
        spans = self.h.spans
        return spans[(spans.name == name) & (spans.kind == kind)].iloc[0]


# -- the state machine ------------------------------------------------------------------

ALLOWED = [
    ("", lc.SUBMITTED), ("", lc.WORKING), ("", lc.REJECTED), ("", lc.COMPLETED),
    (lc.SUBMITTED, lc.WORKING), (lc.SUBMITTED, lc.CANCELED), (lc.SUBMITTED, lc.REJECTED),
    (lc.SUBMITTED, lc.FAILED), (lc.WORKING, lc.INPUT_REQUIRED), (lc.WORKING, lc.AUTH_REQUIRED),
    (lc.WORKING, lc.COMPLETED), (lc.WORKING, lc.FAILED), (lc.WORKING, lc.CANCELED),
    (lc.WORKING, lc.REJECTED), (lc.INPUT_REQUIRED, lc.WORKING), (lc.INPUT_REQUIRED, lc.CANCELED),
    (lc.AUTH_REQUIRED, lc.WORKING), (lc.AUTH_REQUIRED, lc.FAILED),
]  # fmt: skip
REFUSED = [
    ("", lc.INPUT_REQUIRED), (lc.SUBMITTED, lc.INPUT_REQUIRED), (lc.SUBMITTED, lc.COMPLETED),
    (lc.WORKING, lc.SUBMITTED), (lc.INPUT_REQUIRED, lc.AUTH_REQUIRED),
    *[(end, to) for end in sorted(lc.TERMINAL) for to in lc.STATES],
]  # fmt: skip


@pytest.mark.parametrize(("src", "dst"), ALLOWED)
def test_the_lifecycle_allows_the_transitions_of_its_table(src: str, dst: str) -> None:
    assert lc.allowed(src, dst)
    lc.check(src, dst)


@pytest.mark.parametrize(("src", "dst"), REFUSED)
def test_the_lifecycle_refuses_the_rest_and_never_leaves_a_terminal_state(
    src: str, dst: str
) -> None:
    assert not lc.allowed(src, dst)
    with pytest.raises(InvalidTransition):
        lc.check(src, dst)


def test_eight_states_four_terminal_two_interrupted() -> None:
    assert len(lc.STATES) == 8
    assert {"completed", "failed", "canceled", "rejected"} == lc.TERMINAL
    assert {"input-required", "auth-required"} == lc.INTERRUPTED
    assert all(lc.closes_stream(s) for s in lc.TERMINAL | lc.INTERRUPTED)
    assert not lc.closes_stream(lc.WORKING)


def test_the_server_refuses_to_move_a_terminal_task() -> None:
    w = World(work=5.0)
    w.call()
    w.run(20)
    task = next(iter(w.server.tasks.values()))
    assert task.state == lc.COMPLETED
    with pytest.raises(InvalidTransition, match="terminal"):
        w.server.transition(task, lc.WORKING, "again")
    assert len(w.tasks) == 3  # nothing recorded for the refused one


# -- the modes ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["blocking", "streaming", "polling", "push"])
def test_every_mode_follows_a_task_to_completion_with_its_whole_artifact(mode: str) -> None:
    w = World(mode=mode)
    w.call()
    w.run()
    assert w.results == [("ok", 200, "")]
    assert w.transitions() == [
        ("", "submitted"),
        ("submitted", "working"),
        ("working", "completed"),
    ]
    assert set(w.tasks.agent) == {"s"}
    client = w.span()
    assert (client.outcome, client.lost_events) == ("ok", 0)
    server = w.span(kind="server")
    assert (server.outcome, server.end) == ("ok", pytest.approx(60.03))
    assert set(w.tasks.span_id) == {server.span_id}


def test_polling_asks_every_poll_interval() -> None:
    w = World(mode="polling", poll_interval=5.0)
    w.call()
    w.run()
    m = w.h.messages
    polls = m[(m.kind == "request") & (m.type == "task.run")]
    # The send at 0.01 (after the card), then a GetTask every 5 s until one sees the end.
    assert len(polls) == 1 + 12
    assert w.results == [("ok", 200, "")]


def test_a_stream_carries_the_task_first_then_chunks_with_append_and_last_chunk() -> None:
    w = World(mode="streaming")
    w.call()
    w.run()
    m = w.h.messages
    assert m[m.kind == "response"].type.tolist() == ["a2a.card", "task.run"]  # the 200
    stream = m[(m.kind == "event")]
    assert len(stream) == 1 + 1 + 6 + 1  # the Task, working, 6 chunks, completed
    assert m[m.kind == "control"].type.tolist() == ["a2a.eof"]  # 1.0 closes at terminal


# -- streams that break ------------------------------------------------------------------

CUT = {"kind": "partition", "groups": [["c"], ["s"]], "start": 25, "end": 32}


def test_a_stream_cut_mid_task_then_subscribed_again_ends_with_every_chunk_exactly_once() -> None:
    # The chunk at 30 s is lost in the partition; the one at 40 s shows the hole, which
    # breaks the stream at 41 s; SubscribeToTask at 42 s gets the Task (chunks 0..3)
    # first, then chunks 4 and 5 live.
    w = World(mode="streaming", faults=[CUT])
    w.call()
    w.run()
    assert w.results == [("ok", 200, "")]
    client = w.span()
    assert (client.outcome, client.lost_events, client.attempts) == ("ok", 0, 2)
    m = w.h.messages
    assert (m[m.kind == "event"].outcome == "partitioned").sum() == 1
    subscribes = m[(m.kind == "request") & (m.type == "task.run")]
    assert subscribes.sent_at.tolist() == pytest.approx([0.02, 42.04])  # after the card


def test_version_0_3_resubscribe_sends_no_snapshot_so_the_missed_chunks_are_lost() -> None:
    w = World(mode="streaming", version="0.3", faults=[CUT])
    w.call()
    w.run()
    client = w.span()
    # Chunks 2 (lost at 30 s) and 3 (held behind the hole at 40 s) never reach the client.
    assert (client.outcome, client.lost_events) == ("partial", 2)
    assert "2 chunk(s) missing" in client.error


def test_a_proxy_cuts_an_idle_stream_and_the_client_subscribes_again() -> None:
    w = World(mode="streaming", work=100.0, chunk_interval=30.0, proxy_idle_timeout=25.0)
    w.call()
    w.run()
    assert w.results == [("ok", 200, "")]
    m = w.h.messages
    cuts = m[m.type == "a2a.cut"]
    assert cuts.sent_at.tolist() == pytest.approx([25.03, 55.03, 85.03])
    assert (w.span().attempts, w.span().lost_events) == (4, 0)


def test_a_proxy_cut_ends_a_blocking_send_with_504_while_the_task_goes_on() -> None:
    w = World(mode="blocking", proxy_idle_timeout=60.0, work=100.0)
    w.call()
    w.run()
    assert w.results[0][:2] == ("error", 504)
    assert "proxy" in w.results[0][2]
    # Nobody follows the task any more, but it completes on the server.
    assert w.transitions()[-1] == ("working", "completed")


# -- push --------------------------------------------------------------------------------

WEBHOOK_DOWN = {"kind": "partition", "groups": [["c"], ["s"]], "start": 55, "end": 80}


def test_push_with_retries_is_delivered_after_the_webhook_comes_back() -> None:
    # The completion's POST at 60 s and its retries at 66 and 73 s time out in the
    # partition (5 s each, backoff 1, 2, 4 s); the one at 82 s gets its 200.
    w = World(mode="push", push_retries=3, faults=[WEBHOOK_DOWN])
    w.call()
    w.run()
    push = w.span("a2a.push")
    assert (push.outcome, push.attempts) == ("ok", 4)
    m = w.h.messages
    posts = m[(m.type == "a2a.push") & (m.kind == "request")]
    assert posts.sent_at.tolist() == pytest.approx([60.03, 66.03, 73.03, 82.03])
    assert w.results == [("ok", 200, "")]


def test_push_without_retries_is_reported_lost_and_the_client_never_hears() -> None:
    w = World(mode="push", faults=[WEBHOOK_DOWN])
    w.call(timeout=200)
    w.run()
    push = w.span("a2a.push")
    assert (push.outcome, push.attempts) == ("error", 1)
    assert push.error.startswith("push lost")
    assert w.results == [("timeout", 0, "no response within 200 s")]


# -- input-required, cancel, errors -------------------------------------------------------


@pytest.mark.parametrize("mode", ["blocking", "streaming", "polling", "push"])
def test_input_required_is_answered_after_the_delay_and_the_task_resumes(mode: str) -> None:
    w = World(mode=mode, input_required=1.0, answer=30.0, poll_interval=5.0)
    w.call()
    w.run()
    assert w.results == [("ok", 200, "")]
    assert w.transitions() == [
        ("", "submitted"), ("submitted", "working"), ("working", "input-required"),
        ("input-required", "working"), ("working", "completed"),
    ]  # fmt: skip
    asked, resumed = w.tasks.time.iloc[2], w.tasks.time.iloc[3]
    assert resumed - asked >= 30.0
    assert w.span().lost_events == 0


@pytest.mark.parametrize("mode", ["blocking", "streaming", "polling", "push"])
def test_auth_required_is_supplied_after_the_auth_delay_and_the_task_resumes(mode: str) -> None:
    w = World(mode=mode, auth_required=1.0, auth=(20.0, True), poll_interval=5.0)
    w.call()
    w.run()
    assert w.results == [("ok", 200, "")]
    assert w.transitions() == [
        ("", "submitted"), ("submitted", "working"), ("working", "auth-required"),
        ("auth-required", "working"), ("working", "completed"),
    ]  # fmt: skip
    asked, resumed = w.tasks.time.iloc[2], w.tasks.time.iloc[3]
    assert resumed - asked >= 20.0
    assert w.tasks.reason.iloc[2] == "the task needs the client's credentials"
    assert w.span().lost_events == 0


def test_a_stream_closes_at_auth_required_and_the_credentials_open_another() -> None:
    w = World(mode="streaming", auth_required=1.0, auth=(20.0, True))
    w.call()
    w.run()
    m = w.h.messages
    # 1.0 closes a stream at an interrupted state: one end at auth-required, one at the end.
    assert m[m.kind == "control"].type.tolist() == ["a2a.eof", "a2a.eof"]
    sends = m[(m.kind == "request") & (m.type == "task.run")]
    # SendStreamingMessage after the card, then again on the task once authorized.
    asked = w.tasks.time.iloc[2]
    assert sends.sent_at.tolist() == pytest.approx([0.02, asked + 0.01 + 20.0])
    assert w.results == [("ok", 200, "")]


@pytest.mark.parametrize("mode", ["blocking", "streaming", "polling", "push"])
def test_credentials_declined_end_the_task_rejected(mode: str) -> None:
    w = World(mode=mode, auth_required=1.0, auth=(20.0, False), poll_interval=5.0)
    w.call()
    w.run()
    assert w.transitions()[-2:] == [("working", "auth-required"), ("auth-required", "rejected")]
    assert w.tasks.reason.iloc[-1] == "the client declined: no credentials"
    assert w.results == [("rejected", 503, "the client declined: no credentials")]
    assert w.span(kind="server").outcome == "rejected"


def test_credentials_never_supplied_fail_the_task_at_the_agents_auth_timeout() -> None:
    w = World(mode="polling", auth_required=1.0, auth=(1000.0, True), auth_timeout=100.0)
    w.call(timeout=300)
    w.run()
    assert w.transitions()[-2:] == [("working", "auth-required"), ("auth-required", "failed")]
    failed_at = w.tasks.time.iloc[-1] - w.tasks.time.iloc[-2]
    assert failed_at == pytest.approx(100.0)
    assert w.results == [("error", 500, "no credentials within 100 s")]
    assert w.span(kind="server").outcome == "error"


def test_cancel_ends_the_task_canceled_and_a_second_cancel_is_refused() -> None:
    w = World(mode="streaming")
    call = w.call()
    w.h.env.run(until=20)
    call.end(("cancelled", 0, "the caller cancelled it"))
    w.client.cancel("s", call.key, "r1")
    w.h.env.run(until=21)
    w.client.cancel("s", call.key, "r1")  # forgotten: nothing sent
    assert w.transitions()[-1] == ("working", "canceled")
    assert w.span(kind="server").outcome == "cancelled"
    task = next(iter(w.server.tasks.values()))
    from protocols.a2a.wire import CANCEL, TASK_NOT_CANCELABLE, Rpc
    from protocols.transport import Message

    replies = []
    w.server._answer = lambda msg, reply: replies.append(reply)
    w.server.on_request(Message("x", "task.run", "c", "s", body=Rpc(CANCEL, task.id)))
    assert replies[0].code == TASK_NOT_CANCELABLE


def test_a_mode_the_agent_card_lacks_is_refused_with_unsupported_operation() -> None:
    w = World(mode="push", push_notifications=False)
    w.call()
    w.run(10)
    assert w.results[0][0] == "error"
    assert "UnsupportedOperationError" in w.results[0][2]
    assert w.tasks.empty
