"""The driver of a plugin role's code: runs a handler (or `main`, or `on_session`) as a
SimPy process on the agent's node would, without the process.

Compiled with the hot path when built (`protocols.compiled`): a plugin agent serves each
request through one `Driver`, so its steps are the plugin path's per-request cost. It is
a `kernel.Fire`: its first step is its own urgent event on the heap (no `Due`, list of
callbacks or closure per request). The agent and the context it drives are the
interpreted `PluginAgent` and `AgentContext` (`sim.agents.plugin`), reached through
what they are (`Any`) since that module imports this one; the code it runs is the
user's, called, never subclassed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from heapq import heappush
from types import GeneratorType
from typing import Any

import simpy
from simpy.core import URGENT

from protocols.http.wire import HttpRequest
from protocols.kernel import Fire, next_of, outcome, start_soon
from protocols.node import Node
from protocols.workers import Job
from sim.agents.api import CallError, Request
from sim.agents.plugin_calls import Wrapped
from sim.agents.plugin_host import Raising
from sim.agents.roles import POISON, Agent

# Not in an agent's cache of handlers by type yet (None there: the type has none).
_UNKNOWN: Any = object()


class Driver(Fire):
    """Runs a handler's (or `main`'s) code as a SimPy process on the agent's node would,
    without the process: its first step from an urgent event, each next one from the
    callback of the event it yielded, a crash or a cancellation raising simpy.Interrupt
    in it from an urgent event, all at the moments a process would (so every trace is
    the same), but without a Process, its Initialize and end events and three generator
    frames per step; a request is served at a built-in service's cost.

    What it does with the code: the value each event fires with goes back into it; a
    call's CallError is raised where it waits; a failed event of its own raises its
    error there; anything but an event raises a TypeError there; after each event it
    waits out a pause. It answers a request with the code's return value, records its
    exception (`PluginAgent._raised`), and cancels its calls when it is cancelled.
    """

    def __init__(self, agent: Any, code: Callable[..., Any], ctx: Any, what: str,
                 args: tuple[Any, ...]) -> None:  # fmt: skip
        self.agent = agent
        node: Node = agent.node
        self.node = node
        self.code = code
        self.ctx = ctx
        self.what = what
        self.args = args
        self.gen: Generator[Any, Any, Any] | None = None
        self.alive = True
        # The event it waits on and the callback it left there (an interrupt takes it back).
        self.target: simpy.Event | None = None
        self.waiter: Callable[[Any], None] | None = None
        self.key = node.track(self)
        heap = node.heap
        if heap.native:
            # start_soon(env, ...) as an event of its own: the urgent entry, time and id
            # SimPy's Initialize event of a process would take.
            env: Any = heap.env
            # SimPy types its heap as holding Events; a Fire stands in for one (kernel).
            heappush(heap.queue, (env._now, URGENT, next_of(heap.eid), self))  # type: ignore[misc]
        else:
            start_soon(node.env, self.step)

    @property
    def is_alive(self) -> bool:
        """Whether the code has not ended."""
        return self.alive

    def interrupt(self, cause: Any = None) -> None:
        """Raise simpy.Interrupt(cause) in the code, from an urgent event, as SimPy's
        Process.interrupt does."""
        if self.alive:
            start_soon(self.node.env, lambda _event: self._interrupted(cause))

    def cancel(self) -> None:
        """The caller cancelled the request: stop the code and cancel its calls."""
        self.interrupt("cancelled")

    def _interrupted(self, cause: Any) -> None:
        if not self.alive:
            return  # it ended before the interrupt came
        target, waiter = self.target, self.waiter
        if target is not None and waiter is not None and target.callbacks is not None:
            target.callbacks.remove(waiter)
        self.target = self.waiter = None
        self._step(None, simpy.Interrupt(cause))

    def fire(self) -> None:
        """Its first step: call the code."""
        try:
            result = self.code(self.ctx, *self.args)
        except Exception as exc:
            self._end()
            self.agent._raised(self.ctx, exc, self.what)
            self.ctx._finish()
            return
        if isinstance(result, GeneratorType):  # inspect.isgenerator(), a call less
            self.gen = result
            self._step(None, None)
        else:
            self._end()
            self._answer(result)
            self.ctx._finish()

    def _end(self) -> None:
        self.alive = False
        self.node.untrack(self.key)
        job = self.ctx._job
        if job is not None:
            # Nothing is left to cancel. The job's hook to this driver (which holds the
            # context, which holds the job) would otherwise keep the three in a reference
            # cycle, for the garbage collector to find, once per request.
            job.on_cancel = None

    def _answer(self, result: Any) -> None:
        ctx = self.ctx
        if ctx._job is not None and not ctx.responded:
            ctx.respond(200, result)

    def _step(self, value: Any, error: BaseException | None) -> None:
        """Resume the code with `value` (or raise `error` in it) until it waits on an
        event that has not fired yet, or ends."""
        gen = self.gen
        assert gen is not None
        while True:
            try:
                item = gen.throw(error) if error is not None else gen.send(value)
            except StopIteration as stop:
                self._end()
                ctx = self.ctx
                # _answer(), ctx.respond(200, stop.value) and _finish()'s test, inline:
                # once per request (respond's checks hold for a 200 not answered yet).
                job = ctx._job
                if job is not None and not ctx.responded:
                    ctx.responded = True
                    reply = ctx._reply
                    if reply is not None:
                        answers = self.agent.ctx.answers
                        if reply in answers:
                            answers[reply] = stop.value
                    job.owner.reply(job, 200, "")
                if ctx._open or ctx._session is not None:
                    ctx._finish()
                return
            except simpy.Interrupt as interrupt:
                self._end()
                if interrupt.cause == "cancelled":
                    self.ctx._cancel_calls()
                return  # a crash: the endpoints already recorded what it lost
            except Exception as exc:
                self._end()
                self.agent._raised(self.ctx, exc, self.what)
                self.ctx._finish()
                return
            if not isinstance(item, simpy.Event):
                hint = " (use 'yield from' for a helper generator)"
                hint = hint if inspect.isgenerator(item) else ""
                value, error = (
                    None,
                    TypeError(
                        f"a handler yields what ctx gives (work, sleep, call, fanout) or a "
                        f"SimPy event, not {item!r}{hint}"
                    ),
                )
                continue
            callbacks = item.callbacks
            if callbacks is not None:
                resume = self._resume
                self.target, self.waiter = item, resume
                callbacks.append(resume)
                return
            # It has fired and been processed already: its outcome at once, as a process
            # takes it.
            if not item.ok:
                item.defused = True
                value, error = None, item.value
                continue
            value = item.value
            if self.node._paused is not None:
                self._hold(item, value)
                return
            if isinstance(item, Raising) and isinstance(value, CallError):
                value, error = None, value

    def _resume(self, event: simpy.Event) -> None:
        self.target = self.waiter = None
        # It has been processed (this is its callback), so its outcome is set.
        ok, value = outcome(event)
        if not ok:
            # An event of the code's own failed: its error is raised where it waits.
            event.defused = True
            self._step(None, value)
            return
        if self.node._paused is not None:
            self._hold(event, value)
            return
        if isinstance(event, Raising) and isinstance(value, CallError):
            self._step(None, value)
        else:
            self._step(value, None)

    def _hold(self, event: simpy.Event, value: Any) -> None:
        """Wait while the node is paused, on the pause's event, then go on with `value`."""
        pause = self.node._paused
        assert pause is not None

        def unpaused(_pause: Any) -> None:
            self.target = self.waiter = None
            if self.node._paused is not None:
                self._hold(event, value)  # another pause began meanwhile
            elif isinstance(event, Raising) and isinstance(value, CallError):
                self._step(None, value)
            else:
                self._step(value, None)

        self.target, self.waiter = pause, unpaused
        pause.callbacks.append(unpaused)


