"""MCP over Streamable HTTP: the methods and the bodies its messages carry.

Every piece is one `Message` with `protocol="mcp"`:

| piece                                       | kind       | body    |
|---------------------------------------------|------------|---------|
| a POST (initialize, notifications, tools/call) | `request` | `Post` |
| a GET resuming a stream with Last-Event-ID, or opening the standalone stream | `request` | `Get` |
| a JSON answer, a 202, a 4xx                 | `response` | `Answer`|
| a response stream's status line             | `response` | `Frame` |
| a response stream's events                  | `event`    | `Frame` |
| the end of a stream's body, a reset, a FIN  | `control`  | `Frame` |
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOL = "mcp"

INITIALIZE = "initialize"
INITIALIZED = "notifications/initialized"
CANCELLED = "notifications/cancelled"
CALL_TOOL = "tools/call"
PING = "ping"  # either side's liveness check, answered `{}` (2025-11-25; gone in 2026-07-28)
RESPONSE = "response"  # the client's POST of a JSON-RPC response (to the server's ping)
LIST_CHANGED = "notifications/tools/list_changed"  # a server notification, unprompted

# The standalone GET stream (2025-11-25): its GET, status line and ends carry this type;
# its events the method they carry.
STREAM_TYPE = "mcp.stream"

# Frame names.
OPEN = "open"  # the status line (200) of a stream, position 0
PRIMING = "priming"  # 2025-11-25: an event id with empty data, first
PROGRESS = "notifications/progress"
RESULT = "result"  # the JSON-RPC response, last
EOF = "eof"  # the end of the body
RESET = "reset"  # the connection broke at the server (or the server closed it early)
CLOSE = "close"  # the client's FIN

CLOSE_TYPE = "mcp.close"
EOF_TYPE = "mcp.eof"
RESET_TYPE = "mcp.reset"

SESSION_TERMINATED = 32600  # python-sdk's JSON-RPC code for a 404 on a session
REQUEST_TIMEOUT = -32001


@dataclass(slots=True)
class Post:
    """A POST: a JSON-RPC message, with the session id header (2025-11-25)."""

    method: str
    request_id: str = ""
    session: str = ""
    payload: object = None


@dataclass(slots=True)
class Get:
    """A GET resuming stream `stream` after event `last_event_id` (Last-Event-ID); with
    `stream` empty or the standalone stream's key, the standalone GET stream."""

    stream: str
    last_event_id: int
    session: str = ""


@dataclass(slots=True)
class Answer:
    """A plain HTTP answer: its status, a session id (initialize), an error."""

    status: int
    session: str = ""
    error: str = ""


@dataclass(slots=True)
class Frame:
    """A piece of a response stream, at position `n` of its connection."""

    stream: str
    n: int
    name: str
    event_id: int = 0
    status: int = 0
    error: str = ""
    retry: float | None = None
