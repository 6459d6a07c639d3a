"""A server pool's queue order: FIFO, LIFO, adaptive LIFO and priority, against theory.

- Every request starts when the discipline says it does: a reference queue, fed the
  server's own arrival and service times, gives every request's wait to 1e-9.
- Non-preemptive LIFO M/M/1 has FIFO's mean wait and a larger second moment,
  E[W^2] = E[W^2 of FIFO] / (1 - rho); two priority classes wait what Cobham's formula
  says; both with 95% batch-means intervals under 5% of the theory (a 5% bias fails).
- Under overload, adaptive LIFO serves fresh requests and the callers get answers that
  FIFO gives too late.
- Whatever the order, a server that drops expired requests drops them when a worker
  takes them, never works on one.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

import sim
from protocols.http.wire import HttpRequest
from protocols.order import QueueOrder
from protocols.transport import Message
from protocols.workers import Job, WorkerPool
from sim import loading
from sim.loading import ScenarioError
from sim.theory import mean_interval, mg1_waits, priority_waits
from tests.harness import Harness

LEVEL = 0.95
MAX_RELATIVE_HALF_WIDTH = 0.05
BATCHES = 30

FAST_HTTP = {
    # Enough connections that the client never holds a request back: the server's queue,
    # not the client's pool, decides the order.
    "max_connections": 100_000,
    "max_keepalive": 100_000,
    "pool_timeout": 1_000,
}


def scenario(
    order: dict[str, Any],
    workloads: list[dict[str, Any]],
    workers: int = 1,
    mean: float = 1.0,
    duration: float = 400,
    timeout: float = 100_000,
    http: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A client sending to one service over a zero-latency network."""
    return {
        "name": "order",
        "seed": 5,
        "duration": duration,
        "agents": [
            {"id": "client", "role": "client"},
            {
                "id": "svc",
                "role": "service",
                "workers": workers,
                "service_time": {"dist": "exponential", "mean": mean},
                "queue_order": order,
                "http": http or {},
            },
        ],
        "channels": [{"from": "client", "to": "svc", "timeout": timeout, "http": FAST_HTTP}],
        "network": {"default": {"latency": {"dist": "constant", "value": 0}}},
        "workload": [{"from": "client", "to": "svc", **w} for w in workloads],
    }


def poisson(rate: float, end: float, type_: str = "task.run") -> dict[str, Any]:
    """A Poisson workload item."""
    return {"type": type_, "end": end, "arrivals": {"kind": "poisson", "rate": rate}}


def served(run: sim.Run) -> pd.DataFrame:
    """The service's spans in the order their requests reached it, with service times."""
    spans = run.spans[run.spans.agent == "svc"].sort_values(["start", "span_id"], kind="stable")
    return spans.assign(service=spans.end - spans.start - spans.wait)


# --- every wait, against a reference queue ---------------------------------------------

# Picks the request a worker free at `now` takes, from the indices queued (in arrival
# order), given the arrival times and the requests' priority levels.
Choose = Callable[[list[int], float, list[float], list[float]], int]


def oldest(queue: list[int], now: float, arrived: list[float], level: list[float]) -> int:
    return queue[0]


def newest(queue: list[int], now: float, arrived: list[float], level: list[float]) -> int:
    return queue[-1]


def adaptive(threshold: float) -> Choose:
    def choose(queue: list[int], now: float, arrived: list[float], level: list[float]) -> int:
        return queue[-1] if now - arrived[queue[0]] > threshold else queue[0]

    return choose


def lowest(queue: list[int], now: float, arrived: list[float], level: list[float]) -> int:
    return min(queue, key=lambda i: (level[i], i))


def reference_waits(
    arrived: list[float],
    service: list[float],
    level: list[float],
    workers: int,
    choose: Choose,
) -> list[float]:
    """The waits a non-preemptive queue with `workers` servers and order `choose` gives
    requests arriving at `arrived` (sorted) and needing `service`."""
    n = len(arrived)
    free = [0.0] * workers  # when each worker is next free, a heap
    queue: list[int] = []
    start = [math.nan] * n
    i = 0
    while i < n or queue:
        soonest = free[0]
        if i < n and (not queue or arrived[i] < soonest):
            if not queue and soonest <= arrived[i]:
                start[i] = arrived[i]
                heapq.heapreplace(free, arrived[i] + service[i])
            else:
                queue.append(i)
            i += 1
        else:
            j = choose(queue, soonest, arrived, level)
            queue.remove(j)
            start[j] = soonest
            heapq.heapreplace(free, soonest + service[j])
    return [s - a for s, a in zip(start, arrived, strict=True)]


