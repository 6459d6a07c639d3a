"""Calls over WebSocket: a request and its response as data messages on a connection.

A request goes out on the session to the callee (opened if need be) and the call ends on
the response whose causation id is the request's id, on its timeout, or in error when
the session closes for good. A request on the wire when the connection dropped is sent
again on the next connection (attempt + 1): the server may do the work twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from protocols.call import Call, CallResult, abort_all, status_result
from protocols.node import Node
from protocols.transport import Message
from protocols.websocket.session import WsSession
from protocols.websocket.wire import PROTOCOL


class WebSocketClient:
    """The calling side: calls over the sessions that `connect(dst)` gives."""

    def __init__(self, node: Node, connect: Callable[[str], WsSession]) -> None:
        self.node = node
        self.pending: dict[str, Call] = {}
        self._connect = connect

    def call(
        self,
        dst: str,
        type_: str,
        correlation_id: str,
        timeout: float | None = 5.0,
        parent: int = -1,
        size_bytes: int = 256,
        body: Any = None,
        causation_id: str = "",
        on_done: Callable[[CallResult], None] | None = None,
        attempt: int = 1,
        idempotency_key: str = "",
        deadline: float | None = None,
    ) -> Call:
        """Send a request over the connection to `dst` (opened or reused); see the module.

        The Call ends on the response, its timeout, or when the session closes for good
        (or drops, under `when_disconnected="fail"`); a refusal may end it before return.
        `attempt` is the caller's attempt number (a retry's request counts on from it),
        and `deadline` (absolute; `timeout` from now when None) and `idempotency_key`
        travel with the request, as over HTTP.
        """
        node = self.node
        now = node.env.now
        if deadline is None:
            deadline = now + timeout if timeout is not None else math.inf
        span = node.journal.span_start(
            type_, "client", node.id, dst, PROTOCOL, now, parent, correlation_id,
            deadline if deadline != math.inf else math.nan,
        )  # fmt: skip
        app = Message(
            msg_id=node.new_id(),
            type=type_,
            src=node.id,
            dst=dst,
            kind="request",
            protocol=PROTOCOL,
            version=node.version,
            correlation_id=correlation_id,
            causation_id=causation_id,
            span=span,
            attempt=attempt,
            size_bytes=size_bytes,
            body=body,
            deadline=deadline,
            idempotency_key=idempotency_key,
        )
        session = self._connect(dst)
        key, inflight = app.msg_id, session.inflight

        def done(result: CallResult) -> None:
            inflight.pop(key, None)
            if on_done is not None:
                on_done(result)

        call = Call(self, key, span, timeout, done)
        session.enqueue(app, call)
        return call

    def on_response(self, app: Message) -> None:
        """A response arrived: end the call it answers (a late one is ignored)."""
        call = self.pending.get(app.causation_id)
        if call is not None:
            call.end(status_result(int(app.body)))

    def reset(self) -> None:
        """The caller crashed: its calls end in error, and nobody is told."""
        abort_all(self)
