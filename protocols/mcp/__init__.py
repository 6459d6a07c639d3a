"""The Model Context Protocol over Streamable HTTP: revisions 2025-11-25 and 2026-07-28.

    mcp = McpEndpoint(node, McpServer(node, workers=4, handler=handle, settings=settings))
    call = mcp.client.call("tools", "tools/call", "req-1", timeout=60)

See `client` for sessions, tool calls, resumption and re-issue, `server` for sessions,
streams, the event store and cancellation, `settings` for both sides' knobs and the
official Python SDK's defaults, `wire` for the messages.
"""

from protocols.mcp.client import McpClient, ToolCall
from protocols.mcp.endpoint import McpEndpoint
from protocols.mcp.server import McpServer
from protocols.mcp.settings import DEFAULTS, McpSettings, Revision
from protocols.mcp.wire import PROTOCOL

__all__ = [
    "DEFAULTS",
    "PROTOCOL",
    "McpClient",
    "McpEndpoint",
    "McpServer",
    "McpSettings",
    "Revision",
    "ToolCall",
]
