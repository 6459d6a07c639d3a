"""The agent collaboration: an orchestrator, its workers, and the registry that lists them.

One task runs as nine steps, each a span with its protocol (`STEPS`, in
`sim.agents.steps`: the roles write the spans, and the timeline of `sim.report` reads
them by these names). The worker is in `sim.agents.worker`, the registry and its cards
in `sim.agents.discovery`; this module holds the orchestrator:

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

from protocols.queue import Consumer, Deduper, Delivery
from protocols.resilience import FanOut, FanOutSettings
from protocols.schemas import TASK_RESULT, Rejected, default_registry
from protocols.workers import Job
from sim import scenario as sc
from sim.agents.context import Context
from sim.agents.discovery import Registry, answer_key, registry_of
from sim.agents.roles import POISON, Agent
from sim.agents.steps import (
    ASSIGN,
    CACHED,
    COMPLETE,
    DISCOVER,
    RESULT,
    STEPS,
    SUBTASK,
)
from sim.agents.worker import Worker

POISONED = "poison message: the result handler failed"


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


__all__ = [
    "POISONED",
    "STEPS",
    "Orchestrator",
    "Registry",
    "Task",
    "Worker",
    "answer",
    "failed_result",
]
