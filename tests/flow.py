"""Flow invariants of a run's trace: Little's law, conservation, retries, deadlines.

Little's law is checked on the worker pools (`littles_law`) and on the broker queues
(`broker_littles_law`, from the messages alone); `cancelled_waits` and
`budgets_after_restart` check a cancelled request's wait and a restarted caller's retry
budget and throttle.

Each function returns a list of sentences, one per violation (empty when it holds), so
the generated-scenario oracle (tests/test_properties.py) can show what broke.

Little's law holds on every sample path: over a window [0, T], the time-average number
in a system L = (1/T) * integral of N(t) dt equals lambda * W, with lambda the arrivals
in the window over T and W their mean time in the system counted up to T (the boundary
effect: what is still inside at T counts only its time before T). The check builds N(t)
from the spans' intervals, ties it to the worker pools' own gauges and counters (sampled
independently by the simulator) at every sample time, and compares both sides.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tests.breaker_reference import Reference, acquisitions, replay

# Times closer than this are the same instant (events at one instant may be sampled in
# either order).
EPS = 1e-9
# Span kinds that hold a worker pool's job: a request, a delivery, a stream.
HELD = ("server", "consumer")


def pool_name(run: Any, agent: str) -> str | None:
    """The `queues` name of `agent`'s worker pool, if it is sampled."""
    names = set(run.queues["queue"])
    for name in (
        f"{agent}.workers",
        *(f"{agent}.{p}.workers" for p in ("queue", "sse", "websocket", "a2a", "mcp")),
    ):
        if name in names:
            return name
    return None


def pool_jobs(run: Any, agent: str) -> pd.DataFrame:
    """The spans that held a job in `agent`'s pool: [start, end) with end = inf if open.

    A refused request (accept queue full, rate limited, a replay, a duplicate delivery)
    has a span that ends where it begins: it never held the pool, and adds nothing to N(t).
    """
    s = run.spans
    mine = s[(s["agent"] == agent) & s["kind"].isin(HELD)]
    end = mine["end"].fillna(math.inf)
    return pd.DataFrame({"start": mine["start"], "end": end, "wait": mine["wait"]})


