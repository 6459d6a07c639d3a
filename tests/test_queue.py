"""Queue messaging over the harness: at-least-once for real, DLQs, flavours, request-reply.

Each behaviour is shown over a perfect network and under faults. The agents: a broker,
producers (`p`, `p2`) and queue servers (`w`, `w2`) that compete for `svc.requests`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from protocols.queue import Broker, Deduper, Delivery, QueueEndpoint, QueueServer, QueueSettings
from protocols.workers import Job
from tests.harness import Harness

AGENTS = ["broker", "p", "p2", "w", "w2"]
QUEUE = "svc.requests"


def world(
    latency: float = 0.01, seed: int = 1, faults: list[dict[str, Any]] = (), **knobs: Any
) -> tuple[Harness, QueueSettings, Broker]:
    """A harness with a broker whose settings are `knobs`, and the given faults."""
    h = Harness(AGENTS, latency=latency, seed=seed)
    settings = QueueSettings(**knobs)
    broker = Broker(h.node("broker"), settings)
    for fault in faults:
        h.fault(fault)
    return h, settings, broker


def serve(
    h: Harness,
    settings: QueueSettings,
    agent: str = "w",
    work: float | Callable[[Job], float] = 0.5,
    fail: Callable[[Job], bool] = lambda job: False,
    workers: int = 1,
    dedupe: bool = False,
    prefetch: int | None = None,
) -> QueueServer:
    """A queue server on `agent` for `svc.requests`; its work takes `work` seconds."""
    node = h.node(agent)

    def handler(job: Job) -> None:
        seconds = work(job) if callable(work) else work
        node.after_work(seconds, lambda: job.reply(500 if fail(job) else 200))

    return QueueServer(
        QueueEndpoint(node, settings),
        workers,
        handler,
        queue=QUEUE,
        prefetch=prefetch,
        dedupe=Deduper(h.env, 300.0) if dedupe else None,
    )


def at(h: Harness, t: float, action: Callable[[], Any]) -> None:
    """Do `action` at simulated time `t`."""
    h.env.timeout(t).callbacks.append(lambda _event: action())


def deliveries(h: Harness, msg_id: str) -> pd.DataFrame:
    """The deliver rows of one message (not the network's duplicates)."""
    m = h.messages
    return m[(m.kind == "deliver") & (m.msg_id == msg_id) & ~m.duplicate]


def assert_totals_exact(queues: pd.DataFrame) -> None:
    """At every sample: enqueued == acked + dead_lettered + depth + in_flight."""
    assert len(queues) > 0
    held = queues.acked + queues.dead_lettered + queues.depth + queues.in_flight
    assert (queues.enqueued == held).all()


def is_poison(job: Job) -> bool:
    """The handler fails on this message every time."""
    return job.msg.body == "poison"


PERFECT: list[dict[str, Any]] = []
LOSSY = [{"kind": "loss", "targets": ["w", "w2"], "probability": 0.1, "start": 0}]
SLOW_LINK = [
    {"kind": "latency", "targets": ["w"], "start": 0, "add": {"dist": "constant", "value": 0.05}}
]


# -- request-reply ---------------------------------------------------------------------


@pytest.mark.parametrize("faults", [PERFECT, LOSSY], ids=["perfect", "lossy"])
def test_request_reply_matches_replies_and_the_caller_never_blocks(faults):
    h, s, _ = world(faults=faults, visibility_timeout=5.0)
    server = serve(h, s, work=0.2, workers=4, dedupe=True)
    serve(h, s, agent="w2", work=0.2, workers=4, dedupe=True).dedupe = server.dedupe
    caller = QueueEndpoint(h.node("p"), s)
    results: dict[int, tuple] = {}
    # Forty calls at the same instant: issuing them does not wait for any reply.
    calls = [
        caller.client.call(
            "svc", "task", f"t-{i}", timeout=60, on_done=lambda r, i=i: results.update({i: r})
        )
        for i in range(40)
    ]
    assert len(caller.client.pending) == 40 and not results
    h.run(80)
    assert [call.result for call in calls] == [("ok", 200, "")] * 40
    spans = h.spans
    producers = spans[spans.kind == "producer"]
    assert len(producers) == 40 and (producers.outcome == "ok").all()
    assert (producers.start == 0).all()
    consumers = spans[spans.kind == "consumer"]
    # Every handler's span names its call's span as its parent: one trace per call.
    assert set(consumers.parent_id) <= set(producers.span_id)
    m = h.messages
    assert set(m.protocol) == {"queue"}
    assert set(m.kind) <= {"publish", "ack", "nack", "deliver", "control"}


@pytest.mark.parametrize("faults", [PERFECT, LOSSY], ids=["perfect", "lossy"])
def test_late_replies_are_ignored(faults):
    h, s, _ = world(faults=faults)
    server = serve(h, s, work=3.0)
    caller = QueueEndpoint(h.node("p"), s)
    results = []
    caller.client.call("svc", "task", "t-1", timeout=1.0, on_done=results.append)
    h.run(60)
    assert results == [("timeout", 0, "no response within 1 s")]
    assert caller.client.late_replies >= 1
    assert sum(server.effects.values()) >= 1
    # The reply crossed the broker and was acked by the caller all the same.
    replies = h.tables["queues"].query("queue == 'p.replies'").iloc[-1]
    assert replies.acked >= 1 and replies.depth == 0 and replies.in_flight == 0


# -- duplicates and idempotent receivers ------------------------------------------------


DUPLICATING = [{"kind": "duplicate", "targets": AGENTS, "probability": 0.3, "start": 0}]


@pytest.mark.parametrize("dedupe", [True, False], ids=["idempotent", "plain"])
def test_duplicates_apply_once_only_behind_a_deduper(dedupe):
    h, s, _ = world(faults=DUPLICATING)
    server = serve(h, s, work=0.05, workers=2, dedupe=dedupe)
    producer = QueueEndpoint(h.node("p"), s)
    for i in range(60):
        at(h, i * 0.5, lambda i=i: producer.publisher.publish(QUEUE, "task", i))
    h.run(120)
    assert h.messages.duplicate.any()
    assert len(server.effects) == 60  # every message had its effect
    twice = [key for key, n in server.effects.items() if n > 1]
    if dedupe:
        assert not twice
        assert server.duplicates > 0  # duplicates came, were acked, and did nothing
    else:
        assert twice


def test_without_duplicates_each_message_applies_once():
    h, s, _ = world()
    server = serve(h, s, work=0.05)
    producer = QueueEndpoint(h.node("p"), s)
    for i in range(20):
        producer.publisher.publish(QUEUE, "task", i)
    h.run(30)
    assert list(server.effects.values()) == [1] * 20 and server.duplicates == 0


def test_a_dedupe_key_is_forgotten_after_its_ttl():
    h = Harness(["a"])
    dedupe = Deduper(h.env, ttl=10.0)
    assert dedupe.record("k", 200) and not dedupe.record("k", 200)
    assert dedupe.result("k") == 200
    h.run(10.0)
    assert not dedupe.seen("k") and len(dedupe) == 0 and dedupe.record("k", 201)


def test_idempotent_settings_give_a_server_its_deduper():
    h, s, _ = world(faults=DUPLICATING, idempotent=True, dedupe_ttl=60.0)
    server = serve(h, s, work=0.05, workers=2)
    assert server.dedupe is not None and server.dedupe.ttl == 60.0
    producer = QueueEndpoint(h.node("p"), s)
    for i in range(30):
        producer.publisher.publish(QUEUE, "task", i)
    h.run(30)
    assert list(server.effects.values()) == [1] * 30 and server.duplicates > 0


# -- redelivery: a crash, slow work, a lost ack -------------------------------------------


@pytest.mark.parametrize("restart", [True, False], ids=["restarts", "stays-down"])
def test_a_consumer_crash_mid_work_is_redelivered_after_the_visibility_timeout(restart):
    faults = [{"kind": "crash", "targets": ["w"], "start": 1.0, "end": 3.0 if restart else 100}]
    h, s, broker = world(faults=faults)
    w = serve(h, s, work=5.0, dedupe=True)
    # w2 joins late, so the first delivery goes to w; both use one dedupe store.
    late = {}

    def join() -> None:
        late["w2"] = serve(h, s, agent="w2", work=5.0)
        late["w2"].dedupe = w.dedupe

    at(h, 0.5, join)
    producer = QueueEndpoint(h.node("p"), s)
    msg_id = producer.publisher.publish(QUEUE, "task", "job")
    h.run(60)
    rows = deliveries(h, msg_id)
    assert list(rows.attempt) == [1, 2]
    assert rows.dst.iloc[0] == "w"
    # Redelivered when the visibility timeout (30 s, SQS's default) ran out.
    assert rows.sent_at.iloc[1] == pytest.approx(rows.sent_at.iloc[0] + 30.0)
    effects = sum(srv.effects.get(msg_id, 0) for srv in (w, late["w2"]))
    assert effects == 1
    spans = h.spans[h.spans.kind == "consumer"]
    assert list(spans.outcome) == ["error", "ok"] and list(spans.attempts) == [1, 2]
    assert spans.error.iloc[0] == "crashed while serving"
    assert_totals_exact(h.tables["queues"])
    assert broker.queues[QUEUE].acked == 1


@pytest.mark.parametrize("faults", [PERFECT, SLOW_LINK], ids=["perfect", "slow-link"])
@pytest.mark.parametrize("dedupe", [True, False], ids=["idempotent", "plain"])
def test_a_visibility_timeout_during_slow_work_redelivers(dedupe, faults):
    h, s, _ = world(faults=faults, visibility_timeout=10.0)
    # The first delivery takes 15 s, longer than the 10 s visibility; the next one 1 s.
    server = serve(
        h, s, work=lambda job: 15.0 if job.msg.attempt == 1 else 1.0, workers=2, dedupe=dedupe
    )
    producer = QueueEndpoint(h.node("p"), s)
    msg_id = producer.publisher.publish(QUEUE, "task", "slow")
    h.run(40)
    assert list(deliveries(h, msg_id).attempt) == [1, 2]
    assert server.effects[msg_id] == (1 if dedupe else 2)
    # The slow copy's ack came with a stale tag and changed nothing.
    q = h.tables["queues"].query(f"queue == '{QUEUE}'").iloc[-1]
    assert (q.enqueued, q.acked, q.redelivered, q.depth, q.in_flight) == (1, 1, 1, 0, 0)


@pytest.mark.parametrize("latency", [0.01, 0.2], ids=["fast", "slow-network"])
def test_a_lost_ack_redelivers(latency):
    # Everything from w to the broker is lost for a while: the ack at ~1 s goes with it.
    loss = {
        "kind": "loss",
        "groups": [["w"], ["broker"]],
        "direction": "one-way",
        "probability": 1.0,
        "start": 0.5,
        "end": 2.0 + 2 * latency,
    }
    h, s, broker = world(latency=latency, faults=[loss])
    server = serve(h, s, work=1.0, dedupe=True)
    caller = QueueEndpoint(h.node("p"), s)
    results = []
    call = caller.client.call("svc", "task", "t-1", timeout=100, on_done=results.append)
    h.run(60)
    acks = h.messages[(h.messages.kind == "ack") & (h.messages.src == "w")]
    assert "dropped" in set(acks.outcome)
    assert list(deliveries(h, call.key).attempt) == [1, 2]
    assert server.effects == {call.key: 1} and server.duplicates == 1
    assert results == [("ok", 200, "")]  # the second reply is a late one, ignored
    assert caller.client.late_replies == 1
    assert broker.queues[QUEUE].acked == 1


# -- poison messages -----------------------------------------------------------------------


@pytest.mark.parametrize("faults", [PERFECT, LOSSY], ids=["perfect", "lossy"])
def test_a_poison_message_is_delivered_max_times_then_parks_in_the_dlq(faults):
    h, s, broker = world(faults=faults, visibility_timeout=5.0, max_deliveries=3)
    server = serve(h, s, work=0.1, fail=is_poison, workers=2, dedupe=True)
    producer = QueueEndpoint(h.node("p"), s)
    poison = producer.publisher.publish(QUEUE, "task", "poison")
    ids = [producer.publisher.publish(QUEUE, "task", i) for i in range(10)]
    for i in range(10, 20):
        at(h, 2.0 * i, lambda i=i: ids.append(producer.publisher.publish(QUEUE, "task", i)))
    h.run(120)
    assert list(deliveries(h, poison).attempt) == [1, 2, 3]
    [letter] = broker.dead_letters
    assert (letter.msg_id, letter.queue, letter.dlq, letter.deliveries) == (
        poison,
        QUEUE,
        QUEUE + ".dlq",
        3,
    )
    assert "maxReceiveCount 3" in letter.reason
    assert [m.msg_id for m in broker.dlq_messages(QUEUE)] == [poison]
    # The others kept flowing around it, each applied once.
    assert [server.effects.get(i) for i in ids] == [1] * 20
    queues = h.tables["queues"]
    assert_totals_exact(queues)
    last = queues.query(f"queue == '{QUEUE}'").iloc[-1]
    assert (last.dead_lettered, last.dlq_depth) == (1, 1)
    dead = h.spans[h.spans.kind == "dead_letter"]
    assert len(dead) == 1 and dead.attempts.iloc[0] == 3


def test_without_a_dlq_a_poison_message_is_redelivered_until_the_run_ends():
    h, s, broker = world(visibility_timeout=5.0)  # sqs: no redrive policy by default
    server = serve(h, s, work=0.1, fail=is_poison)
    producer = QueueEndpoint(h.node("p"), s)
    poison = producer.publisher.publish(QUEUE, "task", "poison")
    for i in range(10):
        at(h, 10.0 * i, lambda i=i: producer.publisher.publish(QUEUE, "task", i))
    h.run(100)
    attempts = list(deliveries(h, poison).attempt)
    assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) >= 18
    assert broker.dead_letters == [] and broker.dlq_messages(QUEUE) == []
    assert len(server.effects) == 10
    last = h.tables["queues"].query(f"queue == '{QUEUE}'").iloc[-1]
    assert last.depth + last.in_flight == 1 and last.redelivered == len(attempts) - 1


