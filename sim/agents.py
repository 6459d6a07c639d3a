"""Agents: workload clients and services with a pool of workers.

An agent can be crashed (it is down, its in-memory state and in-flight work are lost,
and it restarts empty) or paused (like a GC stall: it stops processing and what arrives
waits for it). Calls between agents are request-response with a timeout; the HTTP
protocol of `protocols/` refines this with connection pools and status semantics.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Generator, Iterator
from typing import Any

import simpy

from protocols.transport import Message
from sim import scenario as sc
from sim.arrivals import arrival_times
from sim.context import Context

RESPONSE_BYTES = 256
POISON = "poison"

# What a call's waiter is woken with: the response, or why there is none.
Reply = Message | str
CallResult = tuple[str, int, str]


class AgentProcess:
    """An agent of the run: its up/down and pause state, its calls and its receiver."""

    role = "agent"

    def __init__(self, ctx: Context, spec: sc.Agent) -> None:
        self.ctx = ctx
        self.env = ctx.env
        self.spec = spec
        self.id = spec.id
        self.up = True
        # Open crash and pause windows: overlapping windows keep the agent down (or
        # paused) until the last of them ends.
        self._crashes = 0
        self._pauses = 0
        self._paused: simpy.Event | None = None
        self._paused_since = 0.0
        self._paused_total = 0.0
        self._backlog: list[Message] = []
        self._pending: dict[str, simpy.Event] = {}
        self._procs: dict[int, simpy.Process] = {}
        self._proc_ids = itertools.count()

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start the agent's own processes (a client's workload)."""

    def spawn(self, work: Generator[Any, Any, Any]) -> simpy.Process:
        """Run `work` as a process that a crash interrupts."""
        key = next(self._proc_ids)
        proc = self.env.process(self._tracked(key, work))
        self._procs[key] = proc
        return proc

    def _tracked(self, key: int, work: Generator[Any, Any, Any]) -> Iterator[Any]:
        try:
            return (yield from work)
        except simpy.Interrupt:
            # A crash: the work already recorded what it lost.
            return None
        finally:
            self._procs.pop(key, None)

    def crash(self) -> None:
        """Go down: every process is interrupted and in-memory state is lost."""
        self._crashes += 1
        if not self.up:
            return
        self.up = False
        for proc in list(self._procs.values()):
            if proc.is_alive:
                proc.interrupt("crashed")
        self._procs.clear()
        self._pending.clear()
        self._backlog.clear()
        if self._paused is not None:
            self._end_pause()
        self.reset()

    def reset(self) -> None:
        """Drop in-memory state after a crash (subclasses add theirs)."""

    def restart(self) -> None:
        """Come back up with empty state, once every crash window on the agent has ended."""
        if self._crashes == 0:
            return
        self._crashes -= 1
        if self._crashes or self.up:
            return
        self.up = True
        if self._pauses:
            # A pause window that opened while the agent was down still holds.
            self._begin_pause()
        self.start()

    def pause(self) -> None:
        """Stop processing until `resume`; arriving messages wait in a backlog."""
        self._pauses += 1
        if self.up and self._paused is None:
            self._begin_pause()

    def resume(self) -> None:
        """Once every pause window has ended: process the backlog, in arrival order."""
        if self._pauses == 0:
            return
        self._pauses -= 1
        if self._pauses or self._paused is None:
            return
        self._end_pause()
        backlog, self._backlog = self._backlog, []
        for msg in backlog:
            self.receive(msg)

    def _begin_pause(self) -> None:
        self._paused = self.env.event()
        self._paused_since = self.env.now

    def _end_pause(self) -> None:
        event, self._paused = self._paused, None
        assert event is not None
        self._paused_total += self.env.now - self._paused_since
        event.succeed()

    def paused_time(self) -> float:
        """Seconds this agent has spent paused since the run began."""
        if self._paused is None:
            return self._paused_total
        return self._paused_total + self.env.now - self._paused_since

    def unpaused(self) -> Iterator[simpy.Event]:
        """Wait while the agent is paused (a no-op otherwise)."""
        while self._paused is not None:
            yield self._paused

    def work(self, seconds: float) -> Iterator[simpy.Event]:
        """Spend `seconds` of processing time; a pause freezes it, as a GC stall does.

        The work that a pause interrupted is finished after the pause, so a pause of p
        seconds delays the work in progress by p, not only until the pause ends.
        """
        env = self.env
        while seconds > 0:
            before = self.paused_time()
            yield env.timeout(seconds)
            seconds = self.paused_time() - before
            yield from self.unpaused()

    # -- messages ---------------------------------------------------------------------

    def receive(self, msg: Message) -> None:
        """Entry point of every message the network delivers to this agent."""
        if self._paused is not None:
            self._backlog.append(msg)
            return
        if msg.kind == "response":
            waiter = self._pending.get(msg.causation_id)
            if waiter is not None and not waiter.triggered:
                waiter.succeed(msg)
        elif msg.kind == "request":
            self.on_request(msg)

    def bounce(self, msg: Message, outcome: str) -> None:
        """The network could not deliver `msg`: a call waiting on it fails now."""
        if msg.kind == "request":
            waiter = self._pending.get(msg.msg_id)
            if waiter is not None and not waiter.triggered:
                waiter.succeed(outcome)

    def on_request(self, msg: Message) -> None:
        """Handle a request (only services serve; others answer 404)."""
        self.respond(msg, 404, span=-1)

    def respond(self, request: Message, status: int, span: int) -> None:
        """Send the response to `request` with an HTTP-like status."""
        net = self.ctx.network
        assert net is not None
        net.send(
            Message(
                msg_id=self.ctx.new_msg_id(),
                type=request.type,
                src=self.id,
                dst=request.src,
                kind="response",
                protocol=request.protocol,
                version=self.spec.version,
                correlation_id=request.correlation_id,
                causation_id=request.msg_id,
                span=span,
                attempt=request.attempt,
                size_bytes=RESPONSE_BYTES,
                body=status,
            )
        )

    # -- calls ------------------------------------------------------------------------

    def call(
        self,
        dst: str,
        type_: str,
        correlation_id: str,
        parent: int = -1,
        size_bytes: int = 256,
        body: Any = None,
        causation_id: str = "",
    ) -> Generator[Any, Any, CallResult]:
        """Call `dst` and wait for its response or the channel's timeout.

        Returns (outcome, status, error) and records the client span.
        """
        env, rec = self.env, self.ctx.recorder
        channel = self.ctx.scenario.channel(self.id, dst)
        timeout = channel.timeout
        now = env.now
        deadline = now + timeout if timeout is not None else math.nan
        span = rec.span_start(
            type_, "client", self.id, dst, channel.protocol, now, parent, correlation_id, deadline
        )
        msg = Message(
            msg_id=self.ctx.new_msg_id(),
            type=type_,
            src=self.id,
            dst=dst,
            kind="request",
            protocol=channel.protocol,
            version=self.spec.version,
            correlation_id=correlation_id,
            causation_id=causation_id,
            span=span,
            size_bytes=size_bytes,
            body=body,
        )
        waiter = env.event()
        self._pending[msg.msg_id] = waiter
        if timeout is not None:
            env.timeout(timeout).callbacks.append(
                lambda _e: None if waiter.triggered else waiter.succeed("timeout")
            )
        net = self.ctx.network
        assert net is not None
        try:
            net.send(msg)
            reply: Reply = yield waiter
            yield from self.unpaused()
        except simpy.Interrupt:
            rec.span_end(span, "error", env.now, error="caller crashed")
            raise
        finally:
            self._pending.pop(msg.msg_id, None)
        result = _result(reply, timeout, dst)
        outcome, status, error = result
        rec.span_end(span, outcome, env.now, error=error, status=status)
        return result


