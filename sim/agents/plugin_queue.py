"""Queues in a plugin role's code: one-way publishes, consumed queues, request-reply.

What `ctx.publish`, `ctx.consume` and `ctx.wait_reply` do (`sim.agents.plugin` keeps
only thin methods for them). Each goes through the agent's queue endpoint
(`protocols.queue`), as the built-in roles' queue traffic does, so it lands in the
trace the same way:

- **publish**: one message to a queue on the broker, through the channel's queue settings
  (its broker, its queue, the producer's confirm timeout and attempts). A `producer`
  span runs from the publish to the broker's confirm; the event fires with a `Published`
  on the confirm, or with a `CallFailed` (which the code's `yield` raises) when no confirm
  came after `publish_attempts` sends.
- **consume**: a queue server (`protocols.queue.QueueServer`) on the named queue, with the
  agent's workers: each delivery is a `consumer` span and runs the role's handler for its
  type (or the handler given). A handler that returns acks it (and answers its `reply_to`,
  if it has one); one that raises (or answers >= 500) leaves it to the queue's `on_error`:
  redelivered after the visibility timeout, requeued, or dead-lettered, and past
  `max_deliveries` the broker dead-letters it.
- **request-reply**: a publish with `reply=True` names this agent's response queue as its
  `reply_to`; the consumer's queue server answers there (its status, and the body its
  handler gave when it is a plugin role), with the request's message id as the reply's
  causation id (AMQP's correlation id). `wait_reply` waits for that reply, with a timeout,
  under an `internal` span. A reply that comes after its wait ended, or twice, is acked
  and ignored (counted in the queue client's `late_replies`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import simpy

from protocols.call import status_result
from protocols.queue import Delivery, QueueEndpoint, QueueServer, QueueSettings
from sim import scenario as sc
from sim.agents.api import CallError, CallFailed, CallTimeout, Response
from sim.agents.context import Context
from sim.agents.endpoints import Endpoints
from sim.agents.plugin_calls import NO_BODY as _NO_BODY
from sim.agents.plugin_calls import CallEvent, Wrapped, result_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from protocols.node import Node


class QueueAgent(Protocol):
    """What this module uses of the plugin agent (`sim.agents.plugin.PluginAgent`)."""

    id: str
    ctx: Context
    node: Node
    spec: sc.Agent
    endpoints: Endpoints
    _agent_ids: set[str]
    _plugin_peers: set[str]
    _waiting: set[str]

    @property
    def _replies(self) -> Iterator[int]: ...

    def channel(self, dst: str) -> sc.Channel:
        """The channel from the agent to `dst`."""
        ...

    def _handle(self, job: Any, code: Callable[..., Any] | None = None) -> None: ...


class Lineage(Protocol):
    """What this module uses of the code's context (`sim.agents.plugin.AgentContext`)."""

    def _lineage(self) -> tuple[int, str, str, float]: ...


@dataclass(frozen=True)
class Published:
    """A publish the broker confirmed: its message id, the queue it went to, its
    correlation id."""

    msg_id: str
    queue: str
    correlation_id: str


class PublishEvent(CallEvent):
    """What `ctx.publish` returns: fires with `Published` on the broker's confirm, or with
    the CallFailed its `yield` raises. `msg_id` is known at once (for `wait_reply`)."""

    def __init__(self, env: simpy.Environment, dst: str, msg_id: str, queue: str) -> None:
        super().__init__(env, dst)
        self.msg_id = msg_id
        self.queue = queue


class _Awaited:
    """A request published with `reply=True`: where its reply's body comes, the reply
    once it came, and the wait for it."""

    __slots__ = ("dst", "event", "key", "result", "span")

    def __init__(self, dst: str, key: str | None) -> None:
        self.dst = dst
        self.key = key
        self.result: Response | CallError | None = None
        self.event: CallEvent | None = None
        self.span = -1


