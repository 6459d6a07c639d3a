"""What HTTP puts on the wire: request and response bodies, and handshake messages."""

from __future__ import annotations

from typing import Any, Final

from protocols.handshake import Handshake

# Final: compiled, a constant in the code that uses it, not a lookup in a module dict.
PROTOCOL: Final = "http"
RESPONSE_BYTES: Final = 256
# A TCP segment or a TLS flight of the handshake: headers only.
CONTROL_BYTES: Final = 64

# Handshake messages: the client sends the first of each pair, the server answers.
SYN, SYN_ACK = "tcp.syn", "tcp.syn-ack"
TLS_HELLO, TLS_DONE = "tls.client-hello", "tls.server-finished"
HANDSHAKE = Handshake((SYN, SYN_ACK), (TLS_HELLO, TLS_DONE))
RST: Final = "tcp.rst"
# The caller gave up on a request (its causation id) and asks the server to stop.
CANCEL: Final = "http.cancel"


class HttpRequest:
    """A request's method and payload, on connection `conn` of its caller.

    Its Idempotency-Key and deadline travel in the message's envelope fields.
    """

    __slots__ = ("conn", "method", "payload")

    def __init__(self, conn: int, method: str, payload: Any) -> None:
        self.conn = conn
        self.method = method
        self.payload = payload


class HttpResponse:
    """A response's status, and the Retry-After it carries (0 when none)."""

    __slots__ = ("replayed", "retry_after", "status")

    def __init__(self, status: int, retry_after: float = 0.0, replayed: bool = False) -> None:
        self.status = status
        self.retry_after = retry_after
        self.replayed = replayed

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, HttpResponse)
            and other.status == self.status
            and other.retry_after == self.retry_after
        )

    def __repr__(self) -> str:
        return f"HttpResponse({self.status}, retry_after={self.retry_after})"


def payload_of(body: Any) -> Any:
    """The application payload of a request body (the body itself if not HTTP)."""
    return body.payload if isinstance(body, HttpRequest) else body
