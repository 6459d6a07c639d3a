"""The checks (sim.checks) on small scenarios: each flags what is wrong and only that.

For each check a run that is correct, yet was flagged by an earlier reading of the
trace (a false positive), and a run that is wrong and must be flagged (a true positive),
each violation naming the message that shows it (`msg_id`).
"""

from __future__ import annotations

from typing import Any

import yaml

import sim
from sim import loading
from sim.checks import check, receivers_that_dedupe


def collaboration(duration: float = 20, **changes: Any) -> dict[str, Any]:
    """The built-in collaboration scenario as data, shortened, to be changed by a test."""
    data = yaml.safe_load(loading.builtin_path("collaboration").read_text())
    data["duration"] = duration
    data.update(changes)
    return data


def channels(data: dict[str, Any], protocol: str, **settings: Any) -> dict[str, Any]:
    """Set `settings` on every channel of `protocol` in `data`."""
    for channel in data["channels"]:
        if channel.get("protocol", "http") == protocol:
            channel.update(settings)
    return data


def sent(run: sim.Run, msg_ids: Any) -> Any:
    """The rows of the messages `msg_ids` (their first copies)."""
    m = run.messages.drop_duplicates("msg_id").set_index("msg_id")
    return m.loc[list(msg_ids)]


# -- deadlines_shrink ----------------------------------------------------------------------


def test_retried_sub_calls_under_a_fan_out_with_a_deadline_shrink_their_deadlines():
    # The orchestrator fans out to two workers for at most 3 s; each sub-task is a
    # retried call (a request span over its attempts) with a 5 s timeout, well inside the
    # client's 30 s deadline. The fan-out's own wait is not a call they serve.
    data = channels(
        collaboration(),
        "sse",
        timeout=5,
        retry={"max_attempts": 3, "backoff": "constant", "base": 0.1},
    )
    data["agents"][1]["fanout"] = {"policy": "all", "deadline": 3}
    run = sim.run(data)
    spans = run.spans
    attempts = spans[spans["parent_id"].isin(spans.loc[spans["kind"] == "client", "span_id"])]
    assert (attempts["protocol"] == "sse").sum() > 20  # the case is exercised
    assert check(run)["deadlines_shrink"].empty


CHAIN: dict[str, Any] = {
    "name": "chain",
    "seed": 1,
    "duration": 10,
    "agents": [
        {"id": "A", "role": "client"},
        {"id": "B", "role": "service", "calls": ["C"]},
        {"id": "C", "role": "service", "service_time": {"dist": "constant", "value": 3}},
    ],
    "channels": [
        {"from": "A", "to": "B", "timeout": 2},
        # B ignores A's deadline and gives C 10 s: C works on after A has given up.
        {"from": "B", "to": "C", "timeout": 10, "deadline": {"propagate": False},
         "retry": {"max_attempts": 2, "backoff": "constant", "base": 0.1}},
    ],
    "workload": [{"from": "A", "to": "B", "arrivals": {"kind": "constant", "rate": 1}}],
}  # fmt: skip


def test_a_retried_call_that_outlives_its_callers_deadline_is_flagged():
    run = sim.run(CHAIN)
    found = check(run)["deadlines_shrink"]
    assert not found.empty
    assert (found["agent"] == "B").all() and (found["peer"] == "C").all()
    assert (found["deadline"] > found["upstream"] + 7).all()  # 10 s against 2 s
    # Each names the request that went out with the late deadline.
    requests = sent(run, found["msg_id"])
    assert (requests["kind"] == "request").all()
    assert list(requests["src"].unique()) == ["B"] and list(requests["dst"].unique()) == ["C"]


# -- exactly_once --------------------------------------------------------------------------


def queue_service(idempotent: bool = False, **http: Any) -> dict[str, Any]:
    """A client sending requests to `api` over a queue, on a network duplicating 30%."""
    return {
        "name": "dedupe",
        "seed": 2,
        "duration": 20,
        "agents": [
            {"id": "client", "role": "client"},
            {"id": "broker", "role": "broker"},
            {"id": "api", "role": "service", "workers": 4,
             "service_time": {"dist": "constant", "value": 0.05}, "http": http},
        ],
        "channels": [
            {"from": "client", "to": "api", "protocol": "queue", "timeout": 5,
             "queue": {"broker": "broker", "idempotent": idempotent}},
        ],
        "network": {
            "default": {"latency": {"dist": "exponential", "mean": 0.02}, "duplicate": 0.3}
        },
        "workload": [{"from": "client", "to": "api", "arrivals": {"kind": "poisson", "rate": 5}}],
    }  # fmt: skip


