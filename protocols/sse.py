"""Server-Sent Events on a node: an EventSource client always, a stream server if it serves.

    sse = SseEndpoint(node, SseServer(node, workers=4, handler=handle, settings=settings))
    call = sse.client.call("B", "task.run", "req-1", timeout=120)   # same as HTTP
    stream = sse.client.open("B", "task.run", "req-2", on_event=...)  # the richer handle

The client's side is in `sse_client` and `sse_stream` (streams that reconnect with
Last-Event-ID), the server's in `sse_server` (a job per stream, progress events, a replay
buffer), and the settings with their sources and the frames on the wire in `sse_common`.
"""

from __future__ import annotations

from protocols.node import Node
from protocols.sse_client import SseClient
from protocols.sse_common import (
    CLOSE_TYPE,
    DEFAULTS,
    FINAL,
    PROGRESS,
    PROTOCOL,
    Frame,
    Open,
    SseSettings,
)
from protocols.sse_server import ServerStream, SseServer, refuse
from protocols.sse_stream import SseStream, StreamCall
from protocols.transport import Message


class SseEndpoint:
    """SSE on one node: routes GETs to the server and the response's frames to the client."""

    def __init__(
        self,
        node: Node,
        server: SseServer | None = None,
        client: SseClient | None = None,
        settings: SseSettings | None = None,
    ) -> None:
        self.node = node
        self.client = client or SseClient(node, settings)
        self.server = server
        node.register(PROTOCOL, self)

    def on_message(self, msg: Message) -> None:
        """A GET or the client's hang-up goes to the server; the rest to the client."""
        kind = msg.kind
        if kind == "request":
            if self.server is not None:
                self.server.on_request(msg)
            else:
                # Nothing serves streams here: the host answers 404, which fails the stream.
                refuse(self.node, msg, 404, "no stream server", DEFAULTS.response_bytes)
        elif kind == "control" and msg.type == CLOSE_TYPE:
            # The client's hang-ups (FIN, or its kernel's reset) are the only control
            # frames a client sends; keep-alives and server resets go to the client.
            if self.server is not None:
                self.server.on_control(msg)
        else:
            self.client.on_frame(msg)

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A GET of ours was refused, or a frame of ours found its client down."""
        if msg.kind == "request":
            self.client.on_bounce(msg, outcome)
        elif self.server is not None and msg.type != CLOSE_TYPE:
            self.server.on_bounce(msg, outcome)

    def reset(self) -> None:
        """The node crashed."""
        self.client.reset()
        if self.server is not None:
            self.server.reset()


__all__ = [
    "DEFAULTS",
    "FINAL",
    "PROGRESS",
    "PROTOCOL",
    "Frame",
    "Open",
    "ServerStream",
    "SseClient",
    "SseEndpoint",
    "SseServer",
    "SseSettings",
    "SseStream",
    "StreamCall",
]