def in_system(jobs: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """N(t) at each of `times`: the jobs with start <= t < end."""
    starts = np.sort(jobs["start"].to_numpy())
    ends = np.sort(jobs["end"].to_numpy())
    return np.searchsorted(starts, times, side="right") - np.searchsorted(ends, times, side="right")


def clean_times(jobs: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Which of `times` no job begins or ends at (an instant sampled in either order)."""
    edges = np.sort(np.concatenate([jobs["start"].to_numpy(), jobs["end"].to_numpy()]))
    edges = edges[np.isfinite(edges)]
    if edges.size == 0:
        return np.ones(times.shape, dtype=bool)
    i = np.clip(np.searchsorted(edges, times), 1, edges.size - 1)
    near = np.minimum(np.abs(edges[i] - times), np.abs(edges[i - 1] - times))
    return near > EPS


def integral(jobs: pd.DataFrame, horizon: float) -> float:
    """The integral of N(t) over [0, horizon], by sweeping N's steps in time order."""
    starts = jobs["start"].to_numpy()
    ends = jobs["end"].to_numpy()
    times = np.concatenate([starts, np.minimum(ends, horizon)])
    steps = np.concatenate([np.ones(starts.size), -np.ones(ends.size)])
    order = np.lexsort((steps, times))
    times, steps = times[order], steps[order]
    level = np.cumsum(steps)
    widths = np.diff(np.append(times, horizon))
    return float(np.sum(level * widths))


def littles_law(run: Any) -> list[str]:
    """Where a pool's gauges disagree with its spans, or L != lambda * W over the run."""
    problems: list[str] = []
    horizon = run.duration
    for agent in sorted(set(run.spans.loc[run.spans["kind"].isin(HELD), "agent"])):
        name = pool_name(run, agent)
        if name is None:
            continue
        jobs = pool_jobs(run, agent)
        if jobs.empty:
            continue
        # L, by sweeping N(t); lambda * W, by counting arrivals and their sojourns.
        area = integral(jobs, horizon)
        arrivals = len(jobs)
        sojourn = float((jobs["end"].clip(upper=horizon) - jobs["start"]).mean())
        lam, big_l = arrivals / horizon, area / horizon
        if not math.isclose(big_l, lam * sojourn, rel_tol=1e-9, abs_tol=1e-9):
            problems.append(f"{agent}: L = {big_l:.9g} but lambda * W = {lam * sojourn:.9g}")
        # N(t) against the pool's gauge (queued + at work) at each sample.
        q = run.queues[run.queues["queue"] == name]
        times = q["time"].to_numpy(dtype=float)
        clean = clean_times(jobs, times)
        counted = in_system(jobs, times)
        gauge = (q["depth"] + q["in_flight"]).to_numpy()
        for t, n, g in zip(times[clean], counted[clean], gauge[clean], strict=True):
            if n != g:
                problems.append(f"{name} at {t:g}: {g} jobs in the pool, {n} spans in it")
                break
        problems += _queued_matches_waits(run, agent, name, q)
    return problems


def _queued_matches_waits(run: Any, agent: str, name: str, q: pd.DataFrame) -> list[str]:
    """The pool's queue (`depth`) at each sample against the spans still waiting then.

    A server span waits from its start for `wait` seconds, then works. A queue consumer's
    `wait` also counts its time on the broker, before its span began, so an agent that
    consumes is left out.
    """
    s = run.spans
    mine = s[(s["agent"] == agent) & s["kind"].isin(HELD)]
    if mine.empty or (mine["kind"] != "server").any():
        return []
    # A span still open has recorded no wait (queued or at work, it is not known): only
    # the samples before the first of them are judged.
    still = mine.loc[mine["outcome"] == "open", "start"]
    if not still.empty:
        q = q[q["time"] < still.min()]
        mine = mine[mine["outcome"] != "open"]
    queued = pd.DataFrame({"start": mine["start"], "end": mine["start"] + mine["wait"]})
    times = q["time"].to_numpy(dtype=float)
    clean = clean_times(queued, times) & clean_times(pool_jobs(run, agent), times)
    counted = in_system(queued, times)
    depth = q["depth"].to_numpy()
    for t, n, d in zip(times[clean], counted[clean], depth[clean], strict=True):
        if n != d:
            return [f"{name} at {t:g}: {d} jobs queued, {n} spans waiting"]
    return []


def pool_conservation(run: Any) -> list[str]:
    """Worker pools whose counters do not add up: enqueued = acked + queued + at work."""
    q = run.queues[run.queues["queue"].str.endswith(".workers")]
    bad = q[q["enqueued"] != q["acked"] + q["depth"] + q["in_flight"]]
    return [
        f"{r.queue} at {r.time:g}: enqueued {r.enqueued} != acked {r.acked} + queued "
        f"{r.depth} + at work {r.in_flight}"
        for r in bad.drop_duplicates("queue").itertuples(index=False)
    ]


# A request's end may trail an instant by float rounding.
SLACK = 1e-6


def retries_within_max(run: Any) -> list[str]:
    """Requests that made more attempts than their channel's retry policy allows."""
    s = run.spans
    problems: list[str] = []
    for channel in run.scenario.channels:
        retry = getattr(channel, "retry", None)
        most = retry.max_attempts if retry is not None else 1
        calls = s[(s["agent"] == channel.src) & (s["peer"] == channel.dst)]
        calls = calls[calls["kind"].isin(["client", "producer"])]
        # A retrying request's span holds its attempts as children of its own kind.
        attempts = calls[calls["parent_id"].isin(calls["span_id"])]
        per = attempts.groupby("parent_id").size()
        for parent, n in per[per > most].head(3).items():
            problems.append(f"{channel.src} -> {channel.dst}: {parent} made {n} attempts > {most}")
        # An SSE stream and a WebSocket connection count their reconnections in
        # `attempts`: not retries.
        counted = calls[
            (calls["protocol"] != "sse")
            & ~calls["name"].isin(["ws.connection", "ws.session"])
            & ~calls["span_id"].isin(attempts["span_id"])
        ]
        over = counted[counted["attempts"] > most]
        for row in over.head(3).itertuples(index=False):
            problems.append(
                f"{channel.src} -> {channel.dst}: {row.span_id} counts {row.attempts} attempts"
                f" > {most}"
            )
    return problems


def sends_past_deadline(run: Any) -> list[str]:
    """Requests put on the wire by a call after that call's deadline had passed: one deadline
    covers every attempt and every re-send (gRPC), a request past it has nobody waiting."""
    m, s = run.messages, run.spans
    sent = m[m["kind"].isin(["request", "publish"]) & ~m["duplicate"] & (m["span_id"] != "")]
    # A call's own sends; a consumer publishing its reply is not a call.
    callers = s.loc[s["kind"].isin(["client", "producer"]), "span_id"]
    sent = sent[sent["span_id"].isin(callers)]
    # A WebSocket message once written is TCP's to deliver: it retransmits the segment
    # (the same msg_id, attempt + 1) whatever the caller does; only the first send counts.
    tcp = sent["protocol"] == "websocket"
    sent = sent[~tcp | ~sent.duplicated(["msg_id", "kind"])]
    deadline = sent["span_id"].map(s.set_index("span_id")["deadline"]).astype("float64")
    late = sent[deadline.notna() & (sent["sent_at"] > deadline + SLACK)]
    return [
        f"{r.src} -> {r.dst}: {r.msg_id} ({r.kind}, attempt {r.attempt}) sent at {r.sent_at:.6f}"
        f" past its call's deadline {d:.6f}"
        for r, d in zip(late.head(3).itertuples(index=False), deadline[late.index], strict=False)
    ]


def awake_at(run: Any, agent: str, t: float) -> float:
    """When `agent` can act on what reached it at `t`: then, or when the pause it is in
    ends (a paused process reads its messages on waking)."""
    for fault in run.scenario.faults:
        if fault.kind == "pause" and agent in fault.targets and fault.start <= t:
            end = run.duration if fault.end is None else fault.end
            if t < end:
                t = end
    return t


def work_past_cancel(run: Any) -> list[str]:
    """Handlers that went on after their caller's cancel reached them.

    An HTTP cancel (`http.cancel`, sent when a call with `cancel_on_timeout` times out)
    names the request; once it is delivered (and the server runs: a paused one reads it
    on waking), the request's server span must have ended (it ends `cancelled` then,
    freeing its worker), or end as the request arrives, if the cancel overtook it.
    """
    m, s = run.messages, run.spans
    cancels = m[(m["type"] == "http.cancel") & (m["outcome"] == "delivered")]
    if cancels.empty:
        return []
    requests = m[(m["kind"] == "request") & ~m["duplicate"]].drop_duplicates("msg_id")
    sender = requests.set_index("msg_id")["span_id"]
    servers = s[s["kind"] == "server"]
    by_parent = servers.drop_duplicates("parent_id").set_index("parent_id")
    problems: list[str] = []
    for cancel in cancels.itertuples(index=False):
        caller = sender.get(cancel.causation_id)
        if caller is None or caller not in by_parent.index:
            continue
        server = by_parent.loc[caller]
        end = math.inf if pd.isna(server["end"]) else server["end"]
        # A cancel that overtook its request stops it when it arrives.
        heard = max(awake_at(run, str(server["agent"]), cancel.delivered_at), server["start"])
        if end > heard + SLACK:
            problems.append(
                f"{server['agent']}: {server['span_id']} ran to {end:.6f} ({server['outcome']})"
                f" past the cancel delivered at {cancel.delivered_at:.6f}"
            )
    return problems[:3]


def pool_waits_below_its_size(run: Any) -> list[str]:
    """HTTP calls that waited for a connection while their caller held fewer calls to the
    callee in flight than its pool's size (a connection that never came back)."""
    s = run.spans
    calls = s[(s["kind"] == "client") & (s["protocol"] == "http")]
    # A retrying request's span holds its attempts: only attempts take connections.
    calls = calls[~calls["span_id"].isin(calls["parent_id"])]
    problems: list[str] = []
    for (agent, peer), mine in calls.groupby(["agent", "peer"], sort=True):
        waited = mine[(mine["wait"] > SLACK) | mine["error"].str.contains("pool timeout")]
        if waited.empty:
            continue
        size = http_pool_size(run, str(agent), str(peer))
        starts = np.sort(mine["start"].to_numpy())
        ends = np.sort(mine["end"].fillna(math.inf).to_numpy())
        for row in waited.head(20).itertuples(index=False):
            # Calls in flight when this one began (it among them).
            busy = np.searchsorted(starts, row.start, "right") - np.searchsorted(
                ends, row.start, "right"
            )
            if busy <= size:
                problems.append(
                    f"{agent} -> {peer}: {row.span_id} waited {row.wait:.6f} s for a connection"
                    f" with {busy - 1} other calls in flight (pool of {size})"
                )
                break
    return problems


def http_pool_size(run: Any, agent: str, peer: str) -> int:
    """The connections `agent` may hold to `peer` (httpx's max_connections)."""
    for channel in run.scenario.channels:
        if channel.src == agent and channel.dst == peer and channel.protocol == "http":
            return int(channel.http.max_connections)
    return 100


def cancelled_waits(run: Any) -> list[str]:
    """Cancelled requests whose `wait` is not the time they waited before a worker took
    them: a number from 0 to the span's length (all of it when cancelled while queued),
    whatever the protocol (HTTP, MCP, A2A, a queue's consumer)."""
    s = run.spans
    cancelled = s[(s["outcome"] == "cancelled") & (s["kind"] == "server")]
    life = cancelled["end"] - cancelled["start"]
    bad = cancelled[~((cancelled["wait"] >= 0) & (cancelled["wait"] <= life + SLACK))]
    return [
        f"{r.agent}: {r.span_id} ({r.protocol} {r.name}) cancelled after {r.end - r.start:.6f} s"
        f" records a wait of {r.wait}"
        for r in bad.head(3).itertuples(index=False)
    ]


def budgets_after_restart(run: Any) -> list[str]:
    """Retry budgets and adaptive throttles that refused after a caller's restart sooner
    than a fresh one could have.

    Both live in the caller's process (Finagle's RetryBudget, the AWS SDKs' retry quota,
    gRPC's retry throttling, the SRE book's client-side throttle): a crash loses them and
    the restarted process starts with a full budget and an empty history, as its breaker
    does. So, counting only what happened since the restart, a refusal needs:

    - token bucket: the retries granted since, at their costs, to have spent more than
      `capacity` less the refused retry's cost;
    - gRPC throttle: at least `max_tokens / 2` failed attempts since;
    - ratio budget: at least `min_retries_per_second * ttl` retries granted since;
    - adaptive throttle: more attempts asked since than K times the ones accepted (ok)
      within its window.

    The counts are upper bounds where that makes the test a necessary condition (a
    failed attempt whose request went on counts as a granted retry).
    """
    s = run.spans
    problems: list[str] = []
    for channel in run.scenario.channels:
        budget, throttle = channel.budget, channel.throttle
        if budget is None and throttle is None:
            continue
        restarts = sorted(
            (end, start)
            for agent, start, end in _crashes(run)
            if agent == channel.src and end < run.duration
        )
        if not restarts:
            continue
        calls = s[(s["agent"] == channel.src) & (s["peer"] == channel.dst)]
        calls = calls[calls["kind"] == "client"]
        attempts = calls[calls["parent_id"].isin(calls["span_id"])]
        requests = calls[~calls["span_id"].isin(attempts["span_id"])]
        downs = sorted(start for agent, start, _ in _crashes(run) if agent == channel.src)
        for up, _ in restarts:
            until = next((d for d in downs if d > up + EPS), math.inf)
            mine = requests[(requests["start"] >= up - EPS) & (requests["start"] < until)]
            tried = attempts[attempts["parent_id"].isin(mine["span_id"])]
            if budget is not None:
                problems += _budget_refusals(channel, budget, mine, tried, up)
            if throttle is not None:
                problems += _throttle_refusals(channel, throttle, mine, tried, up)
    return problems[:3]


def _crashes(run: Any) -> list[tuple[str, float, float]]:
    """(agent, down at, up again at) of every crash; up is inf without a restart."""
    found = []
    for fault in run.scenario.faults:
        if fault.kind == "crash":
            end = math.inf if fault.end is None else fault.end
            found += [(agent, fault.start, end) for agent in fault.targets]
    return found


def _granted(requests: pd.DataFrame, attempts: pd.DataFrame) -> pd.DataFrame:
    """The failed attempts after which a retry was (or may have been) granted, with
    `at`, when: those followed by another attempt, or whose request went on after them
    or ended with no time left to retry (granted, then given up)."""
    failed = attempts[attempts["outcome"] != "ok"].copy()
    if failed.empty:
        return failed.assign(at=[])
    by_request = requests.set_index("span_id")
    last = attempts.groupby("parent_id")["start"].max()
    end = failed["parent_id"].map(by_request["end"]).astype("float64").fillna(math.inf)
    error = failed["parent_id"].map(by_request["error"]).fillna("")
    followed = failed["start"] < failed["parent_id"].map(last) - EPS
    went_on = end > failed["end"] + EPS
    no_time = error.str.endswith("no time left to retry")
    return failed[followed | went_on | no_time].assign(at=failed["end"])


def _budget_refusals(
    channel: Any, budget: Any, requests: pd.DataFrame, attempts: pd.DataFrame, up: float
) -> list[str]:
    refused = requests[requests["error"].str.contains("retry refused: ", regex=False)]
    if refused.empty:
        return []
    first = refused.sort_values("end").iloc[0]
    t = float(first["end"])
    granted = _granted(requests, attempts)
    granted = granted[granted["at"] <= t + EPS]
    name = f"{channel.src} -> {channel.dst}"
    told = f"{name}: retry refused at {t:.6f}, {t - up:.6f} s after its restart"
    if budget.kind == "token_bucket":
        costs = np.where(granted["outcome"] == "timeout", budget.timeout_cost, budget.retry_cost)
        spent = int(costs.sum())
        own = attempts[attempts["parent_id"] == first["span_id"]]
        timed_out = not own.empty and own.sort_values("start").iloc[-1]["outcome"] == "timeout"
        need = budget.timeout_cost if timed_out else budget.retry_cost
        if spent <= budget.capacity - need:
            return [f"{told}: a fresh bucket of {budget.capacity} held {need} after {spent} spent"]
    elif budget.kind == "grpc":
        failures = int(((attempts["outcome"] != "ok") & (attempts["end"] <= t + EPS)).sum())
        if failures < budget.max_tokens / 2:
            return [f"{told}: a fresh gRPC throttle needs {budget.max_tokens / 2:g} failures,"
                    f" there were {failures}"]  # fmt: skip
    else:
        floor = budget.min_retries_per_second * budget.ttl
        if (budget.ratio > 0 or floor > 0) and len(granted) < floor:
            return [f"{told}: a fresh ratio budget allows {floor} retries, {len(granted)} made"]
    return []


def _throttle_refusals(
    channel: Any, throttle: Any, requests: pd.DataFrame, attempts: pd.DataFrame, up: float
) -> list[str]:
    # What the throttle was asked about: each attempt of a retrying request, each call
    # that is its own attempt, each request refused whole.
    leaves = pd.concat([attempts, requests[~requests["span_id"].isin(attempts["parent_id"])]])
    throttled = requests[requests["error"].str.startswith("throttled locally")]
    for row in throttled.sort_values("end").itertuples(index=False):
        t = float(row.end)
        asked = int((leaves["start"] < t + EPS).sum()) - int(row.span_id in set(leaves["span_id"]))
        since = max(up, t - throttle.window + throttle.window / throttle.slices)
        accepted = leaves[
            (leaves["outcome"] == "ok") & (leaves["end"] >= since) & (leaves["end"] < t - EPS)
        ]
        if asked <= throttle.k * len(accepted):
            return [
                f"{channel.src} -> {channel.dst}: throttled at {t:.6f}, {t - up:.6f} s after its"
                f" restart, with {asked} attempts asked since and {len(accepted)} accepted"
            ]
    return []


def broker_littles_law(run: Any) -> list[str]:
    """Little's law on each broker request queue, from the messages, against the
    broker's own samples.

    A stored message is in its queue (ready or in flight) from the moment its publish
    reaches the broker until the broker takes an ack of its current delivery, or parks
    it (its dead-lettered row). From the messages alone: A(t) publishes in, D(t) acks
    taken and dead letters out, N(t) = A(t) - D(t); at every sample N(t) must be the
    queue's depth + in_flight, A(t) its `enqueued`, D(t) its `acked` + `dead_lettered`;
    and over [0, T], L = (1/T) * integral of N equals lambda * W, with lambda = A(T) / T
    and W the mean time in the queue counted up to T (a message still queued at T
    counts its time until T).

    An ack is taken when it reaches the broker while its delivery is still the current
    one (no newer delivery sent, its visibility timeout not run out) and none before it
    was. Judged where the messages say all that: request queues of plain (not topic,
    not FIFO) SQS, RabbitMQ and Redis Streams channels (Pub/Sub extends its leases)
    whose every message was stored once (a re-sent or duplicated publish stores a second
    copy under the same msg_id), in runs with no pause or partition and no crash of the
    broker (or of a RabbitMQ consumer): those make acks stale in ways the trace does not
    show (a connection declared lost, a broker's requeue on restart).
    """
    scenario = run.scenario
    if any(f.kind in ("pause", "partition") for f in scenario.faults):
        return []
    crashed = {a for f in scenario.faults if f.kind == "crash" for a in f.targets}
    queues = run.queues
    m = run.messages
    spans = run.spans.set_index("span_id")
    problems: list[str] = []
    judged: set[str] = set()
    for channel in scenario.channels:
        if channel.protocol != "queue":
            continue
        settings = scenario.queue_settings(channel)
        name = settings.requests_of(channel.dst)
        if name in judged or settings.topic is not None or settings.fifo:
            continue
        if settings.flavour not in ("sqs", "rabbitmq", "redis-streams"):
            continue
        if settings.broker in crashed or (
            settings.flavour == "rabbitmq" and channel.dst in crashed
        ):
            continue
        samples = queues[queues["queue"] == name]
        if samples.empty:
            continue
        judged.add(name)
        producers = {
            c.src
            for c in scenario.channels
            if c.protocol == "queue" and scenario.queue_settings(c).requests_of(c.dst) == name
        }
        problems += _queue_flow(run, m, spans, name, producers, channel.dst, settings, samples)
    return problems[:3]


def _queue_flow(
    run: Any,
    m: pd.DataFrame,
    spans: pd.DataFrame,
    name: str,
    producers: set[str],
    consumer: str,
    settings: Any,
    samples: pd.DataFrame,
) -> list[str]:
    """`broker_littles_law` on queue `name`, consumed by `consumer`."""
    broker = settings.broker
    publishes = m[(m["kind"] == "publish") & (m["dst"] == broker) & m["src"].isin(producers)]
    publishes = publishes[publishes["outcome"] == "delivered"]
    peer = publishes["span_id"].map(spans["peer"])
    kind = publishes["span_id"].map(spans["kind"])
    publishes = publishes[(kind == "producer") & (peer == consumer)]
    if publishes["msg_id"].duplicated().any():
        return []  # two copies under one msg_id: whose ack is whose is not in the trace
    ids = set(publishes["msg_id"])
    arrivals = np.sort(publishes["delivered_at"].to_numpy(dtype=float))
    copies = m[(m["kind"] == "deliver") & (m["dst"] == consumer) & m["msg_id"].isin(ids)]
    parked = copies[copies["outcome"] == "dead_lettered"]["ended_at"].to_numpy(float)
    # The broker's deliveries (a network duplicate is another copy of one, same tag).
    deliveries = copies[~copies["duplicate"]]
    acks = m[
        (m["kind"] == "ack")
        & (m["src"] == consumer)
        & (m["dst"] == broker)
        & (m["outcome"] == "delivered")
        & m["causation_id"].isin(ids)
    ]
    taken = _acks_taken(acks, deliveries, settings.visibility_timeout)
    departures = np.sort(np.concatenate([taken, parked]))
    times = samples["time"].to_numpy(dtype=float)
    edges = np.concatenate([arrivals, departures])
    clean = clean_times(pd.DataFrame({"start": edges, "end": edges}), times)
    came = np.searchsorted(arrivals, times, side="right")
    went = np.searchsorted(departures, times, side="right")
    problems: list[str] = []
    for t, a, d, row in zip(
        times[clean], came[clean], went[clean], samples[clean].itertuples(index=False), strict=True
    ):
        held = row.depth + row.in_flight
        if (a, d, a - d) != (row.enqueued, row.acked + row.dead_lettered, held):
            problems.append(
                f"{name} at {t:g}: the messages say {a} in, {d} out, {a - d} held; the broker"
                f" {row.enqueued} in, {row.acked + row.dead_lettered} out, {held} held"
            )
            break
    # Little's law over [0, T]: the integral of N against lambda * W, W counted up to T.
    if departures.size > arrivals.size:
        return [*problems, f"{name}: {departures.size} left, only {arrivals.size} came in"]
    if problems or not arrivals.size:
        return problems
    horizon = run.duration
    jobs = pd.DataFrame({"start": arrivals, "end": _fifo_ends(arrivals, departures, horizon)})
    big_l = integral(jobs, horizon) / horizon
    lam = arrivals.size / horizon
    sojourn = float((jobs["end"] - jobs["start"]).mean())
    if not math.isclose(big_l, lam * sojourn, rel_tol=1e-9, abs_tol=1e-9):
        problems.append(f"{name}: L = {big_l:.9g} but lambda * W = {lam * sojourn:.9g}")
    return problems


def _fifo_ends(arrivals: np.ndarray, departures: np.ndarray, horizon: float) -> np.ndarray:
    """Each arrival's departure paired in order (any pairing gives the same integral),
    `horizon` for those still inside at the end."""
    ends = np.full(arrivals.size, horizon)
    ends[: departures.size] = np.minimum(departures, horizon)
    return np.maximum(ends, arrivals)


def _acks_taken(acks: pd.DataFrame, deliveries: pd.DataFrame, visibility: float) -> np.ndarray:
    """When the broker took each ack it took (see `broker_littles_law`)."""
    taken: list[float] = []
    by_msg = {k: g.sort_values("sent_at") for k, g in deliveries.groupby("msg_id")}
    for msg_id, mine in acks.sort_values("delivered_at").groupby("causation_id", sort=False):
        sent = by_msg.get(msg_id)
        if sent is None:
            continue
        done = False  # an ack taken: the message has left
        for ack in mine.itertuples(index=False):
            at = ack.delivered_at
            before = sent[sent["sent_at"] <= at + EPS]
            if before.empty or done:
                continue
            current = before.iloc[-1]
            if int(current["attempt"]) != ack.attempt:
                continue  # of an earlier delivery, redelivered since
            if at > current["sent_at"] + visibility + EPS:
                continue  # its visibility timeout ran out first: it was requeued
            done = True
            taken.append(float(at))
    return np.array(taken, dtype=float)


def breakers_agree(run: Any) -> list[str]:
    """Breakers whose decisions or transitions differ from the reference's
    (tests/breaker_reference.py) replaying the same calls.

    A channel where a call began at the very instant another ended (or the caller
    crashed) is left out: which of the two the breaker saw first is the event loop's
    order, which the trace does not record.
    """
    problems: list[str] = []
    for channel in run.scenario.channels:
        settings = getattr(channel, "breaker", None)
        if settings is None or settings.mode != "rate" or settings.window_type != "count":
            continue
        if channel.throttle is not None or settings.automatic_transition:
            continue
        if settings.max_half_open > 0 or settings.open_for_multiplier != 1:
            continue
        crashes = [
            f.start for f in run.scenario.faults if f.kind == "crash" and channel.src in f.targets
        ]
        calls = acquisitions(run, channel.src, channel.dst)
        if _ties(calls, crashes):
            continue
        ref = Reference(
            failure_rate=settings.failure_rate,
            window_size=settings.window,
            min_calls=settings.min_calls,
            open_for=settings.open_for,
            half_open_calls=settings.half_open_calls,
            slow_rate=settings.slow_rate,
            slow_call=settings.slow_call,
        )
        found = replay(run, channel.src, channel.dst, ref, crashes)
        if not found:
            b = run.breakers
            mine = b[(b["agent"] == channel.src) & (b["target"] == channel.dst)]
            got = list(zip(mine["time"], mine["from_state"], mine["to_state"], strict=True))
            want = [(t, f, to) for t, f, to, _, _ in ref.moves]
            if len(got) != len(want) or any(
                g[1:] != w[1:] or abs(g[0] - w[0]) > EPS for g, w in zip(got, want, strict=True)
            ):
                found = [f"{channel.src} -> {channel.dst}: transitions {got[:6]} != {want[:6]}"]
        problems += found
    return problems


def _ties(calls: pd.DataFrame, crashes: list[float]) -> bool:
    """Whether the breaker's order of events is hidden by the trace: a call began at the
    instant another ended (or the caller crashed), two calls ended at one instant
    (answers on one connection, in the order the server wrote them), or a refused retry
    asked at the instant another call did. (Calls asking at one instant otherwise asked
    in the order their spans began.)"""
    starts = calls["at"].to_numpy()
    if starts.size == 0:
        return False
    # Calls asking at one instant with a refused retry among them: its place is unknown.
    same = np.diff(starts) <= EPS
    retry = calls["retry"].to_numpy()
    if (same & (retry[1:] | retry[:-1])).any():
        return True
    refused = calls["error"].str.startswith("circuit breaker").to_numpy()
    judged = calls[~refused & calls["end"].notna()]
    ends = np.sort(judged["end"].to_numpy())
    if ends.size > 1 and (np.diff(ends) <= EPS).any():
        return True
    # Ends within EPS of each start, less the call's own (one may end where it began).
    near = np.searchsorted(ends, starts + EPS, "right") - np.searchsorted(ends, starts - EPS)
    own = ~refused & ((calls["end"] - calls["at"]).abs().to_numpy() <= EPS)
    if (near - own > 0).any():
        return True
    return any(abs(start - crash) <= EPS for start in starts for crash in crashes)


# Every flow check, by name: each returns its violations as sentences.
CHECKS = {
    "littles_law": littles_law,
    "pool_conservation": pool_conservation,
    "retries_within_max": retries_within_max,
    "sends_past_deadline": sends_past_deadline,
    "work_past_cancel": work_past_cancel,
    "pool_waits_below_its_size": pool_waits_below_its_size,
    "breakers_agree": breakers_agree,
    "cancelled_waits": cancelled_waits,
    "budgets_after_restart": budgets_after_restart,
    "broker_littles_law": broker_littles_law,
}
# The checks that also hold on every built-in scenario (tests/test_accounting.py).
BUILTIN_CHECKS = ("cancelled_waits", "budgets_after_restart", "broker_littles_law")


def flow_violations(run: Any) -> dict[str, list[str]]:
    """The flow checks that failed on `run`, with their first violations."""
    found = {name: check(run) for name, check in CHECKS.items()}
    return {name: problems for name, problems in found.items() if problems}
