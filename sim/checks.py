"""Invariants any run can be checked against, each a pure function of the Run.

Each check returns the rows that violate it (an empty table when it holds), each with
the `msg_id` of the message that shows the violation ("" where nothing was sent) and a
`correlation_id` wherever one applies, so a violation can be shown with the chain of
messages that led to it (`sim.explain`). `check(run)` runs them all (`sim.check`),
`violations(run)` keeps those that failed and the scenario does not expect to fail;
`python -m sim run SCENARIO --check` prints each failing check's first violations and
exits 1. A Run never calls these itself.

    >>> import sim
    >>> run = sim.run("basic")
    >>> sorted(sim.check(run)) == sorted(c.name for c in CHECKS)
    True
    >>> violations(run)
    {}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from protocols.a2a import PUSH_TYPE
from protocols.a2a.lifecycle import TERMINAL as TERMINAL_TASK_STATES
from protocols.negotiation import BID
from protocols.queue.routing import attributes_of, takes
from sim.metrics import CALLERS, OPEN_STATES, requests

if TYPE_CHECKING:
    from sim.trace.run import Run

# A request may end later than its deadline by the time its answer takes to travel.
SLACK = 1e-6


@dataclass(frozen=True)
class Check:
    """One invariant: its name, what it asserts, and the function finding violations."""

    name: str
    asserts: str
    find: Callable[[Run], pd.DataFrame]


def nothing_lost(run: Run) -> pd.DataFrame:
    """Workload requests that vanished: still open past their deadline at the run's end.

    Every request must end in a response, an error, a timeout or a dead-letter entry;
    one with no deadline that is still open is reported by `Run.summary`, not here. A
    caller paused or crashed from its deadline to the run's end cannot run the timer that
    would end its call: its requests are not lost, it is.
    """
    roots = requests(run.spans)
    vanished = roots[(roots["outcome"] == "open") & (roots["deadline"] < run.duration - SLACK)]
    vanished = vanished[~asleep_at_deadline(run, vanished)]
    vanished = vanished.assign(msg_id=request_of(run, vanished["span_id"]))
    return vanished[["correlation_id", "span_id", "msg_id", "agent", "peer", "start", "deadline"]]


def asleep_at_deadline(run: Run, calls: pd.DataFrame) -> pd.Series:
    """Whether each call's agent was paused or crashed from its deadline to the run's end."""
    asleep = pd.Series(False, index=calls.index)
    for fault in run.scenario.faults:
        if fault.kind not in ("pause", "crash"):
            continue
        if fault.end is not None and fault.end < run.duration:
            continue  # it wakes before the end and its timers fire then
        asleep |= calls["agent"].isin(fault.targets) & (calls["deadline"] >= fault.start)
    return asleep


def exactly_once(run: Run) -> pd.DataFrame:
    """Effects applied more than once for one key by a receiver that dedupes them.

    Deduplication belongs to a protocol's receiver, not to the agent: an agent whose
    HTTP server dedupes still applies every queue delivery it gets unless its queue
    channel is idempotent. So an effect counts only where the protocol (and, for a
    queue, the channel) that delivered it dedupes.
    """
    columns = ["agent", "protocol", "key", "effects", "correlation_id", "msg_id"]
    effects = run.effects
    if effects.empty:
        return pd.DataFrame(columns=columns)
    m = run.messages
    # The message each effect applied, as its sender sent it: its protocol and sender.
    sent = m[m["kind"].isin(SENDS)].drop_duplicates("msg_id").set_index("msg_id")
    anyhow = m.drop_duplicates("msg_id").set_index("msg_id")
    protocol = (
        effects["msg_id"].map(sent["protocol"]).fillna(effects["msg_id"].map(anyhow["protocol"]))
    )
    sender = effects["msg_id"].map(sent["src"]).fillna(effects["msg_id"].map(anyhow["src"]))
    effects = effects.assign(protocol=protocol.fillna(""), sender=sender.fillna(""))
    dedupes = receivers_that_dedupe(run)
    counted = [
        dedupes(agent, proto, src)
        for agent, proto, src in zip(
            effects["agent"], effects["protocol"], effects["sender"], strict=True
        )
    ]
    mine = effects[counted].sort_values("time", kind="stable")
    if mine.empty:
        return pd.DataFrame(columns=columns)
    keys = ["agent", "protocol", "key"]
    grouped = mine.groupby(keys, sort=True).agg(
        effects=("msg_id", "size"), correlation_id=("correlation_id", "first")
    )
    bad = grouped[grouped["effects"] > 1]
    # The violating message: the one whose effect was applied again (the second).
    again = mine[mine.groupby(keys, sort=False).cumcount() == 1].set_index(keys)["msg_id"]
    bad = bad.assign(msg_id=again.reindex(bad.index)).reset_index()
    return bad[columns]


def receivers_that_dedupe(run: Run) -> Callable[[str, str, str], bool]:
    """Whether `agent`'s receiver of `protocol` dedupes what `sender` sent it.

    HTTP: the agent's `http.dedupe` (its idempotency store keys every request). A queue:
    the channel from the sender to the agent is `idempotent` (any queue channel reaching
    the agent, when the sender is not known). An agent that declares itself
    `idempotent` dedupes whatever protocol delivers. Other protocols do not dedupe.
    """
    scenario = run.scenario
    agents = {agent.id: agent for agent in scenario.agents}
    # A channel that leaves `idempotent` unset inherits its broker agent's.
    queued = {
        (c.src, c.dst): scenario.queue_settings(c).idempotent
        for c in scenario.channels
        if c.protocol == "queue"
    }
    any_queue = {dst for (_src, dst), idempotent in queued.items() if idempotent}

    def dedupes(agent: str, protocol: str, sender: str) -> bool:
        spec = agents.get(agent)
        if spec is None:
            return False
        if getattr(spec, "idempotent", False):
            return True
        if protocol == "http":
            return bool(spec.http.dedupe)
        if protocol == "queue":
            if (sender, agent) in queued:
                return queued[(sender, agent)]
            return agent in any_queue
        return False

    return dedupes


def deadlines_shrink(run: Run) -> pd.DataFrame:
    """Calls whose deadline is later than the deadline of the call they serve.

    Along a chain A -> B -> C, B's call to C must give up no later than A's call to B:
    otherwise C works for a caller that has already stopped waiting. The call a call
    serves is found by going up from it to the handler it runs in (a server or consumer
    span: past a retrying request's span over its attempts, a fan-out, any step of the
    handler's own) and taking the call that handler answers.
    """
    columns = ["correlation_id", "span_id", "msg_id", "agent", "peer", "deadline", "upstream"]
    spans = run.spans
    calls = spans[(spans["kind"].isin(CALLERS)) & (spans["parent_id"] != "")]
    if calls.empty:
        return pd.DataFrame(columns=columns)
    by_id = spans.set_index("span_id")
    handler = _handler_of(calls["parent_id"], by_id["kind"], by_id["parent_id"])
    upstream = handler.map(by_id["parent_id"]).map(by_id["deadline"])
    bad = calls.assign(upstream=upstream)
    bad = bad[bad["upstream"].notna() & bad["deadline"].notna()]
    bad = bad[bad["deadline"] > bad["upstream"] + SLACK]
    bad = bad.assign(msg_id=request_of(run, bad["span_id"]))
    return bad[columns]


# The span kinds of a handler: the work done for a request that arrived.
HANDLERS = ("server", "consumer")


def _handler_of(start: pd.Series, kind: pd.Series, parent: pd.Series) -> pd.Series:
    """For each span id in `start`, it or its nearest ancestor that is a handler ("" if none)."""
    current = start
    for _ in range(len(kind) + 1):
        found = current.map(kind)
        done = found.isin(HANDLERS) | found.isna()
        if done.all():
            break
        current = current.where(done, current.map(parent))
    return current.where(current.map(kind).isin(HANDLERS), "")


def no_retries_beyond_budget(run: Run) -> pd.DataFrame:
    """Callers whose retries exceeded their channel's retry budget ratio (plus its floor).

    A retry is an attempt of a request after its first: with a retry policy a request's
    span holds its attempts as child spans. What a span counts in `attempts` otherwise is
    not a retry: a negotiation's bids (each its own message, never retried by the
    budget), an SSE stream's reconnections.
    """
    columns = ["agent", "peer", "requests", "retries", "allowed", "correlation_id", "msg_id"]
    budgets = {}
    for channel in run.scenario.channels:
        budget = getattr(channel, "budget", None)
        if budget is not None and getattr(budget, "kind", "ratio") == "ratio":
            budgets[(channel.src, channel.dst)] = budget
    if not budgets:
        return pd.DataFrame(columns=columns)
    spans, m = run.spans, run.messages
    bidding = m.loc[m["type"] == BID, "span_id"].unique()
    calls = spans[spans["kind"].isin(CALLERS) & ~spans["span_id"].isin(bidding)]
    rows = []
    for (agent, peer), budget in budgets.items():
        mine = calls[(calls["agent"] == agent) & (calls["peer"] == peer)]
        attempts = mine[mine["parent_id"].isin(mine["span_id"])]
        requests_ = mine[~mine["span_id"].isin(attempts["span_id"])]
        if requests_.empty:
            continue
        # The attempts after each request's first, in the order they began.
        retried = attempts.sort_values(["start", "span_id"], kind="stable")
        retried = retried[retried.duplicated("parent_id")]
        retries = len(retried)
        allowed = budget.ratio * len(requests_) + budget.min_retries_per_second * run.duration
        if retries > allowed + 1:
            # The violating message: the first retry past what the budget allowed.
            over = retried.iloc[min(int(allowed) + 1, retries - 1)]
            msg_id = request_of(run, pd.Series([over["span_id"]])).iloc[0]
            rows.append(
                (agent, peer, len(requests_), retries, allowed, over["correlation_id"], msg_id)
            )
    return pd.DataFrame(rows, columns=columns)


def no_traffic_through_open_breakers(run: Run) -> pd.DataFrame:
    """Requests put on the wire by calls that began while their breaker was OPEN.

    A call the breaker let through before it opened may still be sending (its connection
    was being opened); what must not happen is a call starting, and sending, while OPEN.
    """
    columns = ["correlation_id", "msg_id", "src", "dst", "sent_at", "began", "state"]
    breakers, messages = run.breakers, run.messages
    if breakers.empty:
        return pd.DataFrame(columns=columns)
    began = messages["span_id"].map(run.spans.set_index("span_id")["start"])
    messages = messages.assign(began=began.fillna(messages["sent_at"]))
    found = []
    for (agent, target), rows in breakers.sort_values("time", kind="stable").groupby(
        ["agent", "target"], sort=True
    ):
        sent = messages[
            (messages["src"] == agent)
            & (messages["dst"] == target)
            & (messages["kind"] == "request")
        ]
        times = [*rows["time"].tolist(), float("inf")]
        for i, state in enumerate(rows["to_state"].tolist()):
            if state not in OPEN_STATES:
                continue
            inside = sent[(sent["began"] > times[i] + SLACK) & (sent["began"] < times[i + 1])]
            if not inside.empty:
                found.append(inside.assign(state=state))
    if not found:
        return pd.DataFrame(columns=columns)
    return pd.concat(found)[columns]


def dead_letters_have_reasons(run: Run) -> pd.DataFrame:
    """Dead-lettered messages recorded without a reason."""
    m = run.messages
    bad = m[(m["outcome"] == "dead_lettered") & (m["reason"] == "")]
    # A topic's copies share their msg_id: the subscription says whose copy it was.
    columns = ["correlation_id", "msg_id", "src", "dst", "attempt", "ended_at"]
    if "subscription" in bad.columns:
        columns.append("subscription")
    return bad[columns]


def streams_complete(run: Run) -> pd.DataFrame:
    """Streams that lost events: ids the client never received, because they had left the
    server's replay buffer by the time it reconnected with Last-Event-ID."""
    columns = ["correlation_id", "span_id", "msg_id", "agent", "peer", "lost_events", "outcome"]
    spans = run.spans
    if "lost_events" not in spans.columns:
        return pd.DataFrame(columns=columns)
    # An A2A call's lost_events counts artifact chunks, which `artifacts_whole` checks.
    lost = spans[(spans["lost_events"] > 0) & (spans["protocol"] != "a2a")]
    lost = lost.assign(msg_id=request_of(run, lost["span_id"]))
    return lost[columns]


