"""Generated scenarios over every protocol, policy and fault, judged by an oracle.

The oracle is the project's own checks (`sim.checks.violations`) plus accounting: the
trace contract's invariants (`tests.test_accounting.check_accounting`), every call with a
deadline ends by it, nothing is sent by or delivered to a crashed agent, each broker's
own counts agree with themselves and with the trace, and the flow checks of
tests/flow.py: Little's law with each worker pool's gauges matching its spans, and on
each broker queue from its messages, pool conservation, retries within max_attempts,
nothing sent past its call's deadline, no handler outliving its cancel, no call waiting
for a connection below its pool's size, a cancelled request's wait, a restarted caller's
fresh retry budget and throttle.

`make test` runs a bounded number of examples; `make fuzz` runs many more
(`SWITCHBOARD_FUZZ_EXAMPLES`, default 2,000) with a random seed each time, and prints a
failing scenario as YAML-ready JSON so it can be saved and replayed with `python -m sim`.
Scenarios it found once are kept in tests/fuzz_repros/ and judged on every run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import sim
from sim.checks import asleep_at_deadline, violations
from tests.flow import flow_violations
from tests.test_accounting import FAULT_KINDS, arrivals, check_accounting, distributions, faults

PROTOCOLS = ["http", "queue", "sse", "websocket"]
BROKER = "mq"
# Fuzzing runs many examples with a fresh seed; the suite runs a fixed, bounded set.
FUZZ_EXAMPLES = int(os.environ.get("SWITCHBOARD_FUZZ_EXAMPLES", "0"))
EXAMPLES = FUZZ_EXAMPLES or 80
# A call's end may trail its deadline by the answer's way back (checks.SLACK).
SLACK = 1e-6
# Generated scenarios that once failed the oracle, kept as they were printed.
REPROS = sorted((Path(__file__).parent / "fuzz_repros").glob("*.json"))


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    """Optional retries, breaker, retry budget and deadline settings of one channel."""
    channel: dict[str, Any] = {}
    if draw(st.booleans()):
        channel["retry"] = {
            "max_attempts": draw(st.integers(1, 4)),
            "backoff": draw(st.sampled_from(["constant", "exponential", "decorrelated"])),
            "jitter": draw(st.sampled_from(["none", "full", "equal"])),
            "base": draw(st.floats(0.01, 0.5)),
        }
    if draw(st.booleans()):
        channel["breaker"] = {
            "window": draw(st.integers(2, 20)),
            "min_calls": draw(st.integers(1, 10)),
            "open_for": draw(st.floats(0.5, 5.0)),
            "half_open_calls": draw(st.integers(1, 3)),
        }
        if draw(st.integers(0, 3)) == 0:
            # Resilience4j's other knobs: a time window, a timer out of OPEN, a bounded
            # HALF_OPEN, a growing OPEN wait, consecutive mode (Envoy's outlier check).
            channel["breaker"].update(
                draw(
                    st.sampled_from(
                        [
                            {"window_type": "time"},
                            {"automatic_transition": True},
                            {"max_half_open": 1.0},
                            {"open_for_multiplier": 2.0, "open_for_max": 8.0},
                            {"mode": "consecutive", "consecutive_failures": 3},
                        ]
                    )
                )
            )
    if "retry" in channel and draw(st.booleans()):
        channel["budget"] = {"kind": "ratio", "ratio": draw(st.floats(0.0, 0.5))}
    if draw(st.booleans()):
        channel["deadline"] = {
            "propagate": draw(st.booleans()),
            "margin": draw(st.floats(0.0, 0.05)),
            "cancel_on_timeout": draw(st.booleans()),
        }
    return channel


FLAVOURS = ["sqs", "rabbitmq", "redis-streams", "pubsub"]


@st.composite
def ordering(draw: st.DrawFn, flavour: str) -> dict[str, Any]:
    """A queue's ordering knobs: an ordered queue of its flavour, and maybe a key."""
    knobs: dict[str, Any] = {}
    if flavour == "sqs" and draw(st.booleans()):
        knobs["fifo"] = True
    if flavour == "pubsub" and draw(st.booleans()):
        knobs["ordered"] = True
    order_by = draw(st.sampled_from([None, None, "producer", "correlation_id"]))
    if order_by is not None:
        knobs["order_by"] = order_by
    return knobs


