"""Publish-subscribe and ordered queues over the harness (issue 19).

Fan-out to every subscription (once on a perfect network, at least once under loss, dead
letters per subscription), ordering keys and FIFO groups held back by a poison message
while other keys flow, exactly-once delivery against the default, push subscriptions
backing off while their endpoint is down, filters, bindings and the FIFO dedup window.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest

from protocols.queue import Broker, Consumer, Delivery, QueueEndpoint, QueueServer, QueueSettings
from protocols.queue.routing import binding_matches
from protocols.workers import Job
from tests.harness import Harness

AGENTS = ["p", "broker", "a", "b", "c"]


def at(h: Harness, t: float, action: Callable[[], Any]) -> None:
    """Do `action` at simulated time `t`."""
    h.env.timeout(t).callbacks.append(lambda _event: action())


def world(
    queues: dict[str, QueueSettings], faults: tuple[dict[str, Any], ...] = (), seed: int = 1
) -> tuple[Harness, Broker]:
    """A broker whose queues are `queues` (subscriptions where they name a topic)."""
    h = Harness(AGENTS, latency=0.01, seed=seed)
    broker = Broker(h.node("broker"), QueueSettings(flavour="pubsub"), queues=queues)
    for fault in faults:
        h.fault(fault)
    return h, broker


class Subscriber:
    """A consumer of one subscription that records what it got, in order."""

    def __init__(
        self,
        h: Harness,
        agent: str,
        queue: str,
        settings: QueueSettings,
        work: float = 0.2,
        fail: Callable[[Delivery], bool] = lambda d: False,
        workers: int = 4,
    ) -> None:
        self.got: list[tuple[float, Any, int]] = []  # (time, payload, delivery count)
        node = h.node(agent)

        def handler(job: Job) -> None:
            d: Delivery = job.data
            self.got.append((node.env.now, d.payload, d.count))
            node.after_work(work, lambda: job.reply(500 if fail(d) else 200))

        self.server = QueueServer(
            QueueEndpoint(node, settings), workers, handler, queue=queue, settings=settings
        )

    def payloads(self) -> list[Any]:
        """Payloads in the order they were delivered (redeliveries included)."""
        return [payload for _, payload, _ in self.got]


def publisher(h: Harness, settings: QueueSettings) -> QueueEndpoint:
    """The producer's endpoint, on node p."""
    return QueueEndpoint(h.node("p"), settings)


# -- fan-out -------------------------------------------------------------------------------

SUBS = {"a": "orders.a", "b": "orders.b", "c": "orders.c"}


def fan_out_world(
    faults: tuple[dict[str, Any], ...] = (), **knobs: Any
) -> tuple[Harness, Broker, QueueSettings, dict[str, Subscriber]]:
    settings = QueueSettings(flavour="pubsub", topic="orders", **knobs)
    h, broker = world({q: settings for q in SUBS.values()}, faults)
    subs = {
        agent: Subscriber(h, agent, q, settings, fail=lambda d: d.payload == "poison")
        for agent, q in SUBS.items()
    }
    return h, broker, settings, subs


def test_every_subscription_gets_every_message_once_on_a_perfect_network():
    h, broker, settings, subs = fan_out_world()
    producer = publisher(h, settings)
    for i in range(20):
        at(h, 0.5 + 0.1 * i, lambda i=i: producer.publisher.publish("orders", "evt", i, topic=True))
    h.run(60)
    for sub in subs.values():
        assert sub.payloads() == list(range(20))  # each once, in order: nothing redelivered
    for name in SUBS.values():
        q = broker.queues[name]
        assert (q.enqueued, q.acked, q.redelivered, q.held) == (20, 20, 0, 0)
    assert broker.topics["orders"].published == 20


