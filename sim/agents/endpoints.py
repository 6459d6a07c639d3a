"""Which protocol endpoints each agent gets, from the scenario's channels.

An agent calls over the protocol of each of its outgoing channels and serves over the
protocols of the channels that reach it. This module builds those endpoints on the
agent's node and adapts every protocol's call to the one signature the resilience
layer makes attempts with. A queue channel's settings (`Scenario.queue_settings`) apply
to its calls, to the queue that carries its requests (`broker_queues`) and to the
server that consumes it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from protocols.a2a import A2aClient, A2aEndpoint, A2aServer, A2aSettings
from protocols.call import Call, CallResult
from protocols.http import HttpClient, HttpEndpoint, HttpServer
from protocols.llm import TOKENS
from protocols.mcp import McpClient, McpEndpoint, McpServer, McpSettings
from protocols.node import Node
from protocols.queue import QueueEndpoint, QueueServer, QueueSettings
from protocols.resilience import Attempt, Cancel
from protocols.sse import SseClient, SseEndpoint, SseServer, SseSettings, SseStream
from protocols.websocket import WebSocketEndpoint, WebSocketServer
from protocols.workers import Job, WorkerPool
from sim import scenario as sc

Handler = Callable[[Job], None]


def served_protocols(scenario: sc.Scenario, agent: str) -> list[str]:
    """The protocols other agents reach `agent` over (HTTP always, for a service)."""
    found = ["http"]
    for channel in scenario.channels:
        if channel.dst == agent and channel.protocol not in found:
            found.append(channel.protocol)
    return found


def broker_queues(scenario: sc.Scenario, broker: str) -> dict[str, QueueSettings]:
    """The queues on `broker` that carry queue channels' requests, with their settings.

    Channels that share a queue share its settings (validation refuses them otherwise),
    so the first one's stand for all.
    """
    queues: dict[str, QueueSettings] = {}
    for channel in scenario.channels:
        if channel.protocol == "queue" and channel.queue.broker == broker:
            settings = scenario.queue_settings(channel)
            queues.setdefault(settings.requests_of(channel.dst), settings)
    return queues


class Endpoints:
    """The protocol endpoints of one agent's node."""

    def __init__(
        self,
        node: Node,
        scenario: sc.Scenario,
        channel: Callable[[str], sc.Channel],
        spec: sc.Agent,
    ) -> None:
        self.node = node
        self.spec = spec
        self._scenario = scenario
        self._channel = channel
        self.http = HttpEndpoint(node, client=HttpClient(node, lambda dst: channel(dst).http))
        self.queue: QueueEndpoint | None = None
        self.sse: SseEndpoint | None = None
        self.websocket: WebSocketEndpoint | None = None
        queued = [
            c for c in scenario.channels if c.protocol == "queue" and spec.id in (c.src, c.dst)
        ]
        if queued and spec.role != "broker":
            # The endpoint's defaults: the settings of the queue channels that reach the
            # agent (its own requests queue), else of the first it calls over.
            first = next((c for c in queued if c.dst == spec.id), queued[0])
            self.queue = QueueEndpoint(node, scenario.queue_settings(first))
        self._queue_settings: dict[str, QueueSettings] = {}
        if any(c.protocol == "sse" and spec.id in (c.src, c.dst) for c in scenario.channels):
            self.sse = SseEndpoint(node, client=SseClient(node, lambda dst: channel(dst).sse))
            self.sse.client.on_close = self._stream_closed
        ws = [
            c for c in scenario.channels if c.protocol == "websocket" and spec.id in (c.src, c.dst)
        ]
        if ws:
            self.websocket = WebSocketEndpoint(node, ws[0].websocket)
        self.a2a: A2aEndpoint | None = None
        if any(c.protocol == "a2a" and spec.id in (c.src, c.dst) for c in scenario.channels):
            self.a2a = A2aEndpoint(node, client=self._a2a_client())
        self.mcp: McpEndpoint | None = None
        if any(c.protocol == "mcp" and spec.id in (c.src, c.dst) for c in scenario.channels):
            self.mcp = McpEndpoint(node, client=McpClient(node, lambda dst: channel(dst).mcp))
        self.pools: dict[str, WorkerPool] = {}

    def _a2a_client(self) -> A2aClient:
        """The A2A client: each callee's channel settings, its answer delay drawn from a
        stream of its own (the user who answers input-required), and its answer to
        auth-required (delay, and whether it declines) from another."""
        node, channel = self.node, self._channel
        samplers: dict[str, Callable[[], float]] = {}

        def answer_delay(dst: str) -> float:
            sampler = samplers.get(dst)
            if sampler is None:
                rng = node.stream(f"a2a-answer:{node.id}->{dst}")
                sampler = samplers[dst] = channel(dst).a2a.answer_delay.sampler(rng)
            return sampler()

        auths: dict[str, tuple[Callable[[], float], random.Random]] = {}

        def auth_answer(dst: str) -> tuple[float, bool]:
            # Its own stream, made when first asked: runs without auth draw nothing.
            found = auths.get(dst)
            if found is None:
                rng = node.stream(f"a2a-auth:{node.id}->{dst}")
                found = auths[dst] = (channel(dst).a2a.auth_delay.sampler(rng), rng)
            sampler, rng = found
            declined = channel(dst).a2a.auth_declined
            return sampler(), not (declined and rng.random() < declined)

        return A2aClient(node, lambda dst: channel(dst).a2a, answer_delay, auth_answer)

    def serve(self, protocols: list[str], handler: Handler) -> None:
        """Serve `handler` over each protocol with the agent's workers, one pool of them
        for all the protocols: an agent's `workers` are the requests it serves at once,
        whatever brings them."""
        spec, node = self.spec, self.node
        workers, limit = spec.workers, spec.queue_limit
        pool = WorkerPool.shared(node, workers, limit)
        for protocol in protocols:
            if protocol == "http":
                server = HttpServer(node, workers, handler, limit, spec.http, pool)
                self.http.server = server
                self.pools["http"] = server.pool
            elif protocol == "queue" and self.queue is not None:
                self.pools["queue"] = self._serve_queues(handler, pool)
            elif protocol == "sse" and self.sse is not None:
                sse = SseServer(node, workers, handler, limit, self._sse_settings(), pool=pool)
                self.sse.server = sse
                self.pools["sse"] = sse.pool
            elif protocol == "a2a" and self.a2a is not None:
                a2a = A2aServer(node, workers, handler, limit, self._a2a_settings(), pool)
                self.a2a.server = a2a
                self.pools["a2a"] = a2a.pool
            elif protocol == "mcp" and self.mcp is not None:
                mcp = McpServer(node, workers, handler, limit, self._mcp_settings(), pool)
                self.mcp.server = mcp
                self.pools["mcp"] = mcp.pool
            elif protocol == "websocket" and self.websocket is not None:
                ws = WebSocketServer(node, workers, handler, limit, pool)
                self.websocket.server = ws
                self.pools["websocket"] = ws.pool

    def _stream_closed(self, stream: SseStream) -> None:
        # A model's token stream: its span records when the first token reached us.
        if stream.first_event == TOKENS:
            self.node.journal.span_first_token(stream.span, stream.first_event_at)

    def _serve_queues(self, handler: Handler, pool: WorkerPool | None = None) -> WorkerPool:
        """A queue server per queue that carries requests to this agent, each with its
        channels' settings; the agent's workers serve them all, from one pool."""
        spec, queue = self.spec, self.queue
        assert queue is not None
        served: dict[tuple[str, str], QueueSettings] = {}
        for channel in self._scenario.channels:
            if channel.protocol == "queue" and channel.dst == spec.id:
                settings = self._scenario.queue_settings(channel)
                served.setdefault((settings.broker, settings.requests_of(spec.id)), settings)
        if not served:
            served[queue.settings.broker, queue.settings.requests_of(spec.id)] = queue.settings
        # One queue: its server's own pool. Several: one pool, each job begun by its server
        # (the agent's `pool` when its protocols share one).
        if pool is None and len(served) > 1:
            pool = WorkerPool.shared(self.node, spec.workers)
        for (_, name), settings in served.items():
            server = QueueServer(
                queue, spec.workers, handler, queue=name, settings=settings, pool=pool
            )
            pool = server.pool
        assert pool is not None
        return pool

    def _sse_settings(self) -> SseSettings | None:
        # The server side's settings (keep-alive, replay buffer, progress) come from the
        # first SSE channel that reaches this agent.
        for channel in self._scenario.channels:
            if channel.protocol == "sse" and channel.dst == self.spec.id:
                return channel.sse
        return None

    def _a2a_settings(self) -> A2aSettings | None:
        # The server side (chunk pace, capabilities, push delivery, the proxy) comes from
        # the first A2A channel that reaches this agent.
        for channel in self._scenario.channels:
            if channel.protocol == "a2a" and channel.dst == self.spec.id:
                return channel.a2a
        return None

    def _mcp_settings(self) -> McpSettings | None:
        # The server side (revision, event store, sessions' expiry, progress pace) comes
        # from the first MCP channel that reaches this agent.
        for channel in self._scenario.channels:
            if channel.protocol == "mcp" and channel.dst == self.spec.id:
                return channel.mcp
        return None

    def cancel(self, protocol: str) -> Cancel | None:
        """How to tell a callee over `protocol` to stop work (HTTP, and A2A's CancelTask)."""
        if protocol == "http":
            return self.http.client.cancel
        if protocol == "a2a" and self.a2a is not None:
            return self.a2a.client.cancel
        return None

    def attempt(self, protocol: str) -> Attempt:
        """The call of `protocol`, with the resilience layer's signature."""
        if protocol == "http":
            return self.http.client.call
        if protocol == "sse" and self.sse is not None:
            return self.sse.client.call
        if protocol == "queue" and self.queue is not None:
            return self._queue_call
        if protocol == "websocket" and self.websocket is not None:
            return self.websocket.call
        if protocol == "a2a" and self.a2a is not None:
            return self.a2a.client.call
        if protocol == "mcp" and self.mcp is not None:
            return self.mcp.client.call
        raise ValueError(f"{self.node.id} has no {protocol} endpoint")

    def queue_settings_to(self, dst: str) -> QueueSettings:
        """The settings of this agent's queue channel to `dst`."""
        settings = self._queue_settings.get(dst)
        if settings is None:
            channel = self._channel(dst)
            settings = self._queue_settings[dst] = self._scenario.queue_settings(channel)
        return settings

    def _queue_call(
        self,
        dst: str,
        type_: str,
        correlation_id: str,
        timeout: float | None = 5.0,
        parent: int = -1,
        size_bytes: int = 256,
        body: Any = None,
        causation_id: str = "",
        on_done: Callable[[CallResult], None] | None = None,
        attempt: int = 1,
        idempotency_key: str = "",
        deadline: float | None = None,
    ) -> Call:
        """A queue request to `dst` under its channel's settings. The attempt number
        stays here: a publish's `attempt` counts its sends, a delivery's its deliveries."""
        assert self.queue is not None
        return self.queue.client.call(
            dst, type_, correlation_id, timeout, parent, size_bytes, body, causation_id,
            on_done, deadline, idempotency_key, self.queue_settings_to(dst),
        )  # fmt: skip
