"""The agent API's primitives the collaboration's roles needed: spans of the code's own
(`ctx.span`), events between handlers (`ctx.event`), a work draw split in parts
(`ctx.draw`), schema reads and dead-lettering (`ctx.read`, `ctx.dead_letter`), the
version an agent speaks (`ctx.version`), a role's own poison handling (`on_poison`),
and an agent's queue deduper (`PluginAgent.dedupe`); and the collaboration itself,
whose negotiation is now a WebSocket session."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

import sim
from sim import loading
from sim.checks import violations
from sim.plugins import register_role, unregister_role
from sim.world import World
from tests.test_accounting import check_accounting

PERFECT = {"default": {"latency": {"dist": "constant", "value": 0.005}}}


class Planner:
    """Plans under a span of its own (its call to the tool hangs under it), then marks
    the answer with another; a third span is left by an exception."""

    def on_task_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        with ctx.span("plan", peer="tool") as plan:
            answer = yield ctx.call("tool", "tool.run")
            plan.end("ok", "planned", attempts=1)
        ctx.span("verdict", protocol="http").end("partial", "half done", attempts=1,
                                                 status=206, answered=1)  # fmt: skip
        try:
            with ctx.span("doomed"):
                raise KeyError("gone")
        except KeyError:
            pass
        return answer.body


class Napper:
    """Naps under a span of its own."""

    def on_task_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        with ctx.span("nap"):
            yield ctx.sleep(5)


class Tool:
    """Works, then answers."""

    def on_tool_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.work(0.01)
        return "done"


class Whole:
    """Works its service time in one piece."""

    def on_task_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.work()


class Parts:
    """Works its service time in three parts of one draw."""

    def on_task_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        total = ctx.draw()
        for _ in range(3):
            yield ctx.work(total / 3)


class Pairs:
    """Answers requests in pairs: the first of a pair waits (`ctx.event`) for the second."""

    def on_task_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        waiting = ctx.state.pop("waiting", None)
        if waiting is not None:
            waiting.succeed(request.correlation_id)
            return "second"
        ctx.state["waiting"] = mine = ctx.event()
        partner = yield mine | ctx.sleep(30)
        return f"after {partner[mine]}" if mine in partner else "alone"


class Reporter:
    """Publishes a task.result for each task in the version it speaks (v2 from 10 s on,
    set in main); every third v2 result has no confidence (NaN), which v2 refuses."""

    def main(self, ctx: sim.AgentContext) -> Any:
        yield ctx.sleep(10)
        ctx.version = 2

    def on_task_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        n = ctx.state["n"] = ctx.state.get("n", 0) + 1
        cid = request.correlation_id
        if ctx.version >= 2:
            confidence = math.nan if n % 3 == 0 else 0.9
            body = {"task_id": cid, "state": "completed", "parts": [{"text": "x"}],
                    "confidence": confidence}  # fmt: skip
        else:
            body = {"task_id": cid, "status": "completed", "output": "x"}
        yield ctx.publish("reader", "task.result", body)


class Reader:
    """Reads results as v1: converts v2, dead-letters what cannot be read."""

    def on_task_result(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        try:
            read = ctx.read(request, reads=[1])
        except sim.Unreadable as exc:
            ctx.dead_letter(exc.reason)
            return
        ctx.respond(200, error=f"read v{request.version} as v{read.version}: "
                               f"{read.data['output']}")  # fmt: skip


class Sink:
    """Takes what its queue brings, after some work."""

    def on_request(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.work()


class Brittle(Sink):
    """A sink whose handler fails on a poison message at once, saying so."""

    def on_poison(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        ctx.respond(500, error="cannot parse it")


ROLES = {"s-planner": Planner, "s-tool": Tool, "s-whole": Whole, "s-parts": Parts,
         "s-pairs": Pairs, "s-reporter": Reporter, "s-reader": Reader, "s-sink": Sink,
         "s-brittle": Brittle, "s-napper": Napper}  # fmt: skip


@pytest.fixture(autouse=True)
def roles() -> Iterator[None]:
    for name, cls in ROLES.items():
        register_role(name, cls)
    yield
    for name in ROLES:
        unregister_role(name)


def scenario(agents: list[dict[str, Any]], channels: list[dict[str, Any]], rate: float = 2.0,
             duration: float = 30, **extra: Any) -> sim.Scenario:  # fmt: skip
    data = {
        "name": "steps", "seed": 5, "duration": duration,
        "agents": [{"id": "client", "role": "client"}, *agents],
        "channels": [{"from": "client", "to": agents[0]["id"], "timeout": 60}, *channels],
        "network": PERFECT,
        "workload": [{"from": "client", "to": agents[0]["id"], "type": "task.run",
                      "arrivals": {"kind": "poisson", "rate": rate}}],
        **extra,
    }  # fmt: skip
    return loading.validate(data, "steps")


def holds(run: sim.Run) -> None:
    assert violations(run) == {}
    check_accounting(run)


def test_a_span_of_the_codes_own_is_the_parent_of_what_it_starts() -> None:
    run = sim.run(scenario([{"id": "planner", "role": "s-planner"}, {"id": "tool", "role": "s-tool"}],
                           [{"from": "planner", "to": "tool", "timeout": 5}]))  # fmt: skip
    holds(run)
    s = run.spans
    served = s[(s["agent"] == "planner") & (s["kind"] == "server")].set_index("correlation_id")
    plans = s[s["name"] == "plan"]
    assert len(plans) == len(served) > 20
    assert (plans["kind"] == "internal").all() and (plans["peer"] == "tool").all()
    assert (plans["outcome"] == "ok").all() and (plans["error"] == "planned").all()
    # Each plan is a child of its request's server span, in its trace...
    assert (plans["parent_id"].to_numpy() == served.loc[plans["correlation_id"], "span_id"]).all()
    # ...and the call to the tool is a child of the plan, which lasts as long as it.
    calls = s[(s["agent"] == "planner") & (s["kind"] == "client")].set_index("parent_id")
    assert set(calls.index) == set(plans["span_id"])
    assert (plans["end"] - plans["start"]).min() >= 0.02 - 1e-9  # two hops and its work
    verdicts = s[s["name"] == "verdict"]
    assert len(verdicts) == len(plans)
    assert verdicts[["outcome", "error", "attempts", "status", "answered"]].drop_duplicates(
    ).to_dict("records") == [{"outcome": "partial", "error": "half done", "attempts": 1,
                              "status": 206, "answered": 1}]  # fmt: skip
    doomed = s[s["name"] == "doomed"]
    assert len(doomed) == len(plans)
    assert (doomed["outcome"] == "error").all() and (doomed["error"] == "KeyError: 'gone'").all()
    # The request itself answered 200.
    assert (served["status"] == 200).all()


def test_a_span_the_agent_crashed_in_ends_when_it_crashed() -> None:
    faults = [{"kind": "crash", "targets": ["napper"], "start": 10, "end": 12}]
    run = sim.run(
        scenario([{"id": "napper", "role": "s-napper", "workers": 64}], [], faults=faults)
    )
    s = run.spans
    naps = s[s["name"] == "nap"]
    cut = naps[(naps["start"] < 10) & (naps["start"] > 5)]
    assert len(cut) > 3
    assert (cut["end"] == 10).all() and (cut["outcome"] == "error").all()
    assert (cut["error"] == "crashed").all()
    whole = naps[naps["start"].between(12, 24)]
    assert len(whole) > 10
    assert ((whole["end"] - whole["start"] - 5).abs() < 1e-9).all()
    assert (whole["outcome"] == "ok").all()


def test_a_draw_split_in_parts_works_as_long_as_the_whole() -> None:
    def durations(role: str) -> pd.Series:
        agent = {"id": "svc", "role": role, "workers": 64,
                 "service_time": {"dist": "lognormal", "mean": 0.2, "p99": 1.0}}  # fmt: skip
        s = sim.run(scenario([agent], [])).spans
        served = s[(s["agent"] == "svc") & (s["kind"] == "server")]
        return (served["end"] - served["start"]).reset_index(drop=True)

    whole, parts = durations("s-whole"), durations("s-parts")
    assert len(whole) > 20
    assert ((whole - parts).abs() < 1e-9).all()


def test_an_event_of_the_codes_own_lets_one_request_wait_for_another() -> None:
    run = sim.run(scenario([{"id": "pairs", "role": "s-pairs", "workers": 8}], [], rate=1.0))
    holds(run)
    s = run.spans
    served = s[(s["agent"] == "pairs") & (s["kind"] == "server")].sort_values("start")
    done = served[served["outcome"] == "ok"]
    assert len(done) > 20
    # The first of each pair ends when the second arrives: at the same instant.
    firsts, seconds = done.iloc[0::2], done.iloc[1::2]
    n = min(len(firsts), len(seconds))
    assert (firsts["end"].to_numpy()[:n] == seconds["start"].to_numpy()[:n]).all()


def read_scenario() -> sim.Scenario:
    agents = [{"id": "reporter", "role": "s-reporter", "workers": 4},
              {"id": "reader", "role": "s-reader", "workers": 4}, {"id": "broker", "role": "broker"}]  # fmt: skip
    channels = [{"from": "reporter", "to": "reader", "protocol": "queue"}]
    return scenario(agents, channels, rate=3.0)


def test_a_result_is_read_through_the_schema_registry_and_the_unreadable_dead_lettered() -> None:
    run = sim.run(read_scenario())
    holds(run)
    m, s = run.messages, run.spans
    published = m[(m["kind"] == "publish") & (m["type"] == "task.result")]
    # The version set in main is on every message the agent sends from then on.
    assert set(published[published["sent_at"] < 10]["version"]) == {1}
    assert set(published[published["sent_at"] >= 10]["version"]) == {2}
    read = s[(s["agent"] == "reader") & (s["kind"] == "consumer")]
    assert (read[read["start"] < 10]["error"] == "read v1 as v1: x").all()
    converted = read[read["error"] == "read v2 as v1: x"]
    assert len(converted) > 20 and converted["start"].min() >= 10
    rejected = read[read["outcome"] == "rejected"]
    assert len(rejected) > 5
    assert rejected["error"].str.contains("task.result v2").all()
    dead = m[m["outcome"] == "dead_lettered"]
    assert len(dead) == len(rejected)
    assert dead["reason"].str.contains("confidence").all()


def poison_scenario(role: str, **channel: Any) -> sim.Scenario:
    agents = [{"id": "feeder", "role": "s-sink"}, {"id": "sink", "role": role, "workers": 2,
              "service_time": {"dist": "constant", "value": 0.5}}, {"id": "broker", "role": "broker"}]  # fmt: skip
    channels = [{"from": "feeder", "to": "sink", "protocol": "queue",
                 "queue": {"on_error": "dead_letter", **channel}}]  # fmt: skip
    faults = [{"kind": "poison", "from": "feeder", "to": "sink", "count": 3, "start": 5, "end": 15}]
    return scenario(agents, channels, faults=faults)


def test_a_role_says_how_its_handler_fails_on_a_poison_message() -> None:
    def poisoned(role: str) -> pd.DataFrame:
        run = sim.run(poison_scenario(role))
        s = run.spans
        assert len(run.messages[run.messages["outcome"] == "dead_lettered"]) == 3
        return s[(s["agent"] == "sink") & (s["kind"] == "consumer")]

    default, own = poisoned("s-sink"), poisoned("s-brittle")
    assert len(default) == len(own) == 3
    # By default it fails after a service time, as a service's handler does...
    assert ((default["end"] - default["start"]) >= 0.5).all()
    assert (default["error"] == "poison message: the handler failed").all()
    # ...on_poison fails it as the role says, here at once.
    assert ((own["end"] - own["start"]) < 1e-9).all()
    assert (own["error"] == "cannot parse it").all() and (own["status"] == 500).all()


def test_a_plugin_consumer_without_its_deduper_applies_duplicates_twice() -> None:
    data = read_scenario().model_dump(by_alias=True, exclude_unset=True)
    data["network"] = {"default": {"latency": {"dist": "constant", "value": 0.005},
                                   "duplicate": 0.3}}  # fmt: skip
    data["channels"][1]["queue"] = {"idempotent": True}
    scn = loading.validate(data, "steps")
    clean = World(scn)
    assert clean.agents["reader"].dedupe is not None  # type: ignore[attr-defined]
    assert "exactly_once" not in violations(clean.run())
    broken = World(scn)
    broken.agents["reader"].dedupe = None  # type: ignore[attr-defined]
    found = violations(broken.run())
    assert list(found) == ["exactly_once"]
    assert (found["exactly_once"]["agent"] == "reader").all()


def test_the_collaborations_negotiation_is_a_websocket_session_under_the_review() -> None:
    run = sim.run(loading.load("collaboration", ["duration=40"]))
    s, m = run.spans.set_index("span_id"), run.messages
    talks = s[(s["name"] == "negotiate") & (s["kind"] == "client")]
    sessions = s[(s["name"] == "ws.session") & (s["kind"] == "client")]
    assert len(talks) > 20
    # The writer's session is opened under its negotiation, the critic's under it.
    assert set(sessions["parent_id"]) == set(talks.index)
    served = s[(s["name"] == "ws.session") & (s["kind"] == "server")]
    assert set(served["parent_id"]) <= set(sessions.index)
    critics = s[(s["name"] == "negotiate") & (s["kind"] == "server")]
    assert set(critics["parent_id"]) <= set(served.index)
    # Each task's bids lie between its session's open and close, in its trace.
    for cid in talks["correlation_id"].head(10):
        task = m[(m["correlation_id"] == cid) & (m["protocol"] == "websocket")
                 & (m["kind"] == "event")].sort_values("seq")  # fmt: skip
        kinds = task["type"].tolist()
        assert kinds[:2] == ["session.open", "session.accept"]
        assert kinds[-1] == "session.close"
        assert {t for t in kinds[2:-2] if not t.startswith("session.")} <= {
            "negotiation.bid",
            "negotiation.agree",
        }
    assert not violations(run)
