"""WebSocket sessions in the Python agent API: `ctx.connect` and `on_session`.

Over a perfect network a session opens, carries each message both ways (one data
message each on the record, under each side's `ws.session` span) and closes; over a
lossy one TCP's retransmission hides the loss; a crash ends the sessions on the
connection it breaks, and a partition times them out, with the CallErrors a call
would raise; a role without `on_session` refuses with 501; an exception in
`on_session` is an error span and a 500 to the opener. The checks and the message
accounting hold throughout.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sim
from sim.plugins import register_role, unregister_role
from tests.test_accounting import check_accounting

DRAFTS = 3


class Author:
    """Opens a session to its critic, sends its drafts one by one, reads each review."""

    def on_task_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        try:
            ws = yield ctx.connect("critic")
            reviews = []
            for n in range(DRAFTS):
                ws.send("draft", {"n": n, "task": request.correlation_id})
                msg = yield ws.receive(timeout=2.0)
                if msg is None:
                    ctx.respond(502, error="the critic closed the session")
                    return None
                reviews.append(msg.body)
        except sim.CallTimeout as exc:
            ctx.respond(504, error=f"session timed out: {exc.error}")
            return None
        except sim.CallFailed as exc:
            ctx.respond(502, error=f"session failed ({exc.status}): {exc.error}")
            return None
        ws.close()
        expected = [{"n": n, "task": request.correlation_id, "ok": True} for n in range(DRAFTS)]
        if reviews != expected:
            ctx.respond(500, error=f"wrong reviews: {reviews}")
            return None
        return reviews


class Critic:
    """Serves sessions: reviews each draft after some work, until the author closes."""

    def on_session(self, ctx: sim.AgentContext, session: Any) -> Any:
        while (msg := (yield session.receive())) is not None:
            yield ctx.work(0.02)
            session.send("review", {**msg.body, "ok": True})
        ctx.state["sessions"] = ctx.state.get("sessions", 0) + 1


class Grumpy:
    """Reviews one draft, then its code raises."""

    def on_session(self, ctx: sim.AgentContext, session: Any) -> Any:
        yield session.receive()
        raise RuntimeError("no more drafts")


class Deaf:
    """Serves requests, not sessions."""

    def on_request(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        return None


@pytest.fixture(autouse=True)
def roles() -> Iterator[None]:
    for name, cls in (("t-author", Author), ("t-critic", Critic), ("t-grumpy", Grumpy),
                      ("t-deaf", Deaf)):  # fmt: skip
        register_role(name, cls)
    yield
    for name in ("t-author", "t-critic", "t-grumpy", "t-deaf"):
        unregister_role(name)


PERFECT = {"default": {"latency": {"dist": "constant", "value": 0.005}}}
LOSSY = {"default": {"latency": {"dist": "normal", "mean": 0.005, "sd": 0.001}, "loss": 0.05,
                     "duplicate": 0.02}}  # fmt: skip


def scenario(network: dict[str, Any], critic: str = "t-critic", rate: float = 4) -> dict[str, Any]:
    """client -> author (plugin) -> critic (plugin) over WebSocket."""
    return {
        "name": "session",
        "seed": 4,
        "duration": 30,
        "agents": [
            {"id": "client", "role": "client"},
            {"id": "author", "role": "t-author", "workers": 8},
            {"id": "critic", "role": critic, "workers": 8},
        ],
        "channels": [
            {"from": "client", "to": "author", "timeout": 10},
            {"from": "author", "to": "critic", "protocol": "websocket", "timeout": 2},
        ],
        "network": copy.deepcopy(network),
        "workload": [{"from": "client", "to": "author", "type": "task.run",
                      "arrivals": {"kind": "poisson", "rate": rate}}],
    }  # fmt: skip


def holds(run: sim.Run) -> None:
    assert sim.checks.violations(run) == {}
    check_accounting(run)


def spans(run: sim.Run, agent: str, kind: str, name: str) -> Any:
    """The spans of `agent` of that kind and name that began in time to end in the run."""
    s = run.spans
    s = s[s["start"] < run.duration - 3]
    return s[(s["agent"] == agent) & (s["kind"] == kind) & (s["name"] == name)]


def session_messages(run: sim.Run, tasks: Any) -> Any:
    m = run.messages
    m = m[(m["protocol"] == "websocket") & (m["kind"] == "event")]
    return m[m["correlation_id"].isin(tasks["correlation_id"])]


def test_a_session_carries_each_message_both_ways_on_a_perfect_network() -> None:
    run = sim.run(scenario(PERFECT))
    holds(run)
    served = spans(run, "author", "server", "task.run")
    opened = spans(run, "author", "client", "ws.session")
    accepted = spans(run, "critic", "server", "ws.session")
    n = len(served)
    assert n > 80
    assert (served["outcome"] == "ok").all() and (served["status"] == 200).all()
    # One session per task, under its span; the critic's side is the child of the
    # author's; each side counts the three drafts and the three reviews.
    assert len(opened) == len(accepted) == n
    assert set(opened["parent_id"]) == set(served["span_id"])
    assert set(accepted["parent_id"]) == set(opened["span_id"])
    for side in (opened, accepted):
        assert (side["outcome"] == "ok").all() and (side["attempts"] == 2 * DRAFTS).all()
    # On the wire, per task: open, accept, three drafts, three reviews, close.
    sent = session_messages(run, served)
    assert sent.groupby("type").size().to_dict() == {
        "session.open": n, "session.accept": n, "draft": DRAFTS * n, "review": DRAFTS * n,
        "session.close": n,
    }  # fmt: skip
    assert (sent["outcome"] == "delivered").all()
    # The sessions share the author's one connection to the critic.
    connections = run.spans[run.spans["name"] == "ws.connection"]
    assert len(connections) == 1
    # A session is not a workload request.
    assert run.summary()["requests"] == len(run.spans[run.spans["name"] == "task.run"]) / 2
    assert run.summary()["exceptions"] == 0


def test_a_lossy_network_delays_the_messages_but_loses_none() -> None:
    # One task a second: the sessions share one TCP connection, where each lost frame
    # holds those behind it for a retransmission timeout (1 s at least), so a busier
    # connection would mostly wait.
    run = sim.run(scenario(LOSSY, rate=1))
    holds(run)
    served = spans(run, "author", "server", "task.run")
    ok = served[served["outcome"] == "ok"]
    # TCP under the WebSocket sent again what was lost: the reviews all came, in order
    # (a wrong or missing one would have answered 500).
    m = run.messages
    session = m[(m["protocol"] == "websocket") & (m["kind"] == "event")]
    assert (session["outcome"] == "dropped").any()
    assert (session["attempt"] > 1).any()
    assert not (served["status"] == 500).any()
    assert len(ok) > 0.8 * len(served) and len(served) > 20
    # What did not make it in time timed out, as a call would.
    assert set(served["status"]) <= {200, 504}


def test_a_crash_of_the_critic_ends_the_sessions_on_its_connection() -> None:
    data = scenario(PERFECT)
    data["faults"] = [{"kind": "crash", "targets": ["critic"], "start": 10, "end": 12}]
    run = sim.run(data)
    holds(run)
    served = spans(run, "author", "server", "task.run")
    opened = spans(run, "author", "client", "ws.session")
    accepted = run.spans[(run.spans["agent"] == "critic") & (run.spans["name"] == "ws.session")]
    # The sessions open at the crash end on both sides: the critic's with it, the
    # author's when the reset reaches its connection (a CallFailed its code caught).
    assert (accepted["error"] == "crashed").sum() > 0
    broken = opened[opened["error"].str.startswith("connection to critic closed")]
    assert len(broken) > 0 and (broken["outcome"] == "error").all()
    failed = served[served["status"].isin([502, 504])]
    assert len(failed) >= len(broken)
    # Before the crash and once the critic is back, sessions work again.
    assert (served.loc[served["start"] < 9.8, "status"] == 200).all()
    assert (served.loc[served["start"] > 16, "status"] == 200).all()


def test_a_partition_times_the_sessions_out() -> None:
    data = scenario(PERFECT)
    data["faults"] = [{"kind": "partition", "groups": [["author"], ["critic"]],
                       "start": 10, "end": 12}]  # fmt: skip
    run = sim.run(data)
    holds(run)
    served = spans(run, "author", "server", "task.run")
    during = served[(served["start"] > 10) & (served["start"] < 11)]
    # Nothing crosses: a receive waits its 2 s and raises CallTimeout.
    assert len(during) > 0 and (during["status"] == 504).all()
    assert during["error"].str.startswith("session timed out").all()
    assert (served.loc[served["start"] > 16, "status"] == 200).all()


def test_a_role_without_on_session_refuses_with_501() -> None:
    run = sim.run(scenario(PERFECT, critic="t-deaf"))
    holds(run)
    served = spans(run, "author", "server", "task.run")
    accepted = spans(run, "critic", "server", "ws.session")
    assert (served["status"] == 502).all()
    assert set(served["error"]) == {
        "session failed (501): critic serves no sessions (its role has no on_session)"
    }
    assert (accepted["status"] == 501).all() and (accepted["outcome"] == "error").all()


def test_an_exception_in_on_session_is_an_error_span_and_a_500_to_the_opener() -> None:
    run = sim.run(scenario(PERFECT, critic="t-grumpy"))
    holds(run)
    served = spans(run, "author", "server", "task.run")
    accepted = spans(run, "critic", "server", "ws.session")
    line = Grumpy.on_session.__code__.co_firstlineno + 2
    text = f"raised RuntimeError: no more drafts (at test_agent_session.py:{line})"
    assert set(accepted["error"]) == {text} and (accepted["status"] == 500).all()
    assert set(served["error"]) == {f"session failed (500): {text}"}
    all_accepted = run.spans[(run.spans["agent"] == "critic")]
    assert run.summary()["exceptions"] == (all_accepted["status"] == 500).sum()


def test_connect_over_a_channel_that_is_not_websocket_says_so() -> None:
    data = scenario(PERFECT)
    data["channels"][1]["protocol"] = "http"
    run = sim.run(data)
    served = spans(run, "author", "server", "task.run")
    assert (served["status"] == 500).all()
    assert (
        served["error"]
        .str.startswith(
            "raised ValueError: connect() needs a WebSocket channel, and the channel from author "
            "to critic is http"
        )
        .all()
    )


def test_the_docs_examples_of_streams_and_sessions_run() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "agents.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    examples = [b for b in blocks if '@sim.role("reader")' in b or '@sim.role("author")' in b]
    assert len(examples) == 2
    for code in examples:
        exec(compile(code, "agents.md", "exec"), {"sim": sim})
    try:
        for first, second, protocol in (("reader", "writer", "sse"),
                                        ("author", "critic", "websocket")):  # fmt: skip
            data = scenario(PERFECT)
            data["agents"][1:] = [{"id": first, "role": first, "workers": 8},
                                  {"id": second, "role": second, "workers": 8}]  # fmt: skip
            data["channels"] = [
                {"from": "client", "to": first, "timeout": 10},
                {"from": first, "to": second, "protocol": protocol, "timeout": 2},
            ]
            data["workload"][0]["to"] = first
            run = sim.run(data)
            holds(run)
            served = spans(run, first, "server", "task.run")
            assert len(served) > 80 and (served["status"] == 200).all()
    finally:
        for name in ("reader", "writer", "author", "critic"):
            unregister_role(name)


class Pinger:
    """No handlers: a main loop that opens a session a second, one round trip each."""

    def main(self, ctx: sim.AgentContext) -> Any:
        while True:
            yield ctx.sleep(1.0)
            ws = yield ctx.connect("critic")
            ws.send("draft", {"n": 0, "task": "main"})
            reply = yield ws.receive(timeout=1.0)
            ctx.state.setdefault("replies", []).append(reply.body)
            ws.close()


def test_main_opens_sessions_of_its_own_and_they_are_not_requests() -> None:
    register_role("t-pinger", Pinger)
    try:
        data = scenario(PERFECT)
        data["agents"] = [{"id": "author", "role": "t-pinger"},
                          {"id": "critic", "role": "t-critic"}]  # fmt: skip
        data["channels"] = data["channels"][1:]
        data["workload"] = []
        run = sim.run(data)
    finally:
        unregister_role("t-pinger")
    holds(run)
    opened = run.spans[(run.spans["agent"] == "author") & (run.spans["name"] == "ws.session")]
    # One a second and a round trip: each a trace of its own.
    assert 25 <= len(opened) < 30 and (opened["parent_id"] == "").all()
    assert opened["correlation_id"].is_unique and (opened["outcome"] == "ok").all()
    accepted = run.spans[(run.spans["agent"] == "critic") & (run.spans["name"] == "ws.session")]
    assert set(accepted["parent_id"]) == set(opened["span_id"])
    assert run.summary()["requests"] == 0
