"""Which protocol endpoints each agent gets, from the scenario's channels.

An agent calls over the protocol of each of its outgoing channels and serves over the
protocols of the channels that reach it. This module builds those endpoints on the
agent's node and adapts every protocol's call to the one signature the resilience
layer makes attempts with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocols.call import Call, CallResult
from protocols.http import HttpClient, HttpEndpoint, HttpServer
from protocols.node import Node
from protocols.queue import QueueEndpoint, QueueServer, QueueSettings
from protocols.resilience import Attempt, Cancel
from protocols.sse import SseClient, SseEndpoint, SseServer, SseSettings
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


def queue_settings(scenario: sc.Scenario, agent: str) -> QueueSettings | None:
    """The queue settings of `agent`'s queue channels (its own calls first)."""
    for channel in scenario.channels:
        if channel.protocol == "queue" and agent in (channel.src, channel.dst):
            return channel.queue
    return None


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
        settings = queue_settings(scenario, spec.id)
        if settings is not None and spec.role != "broker":
            self.queue = QueueEndpoint(node, settings)
        if any(c.protocol == "sse" and spec.id in (c.src, c.dst) for c in scenario.channels):
            self.sse = SseEndpoint(node, client=SseClient(node, lambda dst: channel(dst).sse))
        ws = [
            c for c in scenario.channels if c.protocol == "websocket" and spec.id in (c.src, c.dst)
        ]
        if ws:
            self.websocket = WebSocketEndpoint(node, ws[0].websocket)
        self.pools: dict[str, WorkerPool] = {}

    def serve(self, protocols: list[str], handler: Handler) -> None:
        """Serve `handler` over each protocol, each with the agent's workers."""
        spec, node = self.spec, self.node
        for protocol in protocols:
            if protocol == "http":
                server = HttpServer(node, spec.workers, handler, spec.queue_limit, spec.http)
                self.http.server = server
                self.pools["http"] = server.pool
            elif protocol == "queue" and self.queue is not None:
                self.pools["queue"] = QueueServer(self.queue, spec.workers, handler).pool
            elif protocol == "sse" and self.sse is not None:
                sse = SseServer(node, spec.workers, handler, spec.queue_limit, self._sse_settings())
                self.sse.server = sse
                self.pools["sse"] = sse.pool
            elif protocol == "websocket" and self.websocket is not None:
                ws = WebSocketServer(node, spec.workers, handler, spec.queue_limit)
                self.websocket.server = ws
                self.pools["websocket"] = ws.pool

    def _sse_settings(self) -> SseSettings | None:
        # The server side's settings (keep-alive, replay buffer, progress) come from the
        # first SSE channel that reaches this agent.
        for channel in self._scenario.channels:
            if channel.protocol == "sse" and channel.dst == self.spec.id:
                return channel.sse
        return None

    def cancel(self, protocol: str) -> Cancel | None:
        """How to tell a callee over `protocol` to stop work (HTTP only, so far)."""
        if protocol == "http":
            return self.http.client.cancel
        return None

    def attempt(self, protocol: str) -> Attempt:
        """The call of `protocol`, with the resilience layer's signature."""
        if protocol == "http":
            return self.http.client.call
        if protocol == "sse" and self.sse is not None:
            return self.sse.client.call
        if protocol == "queue" and self.queue is not None:
            return _basic(self.queue.client.call)
        if protocol == "websocket" and self.websocket is not None:
            return _basic(self.websocket.call)
        raise ValueError(f"{self.node.id} has no {protocol} endpoint")


def _basic(call: Callable[..., Call]) -> Attempt:
    """Adapt a call that takes no attempt number, idempotency key or deadline."""

    def attempt(
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
        # These protocols' own messages carry no attempt number or deadline.
        return call(
            dst, type_, correlation_id, timeout, parent, size_bytes, body, causation_id, on_done
        )

    return attempt
