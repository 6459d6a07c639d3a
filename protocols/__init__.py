"""The protocols agents talk over, and the resilience machinery around their calls.

The shared base, which every protocol package builds on:

- `transport`: the interface a protocol sends over (a `Message` from A to B), and a
  perfect transport for tests;
- `node`: an agent's presence on the network: routing to endpoints, clock, lifecycle;
- `journal`: what protocols tell the trace (spans, queue samples, breaker transitions);
- `call`: a call in flight, for every protocol, and the outcome of an answer's status;
- `workers`: a server's worker pool, the span it keeps per request, its crash drain;
- `handshake`: the opening handshake of a connection (TCP, TLS, an upgrade);
- `kernel`: the only module that touches SimPy's internals;
- `envelope` and `schemas`: message envelopes and their versioned schemas.

The protocol packages, each with `client`, `server`, `settings`, `wire` and `endpoint`
modules, and independent of each other: `http`, `sse`, `websocket`, `queue` (with its
broker). `resilience` holds the policies a call goes through whatever carries it
(breaker, backoff, budgets, deadlines, fan-out). `negotiation` is an agents' negotiation
over WebSocket.
"""

# A mypyc build of the hot path's modules, when one is built and current (see
# protocols.compiled), is imported in their place.
from protocols.compiled import extend as _extend

__path__ = _extend(__path__, __name__)
