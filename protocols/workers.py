"""A pool of workers with a queue, and the bookkeeping every server does with it.

The pool is protocol-agnostic: an HTTP server puts requests in it (its accept queue
bounded by `queue_limit`), a queue consumer its deliveries, a stream server its streams.
It counts what went in and out, so queue samples and utilisation come from it. Every
server opens a span per request (`server_span`), closes it with the outcome of the
status it answers (`end_span`), and loses its jobs when its node crashes (`crash`).
The queue is served oldest first unless the pool is given another order
(`protocols.order`: LIFO, adaptive LIFO, priority). Servers of several protocols on one
node may share one pool (`WorkerPool.shared`, then `adopt` by each): an agent's workers
are its own, whatever protocol brings the request.

    pool = WorkerPool(node, workers=4, queue_limit=100, begin=handler)
    if not pool.submit(job):
        ...  # the queue is full: answer 503
    # handler(job) runs when a worker takes the job; it calls pool.done(job) at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

from protocols.call import status_outcome
from protocols.kernel import Fire
from protocols.node import Node
from protocols.order import Fifo, JobQueue, QueueOrder, make_queue
from protocols.transport import Message


class JobOwner(Protocol):
    """The protocol endpoint that took a job in and answers for it."""

    def reply(self, job: Job, status: int, error: str = "") -> None:
        """Finish the job with an HTTP-like status: answer its sender, free its worker."""
        ...


class Job:
    """A piece of work: the message that asked for it, its span, and when it ran.

    Whoever does the work ends it with `job.reply(status, error)`, whatever the
    protocol that brought it.
    """

    __slots__ = ("arrived", "cancelled", "data", "msg", "on_cancel", "owner", "span", "started")

    def __init__(
        self, owner: JobOwner, msg: Message, span: int, arrived: float, data: Any = None
    ) -> None:
        self.owner = owner
        self.msg = msg
        self.span = span
        self.arrived = arrived
        self.started = math.nan
        self.data = data
        self.cancelled = False
        # Told when the caller cancels the job, so the work can stop (and cancel its own
        # downstream calls).
        self.on_cancel: Callable[[], None] | None = None

    def reply(self, status: int, error: str = "") -> None:
        """Finish the job (see JobOwner.reply)."""
        self.owner.reply(self, status, error)

    @property
    def wait(self) -> float:
        """Time spent queued before a worker took it."""
        return self.started - self.arrived

    def waited(self, now: float) -> float:
        """Its wait when it ends at `now`, taken or not: one cancelled (or lost) before a
        worker took it waited all its life."""
        started = self.started
        return now - self.arrived if started != started else started - self.arrived


class WorkerPool:
    """N workers serving queued jobs in arrival order (or `order`); `begin` is called as
    each one starts."""

    def __init__(
        self,
        node: Node,
        workers: int,
        begin: Callable[[Job], None],
        queue_limit: int | None = None,
        order: QueueOrder | None = None,
    ) -> None:
        self.node = node
        self.workers = workers
        self.queue_limit = queue_limit
        self._begin = begin
        self.queue: JobQueue[Job] = Fifo() if order is None else make_queue(order)
        self.running: dict[int, Job] = {}
        self.enqueued = 0
        self.completed = 0
        # Workers freed while jobs were queued, promised to the queue's head: the head
        # starts from the event loop a moment later (see `done`), and a job arriving at
        # that same instant must not take the worker first.
        self.owed = 0
        # A shared pool's begin, per owner (see `adopt`); empty for a pool of one server.
        self._begins: dict[int, Callable[[Job], None]] = {}

    @classmethod
    def shared(cls, node: Node, workers: int, queue_limit: int | None = None) -> WorkerPool:
        """A pool that servers of several protocols share; each `adopt`s it."""
        pool = cls(node, workers, _unowned, queue_limit)
        pool._begin = pool._begin_by_owner
        return pool

    def adopt(self, owner: object, begin: Callable[[Job], None]) -> None:
        """Serve `owner`'s jobs too: `begin` starts each of them (a shared pool)."""
        self._begins[id(owner)] = begin
        self._begin = self._begin_by_owner

    def _begin_by_owner(self, job: Job) -> None:
        self._begins[id(job.owner)](job)

    def use_order(self, order: QueueOrder) -> None:
        """Serve the queue in `order` from now on (before any job is queued)."""
        if self.queue:
            raise RuntimeError("a pool's order changes only while its queue is empty")
        self.queue = make_queue(order)

    @property
    def depth(self) -> int:
        """Jobs waiting for a worker."""
        return len(self.queue)

    @property
    def busy(self) -> int:
        """Workers at work."""
        return len(self.running)

    def full(self) -> bool:
        """Whether a new job would be refused (every worker busy, the queue at its limit)."""
        return (
            self.queue_limit is not None
            and len(self.running) >= self.workers
            and len(self.queue) >= self.queue_limit
        )

    def submit(self, job: Job, bounded: bool = True) -> bool:
        """Take a job: start it, or queue it; False (and nothing done) when full.

        A job that is not `bounded` is never refused: a broker's delivery, already
        admitted by the consumer's prefetch, waits whatever the accept queue's limit.
        """
        running = self.running
        if (
            bounded
            and self.queue_limit is not None
            and len(running) >= self.workers
            and len(self.queue) >= self.queue_limit
        ):
            return False  # full()
        self.enqueued += 1
        # `self.node.paused` without a property call: once per request.
        if len(running) + self.owed < self.workers and self.node._paused is None:
            # _start(job), inline: once per request.
            job.started = self.node.now()
            running[id(job)] = job
            if self._begins:  # a shared pool: self._begin is _begin_by_owner, called direct
                self._begin_by_owner(job)
            else:
                self._begin(job)
        else:
            self.queue.append(job)
        return True

    def done(self, job: Job) -> None:
        """A job finished: free its worker and start the next queued job."""
        if self.running.pop(id(job), None) is None:
            return
        self.completed += 1
        if self.queue:
            # _hand_over(), inline: once per job that leaves others queued.
            self.owed += 1
            node = self.node
            if node.up:
                node.heap.push(0.0, _Handover(self, node.epoch))

    def _hand_over(self) -> None:
        """A worker is free: promise it to the queue's head, which starts from the event
        loop, not from inside this call (a chain of instant jobs would otherwise recurse
        as deep as the queue)."""
        if not self.queue:
            return
        self.owed += 1
        node = self.node
        # node.after(0.0, self._next), with its callback in `_handed`: once per queued
        # job. A node that is down schedules nothing (drain voids `owed`).
        if node.up:
            node.heap.push(0.0, _Handover(self, node.epoch))

    def _handed(self, epoch: int) -> None:
        """Node.after's callback for `_next` (from a `_Handover`): dropped if the node
        crashed since, held while it is paused."""
        node = self.node
        if epoch != node.epoch:
            return
        if node._paused is not None:
            node._deferred.append(self._next)
            return
        # _next() and _start(), inline.
        self.owed -= 1
        queue, running = self.queue, self.running
        while queue and len(running) + self.owed < self.workers:
            # Fifo.take(), inline for the default order: a Python call less per job.
            job = queue.popleft() if type(queue) is Fifo else queue.take(node.now())
            job.started = node.now()
            running[id(job)] = job
            if self._begins:  # as in `submit`
                self._begin_by_owner(job)
            else:
                self._begin(job)

    def _next(self) -> None:
        self.owed -= 1
        queue = self.queue
        while queue and len(self.running) + self.owed < self.workers:
            self._start(queue.take(self.node.now()))

    def _start(self, job: Job) -> None:
        job.started = self.node.now()
        self.running[id(job)] = job
        self._begin(job)

    def withdraw(self, job: Job) -> None:
        """Take a job out of the pool, queued or running (its caller cancelled it)."""
        if self.running.pop(id(job), None) is not None:
            self.completed += 1
            self._hand_over()
        else:
            try:
                self.queue.remove(job)
            except ValueError:
                return
            self.completed += 1

    def drain(self, owner: object = None) -> list[Job]:
        """Empty the pool (a crash): the jobs running and queued, for their owner to end;
        only `owner`'s when given (a shared pool: each server ends its own)."""
        self.owed = 0  # the hand-overs pending are void: the node's epoch has passed
        if owner is not None and self._begins:
            running = [job for job in self.running.values() if job.owner is owner]
            queued = [job for job in self.queue if job.owner is owner]
            for job in running:
                del self.running[id(job)]
            for job in queued:
                self.queue.remove(job)
            lost = running + queued
        else:
            lost = list(self.running.values()) + list(self.queue)
            self.running.clear()
            self.queue.clear()
        # They left the pool, as a withdrawn job does: its samples keep enqueued = acked
        # + queued + at work (a crash had left them counted in, never out).
        self.completed += len(lost)
        return lost

    def crash(self, attempts: bool = False, owner: object = None) -> None:
        """The node crashed: the jobs running and queued are lost, their spans end in error.

        `attempts` records each span's attempts, the attempt of the message that brought
        the job (a queue delivery's count). With `owner`, only that server's jobs.
        """
        node = self.node
        now = node.now()
        for job in self.drain(owner):
            queued = math.isnan(job.started)
            why = "crashed while queued" if queued else "crashed while serving"
            count = job.msg.attempt if attempts else None
            # One lost while queued waited until the crash.
            wait = now - job.arrived if queued else job.wait
            node.journal.span_end(job.span, "error", now, error=why, wait=wait, attempts=count)