def test_under_loss_each_subscription_gets_each_message_at_least_once_with_its_own_dlq():
    loss = {"kind": "loss", "targets": ["a", "b", "c"], "probability": 0.2, "start": 0}
    h, broker, settings, subs = fan_out_world((loss,), max_deliveries=5)
    producer = publisher(h, settings)
    sent = ["poison", *range(30)]
    for i, payload in enumerate(sent):
        at(
            h,
            0.5 + 0.2 * i,
            lambda p=payload: producer.publisher.publish("orders", "evt", p, topic=True),
        )
    h.run(300)
    redelivered = 0
    for agent, sub in subs.items():
        got = sub.payloads()
        q = broker.queues[SUBS[agent]]
        redelivered += q.redelivered
        # The poison message dead-letters in this subscription's own DLQ (with any copy
        # whose five deliveries the loss all spoiled, a reason kept for each).
        parked = [m.payload for m in broker.dlq_messages(SUBS[agent])]
        assert "poison" in parked and len(parked) <= 2
        assert set(range(30)) <= set(got) | set(parked), agent  # each at least once, or why
        assert len(got) > 30  # some more than once
        assert q.enqueued == q.acked + q.dead_lettered + q.held == 31
    assert redelivered > 0  # the loss shows as redeliveries
    assert {d.queue for d in broker.dead_letters} == set(SUBS.values())
    assert all("max_delivery_attempts 5" in d.reason for d in broker.dead_letters)


def test_a_topic_without_subscriptions_drops_and_a_late_subscription_sees_only_later():
    settings = QueueSettings(flavour="pubsub")
    h, broker = world({})
    producer = publisher(h, settings)
    at(h, 1.0, lambda: producer.publisher.publish("news", "evt", "early", topic=True))
    late = QueueSettings(flavour="pubsub", topic="news")
    got: list[Any] = []

    def on_delivery(d: Delivery) -> None:
        got.append(d.payload)
        consumer.ack(d)

    endpoint = QueueEndpoint(h.node("a"), late)
    consumer = Consumer(endpoint, "news.a", on_delivery, settings=late, topic="news", start=False)
    at(h, 2.0, consumer.start)  # subscribes (and so makes the subscription) at 2 s
    at(h, 3.0, lambda: producer.publisher.publish("news", "evt", "later", topic=True))
    h.run(20)
    assert got == ["later"]
    topic = broker.topics["news"]
    assert (topic.published, topic.dropped, topic.subscriptions) == (2, 1, ["news.a"])


def test_filters_and_bindings_choose_the_subscriptions_that_get_a_copy():
    eu = QueueSettings(flavour="pubsub", topic="orders", filter={"region": "eu"})
    every = QueueSettings(flavour="pubsub", topic="orders")
    h, broker = world({"orders.a": eu, "orders.b": every})
    subs = [Subscriber(h, "a", "orders.a", eu), Subscriber(h, "b", "orders.b", every)]
    producer = publisher(h, every)
    for region in ("eu", "us", "eu"):
        producer.publisher.publish(
            "orders", "evt", region, topic=True, attributes={"region": region}
        )
    h.run(30)
    assert subs[0].payloads() == ["eu", "eu"]
    assert sorted(subs[1].payloads()) == ["eu", "eu", "us"]
    assert broker.topics["orders"].filtered == 1
    assert binding_matches("order.*.eu", "order.created.eu")
    assert binding_matches("order.#", "order") and binding_matches("#.eu", "a.b.eu")
    assert not binding_matches("order.*", "order.created.eu")


def test_a_rabbitmq_topic_exchange_routes_by_binding_key_to_several_queues():
    created = QueueSettings(flavour="rabbitmq", topic="events", binding="order.created")
    orders = QueueSettings(flavour="rabbitmq", topic="events", binding="order.#")
    h = Harness(AGENTS, latency=0.01)
    broker = Broker(h.node("broker"), QueueSettings(flavour="rabbitmq"),
                    queues={"created": created, "all-orders": orders})  # fmt: skip
    subs = [Subscriber(h, "a", "created", created), Subscriber(h, "b", "all-orders", orders)]
    producer = publisher(h, orders)
    for type_ in ("order.created", "order.paid", "user.created"):
        producer.publisher.publish("events", type_, type_, topic=True)
    h.run(30)
    assert subs[0].payloads() == ["order.created"]
    assert subs[1].payloads() == ["order.created", "order.paid"]
    assert broker.topics["events"].filtered == 3  # user.created: nowhere; order.paid: once


# -- ordering ------------------------------------------------------------------------------


