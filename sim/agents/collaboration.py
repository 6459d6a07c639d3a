"""The agent collaboration: an orchestrator, its workers, and the registry that lists them.

One task runs as nine steps, each a span with its protocol (`STEPS`, which this module
owns: it writes the spans, and the timeline of `sim.report` reads them by these names):

0. a client sends the task to the orchestrator over HTTP;
1-2. the orchestrator discovers workers: HTTP to the registry, which serves agent cards
   (A2A's `/.well-known/agent-card.json`): the workers whose heartbeats renewed their
   card within its TTL. Those get the work; when the registry does not answer, the
   orchestrator uses the cards it got last while they are younger than `cache_ttl`;
3-4. it assigns sub-tasks to several workers at once: a FanOut of SSE streams (A2A's
   SendStreamingMessage is a POST answered with an event stream);
5. each worker streams its progress back on its stream;
6-7. a writer negotiates its draft with its critic, peer to peer over a WebSocket (the
   critic reports only once that negotiation has ended);
8-9. each worker publishes its `task.result` to the orchestrator's response queue on the
   broker; the orchestrator matches results by correlation id, reads them through the
   schema registry (converting other versions), and answers the client.

The orchestrator's fan-out policy decides what a task returns (`answer`): 200 when it has
the results the policy needs (every worker's for `all`, k for `quorum`, one for `first`),
an error (502, or 504 on a timeout) when it has fewer, and for `partial_at_deadline` a
206 with the subset that came back: a client can always tell a partial answer from a
whole one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from protocols.negotiation import Negotiator, Outcome, Stance
from protocols.queue import Consumer, Deduper, Delivery
from protocols.resilience import FanOut, FanOutSettings
from protocols.schemas import TASK_RESULT, Rejected, default_registry
from protocols.workers import Job
from sim import scenario as sc
from sim.agents.context import Context
from sim.agents.roles import POISON, Agent, Service

# Span names of the collaboration's steps.
DISCOVER = "agent.card"
# A worker renewing its card at the registry (not a step of a task: its own trace), and
# the orchestrator falling back on the cards it got last (the registry did not answer).
HEARTBEAT = "agent.heartbeat"
CACHED = "agent.card.cache"
ASSIGN = "assign"
SUBTASK = "task.run"
PROGRESS = "progress"
REVIEW = "review"
RESULT = "task.result"
COMPLETE = "task.complete"

# (step, what, span name, span kind, protocol): one task's trace, in the order it runs.
STEPS = [
    ("0", "task received", SUBTASK, "server", "http"),
    ("1-2", "discover workers (agent cards)", DISCOVER, "client", "http"),
    ("3-4", "assign sub-tasks (fan-out)", ASSIGN, "internal", "fanout"),
    ("3-4", "sub-task stream opened", SUBTASK, "client", "sse"),
    ("5", "progress streamed", PROGRESS, "internal", "sse"),
    ("6-7", "writer and critic negotiate", REVIEW, "internal", "websocket"),
    ("8", "result published", RESULT, "producer", "queue"),
    ("9", "result matched by correlation id", RESULT, "consumer", "queue"),
    ("9", "task completed", COMPLETE, "internal", "http"),
]

# Progress events a worker emits over its stream while it works (one per part of its work).
PROGRESS_PARTS = 3
RESULT_BYTES = 2048
# The stances when a worker's scenario sets none: a writer defends a long draft, a critic
# wants it shorter; their limits overlap, so they agree unless the deadline comes first.
WRITER = sc.NegotiationStance(position=80, limit=60)
CRITIC = sc.NegotiationStance(position=40, limit=65)
POISONED = "poison message: the result handler failed"


def registry_of(scenario: sc.Scenario) -> sc.Agent | None:
    """The scenario's registry (the first agent with role registry), if it has one."""
    return next((a for a in scenario.agents if a.role == "registry"), None)


def answer_key(registry: str, correlation_id: str) -> str:
    """Where the registry leaves its answer to a discovery call (see Context.answers)."""
    return f"{registry}:{correlation_id}"