def in_order_per_key(run: Run) -> pd.DataFrame:
    """Messages delivered before an earlier one of their key was done with.

    It watches the queue channels that ask for order: an ordered queue (`ordered`, `fifo`)
    or one naming its key (`order_by`: the producer, or the correlation id). A message's
    key is the one its publisher gave (the `ordering_key` of its publish in the trace),
    else the one `order_by` derives. Into each consumer, a message whose first delivery
    began before an earlier-published message of its key was acked (its handler ended
    OK) or dead-lettered was delivered out of order.

    Earlier-published means received by the broker earlier: an ordered queue (an SQS
    FIFO group, a Pub/Sub ordering key) keeps the order in which its publishes arrive,
    and two a publisher sends at once may arrive the other way round over the network.
    """
    columns = ["correlation_id", "msg_id", "agent", "peer", "key", "delivered", "earlier_done"]
    scenario = run.scenario
    watched: dict[tuple[str, str], str] = {}
    for channel in scenario.channels:
        if channel.protocol == "queue":
            settings = scenario.queue_settings(channel)
            if settings.order_by is not None or settings.in_order:
                watched[channel.src, channel.dst] = settings.order_by or "producer"
    spans = run.spans
    if not watched or spans.empty:
        return pd.DataFrame(columns=columns)
    consumed = spans[(spans["kind"] == "consumer") & (spans["protocol"] == "queue")]
    arrived = _arrivals(run.messages)
    dead = spans[spans["kind"] == "dead_letter"].groupby("parent_id")["start"].min()
    given = _given_keys(run.messages)
    per_channel = []
    for (src, dst), order_by in watched.items():
        mine = consumed[(consumed["agent"] == dst) & (consumed["peer"] == src)]
        if mine.empty:
            continue
        ok_end = mine["end"].where(mine["outcome"] == "ok")
        per = (
            mine.assign(ok_end=ok_end)
            .groupby("parent_id")
            .agg(
                first=("start", "min"),
                ok=("ok_end", "min"),
                correlation_id=("correlation_id", "first"),
            )
        )
        derived = (
            pd.Series(src, index=per.index) if order_by == "producer" else per["correlation_id"]
        )
        own = pd.Series(per.index.map(given), index=per.index, dtype="object")
        per["key"] = own.fillna(derived).astype("str")
        per_channel.append(per.assign(agent=dst, peer=src))
    if not per_channel:
        return pd.DataFrame(columns=columns)
    per = pd.concat(per_channel)
    per["published"] = per.index.map(arrived["delivered_at"])
    per["arrival"] = per.index.map(arrived["seq"])
    # Done when handled OK or dead-lettered, whichever came first: a broker that gives up
    # on a message (its visibility timeout at the delivery limit) moves on to the next of
    # its key while the handler may still be running.
    parked = per.index.to_series().map(dead)
    per["done"] = pd.concat([per["ok"], parked], axis=1).min(axis=1).fillna(float("inf"))
    # A key orders every message into its consumer, whichever producer published it.
    per = per.dropna(subset=["published"]).rename_axis("parent_id").reset_index()
    per = per.sort_values(["agent", "key", "published", "arrival"], kind="stable")
    per["earlier_done"] = per.groupby(["agent", "key"], sort=False)["done"].transform(
        lambda done: done.cummax().shift(1)
    )
    late = per[per["first"] < per["earlier_done"] - SLACK]
    if late.empty:
        return pd.DataFrame(columns=columns)
    late = late.assign(
        msg_id=request_of(run, late["parent_id"]).to_numpy(), delivered=late["first"]
    )
    return late[columns].reset_index(drop=True)


