"""Each fault kind changes the trace the way it says, asserted on the trace itself.

The scenarios are small dicts built here, so each test states exactly what it sets up.
Random counts (loss, duplication, error fractions) are checked against the exact
two-sided 99.9% binomial interval for the number of trials the trace shows.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pandas as pd
import pytest

import sim

FAST = {"dist": "constant", "value": 0.01}


def scenario(
    agents: list[dict[str, Any]],
    workload: list[dict[str, Any]],
    faults: list[dict[str, Any]] | None = None,
    latency: dict[str, Any] | None = None,
    duration: float = 30.0,
    channels: list[dict[str, Any]] | None = None,
    default: dict[str, Any] | None = None,
    **network: Any,
) -> dict[str, Any]:
    """A scenario dict: the agents, the workload and the faults, on a simple network.

    `default` adds properties to the default link; `network` adds network fields.
    """
    return {
        "name": "fault-test",
        "seed": 11,
        "duration": duration,
        "agents": agents,
        "channels": channels or [],
        "network": {"default": {"latency": latency or FAST, **(default or {})}, **network},
        "workload": workload,
        "faults": faults or [],
    }


def client(agent_id: str = "c") -> dict[str, Any]:
    """A workload client."""
    return {"id": agent_id, "role": "client"}


def service(agent_id: str, workers: int = 8, time: float = 0.01, **more: Any) -> dict[str, Any]:
    """A service with a constant service time."""
    return {
        "id": agent_id,
        "role": "service",
        "workers": workers,
        "service_time": {"dist": "constant", "value": time},
        **more,
    }


def poisson(src: str, dst: str, rate: float, **more: Any) -> dict[str, Any]:
    """A Poisson workload from src to dst."""
    return {"from": src, "to": dst, "arrivals": {"kind": "poisson", "rate": rate}, **more}


def between(frame: pd.DataFrame, a: str | list[str], b: str | list[str]) -> pd.Series:
    """Rows sent from an agent of `a` to one of `b`."""
    a = [a] if isinstance(a, str) else a
    b = [b] if isinstance(b, str) else b
    return frame["src"].isin(a) & frame["dst"].isin(b)


def binomial_bounds(n: int, p: float, confidence: float = 0.999) -> tuple[int, int]:
    """The exact two-sided interval [lo, hi] holding Binomial(n, p) with `confidence`."""
    tail = (1 - confidence) / 2
    log_pmf = [
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
        for k in range(n + 1)
    ]
    pmf = [math.exp(x) for x in log_pmf]
    lo, below = 0, 0.0
    while below + pmf[lo] <= tail:
        below += pmf[lo]
        lo += 1
    hi, above = n, 0.0
    while above + pmf[hi] <= tail:
        above += pmf[hi]
        hi -= 1
    return lo, hi


def assert_binomial(k: int, n: int, p: float) -> None:
    """`k` successes out of `n` trials are plausible for probability `p`."""
    assert n >= 200, f"too few trials ({n}) for a meaningful check"
    lo, hi = binomial_bounds(n, p)
    assert lo <= k <= hi, f"{k} of {n} is outside [{lo}, {hi}] for p={p}"


def test_binomial_bounds_are_tight() -> None:
    """The bound used below is narrow enough to catch a wrong rate."""
    lo, hi = binomial_bounds(1000, 0.2)
    assert 150 < lo < 200 < hi < 250
    assert binomial_bounds(1000, 0.1)[1] < lo


# --- partition -------------------------------------------------------------------------

PARTITION_AGENTS = [client("c"), service("s1"), service("s2")]
PARTITION_WORKLOAD = [poisson("c", "s1", 10), poisson("c", "s2", 10)]
RANDOM_LATENCY = {"dist": "normal", "mean": 0.3, "sd": 0.1}


@pytest.mark.parametrize(
    "cut",
    [{"groups": [["c", "s1"], ["s2"]]}, {"targets": ["s2"]}],
    ids=["groups", "targets"],
)
def test_partition_blocks_every_delivery_across_it(cut: dict[str, Any]) -> None:
    """From 10 s to 20 s nothing crosses the partition; in-flight copies die at delivery."""
    run = sim.run(
        scenario(
            PARTITION_AGENTS,
            PARTITION_WORKLOAD,
            [{"kind": "partition", "start": 10, "end": 20, **cut}],
            latency=RANDOM_LATENCY,
        )
    )
    m = run.messages
    crossing = between(m, ["c", "s1"], "s2") | between(m, "s2", ["c", "s1"])
    delivered = m["outcome"] == "delivered"
    in_window = m["delivered_at"].between(10, 20)
    assert not (crossing & delivered & in_window).any()
    # Copies sent during the window are blackholed at once.
    sent_in = m["sent_at"].between(10, 20, inclusive="left")
    assert (m.loc[crossing & sent_in, "outcome"] == "partitioned").all()
    assert (crossing & sent_in).sum() > 50
    assert (m.loc[crossing & sent_in, "ended_at"] == m.loc[crossing & sent_in, "sent_at"]).all()
    # Copies sent before it and arriving during it are dropped at delivery.
    caught = crossing & (m["sent_at"] < 10) & (m["outcome"] == "partitioned")
    assert caught.sum() > 0
    assert m.loc[caught, "ended_at"].between(10, 20).all()
    # Nothing else is partitioned, and traffic inside a group goes on.
    assert (m.loc[m["outcome"] == "partitioned", "ended_at"].between(10, 20)).all()
    assert not (~crossing & (m["outcome"] == "partitioned")).any()
    assert (between(m, "c", "s1") & delivered & in_window).sum() > 50
    # Traffic resumes in both directions after the partition heals.
    assert (between(m, "c", "s2") & delivered & (m["sent_at"] > 20)).sum() > 50
    assert (between(m, "s2", "c") & delivered & (m["sent_at"] > 20)).sum() > 50


def test_one_way_partition_blocks_only_one_direction() -> None:
    """A one-way partition cuts messages from the first group and lets the others through."""
    first, second = ["c1", "s1"], ["c2", "s2"]
    run = sim.run(
        scenario(
            [client("c1"), service("s1"), client("c2"), service("s2")],
            [poisson("c1", "s2", 10), poisson("c2", "s1", 10)],
            [
                {
                    "kind": "partition",
                    "groups": [first, second],
                    "direction": "one-way",
                    "start": 10,
                    "end": 20,
                }
            ],
            latency=RANDOM_LATENCY,
        )
    )
    m = run.messages
    delivered = m["outcome"] == "delivered"
    in_window = m["delivered_at"].between(10, 20)
    forward, backward = between(m, first, second), between(m, second, first)
    assert not (forward & delivered & in_window).any()
    assert (m.loc[forward & m["sent_at"].between(10, 20), "outcome"] == "partitioned").all()
    # The other way is open: c2's requests reach s1 (whose answers are cut).
    assert (between(m, "c2", "s1") & delivered & in_window).sum() > 50
    assert not (backward & (m["outcome"] == "partitioned")).any()
    assert (m.loc[m["outcome"] == "partitioned", "src"].isin(first)).all()


# --- loss and duplication --------------------------------------------------------------


def test_link_loss_drops_its_share_of_messages() -> None:
    """A link with loss 0.2 drops about 20% of its copies; other links drop none."""
    run = sim.run(
        scenario(
            [client("c"), service("s1"), service("s2")],
            [poisson("c", "s1", 20), poisson("c", "s2", 5)],
            duration=60,
            links=[{"from": "c", "to": "s1", "loss": 0.2}],
        )
    )
    m = run.messages
    link = between(m, "c", "s1") | between(m, "s1", "c")
    dropped = m["outcome"] == "dropped"
    assert_binomial(int((link & dropped).sum()), int(link.sum()), 0.2)
    assert not (~link & dropped).any()
    assert (between(m, "s1", "c") & dropped).sum() > 0


def test_loss_fault_drops_its_share_inside_its_window() -> None:
    """A loss fault of 0.2 on one link drops about 20% there, and only during its window."""
    run = sim.run(
        scenario(
            [client("c"), service("s1"), service("s2")],
            [poisson("c", "s1", 20), poisson("c", "s2", 5)],
            [
                {
                    "kind": "loss",
                    "groups": [["c"], ["s1"]],
                    "probability": 0.2,
                    "start": 10,
                    "end": 50,
                }
            ],
            duration=60,
        )
    )
    m = run.messages
    link = between(m, "c", "s1") | between(m, "s1", "c")
    window = m["sent_at"].between(10, 50, inclusive="left")
    dropped = m["outcome"] == "dropped"
    assert_binomial(int((link & window & dropped).sum()), int((link & window).sum()), 0.2)
    assert not (dropped & ~(link & window)).any()
    # A lost request is a call that times out.
    assert (run.spans["outcome"] == "timeout").sum() > 0


def test_duplicate_fault_delivers_copies_that_share_the_msg_id() -> None:
    """Duplication adds copies with the original's msg_id; each may overtake it."""
    run = sim.run(
        scenario(
            [client("c"), service("s1"), service("s2")],
            [poisson("c", "s1", 20), poisson("c", "s2", 5)],
            [
                {
                    "kind": "duplicate",
                    "groups": [["c"], ["s1"]],
                    "probability": 0.3,
                    "start": 10,
                    "end": 50,
                }
            ],
            latency={"dist": "exponential", "mean": 0.05},
            duration=60,
        )
    )
    m = run.messages
    link = between(m, "c", "s1") | between(m, "s1", "c")
    window = m["sent_at"].between(10, 50, inclusive="left")
    copies = m[m["duplicate"]]
    originals = m[~m["duplicate"]].set_index("msg_id")
    assert_binomial(len(copies), int((link & window & ~m["duplicate"]).sum()), 0.3)
    # Only the faulted link, only in the window, and a copy is never copied again.
    assert (link & window)[copies.index].all()
    assert copies["msg_id"].is_unique
    original = originals.loc[copies["msg_id"]]
    assert (original["src"].to_numpy() == copies["src"].to_numpy()).all()
    assert (original["kind"].to_numpy() == copies["kind"].to_numpy()).all()
    # Each copy has its own latency draw, so some arrive before their original.
    both = copies[copies["outcome"] == "delivered"]
    overtook = both["delivered_at"].to_numpy() < original.loc[both["msg_id"], "delivered_at"]
    assert overtook.sum() > 0
    # The service is not idempotent: it serves every copy of a request it receives.
    served = run.spans[(run.spans["kind"] == "server") & (run.spans["agent"] == "s1")]
    received = m[(m["dst"] == "s1") & (m["outcome"] == "delivered") & (m["kind"] == "request")]
    assert len(served) == len(received)