URGENT = {"task.urgent": 0, "task.bulk": 1}
EXACT = {
    "lifo M/M/1": ({"discipline": "lifo"}, newest, 1, [poisson(0.9, 300)]),
    "lifo M/M/2": ({"discipline": "lifo"}, newest, 2, [poisson(1.8, 300)]),
    "adaptive_lifo M/M/1": (
        {"discipline": "adaptive_lifo", "threshold_s": 3.0},
        adaptive(3.0),
        1,
        [poisson(0.95, 300)],
    ),
    "priority M/M/2": (
        {"discipline": "priority", "priorities": URGENT},
        lowest,
        2,
        [poisson(0.8, 300, "task.urgent"), poisson(1.0, 300, "task.bulk")],
    ),
}


@pytest.mark.parametrize("case", EXACT, ids=list(EXACT))
def test_every_wait_follows_the_discipline(case: str) -> None:
    order, choose, workers, workloads = EXACT[case]
    spans = served(sim.run(scenario(order, workloads, workers)))
    assert (spans.outcome == "ok").all()
    assert len(spans) > 200
    arrived, service = spans.start.tolist(), spans.service.tolist()
    level = [URGENT.get(name, 0) for name in spans.name]
    expected = reference_waits(arrived, service, level, workers, choose)
    off = [
        (row.span_id, row.start, row.wait, want)
        for row, want in zip(spans.itertuples(), expected, strict=True)
        if abs(row.wait - want) > 1e-9
    ]
    assert not off, f"{len(off)} of {len(spans)} waits break {case}, first: {off[:3]}"
    if choose is not oldest:
        # The order mattered: FIFO would have given other waits.
        fifo = reference_waits(arrived, service, level, workers, oldest)
        assert sum(abs(a - b) > 1e-9 for a, b in zip(fifo, expected, strict=True)) > 20


def test_adaptive_lifo_switches_both_ways() -> None:
    """The adaptive case above is not secretly all FIFO or all LIFO."""
    order, _, workers, workloads = EXACT["adaptive_lifo M/M/1"]
    spans = served(sim.run(scenario(order, workloads, workers)))
    arrived, service = spans.start.tolist(), spans.service.tolist()
    level = [0.0] * len(spans)
    as_fifo = reference_waits(arrived, service, level, workers, oldest)
    as_lifo = reference_waits(arrived, service, level, workers, newest)
    waits = spans.wait.tolist()
    assert sum(abs(w - f) > 1e-9 for w, f in zip(waits, as_fifo, strict=True)) > 20
    assert sum(abs(w - f) > 1e-9 for w, f in zip(waits, as_lifo, strict=True)) > 20


# --- against theory --------------------------------------------------------------------

RATE, SERVICE_RATE = 50.0, 100.0  # rho = 0.5, in hundredths of a second
HORIZON, WARMUP = 2_402.0, 2.0  # about 120,000 requests


def windows(spans: pd.DataFrame) -> list[pd.DataFrame]:
    """The spans arriving in each of BATCHES equal windows of [WARMUP, HORIZON)."""
    width = (HORIZON - WARMUP) / BATCHES
    return [
        spans[(spans.start >= WARMUP + k * width) & (spans.start < WARMUP + (k + 1) * width)]
        for k in range(BATCHES)
    ]


@functools.cache
def theory_run(discipline: str) -> pd.DataFrame:
    """M/M/1 at rho = 0.5 under `discipline`: its server spans."""
    if discipline == "priority":
        order: dict[str, Any] = {"discipline": "priority", "priorities": URGENT}
        workloads = [
            poisson(RATE / 2, HORIZON, "task.urgent"),
            poisson(RATE / 2, HORIZON, "task.bulk"),
        ]
    else:
        order, workloads = {"discipline": discipline}, [poisson(RATE, HORIZON)]
    data = scenario(order, workloads, mean=1 / SERVICE_RATE, duration=HORIZON + 10)
    data["sample_interval"] = 10.0
    spans = sim.run(data, seed=1).spans
    spans = spans[spans.kind == "server"]
    assert (spans.outcome == "ok").all()
    return spans


def check(
    name: str, samples: list[float], theory: float, limit: float = MAX_RELATIVE_HALF_WIDTH
) -> None:
    """The 95% interval of `samples` holds `theory` and is narrower than `limit` x it
    (printed, so that `pytest -s` shows each theory beside its interval)."""
    ci = mean_interval(samples, level=LEVEL)
    report = (
        f"{name}: theory {theory:.6g}, simulated {ci.mean:.6g}, {LEVEL:.0%} CI "
        f"[{ci.low:.6g}, {ci.high:.6g}], half-width {ci.half_width / theory:.1%} of theory"
    )
    print(report)
    assert theory in ci, report
    assert ci.half_width < limit * theory, report