class Registry(Service):
    """Serves agent cards over HTTP (`agent.card`): the workers' discovery endpoint.

    A worker's card is listed while it is renewed: each heartbeat (`agent.heartbeat`)
    keeps it for the discovery's `ttl`; a worker that stops (it crashed, it is cut off,
    it stalls) drops out once its last heartbeat is that old. With no heartbeat set the
    cards are static: every worker of the scenario, up or down. Cards live in memory: a
    crash loses them until the workers' next heartbeats. The answer lists the workers
    in the scenario's order.
    """

    role = "registry"

    def __init__(self, ctx: Context, spec: sc.Agent) -> None:
        super().__init__(ctx, spec)
        self.discovery = spec.discovery
        self.workers = [a.id for a in ctx.scenario.agents if a.role == "worker"]
        self.cards: dict[str, float] = {}  # worker -> when its card expires
        self.node.on_crash.append(self.cards.clear)

    def live(self, now: float) -> list[str]:
        """The workers whose cards are listed at `now`."""
        if self.discovery.heartbeat is None:
            return list(self.workers)
        cards = self.cards
        return [w for w in self.workers if cards.get(w, -math.inf) > now]

    def _handle(self, job: Job) -> None:
        faults = self.ctx.faults
        status = faults.error_status(self.id) if faults.errors else 0
        if status:
            job.reply(status, f"HTTP {status} (injected)")
            return
        msg, now = job.msg, self.ctx.env.now
        if msg.type == HEARTBEAT and msg.src in self.workers:
            self.cards[msg.src] = now + self.discovery.ttl
        elif msg.type == DISCOVER:
            self.ctx.answers[answer_key(self.id, msg.correlation_id)] = self.live(now)
        work = self._service_time()
        if faults.overload:
            work *= faults.service_factor(self.id)
        self.node.after_work(work, lambda: job.reply(200))


