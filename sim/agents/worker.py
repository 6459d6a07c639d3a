"""A collaboration worker: sub-tasks on SSE streams, drafts negotiated over WebSocket,
results published to the orchestrator's response queue, heartbeats to the registry.

A writer (`pairs_with` its critic) negotiates its draft after its work, in a WebSocket
session it opens to its critic: bids and counter-bids until the gap is within the
threshold or the deadline comes (the critic serves it in `on_session`). A critic whose
writer works on the same task reports only once that negotiation has ended, and both
report the negotiation's outcome in their `task.result`.

Written on the plugin API (docs/agents.md): the code uses `ctx` only.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from sim import scenario as sc
from sim.agents.api import CallError, CallFailed, CallTimeout, Request
from sim.agents.discovery import registry_of
from sim.agents.plugin import AgentContext
from sim.agents.plugin_session import Session
from sim.agents.plugin_span import Span
from sim.agents.steps import HEARTBEAT, NEGOTIATE, PROGRESS, RESULT, REVIEW

# Progress events a worker emits over its stream while it works (one per part of its work).
PROGRESS_PARTS = 3
RESULT_BYTES = 2048
# The stances when a worker's scenario sets none: a writer defends a long draft, a critic
# wants it shorter; their limits overlap, so they agree unless the deadline comes first.
WRITER = sc.NegotiationStance(position=80, limit=60)
CRITIC = sc.NegotiationStance(position=40, limit=65)
# A side concedes a share of the gap drawn from this range in each counter-bid.
CONCEDE = (0.2, 0.5)
BID, AGREE = "negotiation.bid", "negotiation.agree"
BID_BYTES = 512

Steps = Generator[simpy.Event, Any, Any]


@dataclass
class Talk:
    """How a negotiation ended: `agreed` (at `value`), `deadline` or `failed`, after
    `rounds` bids."""

    outcome: str = "failed"
    rounds: int = 0
    value: float | None = None


class Worker:
    """Takes sub-tasks on SSE streams, negotiates drafts over WebSocket, queues results."""

    def main(self, ctx: AgentContext) -> Steps:
        """Register at the registry now and renew the card every heartbeat (again after a
        restart: a crash stops the heartbeats, so the card lapses); speak the next
        message version from `upgrade_at` on."""
        spec = ctx.spec
        registry = registry_of(ctx.scenario)
        beat = registry.discovery.heartbeat if registry is not None else None
        upgrade = spec.upgrade_at if ctx.version == spec.version else None
        due = ctx.now
        while True:
            if upgrade is not None and ctx.now >= upgrade:
                ctx.version, upgrade = spec.version + 1, None
            if registry is not None and beat is not None and ctx.now >= due:
                ctx.call(registry.id, HEARTBEAT)  # not awaited: the next one comes anyway
                due += beat
            wake = [t for t in (upgrade, due if beat is not None else None) if t is not None]
            if not wake:
                return
            yield ctx.sleep(max(min(wake) - ctx.now, 0.0))

    def on_task_run(self, ctx: AgentContext, request: Request) -> Steps:
        """A sub-task: over SSE the collaboration's steps 5-8, else a service's work."""
        if request.protocol != "sse":
            yield ctx.work()
            return
        cid = request.correlation_id
        # A critic whose writer works on the same task reports after their negotiation:
        # while its sub-task is at work, it keeps that negotiation's outcome for it.
        reviewing = _writer_on(ctx, request)
        working: dict[str, int] = ctx.state.setdefault("working", {})
        if reviewing:
            working[cid] = working.get(cid, 0) + 1
        try:
            yield from _work_and_report(ctx, request, reviewing)
        finally:
            if reviewing and cid in working:
                working[cid] -= 1
                if not working[cid]:
                    del working[cid]
                    ctx.state.get("reviewed", {}).pop(cid, None)

    def on_session(self, ctx: AgentContext, session: Session) -> Steps:
        """The critic's side of a negotiation its writer opened; its sub-task of the same
        task may report once it has ended."""
        stance = stance_of(ctx.spec)
        talk = Talk()
        with ctx.span(NEGOTIATE, session.peer, "websocket", "server") as span:
            position, until = stance.position, math.inf
            while True:
                left = max(until - ctx.now, 0.0) if math.isfinite(until) else None
                try:
                    msg = yield session.receive(timeout=left)
                except CallTimeout:
                    talk.outcome = "deadline"
                    break
                except CallFailed:
                    break
                if msg is None:
                    break
                bid = msg.body
                talk.rounds, until = bid["round"], bid.get("deadline", until)
                theirs = bid["value"]
                if msg.type == AGREE or abs(theirs - position) <= bid["threshold"]:
                    if msg.type != AGREE:
                        session.send(AGREE, {"value": theirs, "round": talk.rounds}, BID_BYTES)
                    talk.outcome, talk.value = "agreed", theirs
                    break
                yield ctx.work(stance.think)
                if ctx.now >= until:
                    talk.outcome = "deadline"
                    break
                position = concede(ctx, stance, position, theirs)
                talk.rounds += 1
                session.send(BID, {"value": position, "round": talk.rounds, "deadline": until,
                                   "threshold": bid["threshold"]}, BID_BYTES)  # fmt: skip
            end_negotiation(span, talk)
        cid = session.correlation_id
        waiting = ctx.state.setdefault("awaiting", {}).pop(cid, None)
        if waiting is not None:
            waiting.succeed(talk)
        elif cid in ctx.state.get("working", {}):
            ctx.state.setdefault("reviewed", {})[cid] = talk  # its sub-task is still at work


def stance_of(spec: sc.Agent) -> sc.NegotiationStance:
    """The worker's negotiation stance: its scenario's, else a writer's or a critic's."""
    return spec.negotiation or (WRITER if spec.pairs_with else CRITIC)


def concede(ctx: AgentContext, stance: sc.NegotiationStance, mine: float, theirs: float) -> float:
    """A counter-bid: toward theirs by a drawn share of the gap, never past the limit (a
    side already past it holds)."""
    moved = mine + (theirs - mine) * ctx.rng.uniform(*CONCEDE)
    if theirs > mine:
        return min(moved, max(stance.limit, mine))
    return max(moved, min(stance.limit, mine))


def end_negotiation(span: Span, talk: Talk) -> None:
    """A negotiation's span: ok when agreed, else how it ended; `attempts` the bids."""
    outcome = {"agreed": "ok", "deadline": "deadline_exceeded"}.get(talk.outcome, "error")
    error = "" if talk.outcome == "agreed" else f"no agreement after {talk.rounds} bids"
    span.end(outcome, error, attempts=talk.rounds)