def test_an_agent_deduping_http_is_not_held_to_exactly_once_on_its_queue():
    # `api` dedupes HTTP, but its queue channel is not idempotent: duplicated deliveries
    # are applied twice, as at-least-once delivery says. Nothing promised otherwise.
    run = sim.run(queue_service(dedupe=True))
    keys = run.effects.groupby(["agent", "key"]).size()
    assert (keys > 1).sum() > 5  # duplicates were applied
    assert check(run)["exactly_once"].empty
    # An idempotent queue channel applies each once, and is checked.
    assert check(sim.run(queue_service(idempotent=True, dedupe=True)))["exactly_once"].empty


def test_a_queue_channel_inherits_idempotent_from_its_broker_and_is_checked():
    # The channel leaves `idempotent` unset and its broker agent sets it: the consumer
    # dedupes, and exactly_once holds it to that (it judged by the channel alone before).
    data = queue_service()
    del data["channels"][0]["queue"]["idempotent"]
    data["agents"][1]["queue"] = {"idempotent": True}
    run = sim.run(data)
    assert receivers_that_dedupe(run)("api", "queue", "client")
    assert run.effects.groupby(["agent", "key"]).size().max() == 1
    assert check(run)["exactly_once"].empty


def test_an_http_store_that_forgets_too_soon_applies_duplicates_and_is_flagged():
    data = queue_service(dedupe=True, idempotency_ttl=0.001)
    data["channels"][0] = {"from": "client", "to": "api", "timeout": 5}
    data["agents"] = data["agents"][::2]  # no broker
    run = sim.run(data)
    found = check(run)["exactly_once"]
    assert not found.empty and (found["protocol"] == "http").all()
    assert (found["effects"] >= 2).all()
    # The violating message is the request whose effect was applied again.
    effects = run.effects.set_index("msg_id")
    assert found["msg_id"].isin(effects.index).all()
    assert (sent(run, found["msg_id"])["kind"] == "request").all()


# -- retry_budget --------------------------------------------------------------------------


def test_negotiation_bids_are_not_retries_of_a_budgeted_channel():
    # A retry budget on the writers' WebSocket to their critics: each negotiation
    # exchanges several bids, each a message of its own, none of them a retry.
    data = channels(
        collaboration(30),
        "websocket",
        budget={"kind": "ratio", "ratio": 0.1, "min_retries_per_second": 0},
    )
    run = sim.run(data)
    negotiations = run.spans[run.spans["name"] == "negotiate"]
    assert negotiations["attempts"].sum() > 3 * len(negotiations)
    assert check(run)["retry_budget"].empty


# (A true positive: tests/test_collaboration.py, a retry storm without its budget.)


# -- streams_complete ----------------------------------------------------------------------


def stream(replay_buffer: int) -> dict[str, Any]:
    """One 20 s job streamed over SSE, its progress every second, cut off for 7 s."""
    return {
        "name": "stream",
        "seed": 1,
        "duration": 60,
        "agents": [
            {"id": "c", "role": "client"},
            {"id": "s", "role": "service", "service_time": {"dist": "constant", "value": 20}},
        ],
        "channels": [
            {"from": "c", "to": "s", "protocol": "sse", "timeout": 50,
             "sse": {"replay_buffer": replay_buffer, "progress_interval": 1}},
        ],
        "network": {"default": {"latency": {"dist": "constant", "value": 0.01}}},
        "workload": [
            {"from": "c", "to": "s", "arrivals": {"kind": "constant", "rate": 1}, "end": 1}
        ],
        "faults": [{"kind": "partition", "groups": [["c"], ["s"]], "start": 5, "end": 12}],
    }  # fmt: skip


