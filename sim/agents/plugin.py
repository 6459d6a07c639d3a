"""Plugin roles at run time: the agent that hosts a registered class, and the `ctx` its
code yields on.

`PluginAgent` serves every protocol that reaches it, as a service does, with the
agent's `workers`: each request a worker takes runs the class's handler for its type
as a process on the agent's node (`_Driver`: a crash interrupts it, a pause holds it), with an
`AgentContext` bound to that request. Everything it does goes through the same
machinery as the built-in roles, so it lands in the trace the same way: the server span
per request is the protocol server's, `ctx.call` goes through `Agent.call` (the
channel's deadline, breaker, throttle and retries), `ctx.fanout` is
`protocols.resilience.FanOut`.

An exception raised by the class's code ends the request with a 500 whose span error
is `raised <Type>: <message> (at file:line)`; the run goes on. With `strict` the first
one stops the run and `sim.run` raises it again, with its traceback.

A call's answer carries its body beside the protocol's response (which carries only a
status): the caller leaves a key in `Context.answers` with the request, the responder
puts the body under it, and the caller takes it when its call ends.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import simpy
from pydantic import BaseModel, TypeAdapter

from protocols.call import Call, CallResult
from protocols.queue import Deduper, QueueServer
from protocols.resilience import FanOut, FanOutSettings, Policies
from protocols.schemas import Rejected, SchemaRegistry, default_registry
from protocols.workers import Job, WorkerPool
from sim import scenario as sc
from sim.agents.api import (
    CallError,
    FanOutResult,
    Readable,
    Request,
    Response,
    Unreadable,
    declared_handlers,
    method_name,
    result_of,
)
from sim.agents.context import Context
from sim.agents.endpoints import served_protocols
from sim.agents.plugin_calls import NO_BODY as _NO_BODY
from sim.agents.plugin_calls import CallEvent, Wrapped
from sim.agents.plugin_driver import Driver as _Driver
from sim.agents.plugin_driver import Serve as _Serve
from sim.agents.plugin_queue import PluginQueues, PublishEvent
from sim.agents.plugin_session import Session, SessionDesk
from sim.agents.plugin_span import Span
from sim.agents.plugin_stream import PROGRESS, Stream, StreamDesk, emit
from sim.agents.roles import Agent
from sim.distributions import Distribution
from sim.draws import draw_of
from sim.plugins import BUILTIN_ROLES, HOSTED_ROLES, PluginRole

# The prefix of a span error that an exception in plugin code caused (the summary
# counts them as `exceptions`).
RAISED = "raised "
POISONED = "poison message: the handler failed"
_DISTRIBUTION: TypeAdapter[Any] = TypeAdapter(Distribution)
_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class AgentContext:
    """What a plugin role's handler (or `main`) yields on: one per request served."""

    def __init__(self, agent: PluginAgent, job: Job | None, request: Request | None,
                 reply: str | None) -> None:  # fmt: skip
        self._agent = agent
        self._job = job
        self.request = request
        self._reply = reply
        self.responded = False
        # This request's calls in flight: a cancelled request cancels them.
        self._calls: dict[int, CallEvent] = {}
        # Its streams and sessions: closed when it is cancelled or ends (sessions).
        self._open: list[Stream | Session] = []
        # The session `on_session` serves (its code's context has no request).
        self._session: Session | None = None
        # The code's own spans it is inside (`with ctx.span(...)`): the innermost is the
        # parent of what it starts.
        self._parents: list[Span] = []

    # -- who and when ------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The agent's id."""
        return self._agent.id

    @property
    def spec(self) -> sc.Agent:
        """The agent as the scenario describes it (workers, calls, version, ...)."""
        return self._agent.spec

    @property
    def settings(self) -> BaseModel | None:
        """The agent's `settings:` block, validated by its role's model."""
        return self._agent.settings

    @property
    def now(self) -> float:
        """Simulated seconds since the run began."""
        return float(self._agent.ctx.env.now)

    @property
    def time_left(self) -> float:
        """Seconds until the request's deadline (inf without one, or in `main`)."""
        if self.request is None:
            return math.inf
        return self.request.deadline - self._agent.ctx.env.now

    @property
    def rng(self) -> random.Random:
        """This agent's own seeded random stream (`agent:<id>`): never `random`."""
        return self._agent.rng

    @property
    def state(self) -> dict[str, Any]:
        """The agent's memory, lost when it crashes."""
        return self._agent.state

    @property
    def durable(self) -> dict[str, Any]:
        """The agent's durable store, kept across crashes."""
        return self._agent.durable

    @property
    def scenario(self) -> sc.Scenario:
        """The run's scenario as validated (its agents, channels, ...): to read, not change."""
        return self._agent.ctx.scenario

    @property
    def version(self) -> int:
        """The message version the agent speaks: every message it sends from now on
        carries it (set it to model an upgrade; a crash does not undo it)."""
        return self._agent.node.version

    @version.setter
    def version(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"version must be an integer >= 1, got {value!r}")
        self._agent.node.version = value

    # -- time --------------------------------------------------------------------------

    def work(self, seconds: float | dict[str, Any] | BaseModel | None = None) -> simpy.Event:
        """Spend processing time: `seconds`, a draw from a distribution (a dict such as
        `{"dist": "exponential", "mean": 0.2}`), or, without an argument, a draw from the
        agent's `service_time`. Draws come from the agent's service-time stream, and an
        overload fault stretches the work, as for a service. A pause freezes it."""
        agent = self._agent
        # draw(None), inline: a handler's plain `ctx.work()`, once per request.
        work = float(agent._work_draw.draw()) if seconds is None else agent.draw(seconds)
        faults = agent.ctx.faults
        if faults.overload:
            work *= faults.service_factor(agent.id)
        return agent.node.work_event(work)

    def sleep(self, seconds: float) -> simpy.Event:
        """Wait `seconds` without working (a pause holds the wake-up)."""
        if not seconds >= 0:
            raise ValueError(f"sleep() needs seconds >= 0, got {seconds!r}")
        done = self._agent.ctx.env.event()
        self._agent.node.after(seconds, done.succeed)
        return done

    def draw(self, seconds: float | dict[str, Any] | BaseModel | None = None) -> float:
        """A draw of seconds as `work` would spend them (from the distribution given, or
        the agent's `service_time`, on the same stream), without spending them: to split
        one piece of work into parts (`yield ctx.work(total / 3)`) or to decide on it."""
        return self._agent.draw(seconds)

    def event(self) -> simpy.Event:
        """A new event of the code's own: one handler yields it (`yield done |
        ctx.sleep(5)`), another fires it (`done.succeed(value)`): how the requests an
        agent serves at once wait for each other."""
        return self._agent.ctx.env.event()

    def span(
        self, name: str, peer: str | None = None, protocol: str = "plugin", kind: str = "internal"
    ) -> Span:
        """Open a span of the code's own (a step of its work, on the record): `with
        ctx.span("review", peer="critic") as s:` makes it the parent of what the block
        starts, and ends it when the block ends (`ok`, or `error` with the exception's
        text; `s.end(outcome, error, attempts=, status=, answered=)` first decides). See
        `sim.agents.plugin_span`."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"span() needs a name, got {name!r}")
        if kind not in ("internal", "client", "server", "producer", "consumer"):
            raise ValueError(f"span() kind must be internal, client, server, producer or "
                             f"consumer, got {kind!r}")  # fmt: skip
        agent = self._agent
        parent, cid, _, _ = self._lineage()
        journal = agent.node.journal
        span = journal.span_start(name, kind, agent.id, peer if peer is not None else agent.id,
                                  protocol, agent.ctx.env.now, parent, cid)  # fmt: skip
        return Span(self, journal, span, cid)

    # -- calls -------------------------------------------------------------------------

    def call(
        self,
        dst: str,
        type: str,
        body: Any = None,
        protocol: str | None = None,
        size_bytes: int = 256,
    ) -> CallEvent:
        """Call `dst` over the scenario's channel to it, through its policies. `yield`
        it: it gives the Response, or raises CallTimeout, CallRejected or CallFailed (all
        CallError). `protocol`, if given, must be the channel's."""
        agent = self._agent
        agent.check_protocol(dst, protocol)
        event = CallEvent(agent.ctx.env, dst)
        calls = self._calls
        key = id(event)

        def done(outcome: Response | CallError) -> None:
            calls.pop(key, None)
            event.succeed(outcome)

        parent, cid, cause, deadline = self._lineage()
        event.call = agent.start_call(dst, type, body, parent, cid, cause, deadline,
                                      size_bytes, done)  # fmt: skip
        if not event.triggered:
            calls[key] = event
        return event

    def fanout(
        self,
        calls: Iterable[tuple[Any, ...]],
        policy: str = "all",
        k: int | None = None,
        deadline: float | None = None,
        name: str = "fanout",
    ) -> simpy.Event:
        """Call several agents at once: `calls` is a list of `(dst, type)` or
        `(dst, type, body)`. `yield` it for a FanOutResult once the policy (`all`,
        `quorum` with `k`, `first`, `partial_at_deadline` with `deadline`) decides; it
        does not raise. Calls still running then go on, as in the built-in fan-out."""
        agent = self._agent
        settings = FanOutSettings.model_validate({"policy": policy, "k": k, "deadline": deadline})
        specs = [_call_spec(c) for c in calls]
        results: list[Response | CallError | None] = [None] * len(specs)
        for dst, _, _ in specs:
            agent.check_protocol(dst, None)
        _, cid, cause, incoming = self._lineage()
        finished = agent.ctx.env.event()

        def start(i: int, parent: int) -> Call:
            dst, type_, body = specs[i]

            def done(outcome: Response | CallError) -> None:
                results[i] = outcome

            return agent.start_call(dst, type_, body, parent, cid, cause, incoming, 256, done)

        def ended(result: tuple[str, int, str]) -> None:
            outcome, answered, error = result
            finished.succeed(FanOutResult(outcome, answered, error, list(results)))

        parent = self._lineage()[0]
        FanOut(agent.node, name, cid, len(specs), start, settings, parent, on_done=ended)
        return finished

    def stream(self, dst: str, type: str, body: Any = None, size_bytes: int = 256) -> Stream:
        """Call `dst` over its SSE channel, through its policies, and read the events it
        sends as they arrive: `ev = yield s.next()` (None at the end), then `answer =
        yield s.done()`; both raise the CallError a failed call would. See
        `sim.agents.plugin_stream`."""
        agent = self._agent
        stream = Stream(agent, agent.stream_desk, dst, type, body, self._lineage(), size_bytes)
        self._keep(stream)
        return stream

    def emit(self, data: Any = None, event: str = PROGRESS) -> int:
        """Send one event (`data`, named `event`) to the caller of the request this
        handler serves, now; only a request that came over SSE has a stream for it
        (anything else raises). The handler's answer ends the stream. Gives the event's
        id on the stream."""
        return emit(self._job, self.responded, data, event)

    def connect(self, dst: str, timeout: float | None = None) -> simpy.Event:
        """Open a WebSocket session to `dst` over its channel: `ws = yield
        ctx.connect(dst)` gives a Session (`send`, `receive`, `close`) once `dst`'s
        `on_session` runs it; raises CallTimeout or CallFailed if it does not. See
        `sim.agents.plugin_session`."""
        agent = self._agent
        opening = agent.session_desk.connect(dst, self._lineage(), timeout)
        opening.callbacks.append(self._opened)
        return opening

    def _opened(self, event: simpy.Event) -> None:
        if isinstance(event.value, Session):
            self._keep(event.value)

    def _keep(self, item: Stream | Session) -> None:
        # Those over are let go: a main loop may open streams for the whole run.
        self._open = [i for i in self._open if not i.closed]
        self._open.append(item)

    def _lineage(self) -> tuple[int, str, str, float]:
        """(parent span, correlation id, causation id, incoming deadline) of a call."""
        job = self._job
        parents = self._parents
        if job is None:
            session = self._session
            if session is not None:
                parent = parents[-1].id if parents else session.span
                return parent, session.correlation_id, session.causation_id, math.inf
            # main's: a new trace per call, but under its own span (one trace) if any.
            if parents:
                return parents[-1].id, parents[-1].correlation_id, "", math.inf
            return -1, self._agent.new_correlation_id(), "", math.inf
        msg = job.msg
        parent = parents[-1].id if parents else job.span
        return parent, msg.correlation_id, msg.msg_id, msg.deadline

    # -- queues (sim.agents.plugin_queue) -----------------------------------------------

    def publish(
        self,
        to: str,
        type: str,
        body: Any = None,
        correlation_id: str | None = None,
        reply: bool = False,
        size_bytes: int = 256,
    ) -> PublishEvent:
        """Publish one message to agent `to`'s queue (over the queue channel to it) or to
        the queue named `to`, through the broker. `yield` it for a `Published` once the
        broker confirmed it; it raises CallFailed when no confirm came. With `reply=True`
        the consumer answers to this agent's response queue: `yield ctx.wait_reply(it)`."""
        return self._agent.queues.publish(self, to, type, body, correlation_id, reply,
                                          size_bytes)  # fmt: skip

    def consume(
        self, queue: str, handler: Callable[..., Any] | None = None, prefetch: int | None = None
    ) -> str:
        """Consume `queue` with the agent's workers: each delivery runs `handler(ctx,
        request)` (else the role's handler for its type); acked when it returns, left to
        the queue's `on_error` when it raises. Consuming a queue again changes nothing."""
        return self._agent.queues.consume(queue, handler, prefetch)

    def wait_reply(self, sent: PublishEvent | str, timeout: float | None = None) -> CallEvent:
        """`yield` it for the reply to a publish made with `reply=True` (or its msg_id): a
        Response, or CallTimeout after `timeout` (the channel's when None) or at the
        request's deadline, or CallFailed for an error status or a publish never
        confirmed."""
        return self._agent.queues.wait_reply(self, sent, timeout)

    # -- answering ---------------------------------------------------------------------

    def respond(self, status: int = 200, body: Any = None, error: str = "") -> None:
        """Answer the request now (a handler's return value answers 200 otherwise);
        `error` is the span's error for a non-2xx status. The request's worker is free
        from here on."""
        job = self._job
        if job is None:
            raise RuntimeError(
                "respond() answers a request, and main() or on_session() serves none"
            )
        if self.responded:
            raise RuntimeError(f"request {job.msg.msg_id} has already been answered")
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"respond() needs an HTTP status from 100 to 599, got {status!r}")
        self.responded = True
        answers, reply = self._agent.ctx.answers, self._reply
        if reply is not None and reply in answers:
            answers[reply] = body
        job.owner.reply(job, status, error)  # Job.reply, a call less

    def dead_letter(self, reason: str) -> None:
        """Refuse the request for good, whatever its queue's `on_error`: a request that
        came from a queue goes to the dead-letter queue with `reason` (its span
        `rejected`). Only a queue's delivery can be dead-lettered; anything else raises."""
        job = self._job
        if job is None or not isinstance(job.owner, QueueServer):
            what = "main() or on_session()" if job is None else f"a request over {job.msg.protocol}"
            raise RuntimeError(f"dead_letter() refuses a queue's delivery, and {what} is none")
        if self.responded:
            raise RuntimeError(f"request {job.msg.msg_id} has already been answered")
        if not isinstance(reason, str) or not reason:
            raise ValueError("dead_letter() needs a reason (one sentence, for the DLQ)")
        self.responded = True
        job.owner.dead_letter(job, reason)

    def read(self, request: Request, reads: Iterable[int] | None = None) -> Readable:
        """Read `request`'s body through the schema registry (`protocols.schemas`): as
        its type at the version its sender speaks (`request.version`), converted to one
        of the versions in `reads` (None: as sent). Gives a `Readable` (`data` a dict,
        `version`, `converted`); raises `Unreadable` (with `reason`) when the body is
        not valid for its version or cannot be converted."""
        read = self._agent.schemas.accept(request.type, request.version, request.body, reads)
        if isinstance(read, Rejected):
            raise Unreadable(read.reason)
        return Readable(read.data.model_dump(), read.version, read.converted)

    def _cancel_calls(self) -> None:
        for event in list(self._calls.values()):
            if event.call is not None:
                self._agent.cancel(event.dst, event.call)
        self._calls.clear()
        self._finish()

    def _finish(self) -> None:
        """The code is over (or cancelled): close its sessions, stop its streams."""
        for item in self._open:
            item.abandon()
        self._open.clear()
        if self._session is not None:
            self._session.close()