def ordered_run(knobs: dict[str, Any]) -> tuple[Subscriber, Broker]:
    """Keys k0..k2, four messages each; the first of k0 is poison (fails every time)."""
    settings = QueueSettings(topic="orders", max_deliveries=5, **knobs)
    h, broker = world({"orders.a": settings})
    sub = Subscriber(h, "a", "orders.a", settings, fail=lambda d: d.payload == ("k0", 0))
    producer = publisher(h, settings)
    for n in range(4):
        for k in range(3):
            key = f"k{k}"
            producer.publisher.publish(
                "orders", "evt", (key, n), topic=True, ordering_key=key,
                msg_id=f"{key}-{n}",
            )  # fmt: skip
    h.run(120)
    return sub, broker


@pytest.mark.parametrize(
    "knobs",
    [
        {"flavour": "pubsub", "ordered": True},
        {"flavour": "sqs", "fifo": True, "visibility_timeout": 5},
    ],
    ids=["pubsub-ordering-keys", "sqs-fifo-groups"],
)
def test_a_poison_message_holds_back_its_key_while_the_other_keys_flow(knobs):
    sub, broker = ordered_run(knobs)
    firsts = {}
    for t, payload, count in sub.got:
        firsts.setdefault(payload, (t, count))
    poison_dead = broker.dead_letters[0].time
    assert [d.msg_id for d in broker.dead_letters] == ["k0-0"]
    # k0's later messages wait until the poison message is dead-lettered...
    assert all(firsts[("k0", n)][0] >= poison_dead for n in (1, 2, 3))
    # ...while k1 and k2 are all done long before.
    assert all(firsts[(k, n)][0] < poison_dead for k in ("k1", "k2") for n in range(4))
    # And each key's messages arrive in publish order.
    for k in ("k0", "k1", "k2"):
        mine = [p[1] for p in sub.payloads() if p[0] == k and p != ("k0", 0)]
        assert mine == sorted(mine)


def test_without_ordering_later_messages_overtake_a_failing_one():
    sub, broker = ordered_run({"flavour": "pubsub"})
    firsts = {}
    for t, payload, _ in sub.got:
        firsts.setdefault(payload, t)
    assert firsts[("k0", 1)] < broker.dead_letters[0].time  # reordered past the poison


def test_a_fifo_queue_drops_a_republished_duplicate_within_the_dedup_window():
    fifo = QueueSettings(flavour="sqs", fifo=True)
    h, broker = world({"q": fifo})
    sub = Subscriber(h, "a", "q", fifo)
    producer = publisher(h, fifo)
    producer.publisher.publish("q", "evt", 1, msg_id="m1")
    at(h, 10, lambda: producer.publisher.publish("q", "evt", 1, msg_id="m1"))  # a re-send
    at(h, 400, lambda: producer.publisher.publish("q", "evt", 1, msg_id="m1"))  # past 5 min
    h.run(420)
    assert sub.payloads() == [1, 1]
    assert broker.queues["q"].deduplicated == 1


# -- exactly-once --------------------------------------------------------------------------


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_exactly_once_never_redelivers_after_a_successful_ack(exactly_once):
    # Half of what a sends the broker is lost: acks included.
    loss = {"kind": "loss", "groups": [["a"], ["broker"]], "direction": "one-way",
            "probability": 0.5, "start": 0}  # fmt: skip
    settings = QueueSettings(flavour="pubsub", topic="orders", exactly_once=exactly_once)
    h, broker = world({"orders.a": settings}, (loss,), seed=3)
    sub = Subscriber(h, "a", "orders.a", settings, work=0.5)
    producer = publisher(h, settings)
    for i in range(40):
        at(h, 0.5 * i, lambda i=i: producer.publisher.publish("orders", "evt", i, topic=True))
    h.run(200)
    handled_twice = len(sub.got) - len({p for _, p, _ in sub.got})
    consumer = sub.server.consumer
    if exactly_once:
        assert handled_twice == 0 and broker.queues["orders.a"].redelivered == 0
        assert consumer.acks_confirmed == 40 and consumer.acks_failed == 0
    else:
        assert handled_twice > 0  # lost acks: acked work delivered again
    assert broker.queues["orders.a"].acked == 40