def test_the_dlq_can_be_redriven_later_in_the_run():
    h, s, broker = world(visibility_timeout=5.0, max_deliveries=2)
    fixed = {"now": False}
    server = serve(h, s, work=0.1, fail=lambda job: is_poison(job) and not fixed["now"])
    producer = QueueEndpoint(h.node("p"), s)
    poison = producer.publisher.publish(QUEUE, "task", "poison")
    moved = []
    at(h, 30, lambda: (fixed.update(now=True), moved.append(broker.redrive(QUEUE))))
    h.run(40)
    assert moved == [1] and server.effects == {poison: 1}
    assert list(deliveries(h, poison).attempt) == [1, 2, 1]  # its count starts afresh
    assert broker.dlq_messages(QUEUE) == [] and len(broker.dead_letters) == 1
    assert_totals_exact(h.tables["queues"])


def test_a_server_can_send_errors_back_instead_of_redelivering():
    h, s, broker = world(on_error="reply", max_deliveries=3)
    serve(h, s, work=0.1, fail=is_poison)
    caller = QueueEndpoint(h.node("p"), s)
    results = []
    call = caller.client.call("svc", "task", "t-1", 10, body="poison", on_done=results.append)
    h.run(20)
    assert results == [("error", 500, "HTTP 500")]
    assert list(deliveries(h, call.key).attempt) == [1]  # acked: not redelivered
    assert broker.queues[QUEUE].acked == 1 and broker.dead_letters == []


