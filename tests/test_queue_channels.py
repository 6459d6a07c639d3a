"""Queue channels in scenarios: each channel's `queue:` settings apply to its own queue and
its consumer, what cannot be per channel is refused, and a crashed consumer is silent."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import sim
from sim import loading
from sim.checks import violations


def scenario(**changes: Any) -> dict[str, Any]:
    """A client that sends to two services over one broker, each on its own channel."""
    data: dict[str, Any] = {
        "name": "two-queues",
        "seed": 3,
        "duration": 40,
        "agents": [
            {"id": "client", "role": "client"},
            {"id": "s1", "workers": 2},
            {"id": "s2", "workers": 2},
            {"id": "broker", "role": "broker"},
        ],
        "channels": [
            {"from": "client", "to": "s1", "protocol": "queue", "timeout": 30},
            {"from": "client", "to": "s2", "protocol": "queue", "timeout": 30},
        ],
        "network": {"default": {"latency": {"dist": "constant", "value": 0.01}}},
        "workload": [
            {"from": "client", "to": dst, "end": 5, "arrivals": {"kind": "constant", "rate": 1}}
            for dst in ("s1", "s2")
        ],
    }
    data.update(changes)
    return data


def test_each_channel_s_delivery_limit_applies_to_its_own_queue():
    data = scenario(
        faults=[{"kind": "error", "targets": ["s1", "s2"], "fraction": 1.0, "status": 500,
                 "start": 0}],
    )  # fmt: skip
    data["channels"][0]["queue"] = {"max_deliveries": 2, "visibility_timeout": 1}
    data["channels"][1]["queue"] = {"max_deliveries": 4, "visibility_timeout": 1}
    run = sim.run(data)
    m = run.messages
    deliveries = m[(m["kind"] == "deliver") & ~m["duplicate"]]
    counts = deliveries.groupby("dst")["msg_id"].value_counts()
    # Every request fails: s1's are delivered twice, s2's four times, then dead-lettered.
    assert set(counts["s1"]) == {2} and len(counts["s1"]) == 5
    assert set(counts["s2"]) == {4} and len(counts["s2"]) == 5
    dead = m[m["outcome"] == "dead_lettered"]
    assert sorted(dead["dst"].value_counts().items()) == [("s1", 5), ("s2", 5)]
    assert set(dead["reason"].str.split(" reached").str[0]) == {
        "maxReceiveCount 2",
        "maxReceiveCount 4",
    }
    last = run.queues.groupby("queue").last()
    assert last.loc["s1.requests", "dead_lettered"] == 5
    assert last.loc["s2.requests", "dead_lettered"] == 5


def test_what_a_channel_leaves_unset_comes_from_its_broker():
    data = scenario(
        faults=[{"kind": "error", "targets": ["s1"], "fraction": 1.0, "status": 500, "start": 0}]
    )
    data["agents"][3]["queue"] = {"max_deliveries": 3, "visibility_timeout": 1}
    data["channels"][0]["queue"] = {"visibility_timeout": 2}
    scn = loading.validate(data, "x")
    settings = scn.queue_settings(scn.channels[0])
    assert (settings.max_deliveries, settings.visibility_timeout) == (3, 2)
    run = sim.run(data)
    m = run.messages
    deliveries = m[(m["kind"] == "deliver") & (m["dst"] == "s1") & ~m["duplicate"]]
    assert set(deliveries["msg_id"].value_counts()) == {3}


def test_each_channel_s_idempotence_applies_to_the_consumer_it_reaches():
    # s1 calls s2 over a queue that is not idempotent (listed first), and is reached over
    # one that is: s1 dedupes the duplicated deliveries, s2 applies them twice.
    data = scenario(
        faults=[{"kind": "duplicate", "targets": ["s1", "s2"], "probability": 0.5, "start": 0}],
    )
    data["agents"][1]["calls"] = ["s2"]
    data["workload"] = data["workload"][:1]
    data["channels"] = [
        {"from": "s1", "to": "s2", "protocol": "queue", "timeout": 10},
        {"from": "client", "to": "s1", "protocol": "queue", "timeout": 30,
         "queue": {"idempotent": True}},
    ]  # fmt: skip
    run = sim.run(data)
    effects = run.effects.groupby("agent")["key"].value_counts()
    assert len(effects["s1"]) == 5 and set(effects["s1"]) == {1}
    assert max(effects["s2"]) > 1
    assert "exactly_once" not in violations(run)


@pytest.mark.parametrize(
    ("where", "value", "says"),
    [
        (
            "sample_interval",
            5.0,
            "channels.0.queue.sample_interval: the sample interval belongs to the broker, "
            "not to a channel: set it in the queue settings of agent 'broker'",
        ),
        (
            "flavour",
            "rabbitmq",
            "channels.0.queue.flavour: the flavour belongs to the broker: agent 'broker' runs "
            "sqs; set flavour: rabbitmq in its queue settings instead",
        ),
    ],
)
def test_a_broker_setting_on_a_channel_is_refused_with_where_it_belongs(where, value, says):
    data = scenario()
    data["channels"][0]["queue"] = {where: value}
    with pytest.raises(loading.ScenarioError) as caught:
        loading.validate(data, "x")
    assert caught.value.lines == [f"x: {says}"]


def test_the_flavour_the_broker_runs_may_be_repeated_on_a_channel():
    data = scenario()
    data["agents"][3]["queue"] = {"flavour": "rabbitmq"}
    data["channels"][0]["queue"] = {"flavour": "rabbitmq", "max_deliveries": 3}
    scn = loading.validate(data, "x")
    settings = scn.queue_settings(scn.channels[1])
    assert (settings.flavour, settings.max_deliveries, settings.on_error) == (
        "rabbitmq",
        20,
        "requeue",
    )


def test_channels_sharing_a_reply_queue_must_agree_on_its_consumer():
    data = scenario()
    data["channels"][0]["queue"] = {"heartbeat": 1}
    with pytest.raises(loading.ScenarioError) as caught:
        loading.validate(data, "x")
    assert caught.value.lines == [
        "x: channels.1.queue.heartbeat: channels.0 and channels.1 share the reply queue "
        "'client.replies' on broker 'broker' and its one consumer, so they must agree on "
        "heartbeat (1.0 and 20.0), or use their own reply queues"
    ]
    data["channels"][1]["queue"] = {"reply_queue": "{agent}.replies-2"}
    loading.validate(data, "x")


def test_channels_sharing_a_queue_must_agree_on_its_settings():
    data = scenario()
    data["agents"].append({"id": "c2", "role": "client"})
    data["channels"].append(
        {"from": "c2", "to": "s1", "protocol": "queue", "queue": {"max_deliveries": 3}}
    )
    with pytest.raises(loading.ScenarioError) as caught:
        loading.validate(data, "x")
    assert caught.value.lines == [
        "x: channels.2.queue.max_deliveries: channels.0 and channels.2 share the queue "
        "'s1.requests' on broker 'broker' and its one consumer, so they must agree on "
        "max_deliveries (None and 3), or use their own queues"
    ]
    # Their own queues, their own settings.
    data["channels"][2]["queue"]["request_queue"] = "{dst}.bulk"
    loading.validate(data, "x")


def test_a_service_reached_over_two_queues_serves_both_with_their_settings():
    data = scenario(
        faults=[{"kind": "error", "targets": ["s1"], "fraction": 1.0, "status": 500, "start": 0}]
    )
    data["agents"].append({"id": "c2", "role": "client"})
    data["channels"] = [
        {"from": "client", "to": "s1", "protocol": "queue", "timeout": 30,
         "queue": {"max_deliveries": 2, "visibility_timeout": 1}},
        {"from": "c2", "to": "s1", "protocol": "queue", "timeout": 30,
         "queue": {"request_queue": "{dst}.bulk", "on_error": "dead_letter"}},
    ]  # fmt: skip
    data["workload"] = [
        {"from": src, "to": "s1", "end": 5, "arrivals": {"kind": "constant", "rate": 1}}
        for src in ("client", "c2")
    ]
    run = sim.run(data)
    last = run.queues.groupby("queue").last()
    # Both queues are consumed; the bulk one rejects to its DLQ on the first failure.
    assert last.loc["s1.requests", "dead_lettered"] == 5
    assert last.loc["s1.bulk", "dead_lettered"] == 5
    m = run.messages
    delivered = m[(m["kind"] == "deliver") & ~m["duplicate"]].groupby("correlation_id").size()
    assert set(delivered[delivered.index.str.startswith("client-")]) == {2}
    assert set(delivered[delivered.index.str.startswith("c2-")]) == {1}


def test_sim_run_of_a_scenario_model_keeps_the_channel_settings_as_written():
    data = scenario()
    data["agents"][3]["queue"] = {"flavour": "rabbitmq", "sample_interval": 5}
    data["channels"][0]["queue"] = {"max_deliveries": 3}
    model = loading.validate(copy.deepcopy(data), "x")
    assert model.model_dump(by_alias=True)["channels"][0]["queue"] == {"max_deliveries": 3}
    # A Scenario goes through its dump: still valid, still over its broker's settings.
    run = sim.run(model)
    assert run.scenario.queue_settings(run.scenario.channels[0]).flavour == "rabbitmq"


def test_a_crashed_queue_consumer_sends_nothing_until_it_restarts():
    # The broker is down from 5 s, so s1's heartbeats are refused; s1 crashes at 10.05 s
    # while a refusal is on its way back. Nothing may leave s1 until it restarts at 20 s.
    data = scenario(
        duration=40,
        faults=[
            {"kind": "crash", "targets": ["broker"], "start": 5, "end": 30},
            {"kind": "crash", "targets": ["s1"], "start": 10.05, "end": 20},
        ],
    )
    data["network"] = {"default": {"latency": {"dist": "constant", "value": 0.1}}}
    data["channels"] = data["channels"][:1]
    data["workload"] = data["workload"][:1]
    data["channels"][0]["queue"] = {"heartbeat": 1, "reconnect_delay": 2}
    run = sim.run(data)
    m = run.messages
    from_s1 = m[m["src"] == "s1"]
    assert from_s1["sent_at"].between(0, 10.05).any()  # it was heard before its crash
    assert not from_s1["sent_at"].between(10.05, 20, inclusive="left").any()
    assert from_s1["sent_at"].between(20, 21).any()  # and subscribes again on restart
