"""What the endpoints of the client-server protocols share (SSE, A2A, MCP).

Each is a client always and a server if its agent serves the protocol; what the node
delivers goes to one or the other by kind. A request of ours that bounced is the
client's to learn of; anything else of ours that found its receiver down is the
server's (a frame of a stream whose client went away), except the client's own
hang-up, which nobody waits for. A crash resets both.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from protocols.node import Node
from protocols.transport import Message


class Party(Protocol):
    """What a client or a server offers its endpoint."""

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A message it sent could not be delivered."""
        ...

    def reset(self) -> None:
        """The node crashed: drop every piece of in-memory state."""
        ...


C = TypeVar("C", bound=Party)
S = TypeVar("S", bound=Party)


class ClientServerEndpoint(Generic[C, S]):
    """A protocol's client and optional server on one node, registered for `protocol`;
    `close_type` is the message type of the client's hang-up."""

    def __init__(self, node: Node, protocol: str, close_type: str, client: C, server: S | None):
        self.node = node
        self.client = client
        self.server = server
        self.close_type = close_type
        node.register(protocol, self)

    def on_message(self, msg: Message) -> None:
        """Route one message of the protocol (each protocol routes its own)."""
        raise NotImplementedError

    def client_bounce(self, msg: Message) -> bool:
        """Whether a bounced message of ours is the client's to learn of (a request)."""
        return msg.kind == "request"

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A message of ours found its receiver down."""
        if self.client_bounce(msg):
            self.client.on_bounce(msg, outcome)
        elif self.server is not None and msg.type != self.close_type:
            self.server.on_bounce(msg, outcome)

    def reset(self) -> None:
        """The node crashed."""
        self.client.reset()
        if self.server is not None:
            self.server.reset()
