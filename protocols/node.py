"""A node: one agent's presence on the network, and its lifecycle.

Every protocol endpoint of an agent lives on its node. The node routes what the
transport delivers to the endpoint of the message's protocol, and it owns the agent's
lifecycle, which every protocol must respect:

- **crash**: the agent is down; processes are interrupted, scheduled callbacks go stale
  (each carries the epoch it was scheduled in), endpoints drop their in-memory state;
  on restart they start empty. Overlapping crash windows keep it down until the last
  ends. A down node sends nothing, hears of no refusal (bounce) and schedules nothing:
  only at the instant of the crash may its endpoints send what a dying process's kernel
  sends (the reset of its open connections), which is what `sends` allows.
- **pause** (a GC stall): nothing is processed; deliveries wait in a backlog, timers and
  work are held, and work in progress resumes where it stopped.

Callbacks rather than processes carry the common path (`after`, `after_work`), because a
process per request costs several scheduler events more than a timeout with a callback.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Generator
from typing import Any, Protocol

import simpy

from protocols.journal import Journal
from protocols.kernel import Fire, Heap, Later, scheduler, settle
from protocols.transport import Message, Transport


class Endpoint(Protocol):
    """What a protocol endpoint offers its node."""

    def on_message(self, msg: Message) -> None:
        """A message of this endpoint's protocol was delivered."""
        ...

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A message this endpoint sent could not be delivered (`outcome` says why)."""
        ...

    def reset(self) -> None:
        """The node crashed: drop every piece of in-memory state."""
        ...


class Interruptible(Protocol):
    """What a crash interrupts: a SimPy process, or anything that runs code like one."""

    @property
    def is_alive(self) -> bool:
        """Whether it has not ended yet."""
        ...

    def interrupt(self, cause: Any = None) -> None:
        """Raise simpy.Interrupt(cause) in its code, as SimPy interrupts a process."""
        ...


class Node:
    """An agent's clock, transport, journal, ids, random streams and lifecycle."""

    def __init__(
        self,
        agent: str,
        env: simpy.Environment,
        transport: Transport,
        journal: Journal,
        new_id: Callable[[], str],
        stream: Callable[[str], random.Random],
        version: int = 1,
    ) -> None:
        self.id = agent
        self.env = env
        self.transport = transport
        self.journal = journal
        self.new_id = new_id
        self.stream = stream
        self.version = version
        self.up = True
        # Whether what it sends goes on the wire: while up, and during the crash itself
        # (its kernel resetting its connections); the network asks.
        self.sends = True
        # Bumped by every crash: a callback scheduled before it sees a stale epoch.
        self.epoch = 0
        self._endpoints: dict[str, Endpoint] = {}
        # Handlers an endpoint set for a kind of its messages, by protocol then kind.
        self._routes: dict[str, dict[str, Callable[[Message], None]]] = {}
        self._crashes = 0
        self._pauses = 0
        self._paused: simpy.Event | None = None
        self._paused_since = 0.0
        self._paused_total = 0.0
        self._backlog: list[Message] = []
        # Actions held by a pause; what they return is not used.
        self._deferred: list[Callable[[], object]] = []
        self._procs: dict[int, Interruptible] = {}
        self._proc_ids = itertools.count()
        self.on_crash: list[Callable[[], None]] = []
        self.on_restart: list[Callable[[], None]] = []
        self.on_resume: list[Callable[[float, float], None]] = []
        # call_later(delay, callback): a SimPy timeout with a callback, for less.
        self.call_later: Later = scheduler(env)
        # Puts the hot path's own events (`kernel.Fire`: work done, a hand-over) on the heap.
        self.heap = Heap(env)
        # The FastEnvironment's own clock, when it is one (see `now`).
        self._clock = self.heap.clock
        self._clocked = self.heap.native
        transport.attach(agent, self.receive, self.bounce)

    def now(self) -> float:
        """The simulated time: `env.now`, read off the FastEnvironment's `Clock` when it is
        one (compiled, a field; `env.now` is a lookup in the environment's `__dict__`)."""
        return self._clock.now if self._clocked else self.env.now

    # -- endpoints and messages -------------------------------------------------------

    def register(self, protocol: str, endpoint: Endpoint) -> None:
        """Route delivered messages of `protocol` to `endpoint`."""
        self._endpoints[protocol] = endpoint

    def route(self, protocol: str, kind: str, handler: Callable[[Message], None]) -> None:
        """Deliver messages of `protocol` and `kind` to `handler`, not to the endpoint's
        `on_message`: what that would do with them, a call less per message."""
        self._routes.setdefault(protocol, {})[kind] = handler

    def endpoint(self, protocol: str) -> Endpoint | None:
        """The endpoint of `protocol` on this node, if any."""
        return self._endpoints.get(protocol)

    def send(self, msg: Message) -> int:
        """Put a message on the wire."""
        return self.transport.send(msg)

    def answer(
        self,
        request: Message,
        body: Any,
        size_bytes: int,
        span: int,
        kind: str = "response",
        type_: str | None = None,
    ) -> Message:
        """The message answering `request` from this node: back to its sender, in its
        protocol, with its correlation id and attempt, caused by it (not yet sent)."""
        # Positional: a Message built from keywords costs several times more.
        return Message(
            self.new_id(), request.type if type_ is None else type_, self.id, request.src,
            kind, request.protocol, self.version, request.correlation_id, request.msg_id,
            span, request.attempt, size_bytes, body,
        )  # fmt: skip

    def receive(self, msg: Message) -> None:
        """Entry point of every delivered message; held in a backlog during a pause."""
        if self._paused is not None:
            self._backlog.append(msg)
            return
        routes = self._routes.get(msg.protocol)
        if routes is not None:
            handler = routes.get(msg.kind)
            if handler is not None:
                handler(msg)
                return
        endpoint = self._endpoints.get(msg.protocol)
        if endpoint is not None:
            endpoint.on_message(msg)

    def bounce(self, msg: Message, outcome: str) -> None:
        """A message sent from here was refused; its endpoint hears of it when running.

        A node that is down hears nothing: the refusal finds no process to tell.
        """
        if not self.up:
            return
        endpoint = self._endpoints.get(msg.protocol)
        if endpoint is not None:
            self.when_running(lambda: endpoint.on_bounce(msg, outcome))

    # -- time -------------------------------------------------------------------------

    def after(self, delay: float, action: Callable[[], object]) -> None:
        """Do `action` after `delay`, unless the node crashes first; held by a pause.

        A node that is down schedules nothing (it runs no code).
        """
        if not self.up:
            return
        epoch = self.epoch

        def fire(_event: simpy.Event) -> None:
            if epoch == self.epoch:
                # when_running(action), inline: a worker handed over runs this per job.
                if self._paused is None:
                    action()
                else:
                    self._deferred.append(action)

        self.call_later(delay, fire)

    def after_work(self, seconds: float, action: Callable[[], object]) -> None:
        """Spend `seconds` of processing, then do `action`; a pause freezes the work.

        Work that a pause interrupted is finished after the pause: a pause of p seconds
        delays the work in progress by p, as a GC stall does. A node that is down does none.
        """
        if self.up:
            Work(self, action, max(seconds, 0.0))

    def work_event(self, seconds: float) -> simpy.Event:
        """An event that fires when `seconds` of processing are done (see `after_work`),
        for code waiting on it in a process; it never fires if the node crashes first.

        When the work ends and nothing else is due at that instant, the event is
        processed at once (`kernel.settle`) rather than through SimPy's heap.
        """
        done = simpy.Event(self.env)  # env.event(), without its descriptor's call
        if self.up:
            Work(self, done.succeed, max(seconds, 0.0), done)
        return done

    def when_running(self, action: Callable[[], object]) -> None:
        """Do `action` now, or when the pause ends."""
        if self._paused is None:
            action()
        else:
            self._deferred.append(action)

    # -- processes --------------------------------------------------------------------

    def spawn(self, work: Generator[simpy.Event, Any, Any]) -> simpy.Process:
        """Run `work` as a process that a crash interrupts."""
        key = next(self._proc_ids)
        proc = self.env.process(self._tracked(key, work))
        self._procs[key] = proc
        return proc

    def track(self, proc: Interruptible) -> int:
        """Have a crash interrupt `proc` (until `untrack` with the key this returns)."""
        key = next(self._proc_ids)
        self._procs[key] = proc
        return key

    def untrack(self, key: int) -> None:
        """`proc` of `track` has ended."""
        self._procs.pop(key, None)

    def _tracked(
        self, key: int, work: Generator[simpy.Event, Any, Any]
    ) -> Generator[simpy.Event, Any, Any]:
        try:
            return (yield from work)
        except simpy.Interrupt:
            return None  # a crash: the endpoints already recorded what it lost
        finally:
            self._procs.pop(key, None)

    def unpaused(self) -> Generator[simpy.Event, Any, None]:
        """Wait while the node is paused (a no-op otherwise); for processes."""
        while self._paused is not None:
            yield self._paused

    def on_unpause(self, callback: Callable[[simpy.Event], None]) -> None:
        """Call `callback` when the current pause ends, from the pause's event: in the
        order, and at the moment, a process waiting in `unpaused` would resume."""
        assert self._paused is not None
        self._paused.callbacks.append(callback)

    def work(self, seconds: float) -> Generator[simpy.Event, Any, None]:
        """Spend `seconds` of processing time in a process; a pause freezes it."""
        env = self.env
        while seconds > 0:
            before = self.paused_time()
            yield env.timeout(seconds)
            seconds = self.paused_time() - before
            yield from self.unpaused()

    # -- lifecycle --------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """Whether the node is in a pause."""
        return self._paused is not None

    def paused_time(self) -> float:
        """Seconds this node has spent paused since the run began."""
        if self._paused is None:
            return self._paused_total
        return self._paused_total + self.env.now - self._paused_since

    def crash(self) -> None:
        """Go down: processes are interrupted, callbacks go stale, endpoints reset."""
        self._crashes += 1
        if not self.up:
            return
        self.up = False
        self.epoch += 1
        for proc in list(self._procs.values()):
            if proc.is_alive:
                proc.interrupt("crashed")
        self._procs.clear()
        self._backlog.clear()
        self._deferred.clear()
        if self._paused is not None:
            self._end_pause()
        for endpoint in self._endpoints.values():
            endpoint.reset()
        for action in self.on_crash:
            action()
        # Its kernel has reset its connections: from now on nothing leaves it.
        self.sends = False

    def restart(self) -> None:
        """Come back up, empty, once every crash window on the node has ended."""
        if self._crashes == 0:
            return
        self._crashes -= 1
        if self._crashes or self.up:
            return
        self.up = True
        self.sends = True
        if self._pauses:
            # A pause window that opened while the node was down still holds.
            self._begin_pause()
        for action in self.on_restart:
            action()

    def pause(self) -> None:
        """Stop processing until `resume`."""
        self._pauses += 1
        if self.up and self._paused is None:
            self._begin_pause()

    def resume(self) -> None:
        """Once every pause window has ended: go on, then handle the backlog in order."""
        if self._pauses == 0:
            return
        self._pauses -= 1
        if self._pauses or self._paused is None:
            return
        paused_at = self._paused_since
        self._end_pause()
        for hook in self.on_resume:
            hook(paused_at, self.env.now)
        deferred, self._deferred = self._deferred, []
        for action in deferred:
            action()
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