# --- latency ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("effect", "scope", "affected", "delay"),
    [
        ({"add": {"dist": "constant", "value": 0.5}}, {"groups": [["c"], ["s1"]]}, "both", 0.51),
        ({"multiply": 3}, {"groups": [["c"], ["s1"]]}, "both", 0.03),
        (
            {"add": {"dist": "constant", "value": 0.5}},
            {"groups": [["c"], ["s1"]], "direction": "one-way"},
            "forward",
            0.51,
        ),
        ({"multiply": 3}, {"targets": ["s1"]}, "both", 0.03),
    ],
    ids=["add", "multiply", "add-one-way", "multiply-target"],
)
def test_latency_fault_shifts_only_the_targeted_link(
    effect: dict[str, Any], scope: dict[str, Any], affected: str, delay: float
) -> None:
    """Inside the window the targeted link's delay changes; elsewhere it stays 10 ms."""
    run = sim.run(
        scenario(
            [client("c"), service("s1"), service("s2")],
            [poisson("c", "s1", 5), poisson("c", "s2", 5)],
            [{"kind": "latency", "start": 10, "end": 20, **effect, **scope}],
        )
    )
    m = run.messages
    assert (m["outcome"] == "delivered").all()
    took = m["delivered_at"] - m["sent_at"]
    target = between(m, "c", "s1")
    if affected == "both":
        target |= between(m, "s1", "c")
    hit = target & m["sent_at"].between(10, 20, inclusive="left")
    assert hit.sum() > 20
    assert took[hit].to_numpy() == pytest.approx(delay)
    assert took[~hit].to_numpy() == pytest.approx(0.01)


