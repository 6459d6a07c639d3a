"""Message and span accounting: every row has one outcome and the totals add up.

Checked on every built-in scenario and on hypothesis-generated ones: small random
topologies (full or listed links, some agents unreachable), every latency distribution,
loss, duplication, bandwidth, and every fault kind in random windows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from tests import flow

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))

MESSAGE_OUTCOMES = {
    "delivered",
    "dropped",
    "partitioned",
    "unavailable",
    "rejected",
    "dead_lettered",
    "expired",
    "in_flight",
}
SPAN_OUTCOMES = {
    "ok",
    "error",
    "timeout",
    "deadline_exceeded",
    "rejected",
    "cancelled",
    "partial",
    "open",
}


def check_accounting(run: Any) -> None:
    """Assert the trace contract's accounting invariants on one run."""
    messages, spans = run.messages, run.spans
    duration = run.duration

    # Every row has exactly one outcome, from the allowed set.
    assert messages["outcome"].notna().all()
    assert set(messages["outcome"]) <= MESSAGE_OUTCOMES, set(messages["outcome"])
    assert messages["seq"].tolist() == list(range(len(messages)))

    delivered = messages[messages["outcome"] == "delivered"]
    # A dead-lettered copy was delivered before the broker parked it (protocols.queue),
    # or never arrived at all (Recorder.mark_last).
    others = messages[~messages["outcome"].isin(["delivered", "dead_lettered"])]
    assert (delivered["delivered_at"] >= delivered["sent_at"]).all()
    assert others["delivered_at"].isna().all()
    # A copy ends once, when it is delivered or dies; only copies still on the wire
    # when the run stops have no end, and nothing ends after the run.
    in_flight = messages["outcome"] == "in_flight"
    assert messages.loc[in_flight, "ended_at"].isna().all()
    ended = messages[~in_flight]
    assert ended["ended_at"].notna().all()
    assert (ended["ended_at"] >= ended["sent_at"]).all()
    assert (ended["ended_at"] <= duration).all()
    assert (delivered["ended_at"] == delivered["delivered_at"]).all()
    assert (messages["sent_at"] <= duration).all()

    # The totals add up, here and in the summary.
    by_outcome = messages["outcome"].value_counts()
    assert int(by_outcome.sum()) == len(messages)
    summary = run.summary()
    assert summary["messages"] == len(messages)
    assert summary["messages_by_outcome"] == {k: int(v) for k, v in by_outcome.items()}
    assert sum(summary["messages_by_outcome"].values()) == len(messages)
    assert summary["spans_by_outcome"] == {
        k: int(v) for k, v in spans["outcome"].value_counts().items()
    }

    # Every span has one outcome; `open` exactly for the spans that never ended.
    assert set(spans["outcome"]) <= SPAN_OUTCOMES, set(spans["outcome"])
    assert spans["span_id"].is_unique
    is_open = spans["outcome"] == "open"
    assert spans.loc[is_open, "end"].isna().all()
    closed = spans[~is_open]
    assert closed["end"].notna().all()
    assert (closed["end"] >= closed["start"]).all()
    assert (closed["end"] <= duration).all()
    assert (spans["wait"] >= 0).all()
    # A queue consumer's wait also counts the time the message was ready on the broker,
    # before the consumer's span began (protocols.queue.server).
    queued_here = closed[closed["kind"] != "consumer"]
    assert (queued_here["wait"] <= queued_here["end"] - queued_here["start"] + 1e-9).all()
    parents = spans.loc[spans["parent_id"] != "", "parent_id"]
    assert parents.isin(spans["span_id"]).all()
    senders = messages.loc[messages["span_id"] != "", "span_id"]
    assert senders.isin(spans["span_id"]).all()

    # A response answers a request that exists, and goes back to its sender.
    requests = messages[messages["kind"] == "request"].drop_duplicates("msg_id")
    responses = messages[messages["kind"] == "response"]
    answered = responses.merge(
        requests[["msg_id", "src", "dst", "correlation_id"]],
        left_on="causation_id",
        right_on="msg_id",
        how="left",
        suffixes=("", "_req"),
        validate="many_to_one",
    )
    assert answered["msg_id_req"].notna().all()
    assert (answered["dst"] == answered["src_req"]).all()
    assert (answered["src"] == answered["dst_req"]).all()
    assert (answered["correlation_id"] == answered["correlation_id_req"]).all()

    # A call that got an answer (a status) saw a response delivered to it before it ended.
    # (A request that retries has a parent span over its attempts: it sends nothing itself.)
    attempt_parents = spans.loc[spans["kind"] == "client", "parent_id"]
    answered_calls = spans[
        (spans["kind"] == "client")
        & (spans["status"] > 0)
        & ~spans["span_id"].isin(attempt_parents)
        # A WebSocket connection's status is its close code, and a plugin session's how
        # it closed (sim.agents.plugin_session): neither is an answer to a request.
        & ~spans["name"].isin(["ws.connection", "ws.session"])
        # A queue call publishes and reads its answer from a reply queue: no request rows.
        & (spans["protocol"] != "queue")
    ]
    # A stream that reconnected sent several requests under its span: the last one is answered.
    last_requests = requests.drop_duplicates("span_id", keep="last")
    asked = last_requests.merge(
        answered_calls[["span_id", "end"]], on="span_id", how="inner", validate="one_to_one"
    )
    assert len(asked) == len(answered_calls)
    got = responses[responses["outcome"] == "delivered"].groupby("causation_id")["delivered_at"]
    first_answer = asked["msg_id"].map(got.min()).astype("float64")
    assert (first_answer <= asked["end"]).all()
    # Each delivered request starts at most one handler span on a service.
    services = set(run.agents.loc[run.agents["role"] == "service", "agent"])
    handled = spans[(spans["kind"] == "server") & spans["agent"].isin(services)]
    reached = messages[
        (messages["kind"] == "request")
        & (messages["outcome"] == "delivered")
        & messages["dst"].isin(services)
    ]
    per_agent = handled["agent"].value_counts()
    for agent, count in reached["dst"].value_counts().items():
        assert per_agent.get(agent, 0) <= count
    assert set(per_agent.index) <= set(reached["dst"])

    # A duplicate shares its msg_id with an original copy of the same message.
    # (A queue delivery keeps the msg_id of the message it delivers, and a re-sent publish
    # its own with attempt + 1: protocols.queue.wire.)
    originals = messages[~messages["duplicate"] & (messages["kind"] != "deliver")]
    assert not originals.duplicated(["msg_id", "attempt"]).any()
    duplicates = messages[messages["duplicate"]]
    assert duplicates["msg_id"].isin(originals["msg_id"]).all()
    # A duplicate leaves with the copy it doubles (same message, kind and attempt).
    key = ["msg_id", "kind", "attempt", "sent_at"]
    copies = messages.loc[~messages["duplicate"], key].drop_duplicates()
    pairs = duplicates[key].merge(copies, on=key, how="left", indicator=True)
    assert (pairs["_merge"] == "both").all()


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_builtin_scenario_accounts_for_every_message(path: Path) -> None:
    """Every built-in scenario runs and its trace satisfies the accounting invariants."""
    run = sim.run(path)
    assert len(run.messages) > 0
    check_accounting(run)
    found = {name: flow.CHECKS[name](run) for name in flow.BUILTIN_CHECKS}
    assert not any(found.values()), found


