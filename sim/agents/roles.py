"""The agent and the basic roles: workload clients, services and brokers, each on its node.

An agent is what a scenario names: a role, a version, workers, a service time, the
agents it calls. Its node (`protocols.node.Node`) holds its lifecycle (crash, restart,
pause) and routes its messages to its protocol endpoints; this module only adds the
behaviour a scenario describes: the workload a client sends, the work a service does.
The roles a scenario may name are listed in `sim.agents.registry`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Generator, Iterator
from typing import Any, Final

import simpy

from protocols._mypyc import mypyc_attr
from protocols.call import Call, CallResult
from protocols.http import HttpClient, HttpRequest, HttpServer, payload_of
from protocols.kernel import Fire, start_soon
from protocols.node import Node, Work
from protocols.queue import Broker, DeadLetter, QueueSettings
from protocols.resilience import FanOut, Policies, ResilientCaller
from protocols.workers import Job, WorkerPool
from sim import scenario as sc
from sim.agents.context import Context
from sim.agents.endpoints import Endpoints, broker_queues, served_protocols
from sim.arrivals import arrival_times
from sim.draws import draw_of
from sim.faults.state import FaultState

POISON: Final = "poison"
# Compiled, a static (the builtin `next` is looked up in the builtins module at each use).
next_of: Final = next


# Subclassed by roles that are not compiled (plugin hosts, the LLM agent, the
# collaboration's): see protocols._mypyc.
@mypyc_attr(allow_interpreted_subclasses=True)
class Agent:
    """An agent of the run, on its node, with an HTTP endpoint for its calls."""

    role = "agent"
    # A role that does work sets its service-time sampler (see `_work_time`).
    _service_time: Callable[[], float]

    def __init__(self, ctx: Context, spec: sc.Agent) -> None:
        assert ctx.network is not None
        self.ctx = ctx
        self.spec = spec
        self.id = spec.id
        # The run's fault state, asked on every request: kept here, typed (compiled, its
        # fields are read off its struct rather than looked up through the context).
        self._faults: FaultState = ctx.faults
        self.node = Node(
            spec.id,
            ctx.env,
            ctx.network,
            ctx.recorder,
            ctx.new_msg_id,
            ctx.streams.get,
            spec.version,
        )
        self._channels: dict[str, sc.Channel] = {}
        self._callers: dict[str, ResilientCaller] = {}
        # The HTTP client of each callee whose channel is plain HTTP (see `call`).
        self._http_direct: dict[str, HttpClient] = {}
        self.endpoints = Endpoints(self.node, ctx.scenario, self.channel, spec)
        self.node.on_restart.append(self.start)

    def _work_time(self) -> float:
        """A job's service time, stretched while an `overload` fault holds this agent."""
        work = self._service_time()
        faults = self._faults
        if faults.overload:
            work *= faults.service_factor(self.id)
        return work

    def _injected_error(self, job: Job) -> bool:
        """Answer `job` with the error an `error` fault injects now, if one does."""
        faults = self._faults
        status = faults.error_status(self.id) if faults.errors else 0
        if status:
            job.reply(status, f"HTTP {status} (injected)")
        return bool(status)

    def start(self) -> None:
        """Start the agent's own processes (a client's workload); again after a restart."""

    @property
    def up(self) -> bool:
        """Whether the agent is running (not crashed)."""
        return self.node.up

    def call(
        self,
        dst: str,
        type_: str,
        correlation_id: str,
        parent: int = -1,
        size_bytes: int = 256,
        body: Any = None,
        causation_id: str = "",
        on_done: Callable[[CallResult], None] | None = None,
        deadline: float = math.inf,
    ) -> Call:
        """Call `dst` through the channel the scenario sets for (this agent, dst).

        `deadline` is the incoming request's (absolute); the channel's policies decide
        whether it caps this call's timeout.
        """
        http = self._http_direct.get(dst)
        if http is not None and deadline == math.inf:
            # What the plain channel's `direct` below does, called on the HTTP client
            # itself: compiled, a direct call rather than a generic one of 12 arguments.
            timeout = self._channels[dst].timeout
            return http.call(
                dst, type_, correlation_id, timeout, parent, size_bytes, body, causation_id,
                on_done, 1, "", None if timeout is not None else math.inf,
            )  # fmt: skip
        caller = self._callers.get(dst)
        if caller is None:
            caller = self._callers[dst] = self._caller(dst)
        # Making the caller looked the channel up: it is in `_channels` from then on.
        channel = self._channels[dst]
        timeout = channel.timeout
        direct = caller.direct
        if direct is not None and channel.protocol == "http":
            # `direct` is this client's `call` (Endpoints.attempt): from now on, above.
            self._http_direct[dst] = self.endpoints.http.client
        if direct is not None and deadline == math.inf:
            # What ResilientCaller.call does for a plain channel, one call frame less: the
            # attempt is the request, and its deadline is its own timeout from now
            # (None lets the protocol count it from its own clock reading).
            return direct(
                dst, type_, correlation_id, timeout, parent, size_bytes, body, causation_id,
                on_done, 1, "", None if timeout is not None else math.inf,
            )  # fmt: skip
        return caller.call(
            type_, correlation_id, timeout, parent, size_bytes, body, causation_id, deadline,
            on_done,
        )  # fmt: skip

    def _caller(self, dst: str) -> ResilientCaller:
        channel = self.channel(dst)
        policies = Policies(
            self.node,
            dst,
            self.ctx.streams.get(f"policy:{self.id}->{dst}"),
            retry=channel.retry,
            breaker=channel.breaker,
            budget=channel.budget,
            throttle=channel.throttle,
            deadline=channel.deadline,
            idempotent=channel.http.idempotent,
        )
        attempt = self.endpoints.attempt(channel.protocol)
        cancel = self.endpoints.cancel(channel.protocol)
        return ResilientCaller(self.node, policies, attempt, channel.protocol, cancel)

    def cancel(self, dst: str, call: Call) -> None:
        """Give up on a call to `dst`: it ends cancelled and `dst` is told to stop."""
        caller = self._callers.get(dst)
        if caller is not None:
            caller.cancel(call)

    def operate_breaker(self, peer: str, action: str, reason: str) -> None:
        """An operator's action on the breaker of the channel to `peer`: `force_open`,
        `disable` or `reset` (a channel without a breaker has nothing to act on)."""
        caller = self._callers.get(peer)
        if caller is None:
            caller = self._callers[peer] = self._caller(peer)
        breaker = caller.policies.breaker
        if breaker is None:
            return
        now = self.ctx.env.now
        if action == "force_open":
            breaker.force_open(now, reason)
        elif action == "disable":
            breaker.disable(now, reason)
        else:
            breaker.reset(now, reason)

    def channel(self, dst: str) -> sc.Channel:
        """The channel from this agent to `dst` (the default one when none is listed)."""
        channel = self._channels.get(dst)
        if channel is None:
            channel = self._channels[dst] = self.ctx.scenario.channel(self.id, dst)
        return channel

    # The fault injector drives the lifecycle through the agent.
    def crash(self) -> None:
        """Go down; state and work in progress are lost."""
        self.node.crash()

    def restart(self) -> None:
        """Come back up with empty state."""
        self.node.restart()

    def pause(self) -> None:
        """Stop processing (a GC stall)."""
        self.node.pause()

    def resume(self) -> None:
        """End the stall."""
        self.node.resume()