def _result(reply: Reply, timeout: float | None, dst: str) -> CallResult:
    if isinstance(reply, Message):
        status = int(reply.body)
        if 200 <= status < 300:
            return "ok", status, ""
        return "error", status, f"HTTP {status}"
    if reply == "timeout":
        return "timeout", 0, f"no response within {timeout:g} s"
    return "error", 0, f"{dst} refused the connection ({reply})"


class Client(AgentProcess):
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
            self.spawn(self._generate(index, workload, self.env.now))

    def _generate(self, index: int, workload: sc.Workload, since: float) -> Iterator[simpy.Event]:
        env = self.env
        schedule, upcoming = self._schedules[index], self._upcoming
        while True:
            # The next arrival outlives a crash that interrupts the wait for it.
            t = upcoming[index]
            if t is None:
                t = next(schedule, None)
                if t is None:
                    return
                upcoming[index] = t
            if t < since:
                upcoming[index] = None  # it fell while the client was down
                continue
            if t > env.now:
                yield env.timeout(t - env.now)
            upcoming[index] = None
            # Arrivals during a pause are held and sent when it ends.
            yield from self.unpaused()
            correlation_id = f"{self.id}-{next(self._requests)}"
            self.spawn(
                self.call(
                    workload.dst, workload.type, correlation_id, size_bytes=workload.size_bytes
                )
            )