def test_an_unreadable_request_is_rejected_to_the_dlq_with_its_reason():
    h, s, broker = world(max_deliveries=5)
    node = h.node("w")

    def handler(job: Job) -> None:
        if job.msg.body == "garbage":
            server.dead_letter(job, "invalid task.run v1: field 'x' required")
        else:
            node.after_work(0.1, lambda: job.reply(200))

    server = QueueServer(QueueEndpoint(node, s), 1, handler, queue=QUEUE)
    producer = QueueEndpoint(h.node("p"), s)
    bad = producer.publisher.publish(QUEUE, "task.run", "garbage")
    good = producer.publisher.publish(QUEUE, "task.run", "fine")
    h.run(10)
    [letter] = broker.dead_letters
    assert (letter.msg_id, letter.deliveries, letter.dlq) == (bad, 1, QUEUE + ".dlq")
    assert letter.reason == "invalid task.run v1: field 'x' required"
    assert server.effects == {good: 1}
    spans = h.spans[h.spans.kind == "consumer"]
    assert sorted(spans.outcome) == ["ok", "rejected"]


# -- publisher confirms --------------------------------------------------------------------


def test_a_lost_publisher_confirm_publishes_again_a_duplicate():
    lost_confirm = {
        "kind": "loss",
        "groups": [["broker"], ["p"]],
        "direction": "one-way",
        "probability": 1.0,
        "start": 0.0,
        "end": 1.0,
    }
    h, s, broker = world(faults=[lost_confirm])
    server = serve(h, s, work=0.1, dedupe=True)
    producer = QueueEndpoint(h.node("p"), s)
    confirmed = []
    msg_id = producer.publisher.publish(
        QUEUE, "task", "x", on_confirm=lambda ok, why: confirmed.append((ok, h.env.now))
    )
    h.run(20)
    m = h.messages
    publishes = m[(m.kind == "publish") & (m.msg_id == msg_id)]
    assert list(publishes.attempt) == [1, 2]
    assert publishes.sent_at.iloc[1] == pytest.approx(5.0)  # the confirm timeout
    assert confirmed == [(True, pytest.approx(5.02))]
    assert broker.queues[QUEUE].enqueued == 2  # both copies stored: at-least-once
    assert len(deliveries(h, msg_id)) == 2 and server.effects == {msg_id: 1}
    assert producer.publisher.republished == 1


