"""Server-Sent Events settings, with the defaults of the real implementations."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SseSettings(BaseModel):
    """What an SSE client and server do, with the defaults of the real implementations.

    Sources: WHATWG HTML §9.2 (Server-sent events); Chromium and Node's undici
    EventSource (`defaultReconnectionTime = 3000`); sse-starlette 3.4
    (`DEFAULT_PING_INTERVAL = 15`) and aiohttp-sse 2.2 (15 s pings); RFC 6298 (TCP's
    minimum retransmission timeout).

    One model serves both sides: the client reads the reconnection and timeout fields, the
    server the keep-alive, replay and progress fields.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- client ---------------------------------------------------------------------------
    retry: float = Field(
        3.0,
        gt=0,
        description="Initial reconnection time in seconds, until the server sends `retry:`. "
        "The spec leaves it implementation-defined; Chrome and undici use 3000 ms, Deno "
        "5000 ms.",
    )
    backoff: Literal["none", "exponential"] = Field(
        "none",
        description="'exponential' doubles the delay after each reconnect that failed "
        "before opening (the spec allows to 'wait some more'); browsers do not.",
    )
    backoff_cap: float = Field(60.0, gt=0, description="Longest delay with 'exponential'.")
    read_timeout: float | None = Field(
        None,
        gt=0,
        description="The client's watchdog: a connection that brings no bytes (no status "
        "line, event or keep-alive) for this long is broken, as on a blackhole. None: twice "
        "`keepalive` (30 s). Browsers have none; undici's bodyTimeout is 300 s.",
    )
    stall_timeout: float = Field(
        1.0,
        gt=0,
        description="A hole in the connection's byte stream (a lost or partitioned copy) "
        "that stays open this long breaks the connection. The simulated network does not "
        "retransmit; 1 s is TCP's minimum retransmission timeout (RFC 6298 §2.4).",
    )
    max_reconnects: int | None = Field(
        None, ge=0, description="Give up after this many reconnects (None: never, as browsers)."
    )
    reconnect_bytes: int = Field(256, ge=0, description="Size of a reconnecting GET.")

    # -- server ---------------------------------------------------------------------------
    keepalive: float = Field(
        15.0,
        gt=0,
        description="Seconds between keep-alive comments on an open connection: the WHATWG "
        "authoring note, sse-starlette and aiohttp-sse all use 15 s.",
    )
    server_retry: float | None = Field(
        None,
        gt=0,
        description="The `retry:` field the server sends on each (re)connect, in seconds "
        "(None: not sent, the client keeps its own).",
    )
    replay_buffer: int = Field(
        100,
        ge=0,
        description="Events kept per stream to replay after a Last-Event-ID; older ones are "
        "lost to a reconnecting client. No standard: sse-starlette and aiohttp-sse leave "
        "replay to the application, MCP 2025-11-25 makes an event store optional. 0: none.",
    )
    retention: float = Field(
        300.0,
        ge=0,
        description="How long a finished stream (its buffer and final event) stays for a "
        "late reconnect; after that a reconnect gets 404. A scenario value: long enough "
        "for a client that lost the final event to notice (30 s at worst) and retry.",
    )
    progress_interval: float | None = Field(
        1.0,
        gt=0,
        description="Seconds between the progress events a running job emits (None: only "
        "the events the handler emits itself and the final one). A scenario value.",
    )
    crash_resets: bool = Field(
        True,
        description="A crashed agent's kernel resets its open connections, so the peer hears "
        "of it one latency later (an OOM kill). False: the host vanishes silently and the "
        "client notices by its read timeout.",
    )
    event_bytes: int = Field(512, ge=0, description="Size of an event on the wire.")
    keepalive_bytes: int = Field(10, ge=0, description="A keep-alive: aiohttp-sse's ': ping'.")
    response_bytes: int = Field(256, ge=0, description="The status line and headers.")

    def read_limit(self) -> float:
        """The read timeout in seconds (twice the keep-alive interval unless set)."""
        return self.read_timeout if self.read_timeout is not None else 2 * self.keepalive


DEFAULTS = SseSettings()
