"""Timers that seldom fire: a SimPy event for the earliest one only, not one per timer.

A caller's read timeout is set on every call and almost never fires: the answer comes
first. A SimPy timeout per call is an event that goes on the heap, comes off it and runs
a callback that finds the call ended, for every call. `Timers` keeps the timers in a
heap of its own and puts on SimPy's heap only the earliest one still pending.

The order of events is exactly the one a timeout per timer would give. SimPy orders its
events by (time, priority, event id), and the id is a counter taken when the event is
made; a timer takes its id from that counter when it is set, as its timeout would have,
and its event goes on SimPy's heap, with that id, before its time comes. The ids of all
other events stay what they were, so nothing else moves either.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import NORMAL

# (when, SimPy event id, target): the target's `result` is not None once the timer is moot.
Entry = tuple[float, int, Any]
# Schedules `callback(event)` after a delay (see `scheduler`).
Later = Callable[[float, Callable[[Any], None]], None]


class Due:
    """A bare timeout: what SimPy's loop reads of an event it processes, nothing more.

    Made by `scheduler` without `Timeout.__init__` and `Environment.schedule`, two
    Python calls per event; nothing yields it or asks its value.
    """

    __slots__ = ("callbacks",)
    # Read by Environment.step for every event (a failed event raises).
    _ok = True
    _value = None


def scheduler(env: simpy.Environment) -> Later:
    """A function `later(delay, callback)` that does what
    `env.timeout(delay).callbacks.append(callback)` does, a few times faster.

    The event goes on SimPy's heap with the time, priority and id that the timeout would
    have (its id taken from the same counter at the same moment), so the order of every
    event is the same; only the object on the heap is smaller. A SimPy without the
    internals this needs gets the timeout.
    """
    if not all(hasattr(env, name) for name in ("_now", "_eid", "_queue")):

        def timeout(delay: float, callback: Callable[[Any], None]) -> None:
            env.timeout(delay).callbacks.append(callback)

        return timeout
    queue, eid = env._queue, env._eid

    def later(delay: float, callback: Callable[[Any], None]) -> None:
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        event = Due()
        event.callbacks = [callback]
        heappush(queue, (env._now + delay, NORMAL, next(eid), event))

    return later


class Timers:
    """Timers on one SimPy environment that call `expire(target, event)` when due.

    A timer whose target has ended (its `result` is set) by the time it is due does
    nothing, as a timeout whose callback finds the call ended.
    """

    def __init__(self, env: simpy.Environment, expire: Callable[[Any, simpy.Event], None]):
        self.env = env
        self._expire = expire
        self._heap: list[Entry] = []
        # Event ids of the entries with an event on SimPy's heap that has not fired yet.
        self._armed: set[int] = set()
        # A SimPy without these internals gets a plain timeout per timer.
        self._lazy = all(hasattr(env, name) for name in ("_now", "_eid", "_queue"))

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
        entry = (env._now + delay, next(env._eid), target)
        heap = self._heap
        heappush(heap, entry)
        if heap[0] is entry:
            self._arm(entry)

    def _arm(self, entry: Entry) -> None:
        when, eid, _ = entry
        event = simpy.Event(self.env)
        event._ok = True
        event._value = entry
        event.callbacks.append(self._fire)
        self._armed.add(eid)
        heappush(self.env._queue, (when, NORMAL, eid, event))

    def _fire(self, event: simpy.Event) -> None:
        entry = event._value
        self._armed.discard(entry[1])
        heap = self._heap
        due = None
        # Everything before this entry has fired or has ended; drop it, and the ended
        # timers that now lead, so the next pending one can be armed.
        while heap:
            top = heap[0]
            if top is entry:
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
