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
6-7. a writer negotiates its draft with its critic, peer to peer in a WebSocket session
   (the critic reports only once that negotiation has ended);
8-9. each worker publishes its `task.result` to the orchestrator's response queue on the
   broker; the orchestrator matches results by correlation id, reads them through the
   schema registry (converting other versions), and answers the client.

The three roles are written on the plugin API (docs/agents.md): classes whose handlers,
`main` and `on_session` use `ctx` primitives only, hosted by `sim.agents.plugin` as a
plugin's roles are.

The orchestrator's fan-out policy decides what a task returns (`answer`): 200 when it has
the results the policy needs (every worker's for `all`, k for `quorum`, one for `first`),
an error (502, or 504 on a timeout) when it has fewer, and for `partial_at_deadline` a
206 with the subset that came back: a client can always tell a partial answer from a
whole one.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from protocols.resilience import FanOutSettings
from sim import scenario as sc
from sim.agents.api import CallError, Request, Response, Unreadable
from sim.agents.discovery import Registry, registry_of, workers_of
from sim.agents.plugin import AgentContext
from sim.agents.steps import (
    ASSIGN,
    CACHED,
    COMPLETE,
    DISCOVER,
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


class Orchestrator:
    """Receives tasks over HTTP and runs each through the nine steps (see the module).

    What it remembers (the tasks in progress, the cards got last) is in `ctx.state`, so
    a crash loses it; the round-robin turn is in `ctx.durable`.
    """

    def on_task_run(self, ctx: AgentContext, request: Request) -> Generator[simpy.Event, Any, None]:
        """A task: steps 1 to 9."""
        spec, cid = ctx.spec, request.correlation_id
        # Steps 1-2: who can do it (the registry's agent cards).
        workers = workers_of(ctx.scenario)
        registry = registry_of(ctx.scenario)
        if registry is not None:
            try:
                cards = yield ctx.call(registry.id, DISCOVER, size_bytes=512)
                workers = cards.body if cards.body is not None else workers
                ctx.state["cards"] = (workers, ctx.now)
            except CallError as exc:
                cached = _cached(ctx, registry, exc.error)
                if cached is None:
                    _complete(ctx, request, "error", 502, f"discovery failed: {exc.error}", 0)
                    return
                workers = cached
        chosen = _pick(ctx, workers)
        if not chosen:
            _complete(ctx, request, "error", 503, "no workers to assign the task to", 0)
            return
        tasks: dict[str, Task] = ctx.state.setdefault("tasks", {})
        task = tasks[cid] = Task(cid, chosen)
        # Steps 3-5: the sub-tasks, in parallel, each on its own progress stream. The body
        # names the task's workers: a critic waits for its writer's review.
        policy = spec.fanout
        calls = [(w, SUBTASK, {"part": i, "workers": chosen}) for i, w in enumerate(chosen)]
        fan = yield ctx.fanout(calls, policy=policy.policy, k=policy.k,
                               deadline=policy.deadline, name=ASSIGN)  # fmt: skip
        # Steps 8-9: the workers whose streams ended OK published their results; wait for
        # those that have not arrived yet, as long as the task's deadline allows.
        task.expect = {w for w, r in zip(chosen, fan.results, strict=True)
                       if isinstance(r, Response)}  # fmt: skip
        wait = min(spec.result_timeout, ctx.time_left)
        if not task.expect <= task.results.keys() and wait > 0:
            task.arrived = ctx.event()
            yield task.arrived | ctx.sleep(wait)
        tasks.pop(cid, None)
        got = sum(w in task.results for w in chosen)
        outcome, status, why = answer(policy, len(chosen), got, fan.outcome, fan.error)
        _complete(ctx, request, outcome, status, why, got)

    def on_task_result(self, ctx: AgentContext, request: Request) -> None:
        """A result from the response queue: read it (the schema registry converts another
        version; what cannot be read goes to the DLQ with the reason), match it to its
        task by correlation id. Answering acks it; a copy of one handled already is acked
        by the queue's deduper without coming here (an idempotent queue)."""
        try:
            read = ctx.read(request, reads=[ctx.spec.version])
        except Unreadable as exc:
            ctx.dead_letter(exc.reason)
            return
        note = f"converted v{request.version} to v{read.version}" if read.converted else ""
        task = ctx.state.get("tasks", {}).get(request.correlation_id)
        if task is None:
            note = "late: its task has completed"
        else:
            task.results[request.src] = request.msg_id
            arrived = task.arrived
            if arrived is not None and not arrived.triggered and task.expect <= task.results.keys():
                arrived.succeed()
        ctx.respond(200, error=note)

    def on_poison(self, ctx: AgentContext, request: Request) -> None:
        """A poison message: the result handler fails on it every time, at once; what
        happens next is its queue's `on_error` (past the delivery limit, the DLQ)."""
        on_error = "wait"
        if request.protocol == "queue":
            scenario = ctx.scenario
            channel = scenario.channel(request.src, ctx.id)
            on_error = scenario.queue_settings(channel).on_error
        ctx.respond(500, error=failed_result(on_error, POISONED)[0])


def _pick(ctx: AgentContext, workers: list[str]) -> list[str]:
    """The next `workers_per_task` of `workers` (the registry's cards), round-robin
    (writers sit next to critics)."""
    if not workers:
        return []
    n = min(ctx.spec.workers_per_task, len(workers))
    turn = ctx.durable.get("turn", 0)
    ctx.durable["turn"] = turn + 1
    return [workers[(turn * n + i) % len(workers)] for i in range(n)]


def _cached(ctx: AgentContext, registry: sc.Agent, why: str) -> list[str] | None:
    """The cards got last, if they are recent enough to stand in for the registry's
    answer (`cache_ttl`); the span says the task used them, and how old they were."""
    cards, at = ctx.state.get("cards", (None, -math.inf))
    age = ctx.now - at
    if cards is None or age > registry.discovery.cache_ttl:
        return None
    note = f"registry failed ({why}): {len(cards)} cached cards, {age:.3g} s old"
    ctx.span(CACHED, registry.id, "http").end("ok", note, attempts=len(cards))
    return list(cards)


def _complete(ctx: AgentContext, request: Request, outcome: str, status: int, error: str,
              results: int) -> None:  # fmt: skip
    """Step 9: the task's answer, as a span the timeline shows, then the reply.

    The span's `attempts` and `answered` are the results the answer holds; a partial
    answer says so in its status (206) as well as in the span's outcome.
    """
    span = ctx.span(COMPLETE, request.src, "http")
    span.end(outcome, error, attempts=results, status=status, answered=results)
    ctx.respond(status, error=error if status >= 400 else "")


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
