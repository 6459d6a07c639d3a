"""HTTP settings, with the defaults of the libraries real agents use.

Client defaults are httpx 0.28's (`httpx/_config.py`): 100 connections, 20 kept alive
for 5 s, 5 s timeouts for the pool, the connect and the read. Server defaults: a 1 s
Retry-After on 503 and 429, and idempotency keys kept for a day (the IETF draft leaves
the expiry to the resource).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Method = Literal["GET", "POST", "PUT", "DELETE"]

# RFC 9110 section 9.2.2: safe methods, PUT and DELETE are idempotent; POST is not.
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE"})


class HttpClientSettings(BaseModel):
    """How a caller talks HTTP to one callee: its pool, handshake and method."""

    model_config = ConfigDict(extra="forbid")

    max_connections: int = Field(100, ge=1, description="Connections open at most (httpx: 100).")
    max_keepalive: int = Field(20, ge=0, description="Idle connections kept for reuse (httpx: 20).")
    keepalive_expiry: float = Field(
        5.0, ge=0, description="Seconds an idle connection is kept (httpx: 5)."
    )
    pool_timeout: float = Field(
        5.0, gt=0, description="Seconds a call waits for a free connection (httpx: 5)."
    )
    connect_timeout: float = Field(
        5.0, gt=0, description="Seconds to open a connection, TCP and TLS (httpx: 5)."
    )
    tls: bool = Field(True, description="TLS 1.3 costs one more round trip to connect.")
    syn_rto: float = Field(
        1.0, gt=0, description="First SYN retransmission timeout, doubling (Linux: 1 s)."
    )
    method: Method = "POST"
    idempotency_key: bool = Field(
        False, description="Send an Idempotency-Key, which makes a POST safe to retry."
    )

    @property
    def idempotent(self) -> bool:
        """Whether a retry of this request is safe (RFC 9110, or an idempotency key)."""
        return self.method in IDEMPOTENT_METHODS or self.idempotency_key


class HttpServerSettings(BaseModel):
    """How a service answers HTTP: rate limit, Retry-After, idempotency-key store."""

    model_config = ConfigDict(extra="forbid")

    rate_limit: float | None = Field(
        None, gt=0, description="Requests per second admitted; past it the answer is 429."
    )
    burst: int = Field(10, ge=1, description="Requests the rate limiter lets through at once.")
    retry_after: float = Field(
        1.0, ge=0, description="Retry-After sent with a 503 when the accept queue is full."
    )
    idempotency_ttl: float = Field(
        86400.0, gt=0, description="Seconds a stored result is replayed for its key."
    )
    dedupe: bool = Field(
        False,
        description="An idempotent receiver: a request without an Idempotency-Key is keyed by "
        "its message id, so a duplicate copy is answered from the store, not handled again.",
    )
    drop_expired: bool = Field(
        False,
        description="Answer 504 at once, without working, when a request's deadline has "
        "passed by the time a worker takes it (or is closer than `drop_margin`).",
    )
    drop_margin: float = Field(
        0.0,
        ge=0,
        description="Seconds of work a request must still have time for to be worth starting.",
    )
