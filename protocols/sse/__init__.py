"""Server-Sent Events: streams that reconnect with Last-Event-ID, and a stream server.

    sse = SseEndpoint(node, SseServer(node, workers=4, handler=handle, settings=settings))
    call = sse.client.call("B", "task.run", "req-1", timeout=120)   # same as HTTP
    stream = sse.client.open("B", "task.run", "req-2", on_event=...)  # the richer handle

See `client` for the EventSource side, `stream` for one stream's processing model
(reconnects, replay, the watchdogs), `server` for the serving side (a job per stream,
progress events, a replay buffer), `settings` for both sides' knobs and their sources,
`wire` for the frames on the wire, and `endpoint` for the routing of one node's frames.
"""

from protocols.sse.client import SseClient
from protocols.sse.endpoint import SseEndpoint
from protocols.sse.server import ServerStream, SseServer, refuse
from protocols.sse.settings import DEFAULTS, SseSettings
from protocols.sse.stream import SseStream, StreamCall
from protocols.sse.wire import FINAL, PROGRESS, PROTOCOL, Frame, Open

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
    "refuse",
]