def test_a_down_broker_refuses_publishes_and_keeps_what_it_stored():
    crash = {"kind": "crash", "targets": ["broker"], "start": 1.0, "end": 8.0}
    h, s, broker = world(faults=[crash], visibility_timeout=10.0)
    server = serve(h, s, work=3.0, dedupe=True)
    producer = QueueEndpoint(h.node("p"), s)
    stored = [producer.publisher.publish(QUEUE, "task", i) for i in range(3)]
    failed = []
    at(
        h,
        2.0,
        lambda: producer.publisher.publish(
            QUEUE, "task", "late", on_confirm=lambda ok, why: failed.append((ok, why))
        ),
    )
    h.run(60)
    m = h.messages
    assert "unavailable" in set(m[m.kind == "publish"].outcome)
    # Refused at 2 s; re-sent at 7 s (still down), and again at 12 s: stored then.
    assert failed == [(True, "")]
    # The delivery in flight at the crash came back after its visibility timeout.
    assert list(deliveries(h, stored[0]).attempt) == [1, 2]
    assert len(server.effects) == 4 and set(server.effects.values()) == {1}
    assert_totals_exact(h.tables["queues"])
    assert broker.queues[QUEUE].acked == 4


# -- queue samples ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "faults",
    [
        PERFECT,
        [
            *LOSSY,
            {"kind": "crash", "targets": ["w"], "start": 20, "end": 25},
            {"kind": "pause", "targets": ["broker"], "start": 40, "end": 45},
        ],
    ],
    ids=["perfect", "faulty"],
)
def test_queue_samples_show_depth_over_time_and_exact_totals(faults):
    h, s, broker = world(faults=faults, visibility_timeout=5.0, sample_interval=2.0)
    serve(h, s, work=0.4, workers=1, prefetch=1)
    producer = QueueEndpoint(h.node("p"), s)
    # A burst of 40 at t=10 against one worker: the queue fills, then drains.
    for i in range(40):
        at(h, 10.0, lambda i=i: producer.publisher.publish(QUEUE, "task", i))
    h.run(100)
    queues = h.tables["queues"]
    assert_totals_exact(queues)
    q = queues[queues.queue == QUEUE]
    # A sample every 2 s from the first one after the queue was declared (at 0.01 s).
    assert list(q.time) == [2.0 * i for i in range(1, len(q) + 1)]
    assert q.depth.max() >= 30 and q.depth.iloc[-1] == 0
    # The prefetch limit; plus, under faults, a delivery lost in the crash, until it
    # times out while the restarted consumer takes the next one.
    assert q.in_flight.max() == (1 if not faults else 2)
    last = q.iloc[-1]
    assert last.enqueued == broker.queues[QUEUE].enqueued >= 40
    assert last.acked == last.enqueued
    assert (q.enqueued.diff().dropna() >= 0).all() and (q.acked.diff().dropna() >= 0).all()
    # The time queued in the broker shows as the consumer spans' wait.
    waits = h.spans[(h.spans.kind == "consumer") & (h.spans.outcome == "ok")].wait
    assert waits.max() > 10.0 and waits.min() < 0.1