def test_a_stream_that_lost_events_past_the_replay_buffer_is_flagged():
    run = sim.run(stream(replay_buffer=2))
    [span] = run.spans[run.spans["kind"] == "client"].itertuples()
    # The final answer came, but ten progress events never did.
    assert (span.outcome, span.status, span.attempts, span.lost_events) == ("partial", 200, 2, 10)
    assert "10 event(s) lost" in span.error
    found = check(run)["streams_complete"]
    assert found[["span_id", "lost_events"]].values.tolist() == [[span.span_id, 10]]
    [request] = sent(run, found["msg_id"]).itertuples()
    assert (request.kind, request.src, request.dst, request.protocol) == (
        "request",
        "c",
        "s",
        "sse",
    )


def test_a_stream_resumed_from_its_replay_buffer_is_complete():
    run = sim.run(stream(replay_buffer=100))
    spans = run.spans
    assert spans.loc[spans["kind"] == "client", ["outcome", "lost_events"]].values.tolist() == [
        ["ok", 0]
    ]
    assert (spans.loc[spans["kind"] != "client", "lost_events"] == -1).all()  # not streams
    assert check(run)["streams_complete"].empty


# -- nothing_lost --------------------------------------------------------------------------


def paused_caller(end: float) -> dict[str, Any]:
    """A client whose 1 s calls are cut by a pause from 16 s until `end` (the run: 17 s)."""
    return {
        "name": "paused-caller",
        "seed": 0,
        "duration": 17,
        "agents": [
            {"id": "client", "role": "client"},
            {"id": "api", "role": "service", "service_time": {"dist": "constant", "value": 0.3}},
        ],
        "channels": [{"from": "client", "to": "api", "timeout": 1.0}],
        "workload": [{"from": "client", "to": "api", "arrivals": {"kind": "constant", "rate": 5}}],
        "faults": [{"kind": "pause", "targets": ["client"], "start": 16.0, "end": end}],
    }


def test_a_caller_asleep_until_the_end_has_lost_nothing():
    # Its calls made just before the pause stay open past their deadline: the caller
    # cannot run its timers, so the requests are not lost (found by make fuzz).
    run = sim.run(paused_caller(end=26))
    roots = run.spans[(run.spans["kind"] == "client") & (run.spans["parent_id"] == "")]
    assert ((roots["outcome"] == "open") & (roots["deadline"] < 16.9)).sum() >= 1
    assert check(run)["nothing_lost"].empty


def test_a_request_open_past_its_deadline_with_its_caller_awake_is_lost():
    run = sim.run(paused_caller(end=26))
    spans = run.spans.copy()
    first = spans.index[(spans["kind"] == "client") & (spans["outcome"] == "ok")][0]
    spans.loc[first, ["outcome", "end"]] = ["open", float("nan")]
    run.tables["spans"] = spans
    found = check(run)["nothing_lost"]
    assert list(found["span_id"]) == [spans.loc[first, "span_id"]]
    assert found["msg_id"].iloc[0] != ""


# -- in_order_per_key ----------------------------------------------------------------------


ZERO = {"dist": "constant", "value": 0.0}


def ordered_queue(queue: dict[str, Any], flavour: str, latency: dict[str, Any], **service: Any):
    """One client publishing to one service through an ordered queue of `flavour`."""
    return {
        "name": "ordered",
        "seed": 0,
        "duration": 21,
        "agents": [
            {"id": "c0", "role": "client"},
            {"id": "s0", "role": "service", "workers": 4, **service},
            {"id": "mq", "role": "broker", "queue": {"flavour": flavour}},
        ],
        "channels": [
            {"from": "c0", "to": "s0", "protocol": "queue", "queue": {"broker": "mq", **queue}}
        ],
        "network": {"default": {"latency": latency}},
        "workload": [{"from": "c0", "to": "s0", "arrivals": {"kind": "poisson", "rate": 2}}],
    }