def _arrivals(messages: pd.DataFrame) -> pd.DataFrame:
    """When (`delivered_at`) and in which order (`seq`) the broker first received a
    publish, by the span that published it."""
    copies = messages[(messages["kind"] == "publish") & messages["delivered_at"].notna()]
    first = copies.sort_values(["delivered_at", "seq"], kind="stable")
    return first.drop_duplicates("span_id").set_index("span_id")[["delivered_at", "seq"]]


def _given_keys(messages: pd.DataFrame) -> pd.Series:
    """The ordering key each publisher gave, by the span that published ("" none: absent)."""
    if "ordering_key" not in messages.columns:
        return pd.Series(dtype="str")
    keyed = messages[(messages["kind"] == "publish") & (messages["ordering_key"] != "")]
    return keyed.drop_duplicates("span_id").set_index("span_id")["ordering_key"]


def fan_out_complete(run: Run) -> pd.DataFrame:
    """Subscriptions that never got a message published to their topic, with no reason.

    For each queue channel whose requests go to a topic, every publish (a producer span)
    whose deadline passed before the run's end must reach every subscription of the
    topic (each queue channel naming it) whose filter and binding take it: a consumer
    span there (ok, failed or still running), or a dead letter of that subscription's
    copy. A publish the broker never received (every copy lost, its caller given up
    before a retry) or never confirmed, or a subscription still holding messages at the
    run's end (its backlog), is a reason too.
    """
    columns = ["correlation_id", "msg_id", "agent", "peer", "topic", "subscription", "start"]
    scenario = run.scenario
    subscriptions: dict[str, list[tuple[str, str, Any]]] = {}
    publishers: dict[tuple[str, str], str] = {}
    for channel in scenario.channels:
        if channel.protocol != "queue":
            continue
        settings = scenario.queue_settings(channel)
        if settings.topic is None:
            continue
        publishers[channel.src, channel.dst] = settings.topic
        entry = (channel.dst, settings.requests_of(channel.dst), settings)
        if entry not in subscriptions.setdefault(settings.topic, []):
            subscriptions[settings.topic].append(entry)
    spans = run.spans
    if not publishers or spans.empty:
        return pd.DataFrame(columns=columns)
    producers = spans[(spans["kind"] == "producer") & (spans["deadline"] < run.duration - SLACK)]
    producers = producers[~producers["error"].str.startswith("publish failed")]
    producers = producers[producers["span_id"].isin(_arrivals(run.messages).index)]
    consumed = spans[(spans["kind"] == "consumer") & (spans["protocol"] == "queue")]
    reached = set(zip(consumed["parent_id"], consumed["agent"], strict=True))
    dead = spans[spans["kind"] == "dead_letter"]
    dead_in = {
        (parent, error.split(":", 1)[0])
        for parent, error in zip(dead["parent_id"], dead["error"], strict=True)
    }
    backlog = _still_held(run)
    rows = []
    for (src, dst), topic in publishers.items():
        sent = producers[(producers["agent"] == src) & (producers["peer"] == dst)]
        for span in sent.itertuples(index=False):
            attributes = attributes_of(str(span.name), src, None)
            for agent, queue, settings in subscriptions[topic]:
                if not takes(settings, attributes) or queue in backlog:
                    continue
                if (span.span_id, agent) in reached or (span.span_id, queue) in dead_in:
                    continue
                rows.append(
                    (span.correlation_id, span.span_id, agent, src, topic, queue, span.start)
                )
    if not rows:
        return pd.DataFrame(columns=columns)
    missed = pd.DataFrame(
        rows,
        columns=["correlation_id", "span_id", "agent", "peer", "topic", "subscription", "start"],
    )
    missed["msg_id"] = request_of(run, missed["span_id"]).to_numpy()
    return missed[columns]


