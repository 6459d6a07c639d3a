"""WebSocket settings with the real defaults, and the reconnection backoff.

Defaults come from RFC 6455 and the Python `websockets` library 17.x
(`src/websockets/asyncio/client.py`, `connect.__init__` and `client.backoff`). The
transport-level numbers (retransmission timeout, delayed acknowledgement) follow RFC 6298
and Linux, because a WebSocket runs over TCP and the simulator's network loses and
reorders messages: TCP's job is to hide that from the WebSocket, at the price of latency.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