def test_lease_extension_keeps_slow_work_from_being_redelivered():
    settings = QueueSettings(flavour="pubsub", topic="t")  # ack deadline 10 s, leased
    unleased = settings.model_copy(update={"lease_extension": None})
    results = []
    for s in (settings, unleased):
        h, broker = world({"t.a": s})
        sub = Subscriber(h, "a", "t.a", s, work=35.0)
        publisher(h, s).publisher.publish("t", "evt", "slow", topic=True)
        h.run(100)
        results.append((len(sub.got), broker.queues["t.a"].redelivered))
    assert results[0] == (1, 0)
    assert results[1][0] > 1 and results[1][1] > 0


def test_an_exponential_retry_policy_spaces_redeliveries_out():
    settings = QueueSettings(flavour="pubsub", topic="t", retry="exponential",
                             min_backoff=1, max_backoff=4)  # fmt: skip
    h, _ = world({"t.a": settings})
    sub = Subscriber(h, "a", "t.a", settings, work=0.0, fail=lambda d: True)
    publisher(h, settings).publisher.publish("t", "evt", "x", topic=True)
    h.run(20)
    times = [t for t, _, _ in sub.got]
    gaps = [round(b - a, 1) for a, b in pairwise(times)]
    assert gaps[:4] == [1.0, 2.0, 4.0, 4.0]  # doubling from min_backoff, capped at max


def test_a_dead_letter_topic_fans_dead_letters_out_to_its_subscriptions():
    main = QueueSettings(flavour="pubsub", topic="t", max_deliveries=5, dead_letter_topic="dead")
    dead = QueueSettings(flavour="pubsub", topic="dead")
    h, broker = world({"t.a": main, "dead.b": dead})
    Subscriber(h, "a", "t.a", main, work=0.0, fail=lambda d: True)
    graveyard = Subscriber(h, "b", "dead.b", dead, work=0.0)
    publisher(h, main).publisher.publish("t", "evt", "poison", topic=True)
    h.run(30)
    assert graveyard.payloads() == ["poison"]
    assert broker.dead_letters[0].dlq == "dead"


# -- push ----------------------------------------------------------------------------------


def test_a_push_subscription_backs_off_while_its_endpoint_is_down_then_delivers():
    crash = {"kind": "crash", "targets": ["a"], "start": 1.0, "end": 30.0}
    settings = QueueSettings(flavour="pubsub", topic="t", push_endpoint="a")
    h, broker = world({"t.a": settings}, (crash,))
    sub = Subscriber(h, "a", "t.a", settings, work=0.1)
    producer = publisher(h, settings)
    for i in range(5):
        at(h, 2.0 + i, lambda i=i: producer.publisher.publish("t", "evt", i, topic=True))
    h.run(120)
    pushes = h.messages[(h.messages.kind == "deliver") & (h.messages.dst == "a")]
    refused = pushes[pushes.sent_at < 30.0]
    # Backing off: the refused pushes thin out (the waits between them double, up to 60 s).
    times = sorted(set(refused.sent_at.round(3)))
    gaps = [round(b - a, 1) for a, b in pairwise(times)]
    assert gaps[-3:] == [3.2, 6.4, 12.8]
    assert len(times) < 15
    assert sorted(set(sub.payloads())) == list(range(5))  # delivered once it is back
    assert min(t for t, _, _ in sub.got) >= 30.0
    assert broker.queues["t.a"].acked == 5


# -- scenario files and the checks ---------------------------------------------------------