class Service(AgentProcess):
    """A service: N workers, a service-time distribution, optional downstream calls."""

    role = "service"

    def __init__(self, ctx: Context, spec: sc.Agent) -> None:
        super().__init__(ctx, spec)
        self.workers = simpy.Resource(self.env, capacity=spec.workers)
        self._service_time = spec.service_time.sampler(ctx.streams.get(f"service:{self.id}"))
        self.enqueued = 0
        self.completed = 0

    def reset(self) -> None:
        """A crash empties the worker pool and its queue."""
        self.workers = simpy.Resource(self.env, capacity=self.spec.workers)

    @property
    def depth(self) -> int:
        """Requests waiting for a worker."""
        return len(self.workers.queue)

    @property
    def busy(self) -> int:
        """Workers at work."""
        return self.workers.count

    def on_request(self, msg: Message) -> None:
        """Admit the request to the worker queue, or answer 503 when the queue is full."""
        limit = self.spec.queue_limit
        workers = self.workers
        if limit is not None and workers.count >= workers.capacity and len(workers.queue) >= limit:
            rec = self.ctx.recorder
            now = self.env.now
            span = rec.span_start(
                msg.type,
                "server",
                self.id,
                msg.src,
                msg.protocol,
                now,
                msg.span,
                msg.correlation_id,
            )
            rec.span_end(span, "rejected", now, error="accept queue full", status=503)
            self.respond(msg, 503, span)
            return
        self.enqueued += 1
        # The worker is asked for now, not when the serving process starts: requests
        # taken in at one instant (the backlog after a pause) then see each other in the
        # queue, and the queue limit holds for them too.
        self.spawn(self._serve(msg, workers.request()))

    def _serve(self, msg: Message, request: simpy.resources.resource.Request) -> Iterator[Any]:
        env, rec, faults = self.env, self.ctx.recorder, self.ctx.faults
        arrived = env.now
        span = rec.span_start(
            msg.type,
            "server",
            self.id,
            msg.src,
            msg.protocol,
            arrived,
            msg.span,
            msg.correlation_id,
        )
        workers = request.resource
        try:
            yield request
            # A worker freed while the agent is paused starts nothing until it resumes.
            yield from self.unpaused()
            wait = env.now - arrived
            status = faults.error_status(self.id) if faults.errors else 0
            if status:
                error = f"HTTP {status} (injected)"
            else:
                yield from self.work(self._service_time() * faults.service_factor(self.id))
                poisoned = msg.body == POISON
                status = 500 if poisoned else 200
                error = "poison message: the handler failed" if poisoned else ""
            if status == 200:
                for callee in self.spec.calls:
                    outcome, _, why = yield from self.call(
                        callee, msg.type, msg.correlation_id, parent=span, causation_id=msg.msg_id
                    )
                    if outcome != "ok":
                        status = 504 if outcome == "timeout" else 502
                        error = f"call to {callee} failed: {why}"
                        break
        except simpy.Interrupt:
            rec.span_end(span, "error", env.now, error="crashed while serving")
            raise
        finally:
            workers.release(request)
        self.completed += 1
        rec.span_end(span, "ok" if status == 200 else "error", env.now, error, wait, status=status)
        self.respond(msg, status, span)


ROLES: dict[str, type[AgentProcess]] = {"client": Client, "service": Service}