def _writer_on(ctx: AgentContext, request: Request) -> bool:
    """Whether a writer of this critic works on the same task (it will negotiate)."""
    if ctx.spec.pairs_with:
        return False
    writers = {a.id for a in ctx.scenario.agents if a.pairs_with == ctx.id}
    body = request.body
    chosen = body.get("workers", ()) if isinstance(body, dict) else ()
    return any(w in writers for w in chosen)


def _work_and_report(ctx: AgentContext, request: Request, reviewing: bool) -> Steps:
    # Step 5: the work, in parts, each followed by a progress event on the stream.
    total = ctx.draw()
    with ctx.span(PROGRESS, request.src, "sse") as progress:
        events = 0
        for part in range(1, PROGRESS_PARTS + 1):
            yield ctx.work(total / PROGRESS_PARTS)
            events += bool(ctx.emit({"done": part / PROGRESS_PARTS}))
        progress.end("ok", attempts=events)
    # Steps 6-7: a writer agrees its draft with its critic before it reports; the critic
    # of a writer on the same task reports once that negotiation has ended.
    talk: Talk | None = None
    peer = ctx.spec.pairs_with
    if peer and ctx.scenario.channel(ctx.id, peer).protocol == "websocket":
        talk = yield from _review(ctx, peer)
    elif reviewing:
        talk = yield from _await_review(ctx, request)
    # Step 8: the result goes to the orchestrator's response queue; the answer (the
    # handler's end) ends the stream. Without a queue channel to the orchestrator, its
    # wait for the result times out.
    if ctx.scenario.channel(ctx.id, request.src).protocol == "queue":
        body = result_body(request.correlation_id, ctx.id, ctx.version, talk)
        ctx.publish(request.src, RESULT, body, size_bytes=RESULT_BYTES)


