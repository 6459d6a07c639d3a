"""HTTP request-response: a blocking client over pooled connections, and a server.

    endpoint = HttpEndpoint(node, HttpServer(node, workers=4, handler=handler))
    call = endpoint.client.call("B", "task.run", "req-1", timeout=5, on_done=print)

See `client` for calls, handshakes and timeouts (httpx's semantics), `pool` for its
connections to one callee, `server` for the worker pool, 429/503 and Idempotency-Key,
`settings` for both sides' knobs and their defaults, `wire` for the messages on the
wire, and `endpoint` for the routing of one node's HTTP messages.
"""

# A mypyc build of the hot path's modules, when one is built and current (see
# protocols.compiled), is imported in their place.
from protocols.compiled import extend as _extend

__path__ = _extend(__path__, __name__)

from protocols.http.client import HttpClient
from protocols.http.endpoint import HttpEndpoint
from protocols.http.server import HttpServer, send_control, send_response
from protocols.http.settings import HttpClientSettings, HttpServerSettings
from protocols.http.wire import PROTOCOL, HttpRequest, HttpResponse, payload_of

__all__ = [
    "PROTOCOL",
    "HttpClient",
    "HttpClientSettings",
    "HttpEndpoint",
    "HttpRequest",
    "HttpResponse",
    "HttpServer",
    "HttpServerSettings",
    "payload_of",
    "send_control",
    "send_response",
]