def _still_held(run: Run) -> set[str]:
    """The queues holding messages (ready or in flight) at their last sample."""
    q = run.queues
    if q.empty:
        return set()
    last = q.sort_values("time", kind="stable").drop_duplicates("queue", keep="last")
    return set(last[(last["depth"] + last["in_flight"]) > 0]["queue"])


def tasks_settle(run: Run) -> pd.DataFrame:
    """A2A tasks not in a terminal state at the run's end (reported open), and any task
    that left a terminal state (which the lifecycle never allows)."""
    columns = ["correlation_id", "span_id", "msg_id", "task_id", "agent", "state", "since", "why"]
    tasks = run.tasks
    if tasks.empty:
        return pd.DataFrame(columns=columns)
    ordered = tasks.sort_values("time", kind="stable")
    last = ordered.drop_duplicates("task_id", keep="last")
    open_ = last[~last["to_state"].isin(TERMINAL_TASK_STATES)]
    open_ = open_.assign(why="open at the end of the run")
    left = ordered[ordered["from_state"].isin(TERMINAL_TASK_STATES)]
    left = left.assign(why="left a terminal state")
    rows = pd.concat([open_, left]).rename(columns={"to_state": "state", "time": "since"})
    rows = rows.assign(msg_id=request_of(run, rows["span_id"]))
    return rows[columns]


