"""The order in which a worker pool serves its queue: FIFO, LIFO, adaptive LIFO, priority.

Every discipline is non-preemptive: a request at work is never interrupted, only the
choice of the next queued request changes. A free worker takes

- `fifo` (the default): the oldest request;
- `lifo`: the newest;
- `adaptive_lifo`: the oldest while it has waited at most `threshold_s`, else the newest.
  Facebook's services do this: "During normal operating conditions, requests are
  processed in FIFO order, but when a queue is starting to form, the server switches to
  LIFO mode", so that under overload the requests served are the fresh ones whose
  callers still wait (Ben Maurer, "Fail at Scale", ACM Queue 13(8), 2015,
  https://queue.acm.org/detail.cfm?id=2839461). The oldest request's age is the signal
  the queue is forming; the paper pairs it with a CoDel variant that sheds requests
  queued too long, which is not modelled here (a server's own `drop_expired` sheds
  requests whose deadline has passed, in every discipline);
- `priority`: the request of the lowest priority level, FIFO within a level (a
  non-preemptive priority queue, Cobham 1954). The level is read from a field of the
  request message: its `type`, its sender (`src`), its delivery `attempt`, or a key of
  its payload (`body.<key>`).

A server that drops expired requests does so when a worker takes one (see
`protocols.http.server.HttpServer.begin`), so it works the same whatever the order.

    pool.use_order(QueueOrder(discipline="priority", priorities={"task.urgent": 0}))
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols.transport import Message

Discipline = Literal["fifo", "lifo", "adaptive_lifo", "priority"]
# Settings that mean something under one discipline only, and that discipline.
_ONLY_UNDER = {
    "threshold_s": "adaptive_lifo",
    "priority_field": "priority",
    "priorities": "priority",
    "default_priority": "priority",
}


class QueueOrder(BaseModel):
    """Which queued request a free worker takes next (see the module's docstring)."""

    model_config = ConfigDict(extra="forbid")

    discipline: Discipline = Field(
        "fifo",
        description="fifo: oldest first; lifo: newest first; adaptive_lifo: oldest first "
        "until the oldest has waited threshold_s, then newest first (Facebook's adaptive "
        "LIFO); priority: lowest priority level first, oldest first within a level.",
    )
    threshold_s: float = Field(
        0.1,
        gt=0,
        allow_inf_nan=False,
        description="adaptive_lifo: seconds the oldest queued request may wait before the "
        "pool serves newest first (Fail at Scale's 100 ms).",
    )
    priority_field: str = Field(
        "type",
        pattern=r"^(type|src|attempt|body\.[A-Za-z_][A-Za-z0-9_]*)$",
        description="priority: the request field that gives its level: type, src "
        "(the sender), attempt (the delivery count) or body.<key> (a payload key).",
    )
    priorities: dict[str, int] = Field(
        default_factory=dict,
        description="priority: the level of each value of the field (lower is served "
        "first); a value not listed that is a number is its own level.",
    )
    default_priority: int = Field(
        0,
        description="priority: the level of a request whose value is neither listed nor a number.",
    )

    @model_validator(mode="after")
    def _settings_of_its_discipline(self) -> QueueOrder:
        # A field left at its default is not a choice: a saved scenario (every field
        # written out) must load again.
        for name in sorted(self.model_fields_set):
            needs = _ONLY_UNDER.get(name)
            default = type(self).model_fields[name].get_default(call_default_factory=True)
            if needs is not None and needs != self.discipline and getattr(self, name) != default:
                raise ValueError(
                    f"{name} applies only to discipline {needs}, not {self.discipline}"
                )
        return self


class Waiting(Protocol):
    """What a discipline reads of a queued request: when it arrived, and its message."""

    @property
    def arrived(self) -> float:
        """Simulated time it joined the queue."""
        ...

    @property
    def msg(self) -> Message:
        """The request message that brought it."""
        ...


T = TypeVar("T", bound=Waiting)


class JobQueue(Protocol[T]):
    """A pool's queue: requests go in with `append`, a free worker's comes out of `take`."""

    def append(self, item: T, /) -> None:
        """Queue a request."""
        ...

    def take(self, now: float) -> T:
        """Take the request a worker free at `now` serves next (the queue is not empty)."""
        ...

    def remove(self, item: T, /) -> None:
        """Take this request out (its caller cancelled it); ValueError if not queued."""
        ...

    def clear(self) -> None:
        """Empty the queue."""
        ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[T]: ...


class Fifo(deque[T]):
    """Oldest first: a deque, so the default order costs what it did before."""

    def take(self, now: float) -> T:
        """The oldest request."""
        return self.popleft()


class Lifo(deque[T]):
    """Newest first."""

    def take(self, now: float) -> T:
        """The newest request."""
        return self.pop()


class AdaptiveLifo(deque[T]):
    """Oldest first while the oldest has waited at most `threshold` seconds, else newest."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def take(self, now: float) -> T:
        """The oldest request, or the newest once the oldest is older than the threshold."""
        return self.pop() if now - self[0].arrived > self.threshold else self.popleft()


class Priority(Generic[T]):
    """Lowest level first, FIFO within a level; `level(item)` must not change while queued."""

    def __init__(self, level: Callable[[T], float]) -> None:
        self._level = level
        self._levels: dict[float, deque[T]] = {}
        self._size = 0

    def append(self, item: T, /) -> None:
        """Queue a request behind the others of its level."""
        level = self._level(item)
        queue = self._levels.get(level)
        if queue is None:
            queue = self._levels[level] = deque()
        queue.append(item)
        self._size += 1

    def take(self, now: float) -> T:
        """The oldest request of the lowest level."""
        # Levels are few (one per class of request), so a scan beats a heap.
        level = min(self._levels)
        queue = self._levels[level]
        item = queue.popleft()
        if not queue:
            del self._levels[level]
        self._size -= 1
        return item

    def remove(self, item: T, /) -> None:
        """Take this request out; ValueError if it is not queued."""
        level = self._level(item)
        queue = self._levels.get(level)
        if queue is None:
            raise ValueError("not queued")
        queue.remove(item)
        if not queue:
            del self._levels[level]
        self._size -= 1

    def clear(self) -> None:
        """Empty the queue."""
        self._levels.clear()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[T]:
        for level in sorted(self._levels):
            yield from self._levels[level]


def make_queue(order: QueueOrder) -> JobQueue[Any]:
    """An empty queue that serves in `order`."""
    if order.discipline == "lifo":
        return Lifo()
    if order.discipline == "adaptive_lifo":
        return AdaptiveLifo(order.threshold_s)
    if order.discipline == "priority":
        return Priority(priority_level(order))
    return Fifo()


def priority_level(order: QueueOrder) -> Callable[[Waiting], float]:
    """The function that gives a queued request its level under `order`."""
    field, priorities, default = order.priority_field, order.priorities, order.default_priority
    key = field.removeprefix("body.") if field.startswith("body.") else None

    def level(item: Waiting) -> float:
        msg = item.msg
        value = _payload_field(msg.body, key) if key is not None else getattr(msg, field)
        listed = priorities.get(str(value))
        if listed is not None:
            return listed
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return value
        return default

    return level


def _payload_field(body: Any, key: str) -> Any:
    # A protocol may wrap the application payload (an HTTP request's `payload`).
    payload = getattr(body, "payload", body)
    if isinstance(payload, Mapping):
        return payload.get(key)
    return getattr(payload, key, None)
