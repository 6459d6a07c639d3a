"""Queues in the agent API (sim.agents.plugin_queue): publish, consume, request-reply.

Each over a perfect and a faulty network (loss, duplicates), and under a broker's or a
consumer's crash: the trace has the rows the queue protocol promises (a producer span
per publish, a consumer span per delivery, acks, redeliveries, dead letters with their
reasons), the code sees what it should (confirms, bodies, replies, errors it can catch),
and the invariant checks and the message accounting hold.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

import sim
from sim import loading
from sim.plugins import register_role, unregister_role
from sim.world import World
from tests.test_accounting import check_accounting

# --- the roles under test --------------------------------------------------------------


class Producer:
    """Publishes one event per task to `sink`'s queue, then answers with its message id."""

    def on_task_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.work(0.01)
        try:
            done = yield ctx.publish("sink", "event.logged", {"cid": request.correlation_id})
        except sim.CallFailed as exc:
            ctx.respond(502, error=str(exc))
            return None
        assert isinstance(done, sim.Published) and done.queue == "sink.requests"
        ctx.durable.setdefault("confirmed", []).append(done.msg_id)
        return done.msg_id


class Sink:
    """Handles the events delivered from its queue; remembers what it got."""

    def on_event_logged(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.work(0.02)
        assert request.protocol == "queue"
        ctx.durable.setdefault("got", []).append((request.msg_id, request.body["cid"]))


class Feeder:
    """A main loop that publishes a numbered job to the queue `jobs` every 0.5 s."""

    def main(self, ctx: sim.AgentContext) -> Any:
        n = ctx.durable.get("n", 0)
        while n < 20:
            yield ctx.sleep(0.5)
            n = ctx.durable["n"] = n + 1
            yield ctx.publish("jobs", "job.run", {"n": n})


class Picky:
    """Consumes `jobs` with its own handler, which fails on every third job."""

    def main(self, ctx: sim.AgentContext) -> Any:
        ctx.consume("jobs", self.take)
        ctx.consume("jobs", self.take)  # again: a no-op
        yield ctx.sleep(0)

    def take(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.work(0.05)
        if request.body["n"] % 3 == 0:
            raise RuntimeError(f"job {request.body['n']} is cursed")
        ctx.durable.setdefault("done", []).append(request.body["n"])


class Busy:
    """Consumes `jobs` and serves requests, a second of work each."""

    def main(self, ctx: sim.AgentContext) -> Any:
        ctx.consume("jobs", self.take)
        yield ctx.sleep(0)

    def take(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.work(1.0)

    def on_task_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.work(1.0)


class Asker:
    """Request-reply by hand: publish with reply=True, then wait for the reply."""

    def on_task_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        sent = ctx.publish("tool", "tool.use", {"q": request.correlation_id}, reply=True)
        try:
            answer = yield ctx.wait_reply(sent, timeout=1.0)
        except sim.CallTimeout:
            ctx.respond(504, error="no reply in time")
            return None
        except sim.CallFailed as exc:
            ctx.respond(502, error=f"tool answered {exc.status}")
            return None
        if ctx.spec.calls:  # and an ordinary call over the same queue channel
            again = yield ctx.call("tool", "tool.use", {"q": request.correlation_id})
            assert again.body == answer.body
        return answer.body


class Echo:
    """Answers a request from its queue with a body."""

    def on_tool_use(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.work({"dist": "exponential", "mean": 0.02})
        return {"echo": request.body["q"]}


class Misuser:
    """Uses the queue primitives wrongly, once per request type."""

    def on_over_http(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.publish("api", "x")

    def on_no_reply(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.wait_reply("m1")


ROLES = {"q-producer": Producer, "q-sink": Sink, "q-feeder": Feeder, "q-picky": Picky, "q-busy": Busy,
         "q-asker": Asker, "q-echo": Echo, "q-misuser": Misuser}  # fmt: skip


@pytest.fixture(autouse=True)
def roles() -> Iterator[None]:
    for name, cls in ROLES.items():
        register_role(name, cls)
    yield
    for name in ROLES:
        unregister_role(name)


PERFECT = {"default": {"latency": {"dist": "constant", "value": 0.005}}}
FAULTY = {"default": {"latency": {"dist": "normal", "mean": 0.005, "sd": 0.001}, "loss": 0.05,
                      "duplicate": 0.05}}  # fmt: skip
NETWORKS = {"perfect": PERFECT, "faulty": FAULTY}


def holds(run: sim.Run) -> None:
    """The invariant checks and the message accounting hold on `run`."""
    assert sim.checks.violations(run) == {}
    check_accounting(run)


def spans_of(run: sim.Run, agent: str, kind: str, name: str | None = None) -> pd.DataFrame:
    spans = run.spans
    chosen = spans[(spans["agent"] == agent) & (spans["kind"] == kind)]
    return chosen if name is None else chosen[chosen["name"] == name]


def broker_totals(world: World, queue: str) -> dict[str, int]:
    """The broker's totals of `queue` at the run's end (its samples lag by a second)."""
    broker: Any = world.agents["broker"]
    q = broker.broker.queues[queue]
    return {"enqueued": q.enqueued, "acked": q.acked, "dead_lettered": q.dead_lettered,
            "depth": q.depth, "in_flight": len(q.in_flight)}  # fmt: skip


def held(world: World, queue: str) -> set[str]:
    """The messages the broker still holds in `queue` at the run's end (ready or unacked)."""
    broker: Any = world.agents["broker"]
    q = broker.broker.queues[queue]
    return {m.msg_id for m in [*q.ready, *q.in_flight.values()]}


# --- publish, to an agent's queue --------------------------------------------------------


def publish_scenario(network: dict[str, Any], **queue: Any) -> dict[str, Any]:
    return {
        "name": "publish",
        "seed": 3,
        "duration": 30,
        "agents": [
            {"id": "client", "role": "client"},
            {"id": "producer", "role": "q-producer", "workers": 4},
            {"id": "sink", "role": "q-sink", "workers": 2},
            {"id": "broker", "role": "broker"},
        ],
        "channels": [
            {"from": "client", "to": "producer", "timeout": 5},
            {"from": "producer", "to": "sink", "protocol": "queue", "queue": queue},
        ],
        "network": copy.deepcopy(network),
        "workload": [{"from": "client", "to": "producer", "type": "task.run",
                      "arrivals": {"kind": "poisson", "rate": 5}}],
    }  # fmt: skip


@pytest.mark.parametrize("network", NETWORKS, ids=list(NETWORKS))
def test_publish_is_confirmed_and_every_message_is_consumed(network: str) -> None:
    data = publish_scenario(NETWORKS[network], visibility_timeout=2)
    world = World(loading.validate(data, "publish"))
    run = world.run()
    holds(run)
    producer: Any = world.agents["producer"]
    sink: Any = world.agents["sink"]
    confirmed = producer.durable["confirmed"]
    got = sink.durable["got"]
    published = spans_of(run, "producer", "producer", "event.logged")
    consumed = spans_of(run, "sink", "consumer", "event.logged")
    served = spans_of(run, "producer", "server", "task.run")
    m = run.messages
    publishes = m[(m["kind"] == "publish") & (m["src"] == "producer")]
    # One producer span per publish, under the request it was made for, in its trace.
    assert len(published) == len(confirmed) + int((published["outcome"] != "ok").sum())
    assert set(published["parent_id"]) <= set(served["span_id"])
    assert publishes["msg_id"].nunique() == len(published)
    # What was confirmed was consumed (or is held still, at the end, for redelivery),
    # each delivery a consumer span and an ack.
    assert set(confirmed) <= {msg_id for msg_id, _ in got} | held(world, "sink.requests")
    assert {cid for _, cid in got} <= set(served["correlation_id"])
    assert len(consumed) >= len(got)
    acks = m[(m["kind"] == "ack") & (m["src"] == "sink")]
    totals = broker_totals(world, "sink.requests")
    assert totals["dead_lettered"] == 0
    if network == "perfect":
        assert len(confirmed) == len(got) == len(served) == run.summary()["requests"] > 100
        assert (published["outcome"] == "ok").all() and (consumed["outcome"] == "ok").all()
        assert len(publishes) == len(acks) == len(got)
        assert totals["enqueued"] == totals["acked"] == len(got)
    else:
        # Lost confirms: re-sent publishes (same msg_id, attempt 2), stored twice; lost
        # acks: redeliveries. At least once: some messages are handled twice.
        assert (publishes["attempt"] > 1).any()
        assert len(got) > len({msg_id for msg_id, _ in got})
        assert totals["enqueued"] > publishes["msg_id"].nunique() * 0.99
    assert run.summary()["exceptions"] == 0


@pytest.mark.parametrize("target", ["broker", "sink"])
def test_published_messages_outlive_a_broker_or_consumer_crash(target: str) -> None:
    # Idempotent: the sink dedupes redeliveries, so each message takes effect once.
    data = publish_scenario(PERFECT, idempotent=True, visibility_timeout=2)
    data["faults"] = [{"kind": "crash", "targets": [target], "start": 10, "end": 12}]
    world = World(loading.validate(data, "crash"))
    run = world.run()
    holds(run)
    producer: Any = world.agents["producer"]
    confirmed = producer.durable["confirmed"]
    effects = run.effects[run.effects["agent"] == "sink"]
    # Every confirmed publish took effect exactly once at the sink, crash or not.
    assert set(confirmed) <= set(effects["key"])
    assert effects["key"].is_unique
    published = spans_of(run, "producer", "producer", "event.logged")
    served = spans_of(run, "producer", "server", "task.run")
    if target == "broker":
        # Publishes to the down broker were refused and re-sent; some never confirmed.
        assert (published["outcome"] == "error").any() or len(confirmed) == len(published)
        assert (served.loc[served["status"] == 502, "error"].str.contains("publish failed")).all()
    else:
        # The sink lost what it held: redelivered after the visibility timeout.
        assert (run.messages.loc[run.messages["kind"] == "deliver", "attempt"] > 1).any()
        assert len(confirmed) == len(published)


# --- consume, a named queue, with a handler that fails ------------------------------------


def jobs_scenario(network: dict[str, Any], **queue: Any) -> dict[str, Any]:
    # No channel reaches `jobs`: its settings are the broker's.
    return {
        "name": "jobs",
        "seed": 4,
        "duration": 40,
        "agents": [
            {"id": "feeder", "role": "q-feeder"},
            {"id": "picky", "role": "q-picky", "workers": 2},
            {"id": "broker", "role": "broker", "queue": queue},
        ],
        "network": copy.deepcopy(network),
    }


@pytest.mark.parametrize("network", NETWORKS, ids=list(NETWORKS))
def test_a_consumed_queue_acks_what_its_handler_took_and_dead_letters_what_it_raised_on(
    network: str,
) -> None:
    data = jobs_scenario(NETWORKS[network], visibility_timeout=1, max_deliveries=3)
    world = World(loading.validate(data, "jobs"))
    run = world.run()
    holds(run)
    picky: Any = world.agents["picky"]
    done = set(picky.durable["done"])
    cursed = {n for n in range(1, 21) if n % 3 == 0}
    consumed = spans_of(run, "picky", "consumer", "job.run")
    failed = consumed[consumed["outcome"] == "error"]
    assert failed["error"].str.match(r"raised RuntimeError: job \d+ is cursed \(at ").all()
    letters = run.messages[run.messages["outcome"] == "dead_lettered"]
    assert (letters["reason"] == "maxReceiveCount 3 reached (3 deliveries)").all()
    totals = broker_totals(world, "jobs")
    if network == "perfect":
        assert done == set(range(1, 21)) - cursed
        # Each cursed job: three deliveries, three error spans, then the DLQ.
        assert len(failed) == 3 * len(cursed)
        assert len(letters) == len(cursed)
        assert totals["dead_lettered"] == len(cursed) and totals["enqueued"] == 20
        assert totals["acked"] == 20 - len(cursed)
        assert broker_totals(world, "jobs.dlq")["depth"] == len(cursed)
    else:
        assert done <= set(range(1, 21)) - cursed and len(done) >= 10
        assert len(letters) >= len(cursed)
    assert run.summary()["exceptions"] == len(failed)


def test_a_consumer_that_crashes_gets_its_jobs_again() -> None:
    data = jobs_scenario(PERFECT, visibility_timeout=1, max_deliveries=5)
    data["faults"] = [{"kind": "crash", "targets": ["picky"], "start": 4, "end": 6}]
    world = World(loading.validate(data, "jobs"))
    run = world.run()
    holds(run)
    picky: Any = world.agents["picky"]
    # main ran again after the restart and consumed again: still one consumer of `jobs`.
    assert len(picky.endpoints.queue.servers) == 1
    assert set(picky.durable["done"]) == {n for n in range(1, 21) if n % 3}
    totals = broker_totals(world, "jobs")
    assert totals["acked"] == 20 - 6 and totals["dead_lettered"] == 6


# --- request-reply -----------------------------------------------------------------------


def ask_scenario(network: dict[str, Any], tool_role: str = "q-echo") -> dict[str, Any]:
    return {
        "name": "ask",
        "seed": 5,
        "duration": 30,
        "agents": [
            {"id": "client", "role": "client"},
            {"id": "asker", "role": "q-asker", "workers": 4},
            {"id": "tool", "role": tool_role, "workers": 2},
            {"id": "broker", "role": "broker"},
        ],
        "channels": [
            {"from": "client", "to": "asker", "timeout": 5},
            {"from": "asker", "to": "tool", "protocol": "queue", "timeout": 1},
        ],
        "network": copy.deepcopy(network),
        "workload": [{"from": "client", "to": "asker", "type": "task.run",
                      "arrivals": {"kind": "poisson", "rate": 5}}],
    }  # fmt: skip


@pytest.mark.parametrize("network", NETWORKS, ids=list(NETWORKS))
def test_request_reply_by_hand_matches_each_reply_to_its_request(network: str) -> None:
    run = sim.run(ask_scenario(NETWORKS[network]))
    holds(run)
    served = spans_of(run, "asker", "server", "task.run")
    waits = spans_of(run, "asker", "internal", "reply")
    published = spans_of(run, "asker", "producer", "tool.use")
    m = run.messages
    requests = m[(m["kind"] == "publish") & (m["src"] == "asker")].drop_duplicates("msg_id")
    replies = m[(m["kind"] == "publish") & (m["src"] == "tool")].drop_duplicates("msg_id")
    # The request names the asker's response queue; each reply's causation id is its
    # request's message id (the AMQP correlation id), in the same trace.
    assert set(replies["causation_id"]) <= set(requests["msg_id"])
    by_request = requests.set_index("msg_id")["correlation_id"]
    assert (replies["correlation_id"] == replies["causation_id"].map(by_request)).all()
    # One wait per request published, under the request the asker serves.
    assert set(waits["parent_id"]) <= set(served["span_id"])
    assert len(waits) == len(published)
    assert set(waits["parent_id"]) == set(published["parent_id"])
    assert not served["error"].str.contains("wrong").any()
    if network == "perfect":
        assert (served["outcome"] == "ok").all() and len(served) > 100
        assert (waits["outcome"] == "ok").all()
        assert len(replies) == len(requests) == len(served) == len(waits)
    else:
        # Lost requests or replies: the wait times out (or, for a request that queued
        # long at the asker, the request's deadline comes first), the asker answers 504.
        timed_out = waits[waits["outcome"] == "timeout"]
        assert len(timed_out) > 0
        assert set(timed_out["error"]) == {"no reply within 1 s"}
        late = waits[waits["outcome"] == "deadline_exceeded"]
        assert set(late["error"]) <= {"the request's deadline passed"}
        assert (served["status"] == 504).sum() == len(timed_out) + len(late)
        assert (waits["outcome"] == "ok").sum() > 20


def test_request_reply_by_hand_and_calls_share_the_response_queue() -> None:
    data = ask_scenario(PERFECT)
    data["agents"][1]["calls"] = ["tool"]
    run = sim.run(data)
    holds(run)
    served = spans_of(run, "asker", "server", "task.run")
    assert (served["outcome"] == "ok").all() and len(served) > 100
    # The Asker asserted that the call's body is the reply's: both came back.
    calls = spans_of(run, "asker", "producer", "tool.use")
    assert len(calls) == 2 * len(served)


def test_request_reply_to_a_built_in_service_gets_its_status() -> None:
    data = ask_scenario(PERFECT, tool_role="service")
    # A queue server answers an error only with on_error: reply (else it is redelivered).
    data["channels"][1]["queue"] = {"on_error": "reply"}
    data["faults"] = [{"kind": "error", "targets": ["tool"], "fraction": 1.0, "status": 503,
                       "start": 10, "end": 15}]  # fmt: skip
    run = sim.run(data)
    holds(run)
    served = spans_of(run, "asker", "server", "task.run")
    waits = spans_of(run, "asker", "internal", "reply")
    window = served[(served["start"] > 10.1) & (served["end"] < 14.9)]
    assert len(window) > 10 and (window["error"] == "tool answered 503").all()
    assert (waits.loc[waits["status"] == 503, "outcome"] == "error").all()
    outside = served[(served["end"] < 9.9) | (served["start"] > 15.1)]
    assert (outside["outcome"] == "ok").all()  # 200, body None: the Asker returned None


def test_misused_queue_primitives_are_errors_in_the_users_code() -> None:
    data = {
        "name": "misuse",
        "duration": 3,
        "agents": [{"id": "client", "role": "client"}, {"id": "m", "role": "q-misuser"},
                   {"id": "api", "role": "service"}, {"id": "broker", "role": "broker"}],
        "channels": [{"from": "m", "to": "api", "timeout": 1}],
        "network": PERFECT,
        "workload": [{"from": "client", "to": "m", "type": t,
                      "arrivals": {"kind": "constant", "rate": 1}}
                     for t in ("over.http", "no.reply")],
    }  # fmt: skip
    run = sim.run(data)
    holds(run)
    served = spans_of(run, "m", "server")
    errors = dict(zip(served["name"], served["error"], strict=False))
    assert errors["over.http"].startswith(
        "raised ValueError: the channel from m to api is http, not queue"
    )
    assert errors["no.reply"].startswith(
        "raised ValueError: wait_reply() waits for a publish made with reply=True, got 'm1'"
    )


def test_what_an_agent_consumes_and_what_it_is_sent_share_its_workers() -> None:
    # One worker, jobs from its queue every 0.5 s and requests over HTTP every 2 s, a
    # second of work each: it works on one at a time (the consumed queue had a pool of
    # its own, so a job and a request were worked on at once).
    data = jobs_scenario(PERFECT)
    data["agents"][1] = {"id": "busy", "role": "q-busy", "workers": 1}
    data["agents"].append({"id": "client", "role": "client"})
    data["channels"] = [{"from": "client", "to": "busy", "timeout": 100}]
    data["workload"] = [{"from": "client", "to": "busy", "type": "task.run", "end": 10,
                         "arrivals": {"kind": "constant", "rate": 0.5}}]  # fmt: skip
    run = sim.run(data)
    spans = run.spans[
        (run.spans["agent"] == "busy") & run.spans["kind"].isin(["server", "consumer"])
    ]
    done = spans[spans["outcome"] == "ok"]
    assert set(done["kind"]) == {"server", "consumer"}
    # Each took exactly its second of work, ending at `end`: the seconds never overlap.
    ends = sorted(done["end"])
    assert pd.Series(ends).diff().min() >= 1.0 - 1e-9