@st.composite
def pubsub_knobs(draw: st.DrawFn, dst: str, topic: str | None) -> dict[str, Any]:
    """Pub/Sub's own knobs: exactly-once, retry policy, dead-letter topic, push."""
    knobs: dict[str, Any] = {}
    if draw(st.booleans()):
        knobs["exactly_once"] = True
    if draw(st.booleans()):
        low = draw(st.floats(0.0, 2.0))
        knobs.update(retry="exponential", min_backoff=low, max_backoff=low + draw(st.floats(0, 5)))
    if draw(st.booleans()):
        knobs["dead_letter_topic"] = draw(st.sampled_from(["dead", f"{topic}.dead"]))
    if draw(st.booleans()):
        knobs["lease_extension"] = draw(st.floats(0.5, 60.0))
    if topic is not None and "exactly_once" not in knobs and draw(st.booleans()):
        knobs["push_endpoint"] = dst
    return knobs


@st.composite
def subscription(draw: st.DrawFn, src: str, flavour: str) -> dict[str, Any]:
    """What lets a topic's message into one subscription: a filter or a binding."""
    if flavour in ("pubsub", "sqs") and draw(st.booleans()):
        # On the attributes every message has: its type and its producer.
        name = draw(st.sampled_from(["type", "producer"]))
        value = draw(st.sampled_from(["task.run", src, "someone-else"]))
        return {"filter": {name: value}}
    if flavour == "rabbitmq" and draw(st.booleans()):
        return {"binding": draw(st.sampled_from(["#", "task.*", "*.run", "task.#", "order.#"]))}
    return {}


