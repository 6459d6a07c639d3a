"""The kernel's shortcuts into SimPy: the same events at the same moments as SimPy's
public API, with less work (protocols.kernel)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import simpy

from protocols import kernel
from protocols.journal import Journal
from protocols.node import Node
from protocols.transport import Message, PerfectTransport, Transport


def _clock(plain: bool) -> list[tuple[str, float, float]]:
    env = kernel.environment(plain=plain)
    assert isinstance(env, kernel.FastEnvironment) is not plain
    seen: list[tuple[str, float, float]] = []
    for delay in (1.0, 2.5, 4.0):
        env.timeout(delay).callbacks.append(lambda _e: seen.append(("fired", env.now, env._now)))
    env.run(until=2.0)
    seen.append(("ran", env.now, env._now))
    while env.peek() < 3.0:
        env.step()
        seen.append(("stepped", env.now, env._now))
    env.run()
    seen.append(("ran", env.now, env._now))
    with pytest.raises(simpy.core.EmptySchedule):
        env.step()
    return seen


def test_the_fast_environment_keeps_its_clock_through_run_and_step() -> None:
    seen = _clock(plain=False)
    assert seen == _clock(plain=True)
    assert ("fired", 2.5, 2.5) in seen and seen[-1] == ("ran", 4.0, 4.0)


def test_the_fast_run_loop_raises_what_simpy_raises() -> None:
    for plain in (True, False):
        env = kernel.environment(plain=plain)
        failed = env.event()
        failed.fail(ValueError("broken"))
        with pytest.raises(ValueError, match="broken"):
            env.run()
        env = kernel.environment(plain=plain)
        done = env.timeout(3.0, value="v")
        assert env.run(until=done) == "v" and env.now == 3.0
        with pytest.raises(RuntimeError, match="No scheduled events left"):
            env.run(until=env.event())


def _order(plain: bool, busy: bool) -> tuple[list[tuple[str, float]], int]:
    """What a process waiting on work sees, and the id of the next event after it."""
    env = kernel.environment(plain=plain)
    node = Node("a", env, PerfectTransport(env), Journal(), lambda: "id", None)  # type: ignore[arg-type]
    log: list[tuple[str, float]] = []

    def worker() -> Generator[simpy.Event, Any, None]:
        yield node.work_event(2.0)
        log.append(("worked", env.now))
        yield env.timeout(1.0)
        log.append(("slept", env.now))

    if busy:  # something else is due at the instant the work ends
        env.timeout(2.0).callbacks.append(lambda _e: log.append(("other", env.now)))
    env.process(worker())
    env.run()
    return log, next(env._eid)


def test_work_resumes_its_waiter_at_once_as_the_heap_would() -> None:
    for busy in (False, True):
        assert _order(plain=False, busy=busy) == _order(plain=True, busy=busy)
    log, _ = _order(plain=False, busy=True)
    assert log == [("other", 2.0), ("worked", 2.0), ("slept", 3.0)]


def test_settle_runs_the_callbacks_now_only_when_nothing_else_is_due() -> None:
    env = kernel.environment(plain=False)
    ran: list[float] = []
    idle = env.event()
    idle.callbacks.append(lambda _e: ran.append(env.now))
    kernel.settle(env, idle)
    assert ran == [0.0] and idle.processed and idle.ok
    # Something due now: the event waits its turn on the heap, as succeed() puts it.
    env.timeout(0.0)
    queued = env.event()
    queued.callbacks.append(lambda _e: ran.append(-1.0))
    kernel.settle(env, queued)
    assert ran == [0.0] and queued.triggered and not queued.processed
    env.run()
    assert ran == [0.0, -1.0]


def _mark(env: simpy.Environment, log: list[tuple[str, float]], name: str) -> kernel.Due:
    """A Fire (a bare Due) that notes when it fired."""
    due = kernel.Due()
    due.callbacks = [lambda _e: log.append((name, env.now))]
    return due


def _fires(plain: bool, stepped: bool) -> tuple[list[tuple[str, float]], int]:
    """Fire events and SimPy timeouts due at the same instants: the order they run in,
    and the id the next event would take."""
    env = kernel.environment(plain=plain)
    heap = kernel.Heap(env)
    log: list[tuple[str, float]] = []
    for name, delay in (("a", 1.0), ("b", 0.0), ("c", 1.0)):
        env.timeout(delay).callbacks.append(lambda _e, n=name: log.append((f"t{n}", env.now)))
        heap.push(delay, _mark(env, log, name))
    if stepped:
        while env.peek() < float("inf"):
            env.step()
    else:
        env.run()
    return log, next(env._eid)


def test_fire_events_run_where_simpy_timeouts_would_by_run_and_by_step() -> None:
    expected = _fires(plain=True, stepped=False)
    assert expected[0] == [
        ("tb", 0.0), ("b", 0.0), ("ta", 1.0), ("a", 1.0), ("tc", 1.0), ("c", 1.0),
    ]  # fmt: skip
    for plain in (True, False):
        for stepped in (True, False):
            assert _fires(plain, stepped) == expected
    with pytest.raises(ValueError, match="Negative delay"):
        kernel.Heap(kernel.environment(plain=False)).push(-1.0, _mark(simpy.Environment(), [], "x"))


class _Loopback(Transport):
    """A transport of a test's own: delivers at once, noting what it carried."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.carried: list[str] = []
        self._receivers: dict[str, Any] = {}

    def attach(self, agent: str, receive: Any, bounce: Any = None) -> None:
        self._receivers[agent] = receive

    def send(self, msg: Message) -> int:
        self.carried.append(msg.msg_id)
        self._receivers[msg.dst](msg)
        return len(self.carried) - 1


def test_a_node_runs_over_a_transport_and_journal_derived_outside_the_hot_path() -> None:
    # Transport and Journal are classes that compiled code calls directly; a test's or a
    # plugin's own (interpreted) subclass must still be called.
    env = kernel.environment(plain=False)
    transport = _Loopback(env)
    got: list[str] = []
    a = Node("a", env, transport, Journal(), lambda: "m1", None)  # type: ignore[arg-type]
    b = Node("b", env, transport, Journal(), lambda: "m2", None)  # type: ignore[arg-type]
    b.register("http", _Sink(got))  # type: ignore[arg-type]
    a.send(Message("m1", "ping", "a", "b"))
    assert transport.carried == ["m1"] and got == ["m1"]


class _Sink:
    def __init__(self, got: list[str]) -> None:
        self.got = got

    def on_message(self, msg: Message) -> None:
        self.got.append(msg.msg_id)


@pytest.mark.parametrize("plain", [False, True])
def test_a_node_reads_the_time_of_its_environment_through_run_and_step(plain: bool) -> None:
    # Node.now reads a FastEnvironment's own clock (kernel.Clock), set with its `_now`.
    env = kernel.environment(plain=plain)
    node = Node("a", env, _Loopback(env), Journal(), lambda: "m1", None)  # type: ignore[arg-type]
    seen: list[tuple[float, float]] = []
    for delay in (1.0, 2.5, 4.0):
        env.timeout(delay).callbacks.append(lambda _e: seen.append((node.now(), env.now)))
    env.run(until=2.0)
    seen.append((node.now(), env.now))
    env.step()
    seen.append((node.now(), env.now))
    env.run()
    seen.append((node.now(), env.now))
    assert [now for now, _ in seen] == [t for _, t in seen] == [1.0, 2.0, 2.0, 2.5, 4.0, 4.0]
