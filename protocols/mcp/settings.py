"""MCP settings: the revision, the Streamable HTTP transport's knobs, with their sources.

Sources: the MCP specification (modelcontextprotocol/modelcontextprotocol,
`docs/specification/2025-11-25/basic/transports.mdx`, `lifecycle.mdx`,
`utilities/{cancellation,progress}.mdx`; `2026-07-28/basic/transports/streamable-http.mdx`,
`patterns/cancellation.mdx`), and the official Python SDK (modelcontextprotocol/python-sdk
v1.29.0 and v2.0.0): `MCP_DEFAULT_TIMEOUT = 30.0`, `MCP_DEFAULT_SSE_READ_TIMEOUT = 300.0`
(`shared/_httpx_utils.py`), `DEFAULT_RECONNECTION_DELAY_MS = 1000` and
`MAX_RECONNECTION_ATTEMPTS = 2` (`client/streamable_http.py`), and the server's
`StreamableHTTPSessionManager` defaults (`json_response=False`, `event_store=None`,
`session_idle_timeout=None`).
"""

from __future__ import annotations

import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Revision = Literal["2025-11-25", "2026-07-28"]


class McpSettings(BaseModel):
    """How an MCP client calls tools over Streamable HTTP, and how the server answers.

    The client reads the revision, timeouts and reconnection fields; the server the
    response format, event store, progress pace, session expiry and `close_after`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    revision: Revision = Field(
        "2025-11-25",
        description="2025-11-25: initialize, Mcp-Session-Id, resumable streams "
        "(Last-Event-ID), a disconnect is not a cancellation. 2026-07-28: stateless, no "
        "initialize or sessions or resumption; closing a response stream cancels its "
        "request, and the client re-issues it with a new id.",
    )

    @field_validator("revision", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        # YAML reads an unquoted 2025-11-25 as a date: take it as the revision it names.
        return value.isoformat() if isinstance(value, datetime.date) else value

    # -- client ---------------------------------------------------------------------------
    timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds an HTTP exchange that is not a stream (initialize, a JSON "
        "answer) may take: the SDK's MCP_DEFAULT_TIMEOUT.",
    )
    sse_read_timeout: float = Field(
        300.0,
        gt=0,
        description="A response stream that brings no bytes for this long is broken: the "
        "SDK's MCP_DEFAULT_SSE_READ_TIMEOUT.",
    )
    reconnection_delay: float = Field(
        1.0,
        ge=0,
        description="Seconds before resuming a broken stream, unless the server sent "
        "`retry:` (DEFAULT_RECONNECTION_DELAY_MS = 1000).",
    )
    max_reconnections: int = Field(
        2,
        ge=0,
        description="Resumptions (2025-11-25) or re-issues (2026-07-28) of one request "
        "before giving up: the SDK's MAX_RECONNECTION_ATTEMPTS = 2.",
    )
    reinitialize: bool = Field(
        True,
        description="On a 404 for its session, initialize again and re-send (the spec's "
        "MUST). python-sdk 1.29 turns the 404 into an error instead (python-sdk#1676): "
        "False.",
    )
    cancel_on_timeout: bool = Field(
        True,
        description="When the caller times out, send notifications/cancelled (2025-11-25) "
        "or close the stream (2026-07-28), as python-sdk 2.0 does; 1.29 sends nothing.",
    )
    stall_timeout: float = Field(
        1.0,
        gt=0,
        description="A hole in a stream (a lost event) that stays open this long breaks the "
        "connection: TCP's minimum retransmission timeout (RFC 6298), as for SSE.",
    )
    get_stream: bool = Field(
        True,
        description="2025-11-25: once initialized, open the standalone GET stream for the "
        "server's own messages, as python-sdk does (`start_get_stream` after "
        "notifications/initialized); reconnect it with Last-Event-ID after `retry:` or "
        "`reconnection_delay`, giving up after `max_reconnections` failures in a row (a "
        "clean close by the server resets the count).",
    )
    ping_interval: float | None = Field(
        None,
        gt=0,
        description="Seconds between the client's pings to a server it holds a session with "
        "(2025-11-25). python-sdk pings only when the application calls send_ping: None. "
        "A ping unanswered within `timeout` is a broken session: the client drops it and "
        "initializes again on its next call.",
    )
    # -- server ---------------------------------------------------------------------------
    json_response: bool = Field(
        False,
        description="Answer tools/call with one JSON body instead of an SSE stream (the "
        "SDK's json_response, False): no progress, nothing to resume.",
    )
    event_store: bool = Field(
        True,
        description="Keep each stream's events so a GET with Last-Event-ID can replay them "
        "(2025-11-25). The SDK's default is none (event_store=None): a broken stream's "
        "answer is then lost.",
    )
    progress_interval: float | None = Field(
        5.0,
        gt=0,
        description="Seconds between notifications/progress on a tool call's stream "
        "(None: none). A scenario value: the spec leaves the pace to the server.",
    )
    session_idle_timeout: float | None = Field(
        None,
        gt=0,
        description="A session unused for this long is ended; its next request gets 404. "
        "The SDK's default is None (never); it recommends 1800 s.",
    )
    close_after: float | None = Field(
        None,
        gt=0,
        description="2025-11-25 'polling' (SEP-1699): the server closes a stream's "
        "connection this long after it opens, having sent `retry:`; the client resumes "
        "with Last-Event-ID. None: never.",
    )
    server_retry: float | None = Field(
        None, gt=0, description="The `retry:` the server sends with its priming event, in s."
    )
    standalone_stream: bool = Field(
        True,
        description="Offer the standalone GET stream (python-sdk's server does, one per "
        "session: a second gets 409); False: a GET that opens one is answered 405.",
    )
    notify_interval: float | None = Field(
        None,
        gt=0,
        description="Seconds between the server's notifications/tools/list_changed on a "
        "session's standalone stream (kept in the event store for a resumption). None: "
        "none (a scenario value: servers send them when their tools change).",
    )
    server_ping_interval: float | None = Field(
        None,
        gt=0,
        description="Seconds between the server's pings on a session's standalone stream; "
        "one unanswered within `timeout` ends the session (the client's next request gets "
        "404). None: none, as python-sdk's server.",
    )
    request_bytes: int = Field(512, ge=0, description="Size of a POST.")
    event_bytes: int = Field(256, ge=0, description="Size of an SSE event.")
    response_bytes: int = Field(512, ge=0, description="Size of a JSON answer.")


DEFAULTS = McpSettings()
