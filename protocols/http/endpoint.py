"""HTTP on one node: the client always, the server when it serves, and the routing.

The client (`client`) blocks each call on a pooled connection until a response, a
timeout, a refusal or a reset; the server (`server`) answers through a worker pool with
a bounded accept queue, a rate limit and Idempotency-Key semantics. The endpoint hands
each delivered message to the one of them it is for.
"""

from __future__ import annotations

from protocols.http.client import HttpClient
from protocols.http.server import HttpServer, send_control, send_response
from protocols.http.wire import PROTOCOL, RST
from protocols.node import Node
from protocols.transport import Message


class HttpEndpoint:
    """HTTP on one node: routes requests and handshakes to the server, the rest to the
    client."""

    def __init__(
        self, node: Node, server: HttpServer | None = None, client: HttpClient | None = None
    ) -> None:
        self.node = node
        self.client = client or HttpClient(node)
        self._server: HttpServer | None = None
        node.register(PROTOCOL, self)
        # Responses and requests, nearly every message, go straight to their handler.
        node.route(PROTOCOL, "response", self.client.on_response)
        self.server = server

    @property
    def server(self) -> HttpServer | None:
        """The server on this node, if it serves (it may be set after construction)."""
        return self._server

    @server.setter
    def server(self, server: HttpServer | None) -> None:
        self._server = server
        self.node.route(
            PROTOCOL, "request", server.on_request if server is not None else self._not_found
        )

    def _not_found(self, msg: Message) -> None:
        # Nothing listens here: the host answers 404 on the connection.
        send_response(self.node, msg, 404, -1)

    def on_message(self, msg: Message) -> None:
        """Route a delivered HTTP message."""
        kind = msg.kind
        if kind == "response":
            self.client.on_response(msg)
        elif kind == "request":
            if self.server is not None:
                self.server.on_request(msg)
            else:
                self._not_found(msg)
        elif kind == "control":
            if isinstance(msg.body, int) and msg.causation_id:
                self.client.on_control(msg)
            elif self.server is not None:
                self.server.on_control(msg)
            elif msg.type != RST:
                send_control(self.node, msg, RST)

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A message of ours was refused."""
        self.client.on_bounce(msg, outcome)

    def reset(self) -> None:
        """The node crashed."""
        self.client.reset()
        if self.server is not None:
            self.server.reset()