# --- crash -----------------------------------------------------------------------------

CRASH_AGENTS = [client("c"), service("s", workers=2, time=0.5)]
CRASH_CHANNELS = [{"from": "c", "to": "s", "timeout": 3}]


def test_crashed_agent_receives_nothing_until_it_restarts() -> None:
    """Down from 10 s to 20 s: refused connections, lost work, and service after."""
    run = sim.run(
        scenario(
            CRASH_AGENTS,
            [poisson("c", "s", 3)],
            [{"kind": "crash", "targets": ["s"], "start": 10, "end": 20}],
            channels=CRASH_CHANNELS,
        )
    )
    m, spans = run.messages, run.spans
    to_s = m["dst"] == "s"
    delivered = m["outcome"] == "delivered"
    assert not (to_s & delivered & m["delivered_at"].between(10, 20, inclusive="left")).any()
    # Messages that reach it while it is down are refused.
    ended_down = to_s & m["ended_at"].between(10, 20, inclusive="left")
    assert ended_down.sum() > 10
    assert (m.loc[ended_down, "outcome"] == "unavailable").all()
    assert set(m.loc[m["outcome"] == "unavailable", "dst"]) == {"s"}
    # The sender hears of the refusal: its calls fail fast instead of timing out.
    refused = spans[(spans["kind"] == "client") & spans["start"].between(10, 19.9)]
    assert (refused["outcome"] == "error").all()
    # A new connection is refused; a request on one opened before the crash is reset.
    assert refused["error"].str.contains("refused|reset").all()
    assert (refused["end"] - refused["start"] < 0.1).all()
    # Work in progress at the crash is lost: its spans end in error at 10 s.
    served = spans[(spans["kind"] == "server") & (spans["agent"] == "s")]
    lost = served[(served["start"] < 10) & (served["end"] >= 10)]
    assert len(lost) > 0
    assert (lost["end"] == 10).all()
    assert (lost["outcome"] == "error").all()
    assert not served["start"].between(10, 20, inclusive="left").any()
    # After the restart it serves again, with an empty queue.
    after = served[served["start"] >= 20]
    assert len(after) > 10
    assert (after["outcome"] == "ok").all()
    assert (to_s & delivered & (m["delivered_at"] >= 20)).sum() > 10