def shop(ordered: bool, **extra: Any) -> dict[str, Any]:
    """A shop publishing orders to a topic that billing and shipping subscribe to."""
    queue = {"topic": "orders", "order_by": "producer", "ordered": ordered, "max_deliveries": 5,
             **extra}  # fmt: skip
    return {
        "name": "pubsub-shop",
        "seed": 5,
        "duration": 60,
        "agents": [
            {"id": "shop", "role": "client"},
            {
                "id": "billing",
                "role": "service",
                "workers": 2,
                "service_time": {"dist": "constant", "value": 0.05},
            },
            {
                "id": "shipping",
                "role": "service",
                "workers": 2,
                "service_time": {"dist": "constant", "value": 0.05},
            },
            {"id": "broker", "role": "broker", "queue": {"flavour": "pubsub"}},
        ],
        "channels": [
            {"from": "shop", "to": "billing", "protocol": "queue", "timeout": 10, "queue": queue},
            {"from": "shop", "to": "shipping", "protocol": "queue", "timeout": 10, "queue": queue},
        ],
        "workload": [
            {"from": "shop", "to": "billing", "arrivals": {"kind": "poisson", "rate": 4}, "end": 40}
        ],
        "faults": [
            {
                "kind": "poison",
                "from": "shop",
                "to": "billing",
                "type": "task.poison",
                "count": 1,
                "start": 5,
                "end": 6,
            }
        ],
    }


def test_a_scenario_fans_a_topic_out_and_the_checks_see_order_and_fan_out():
    import sim
    from sim.checks import fan_out_complete, in_order_per_key

    ordered = sim.run(shop(ordered=True))
    unordered = sim.run(shop(ordered=False))
    for run in (ordered, unordered):
        consumed = run.spans[run.spans.kind == "consumer"]
        per_agent = consumed.drop_duplicates(["parent_id", "agent"]).groupby("agent").size()
        assert per_agent["billing"] == per_agent["shipping"] > 100  # both got every order
        assert fan_out_complete(run).empty
        dead = run.spans[run.spans.kind == "dead_letter"]
        assert sorted(e.split(":")[0] for e in dead.error) == [
            "billing.requests", "shipping.requests"]  # fmt: skip
    assert in_order_per_key(ordered).empty
    reordered = in_order_per_key(unordered)
    assert not reordered.empty  # later orders overtook the poison one
    assert set(reordered.agent) == {"billing", "shipping"}


def test_the_check_finds_a_subscription_that_missed_a_message():
    import sim
    from sim.checks import fan_out_complete

    run = sim.run(shop(ordered=False))
    consumed = run.spans[(run.spans.kind == "consumer") & (run.spans.agent == "shipping")]
    dropped = consumed.parent_id.iloc[3]
    spans = run.spans
    run.tables["spans"] = spans[~((spans.parent_id == dropped) & (spans.agent == "shipping"))]
    missed = fan_out_complete(run)
    assert list(missed.subscription) == ["shipping.requests"]


@pytest.mark.parametrize(
    ("queue", "error"),
    [
        (
            {"topic": "t", "fifo": True},
            "an SQS FIFO queue needs flavour sqs; the broker runs pubsub",
        ),
        ({"filter": {"a": "b"}}, "filter belongs to a subscription: name the topic"),
        ({"topic": "t", "push_endpoint": "shop"}, "so it can push only there, not to 'shop'"),
        ({"topic": "t", "min_backoff": 60, "max_backoff": 10}, "min_backoff 60 s is longer"),
    ],
)
def test_scenario_settings_errors_are_one_sentence(queue, error):
    import sim

    data = shop(ordered=False)
    data["channels"][0]["queue"] = queue
    with pytest.raises(Exception) as raised:
        sim.run(data)
    assert error in str(raised.value)
    assert "\n" not in str(raised.value).strip()


# -- fan-out copies in the trace -----------------------------------------------------------


def test_each_subscription_dead_letter_marks_its_own_copy_in_the_trace():
    # billing gives up on the poison order after 5 deliveries, shipping after 8: at billing's
    # fifth, shipping's fifth copy (same msg_id, same attempt) was delivered as well.
    import sim

    data = shop(ordered=False)
    data["channels"][1]["queue"] = dict(data["channels"][1]["queue"], max_deliveries=8)
    run = sim.run(data)
    m = run.messages
    dead = m[m.outcome == "dead_lettered"]
    assert list(zip(dead.dst, dead.attempt, dead.subscription, strict=True)) == [
        ("billing", 5, "billing.requests"),
        ("shipping", 8, "shipping.requests"),
    ]
    assert all("max_delivery_attempts 5" in r for r in dead[dead.dst == "billing"].reason)
    poison = m[m.msg_id == dead.msg_id.iloc[0]]
    shipping5 = poison[(poison.dst == "shipping") & (poison.attempt == 5)]
    assert list(shipping5.outcome) == ["delivered"]  # not billing's dead letter
    # Every copy a subscription got names it; the publish and the replies name none.
    delivered = m[m.kind == "deliver"]
    copies = delivered[delivered.dst.isin(["billing", "shipping"])]
    assert (copies.subscription == copies.dst + ".requests").all()
    assert (delivered[delivered.dst == "shop"].subscription == "").all()
    assert (m[m.kind == "publish"].subscription == "").all()