class Worker(Service):
    """Takes sub-tasks on SSE streams, negotiates drafts over WebSocket, queues results."""

    role = "worker"

    def __init__(self, ctx: Context, spec: sc.Agent) -> None:
        super().__init__(ctx, spec)
        self.stance = spec.negotiation or (WRITER if spec.pairs_with else CRITIC)
        self.negotiator: Negotiator | None = None
        # The writers that negotiate their drafts with this worker (it is their critic).
        self.writers = frozenset(a.id for a in ctx.scenario.agents if a.pairs_with == self.id)
        # A critic's sub-tasks at work (by task: how many), the negotiations that ended
        # for them before they were done, and those that wait for theirs.
        self._working: dict[str, int] = {}
        self._reviewed: dict[str, Outcome] = {}
        self._awaiting: dict[str, simpy.Event] = {}
        if self.endpoints.websocket is not None:
            s = self.stance
            self.negotiator = Negotiator(
                self.endpoints.websocket,
                Stance(s.position, s.limit, think=s.think),
                on_result=self._negotiated,
            )
        self.node.on_crash.append(self._forget_reviews)
        if spec.upgrade_at is not None:
            # A timer of the world, not of the node: an upgrade outlives a crash.
            ctx.env.timeout(spec.upgrade_at).callbacks.append(self._upgrade)
        registry = registry_of(ctx.scenario)
        self.registry = registry.id if registry is not None else None
        self.heartbeat = registry.discovery.heartbeat if registry is not None else None
        self._beats = itertools.count(1)

    def start(self) -> None:
        """Register at the registry now, and renew the card every heartbeat (again after
        a restart: a crash stops the heartbeats, so the card lapses)."""
        if self.registry is not None and self.heartbeat is not None:
            self.node.after(0.0, self._beat)

    def _beat(self) -> None:
        assert self.registry is not None and self.heartbeat is not None
        self.call(self.registry, HEARTBEAT, f"{self.id}-hb-{next(self._beats)}")
        self.node.after(self.heartbeat, self._beat)

    def _upgrade(self, _event: simpy.Event) -> None:
        self.node.version = self.spec.version + 1

    def _negotiated(self, outcome: Outcome) -> None:
        """A negotiation ended here: as a critic, its task's sub-task may report now."""
        if outcome.initiator:
            return  # the writer's own: its sub-task waits on it directly
        cid = outcome.correlation_id
        waiting = self._awaiting.pop(cid, None)
        if waiting is not None:
            waiting.succeed(outcome)
        elif cid in self._working:
            self._reviewed[cid] = outcome  # its sub-task is still at work: kept for it

    def _forget_reviews(self) -> None:
        # A crash loses what the critic knew, and its sub-tasks died with the node.
        self._working.clear()
        self._reviewed.clear()
        self._awaiting.clear()

    def _handle(self, job: Job) -> None:
        if job.msg.protocol != "sse":
            super()._handle(job)  # HTTP or WebSocket requests: a plain service's work
            return
        faults = self.ctx.faults
        status = faults.error_status(self.id) if faults.errors else 0
        if status:
            job.reply(status, f"HTTP {status} (injected)")
            return
        proc = self.node.spawn(self._subtask(job))
        job.on_cancel = lambda: proc.interrupt("cancelled") if proc.is_alive else None

    def _subtask(self, job: Job) -> Generator[simpy.Event, Any, None]:
        # A critic whose writer works on the same task reports after their negotiation:
        # while its sub-task is at work, it keeps that negotiation's outcome for it.
        reviewing = self.negotiator is not None and not self.spec.pairs_with
        reviewing = reviewing and self._writer_on(job)
        if not reviewing:
            yield from self._work_and_report(job, False)
            return
        cid, working = job.msg.correlation_id, self._working
        working[cid] = working.get(cid, 0) + 1
        try:
            yield from self._work_and_report(job, True)
        finally:
            if working.get(cid, 0) > 1:
                working[cid] -= 1
            else:
                working.pop(cid, None)
                self._reviewed.pop(cid, None)

    def _work_and_report(self, job: Job, reviewing: bool) -> Generator[simpy.Event, Any, None]:
        node, env, msg = self.node, self.ctx.env, job.msg
        journal, cid = node.journal, msg.correlation_id
        sse = self.endpoints.sse
        assert sse is not None and sse.server is not None
        # Step 5: the work, in parts, each followed by a progress event on the stream.
        work = self._service_time() * self.ctx.faults.service_factor(self.id)
        span = journal.span_start(PROGRESS, "internal", self.id, msg.src, "sse", env.now,
                                  job.span, cid)  # fmt: skip
        events = 0
        for part in range(1, PROGRESS_PARTS + 1):
            yield from node.work(work / PROGRESS_PARTS)
            events += bool(sse.server.emit(job, "progress", {"done": part / PROGRESS_PARTS}))
        journal.span_end(span, "ok", env.now, attempts=events)
        # Steps 6-7: a writer agrees its draft with its critic before it reports; the
        # critic of a writer on the same task reports once that negotiation has ended.
        outcome: Outcome | None = None
        if self.negotiator is not None and self.spec.pairs_with:
            outcome = yield from self._review(job)
        elif reviewing:
            outcome = yield from self._await_review(job)
        # Step 8: the result goes to the orchestrator's response queue; the stream ends.
        self._publish(job, outcome)
        job.reply(200)

    def _review(self, job: Job) -> Generator[simpy.Event, Any, Outcome | None]:
        assert self.negotiator is not None and self.spec.pairs_with
        node, now, msg = self.node, self.ctx.env.now, job.msg
        peer = self.spec.pairs_with
        # The negotiation's spans and bids carry the task's correlation id, under this span:
        # one task is one trace, negotiation included.
        span = node.journal.span_start(
            REVIEW, "internal", self.id, peer, "websocket", now, job.span, msg.correlation_id
        )
        deadline = self.stance.deadline
        if math.isfinite(msg.deadline):
            deadline = min(deadline, msg.deadline - now)  # never past the stream's deadline
        if deadline <= 0:
            node.journal.span_end(span, "deadline_exceeded", now, "no time left to negotiate")
            return None
        talk = self.negotiator.start(
            peer, deadline, self.stance.threshold, parent=span, correlation_id=msg.correlation_id
        )
        outcome: Outcome = yield talk.done
        agreed = outcome.outcome == "agreed"
        node.journal.span_end(
            span,
            "ok" if agreed else "error",
            self.ctx.env.now,
            "" if agreed else f"no agreement with {peer} ({outcome.outcome})",
            attempts=outcome.rounds,
        )
        return outcome

    def _writer_on(self, job: Job) -> bool:
        """Whether a writer of this critic works on the same task (it will negotiate)."""
        body = job.msg.body
        workers = body.get("workers", ()) if isinstance(body, dict) else ()
        return any(w in self.writers for w in workers)

    def _await_review(self, job: Job) -> Generator[simpy.Event, Any, Outcome | None]:
        """A critic waits for its writer's negotiation of this task to end (or for the
        stream's deadline; without one, for its stance's negotiation time)."""
        env, msg = self.ctx.env, job.msg
        cid = msg.correlation_id
        done = self._reviewed.pop(cid, None)
        if done is not None:
            return done
        wait = msg.deadline - env.now if math.isfinite(msg.deadline) else self.stance.deadline
        if wait <= 0:
            return None
        ended = self._awaiting[cid] = env.event()
        yield ended | env.timeout(wait)
        if self._awaiting.get(cid) is ended:
            del self._awaiting[cid]
        return ended.value if ended.triggered else None

    def _publish(self, job: Job, outcome: Outcome | None) -> None:
        queue = self.endpoints.queue
        if queue is None:
            return  # no queue channel to the orchestrator: its wait for the result times out
        node, msg = self.node, job.msg
        orchestrator, cid = msg.src, msg.correlation_id
        span = node.journal.span_start(
            RESULT, "producer", self.id, orchestrator, "queue", node.env.now, job.span, cid
        )

        def confirmed(ok: bool, why: str) -> None:
            node.journal.span_end(span, "ok" if ok else "error", node.env.now, why)

        queue.publisher.publish(
            queue.settings.requests_of(orchestrator),
            TASK_RESULT,
            result_body(cid, self.id, node.version, outcome),
            correlation_id=cid,
            causation_id=msg.msg_id,
            span=span,
            size_bytes=RESULT_BYTES,
            on_confirm=confirmed,
        )


