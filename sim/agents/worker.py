"""A collaboration worker: sub-tasks on SSE streams, drafts negotiated over WebSocket,
results published to the orchestrator's response queue, heartbeats to the registry.

A writer (`pairs_with` its critic) negotiates its draft after its work; a critic whose
writer works on the same task reports only once that negotiation has ended, and both
report the negotiation's outcome in their `task.result`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Generator
from typing import Any

import simpy

from protocols.negotiation import Negotiator, Outcome, Stance
from protocols.schemas import TASK_RESULT
from protocols.workers import Job
from sim import scenario as sc
from sim.agents.context import Context
from sim.agents.discovery import registry_of
from sim.agents.roles import Service
from sim.agents.steps import HEARTBEAT, PROGRESS, RESULT, REVIEW

# Progress events a worker emits over its stream while it works (one per part of its work).
PROGRESS_PARTS = 3
RESULT_BYTES = 2048
# The stances when a worker's scenario sets none: a writer defends a long draft, a critic
# wants it shorter; their limits overlap, so they agree unless the deadline comes first.
WRITER = sc.NegotiationStance(position=80, limit=60)
CRITIC = sc.NegotiationStance(position=40, limit=65)


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
