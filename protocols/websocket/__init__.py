"""WebSocket for agents: sessions that reconnect, calls over a connection, a server side.

    ws = WebSocketEndpoint(node, WebSocketSettings(), server=WebSocketServer(node, 4, handler))
    session = ws.connect("critic")        # opens; reopens after an abnormal close
    session.send("draft", body=..., size_bytes=2048)  # an event: True once on the wire
    msg = yield session.recv()            # or ws.handle("draft", fn(channel, msg))
    call = ws.call("svc", "task", "t-1", timeout=5)   # request and reply over the connection

The layers, bottom up, each holding the one below rather than inheriting from it:
`stream` (the TCP under a connection: ordered, reliable, with a window in messages),
`connection` (opening handshake, keepalive, closing handshake, over its stream),
`session` (a client's reconnecting session, over its connections), and `endpoint` (the
node's routing of frames to connections, accepting, and the application's handlers).
Beside them: `channel` (send / recv as an application sees them, on a session or a
server's connection), `client` and `server` (calls: a request and its reply as data
messages), `settings` (the defaults and the reconnection backoff), `wire` (frames,
message types and sizes, close codes).
"""

from protocols.websocket.channel import Channel
from protocols.websocket.client import WebSocketClient
from protocols.websocket.connection import WsConn
from protocols.websocket.endpoint import WebSocketEndpoint
from protocols.websocket.server import WebSocketServer
from protocols.websocket.session import WsSession
from protocols.websocket.settings import WebSocketSettings
from protocols.websocket.stream import Stream
from protocols.websocket.wire import PROTOCOL, Frame, rebody

__all__ = [
    "PROTOCOL",
    "Channel",
    "Frame",
    "Stream",
    "WebSocketClient",
    "WebSocketEndpoint",
    "WebSocketServer",
    "WebSocketSettings",
    "WsConn",
    "WsSession",
    "rebody",
]