# -- flavours ------------------------------------------------------------------------------


def test_flavour_defaults():
    sqs, rabbit, redis = (QueueSettings(flavour=f) for f in ("sqs", "rabbitmq", "redis-streams"))
    assert (sqs.visibility_timeout, sqs.max_deliveries, sqs.prefetch) == (30.0, None, 10)
    assert (rabbit.max_deliveries, rabbit.limit_counts, rabbit.dead_letter) == (
        20,
        "failures",
        False,
    )
    assert (rabbit.prefetch, rabbit.visibility_timeout, rabbit.requeue_on_disconnect) == (
        0,
        1800.0,
        True,
    )
    assert (redis.dead_letter_by, redis.resume_pending, redis.max_deliveries) == (
        "consumer",
        True,
        None,
    )
    # An explicit knob wins over the flavour's default.
    assert QueueSettings(flavour="rabbitmq", max_deliveries=5).max_deliveries == 5
    assert QueueSettings(flavour="sqs", max_deliveries=None).max_deliveries is None


@pytest.mark.parametrize("faults", [PERFECT, SLOW_LINK], ids=["perfect", "slow-link"])
def test_sqs_redelivers_an_unacked_message_after_30_s(faults):
    h, s, _ = world(faults=faults, flavour="sqs")
    node = h.node("w")
    seen = []
    # A consumer that never acks: the message comes back every 30 s, for ever.
    QueueEndpoint(node, s).consume(QUEUE, lambda d: seen.append((d.count, h.env.now)))
    msg_id = QueueEndpoint(h.node("p"), s).publisher.publish(QUEUE, "task", "x")
    h.run(100)
    rows = deliveries(h, msg_id)
    assert list(rows.attempt) == [1, 2, 3, 4]
    assert list(rows.sent_at.diff().dropna().round(6)) == [30.0, 30.0, 30.0]
    assert [count for count, _ in seen] == [1, 2, 3, 4]