class Serve:
    """A plugin agent's handling of a job its worker pool starts (`PluginAgent._handle`):
    the request its code sees, a context bound to it, and a `Driver` that runs the
    handler for its type (`code`: a consumed queue's own handler instead). A poison
    message and a type without a handler go back to the agent."""

    def __init__(self, agent: Any, context: Callable[..., Any]) -> None:
        self.agent = agent
        self.base: Agent = agent
        # AgentContext (sim.agents.plugin, which imports this module).
        self.context = context
        self.handlers: dict[str, Callable[..., Any] | None] = agent._handlers

    def __call__(self, job: Job, code: Callable[..., Any] | None = None) -> None:
        """Serve `job`."""
        agent = self.agent
        # _injected_error()'s test and payload_of(), inline: once per request.
        if self.base._faults.errors and self.base._injected_error(job):
            return
        msg = job.msg
        body = msg.body
        if isinstance(body, HttpRequest):
            body = body.payload
        reply = None
        if isinstance(body, Wrapped):
            body, reply = body.data, body.reply
        # Request(...) without the frozen dataclass's object.__setattr__ per field (eight
        # calls per request): the same fields, in the same order, in its __dict__.
        request: Any = object.__new__(Request)
        request.__dict__.update(type=msg.type, body=body, src=msg.src, protocol=msg.protocol,
                                correlation_id=msg.correlation_id, msg_id=msg.msg_id,
                                deadline=msg.deadline, version=msg.version)  # fmt: skip
        if body == POISON:
            agent._poisoned(job, request, reply)
            return
        # _handler()'s cache, inline: once per request.
        handler = code if code is not None else self.handlers.get(msg.type, _UNKNOWN)
        if handler is _UNKNOWN:
            handler = agent._handler(msg.type)
        if handler is None:
            job.reply(501, f"role '{agent.role}' has no handler for '{msg.type}'")
            return
        driver = Driver(agent, handler, self.context(agent, job, request, reply), msg.type,
                        (request,))  # fmt: skip
        job.on_cancel = driver.cancel