def test_crash_without_restart_keeps_the_agent_down() -> None:
    """A crash with no end is down for the rest of the run."""
    run = sim.run(
        scenario(
            CRASH_AGENTS,
            [poisson("c", "s", 3)],
            [{"kind": "crash", "targets": ["s"], "start": 10}],
            channels=CRASH_CHANNELS,
        )
    )
    m = run.messages
    assert not ((m["dst"] == "s") & (m["delivered_at"] >= 10)).any()
    late = (m["dst"] == "s") & (m["ended_at"] >= 10)
    assert late.sum() > 30
    assert (m.loc[late, "outcome"] == "unavailable").all()
    assert not ((m["src"] == "s") & (m["sent_at"] > 10)).any()


def test_overlapping_crash_windows_keep_the_agent_down_until_the_last_ends() -> None:
    """Crashes from 10 s to 20 s and from 15 s to 25 s: down from 10 s to 25 s."""
    run = sim.run(
        scenario(
            CRASH_AGENTS,
            [poisson("c", "s", 3)],
            [
                {"kind": "crash", "targets": ["s"], "start": 10, "end": 20},
                {"kind": "crash", "targets": ["s"], "start": 15, "end": 25},
            ],
            channels=CRASH_CHANNELS,
        )
    )
    m = run.messages
    to_s = m["dst"] == "s"
    assert not (to_s & m["delivered_at"].between(10, 25, inclusive="left")).any()
    assert (to_s & m["ended_at"].between(20, 25) & (m["outcome"] == "unavailable")).sum() > 0
    assert (to_s & (m["delivered_at"] >= 25)).sum() > 0


def test_crashed_client_stops_sending_and_loses_its_calls() -> None:
    """A crashed client sends nothing, its open calls fail, and answers to it are refused."""
    run = sim.run(
        scenario(
            CRASH_AGENTS,
            [poisson("c", "s", 3)],
            [{"kind": "crash", "targets": ["c"], "start": 10, "end": 20}],
            channels=CRASH_CHANNELS,
        )
    )
    m, spans = run.messages, run.spans
    assert not ((m["src"] == "c") & m["sent_at"].between(10, 20, inclusive="left")).any()
    assert ((m["src"] == "c") & (m["sent_at"] >= 20)).sum() > 10
    cut = spans[(spans["agent"] == "c") & (spans["start"] < 10) & (spans["end"] >= 10)]
    assert len(cut) > 0
    assert (cut["end"] == 10).all()
    assert (cut["error"] == "caller crashed").all()
    answers = m[(m["dst"] == "c") & m["ended_at"].between(10, 20, inclusive="left")]
    assert len(answers) > 0
    assert (answers["outcome"] == "unavailable").all()