def _call_spec(item: Any) -> tuple[str, str, Any]:
    if isinstance(item, tuple | list) and len(item) in (2, 3):
        dst, type_ = item[0], item[1]
        body = item[2] if len(item) == 3 else None
        if isinstance(dst, str) and isinstance(type_, str):
            return dst, type_, body
    raise TypeError(f"fanout() takes (dst, type) or (dst, type, body) items, got {item!r}")


def raised_text(exc: BaseException) -> str:
    """A span's error for an exception in plugin code: its type, text and the line of
    the plugin's code it came from (the file's name only, so traces do not depend on
    where the code sits)."""
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if not os.path.abspath(frame.filename).startswith(_HERE):
            where = f" (at {os.path.basename(frame.filename)}:{frame.lineno})"
            break
    text = str(exc)
    return f"{RAISED}{type(exc).__name__}{': ' + text if text else ''}{where}"


class PluginAgent(Agent):
    """An agent whose behaviour is a registered class's code (see the module)."""

    role = "plugin"

    def __init__(self, ctx: Context, spec: sc.Agent, entry: PluginRole) -> None:
        super().__init__(ctx, spec)
        self.role = spec.role
        self.entry = entry
        model = entry.settings
        self.settings: BaseModel | None = (
            model.model_validate(spec.settings or {}) if model is not None else None
        )
        self.behaviour = entry.cls()
        self._declared = declared_handlers(entry.cls)
        self._handlers: dict[str, Callable[..., Any] | None] = {}
        self.state: dict[str, Any] = {}
        self.durable: dict[str, Any] = {}
        self.rng = ctx.streams.get(f"agent:{self.id}")
        # The service-time stream a built-in service of this id would draw from.
        self._work_rng = ctx.streams.get(f"service:{self.id}")
        # Compiled draws when built (sim.draws): the sampler's numbers, for less.
        self._work_draw = draw_of(spec.service_time, self._work_rng)
        self._service_time = self._work_draw
        self._samplers: dict[str, Callable[[], float]] = {}
        self._plugin_peers = {
            a.id
            for a in ctx.scenario.agents
            if a.role not in BUILTIN_ROLES or a.role in HOSTED_ROLES
        }
        self._agent_ids = {a.id for a in ctx.scenario.agents}
        self._replies = itertools.count(1)
        self._waiting: set[str] = set()
        self._requests = itertools.count(1)
        self._queues: PluginQueues | None = None
        self._schemas: SchemaRegistry | None = None
        # Its handling of each job, compiled when built (sim.agents.plugin_driver).
        self._serve = _Serve(self, AgentContext)
        self.endpoints.serve(served_protocols(ctx.scenario, self.id), self._serve)
        self.node.on_crash.append(self._forget)
        self.stream_desk = StreamDesk(self)
        self.session_desk = SessionDesk(self, self._serve_session)

    @property
    def pools(self) -> dict[str, WorkerPool]:
        """The worker pool of each protocol it serves, by protocol."""
        return self.endpoints.pools

    @property
    def dedupe(self) -> Deduper | None:
        """The deduper of its queue servers, which an idempotent queue channel gives them
        (None: it has none). Setting None makes them apply every copy of a message: a
        consumer that is not idempotent (what the `exactly_once` check finds)."""
        queue = self.endpoints.queue
        servers = queue.servers if queue is not None else []
        return next((s.dedupe for s in servers if s.dedupe is not None), None)

    @dedupe.setter
    def dedupe(self, dedupe: Deduper | None) -> None:
        queue = self.endpoints.queue
        for server in queue.servers if queue is not None else []:
            server.dedupe = dedupe

    @property
    def schemas(self) -> SchemaRegistry:
        """The schema registry its code reads bodies through (`ctx.read`), made on first
        use."""
        if self._schemas is None:
            self._schemas = default_registry()
        return self._schemas

    @property
    def queues(self) -> PluginQueues:
        """Its code's queues (publish, consume, request-reply), made on first use."""
        if self._queues is None:
            self._queues = PluginQueues(self)
        return self._queues

    def start(self) -> None:
        """Run the class's `main(ctx)`, if it has one (again after a restart)."""
        main = getattr(self.behaviour, "main", None)
        if main is not None:
            _Driver(self, main, AgentContext(self, None, None, None), "main", ())

    def _forget(self) -> None:
        self.state.clear()
        answers = self.ctx.answers
        for key in self._waiting:
            answers.pop(key, None)
        self._waiting.clear()

    # -- what its code uses ------------------------------------------------------------

    def draw(self, seconds: float | dict[str, Any] | BaseModel | None) -> float:
        """Seconds of work: as given, drawn from a distribution, or the service time."""
        if seconds is None:
            return float(self._service_time())
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            if not seconds >= 0 or not math.isfinite(seconds):
                raise ValueError(f"work() needs finite seconds >= 0, got {seconds!r}")
            return float(seconds)
        if isinstance(seconds, dict | BaseModel):
            raw = seconds.model_dump() if isinstance(seconds, BaseModel) else seconds
            key = json.dumps(raw, sort_keys=True, default=str)
            sampler = self._samplers.get(key)
            if sampler is None:
                dist = _DISTRIBUTION.validate_python(raw)
                sampler = self._samplers[key] = dist.sampler(self._work_rng)
            return float(sampler())
        raise TypeError(f"work() takes seconds or a distribution, got {seconds!r}")

    def new_correlation_id(self) -> str:
        """A new correlation id for a call that `main` starts (a new trace)."""
        return f"{self.id}-{next(self._requests)}"

    def check_protocol(self, dst: str, protocol: str | None) -> None:
        """Refuse a call to an unknown agent, or over another protocol than its channel's."""
        if dst not in self._agent_ids:
            raise ValueError(f"there is no agent '{dst}' in the scenario")
        if protocol is not None and protocol != self.channel(dst).protocol:
            raise ValueError(
                f"the channel from {self.id} to {dst} is {self.channel(dst).protocol}, not "
                f"{protocol}; the scenario's channel chooses the protocol"
            )

    def start_call(
        self,
        dst: str,
        type_: str,
        body: Any,
        parent: int,
        correlation_id: str,
        causation_id: str,
        deadline: float,
        size_bytes: int,
        done: Callable[[Response | CallError], None],
    ) -> Call:
        """Call `dst` through its channel; `done` gets the outcome as code sees it."""
        body, reply = self.reply_slot(dst, body)

        def on_done(result: CallResult) -> None:
            outcome = result_of(dst, result, self.take_reply(reply))
            # A pause holds what the caller does with the answer until it ends.
            self.node.when_running(lambda: done(outcome))

        return self.call(dst, type_, correlation_id, parent, size_bytes, body, causation_id,
                         on_done, deadline)  # fmt: skip

    def reply_slot(self, dst: str, body: Any) -> tuple[Any, str | None]:
        """The body to send to `dst` and the key its answer's body will be under (when
        `dst` runs plugin code; None otherwise)."""
        if dst not in self._plugin_peers:
            return body, None
        # Room for the answer's body, which the responder fills in.
        reply = f"{self.id}>{dst}#{next(self._replies)}"
        self.ctx.answers[reply] = _NO_BODY
        self._waiting.add(reply)
        return Wrapped(body, reply), reply

    def take_reply(self, reply: str | None) -> Any:
        """The answer's body left under `reply` (None if none was given)."""
        if reply is None:
            return None
        self._waiting.discard(reply)
        data = self.ctx.answers.pop(reply, None)
        return None if data is _NO_BODY else data

    def policies_to(self, dst: str) -> Policies:
        """The policies of the channel to `dst`, shared by its calls and streams."""
        caller = self._callers.get(dst)
        if caller is None:
            caller = self._callers[dst] = self._caller(dst)
        return caller.policies

    # -- serving -----------------------------------------------------------------------

    def _serve_session(self, session: Session) -> bool:
        """Run the class's `on_session(ctx, session)` for a session a peer opened."""
        code = getattr(self.behaviour, "on_session", None)
        if not callable(code):
            return False
        ctx = AgentContext(self, None, None, None)
        ctx._session = session
        _Driver(self, code, ctx, "on_session", (session,))
        return True

    def _handler(self, type_: str) -> Callable[..., Any] | None:
        handlers = self._handlers
        if type_ not in handlers:
            name = self._declared.get(type_) or method_name(type_)
            found = getattr(self.behaviour, name, None)
            if found is None:
                found = getattr(self.behaviour, "on_request", None)
            handlers[type_] = found if callable(found) else None
        return handlers[type_]

    def _handle(self, job: Job, code: Callable[..., Any] | None = None) -> None:
        # `code`: a consumed queue's own handler, in place of the one for the type.
        self._serve(job, code)

    def _poisoned(self, job: Job, request: Request, reply: str | None) -> None:
        """A poison message reached it (`Serve`)."""
        poisoned = getattr(self.behaviour, "on_poison", None)
        if callable(poisoned):
            # The role says how its handler fails on it.
            driver = _Driver(self, poisoned, AgentContext(self, job, request, reply),
                             job.msg.type, (request,))  # fmt: skip
            job.on_cancel = driver.cancel
            return
        # A poison message: its handler works as long as a service's would, then
        # fails (as the built-in service's does), without running the role's code.
        work = self._work_time()
        self.node.after_work(work, lambda: job.reply(500, POISONED))

    def _raised(self, ctx: AgentContext, exc: Exception, what: str) -> None:
        """Plugin code raised: its request answers 500 (or, answered already or in
        `main`, an internal span records it); with `strict` the run stops."""
        text = raised_text(exc)
        job = ctx._job
        session = ctx._session
        if job is not None and not ctx.responded:
            ctx.responded = True
            job.reply(500, text)
        elif session is not None and not session.closed:
            session.fail(500, text)  # its span records it; the peer hears a 500
        else:
            journal, now = self.node.journal, self.ctx.env.now
            parent = job.span if job is not None else -1
            cid = job.msg.correlation_id if job is not None else ""
            span = journal.span_start(what, "internal", self.id, self.id, "plugin", now, parent,
                                      cid)  # fmt: skip
            journal.span_end(span, "error", now, text)
        if self.ctx.strict and self.ctx.failure is None:
            self.ctx.failure = exc
            raise exc