def test_rabbitmq_drops_a_poison_message_after_20_failed_deliveries():
    h, s, broker = world(flavour="rabbitmq")
    server = serve(h, s, work=0.1, fail=is_poison)
    producer = QueueEndpoint(h.node("p"), s)
    poison = producer.publisher.publish(QUEUE, "task", "poison")
    ok = producer.publisher.publish(QUEUE, "task", "fine")
    h.run(30)
    # Rejected with requeue (immediately redelivered): 20 failed deliveries, then
    # dropped, as no dead-letter exchange is set by default.
    assert list(deliveries(h, poison).attempt) == list(range(1, 21))
    [letter] = broker.dead_letters
    assert letter.dlq == "" and "delivery_limit 20" in letter.reason
    assert broker.dlq_messages(QUEUE) == [] and server.effects == {ok: 1}
    assert_totals_exact(h.tables["queues"])


def test_rabbitmq_nacks_do_not_count_toward_the_delivery_limit():
    h, s, broker = world(flavour="rabbitmq", max_deliveries=3)
    endpoint = QueueEndpoint(h.node("w"), s)
    settled = []

    def on_delivery(d: Delivery) -> None:
        # Released (nack) five times, then acked: never near the limit of 3 failures.
        if d.count <= 5:
            consumer.nack(d)
        else:
            consumer.ack(d)
        settled.append(d.count)

    consumer = endpoint.consume(QUEUE, on_delivery)
    QueueEndpoint(h.node("p"), s).publisher.publish(QUEUE, "task", "x")
    h.run(5)
    assert settled == [1, 2, 3, 4, 5, 6] and broker.dead_letters == []
    assert broker.queues[QUEUE].acked == 1


def test_rabbitmq_requeues_a_lost_consumers_deliveries_when_it_reconnects():
    crash = {"kind": "crash", "targets": ["w"], "start": 1.0, "end": 10.0}
    h, s, _ = world(flavour="rabbitmq", faults=[crash])
    serve(h, s, work=5.0)
    msg_id = QueueEndpoint(h.node("p"), s).publisher.publish(QUEUE, "task", "x")
    h.run(30)
    rows = deliveries(h, msg_id)
    # Not after the 30-minute consumer timeout: when w reconnects with a new session.
    assert list(rows.attempt) == [1, 2]
    assert rows.sent_at.iloc[1] == pytest.approx(10.01)


def test_rabbitmq_requeues_when_heartbeats_stop():
    # w is cut off: after two missed heartbeats (60 s) its delivery goes to w2.
    cut = {"kind": "partition", "targets": ["w"], "start": 1.0, "end": 200}
    h, s, _ = world(flavour="rabbitmq", faults=[cut])
    serve(h, s, work=5.0)
    at(h, 0.5, lambda: serve(h, s, agent="w2", work=5.0))
    msg_id = QueueEndpoint(h.node("p"), s).publisher.publish(QUEUE, "task", "x")
    h.run(120)
    rows = deliveries(h, msg_id)
    assert list(rows.dst) == ["w", "w2"]
    assert 60.0 <= rows.sent_at.iloc[1] <= 61.0


