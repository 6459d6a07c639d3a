"""The recorder's message rows: a copy ends once, and dead letters land on the right copy.

A row's outcome is set when its copy ends (delivered, dropped, ...); the one change
allowed after that is a receiver's verdict on a delivered copy (rejected, dead-lettered,
expired), and nothing changes a verdict. `mark_last` (the broker's dead letters) gives
the verdict to the last delivered copy; when the delivery the broker gave up on is still
on the wire, to that copy when it arrives or is lost (or at the run's end); when none of
the broker's deliveries arrived, to the last of them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
import yaml

import sim
from protocols.transport import Message
from sim import loading
from sim.loading import ScenarioError
from sim.scenario import Scenario
from sim.trace import recorder as recorder_module
from sim.trace.recorder import Recorder
from sim.world import World


def message(msg_id: str, attempt: int = 1, duplicate: bool = False) -> Message:
    """A queue delivery of `msg_id` (its `attempt`-th), or a network duplicate of one."""
    return Message(
        msg_id=msg_id,
        type="task",
        src="broker",
        dst="api",
        kind="deliver",
        protocol="queue",
        attempt=attempt,
        duplicate=duplicate,
    )


def outcomes(rec: Recorder) -> list[str]:
    return rec.tables()["messages"]["outcome"].tolist()


def test_an_ended_copy_keeps_its_outcome():
    rec = Recorder()
    dropped = rec.message_sent(message("m1"), 0.0)
    delivered = rec.message_sent(message("m2"), 0.0)
    rec.message_ended(dropped, "dropped", 1.0)
    rec.message_delivered(delivered, 1.0)
    # Later news of either copy changes nothing (a delivery after a drop, a drop after
    # a delivery), but a receiver's verdict on the delivered copy does, once.
    rec.message_delivered(dropped, 2.0)
    rec.message_ended(delivered, "partitioned", 2.0)
    rec.message_ended(delivered, "dead_lettered", 3.0, "max deliveries")
    rec.message_ended(delivered, "rejected", 4.0, "again")
    rec.message_delivered(delivered, 5.0)
    m = rec.tables()["messages"]
    assert m["outcome"].tolist() == ["dropped", "dead_lettered"]
    assert m["ended_at"].tolist() == [1.0, 3.0]
    assert m["delivered_at"].iloc[1] == 1.0 and m["reason"].iloc[1] == "max deliveries"


def test_a_dead_letter_never_marks_a_copy_still_on_the_wire():
    rec = Recorder()
    first = rec.message_sent(message("m1", attempt=1), 0.0)
    rec.message_delivered(first, 0.1)
    # The broker's last delivery arrived; a network duplicate of it is still in flight.
    last = rec.message_sent(message("m1", attempt=2), 1.0)
    rec.message_delivered(last, 1.1)
    late = rec.message_sent(message("m1", attempt=2, duplicate=True), 1.0)
    assert rec.mark_last("m1", "dead_lettered", 2.0, "limit 2 reached", attempt=2)
    rec.message_delivered(late, 2.5)  # the duplicate lands after the dead letter
    assert outcomes(rec) == ["delivered", "dead_lettered", "delivered"]


def test_a_dead_letter_marks_the_delivery_of_its_count_and_each_copy_once():
    rec = Recorder()
    # Two stored copies of m1 (its publish was duplicated): one at delivery 2, then the
    # other at delivery 1, sent later. The first to be parked was delivered twice.
    a1 = rec.message_sent(message("m1", attempt=1), 0.0)
    a2 = rec.message_sent(message("m1", attempt=2), 1.0)
    b1 = rec.message_sent(message("m1", attempt=1), 1.5)
    for seq in (a1, a2, b1):
        rec.message_delivered(seq, 1.6)
    assert rec.mark_last("m1", "dead_lettered", 2.0, "a", attempt=2)
    assert rec.mark_last("m1", "dead_lettered", 3.0, "b", attempt=1)
    assert outcomes(rec) == ["delivered", "dead_lettered", "dead_lettered"]
    # An original is marked rather than its duplicate; nothing left: nothing marked.
    rec2 = Recorder()
    original = rec2.message_sent(message("m2"), 0.0)
    copy = rec2.message_sent(message("m2", duplicate=True), 0.0)
    rec2.message_delivered(copy, 0.1)
    rec2.message_delivered(original, 0.2)
    assert rec2.mark_last("m2", "dead_lettered", 1.0, "x", attempt=1)
    assert outcomes(rec2) == ["dead_lettered", "delivered"]
    assert rec2.mark_last("m2", "dead_lettered", 1.0, "y", attempt=1)
    assert not rec2.mark_last("m2", "dead_lettered", 1.0, "z", attempt=1)
    assert outcomes(rec2) == ["dead_lettered", "dead_lettered"]


def test_a_dead_letter_none_of_whose_deliveries_arrived_marks_the_last_of_them(monkeypatch):
    # Small chunks, so the early rows are frozen by the time the broker gives up.
    monkeypatch.setattr(recorder_module, "CHUNK_ROWS", 2)
    rec = Recorder()
    publish = rec.message_sent(
        Message(msg_id="m1", type="task", src="p", dst="broker", kind="publish",
                protocol="queue"), 0.0)  # fmt: skip
    rec.message_delivered(publish, 0.1)
    pushes = [rec.message_sent(message("m1", attempt=n), float(n)) for n in (1, 2, 3)]
    for n, seq in enumerate(pushes[:2], 1):
        rec.message_ended(seq, "unavailable", n + 0.1, "api is down")
    rec.message_ended(pushes[2], "dropped", 3.1)  # the last: lost on the way
    noise = [rec.message_sent(message(f"x{i}"), 3.5) for i in range(4)]
    # The broker gave up after 3 deliveries, none of which arrived: the third is its row.
    assert rec.mark_last("m1", "dead_lettered", 3.2, "limit 3 reached", attempt=3)
    m = rec.tables()["messages"]
    assert m["outcome"].tolist() == [
        "delivered",
        "unavailable",
        "unavailable",
        "dead_lettered",
        *["in_flight"] * len(noise),
    ]
    assert m["ended_at"].iloc[3] == 3.2 and pd.isna(m["delivered_at"].iloc[3])
    assert m["reason"].iloc[3] == "limit 3 reached; this delivery never arrived (dropped)"
    # Another dead letter of it finds the earlier refused delivery, never the publish nor
    # a copy still on the wire.
    on_wire = rec.message_sent(message("m1", attempt=4), 4.0)
    assert rec.mark_last("m1", "dead_lettered", 4.5, "again", attempt=4)
    m = rec.tables()["messages"]
    assert m["outcome"].iloc[2] == "dead_lettered" and m["outcome"].iloc[on_wire] == "in_flight"
    assert m["reason"].iloc[2] == "again; this delivery never arrived (unavailable: api is down)"
    assert rec.mark_last("m1", "dead_lettered", 5.0, "once more", attempt=4)
    assert not rec.mark_last("m1", "dead_lettered", 5.0, "nothing left", attempt=4)
    assert rec.tables()["messages"]["outcome"].iloc[0] == "delivered"


POISON_UNDER_DUPLICATION: dict[str, Any] = {
    "name": "poison-under-duplication",
    "seed": 3,
    "duration": 60,
    "agents": [
        {"id": "client", "role": "client"},
        {"id": "broker", "role": "broker",
         "queue": {"max_deliveries": 3, "visibility_timeout": 2}},
        {"id": "api", "role": "service", "workers": 4,
         "service_time": {"dist": "constant", "value": 0.05}},
    ],
    "channels": [
        {"from": "client", "to": "api", "protocol": "queue", "timeout": 20,
         "queue": {"broker": "broker", "max_deliveries": 3, "visibility_timeout": 2}},
    ],
    "network": {"default": {"latency": {"dist": "exponential", "mean": 0.02}}},
    "workload": [{"from": "client", "to": "api", "arrivals": {"kind": "poisson", "rate": 5}}],
    "faults": [
        {"kind": "poison", "from": "client", "to": "api", "type": "task.poison", "count": 20,
         "start": 5, "end": 40},
        {"kind": "duplicate", "probability": 0.5, "start": 0, "end": 60},
    ],
}  # fmt: skip


def test_every_dead_letter_of_a_duplicating_network_is_a_dead_lettered_row():
    world = World(loading.validate(POISON_UNDER_DUPLICATION, "scenario"))
    rec = world.recorder
    changes: list[tuple[int, str, str]] = []

    def watch(method: Any) -> Any:
        # Every change of a row's outcome, as the network and the broker make them.
        def wrapped(seq: int, *args: Any, **kwargs: Any) -> None:
            before = rec._m_outcome[seq]
            method(seq, *args, **kwargs)
            if rec._m_outcome[seq] != before:
                changes.append((seq, before, rec._m_outcome[seq]))

        return wrapped

    rec.message_delivered = watch(rec.message_delivered)  # type: ignore[method-assign]
    rec.message_ended = watch(rec.message_ended)  # type: ignore[method-assign]
    run = world.run()
    broker = world.agents["broker"].broker  # type: ignore[attr-defined]
    parked = run.messages[run.messages["outcome"] == "dead_lettered"]
    totals = run.queues.groupby("queue")["dead_lettered"].max()
    assert len(broker.dead_letters) > 20  # duplicated publishes are stored twice
    assert len(parked) == len(broker.dead_letters) == int(totals.sum())
    assert sorted(parked["msg_id"]) == sorted(d.msg_id for d in broker.dead_letters)
    # Each parked row is a delivery that reached the consumer, of the count it died at.
    assert (parked["kind"] == "deliver").all() and parked["delivered_at"].notna().all()
    assert (parked["ended_at"] >= parked["delivered_at"]).all()
    # A row ends once; after that only a delivered row may get a verdict, once.
    for seq, before, after in changes:
        assert before == "in_flight" or (before, after) == ("delivered", "dead_lettered"), (
            seq,
            before,
            after,
        )


LOOP = """
name: requeue-loop
duration: 10
agents:
  - {id: client, role: client}
  - {id: broker, role: broker, queue: {flavour: rabbitmq, max_deliveries: null, on_error: requeue}}
  - {id: api, role: service, service_time: {dist: constant, value: 0}}