@pytest.mark.slow
def test_lifo_mm1_has_fifo_mean_wait_and_a_larger_second_moment() -> None:
    moments = (1 / SERVICE_RATE, 2 / SERVICE_RATE**2, 6 / SERVICE_RATE**3)
    fifo_mean, fifo_square = mg1_waits(RATE, moments)
    lifo_mean, lifo_square = mg1_waits(RATE, moments, "lifo")
    assert lifo_mean == pytest.approx(fifo_mean)
    spans = windows(theory_run("lifo"))
    check("LIFO E[W]", [w.wait.mean() for w in spans], lifo_mean, MAX_RELATIVE_HALF_WIDTH)
    squares = [(w.wait**2).mean() for w in spans]
    # The second moment of a heavy-tailed wait is noisier: the interval is held to 15%,
    # and must lie wholly above FIFO's (twice smaller).
    check("LIFO E[W^2]", squares, lifo_square, 0.15)
    assert mean_interval(squares, level=LEVEL).low > 1.5 * fifo_square


@pytest.mark.slow
def test_two_priority_classes_wait_what_cobham_says() -> None:
    rates, means = [RATE / 2, RATE / 2], [1 / SERVICE_RATE] * 2
    urgent, bulk = priority_waits(rates, means, [2 / SERVICE_RATE**2] * 2)
    spans = theory_run("priority")
    for name, theory in (("task.urgent", urgent), ("task.bulk", bulk)):
        waits = [w.wait.mean() for w in windows(spans[spans.name == name])]
        check(f"priority {name} W", waits, theory, MAX_RELATIVE_HALF_WIDTH)


# --- overload and deadlines ------------------------------------------------------------

OVERLOAD = [poisson(120, 20)]  # 1.2 times what one worker of 10 ms serves


def overload_run(order: dict[str, Any], http: dict[str, Any] | None = None) -> sim.Run:
    """Twenty seconds at 120% load; the client waits 0.5 s for each answer."""
    data = scenario(order, OVERLOAD, mean=0.01, duration=40, timeout=0.5, http=http)
    return sim.run(data, seed=3)


def test_adaptive_lifo_keeps_answering_in_time_under_overload() -> None:
    threshold = 0.05
    fifo = overload_run({"discipline": "fifo"})
    alifo = overload_run({"discipline": "adaptive_lifo", "threshold_s": threshold})
    for run in (fifo, alifo):
        assert len(run.spans[run.spans.kind == "client"]) > 2_200

    def goodput(run: sim.Run) -> int:
        client = run.spans[run.spans.kind == "client"]
        return int((client.outcome == "ok").sum())

    def fresh(run: sim.Run) -> float:
        server = run.spans[run.spans.kind == "server"]
        return float((server.wait <= threshold).mean())

    # FIFO answers in time only until the queue is 0.5 s long (about 2.5 s in), then
    # every answer comes too late; adaptive LIFO keeps serving the newest requests.
    assert goodput(fifo) < 600
    assert goodput(alifo) > 3 * goodput(fifo)
    assert goodput(alifo) > 1_500
    assert fresh(fifo) < 0.1
    assert fresh(alifo) > 0.6


@pytest.mark.parametrize(
    "order",
    [
        {"discipline": "fifo"},
        {"discipline": "lifo"},
        {"discipline": "adaptive_lifo", "threshold_s": 0.05},
        {"discipline": "priority", "priority_field": "attempt"},
    ],
    ids=lambda order: order["discipline"],
)
def test_expired_requests_are_dropped_when_taken_whatever_the_order(order) -> None:
    run = overload_run(order, http={"drop_expired": True})
    spans = run.spans
    client = spans[spans.kind == "client"].set_index("span_id")
    server = spans[spans.kind == "server"]
    deadline = server.parent_id.map(client.deadline)
    taken = server.start + server.wait
    assert deadline.notna().all()
    dropped = server.status == 504
    assert dropped.sum() > 100, "overload should leave requests waiting past their deadline"
    # Dropped ones were taken after their deadline and took no time; worked ones before.
    assert (server[dropped].outcome == "deadline_exceeded").all()
    assert (taken[dropped] >= deadline[dropped]).all()
    assert (server[dropped].end - taken[dropped]).abs().max() < 1e-9
    worked = server.status == 200
    assert worked.sum() > 1_000
    assert (taken[worked] < deadline[worked]).all()


# --- the pool itself -------------------------------------------------------------------