class Work(Fire):
    """Work in progress on a node: it fires when done, and owes what a pause froze.

    Its own event on the heap (a `kernel.Fire`) rather than a timeout with a callback:
    no closure, so finished work leaves no reference cycle behind, and no object per
    piece of work but itself. `Node.after_work` makes one that calls its `action` when
    done; a compiled role's own kind of work overrides `done` instead (no callable to
    make and call per request). A node that is down does no work: make none then.
    """

    __slots__ = ("action", "before", "epoch", "event", "node")

    def __init__(
        self,
        node: Node,
        action: Callable[[], object],
        seconds: float,
        event: simpy.Event | None = None,
    ) -> None:
        self.node = node
        self.action = action
        # The event `action` succeeds, when it is one (Node.work_event): settled at once
        # when the work ends outside a pause (where firing is the callback's last act).
        self.event = event
        self.epoch = node.epoch
        # start(seconds), inline: this runs once per piece of work.
        self.before = node._paused_total if node._paused is None else node.paused_time()
        node.heap.push(seconds, self)

    def start(self, seconds: float) -> None:
        """Spend `seconds` of processing from now."""
        node = self.node
        # Node.paused_time(), inline: this runs once per piece of work.
        self.before = node._paused_total if node._paused is None else node.paused_time()
        node.heap.push(seconds, self)

    def fire(self) -> None:
        """The time is up: finish, or work on for the time a pause took meanwhile."""
        node = self.node
        if self.epoch != node.epoch:
            return  # the node crashed since
        if node._paused is None:
            # Not paused now (the common case): Node.paused_time() and when_running, inline.
            more = node._paused_total - self.before
            if more > 0:
                self.start(more)
            elif self.event is not None:
                settle(node.env, self.event)
            else:
                self.done()
            return
        more = node.paused_time() - self.before
        if more > 0:
            node.when_running(lambda: self.start(more))
        else:
            node.when_running(self.done)

    def done(self) -> None:
        """The work is done (after any pause it owed): its action."""
        self.action()
