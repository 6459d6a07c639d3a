"""What a WebSocket puts on the wire: frames, message types and sizes, close codes.

Every WebSocket message is a `protocols.transport.Message` with `protocol="websocket"`;
its `body` is a `Frame`. The opening handshake is TCP, TLS 1.3 and the HTTP upgrade, each
step a `control` message (see `connection`); after it, frames are numbered by the TCP
stream under the connection (see `stream`), data messages carrying the application's
type and kind.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import Any

from protocols.handshake import Handshake
from protocols.transport import Message

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

# The client's handshake steps and the server's answer to each.
HANDSHAKE = Handshake((SYN, SYN_ACK), (TLS_HELLO, TLS_DONE), (UPGRADE, ACCEPT))

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


# The states of a connection (RFC 6455 section 4 and 7).
CONNECTING, OPEN, CLOSING, CLOSED = "connecting", "open", "closing", "closed"


def check_code(code: int) -> int:
    """A close code an application may send, or ValueError (as websockets refuses them)."""
    if code in LOCAL_ONLY or not (1000 <= code <= 4999):
        raise ValueError(f"close code {code} cannot be sent: 1005, 1006 and 1015 are local")
    return code


def describe(code: int, reason: str = "") -> str:
    """A close code as a sentence for the spans table: "close 1011: keepalive ping timeout"."""
    return f"close {code}: {reason or CLOSE_REASONS.get(code, 'closed')}"


# `Message.copy` is `dataclasses.replace`, the largest single cost of a WebSocket run
# (each frame is a copy of the application's message). Reading every field at once and
# passing them positionally is five times cheaper, and follows the dataclass's fields.
_FIELDS = dataclasses.fields(Message)
_VALUES = operator.attrgetter(*(f.name for f in _FIELDS))
_POSITIONAL = all(f.init and not f.kw_only for f in _FIELDS)


def rebody(m: Message, body: Any, attempt: int) -> Message:
    """A copy of `m` with another body and attempt (as `m.copy(body=..., attempt=...)`)."""
    if not _POSITIONAL:
        return m.copy(body=body, attempt=attempt)
    new = Message(*_VALUES(m))
    new.body = body
    new.attempt = attempt
    return new