def test_publishes_the_network_reordered_are_in_order_in_the_order_they_arrived():
    # Found by the generated scenarios (tests/fuzz_repros/pubsub-ordered-in-order-per-key):
    # an ordered Pub/Sub subscription over a jittery network. c0-19 was published after
    # c0-18 but reached the broker first, which delivers in the order publishes arrive.
    # The check used to order by the publisher's start and flag c0-19.
    queue = {"topic": "t", "ordered": True, "max_deliveries": 1, "request_queue": "s0.t"}
    jitter = {"dist": "uniform", "low": 0.0, "high": 0.03125}
    run = sim.run(
        ordered_queue(queue, "pubsub", jitter, service_time={"dist": "constant", "value": 0})
    )
    m = run.messages
    publish = m[(m.kind == "publish") & (m.src == "c0")].set_index("correlation_id")
    assert publish.loc["c0-18", "sent_at"] < publish.loc["c0-19", "sent_at"]
    assert publish.loc["c0-18", "delivered_at"] > publish.loc["c0-19", "delivered_at"]
    deliveries = m[(m.kind == "deliver") & (m.dst == "s0")]
    # The broker delivered each key in the order publishes arrived, each once.
    assert deliveries.correlation_id.is_unique
    arrived = publish.sort_values("delivered_at").index.tolist()
    assert deliveries.correlation_id.tolist() == arrived
    assert check(run)["in_order_per_key"].empty


def test_a_message_the_broker_gave_up_on_is_done_with_when_dead_lettered():
    # An SQS FIFO group whose visibility timeout (0.5 s) is shorter than the work (1 s),
    # with one delivery allowed: at 0.5 s the broker parks each message and delivers the
    # next of its group while the first's handler still runs. That is the group's order,
    # not a reordering: the check used to count the message done at its handler's end.
    queue = {"fifo": True, "max_deliveries": 1, "visibility_timeout": 0.5}
    fast, slow = {"dist": "constant", "value": 0.001}, {"dist": "constant", "value": 1.0}
    run = sim.run(ordered_queue(queue, "sqs", fast, service_time=slow))
    s = run.spans
    dead = s[s.kind == "dead_letter"].set_index("parent_id").start
    handled = s[(s.kind == "consumer") & (s.outcome == "ok")].set_index("parent_id")
    both = dead.index.intersection(handled.index)  # (the last may still be running)
    assert len(both) > 10 and (handled.loc[both, "end"] > dead[both] + 0.4).all()
    assert check(run)["in_order_per_key"].empty
    # Once the broker waits for the handler (a visibility timeout past the work), the
    # check still sees each message done before the next of its group is delivered.
    queue["visibility_timeout"] = 5.0
    fine = sim.run(ordered_queue(queue, "sqs", fast, service_time=slow))
    assert (fine.messages.outcome != "dead_lettered").all()
    assert check(fine)["in_order_per_key"].empty


# -- fan_out_complete ----------------------------------------------------------------------


def test_a_publish_the_broker_never_received_owes_its_subscriptions_nothing():
    # Found by the generated scenarios (tests/fuzz_repros/sns-fan-out-under-loss): SNS to
    # SQS on a network that loses 20%. A publish lost on its way, whose caller timed out
    # before its confirm timeout could retry it, never reached the topic: no subscription
    # can miss it. The check used to excuse only a publish that failed by its own timer.
    queue = {"topic": "t", "visibility_timeout": 0.5, "request_queue": "s0.t"}
    data = ordered_queue(queue, "sqs", {"dist": "constant", "value": 0.0}, service_time=ZERO)
    data["channels"][0]["timeout"] = 0.2
    data["network"]["default"]["loss"] = 0.2
    # Publishing stops early enough for the subscription to drain: a backlog at the run's
    # end would excuse the copy removed below.
    data["workload"][0]["end"] = 15
    run = sim.run(data)
    m, s = run.messages, run.spans
    publishes = m[(m.kind == "publish") & (m.src == "c0")]
    received = set(publishes.loc[publishes.delivered_at.notna(), "span_id"])
    producers = s[s.kind == "producer"]
    unreceived = producers[~producers.span_id.isin(received)]
    assert len(unreceived) >= 2 and (unreceived.outcome == "timeout").all()
    assert check(run)["fan_out_complete"].empty
    # A copy the subscription did miss is still found.
    first = producers[producers.span_id.isin(received)].span_id.iloc[0]
    run.tables["spans"] = s[~((s.kind == "consumer") & (s.parent_id == first))]
    assert list(check(run)["fan_out_complete"].msg_id) == publishes.msg_id.iloc[:1].tolist()