def keyed_by_publisher(monkeypatch: pytest.MonkeyPatch, keys: int = 3) -> None:
    """Every queue request is published with its own ordering key: k0, k1, k2, k0, ..."""
    from protocols.queue import client

    call = getattr(client.QueueClient.call, "original", client.QueueClient.call)
    sent = iter(range(10**9))

    def with_key(self: client.QueueClient, *args: Any, **kwargs: Any) -> Any:
        return call(self, *args, ordering_key=f"k{next(sent) % keys}", **kwargs)

    with_key.original = call  # type: ignore[attr-defined]
    monkeypatch.setattr(client.QueueClient, "call", with_key)


def test_ordering_keys_a_publisher_gives_are_in_the_trace_and_the_check_reads_them(monkeypatch):
    import sim
    from sim.checks import in_order_per_key

    keyed_by_publisher(monkeypatch)
    ordered = sim.run(shop(ordered=True))
    m = ordered.messages
    published = m[(m.kind == "publish") & (m.src == "shop")]  # not the replies
    assert set(published.ordering_key) == {"k0", "k1", "k2"}
    # Each subscription delivers by the publisher's key, and says so on each copy.
    copies = m[(m.kind == "deliver") & (m.dst == "billing")]
    by_msg = published.drop_duplicates("msg_id").set_index("msg_id").ordering_key
    assert (copies.ordering_key == copies.msg_id.map(by_msg)).all()
    # The broker held back only the poison order's key, and the check agrees: read by
    # the producer (order_by), the other keys' orders would look reordered past it.
    assert in_order_per_key(ordered).empty
    # Unordered, with one key for everything: the reorderings are reported by that key.
    keyed_by_publisher(monkeypatch, keys=1)
    late = in_order_per_key(sim.run(shop(ordered=False)))
    assert not late.empty and set(late.key) == {"k0"}


def test_a_push_to_an_endpoint_that_is_down_is_dead_lettered_in_the_trace_too():
    # billing's push endpoint is down from t=20 on: each order pushed there is refused
    # 3 times, then dead-lettered. No copy ever arrived, yet each dead letter is a row.
    import sim

    data = shop(ordered=False, max_deliveries=3)
    for channel in data["channels"]:
        channel["queue"] = dict(channel["queue"], push_endpoint=channel["to"])
    data["faults"] = [{"kind": "crash", "targets": ["billing"], "start": 20}]
    run = sim.run(data)
    m = run.messages
    last = run.queues[run.queues.time == run.queues.time.max()].set_index("queue")
    parked = int(last.loc["billing.requests", "dead_lettered"])
    assert parked > 10 and last.loc["shipping.requests", "dead_lettered"] == 0
    unarrived = m[m.outcome == "dead_lettered"]
    assert len(unarrived) == parked  # the broker's count and the trace's agree
    assert unarrived.delivered_at.isna().all()
    assert (unarrived.sent_at > 20).all() and (unarrived.attempt == 3).all()
    assert (unarrived.subscription == "billing.requests").all()
    assert unarrived.reason.str.endswith(
        "(3 deliveries); this delivery never arrived (unavailable: billing is down)"
    ).all()
    # Each was pushed 3 times, and only its last push carries the dead letter.
    pushes = m[m.msg_id.isin(unarrived.msg_id) & (m.kind == "deliver") & (m.dst == "billing")]
    assert pushes.groupby("msg_id").size().eq(3).all()
    assert (pushes[pushes.attempt < 3].outcome == "unavailable").all()