def artifacts_whole(run: Run) -> pd.DataFrame:
    """A2A calls that did not end with every artifact chunk exactly once (a chunk missed
    across a resubscribe, or one appended twice); `lost_events` counts them."""
    columns = ["correlation_id", "span_id", "msg_id", "agent", "peer", "lost_events", "outcome"]
    spans = run.spans
    bad = spans[(spans["protocol"] == "a2a") & (spans["kind"] == "client")]
    bad = bad[bad["lost_events"] > 0]
    bad = bad.assign(msg_id=request_of(run, bad["span_id"]))
    return bad[columns]


def pushes_accounted(run: Run) -> pd.DataFrame:
    """A2A push notifications neither delivered at least once nor reported failed: still
    open at the end, or `ok` with no POST that reached the webhook."""
    columns = ["correlation_id", "span_id", "msg_id", "agent", "peer", "outcome", "attempts"]
    spans, m = run.spans, run.messages
    pushes = spans[(spans["name"] == PUSH_TYPE) & (spans["protocol"] == "a2a")]
    if pushes.empty:
        return pd.DataFrame(columns=columns)
    posts = m[(m["type"] == PUSH_TYPE) & (m["kind"] == "request")]
    reached = set(posts.loc[posts["outcome"] == "delivered", "span_id"])
    ok_unseen = (pushes["outcome"] == "ok") & ~pushes["span_id"].isin(reached)
    bad = pushes[(pushes["outcome"] == "open") | ok_unseen]
    bad = bad.assign(msg_id=request_of(run, bad["span_id"]))
    return bad[columns]


