"""A2A settings: the interaction mode, its timings and push delivery, with their sources.

Sources: the A2A specification 1.0 (a2aproject/A2A `docs/specification.md`), and the
reference SDK a2a-python 1.1 (`a2aproject/a2a-python`): its push sender makes one POST per
notification and never retries (`BasePushNotificationSender`), and its client's bare
`httpx.AsyncClient()` times out after 5 s. Values the specification leaves to the
deployment (poll interval, chunk pace, the proxy's idle timeout) are scenario values.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["blocking", "streaming", "polling", "push"]


class A2aSettings(BaseModel):
    """How an A2A client follows a task, and how the server runs and reports it.

    The client reads the mode and its timings; the server reads the chunk pace, the
    capabilities of its Agent Card, the keep-alive and the push delivery fields. The
    proxy in front of the server (an nginx, a load balancer) reads `proxy_idle_timeout`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal["1.0", "0.3"] = Field(
        "1.0",
        description="Protocol version. 1.0's SubscribeToTask sends the Task first (spec "
        "§3.1.6); 0.3's tasks/resubscribe only the events from then on, so artifact "
        "chunks made while disconnected are lost to a streaming client.",
    )
    mode: Mode = Field(
        "streaming",
        description="blocking SendMessage; streaming (SendStreamingMessage over SSE); "
        "polling (return_immediately, then GetTask every poll_interval); push "
        "(return_immediately plus a webhook the server POSTs to). a2a-python's client "
        "defaults to streaming.",
    )
    card: bool = Field(
        True,
        description="Read the callee's Agent Card (GET /.well-known/agent-card.json) "
        "before the first call, and refuse a mode its capabilities lack.",
    )
    poll_interval: float = Field(
        5.0, gt=0, description="Seconds between GetTask polls (a scenario value)."
    )
    rpc_timeout: float = Field(
        5.0,
        gt=0,
        description="Seconds a short RPC (card, GetTask, CancelTask, a non-blocking send) "
        "waits for its answer: httpx's default, which a2a-python's bare client keeps.",
    )
    resubscribe: bool = Field(
        True,
        description="After a stream of a known task breaks, SubscribeToTask again (the "
        "application's choice: the SDK exposes the call, it does not reconnect itself).",
    )
    resubscribe_delay: float = Field(
        1.0, ge=0, description="Seconds before subscribing again (a scenario value)."
    )
    read_timeout: float | None = Field(
        None,
        gt=0,
        description="The client's watchdog on a stream: no bytes for this long breaks it. "
        "None: none (a dead stream is noticed only if it is closed or reset).",
    )
    stall_timeout: float = Field(
        1.0,
        gt=0,
        description="A hole in a stream (a lost event) that stays open this long breaks "
        "it: TCP's minimum retransmission timeout (RFC 6298), as for SSE.",
    )
    # -- server ---------------------------------------------------------------------------
    streaming: bool = Field(True, description="The Agent Card's capabilities.streaming.")
    push_notifications: bool = Field(
        True, description="The Agent Card's capabilities.pushNotifications."
    )
    chunk_interval: float | None = Field(
        10.0,
        gt=0,
        description="Seconds between the artifact chunks a working task emits (append=true); "
        "the last chunk (last_chunk=true) comes with its completion. None: one chunk.",
    )
    input_required: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Probability that a task asks its client for input once, when a worker "
        "first takes it (INPUT_REQUIRED); the client answers after its answer delay.",
    )
    auth_required: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Probability that a task needs credentials its client must supply "
        "(AUTH_REQUIRED, spec §7.6), decided when a worker first takes it; the client "
        "supplies them, or declines, after its auth delay.",
    )
    auth_timeout: float | None = Field(
        600.0,
        gt=0,
        description="Seconds the agent waits at auth-required before it fails the task. The "
        "spec sets none; 600 s is the longest lifetime RFC 6749 §4.1.2 recommends for an "
        "OAuth authorization code. None: it waits for ever (reported open at the end).",
    )
    keepalive: float | None = Field(
        None,
        gt=0,
        description="Seconds between SSE comments on an open task stream (None: none, so "
        "a stream is silent between events).",
    )
    proxy_idle_timeout: float | None = Field(
        None,
        gt=0,
        description="A proxy in front of the server cuts a response that sent no byte for "
        "this long (nginx's proxy_read_timeout: 60 s). A blocking send is answered 504; a "
        "stream ends. None: no proxy.",
    )
    push_retries: int = Field(
        0,
        ge=0,
        description="Retries of a push notification whose POST failed or timed out. The "
        "spec makes them a MAY (§4.3.3); a2a-python makes one POST and never retries: 0.",
    )
    push_backoff: float = Field(
        1.0, gt=0, description="Seconds before the first push retry; doubles after each."
    )
    push_timeout: float = Field(
        5.0,
        gt=0,
        description="Seconds a push POST waits for the webhook's 2xx: httpx's default "
        "(the spec says a webhook timeout SHOULD be 10-30 s).",
    )
    request_bytes: int = Field(512, ge=0, description="Size of a JSON-RPC request.")
    event_bytes: int = Field(512, ge=0, description="Size of a stream event or push body.")
    response_bytes: int = Field(512, ge=0, description="Size of a JSON-RPC response.")


DEFAULTS = A2aSettings()