def test_restarted_client_resumes_its_workload_schedule() -> None:
    """After a restart, bursts keep their phase and a ramp its slope: nothing restarts."""
    run = sim.run(
        scenario(
            [client("c"), client("r"), service("s", workers=50)],
            [
                {"from": "c", "to": "s", "arrivals": {"kind": "bursts", "size": 3, "every": 10}},
                {
                    "from": "r",
                    "to": "s",
                    "arrivals": {"kind": "ramp", "start_rate": 0, "end_rate": 20},
                },
            ],
            [{"kind": "crash", "targets": ["c", "r"], "start": 12, "end": 17}],
            duration=40,
        )
    )
    # When each call began (its request leaves after the connection's handshake).
    calls = run.spans[(run.spans["kind"] == "client") & (run.spans["parent_id"] == "")]
    bursts = calls.loc[calls["agent"] == "c", "start"]
    assert bursts.value_counts().sort_index().to_dict() == {0.0: 3, 10.0: 3, 20.0: 3, 30.0: 3}
    # The ramp's rate at 17-22 s is about 8.5-11 per second (a ramp restarted at 17 s
    # would send about 1.6 per second then): expect about 49 of them.
    ramp = calls.loc[calls["agent"] == "r", "start"]
    assert not ramp.between(12, 17, inclusive="left").any()
    assert 25 <= ramp.between(17, 22).sum() <= 80


# --- pause -----------------------------------------------------------------------------


def test_paused_agent_serves_nothing_and_then_its_backlog() -> None:
    """Paused from 10 s to 15 s: no work, no answers; queued work waits, then drains."""
    run = sim.run(
        scenario(
            [client("c"), service("s", workers=1, time=0.2)],
            [
                poisson("c", "s", 2),
                # Five at once just before the pause, so some are queued when it begins.
                {
                    "from": "c",
                    "to": "s",
                    "start": 9.5,
                    "arrivals": {"kind": "bursts", "size": 5, "every": 100},
                },
            ],
            [{"kind": "pause", "targets": ["s"], "start": 10, "end": 15}],
            channels=[{"from": "c", "to": "s", "timeout": 30}],
        )
    )
    m, spans = run.messages, run.spans
    served = spans[(spans["kind"] == "server") & (spans["agent"] == "s")]
    began = served["start"] + served["wait"]
    assert not served["end"].between(10, 15, inclusive="neither").any()
    assert not began.between(10, 15, inclusive="neither").any()
    assert not ((m["src"] == "s") & m["sent_at"].between(10, 15, inclusive="neither")).any()
    # The work in progress when the pause began is frozen, not finished: it takes its
    # 0.2 s of work plus the 5 s pause.
    straddling = served[(began < 10) & (served["end"] > 10)]
    assert len(straddling) == 1
    work = straddling["end"] - straddling["start"] - straddling["wait"]
    assert work.to_numpy() == pytest.approx(5.2)
    # Requests delivered during the pause are taken in when it ends, and all answered.
    held = m[(m["dst"] == "s") & (m["kind"] == "request") & m["delivered_at"].between(10, 15)]
    assert len(held) >= 2
    assert (served["start"] == 15).sum() == len(held)
    answers = m[(m["kind"] == "response") & m["causation_id"].isin(held["msg_id"])]
    assert len(answers) == len(held)
    assert (answers["sent_at"] > 15).all()
    assert (served.loc[served["start"] < 25, "outcome"] == "ok").all()


def test_paused_client_sends_nothing_until_it_resumes() -> None:
    """A paused client holds its arrivals and sends them when the pause ends."""
    run = sim.run(
        scenario(
            [client("c"), service("s")],
            [poisson("c", "s", 5)],
            [{"kind": "pause", "targets": ["c"], "start": 10, "end": 15}],
        )
    )
    m = run.messages
    from_c = m["src"] == "c"
    assert not (from_c & m["sent_at"].between(10, 15, inclusive="neither")).any()
    assert (from_c & (m["sent_at"] == 15)).sum() > 5


