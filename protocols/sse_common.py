"""Server-Sent Events: the settings and the frames both sides put on the wire.

A stream is an HTTP GET answered by a long-lived `text/event-stream` response. On the
simulator's wire each piece of it is one `Message` with `protocol="sse"`:

| piece                                  | kind       | direction       | body    |
|----------------------------------------|------------|-----------------|---------|
| the GET (first open or reconnect)      | `request`  | client → server | `Open`  |
| the status line (200, 503, 404, ...)   | `response` | server → client | `Frame` |
| an event (`id:` + `event:` + `data:`)  | `event`    | server → client | `Frame` |
| a keep-alive comment (`: ping`)        | `control`  | server → client | `Frame` |
| the end of the body, after the final   | `control`  | server → client | `Frame` |
| a connection reset or the client's FIN | `control`  | either          | `Frame` |

Each server-to-client frame carries its position `n` on its connection (0 is the status
line), because the simulator's network has no TCP: copies can be reordered, duplicated or
lost, and the client rebuilds the byte stream in order as TCP would (see `sse_client`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PROTOCOL = "sse"

# Frame names: the status line, the events a server emits, and the connection's control.
OPEN = "open"
PROGRESS = "progress"
FINAL = "final"
PING = "ping"
EOF = "eof"  # the end of the response's body, which follows the final event
RESET = "reset"  # the connection broke at one end (a crashed process's kernel resets it)
CLOSE = "close"  # the client closed the connection (its FIN)

# Message types of the control frames (events keep the type of the request they answer).
KEEPALIVE_TYPE = "sse.keepalive"
EOF_TYPE = "sse.eof"
RESET_TYPE = "sse.reset"
CLOSE_TYPE = "sse.close"  # the only control frame a client sends


class SseSettings(BaseModel):
    """What an SSE client and server do, with the defaults of the real implementations.

    Sources: WHATWG HTML §9.2 (Server-sent events); Chromium and Node's undici
    EventSource (`defaultReconnectionTime = 3000`); sse-starlette 3.4
    (`DEFAULT_PING_INTERVAL = 15`) and aiohttp-sse 2.2 (15 s pings); RFC 6298 (TCP's
    minimum retransmission timeout). See `../shared/research/protocol-semantics.md` §3.

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


@dataclass(slots=True)
class Open:
    """The body of a GET: which stream, from which event on, and the request's payload.

    `stream` is the key of the stream: the msg_id of its first GET (a URL such as
    `/tasks/{id}/events` in a real API). `last_event_id` is the `Last-Event-ID` header
    (0: none). `resume` is false until the client has had a 200 for the stream: until
    then the server may never have seen it (a lost GET), so the GET asks to start it.
    """

    stream: str
    last_event_id: int = 0
    body: Any = None
    resume: bool = False


@dataclass(slots=True)
class Frame:
    """A piece of a response: its stream, its place on the connection, what it says."""

    stream: str
    # Position on the connection: 0 is the status line; -1 for resets and FINs, which
    # act at once whatever is still on the way.
    n: int
    name: str
    event_id: int = 0
    status: int = 0
    error: str = ""
    retry: float | None = None
    data: Any = None