def result_body(cid: str, worker: str, version: int, outcome: Outcome | None) -> dict[str, Any]:
    """A worker's `task.result` data, in the message version it speaks.

    v2 states a confidence: the agreed draft score, or NaN when the writer and its critic
    did not agree, which v2's schema refuses (such a result cannot be read or converted).
    """
    if outcome is None:
        text, confidence = f"{worker}: part done", 1.0
    elif outcome.outcome == "agreed" and outcome.value is not None:
        text, confidence = f"{worker}: draft agreed at {outcome.value:.1f}", outcome.value / 100
    else:
        text, confidence = f"{worker}: draft not agreed", math.nan
    if version >= 2:
        return {"task_id": cid, "state": "completed", "parts": [{"text": text}],
                "confidence": confidence}  # fmt: skip
    return {"task_id": cid, "status": "completed", "output": text}


@dataclass
class Task:
    """A task the orchestrator works on: its workers and the results matched so far."""

    correlation_id: str
    workers: list[str]
    expect: set[str] = field(default_factory=set)
    results: dict[str, str] = field(default_factory=dict)  # worker -> result msg_id
    arrived: simpy.Event | None = None


class Orchestrator(Agent):
    """Receives tasks over HTTP and runs each through the nine steps (see the module)."""

    role = "orchestrator"

    def __init__(self, ctx: Context, spec: sc.Agent) -> None:
        super().__init__(ctx, spec)
        agents = ctx.scenario.agents
        registry = registry_of(ctx.scenario)
        self.registry = registry.id if registry is not None else None
        self.discovery = registry.discovery if registry is not None else sc.Discovery()
        self.workers = [a.id for a in agents if a.role == "worker"]
        # The cards the registry gave last, and when: used while it does not answer.
        self.cards: list[str] | None = None
        self.cards_at = -math.inf
        self.schemas = default_registry()
        self.tasks: dict[str, Task] = {}
        self._assigned = itertools.count()
        self.late = 0  # results that came after their task completed
        self.rejected = 0  # results that could not be read (to the DLQ, with the reason)
        self.endpoints.serve(["http"], self._handle)
        queue = self.endpoints.queue
        self.dedupe: Deduper | None = None
        self.consumer: Consumer | None = None
        if queue is not None:
            if queue.settings.idempotent:
                self.dedupe = Deduper(ctx.env, queue.settings.dedupe_ttl)
            results = queue.settings.requests_of(self.id)
            self.consumer = queue.consume(results, self._on_result)
        self.node.on_restart.append(self._forget)

    def _forget(self) -> None:
        # A crash loses the tasks in progress (their processes died with the node), and
        # the cached cards.
        self.tasks.clear()
        self.cards, self.cards_at = None, -math.inf
        if self.dedupe is not None:
            self.dedupe = Deduper(self.ctx.env, self.dedupe.ttl)

    def _handle(self, job: Job) -> None:
        proc = self.node.spawn(self._task(job))
        job.on_cancel = lambda: proc.interrupt("cancelled") if proc.is_alive else None

    def _pick(self, workers: list[str]) -> list[str]:
        """The next `workers_per_task` of `workers` (the registry's cards), round-robin
        (writers sit next to critics)."""
        if not workers:
            return []
        n = min(self.spec.workers_per_task, len(workers))
        first = next(self._assigned) * n
        return [workers[(first + i) % len(workers)] for i in range(n)]

    def _task(self, job: Job) -> Generator[simpy.Event, Any, None]:
        env, msg = self.ctx.env, job.msg
        cid, deadline = msg.correlation_id, msg.deadline
        # Steps 1-2: who can do it (the registry's agent cards).
        workers = self.workers
        if self.registry is not None:
            call = self.call(self.registry, DISCOVER, cid, job.span, 512, None, msg.msg_id,
                             deadline=deadline)  # fmt: skip
            outcome, _, why = yield call.wait()
            cards = self.ctx.answers.pop(answer_key(self.registry, cid), None)
            if outcome == "ok":
                workers = cards if cards is not None else self.workers
                self.cards, self.cards_at = workers, env.now
            else:
                cached = self._cached(job, why)
                if cached is None:
                    self._complete(job, "error", 502, f"discovery failed: {why}", 0)
                    return
                workers = cached
        chosen = self._pick(workers)
        if not chosen:
            self._complete(job, "error", 503, "no workers to assign the task to", 0)
            return
        task = self.tasks[cid] = Task(cid, chosen)

        def start(i: int, parent: int) -> Any:
            # The body names the task's workers: a critic waits for its writer's review.
            return self.call(chosen[i], SUBTASK, cid, parent, body={"part": i, "workers": chosen},
                             causation_id=msg.msg_id, deadline=deadline)  # fmt: skip

        # Steps 3-5: the sub-tasks, in parallel, each on its own progress stream.
        fan = FanOut(self.node, ASSIGN, cid, len(chosen), start, self.spec.fanout, job.span)
        fan_outcome, _, fan_error = yield fan.wait()
        # Steps 8-9: the workers whose streams ended OK published their results; wait for
        # those that have not arrived yet, as long as the task's deadline allows.
        calls = getattr(fan, "calls", [])
        task.expect = {w for w, c in zip(chosen, calls, strict=False) if _ok(c.result)}
        wait = self.spec.result_timeout
        if math.isfinite(deadline):
            wait = min(wait, deadline - env.now)
        if not task.expect <= task.results.keys() and wait > 0:
            task.arrived = env.event()
            yield task.arrived | env.timeout(wait)
        self.tasks.pop(cid, None)
        got = [w for w in chosen if w in task.results]
        outcome, status, why = answer(self.spec.fanout, len(chosen), len(got), fan_outcome,
                                      fan_error)  # fmt: skip
        self._complete(job, outcome, status, why, len(got))

    def _cached(self, job: Job, why: str) -> list[str] | None:
        """The cards got last, if they are recent enough to stand in for the registry's
        answer (`cache_ttl`); the span says the task used them, and how old they were."""
        now = self.ctx.env.now
        age = now - self.cards_at
        if self.cards is None or age > self.discovery.cache_ttl:
            return None
        journal = self.node.journal
        span = journal.span_start(CACHED, "internal", self.id, self.registry or "", "http",
                                  now, job.span, job.msg.correlation_id)  # fmt: skip
        note = f"registry failed ({why}): {len(self.cards)} cached cards, {age:.3g} s old"
        journal.span_end(span, "ok", now, note, attempts=len(self.cards))
        return self.cards

    def _complete(self, job: Job, outcome: str, status: int, error: str, results: int) -> None:
        """Step 9: the task's answer, as a span the timeline shows, then the reply.

        The span's `attempts` and `answered` are the results the answer holds; a partial
        answer says so in its status (206) as well as in the span's outcome.
        """
        journal, now = self.node.journal, self.ctx.env.now
        span = journal.span_start(COMPLETE, "internal", self.id, job.msg.src, "http", now,
                                  job.span, job.msg.correlation_id)  # fmt: skip
        journal.span_end(span, outcome, now, error, attempts=results, status=status,
                         answered=results)  # fmt: skip
        job.reply(status, error if status >= 400 else "")

    def _on_result(self, d: Delivery) -> None:
        """A result from the response queue: read it, match it to its task, ack it."""
        assert self.consumer is not None
        journal, now, cid = self.node.journal, self.ctx.env.now, d.correlation_id
        span = journal.span_start(RESULT, "consumer", self.id, d.producer, "queue", now,
                                  d.span, cid)  # fmt: skip
        if d.payload == POISON:
            # The handler fails on it every time: what happens next is the queue's
            # `on_error`, as for any queue server (past the delivery limit, the DLQ).
            self._failed(d, span, POISONED)
            return
        read = self.schemas.accept(TASK_RESULT, d.version, d.payload, reads=[self.spec.version])
        if isinstance(read, Rejected):
            self.rejected += 1
            journal.span_end(span, "rejected", now, read.reason, attempts=d.count)
            self.consumer.reject(d, requeue=False, reason=read.reason, span=span)
            return
        note = f"converted v{d.version} to v{read.version}" if read.converted else ""
        if self.dedupe is not None and not self.dedupe.record(d.msg_id):
            note = "duplicate: acked, not applied again"
        else:
            journal.effect(now, self.id, d.msg_id, d.msg_id, cid)
            task = self.tasks.get(cid)
            if task is None:
                self.late += 1
                note = "late: its task has completed"
            else:
                task.results[d.producer] = d.msg_id
                arrived = task.arrived
                if (
                    arrived is not None
                    and not arrived.triggered
                    and task.expect <= task.results.keys()
                ):
                    arrived.succeed()
        journal.span_end(span, "ok", now, note, attempts=d.count)
        self.consumer.ack(d, span)

    def _failed(self, d: Delivery, span: int, why: str) -> None:
        """The handler failed on `d`: settle it as the queue's `on_error` says."""
        consumer = self.consumer
        assert consumer is not None
        on_error = consumer.settings.on_error
        error, requeue = failed_result(on_error, why)
        self.node.journal.span_end(span, "error", self.ctx.env.now, error, attempts=d.count)
        if requeue is not None:
            consumer.reject(d, requeue=requeue, reason=why, span=span)
        elif on_error == "reply":
            consumer.ack(d, span)
        # "wait": no settlement; the broker redelivers it after the visibility timeout.