@mypyc_attr(allow_interpreted_subclasses=True)
class Client(Agent):
    """A workload client: sends the scenario's workload streams that start from it."""

    role = "client"

    def __init__(self, ctx: Context, spec: sc.Agent) -> None:
        super().__init__(ctx, spec)
        self.workloads = [w for w in ctx.scenario.workload if w.src == self.id]
        self._requests = itertools.count(1)
        # One arrival schedule per workload for the whole run, as the users behind it
        # do not restart with the client: arrivals that fall while it is down are lost,
        # and after a restart a ramp keeps its slope and bursts keep their phase.
        self._schedules = [self._schedule(i, w) for i, w in enumerate(self.workloads)]
        self._upcoming: list[float | None] = [None] * len(self.workloads)

    def _schedule(self, index: int, workload: sc.Workload) -> Iterator[float]:
        rng = self.ctx.streams.get(f"workload:{self.id}:{index}")
        end = workload.end if workload.end is not None else self.ctx.scenario.duration
        return arrival_times(workload.arrivals, rng, workload.start, end)

    def start(self) -> None:
        """Start (or, after a restart, resume) every workload stream of this client."""
        for index, workload in enumerate(self.workloads):
            _Arrivals(self, index, workload, self.ctx.env.now)


class _Arrivals(Fire):
    """One workload stream of a client, from its (re)start until a crash or its end.

    Its own event on the heap (a `kernel.Fire`) rather than a process: a process
    resumes through two generator frames per request. It does what the process it replaces did, step for
    step and event for event: its first step runs from an urgent event, as a process's
    does, whatever happens before; a crash stops it at its next step (the epoch it began
    in has passed), as the interrupt did a process; a pause holds an arrival on the
    pause's event, where the process waited.
    """

    __slots__ = ("client", "env", "epoch", "index", "node", "since", "workload")

    def __init__(self, client: Client, index: int, workload: sc.Workload, since: float) -> None:
        self.client = client
        self.index = index
        self.workload = workload
        self.since = since
        self.node = client.node
        self.env = env = client.ctx.env
        self.epoch = self.node.epoch
        start_soon(env, self._begin)

    def _begin(self, _event: simpy.Event) -> None:
        # A process takes its first step even if its node crashed since it was spawned:
        # the interrupt only lands after it.
        self._next()

    def _next(self) -> None:
        """Send the arrivals that are due, until one is in the future: wait for it."""
        node = self.node
        client, index = self.client, self.index
        upcoming = client._upcoming
        while True:
            # The next arrival outlives a crash that stops the wait for it.
            t = upcoming[index]
            if t is None:
                t = next_of(client._schedules[index], None)
                if t is None:
                    return
                upcoming[index] = t
            if t < self.since:
                upcoming[index] = None  # it fell while the client was down
                continue
            now = node.now()
            if t > now:
                # Its own event on the heap (kernel.Fire): `fire` when the arrival is due.
                node.heap.push(t - now, self)
                return
            upcoming[index] = None
            if node._paused is not None:  # node.paused, without a property call
                node.on_unpause(self._unpaused)
                return
            self._send()

    def fire(self) -> None:
        """The next arrival is due (unless the client crashed while it waited)."""
        node = self.node
        if self.epoch != node.epoch:
            return  # the client crashed while it waited
        self.client._upcoming[self.index] = None
        if node._paused is not None:  # node.paused, without a property call
            # Arrivals during a pause are held and sent when it ends.
            node.on_unpause(self._unpaused)
            return
        client, workload = self.client, self.workload
        # _send(), inline: once per request.
        client.call(
            workload.dst,
            workload.type,
            f"{client.id}-{next_of(client._requests)}",
            size_bytes=workload.size_bytes,
        )
        self._next()

    def _unpaused(self, _event: simpy.Event) -> None:
        node = self.node
        if self.epoch != node.epoch:
            return
        if node.paused:
            node.on_unpause(self._unpaused)  # another pause began meanwhile
            return
        self._send()
        self._next()

    def _send(self) -> None:
        client, workload = self.client, self.workload
        client.call(
            workload.dst,
            workload.type,
            f"{client.id}-{next_of(client._requests)}",
            size_bytes=workload.size_bytes,
        )