class PluginQueues:
    """One plugin agent's queue side: what its code published, consumes, and awaits."""

    def __init__(self, agent: QueueAgent) -> None:
        self.agent = agent
        # Publishes not yet confirmed, and waits not yet over: their open spans.
        self._unconfirmed: dict[str, int] = {}
        # Requests published with reply=True, by message id, until their wait ends.
        self._awaited: dict[str, _Awaited] = {}
        agent.node.on_crash.append(self._forget)

    # -- where to -----------------------------------------------------------------------

    def _endpoint(self) -> QueueEndpoint:
        """The agent's queue endpoint; made on first use when no queue channel gave it one."""
        agent = self.agent
        endpoint = agent.endpoints.queue
        if endpoint is None:
            broker = next((a for a in agent.ctx.scenario.agents if a.role == "broker"), None)
            if broker is None:
                raise ValueError("there is no broker agent in the scenario to hold queues")
            settings = QueueSettings.model_validate({"broker": broker.id}).over(broker.queue)
            endpoint = agent.endpoints.queue = QueueEndpoint(agent.node, settings)
        return endpoint

    def _named(self, queue: str) -> QueueSettings:
        """The settings of a queue named outright: those of the queue channel whose requests
        it carries, else the agent's queue defaults (its broker's)."""
        scenario = self.agent.ctx.scenario
        for channel in scenario.channels:
            if channel.protocol == "queue":
                settings = scenario.queue_settings(channel)
                if settings.requests_of(channel.dst) == queue:
                    return settings
        return self._endpoint().settings

    def _target(self, to: str) -> tuple[QueueSettings, str, str]:
        """(settings, queue, peer) of a publish to an agent (over its channel) or a queue."""
        agent = self.agent
        if to in agent._agent_ids:
            protocol = agent.channel(to).protocol
            if protocol != "queue":
                raise ValueError(
                    f"the channel from {agent.id} to {to} is {protocol}, not queue; publish() "
                    f"goes over a queue channel (or name a queue)"
                )
            self._endpoint()
            settings = agent.endpoints.queue_settings_to(to)
            return settings, settings.requests_of(to), to
        if not isinstance(to, str) or not to:
            raise TypeError(f"publish() takes an agent id or a queue name, got {to!r}")
        settings = self._named(to)
        return settings, to, settings.broker

    # -- publish ------------------------------------------------------------------------

    def publish(
        self,
        ctx: Lineage,
        to: str,
        type_: str,
        body: Any,
        correlation_id: str | None,
        reply: bool,
        size_bytes: int,
    ) -> PublishEvent:
        """Publish `body` to `to`'s queue (see the module); the event fires on the confirm."""
        agent = self.agent
        settings, queue, peer = self._target(to)
        endpoint = self._endpoint()
        node, env = agent.node, agent.ctx.env
        parent, cid, cause, _ = ctx._lineage()
        if correlation_id is not None:
            cid = correlation_id
        reply_to = endpoint.client.listen(settings) if reply else ""
        span = node.journal.span_start(type_, "producer", agent.id, peer, "queue", env.now,
                                       parent, cid)  # fmt: skip
        msg_id = node.new_id()
        event = PublishEvent(env, peer, msg_id, queue)
        if reply:
            key = None
            if peer in agent._plugin_peers:
                # Room for the answer's body, which the responder's code fills in.
                key = f"{agent.id}>{peer}#{next(agent._replies)}"
                agent.ctx.answers[key] = _NO_BODY
                agent._waiting.add(key)
                body = Wrapped(body, key)
            self._awaited[msg_id] = _Awaited(peer, key)
            endpoint.client.unmatched = self._on_reply
        self._unconfirmed[msg_id] = span

        def confirmed(ok: bool, why: str) -> None:
            self._unconfirmed.pop(msg_id, None)
            node.journal.span_end(span, "ok" if ok else "error", env.now, why)
            if ok:
                outcome: Published | CallError = Published(msg_id, queue, cid)
            else:
                outcome = CallFailed(peer, "error", 0, why)
                self._settle(msg_id, outcome)
            node.when_running(lambda: event.succeed(outcome))

        endpoint.publisher.publish(
            queue, type_, body, msg_id=msg_id, correlation_id=cid, causation_id=cause,
            span=span, size_bytes=size_bytes, reply_to=reply_to, on_confirm=confirmed,
            settings=settings,
        )  # fmt: skip
        return event

    # -- consume ------------------------------------------------------------------------

    def consume(self, queue: str, handler: Callable[..., Any] | None, prefetch: int | None) -> str:
        """Serve `queue`'s deliveries with the agent's workers (once: again is a no-op)."""
        if not isinstance(queue, str) or not queue:
            raise TypeError(f"consume() takes a queue name, got {queue!r}")
        if handler is not None and not callable(handler):
            raise TypeError(f"consume() takes a handler(ctx, request), got {handler!r}")
        agent = self.agent
        settings = self._named(queue)
        endpoint = self._endpoint()
        for server in endpoint.servers:
            if server.queue == queue and server.settings.broker == settings.broker:
                return queue  # served already (its own requests, or consumed before)

        def serve(job: Any) -> None:
            agent._handle(job, handler)

        # The agent's one pool: its workers serve what it consumes and what it is sent.
        QueueServer(endpoint, agent.spec.workers, serve, queue=queue, prefetch=prefetch,
                    settings=settings, pool=agent.endpoints.pools["http"])  # fmt: skip
        return queue

    # -- request-reply ------------------------------------------------------------------

    def wait_reply(
        self, ctx: Lineage, sent: PublishEvent | str, timeout: float | None
    ) -> CallEvent:
        """Wait for the reply to a publish made with `reply=True` (see the module)."""
        msg_id = sent.msg_id if isinstance(sent, PublishEvent) else sent
        awaited = self._awaited.get(msg_id) if isinstance(msg_id, str) else None
        if awaited is None:
            raise ValueError(f"wait_reply() waits for a publish made with reply=True, got {sent!r}")
        if awaited.event is not None:
            raise RuntimeError(f"the reply to {msg_id} is awaited already")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"wait_reply() needs a timeout > 0 seconds, got {timeout!r}")
        agent = self.agent
        node, env = agent.node, agent.ctx.env
        event = CallEvent(env, awaited.dst)
        awaited.event = event
        parent, cid, _, deadline = ctx._lineage()
        awaited.span = node.journal.span_start("reply", "internal", agent.id, awaited.dst,
                                               "queue", env.now, parent, cid)  # fmt: skip
        if awaited.result is not None:
            self._settle(msg_id, awaited.result)  # it came before the wait began
            return event
        if timeout is None and awaited.dst in agent._agent_ids:
            timeout = agent.channel(awaited.dst).timeout
        wait = math.inf if timeout is None else timeout
        outcome, why = "timeout", f"no reply within {wait:g} s"
        if deadline - env.now < wait:
            # The request this code serves is given up on then: so is the wait.
            wait = max(deadline - env.now, 0.0)
            outcome, why = "deadline_exceeded", "the request's deadline passed"
        if math.isfinite(wait):

            def expire() -> None:
                if self._awaited.get(msg_id) is awaited:
                    self._settle(msg_id, CallTimeout(awaited.dst, outcome, 0, why))

            node.after(wait, expire)
        return event

    def _on_reply(self, delivery: Delivery) -> bool:
        """A reply on the response queue that no call waits for: one of ours, if awaited."""
        awaited = self._awaited.get(delivery.causation_id)
        if awaited is None or awaited.result is not None:
            return False  # its wait is over (a late or duplicate reply)
        payload, body = delivery.payload, None
        if isinstance(payload, int) and not isinstance(payload, bool):
            status = payload  # a queue server's answer: its status
        else:
            status, body = 200, payload.data if isinstance(payload, Wrapped) else payload
        key = awaited.key
        if key is not None:
            self.agent._waiting.discard(key)
            given = self.agent.ctx.answers.pop(key, None)
            body = body if given is _NO_BODY or given is None else given
        result = result_of(awaited.dst, status_result(status), body)
        awaited.result = result
        if awaited.event is not None:
            self._settle(delivery.causation_id, result)
        return True

    def _settle(self, msg_id: str, result: Response | CallError) -> None:
        """End the wait for `msg_id`'s reply (if one is under way) with `result`."""
        awaited = self._awaited.get(msg_id)
        if awaited is None:
            return
        awaited.result = result
        event = awaited.event
        if event is None:
            return  # kept for the wait_reply to come
        del self._awaited[msg_id]
        agent = self.agent
        now = agent.ctx.env.now
        if isinstance(result, CallError):
            agent.node.journal.span_end(awaited.span, result.outcome, now, result.error,
                                        status=result.status)  # fmt: skip
        else:
            agent.node.journal.span_end(awaited.span, "ok", now, status=result.status)
        agent.node.when_running(lambda: event.succeed(result))

    def _forget(self) -> None:
        """A crash: publishes in flight are never confirmed to it, waits are over."""
        agent = self.agent
        journal, now = agent.node.journal, agent.ctx.env.now
        for span in self._unconfirmed.values():
            journal.span_end(span, "error", now, "the producer crashed before the confirm")
        for awaited in self._awaited.values():
            if awaited.event is not None:
                journal.span_end(awaited.span, "error", now, "crashed while waiting for the reply")
        self._unconfirmed.clear()
        self._awaited.clear()


__all__ = ["PluginQueues", "PublishEvent", "Published"]