def test_queue_limit_holds_for_the_backlog_released_by_a_pause() -> None:
    """At most `queue_limit` requests wait for a worker, even when a pause lets many in."""
    run = sim.run(
        scenario(
            [client("c"), service("s", workers=1, time=0.1, queue_limit=2)],
            [{"from": "c", "to": "s", "arrivals": {"kind": "constant", "rate": 2}}],
            [{"kind": "pause", "targets": ["s"], "start": 5, "end": 10}],
            channels=[{"from": "c", "to": "s", "timeout": 30}],
        )
    )
    spans = run.spans
    served = spans[spans["kind"] == "server"]
    # The calls made during the pause: one took the open connection, the nine others
    # opened connections the paused server answered only when it resumed.
    during = spans[(spans["kind"] == "client") & spans["start"].between(5, 10, inclusive="left")]
    backlog = served[served["parent_id"].isin(during["span_id"])]
    assert len(backlog) == 10
    # One takes the free worker, two wait, the other seven are turned away.
    assert (backlog["outcome"] == "ok").sum() == 3
    assert (backlog["outcome"] == "rejected").sum() == 7
    assert (backlog.loc[backlog["outcome"] == "rejected", "status"] == 503).all()
    # At no time do more than two requests wait.
    waits = served[served["wait"] > 0]
    events = sorted(
        [(t, 1) for t in waits["start"]] + [(t, -1) for t in waits["start"] + waits["wait"]]
    )
    depth = max(itertools.accumulate(step for _, step in events))
    assert depth == 2


# --- error, overload, poison -----------------------------------------------------------


def test_error_fault_first_n_fails_exactly_n_requests() -> None:
    """`first: 5` makes exactly the first five requests of the window fail with 500."""
    run = sim.run(
        scenario(
            [client("c"), service("s")],
            [poisson("c", "s", 10)],
            [{"kind": "error", "targets": ["s"], "first": 5, "status": 500, "start": 10}],
        )
    )
    spans = run.spans
    served = spans[spans["kind"] == "server"].sort_values("start")
    failed = served[served["status"] == 500]
    assert len(failed) == 5
    assert (failed["outcome"] == "error").all()
    assert (failed["error"] == "HTTP 500 (injected)").all()
    assert failed.index.tolist() == served[served["start"] >= 10].index[:5].tolist()
    assert (served.drop(failed.index)["status"] == 200).all()
    calls = spans[spans["kind"] == "client"]
    assert (calls["status"] == 500).sum() == 5
    assert (calls.loc[calls["status"] == 500, "error"] == "HTTP 500").all()


def test_error_fault_fraction_fails_about_that_share() -> None:
    """`fraction: 0.3` answers about 30% of the window's requests with its status."""
    run = sim.run(
        scenario(
            [client("c"), service("s")],
            [poisson("c", "s", 20)],
            [
                {
                    "kind": "error",
                    "targets": ["s"],
                    "fraction": 0.3,
                    "status": 503,
                    "start": 10,
                    "end": 50,
                }
            ],
            duration=60,
        )
    )
    served = run.spans[run.spans["kind"] == "server"]
    window = (served["start"] + served["wait"]).between(10, 50, inclusive="left")
    failed = served["status"] == 503
    assert_binomial(int((window & failed).sum()), int(window.sum()), 0.3)
    assert not (failed & ~window).any()
    assert set(served["status"]) == {200, 503}


def test_overload_multiplies_service_time() -> None:
    """Overload 4 from 10 s to 20 s: the work of requests begun then takes four times longer."""
    run = sim.run(
        scenario(
            [client("c"), service("s", workers=50, time=0.1)],
            [poisson("c", "s", 10)],
            [{"kind": "overload", "targets": ["s"], "factor": 4, "start": 10, "end": 20}],
        )
    )
    served = run.spans[(run.spans["kind"] == "server") & (run.spans["outcome"] == "ok")]
    began = served["start"] + served["wait"]
    work = served["end"] - began
    window = began.between(10, 20, inclusive="left")
    assert window.sum() > 50
    assert work[window].to_numpy() == pytest.approx(0.4)
    assert work[~window].to_numpy() == pytest.approx(0.1)