@st.composite
def channel(
    draw: st.DrawFn, src: str, dst: str, flavour: str = "sqs", topic: str | None = None
) -> dict[str, Any]:
    """A channel from `src` to `dst` over a random protocol with random policies; a
    subscription of `topic` (a queue) when one is given."""
    protocol = "queue" if topic is not None else draw(st.sampled_from(PROTOCOLS))
    spec: dict[str, Any] = {
        "from": src,
        "to": dst,
        "protocol": protocol,
        "timeout": draw(st.one_of(st.none(), st.floats(0.05, 10.0))),
        **draw(policies()),
    }
    if protocol == "queue":
        spec["queue"] = {
            "broker": BROKER,
            # A queue of its own: channels sharing one must agree on its settings.
            "request_queue": f"{dst}.from-{src}",
            # Pub/Sub and RabbitMQ requeue a failed message at once: with no limit, a zero
            # service time and zero latency that loops at one instant (sim.sizing refuses
            # it). SQS and Redis Streams wait out the visibility timeout: no limit is fine.
            "max_deliveries": draw(
                st.integers(1, 5)
                if flavour in ("pubsub", "rabbitmq")
                else st.one_of(st.none(), st.integers(1, 5))
            ),
            "visibility_timeout": draw(st.floats(0.5, 10.0)),
            "idempotent": draw(st.booleans()),
            **draw(ordering(flavour)),
        }
        if topic is not None:
            spec["queue"].update(topic=topic, **draw(subscription(src, flavour)))
        if flavour == "pubsub":
            spec["queue"].update(draw(pubsub_knobs(dst, topic)))
    elif protocol == "sse":
        spec["sse"] = {"replay_buffer": draw(st.integers(0, 50))}
    return spec


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A small scenario with clients, a chain of services, a broker and every fault."""
    n_clients = draw(st.integers(1, 2))
    n_services = draw(st.integers(1, 3))
    clients = [f"c{i}" for i in range(n_clients)]
    services = [f"s{i}" for i in range(n_services)]
    duration = draw(st.floats(2.0, 30.0))
    agents: list[dict[str, Any]] = [{"id": c, "role": "client"} for c in clients]
    channels: list[dict[str, Any]] = []
    # The broker's flavour (if a channel queues); each channel sets its own queue's knobs.
    flavour = draw(st.sampled_from(FLAVOURS))
    for i, s in enumerate(services):
        # Calls go to later services only, so they never loop.
        later = services[i + 1 :]
        calls = draw(st.lists(st.sampled_from(later), unique=True, max_size=2)) if later else []
        agent: dict[str, Any] = {
            "id": s,
            "role": "service",
            "workers": draw(st.integers(1, 4)),
            "service_time": draw(distributions(0.2)),
            "calls": calls,
            "http": {"dedupe": draw(st.booleans())},
        }
        if draw(st.integers(0, 3)) == 0:
            # A server that refuses past a rate (429 + Retry-After) or drops expired work.
            agent["http"].update(
                draw(
                    st.sampled_from(
                        [
                            {"rate_limit": 5.0, "burst": 3},
                            {"drop_expired": True},
                            {"drop_expired": True, "drop_margin": 0.05},
                        ]
                    )
                )
            )
        if draw(st.booleans()):
            agent["queue_limit"] = draw(st.integers(0, 5))
        agents.append(agent)
        if calls and draw(st.integers(0, 3)) == 0:
            # A topic: each call publishes to it; its subscriptions are the callees and
            # maybe other later services (1-3 in all), each a queue of its own.
            others = [x for x in later if x not in calls]
            extra = (
                draw(st.lists(st.sampled_from(others), unique=True, max_size=3 - len(calls)))
                if others
                else []
            )
            channels += [draw(channel(s, d, flavour, f"t-{s}")) for d in [*calls, *extra]]
        else:
            channels += [draw(channel(s, callee, flavour)) for callee in calls]
    workload = []
    for c in clients:
        dst = draw(st.sampled_from(services))
        if draw(st.integers(0, 2)) == 0:
            # The requests go to a topic with 1-3 subscriptions, `dst` among them.
            others = [x for x in services if x != dst]
            extra = (
                draw(st.lists(st.sampled_from(others), unique=True, max_size=2)) if others else []
            )
            channels += [draw(channel(c, d, flavour, f"t-{c}")) for d in [dst, *extra]]
        else:
            channels.append(draw(channel(c, dst, flavour)))
        workload.append(
            {
                "from": c,
                "to": dst,
                "arrivals": draw(arrivals()),
                "size_bytes": draw(st.integers(0, 2_000)),
                "start": draw(st.floats(0.0, duration / 2)),
            }
        )
    ids = [a["id"] for a in agents]
    if any(c["protocol"] == "queue" for c in channels):
        agents.append({"id": BROKER, "role": "broker", "queue": {"flavour": flavour}})
        ids.append(BROKER)
    network = {
        "default": {
            "latency": draw(distributions(0.05)),
            "loss": draw(st.sampled_from([0.0, 0.0, 0.05, 0.2])),
            "duplicate": draw(st.sampled_from([0.0, 0.0, 0.05, 0.2])),
        }
    }
    kinds = [k for k in FAULT_KINDS if draw(st.booleans())]
    # A service that does not pass its caller's deadline on can outlive it: the check
    # exists to say so, and such a design declares it expects that.
    unbounded = any(
        not c.get("deadline", {}).get("propagate", True) for c in channels if c["from"] in services
    )
    # A queue that names its key (order_by) but does not deliver in order: the check
    # exists to show its reordering.
    unordered = any(
        "order_by" in c.get("queue", {})
        and not (c["queue"].get("fifo") or c["queue"].get("ordered"))
        for c in channels
    )
    expected = ["deadlines_shrink"] if unbounded else []
    expected += ["in_order_per_key"] if unordered else []
    return {
        "expected_violations": expected,
        "name": "generated",
        "seed": draw(st.integers(0, 2**32 - 1)),
        "duration": duration,
        "sample_interval": max(duration / 20, 0.1),
        "agents": agents,
        "channels": channels,
        "network": network,
        "workload": workload,
        "faults": [draw(faults(kind, ids, services, duration)) for kind in kinds],
    }


def crash_windows(run: Any) -> list[tuple[str, float, float]]:
    """(agent, down from, up again) for every crash fault of the run."""
    found = []
    for fault in run.scenario.faults:
        if fault.kind == "crash":
            end = run.duration if fault.end is None else min(fault.end, run.duration)
            found += [(agent, fault.start, end) for agent in fault.targets]
    return found


def sent_or_delivered_while_down(run: Any) -> pd.DataFrame:
    """Messages a crashed agent sent, or that were delivered to it, while it was down."""
    m = run.messages
    found = []
    for agent, down, up in crash_windows(run):
        sent = (m["src"] == agent) & (m["sent_at"] > down + SLACK) & (m["sent_at"] < up - SLACK)
        got = (
            (m["dst"] == agent)
            & (m["outcome"] == "delivered")
            & (m["delivered_at"] > down + SLACK)
            & (m["delivered_at"] < up - SLACK)
        )
        found.append(m[sent | got])
    return pd.concat(found) if found else m.iloc[:0]


def calls_past_their_deadline(run: Any) -> pd.DataFrame:
    """Calls still open at the run's end although their deadline passed before it.

    A caller that is paused or crashed from its deadline to the run's end cannot run the
    timer that ends its call: that call may stay open (as `nothing_lost` says).
    """
    s = run.spans
    calls = s[s["kind"].isin(["client", "producer"])]
    late = calls[(calls["outcome"] == "open") & (calls["deadline"] < run.duration - SLACK)]
    return late[~asleep_at_deadline(run, late)]


def broker_disagreements(run: Any) -> list[str]:
    """Where the brokers' own counts break conservation or disagree with the trace."""
    m = run.messages
    # Worker pools are sampled in the same table; only broker queues hold messages.
    queues = run.queues[~run.queues["queue"].str.endswith(".workers")]
    problems = []
    held = queues["acked"] + queues["dead_lettered"] + queues["depth"] + queues["in_flight"]
    for row in queues[queues["enqueued"] != held].head(3).itertuples(index=False):
        problems.append(f"{row.queue} at {row.time}: enqueued {row.enqueued} != held")
    if not queues.empty:
        last = queues[queues["time"] == queues["time"].max()]
        parked = int(last["dead_lettered"].sum())
        traced = int(
            ((m["outcome"] == "dead_lettered") & (m["ended_at"] <= last["time"].max())).sum()
        )
        if parked != traced:
            problems.append(f"brokers dead-lettered {parked}, the trace shows {traced}")
    return problems


def judge(run: Any) -> None:
    """Assert the oracle on one run."""
    check_accounting(run)
    failed = violations(run)
    assert not failed, {name: rows.head(3).to_dict("records") for name, rows in failed.items()}
    down = sent_or_delivered_while_down(run)
    assert down.empty, down.head(5).to_dict("records")
    late = calls_past_their_deadline(run)
    assert late.empty, late.head(5).to_dict("records")
    assert not broker_disagreements(run), broker_disagreements(run)
    # Little's law and the pools' gauges, conservation, retries, deadlines, cancels.
    flows = flow_violations(run)
    assert not flows, flows


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not FUZZ_EXAMPLES,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_generated_scenarios_pass_the_oracle(scenario: dict[str, Any]) -> None:
    """Random scenarios over every protocol run clean: checks, accounting, crashes, brokers."""
    note(json.dumps(scenario))
    judge(sim.run(scenario))


@pytest.mark.parametrize("path", REPROS, ids=[p.stem for p in REPROS])
def test_scenarios_the_fuzzer_found_pass_the_oracle(path: Path) -> None:
    """Each generated scenario that once failed the oracle passes it now."""
    judge(sim.run(json.loads(path.read_text())))
