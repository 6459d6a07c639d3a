"""MCP on one node: a client always, a server if the agent serves MCP."""

from __future__ import annotations

from protocols.mcp.client import McpClient
from protocols.mcp.server import McpServer
from protocols.mcp.wire import CLOSE_TYPE, PROTOCOL, Answer
from protocols.node import Node
from protocols.transport import Message


class McpEndpoint:
    """Routes POSTs and GETs to the server, answers and stream frames to the client."""

    def __init__(
        self, node: Node, server: McpServer | None = None, client: McpClient | None = None
    ) -> None:
        self.node = node
        self.client = client or McpClient(node)
        self.server = server
        node.register(PROTOCOL, self)

    def on_message(self, msg: Message) -> None:
        """Route one MCP message by kind."""
        kind = msg.kind
        if kind == "request":
            if self.server is not None:
                self.server.on_request(msg)
            else:
                self.node.send(self.node.answer(msg, Answer(404, error="no MCP server"), 64, -1))
        elif kind == "response" and isinstance(msg.body, Answer):
            self.client.on_answer(msg)
        elif kind == "control" and msg.type == CLOSE_TYPE:
            if self.server is not None:
                self.server.on_control(msg)
        else:
            self.client.on_frame(msg)

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A message of ours found its receiver down."""
        if msg.kind == "request":
            self.client.on_bounce(msg, outcome)
        elif self.server is not None and msg.type != CLOSE_TYPE:
            self.server.on_bounce(msg, outcome)

    def reset(self) -> None:
        """The node crashed."""
        self.client.reset()
        if self.server is not None:
            self.server.reset()