def test_redis_streams_consumer_rereads_its_pending_entries_on_restart():
    crash = {"kind": "crash", "targets": ["w"], "start": 1.0, "end": 10.0}
    h, s, _ = world(flavour="redis-streams", faults=[crash])
    server = serve(h, s, work=5.0)
    msg_id = QueueEndpoint(h.node("p"), s).publisher.publish(QUEUE, "task", "x")
    h.run(30)
    rows = deliveries(h, msg_id)
    # XREADGROUP ... 0 on restart: its own PEL entry again, count + 1, at once.
    assert list(rows.dst) == ["w", "w"] and list(rows.attempt) == [1, 2]
    assert rows.sent_at.iloc[1] == pytest.approx(10.01)
    assert server.effects == {msg_id: 1}


def test_redis_streams_consumer_moves_a_poison_entry_after_n_deliveries():
    h, s, broker = world(flavour="redis-streams", visibility_timeout=5.0, max_deliveries=3)
    server = serve(h, s, work=0.1, fail=is_poison)
    poison = QueueEndpoint(h.node("p"), s).publisher.publish(QUEUE, "task", "poison")
    h.run(40)
    # Claimed a 4th time, the consumer sees 3 deliveries in XPENDING and moves it.
    assert list(deliveries(h, poison).attempt) == [1, 2, 3, 4]
    consumers = h.spans[h.spans.kind == "consumer"]
    assert len(consumers) == 3  # the handler ran 3 times
    [letter] = broker.dead_letters
    assert letter.dlq == QUEUE + ".dlq" and letter.reason == "delivered 3 times (max 3)"
    assert server.consumer.moved == 1 and server.effects == {}


# -- determinism -----------------------------------------------------------------------------


def test_same_seed_same_trace_under_faults():
    def trace(seed: int) -> pd.DataFrame:
        h, s, _ = world(seed=seed, faults=[*LOSSY, *DUPLICATING], visibility_timeout=5.0)
        serve(h, s, work=0.1, workers=2)
        caller = QueueEndpoint(h.node("p"), s)
        for i in range(20):
            at(h, i, lambda i=i: caller.client.call("svc", "task", f"t-{i}", timeout=30))
        h.run(60)
        return h.messages

    pd.testing.assert_frame_equal(trace(3), trace(3))
    assert not trace(3).equals(trace(4))


# -- property: totals and effects under random faults -----------------------------------------


@hyp_settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    flavour=st.sampled_from(["sqs", "rabbitmq", "redis-streams"]),
    max_deliveries=st.one_of(st.none(), st.integers(1, 4)),
    loss=st.floats(0.0, 0.3),
    duplicate=st.floats(0.0, 0.3),
    crash=st.sampled_from([None, "w", "broker"]),
    seed=st.integers(0, 1000),
)
def test_totals_stay_exact_and_effects_once_under_random_faults(
    flavour, max_deliveries, loss, duplicate, crash, seed
):
    faults: list[dict[str, Any]] = [
        {"kind": "loss", "targets": AGENTS, "probability": loss, "start": 0},
        {"kind": "duplicate", "targets": AGENTS, "probability": duplicate, "start": 0},
    ]
    if crash is not None:
        faults.append({"kind": "crash", "targets": [crash], "start": 5.0, "end": 9.0})
    h, s, broker = world(
        seed=seed,
        faults=faults,
        flavour=flavour,
        max_deliveries=max_deliveries,
        visibility_timeout=4.0,
        idempotent=True,
    )
    servers = [serve(h, s, agent, work=0.3, fail=is_poison, workers=2) for agent in ("w", "w2")]
    servers[1].dedupe = servers[0].dedupe  # one dedupe store behind both
    caller = QueueEndpoint(h.node("p"), s)
    for i in range(30):
        body = "poison" if i == 7 else i
        at(
            h,
            0.5 * i,
            lambda i=i, body=body: caller.client.call("svc", "t", f"c{i}", 20, body=body),
        )
    h.run(40)
    assert_totals_exact(h.tables["queues"])
    for queue in broker.queues.values():
        held = queue.acked + queue.dead_lettered + len(queue.ready) + len(queue.in_flight)
        assert queue.enqueued == held
    effects: dict[str, int] = {}
    for server in servers:
        for key, n in server.effects.items():
            effects[key] = effects.get(key, 0) + n
    assert set(effects.values()) <= {1}
