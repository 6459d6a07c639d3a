"""A2A on one node: a client always (its webhook too), a server if the agent serves A2A."""

from __future__ import annotations

from protocols.a2a.client import A2aClient
from protocols.a2a.server import A2aServer
from protocols.a2a.wire import CLOSE_TYPE, PROTOCOL, PUSH_TYPE, Event, Reply
from protocols.endpoint_base import ClientServerEndpoint
from protocols.node import Node
from protocols.transport import Message

METHOD_NOT_FOUND = -32601


class A2aEndpoint(ClientServerEndpoint[A2aClient, A2aServer]):
    """Routes requests to the server, push POSTs to the client's webhook, the rest back."""

    def __init__(
        self, node: Node, server: A2aServer | None = None, client: A2aClient | None = None
    ) -> None:
        super().__init__(node, PROTOCOL, CLOSE_TYPE, client or A2aClient(node), server)

    def on_message(self, msg: Message) -> None:
        """Route one A2A message by kind (and type, for pushes and hang-ups)."""
        kind = msg.kind
        if kind == "request":
            if msg.type == PUSH_TYPE:
                self.client.on_push(msg)
            elif self.server is not None:
                self.server.on_request(msg)
            else:
                reply = Reply(msg.body.method, code=METHOD_NOT_FOUND, error="no A2A server")
                self.node.send(self.node.answer(msg, reply, 128, -1))
        elif kind == "response":
            if msg.type == PUSH_TYPE:
                if self.server is not None:
                    self.server.on_push_ack(msg)
            elif isinstance(msg.body, Event):
                self.client.on_event(msg)  # a stream's status line
            else:
                self.client.on_response(msg)
        elif kind == "control" and msg.type == CLOSE_TYPE:
            if self.server is not None:
                self.server.on_control(msg)
        elif kind == "control":
            self.client.on_control(msg)
        else:
            self.client.on_event(msg)

    def client_bounce(self, msg: Message) -> bool:
        """A request of ours, but a push POST (the server's, to a webhook)."""
        return msg.kind == "request" and msg.type != PUSH_TYPE