channels:
  - {from: client, to: api, protocol: queue, queue: {broker: broker}}
network:
  default: {latency: {dist: constant, value: 0}}
faults:
  - {kind: poison, from: client, to: api, start: 1, count: 1}
"""


def test_a_loop_that_never_lets_time_move_stops_with_one_sentence(monkeypatch):
    # A poison message requeued for ever at zero latency: simulated time stays at 1 s,
    # so without the guard the run never ends and its trace fills memory. Validation
    # refuses this design (sim.sizing); the guard catches the loops it cannot foresee,
    # so the scenario goes straight to the World here, past validation.
    monkeypatch.setattr(recorder_module, "STALLED_MESSAGES", 100_000)
    scenario = Scenario.model_validate(yaml.safe_load(LOOP))
    with pytest.raises(ScenarioError, match=r"over 100,000 messages at t=1 s"):
        World(scenario).run()
    # The same design with a delivery limit ends normally, the poison dead-lettered.
    run = sim.run(yaml.safe_load(LOOP.replace("max_deliveries: null", "max_deliveries: 5")))
    assert (run.messages["outcome"] == "dead_lettered").sum() == 1


@pytest.mark.parametrize(
    "values",
    [{}, {0: "lost"}, {4: "é ☃ end"}, {1: "a", 3: "", 2: "bc"}, {0: "x", 4: "y"}],
)
def test_a_sparse_column_holds_its_rows_and_empty_strings_elsewhere(values: dict) -> None:
    column = recorder_module._sparse(values, 5)
    expected = [values.get(i, "") for i in range(5)]
    assert column.tolist() == expected
    pd.testing.assert_series_equal(column, recorder_module._strings(expected))


def test_a_message_column_of_fields_keeps_each_message_in_its_row() -> None:
    rec = Recorder()
    sent = [message(f"m{i}", attempt=i % 3 + 1, duplicate=i % 2 == 1) for i in range(5)]
    sent[2].span = rec.span_start("task", "client", "broker", "api", "queue", 0.0)
    for i, msg in enumerate(sent):
        msg.size_bytes = 100 + i
        rec.message_sent(msg, float(i))
    messages = rec.tables()["messages"]
    assert messages["msg_id"].tolist() == [m.msg_id for m in sent]
    assert messages["attempt"].tolist() == [m.attempt for m in sent]
    assert messages["duplicate"].tolist() == [m.duplicate for m in sent]
    assert messages["size_bytes"].tolist() == [100, 101, 102, 103, 104]
    assert messages["span_id"].tolist() == ["", "", "0000000000000001", "", ""]


def test_a_dead_letter_of_a_delivery_still_on_the_wire_waits_for_that_copy():
    rec = Recorder()
    # Three messages, each delivered once and parked (limit 1) while its copy travels.
    arrives, lost, stays = (rec.message_sent(message(m), 0.0) for m in ("m1", "m2", "m3"))
    for msg_id, seq in (("m1", arrives), ("m2", lost), ("m3", stays)):
        assert rec.mark_last(msg_id, "dead_lettered", 0.5, "limit 1 reached", 1, seq)
    # The DLQ's own delivery of m1 (attempt 1 afresh) is not the parked copy.
    dlq = rec.message_sent(message("m1"), 0.5)
    rec.message_delivered(arrives, 0.7)
    rec.message_ended(lost, "unavailable", 0.8, "api is down")
    rec.message_delivered(dlq, 0.9)
    # A receiver's verdict on the parked copy after it arrived changes nothing.
    rec.message_ended(arrives, "rejected", 1.0, "unreadable")
    rec.settle_verdicts()  # the run's end
    m = rec.tables()["messages"]
    assert m["outcome"].tolist() == ["dead_lettered"] * 3 + ["delivered"]
    # Each ends when the broker gave up on it; its arrival or loss is kept.
    assert m["ended_at"].tolist()[:3] == [0.5, 0.5, 0.5]
    assert m["delivered_at"].iloc[0] == 0.7 and m["delivered_at"].iloc[1:3].isna().all()
    assert m["reason"].tolist()[:3] == [
        "limit 1 reached; this delivery arrived at 0.700000 s, after that",
        "limit 1 reached; this delivery never arrived (unavailable: api is down)",
        "limit 1 reached; this delivery was still on the wire at the run's end",
    ]


def on_the_wire(flavour: str, visibility: float, latency: float) -> dict[str, Any]:
    """A scenario whose broker parks messages whose delivery copy has not arrived yet.

    With RabbitMQ the consumer is down: the first refused delivery that comes back
    loses its connection, and every unacked delivery (those still travelling too) fails
    at a delivery limit of 1. With SQS the visibility timeout (`visibility`) is shorter
    than the way to the consumer (`latency`), so each delivery's last receive runs out
    while it travels.
    """
    crash = [{"kind": "crash", "start": 0.0, "targets": ["api"]}] if flavour == "rabbitmq" else []
    return {
        "name": f"{flavour}-parks-a-copy-on-the-wire",
        "seed": 5,
        "duration": 6.0,
        "sample_interval": 0.25,
        "agents": [
            {"id": "client", "role": "client"},
            {"id": "api", "role": "service", "service_time": {"dist": "constant", "value": 0.01}},
            {"id": "mq", "role": "broker", "queue": {"flavour": flavour}},
        ],
        "channels": [
            {
                "from": "client",
                "to": "api",
                "protocol": "queue",
                "timeout": None,
                "queue": {"broker": "mq", "max_deliveries": 1, "visibility_timeout": visibility},
            },
        ],
        "network": {"default": {"latency": {"dist": "constant", "value": latency}}},
        "workload": [
            {"from": "client", "to": "api", "arrivals": {"kind": "poisson", "rate": 20.0}}
        ],
        "faults": crash,
    }


@pytest.mark.parametrize(
    ("flavour", "visibility", "latency"), [("rabbitmq", 2.0, 0.03), ("sqs", 0.5, 0.8)]
)
def test_every_dead_letter_of_a_copy_still_on_the_wire_is_a_row(flavour, visibility, latency):
    world = World(loading.validate(on_the_wire(flavour, visibility, latency), "scenario"))
    run = world.run()
    broker = world.agents["mq"].broker  # type: ignore[attr-defined]
    m = run.messages
    parked = m[m["outcome"] == "dead_lettered"]
    assert len(broker.dead_letters) >= 2
    assert len(parked) == len(broker.dead_letters)
    assert (parked["kind"] == "deliver").all()
    # The broker's counts at its last sample agree with the rows parked by then.
    queues = run.queues[~run.queues["queue"].str.endswith(".workers")]
    last = queues[queues["time"] == queues["time"].max()]
    by_then = parked[parked["ended_at"] <= last["time"].max()]
    assert int(last["dead_lettered"].sum()) == len(by_then)
    # Some were parked while their copy travelled (each delivery takes `latency`).
    travelling = parked[parked["ended_at"] < parked["sent_at"] + latency - 1e-9]
    assert not travelling.empty
    assert travelling["reason"].str.contains("never arrived|arrived at|still on the wire").all()


def test_rows_past_a_block_of_defaults_keep_their_times_outcomes_and_errors() -> None:
    # A row's defaults (a copy's delivery and end, a span's end, wait, attempts, error
    # and status) are laid down a block at a time ahead of the rows: rows on both sides
    # of a block's edge read as written, and a delivered copy ends when it arrived
    # unless a verdict ended it later.
    rec = Recorder()
    n = 16384 + 3
    seqs = [rec.message_sent(message(f"m{i}"), float(i)) for i in range(n)]
    spans = [rec.span_start("task", "client", "a", "b", "http", float(i)) for i in range(n)]
    edge = [16382, 16383, 16384, 16385]
    for i in edge:
        rec.message_delivered(seqs[i], i + 0.5)
    rec.message_ended(seqs[16384], "rejected", 16400.0)
    rec.message_ended(seqs[16386], "dropped", 16390.0)
    rec.span_end(spans[16383], "error", 16383.5, "HTTP 500", wait=0.25, status=500)
    rec.span_end(spans[16384], "ok", 16384.5, status=200)
    tables = rec.tables()
    m = tables["messages"].set_index("seq")
    assert len(m) == n
    assert m.loc[edge, "delivered_at"].tolist() == [i + 0.5 for i in edge]
    assert m.loc[edge, "ended_at"].tolist() == [16382.5, 16383.5, 16400.0, 16385.5]
    assert m.loc[edge, "outcome"].tolist() == ["delivered", "delivered", "rejected", "delivered"]
    assert m.loc[16386, "outcome"] == "dropped" and m.loc[16386, "ended_at"] == 16390.0
    assert pd.isna(m.loc[16386, "delivered_at"]) and pd.isna(m.loc[0, "ended_at"])
    s = tables["spans"]
    assert len(s) == n
    row = s.iloc[16383]
    assert (row["outcome"], row["end"], row["error"], row["wait"], row["status"]) == (
        "error", 16383.5, "HTTP 500", 0.25, 500,
    )  # fmt: skip
    row = s.iloc[16384]
    assert (row["outcome"], row["error"], row["status"], row["attempts"]) == ("ok", "", 200, 1)
    last = s.iloc[-1]
    assert (last["outcome"], last["error"], last["wait"], last["status"]) == ("open", "", 0.0, 0)
    assert pd.isna(last["end"]) and last["attempts"] == 1