# Message kinds that open a request: what a call puts on the wire for its callee.
SENDS = ("request", "publish")


def request_of(run: Run, span_ids: pd.Series) -> pd.Series:
    """The msg_id of the first request each span sent ("" if none), by span.

    A span that sent nothing itself (a retrying request's span over its attempts) gives
    its first attempt's request.
    """
    m, spans = run.messages, run.spans
    if span_ids.empty:
        return pd.Series([], index=span_ids.index, dtype="str")
    sent = m[m["kind"].isin(SENDS) & (m["span_id"] != "")].drop_duplicates("span_id")
    first = sent.set_index("span_id")["msg_id"]
    own = span_ids.map(first)
    children = spans[spans["parent_id"].isin(span_ids) & spans["span_id"].isin(first.index)]
    children = children.sort_values(["start", "span_id"], kind="stable")
    by_parent = children.drop_duplicates("parent_id").set_index("parent_id")["span_id"]
    through = span_ids.map(by_parent).map(first)
    return own.fillna(through).fillna("").astype("str")


CHECKS = [
    Check("nothing_lost", "every workload request ends in an answer, an error, a timeout "
          "or a dead letter", nothing_lost),
    Check("exactly_once", "idempotent receivers apply each effect once", exactly_once),
    Check("deadlines_shrink", "deadlines shrink along every call chain", deadlines_shrink),
    Check("retry_budget", "no caller retries beyond its budget", no_retries_beyond_budget),
    Check("open_breakers", "nothing goes on the wire through an OPEN breaker",
          no_traffic_through_open_breakers),
    Check("dead_letter_reasons", "every dead letter has a reason", dead_letters_have_reasons),
    Check("streams_complete", "every stream delivers every event (none lost past the "
          "server's replay buffer)", streams_complete),
    Check("in_order_per_key", "on queues that ask for order, no message is delivered "
          "before an earlier one of its key was acked or dead-lettered", in_order_per_key),
    Check("fan_out_complete", "every subscription of a topic gets every message it takes, "
          "or a reason (dead letter, backlog, unconfirmed publish)", fan_out_complete),
    Check("tasks_settle", "every A2A task ends in a terminal state and never leaves it "
          "(tasks still open at the end are reported)", tasks_settle),
    Check("artifacts_whole", "every A2A call holds each artifact chunk exactly once, "
          "across resubscribes", artifacts_whole),
    Check("pushes_accounted", "every A2A push notification is delivered at least once or "
          "reported failed", pushes_accounted),
]  # fmt: skip


def check(run: Run) -> dict[str, pd.DataFrame]:
    """Every check's violations, by check name (empty tables when the run is clean)."""
    return {c.name: c.find(run) for c in CHECKS}


def expected_violations(run: Run) -> list[str]:
    """The checks the run's scenario declares it fails (`expected_violations`)."""
    scenario = run.manifest.get("scenario") or {}
    return list(scenario.get("expected_violations", []))


def violations(run: Run, include_expected: bool = False) -> dict[str, pd.DataFrame]:
    """The checks that failed, less those the scenario expects to fail, by check name."""
    expected = set() if include_expected else set(expected_violations(run))
    return {
        name: rows for name, rows in check(run).items() if not rows.empty and name not in expected
    }
