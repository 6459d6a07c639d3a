"""Server-Sent Events: the frames both sides put on the wire.

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
lost, and the client rebuilds the byte stream in order as TCP would (see `stream`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    # A refused status line's Retry-After header, in seconds (0: none).
    retry_after: float = 0.0