class _Handover(Fire):
    """A worker freed while jobs were queued, handed to the queue's head from the event
    loop (`WorkerPool._handed`): the event on the heap is this object itself."""

    __slots__ = ("epoch", "pool")

    def __init__(self, pool: WorkerPool, epoch: int) -> None:
        self.pool = pool
        self.epoch = epoch

    def fire(self) -> None:
        """The hand-over's moment: the queue's head starts, unless the node crashed."""
        self.pool._handed(self.epoch)


def adopted(
    pool: WorkerPool | None, owner: object, begin: Callable[[Job], None]
) -> WorkerPool | None:
    """`pool` adopted by `owner` (its jobs begun by `begin`), or None when there is none:
    a server's constructor takes the agent's shared pool this way, else makes its own."""
    if pool is not None:
        pool.adopt(owner, begin)
    return pool


def _unowned(job: Job) -> None:
    raise RuntimeError("a shared worker pool got a job from a server that did not adopt it")


def server_span(node: Node, msg: Message, protocol: str, now: float) -> int:
    """Open the server span of request `msg` on `node`: a child of its caller's span,
    with the deadline the request arrived with (NaN when it carries none)."""
    deadline = msg.deadline
    return node.journal.span_start(
        msg.type, "server", node.id, msg.src, protocol, now, msg.span, msg.correlation_id,
        deadline if deadline != math.inf else math.nan,
    )  # fmt: skip


def end_span(
    node: Node, job: Job, status: int, error: str = "", outcome: str = ""
) -> tuple[str, str]:
    """Close `job`'s span as answered with `status` (see `status_outcome`); `outcome`, when
    given, overrides the one the status gives. Returns the span's outcome and error."""
    judged, error = status_outcome(status, error)
    outcome = outcome or judged
    node.journal.span_end(job.span, outcome, node.now(), error, wait=job.wait, status=status)
    return outcome, error
