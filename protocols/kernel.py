"""The only module that touches SimPy's internals, and the switch that turns them off.

SimPy's public API costs a few Python calls per event that the hot paths of a run (a
read timeout per call, a delay per delivery, the first step of a workload stream) do
not need. The shortcuts here put events on SimPy's heap directly, with the time,
priority and id that the public call would have given them, so the order of every event
is the same and so is every trace.

They read `Environment._now`, `_eid` and `_queue`, the heap's `(time, priority, id,
event)` layout, and an event's `_ok`, `_value` and `callbacks`. SimPy can change any of
these in a minor release (requirements.txt pins the range these were tested on). An
environment made with `environment(plain=True)`, or any environment when
`SWITCHBOARD_KERNEL=plain` is set, takes the plain public path instead; the tests run
every built-in scenario both ways and compare the tables.

Timers that seldom fire (`Timers`): a caller's read timeout is set on every call and
almost never fires. A SimPy timeout per call is an event that goes on the heap, comes off
it and runs a callback that finds the call ended, for every call. `Timers` keeps them in
a heap of its own and puts on SimPy's heap only the earliest one still pending. A timer
takes its id from SimPy's counter when it is set, as its timeout would have, and its
event goes on SimPy's heap, with that id, before its time comes, so nothing moves.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Generator
from functools import partial
from typing import Any, Final

import simpy
import simpy.core
from simpy.core import EmptySchedule, StopSimulation
from simpy.events import Event, EventPriority

# (when, SimPy event id, target): the target's `result` is not None once the timer is moot.
Entry = tuple[float, int, Any]
# Schedules `callback(event)` after a delay (see `scheduler`).
Later = Callable[[float, Callable[[Any], None]], None]

# Final, so that compiled they are constants (the functions: static references) rather
# than a lookup in the module's dict at every use; once or twice per event.
heappush: Final = heapq.heappush
heappop: Final = heapq.heappop
# `next` too: compiled, a call of it on an iterator of unknown type looks it up in the
# builtins module every time.
next_of: Final = next
NORMAL: Final = simpy.core.NORMAL
URGENT: Final = simpy.core.URGENT

# The private names the fast path reads; a SimPy without them gets the plain path.
_INTERNALS = ("_now", "_eid", "_queue")
# Set on an environment that must take the public path only.
_PLAIN = "_switchboard_plain"


def plain_by_default() -> bool:
    """Whether the environment variable asks every new environment to be plain."""
    return os.environ.get("SWITCHBOARD_KERNEL", "").lower() == "plain"


def environment(plain: bool | None = None) -> simpy.Environment:
    """A new SimPy environment; `plain` (default: `SWITCHBOARD_KERNEL=plain`) forbids the
    shortcuts on it (and its `run` is SimPy's own)."""
    if plain if plain is not None else plain_by_default():
        env = simpy.Environment()
        setattr(env, _PLAIN, True)
        return env
    if not all(hasattr(simpy.Environment(), n) for n in _INTERNALS):
        return simpy.Environment()  # a SimPy without the internals the loop reads
    return FastEnvironment()


class Clock:
    """A FastEnvironment's time, for compiled code: a field read, where the environment's
    `now` (an attribute of an interpreted class) is a lookup in its `__dict__`."""

    __slots__ = ("now",)

    def __init__(self, now: float) -> None:
        self.now = now


class FastEnvironment(simpy.Environment):
    """SimPy's environment with `run`'s loop over `step` written out in one frame, and
    its clock readable without a property call.

    `Environment.run` calls `step()` once per event: a Python call, and the setting up of
    its exception handlers, for every event of the run. This loop does what `step` does,
    statement for statement, without the call: the same events in the same order, the
    same errors, the same `StopSimulation` and `EmptySchedule` handling.

    `now` is SimPy's property over `_now`; the hot path reads it a dozen times per
    request. Here it is a plain attribute, set with `_now` wherever the clock moves
    (`__init__`, `run`, `step`: SimPy sets `_now` nowhere else).
    """

    # Shadows SimPy's read-only property, so that an instance attribute can be set.
    now: float = 0.0

    def __init__(self, initial_time: float = 0) -> None:
        super().__init__(initial_time)
        self.now = initial_time
        # `now` again, set with it: what `Heap.push` reads.
        self.clock = Clock(initial_time)

    def step(self) -> None:
        """As `simpy.Environment.step`, keeping `now` in step with `_now`."""
        queue = self._queue
        if queue and isinstance(queue[0][3], Fire):
            # SimPy's step reads `callbacks`, which a Fire does without: its own, here.
            head: Any = heappop(queue)  # a Fire (SimPy's types say Event)
            self._now = self.now = self.clock.now = head[0]
            head[3].fire()
            return
        if queue:
            # The clock moves before the callbacks run: SimPy's step pops the event and
            # sets `_now` first.
            self.now = self.clock.now = queue[0][0]
        try:
            super().step()  # EmptySchedule when the queue is empty
        finally:
            self.now = self.clock.now = self._now

    def run(self, until: float | Event | None = None) -> Any:
        """As `simpy.Environment.run` (see there)."""
        if until is not None:
            if not isinstance(until, Event):
                at = until if isinstance(until, int) else float(until)
                if at <= self._now:
                    raise ValueError(
                        f"until ({at}) must be greater than the current simulation time"
                    )
                until = Event(self)
                until._ok = True
                until._value = None
                self.schedule(until, URGENT, at - self._now)
            elif until.callbacks is None:
                return until.value
            until.callbacks.append(StopSimulation.callback)
        queue = self._queue
        clock = self.clock
        # Any: a Due, a SimPy event, or whatever stands in for one (see `Due`).
        event: Any
        callbacks: Any
        try:
            while True:
                # Environment.step(), inline (see there for the why of each line).
                try:
                    now, _, _, event = heappop(queue)
                except IndexError:
                    raise EmptySchedule from None
                self._now = self.now = clock.now = now
                if isinstance(event, Fire):
                    # One of the hot path's own events: its callback is a method of its
                    # own, called directly; it cannot fail, nor stop the run.
                    event.fire()
                    continue
                callbacks, event.callbacks = event.callbacks, None
                try:
                    for callback in callbacks:
                        callback(event)
                except StopSimulation:
                    event.callbacks = callbacks[callbacks.index(callback) + 1 :]
                    # Before everything else when the run resumes, as SimPy does.
                    self.schedule(event, EventPriority(-1))
                    raise
                if not event._ok and not hasattr(event, "_defused"):
                    exc = type(event._value)(*event._value.args)
                    exc.__cause__ = event._value
                    raise exc
        except StopSimulation as stop:
            return stop.args[0]
        except EmptySchedule:
            if until is not None:
                assert not until.triggered
                raise RuntimeError(
                    f'No scheduled events left but "until" event was not triggered: {until}'
                ) from None
        return None


def fast(env: simpy.Environment) -> bool:
    """Whether the shortcuts may be used on `env`."""
    if type(env) is FastEnvironment:
        return True  # made by `environment`, only where SimPy has the internals; never plain
    return not getattr(env, _PLAIN, False) and all(hasattr(env, n) for n in _INTERNALS)


class Fire:
    """An event of the hot path's own on a FastEnvironment's heap: it knows what to do
    when its time comes (`fire`), and carries what that needs.

    The heap entry is the one a SimPy timeout would have had (time, priority, id); only
    the object differs. `FastEnvironment.run` calls `fire` directly (compiled, a call
    through the class's table of methods), instead of a list of callbacks each called
    with the event: no list, bound method or `functools.partial` per event, and no
    generic call that parses its arguments. Only a FastEnvironment's loop knows a Fire,
    so `Heap.push` puts one on no other environment's heap: there a SimPy timeout
    calls `step`, at the same moment.
    """

    __slots__ = ()

    def fire(self) -> None:
        """The event's time has come."""
        raise NotImplementedError

    def step(self, _event: object = None) -> None:
        """`fire`, as the callback of the SimPy timeout that stands in for the event."""
        self.fire()


class Due(Fire):
    """A bare timeout: what SimPy's loop reads of an event it processes, nothing more.

    Made by `scheduler` without `Timeout.__init__` and `Environment.schedule`, two
    Python calls per event; nothing yields it or asks its value.
    """

    __slots__ = ("callbacks",)
    # None once processed (Environment.step sets it so).
    callbacks: list[Callable[[Any], None]] | None
    # Read by Environment.step for every event (a failed event raises).
    _ok = True
    _value = None

    def fire(self) -> None:
        """Environment.step for it: its callbacks, each called with it (it cannot fail)."""
        callbacks, self.callbacks = self.callbacks, None
        assert callbacks is not None  # on the heap once, so processed once
        for callback in callbacks:
            callback(self)


class Heap:
    """Puts `Fire` events on an environment's heap, as `env.timeout(delay)` would put
    its timeout: the same time, priority and id (taken from the same counter at the
    same moment), so the order of every event is the same.

    On an environment other than a FastEnvironment (a plain one, or one SimPy's own
    loop runs), a SimPy timeout stands in for the event and calls its `step`.
    """

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.native = type(env) is FastEnvironment
        self.queue = env._queue
        self.eid = env._eid
        # Read only when `native` (a FastEnvironment's own clock).
        self.clock: Clock = env.clock if isinstance(env, FastEnvironment) else Clock(0.0)

    def push(self, delay: float, event: Fire) -> None:
        """Fire `event` after `delay` (seconds, not negative)."""
        if not self.native:
            self.env.timeout(delay).callbacks.append(event.step)
            return
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        # SimPy types its heap as holding Events; a Fire stands in for one (see above).
        heappush(self.queue, (self.clock.now + delay, NORMAL, next_of(self.eid), event))  # type: ignore[misc]


def scheduler(env: simpy.Environment) -> Later:
    """A function `later(delay, callback)` that does what
    `env.timeout(delay).callbacks.append(callback)` does, a few times faster.

    The event goes on SimPy's heap with the time, priority and id that the timeout would
    have (its id taken from the same counter at the same moment), so the order of every
    event is the same; only the object on the heap is smaller.
    """
    if not fast(env):

        def timeout(delay: float, callback: Callable[[Any], None]) -> None:
            env.timeout(delay).callbacks.append(callback)

        return timeout
    queue, eid = env._queue, env._eid

    def later(delay: float, callback: Callable[[Any], None]) -> None:
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        event = Due()
        event.callbacks = [callback]
        # SimPy types its heap as holding Events; a Due stands in for one, with all
        # that Environment.step reads of it (no cast: a call per event is the cost saved).
        heappush(queue, (env._now + delay, NORMAL, next_of(eid), event))  # type: ignore[misc]

    return later


def start_soon(env: simpy.Environment, callback: Callable[[Any], None]) -> None:
    """Call `callback(event)` at the current time before anything already due, as the
    first step of a new SimPy process is taken (an urgent event)."""
    if not fast(env):
        # A process's Initialize event takes the same id at the same moment; the event
        # of the process ending takes one more, which moves no other event's order.
        env.process(_first_step(callback))
        return
    # Triggered and urgent, as SimPy's own Initialize event of a process: a Due (see
    # `scheduler`) put on the heap as env.schedule(event, URGENT) would put an event,
    # since nothing reads it but the loop (a plugin's request starts here).
    begin = Due()
    begin.callbacks = [callback]
    heappush(env._queue, (env._now, URGENT, next_of(env._eid), begin))  # type: ignore[misc]


def outcome(event: Event) -> tuple[bool, Any]:
    """A processed event's `(ok, value)`, as `event.ok` and `event.value` give them,
    without their properties' Python calls (a plugin handler's resume reads it per step)."""
    return event._ok, event._value


def settle(env: simpy.Environment, event: simpy.Event) -> None:
    """Succeed `event` (with None); process it at once when nothing could run before it.

    For the last thing a callback does. `event.succeed()` would put the event on the
    heap at the current time, behind every event already due at this instant, and the
    loop would take it next only if none is. When none is (the heap's first event is
    later), its callbacks run here instead, as the loop would run them: the same code at
    the same moment, with the event id it would have taken spent, but without the event
    going through the heap (a process resumed after a piece of work, say).
    """
    queue = env._queue
    if (
        type(env) is not FastEnvironment
        or (queue and queue[0][0] <= env._now)
        or event.triggered
        or event.callbacks is None
    ):
        event.succeed()
        return
    event._ok = True
    event._value = None
    next_of(env._eid)  # the id env.schedule would have taken, so later ones stay the same
    # Environment.step for it (an event that succeeded cannot fail).
    callbacks, event.callbacks = event.callbacks, None  # type: ignore[assignment]
    for callback in callbacks:
        callback(event)


def _first_step(callback: Callable[[Any], None]) -> Generator[simpy.Event, Any, None]:
    callback(None)
    return
    yield  # a generator, for env.process


class Timers:
    """Timers on one SimPy environment that call `expire(target, event)` when due.

    A timer whose target has ended (its `result` is set) by the time it is due does
    nothing, as a timeout whose callback finds the call ended.
    """

    def __init__(self, env: simpy.Environment, expire: Callable[[Any, Any], None]) -> None:
        self.env = env
        self._expire = expire
        self._heap: list[Entry] = []
        # Event ids of the entries with an event on SimPy's heap that has not fired yet.
        self._armed: set[int] = set()
        # A plain environment gets a SimPy timeout per timer.
        self._lazy = fast(env)
        # A FastEnvironment's loop knows `Fire` events: an armed timer is one (`_Armed`).
        self._native = type(env) is FastEnvironment

    def add(self, delay: float, target: Any) -> None:
        """Set a timer `delay` seconds from now for `target`."""
        env = self.env
        if not self._lazy:
            env.timeout(delay).callbacks.append(partial(self._expire, target))
            return
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        # SimPy's private clock and counter of event ids (`now` is a property over the
        # former): the time and id env.timeout(delay) would take.
        entry = (env._now + delay, next_of(env._eid), target)
        heap = self._heap
        heappush(heap, entry)
        # By event id (unique), not identity: compiled (mypyc), a tuple is boxed anew
        # each time it is stored, so `heap[0] is entry` would never hold.
        if heap[0][1] == entry[1]:
            self._arm(entry)

    def _arm(self, entry: Entry) -> None:
        when, eid, _ = entry
        self._armed.add(eid)
        if self._native:
            armed = _Armed(self, entry)
            heappush(self.env._queue, (when, NORMAL, eid, armed))  # type: ignore[misc]
            return
        event = simpy.Event(self.env)
        event._ok = True
        event._value = entry
        event.callbacks.append(self._fire)
        heappush(self.env._queue, (when, NORMAL, eid, event))

    def _fire(self, event: simpy.Event) -> None:
        self._due(event._value, event)

    def _due(self, entry: Entry, event: object) -> None:
        """The armed timer of `entry` is due (`event` is what was on the heap for it)."""
        self._armed.discard(entry[1])
        heap = self._heap
        due = None
        # Everything before this entry has fired or has ended; drop it, and the ended
        # timers that now lead, so the next pending one can be armed.
        while heap:
            top = heap[0]
            if top[1] == entry[1]:  # this entry (ids are unique; see `add`)
                heappop(heap)
                due = entry
            elif top[2].result is not None:
                heappop(heap)
            else:
                break
        if heap and heap[0][1] not in self._armed:
            self._arm(heap[0])
        if due is not None and due[2].result is None:
            self._expire(due[2], event)


class _Armed(Fire):
    """The event of an armed timer on a FastEnvironment's heap (see `Timers`)."""

    __slots__ = ("entry", "timers")

    def __init__(self, timers: Timers, entry: Entry) -> None:
        self.timers = timers
        self.entry = entry

    def fire(self) -> None:
        """The timer's time has come."""
        self.timers._due(self.entry, self)
