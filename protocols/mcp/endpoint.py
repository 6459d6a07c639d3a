"""MCP on one node: a client always, a server if the agent serves MCP."""

from __future__ import annotations

from protocols.endpoint_base import ClientServerEndpoint
from protocols.mcp.client import McpClient
from protocols.mcp.server import McpServer
from protocols.mcp.wire import CLOSE_TYPE, PROTOCOL, Answer
from protocols.node import Node
from protocols.transport import Message


class McpEndpoint(ClientServerEndpoint[McpClient, McpServer]):
    """Routes POSTs and GETs to the server, answers and stream frames to the client."""

    def __init__(
        self, node: Node, server: McpServer | None = None, client: McpClient | None = None
    ) -> None:
        super().__init__(node, PROTOCOL, CLOSE_TYPE, client or McpClient(node), server)

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
