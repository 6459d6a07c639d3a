"""WebSocket settings with the real defaults, close codes, frame sizes and the backoff.

Defaults come from RFC 6455 and the Python `websockets` library 17.x
(`src/websockets/asyncio/client.py`, `connect.__init__` and `client.backoff`), as
summarised in `shared/research/protocol-semantics.md` section 4. The transport-level
numbers (retransmission timeout, delayed acknowledgement) follow RFC 6298 and Linux,
because a WebSocket runs over TCP and the simulator's network loses and reorders
messages: TCP's job is to hide that from the WebSocket, at the price of latency.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PROTOCOL = "websocket"

# Close codes (RFC 6455 section 7.4.1). 1006 is local only: it is never put on the wire.
NORMAL = 1000
GOING_AWAY = 1001
ABNORMAL = 1006
TOO_BIG = 1009
INTERNAL_ERROR = 1011
# Codes an endpoint must never send (RFC 6455 7.4.1): no status, abnormal, TLS failure.
LOCAL_ONLY = (1005, ABNORMAL, 1015)
# websockets raises ConnectionClosedOK for these two, ConnectionClosedError otherwise.
CLEAN_CODES = (NORMAL, GOING_AWAY)
CLOSE_REASONS = {
    NORMAL: "normal closure",
    GOING_AWAY: "going away",
    ABNORMAL: "abnormal closure",
    TOO_BIG: "message too big",
    INTERNAL_ERROR: "internal error",
}

# Message types of the frames the library sends on its own (the `control` kind unless
# noted). The opening handshake is TCP (SYN / SYN-ACK), TLS 1.3 (one round trip) and the
# HTTP upgrade (GET with `Upgrade: websocket` / `101 Switching Protocols`).
SYN, SYN_ACK = "ws.syn", "ws.syn-ack"
TLS_HELLO, TLS_DONE = "ws.tls-hello", "ws.tls-done"
UPGRADE, ACCEPT = "ws.upgrade", "ws.accept"
PING, PONG = "ws.ping", "ws.pong"  # kinds `ping` and `pong`
CLOSE = "ws.close"
ACK = "ws.ack"  # kind `ack`: a TCP acknowledgement and window update with no payload
RST = "ws.rst"  # a TCP reset: the peer has no such connection (it crashed, or closed it)

# The server's answer to each client handshake message.
ANSWERS = {SYN: SYN_ACK, TLS_HELLO: TLS_DONE, UPGRADE: ACCEPT}

# Wire sizes in bytes, for the trace and bandwidth-limited links. TCP/IP headers are 40
# bytes (52 with timestamps); a TLS 1.3 ClientHello is about 500 bytes and the server's
# flight (ServerHello ... Finished, with a certificate chain) about 4 KB; the upgrade
# request and the 101 response are a few hundred bytes of HTTP headers; a ping, pong or
# close frame carries at most 125 bytes of payload (RFC 6455 section 5.5).
SIZES = {
    SYN: 60,
    SYN_ACK: 60,
    TLS_HELLO: 517,
    TLS_DONE: 4000,
    UPGRADE: 300,
    ACCEPT: 160,
    PING: 52,
    PONG: 52,
    CLOSE: 60,
    ACK: 52,
    RST: 40,
}
RESPONSE_BYTES = 256


@dataclass(slots=True)
class Frame:
    """What a WebSocket message carries besides its payload (its `Message.body`).

    `seq` numbers the frames of a connection in each direction (0: not in the stream:
    handshake, pure acknowledgements, resets); `ack` is the last frame received in
    order and `consumed` the data messages the application has taken, so every frame
    doubles as a window update, as TCP's acknowledgements do.
    """

    conn: str
    seq: int = 0
    ack: int = 0
    consumed: int = 0
    payload: Any = None
    code: int = 0
    window: int = 0


class WebSocketSettings(BaseModel):
    """The knobs of a WebSocket channel; defaults are the `websockets` 17.x ones.

    Sources: `websockets` `asyncio.client.connect` (open_timeout=10, ping_interval=20,
    ping_timeout=20, close_timeout=10, max_size=2**20, max_queue=16 with a low-water mark
    of max_queue // 4); `websockets.client.backoff` (5 / 3.1 / 1.618 / 90, overridable by
    the WEBSOCKETS_BACKOFF_* variables); RFC 6455 section 7.2.3 (a random first delay of
    up to 5 s after an abnormal closure); RFC 6298 (initial and minimum RTO of 1 s);
    Linux (maximum RTO 120 s, delayed ACK 200 ms).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    open_timeout: float | None = Field(
        10.0, gt=0, description="TCP + TLS + HTTP upgrade must finish within it (websockets)."
    )
    ping_interval: float | None = Field(
        20.0, gt=0, description="Seconds between keepalive pings; None: no pings (websockets)."
    )
    ping_timeout: float | None = Field(
        20.0, gt=0, description="No pong within it: close 1011 (websockets)."
    )
    close_timeout: float | None = Field(
        10.0, gt=0, description="Wait for the closing handshake, then abort (websockets)."
    )
    max_size: int | None = Field(
        2**20, gt=0, description="A larger incoming message closes with 1009 (websockets)."
    )
    max_queue: int = Field(
        16, ge=1, description="Messages the receiver queues unread before the sender waits."
    )
    max_queue_low: int | None = Field(
        None, ge=0, description="Reading resumes at this depth (websockets: max_queue // 4)."
    )
    tls: bool = Field(True, description="wss:// (TLS 1.3 adds one round trip to the open).")
    reconnect: bool = Field(True, description="The client reconnects after an abnormal close.")
    backoff_initial: float = Field(5.0, ge=0, description="First delay: uniform in [0, this].")
    backoff_min: float = Field(3.1, gt=0, description="Second delay (websockets).")
    backoff_factor: float = Field(1.618, ge=1, description="Growth per failed open.")
    backoff_max: float = Field(90.0, gt=0, description="Delays stop growing here.")
    when_disconnected: Literal["buffer", "fail"] = Field(
        "buffer",
        description="Sends while reconnecting wait in a buffer, or fail at once (as "
        "websockets' send() raises ConnectionClosed).",
    )
    send_buffer: int = Field(
        1024, ge=0, description="Messages held while disconnected; past it a send fails."
    )
    rto_initial: float = Field(1.0, gt=0, description="TCP retransmission timeout (RFC 6298).")
    rto_min: float = Field(1.0, gt=0, description="Lower bound of the RTO (RFC 6298 2.4).")
    rto_max: float = Field(120.0, gt=0, description="Upper bound of the RTO (Linux).")
    ack_delay: float = Field(0.2, ge=0, description="Delayed acknowledgement (Linux 200 ms).")

    @property
    def low_water(self) -> int:
        """The depth at which a paused reader resumes (websockets' default: a quarter)."""
        if self.max_queue_low is not None:
            return min(self.max_queue_low, self.max_queue)
        return self.max_queue // 4


def backoff(settings: WebSocketSettings, rng: random.Random) -> Iterator[float]:
    """The delays between failed opens, exactly as `websockets.client.backoff` yields them.

    A random first delay in [0, 5] s (RFC 6455 section 7.2.3), then 3.1 s times 1.618 per
    failure while below 90 s, then 90 s forever: 3.1, 5.0158, 8.1156, ..., 89.99, 90.
    """
    yield rng.random() * settings.backoff_initial
    delay = settings.backoff_min
    while delay < settings.backoff_max:
        yield delay
        delay *= settings.backoff_factor
    while True:
        yield settings.backoff_max


def check_code(code: int) -> int:
    """A close code an application may send, or ValueError (as websockets refuses them)."""
    if code in LOCAL_ONLY or not (1000 <= code <= 4999):
        raise ValueError(f"close code {code} cannot be sent: 1005, 1006 and 1015 are local")
    return code


def describe(code: int, reason: str = "") -> str:
    """A close code as a sentence for the spans table: "close 1011: keepalive ping timeout"."""
    return f"close {code}: {reason or CLOSE_REASONS.get(code, 'closed')}"
