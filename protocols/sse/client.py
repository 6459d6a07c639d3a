"""The EventSource side of Server-Sent Events: opens streams, routes what arrives to them.

Each stream (`stream.SseStream`) reconnects by itself with Last-Event-ID; the client
holds the streams in flight, gives each the settings of its callee, and on a crash ends
their calls (its kernel resets their connections).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from protocols.call import Call, CallResult, abort_all, start_call_span
from protocols.node import Node
from protocols.sse.settings import DEFAULTS, SseSettings
from protocols.sse.stream import OPEN_STATE, EventHook, SseStream, StreamCall
from protocols.sse.wire import PROTOCOL, RESET, Frame
from protocols.transport import Message


class SseClient:
    """The client side: opens streams and routes what arrives to them.

    `settings` is one SseSettings for every callee, or a function of the callee (a
    scenario's channels). `on_close(stream)`, when set, is told of every stream that ends
    (not of those a crash aborts): the hook to record the span's extra columns from
    `stream.span_extras()`.
    """

    def __init__(
        self, node: Node, settings: SseSettings | Callable[[str], SseSettings] | None = None
    ) -> None:
        self.node = node
        if settings is None or isinstance(settings, SseSettings):
            fixed = settings or DEFAULTS
            self.settings_for: Callable[[str], SseSettings] = lambda _dst: fixed
        else:
            self.settings_for = settings
        self.pending: dict[str, Call] = {}
        self.streams: dict[str, SseStream] = {}
        self.on_close: Callable[[SseStream], None] | None = None

    def open(
        self,
        dst: str,
        type_: str,
        correlation_id: str,
        timeout: float | None = None,
        parent: int = -1,
        size_bytes: int = 256,
        body: Any = None,
        causation_id: str = "",
        on_done: Callable[[CallResult], None] | None = None,
        on_event: EventHook | None = None,
        attempt: int = 1,
        idempotency_key: str = "",
        deadline: float | None = None,
    ) -> SseStream:
        """Open a stream to `dst`; `on_event(stream, frame)` is told of each event once.

        `timeout` bounds the whole stream, reconnects included. `deadline` (absolute,
        default now + timeout) travels on every GET; `attempt` numbers the first GET (a
        retried call's), and each reconnect counts on from it.
        """
        node = self.node
        span, deadline = start_call_span(
            node, type_, dst, PROTOCOL, timeout, deadline, parent, correlation_id
        )
        key = node.new_id()
        stream = SseStream(
            node,
            self.settings_for(dst),
            key,
            dst,
            type_,
            correlation_id,
            causation_id,
            span,
            size_bytes,
            body,
            on_event,
            attempt,
            deadline if deadline == deadline else math.inf,  # NaN: none
            idempotency_key,
            self._closed,
        )
        self.streams[key] = stream
        call = StreamCall(self, key, span, timeout, on_done)
        call.stream = stream
        stream.call = call
        stream.connect(key)
        return stream

    def call(
        self,
        dst: str,
        type_: str,
        correlation_id: str,
        timeout: float | None = None,
        parent: int = -1,
        size_bytes: int = 256,
        body: Any = None,
        causation_id: str = "",
        on_done: Callable[[CallResult], None] | None = None,
        attempt: int = 1,
        idempotency_key: str = "",
        deadline: float | None = None,
    ) -> Call:
        """Open a stream; the Call ends with its final event, its timeout or a failure.

        The same arguments as `HttpClient.call`. The result's status is the final event's
        (or the failing connect's); code in a process yields `call.wait()`.
        """
        stream = self.open(
            dst,
            type_,
            correlation_id,
            timeout,
            parent,
            size_bytes,
            body,
            causation_id,
            on_done,
            attempt=attempt,
            idempotency_key=idempotency_key,
            deadline=deadline,
        )
        return stream.call

    def on_frame(self, msg: Message) -> None:
        """A frame arrived: give it to its stream if it is of the current connection."""
        frame: Frame = msg.body
        stream = self.streams.get(frame.stream)
        if stream is not None and msg.causation_id == stream.conn:
            stream.arrive(frame)

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A GET was refused (the server is down): a network error, so reconnect later."""
        if msg.kind != "request":
            return
        stream = self.streams.get(msg.body.stream)
        if stream is not None and stream.conn == msg.msg_id:
            stream.broken(f"{msg.dst} refused the connection ({outcome})", failed=True)

    def _closed(self, stream: SseStream) -> None:
        # The stream's call has ended: forget it, then tell the hook.
        self.streams.pop(stream.key, None)
        if self.on_close is not None:
            self.on_close(stream)

    def reset(self) -> None:
        """The client crashed: its calls end in error; its kernel resets its connections."""
        for stream in self.streams.values():
            if stream.state == OPEN_STATE and stream.settings.crash_resets:
                stream.send_close(RESET)
        abort_all(self)
        self.streams.clear()