@pytest.mark.parametrize("duplicate", [0.0, 0.5])
def test_poison_requests_fail_while_others_succeed(duplicate: float) -> None:
    """Four poison requests each fail with 500, on every delivery; the rest succeed."""
    run = sim.run(
        scenario(
            [client("c"), service("s", workers=4)],
            [poisson("c", "s", 10)],
            [{"kind": "poison", "from": "c", "to": "s", "count": 4, "start": 5, "end": 25}],
            default={"duplicate": duplicate},
        )
    )
    spans = run.spans
    calls = spans[spans["kind"] == "client"]
    poison = calls[calls["name"] == "poison"]
    assert len(poison) == 4
    assert (poison["status"] == 500).all()
    assert (poison["outcome"] == "error").all()
    assert poison["start"].between(5, 25).all()
    others = calls[calls["name"] != "poison"]
    assert len(others) > 100
    assert (others["outcome"] == "ok").all()
    handled = spans[(spans["kind"] == "server") & (spans["name"] == "poison")]
    assert len(handled) >= 4
    assert (handled["status"] == 500).all()
    if duplicate:
        assert len(handled) > 4


def test_paused_sender_sends_its_poison_when_it_resumes() -> None:
    """A poison message due while its sender is paused leaves when the pause ends."""
    run = sim.run(
        scenario(
            [client("c"), service("s")],
            [poisson("c", "s", 1)],
            [
                {"kind": "pause", "targets": ["c"], "start": 4, "end": 8},
                {"kind": "poison", "from": "c", "to": "s", "count": 1, "start": 5},
            ],
        )
    )
    spans = run.spans
    poison = spans[(spans["name"] == "poison") & (spans["kind"] == "client")]
    assert poison["start"].tolist() == [8.0]


# --- topology and bandwidth -------------------------------------------------------------


def test_links_topology_routes_or_refuses() -> None:
    """Only listed links exist: routes take the fewest hops; no route is `unavailable`."""
    run = sim.run(
        scenario(
            [client("c"), *(service(s) for s in ("s", "far", "m", "cut", "oneway"))],
            [
                poisson("c", "s", 5),
                poisson("c", "far", 5),
                poisson("c", "cut", 5),
                poisson("c", "oneway", 5),
            ],
            topology="links",
            links=[
                {"from": "c", "to": "s"},
                {"from": "c", "to": "m"},
                {"from": "m", "to": "far"},
                {"from": "c", "to": "oneway", "symmetric": False},
            ],
        )
    )
    m, spans = run.messages, run.spans
    m = m[m["sent_at"] < 29]  # the last ones are still on the wire
    took = m["delivered_at"] - m["sent_at"]
    direct = between(m, "c", "s") | between(m, "s", "c")
    assert (m.loc[direct, "outcome"] == "delivered").all()
    assert took[direct].to_numpy() == pytest.approx(0.01)
    two_hops = between(m, "c", "far") | between(m, "far", "c")
    assert (m.loc[two_hops, "outcome"] == "delivered").all()
    assert took[two_hops].to_numpy() == pytest.approx(0.02)
    no_route = between(m, "c", "cut")
    assert no_route.sum() > 50
    assert (m.loc[no_route, "outcome"] == "unavailable").all()
    assert (m.loc[no_route, "ended_at"] == m.loc[no_route, "sent_at"]).all()
    refused = spans[(spans["kind"] == "client") & (spans["peer"] == "cut")]
    assert refused["error"].str.contains("refused").all()
    # A one-way link carries the requests, but the answers have no way back.
    assert (m.loc[between(m, "c", "oneway"), "outcome"] == "delivered").all()
    back = between(m, "oneway", "c")
    assert back.sum() > 50
    assert (m.loc[back, "outcome"] == "unavailable").all()
    assert set(m.loc[m["outcome"] == "unavailable", "dst"]) == {"cut", "c"}


