"""Server-Sent Events on one node: an EventSource client always, a stream server if it serves.

The endpoint routes a GET and the client's hang-ups to the server, and the response's
frames to the client; a GET that finds no server is answered 404.
"""

from __future__ import annotations

from protocols.endpoint_base import ClientServerEndpoint
from protocols.node import Node
from protocols.sse.client import SseClient
from protocols.sse.server import SseServer, refuse
from protocols.sse.settings import DEFAULTS, SseSettings
from protocols.sse.wire import CLOSE_TYPE, PROTOCOL
from protocols.transport import Message


class SseEndpoint(ClientServerEndpoint[SseClient, SseServer]):
    """SSE on one node: routes GETs to the server and the response's frames to the client."""

    def __init__(
        self,
        node: Node,
        server: SseServer | None = None,
        client: SseClient | None = None,
        settings: SseSettings | None = None,
    ) -> None:
        super().__init__(node, PROTOCOL, CLOSE_TYPE, client or SseClient(node, settings), server)

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