def test_priority_by_a_payload_field_serves_lowest_first_fifo_within_a_level() -> None:
    h = Harness(["svc"])
    node = h.node("svc")
    started: list[str] = []
    order = QueueOrder(discipline="priority", priority_field="body.priority")
    pool = WorkerPool(node, 1, lambda job: started.append(job.msg.msg_id), order=order)
    owner: Any = None  # nobody answers: the test finishes the jobs itself

    def job(msg_id: str, body: Any) -> Job:
        msg = Message(msg_id=msg_id, type="t", src="c", dst="svc", body=body)
        return Job(owner, msg, -1, node.env.now)

    first = job("first", {"priority": 5})
    assert pool.submit(first)  # a worker is free: it starts at once
    for msg_id, body in [
        ("low-a", {"priority": 3}),
        ("none", {}),  # no level: default_priority 0
        ("high", HttpRequest(1, "POST", {"priority": 1})),  # an HTTP request's payload
        ("low-b", {"priority": 3}),
        ("gone", {"priority": 2}),
    ]:
        pool.submit(job(msg_id, body))
    gone = next(j for j in pool.queue if j.msg.msg_id == "gone")
    pool.withdraw(gone)
    assert pool.depth == 4
    for _ in range(4):
        pool.done(next(iter(pool.running.values())))
        h.run(h.env.now + 1)
    assert started == ["first", "none", "high", "low-a", "low-b"]


def test_a_pool_changes_order_only_while_empty() -> None:
    h = Harness(["svc"])
    node = h.node("svc")
    pool = WorkerPool(node, 1, lambda job: None)
    owner: Any = None
    msg = Message(msg_id="m", type="t", src="c", dst="svc")
    pool.submit(Job(owner, msg, -1, 0.0))
    pool.use_order(QueueOrder(discipline="lifo"))  # one running, none queued: fine
    pool.submit(Job(owner, msg, -1, 0.0))
    with pytest.raises(RuntimeError, match="empty"):
        pool.use_order(QueueOrder())


# --- the scenario setting --------------------------------------------------------------


def problems(data: dict[str, Any], tmp_path: Path) -> list[str]:
    """The loader's error lines for `data` (none if valid), without the file name."""
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        loading.load(str(path))
    except ScenarioError as exc:
        return [line.removeprefix(f"{path}: ") for line in exc.lines]
    return []


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (
            {"discipline": "random"},
            "agents.1.queue_order.discipline: must be 'fifo', 'lifo', 'adaptive_lifo' or "
            "'priority', got 'random'",
        ),
        (
            {"discipline": "lifo", "threshold_s": 0.2},
            "agents.1.queue_order: threshold_s applies only to discipline adaptive_lifo, not lifo",
        ),
        (
            {"priorities": {"a": 1}},
            "agents.1.queue_order: priorities applies only to discipline priority, not fifo",
        ),
        (
            {"discipline": "adaptive_lifo", "threshold_s": 0},
            "agents.1.queue_order.threshold_s: must be greater than 0, got 0",
        ),
    ],
)
def test_a_bad_queue_order_gets_one_sentence(order, message, tmp_path) -> None:
    data = scenario(order, [poisson(1, 10)], duration=20)
    assert problems(data, tmp_path) == [message]


def test_a_bad_priority_field_is_refused(tmp_path) -> None:
    data = scenario({"discipline": "priority", "priority_field": "body"}, [poisson(1, 10)])
    [line] = problems(data, tmp_path)
    assert line.startswith("agents.1.queue_order.priority_field: ")


def test_a_client_has_no_queue_to_order(tmp_path) -> None:
    data = scenario({}, [poisson(1, 10)], duration=20)
    data["agents"][0]["queue_order"] = {"discipline": "lifo"}
    assert problems(data, tmp_path) == [
        "agents.0.queue_order: a client serves no requests, so it has no queue to order; "
        "set queue_order on the agent that serves them"
    ]


def test_fifo_is_the_default_and_the_valid_settings_load(tmp_path) -> None:
    data = scenario({}, [poisson(1, 10)], duration=20)
    del data["agents"][1]["queue_order"]
    assert problems(data, tmp_path) == []
    assert loading.validate(data, "s").agents[1].queue_order == QueueOrder()
    for order in (
        {"discipline": "lifo"},
        {"discipline": "adaptive_lifo", "threshold_s": 0.05},
        {"discipline": "priority", "priority_field": "body.urgency", "default_priority": 9},
    ):
        assert problems(scenario(order, [poisson(1, 10)], duration=20), tmp_path) == []


def test_a_saved_scenario_with_every_field_written_out_loads_again():
    # A run's manifest writes each agent's default queue_order, clients' and brokers' too.
    run = sim.run("collaboration", duration=2)
    again = sim.scenario.Scenario.model_validate(run.scenario.model_dump(by_alias=True))
    assert again == run.scenario