def test_bandwidth_serialises_messages_fifo() -> None:
    """On a 1000 B/s link each copy takes size/1000 s more, queued behind the previous."""
    latency = 0.01
    run = sim.run(
        scenario(
            [client("c"), service("s"), service("s2")],
            [
                {
                    "from": "c",
                    "to": "s",
                    "size_bytes": 500,
                    "arrivals": {"kind": "bursts", "size": 4, "every": 5, "rate": 0.5},
                },
                poisson("c", "s2", 2, size_bytes=500),
            ],
            latency={"dist": "constant", "value": latency},
            links=[{"from": "c", "to": "s", "bandwidth": 1000}],
        )
    )
    m = run.messages
    m = m[m["outcome"] != "in_flight"]
    queued = {}
    for src, dst in (("c", "s"), ("s", "c")):
        rows = m[between(m, src, dst)].sort_values("seq")
        assert len(rows) > 30
        finish, queued[src] = 0.0, 0
        for sent, size, delivered in zip(
            rows["sent_at"], rows["size_bytes"], rows["delivered_at"], strict=True
        ):
            queued[src] += finish > sent
            finish = max(sent, finish) + size / 1000
            assert delivered == pytest.approx(finish + latency)
    # The bursts queue requests behind each other; the answers come out spaced.
    assert queued["c"] > 10
    other = m[between(m, "c", "s2") | between(m, "s2", "c")]
    assert (other["delivered_at"] - other["sent_at"]).to_numpy() == pytest.approx(latency)


# --- a crashed agent is silent ------------------------------------------------------------


def down_windows(run: Any) -> list[tuple[str, float, float]]:
    """(agent, start, end) of every crash window; a crash with no end lasts the run."""
    f = run.faults
    return [
        (agent, float(row.start), float(row.end) if row.end == row.end else run.duration)
        for row in f[f["kind"] == "crash"].itertuples()
        for agent in str(row.targets).split(",")
    ]


def assert_crashed_agents_are_silent(run: Any) -> int:
    """Nothing is sent by or delivered to an agent while it is down; what reached it then
    ended `unavailable` with a reason. Returns how many copies reached a down agent.

    At the instant of its crash an agent may send the resets its kernel sends for its
    open connections (control messages), and nothing else.
    """
    m = run.messages
    windows = down_windows(run)
    for agent, start, end in windows:
        sent = m[(m["src"] == agent) & (m["sent_at"] >= start) & (m["sent_at"] < end)]
        last_gasp = (sent["sent_at"] == start) & (sent["kind"] == "control")
        assert sent[~last_gasp].empty, sent[~last_gasp].head().to_dict("records")
    refused = 0
    for agent, start, end in windows:
        to_it = m[(m["dst"] == agent) & (m["ended_at"] >= start) & (m["ended_at"] < end)]
        assert not (to_it["outcome"] == "delivered").any()
        unavailable = to_it[to_it["outcome"] == "unavailable"]
        assert (unavailable["reason"] == f"{agent} is down").all()
        refused += len(unavailable)
    return refused


def test_a_crashed_queue_consumer_does_not_resubscribe_while_down() -> None:
    """The broker goes down, then its consumer: the consumer's acks to the broker are
    refused after the consumer crashed. A down consumer hears no refusal and sends
    nothing (it used to reconnect 5 s later, while still down)."""
    run = sim.run(
        sim.loading.load(
            "request-response",
            [
                "channels.0.protocol=queue",
                "network.default.latency={dist: constant, value: 0.5}",
                "faults=[{kind: crash, targets: [broker], start: 10, end: 40},"
                " {kind: crash, targets: [api], start: 10.7, end: 40}]",
            ],
        )
    )
    m = run.messages
    # The refusals of acks sent before the consumer crashed came back while it was down.
    acks = m[(m["src"] == "api") & (m["kind"] == "ack") & (m["outcome"] == "unavailable")]
    assert (acks["ended_at"] + 0.5 > 10.7).any()
    assert assert_crashed_agents_are_silent(run) > 0
    # It subscribes again once it is back.
    back = m[(m["src"] == "api") & (m["type"] == "queue.subscribe") & (m["sent_at"] >= 40)]
    assert (back["outcome"] == "delivered").any()


@pytest.mark.parametrize(
    "targets",
    [["writer-1", "orchestrator"], ["broker", "critic-2"], ["registry", "writer-2", "client"]],
    ids=lambda t: "+".join(t),
)
def test_crashed_agents_of_the_collaboration_are_silent(targets: list[str]) -> None:
    """Crashes that overlap across every protocol (HTTP, SSE, WebSocket, queue)."""
    faults = ", ".join(
        f"{{kind: crash, targets: [{agent}], start: {20 + 3 * i}, end: {35 + 2 * i}}}"
        for i, agent in enumerate(targets)
    )
    run = sim.run(sim.loading.load("collaboration", [f"faults=[{faults}]", "duration=60"]))
    assert assert_crashed_agents_are_silent(run) > 0