@mypyc_attr(allow_interpreted_subclasses=True)
class Service(Agent):
    """A service: N workers, a service-time distribution, optional downstream calls."""

    role = "service"

    def __init__(self, ctx: Context, spec: sc.Agent) -> None:
        super().__init__(ctx, spec)
        # Compiled draws of the service time (sim.draws): the sampler's numbers, without
        # a call into the interpreter per request.
        self._work_draw = draw_of(spec.service_time, ctx.streams.get(f"service:{self.id}"))
        self._service_time = self._work_draw
        # One pool: `workers` are the requests it serves at once over all its protocols.
        self.endpoints.serve(served_protocols(ctx.scenario, self.id), self._handle)

    @property
    def pools(self) -> dict[str, WorkerPool]:
        """The worker pool of each protocol it serves, by protocol."""
        return self.endpoints.pools

    def _handle(self, job: Job) -> None:
        faults = self._faults
        # _injected_error() and _work_time(), with their tests inline: once per request.
        if faults.errors and self._injected_error(job):
            return
        work = self._work_draw.draw()
        if faults.overload:
            work *= faults.service_factor(self.id)
        if self.spec.calls and payload_of(job.msg.body) != POISON:
            proc = self.node.spawn(self._serve_with_calls(job, work))
            # A cancelled job stops, and cancels the downstream call it waits on.
            job.on_cancel = lambda: proc.interrupt("cancelled") if proc.is_alive else None
        elif self.node.up:
            # node.after_work(work, partial(self._handled, job)), as a Work of its own.
            _Serving(self, job, max(work, 0.0))

    def _handled(self, job: Job) -> None:
        # The owner's reply, not Job.reply, and payload_of() inline: calls less per request.
        body = job.msg.body
        status, error = 200, ""
        if (body.payload if isinstance(body, HttpRequest) else body) == POISON:
            status, error = 500, "poison message: the handler failed"
        owner = job.owner
        if isinstance(owner, HttpServer):
            owner.reply(job, status, error)  # compiled: a direct call
        else:
            owner.reply(job, status, error)

    def _serve_with_calls(self, job: Job, work: float) -> Generator[simpy.Event, Any, None]:
        node = self.node
        status, error = 200, ""
        current: tuple[str, Call] | None = None
        if self.spec.parallel_calls:
            yield from self._fan_out(job, work)
            return
        try:
            yield from node.work(work)
            for callee in self.spec.calls:
                call = self.call(
                    callee,
                    job.msg.type,
                    job.msg.correlation_id,
                    job.span,
                    causation_id=job.msg.msg_id,
                    deadline=job.msg.deadline,
                )
                current = (callee, call)
                outcome, _, why = yield call.wait()
                current = None
                yield from node.unpaused()
                if outcome != "ok":
                    status = 504 if outcome in ("timeout", "deadline_exceeded") else 502
                    error = f"call to {callee} failed: {why}"
                    break
        except simpy.Interrupt as interrupt:
            if interrupt.cause == "cancelled" and current is not None:
                self.cancel(*current)
            raise
        job.reply(status, error)

    def _fan_out(self, job: Job, work: float) -> Generator[simpy.Event, Any, None]:
        """Work, then call every agent of `calls` at once; answer by the fan-out policy."""
        node, msg, callees = self.node, job.msg, self.spec.calls
        fan: FanOut | None = None

        def start(i: int, parent: int) -> Call:
            return self.call(callees[i], msg.type, msg.correlation_id, parent,
                             causation_id=msg.msg_id, deadline=msg.deadline)  # fmt: skip

        try:
            yield from node.work(work)
            fan = FanOut(node, "fanout", msg.correlation_id, len(callees), start,
                         self.spec.fanout, job.span)  # fmt: skip
            outcome, _, why = yield fan.wait()
            yield from node.unpaused()
        except simpy.Interrupt as interrupt:
            if interrupt.cause == "cancelled" and fan is not None:
                for callee, call in zip(callees, getattr(fan, "calls", []), strict=False):
                    self.cancel(callee, call)
            raise
        if outcome in ("ok", "partial"):
            job.reply(200)
        else:
            job.reply(504 if outcome == "timeout" else 502, f"fan-out {outcome}: {why}")