def _review(ctx: AgentContext, peer: str) -> Steps:
    """The writer's step 6-7: a `review` span over its negotiation with its critic (its
    bids carry the task's correlation id: one task is one trace, negotiation included)."""
    stance = stance_of(ctx.spec)
    with ctx.span(REVIEW, peer, "websocket") as review:
        if min(stance.deadline, ctx.time_left) <= 0:
            review.end("deadline_exceeded", "no time left to negotiate")
            return None
        talk = yield from _negotiate(ctx, peer, stance)
        agreed = talk.outcome == "agreed"
        why = "" if agreed else f"no agreement with {peer} ({talk.outcome})"
        review.end("ok" if agreed else "error", why, attempts=talk.rounds)
    return talk


def _negotiate(ctx: AgentContext, peer: str, stance: sc.NegotiationStance) -> Steps:
    """Bid and counter-bid with `peer` in a session, until agreement or the deadline: the
    stance's from the first bid, never past the stream's."""
    talk = Talk()
    with ctx.span(NEGOTIATE, peer, "websocket", "client") as span:
        try:
            ws = yield ctx.connect(peer, timeout=min(stance.deadline, ctx.time_left))
        except CallError as exc:
            span.end("error", f"no session with {peer}: {exc.error}")
            return talk
        until = ctx.now + min(stance.deadline, ctx.time_left)
        position = stance.position
        while True:
            talk.rounds += 1
            ws.send(BID, {"value": position, "round": talk.rounds, "deadline": until,
                          "threshold": stance.threshold}, BID_BYTES)  # fmt: skip
            try:
                msg = yield ws.receive(timeout=max(until - ctx.now, 0.0))
            except CallTimeout:
                talk.outcome = "deadline"
                break
            except CallFailed:
                break
            if msg is None:
                break
            talk.rounds = msg.body["round"]
            theirs = msg.body["value"]
            if msg.type == AGREE or abs(theirs - position) <= stance.threshold:
                if msg.type != AGREE:
                    ws.send(AGREE, {"value": theirs, "round": talk.rounds}, BID_BYTES)
                talk.outcome, talk.value = "agreed", theirs
                break
            yield ctx.work(stance.think)
            if ctx.now >= until:
                talk.outcome = "deadline"
                break
            position = concede(ctx, stance, position, theirs)
        ws.close()
        end_negotiation(span, talk)
    return talk


def _await_review(ctx: AgentContext, request: Request) -> Steps:
    """A critic waits for its writer's negotiation of this task to end (or for the
    stream's deadline; without one, for its stance's negotiation time)."""
    cid = request.correlation_id
    done = ctx.state.setdefault("reviewed", {}).pop(cid, None)
    if done is not None:
        return done
    left = ctx.time_left
    wait = left if math.isfinite(left) else stance_of(ctx.spec).deadline
    if wait <= 0:
        return None
    awaiting = ctx.state.setdefault("awaiting", {})
    ended = awaiting[cid] = ctx.event()
    yield ended | ctx.sleep(wait)
    if awaiting.get(cid) is ended:
        del awaiting[cid]
    return ended.value if ended.triggered else None


def result_body(cid: str, worker: str, version: int, talk: Talk | None) -> dict[str, Any]:
    """A worker's `task.result` data, in the message version it speaks.

    v2 states a confidence: the agreed draft score, or NaN when the writer and its critic
    did not agree, which v2's schema refuses (such a result cannot be read or converted).
    """
    if talk is None:
        text, confidence = f"{worker}: part done", 1.0
    elif talk.outcome == "agreed" and talk.value is not None:
        text, confidence = f"{worker}: draft agreed at {talk.value:.1f}", talk.value / 100
    else:
        text, confidence = f"{worker}: draft not agreed", math.nan
    if version >= 2:
        return {"task_id": cid, "state": "completed", "parts": [{"text": text}],
                "confidence": confidence}  # fmt: skip
    return {"task_id": cid, "status": "completed", "output": text}


__all__ = ["AGREE", "BID", "Talk", "Worker", "result_body", "stance_of"]