def test_there_are_builtin_scenarios() -> None:
    """The parametrized test above is not vacuous."""
    assert len(SCENARIOS) >= 1


# --- generated scenarios ---------------------------------------------------------------


def distributions(scale: float) -> st.SearchStrategy[dict[str, Any]]:
    """Every latency/service-time distribution, with values around `scale` seconds."""
    value = st.floats(0.0, scale)
    positive = st.floats(scale / 100, scale)
    lognormal = st.tuples(positive, st.floats(1.1, 10.0)).map(
        lambda mp: {"dist": "lognormal", "mean": mp[0], "p99": mp[0] * mp[1]}
    )
    uniform = st.tuples(value, value).map(
        lambda lh: {"dist": "uniform", "low": min(lh), "high": max(lh)}
    )
    return st.one_of(
        value.map(lambda v: {"dist": "constant", "value": v}),
        uniform,
        st.tuples(value, value).map(lambda ms: {"dist": "normal", "mean": ms[0], "sd": ms[1]}),
        positive.map(lambda m: {"dist": "exponential", "mean": m}),
        lognormal,
        st.tuples(positive, st.floats(1.2, 4.0)).map(
            lambda sa: {"dist": "pareto", "scale": sa[0], "alpha": sa[1]}
        ),
    )


def arrivals() -> st.SearchStrategy[dict[str, Any]]:
    """Every arrival process, at rates up to 20 per second."""
    rate = st.floats(0.2, 20.0)
    return st.one_of(
        rate.map(lambda r: {"kind": "poisson", "rate": r}),
        rate.map(lambda r: {"kind": "constant", "rate": r}),
        st.builds(
            lambda size, every, r: {"kind": "bursts", "size": size, "every": every, "rate": r},
            st.integers(1, 10),
            st.floats(1.0, 10.0),
            st.floats(0.0, 5.0),
        ),
        st.builds(lambda a, b: {"kind": "ramp", "start_rate": a, "end_rate": b}, rate, rate),
        st.builds(
            lambda r, s, a, w: {
                "kind": "spike",
                "rate": r,
                "spike_rate": s,
                "spike_start": a,
                "spike_end": a + w,
            },
            rate,
            rate,
            st.floats(0.0, 20.0),
            st.floats(0.0, 10.0),
        ),
    )