class _Serving(Work):
    """A service's work on a request (`Service._handle`): when done, it is answered."""

    __slots__ = ("job", "service")

    def __init__(self, service: Service, job: Job, seconds: float) -> None:
        self.service = service
        self.job = job
        super().__init__(service.node, _nothing, seconds)

    def done(self) -> None:
        """The work is done: answer the request."""
        self.service._handled(self.job)


def _nothing() -> None:
    """The action of a Work whose `done` does what it does."""


@mypyc_attr(allow_interpreted_subclasses=True)
class BrokerAgent(Agent):
    """A message broker: named queues, consumer groups, visibility timers, DLQs."""

    role = "broker"

    def __init__(self, ctx: Context, spec: sc.Agent) -> None:
        super().__init__(ctx, spec)
        self.broker = Broker(
            self.node, spec.queue or QueueSettings(), self._dead_lettered,
            broker_queues(ctx.scenario, self.id),
        )  # fmt: skip

    def _dead_lettered(self, letter: DeadLetter) -> None:
        # The message's last copy on the wire ends as dead-lettered, with the reason. Where
        # no DLQ takes it (RabbitMQ without a dead-letter exchange) the broker drops it,
        # and the reason says so: nobody can inspect or redrive it.
        reason = letter.reason if letter.dlq else f"{letter.reason}; dropped: no dead-letter queue"
        self.ctx.recorder.mark_last(
            letter.msg_id, "dead_lettered", self.ctx.env.now, reason, letter.deliveries,
            letter.delivery,
        )  # fmt: skip