# The status of a partial answer: HTTP's 206 Partial Content, a 2xx the client can tell
# from a whole answer's 200.
PARTIAL = 206


def answer(
    policy: FanOutSettings,
    chosen: int,
    got: int,
    fan_outcome: str,
    fan_error: str,
) -> tuple[str, int, str]:
    """A task's (outcome, status, error) from the results it got and its fan-out policy.

    `all` needs every worker's result, `quorum` k of them, `first` one: short of that
    the answer is an error (502, or 504 when the fan-out ran out of time), never a 200
    with part of the work. `partial_at_deadline` promises what came back: a subset is
    `partial` with status 206. No result at all is an error whatever the policy.
    """
    # partial_at_deadline is whole with every result.
    need = {"quorum": policy.k or chosen, "first": 1}.get(policy.policy, chosen)
    need = min(need, chosen)
    summary = f"{got} of {chosen} results; fan-out {fan_outcome}"
    if fan_error:
        summary += f": {fan_error}"
    timed_out = fan_outcome in ("timeout", "partial")
    if got == 0:
        return "error", 504 if timed_out else 502, f"no result: {fan_error or 'none arrived'}"
    if got >= need:
        return "ok", 200, ""
    if policy.policy == "partial_at_deadline":
        return "partial", PARTIAL, summary
    why = f"{policy.policy} needs {need} results, got {summary}"
    return "error", 504 if timed_out else 502, why


def failed_result(on_error: str, why: str) -> tuple[str, bool | None]:
    """What the result consumer does with a result its handler failed on, by the queue's
    `on_error`: (the span's error, then requeue True / dead-letter False / ack None).

    As a queue server does: `wait` leaves it unacked (redelivered after the visibility
    timeout), `requeue` rejects it back to the queue, `dead_letter` rejects it to the DLQ.
    `reply` acks it and answers the error, but a result has nobody to answer: it is
    acked, so dropped, and the span says so. Past the delivery limit the broker (or a
    Redis consumer) dead-letters it whatever the mode.
    """
    if on_error == "requeue":
        return why, True
    if on_error == "dead_letter":
        return why, False
    if on_error == "reply":
        return f"{why}; acked and dropped (on_error: reply, nobody to answer)", None
    return f"{why}; left unacked until its visibility timeout", None


def _ok(result: Any) -> bool:
    return result is not None and result[0] == "ok"