@st.composite
def windows(draw: st.DrawFn, duration: float, ends: bool = True) -> dict[str, Any]:
    """A fault window inside the run; sometimes open-ended when `ends` is False."""
    # A window starts before the run ends (a later one is refused).
    start = draw(st.floats(0.0, duration, exclude_max=True))
    if not ends and draw(st.booleans()):
        return {"start": start}
    return {"start": start, "end": start + draw(st.floats(0.0, duration))}


@st.composite
def two_groups(draw: st.DrawFn, ids: list[str]) -> list[list[str]]:
    """Two non-empty disjoint groups of agents."""
    shuffled = draw(st.permutations(ids))
    cut = draw(st.integers(1, len(ids) - 1))
    rest = shuffled[cut:]
    keep = draw(st.integers(1, len(rest)))
    return [sorted(shuffled[:cut]), sorted(rest[:keep])]


FAULT_KINDS = [
    "latency",
    "loss",
    "duplicate",
    "partition",
    "crash",
    "pause",
    "error",
    "overload",
    "overloaded",
    "poison",
]


@st.composite
def faults(
    draw: st.DrawFn, kind: str, ids: list[str], services: list[str], duration: float
) -> dict[str, Any]:
    """One fault of the given kind, scoped to random agents."""
    fault: dict[str, Any] = {"kind": kind, **draw(windows(duration, ends=kind != "crash"))}
    targets = st.lists(st.sampled_from(ids), min_size=1, max_size=len(ids), unique=True)
    if kind == "crash" and draw(st.booleans()):
        # Crash without restart.
        fault.pop("end", None)
    if kind in ("latency", "loss", "duplicate", "partition"):
        scope = draw(st.sampled_from(["all", "targets", "groups"]))
        if scope == "targets" or (kind == "partition" and scope == "all"):
            fault["targets"] = draw(targets)
        elif scope == "groups":
            fault["groups"] = draw(two_groups(ids))
        fault["direction"] = draw(st.sampled_from(["both", "one-way"]))
    if kind == "latency":
        if draw(st.booleans()):
            fault["add"] = draw(distributions(0.5))
        else:
            fault["multiply"] = draw(st.floats(0.0, 5.0))
    elif kind in ("loss", "duplicate"):
        fault["probability"] = draw(st.floats(0.0, 1.0))
    elif kind in ("crash", "pause"):
        fault["targets"] = draw(targets)
    elif kind == "error":
        fault["targets"] = draw(targets)
        fault["status"] = draw(st.sampled_from([500, 503]))
        if draw(st.booleans()):
            fault["first"] = draw(st.integers(1, 20))
        else:
            fault["fraction"] = draw(st.floats(0.0, 1.0))
    elif kind == "overload":
        fault["targets"] = draw(targets)
        fault["factor"] = draw(st.floats(0.1, 10.0))
    elif kind == "overloaded":
        fault["targets"] = draw(targets)
        fault["status"] = draw(st.sampled_from([529, 503]))
        fault["fraction"] = draw(st.floats(0.0, 1.0))
        if draw(st.booleans()):
            fault["burst"] = draw(st.floats(0.1, 5.0))
            fault["every"] = fault["burst"] + draw(st.floats(0.0, 5.0))
    elif kind == "poison":
        fault["from"] = draw(st.sampled_from(ids))
        fault["to"] = draw(st.sampled_from(services or ids))
        fault["count"] = draw(st.integers(1, 5))
    return fault


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A small random scenario exercising the network, the agents and the faults."""
    n = draw(st.integers(2, 5))
    ids = [f"a{i}" for i in range(n)]
    n_clients = draw(st.integers(1, n - 1))
    clients, services = ids[:n_clients], ids[n_clients:]
    duration = draw(st.floats(1.0, 30.0))
    agents: list[dict[str, Any]] = [{"id": c, "role": "client"} for c in clients]
    for i, s in enumerate(services):
        agent: dict[str, Any] = {
            "id": s,
            "role": "service",
            "workers": draw(st.integers(1, 4)),
            "service_time": draw(distributions(0.3)),
            # Downstream calls go to later services only, so calls never loop.
            "calls": draw(st.lists(st.sampled_from(services[i + 1 :]), max_size=2))
            if i + 1 < len(services)
            else [],
        }
        if draw(st.booleans()):
            agent["queue_limit"] = draw(st.integers(0, 5))
        agents.append(agent)
    channels = [
        {"from": a, "to": b, "timeout": draw(st.one_of(st.none(), st.floats(0.05, 10.0)))}
        for a in ids
        for b in ids
        if a != b and draw(st.booleans())
    ]
    link_props = st.fixed_dictionaries(
        {"latency": distributions(0.2)},
        optional={
            "loss": st.floats(0.0, 0.3),
            "duplicate": st.floats(0.0, 0.3),
            "bandwidth": st.floats(1_000.0, 1_000_000.0),
        },
    )
    network: dict[str, Any] = {"default": draw(link_props)}
    pairs = [(a, b) for a in ids for b in ids if a < b]
    if draw(st.booleans()):
        # Only listed links exist; agents left out of every link are unreachable.
        network["topology"] = "links"
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs)))
    network["links"] = [
        {"from": a, "to": b, "symmetric": draw(st.booleans()), **draw(link_props)}
        for a, b in chosen
    ]
    workload = [
        {
            "from": c,
            # Only a service answers: a workload at a client is refused.
            "to": draw(st.sampled_from(services)),
            "arrivals": draw(arrivals()),
            "size_bytes": draw(st.integers(0, 2_000)),
            "start": draw(st.floats(0.0, duration / 2)),
        }
        for c in clients
        for _ in range(draw(st.integers(1, 2)))
    ]
    return {
        "name": "generated",
        "seed": draw(st.integers(0, 2**32 - 1)),
        "duration": duration,
        "agents": agents,
        "channels": channels,
        "network": network,
        "workload": workload,
        # Each kind in about half of the examples, plus a few more windows that may
        # overlap them.
        "faults": [
            draw(faults(kind, ids, services, duration))
            for kind in [k for k in FAULT_KINDS if draw(st.booleans())]
            + draw(st.lists(st.sampled_from(FAULT_KINDS), max_size=2))
        ],
    }


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_generated_scenarios_account_for_every_message(scenario: dict[str, Any]) -> None:
    """Random scenarios run without raising and satisfy the accounting invariants."""
    check_accounting(sim.run(scenario))


# --- the checker itself ------------------------------------------------------------------


def _corrupt(messages: pd.DataFrame, spans: pd.DataFrame, how: str) -> None:
    """Break one invariant of a good trace, in place."""
    first = messages.index[0]  # a delivered request in the basic scenario
    if how == "unknown outcome":
        messages.loc[first, "outcome"] = "lost"
    elif how == "delivered without a time":
        messages.loc[first, "delivered_at"] = math.nan
    elif how == "dropped with a delivery time":
        messages.loc[first, "outcome"] = "dropped"
    elif how == "orphan duplicate":
        messages.loc[first, "duplicate"] = True
    elif how == "response to nothing":
        messages.loc[messages["kind"] == "response", "causation_id"] = "nope"
    elif how == "open span with an end":
        spans.loc[spans["outcome"] == "ok", "outcome"] = "open"
    elif how == "span ends after the run":
        spans["end"] += 1_000
    else:
        raise AssertionError(how)


CORRUPTIONS = [
    "unknown outcome",
    "delivered without a time",
    "dropped with a delivery time",
    "orphan duplicate",
    "response to nothing",
    "open span with an end",
    "span ends after the run",
]


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_checker_rejects_a_broken_trace(how: str) -> None:
    """The invariants can fail: each corruption of a good trace is caught."""
    run = sim.run("basic", duration=5)
    check_accounting(run)
    messages, spans = run.messages.copy(), run.spans.copy()
    _corrupt(messages, spans, how)
    run.tables["messages"], run.tables["spans"] = messages, spans
    with pytest.raises(AssertionError):
        check_accounting(run)
