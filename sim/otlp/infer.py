"""What a trace implies but does not record: messages, peers, protocols, agents, queues.

A trace holds operations, not the messages between them. Switchboard replays messages,
so an import infers them from span pairs, as a service map does:

- a **client span whose child is a server span** is a call: a `request` from the client
  span's start to the server span's start, and a `response` from the server span's end
  to the client span's end (`expired` if the client had given up first);
- a **producer span and a consumer span** linked by parent or by a span link is a queued
  message: a `publish` from the producer to the queue (its `messaging.destination.name`,
  or `broker`) and a `deliver` from the queue to the consumer when its span starts. The
  queue becomes an agent with the role `broker`, and its depth over time is the
  `queues` table.

Clocks of different hosts disagree, so a server span may start before its client span:
such a message is clamped to take no time, never to go back in time, and counted.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sim.otlp.common import dtype_default, is_address
from sim.otlp.parse import SpanRecord
from sim.trace.schema import AGENT_COLUMNS, DTYPES, QUEUE_COLUMNS, conform

CALLERS = frozenset({"client", "producer"})
# The role of a virtual node by the protocol its callers speak to it.
VIRTUAL_ROLES = {"db": "database", "cache": "cache"}
HANDLERS = frozenset({"server", "consumer"})
DEFAULT_BROKER = "broker"


@dataclass
class Pairs:
    """The calls and queued messages found among the spans."""

    calls: list[tuple[SpanRecord, SpanRecord]] = field(default_factory=list)
    queued: dict[str, list[SpanRecord]] = field(default_factory=dict)  # producer -> consumers
    unpaired: dict[str, int] = field(default_factory=dict)
    missing_parents: int = 0
    paired: set[str] = field(default_factory=set)
    # Calls to peers that recorded no spans (a database, an outside API), and messages
    # published that no consumer span received: as Tempo's service graph, the other
    # side becomes a virtual node.
    virtual: list[SpanRecord] = field(default_factory=list)
    unconsumed: list[SpanRecord] = field(default_factory=list)


def find_pairs(spans: list[SpanRecord]) -> Pairs:
    """Pair client with server spans and producer with consumer spans."""
    by_id = {s.span_id: s for s in spans}
    pairs = Pairs()
    paired: set[str] = set()
    queued: dict[str, list[SpanRecord]] = defaultdict(list)
    for s in spans:
        parent = by_id.get(s.parent_id)
        if s.parent_id and parent is None:
            pairs.missing_parents += 1
        if s.kind == "server" and parent is not None and parent.kind == "client":
            pairs.calls.append((parent, s))
            paired.update((parent.span_id, s.span_id))
        elif s.kind == "consumer":
            # Push delivery makes the producer the parent; batch receive links to it.
            ids = [s.parent_id, *s.links]
            producers = [by_id[i] for i in dict.fromkeys(ids) if i in by_id]
            for producer in producers:
                if producer.kind == "producer":
                    queued[producer.span_id].append(s)
                    paired.update((producer.span_id, s.span_id))
    pairs.queued = dict(queued)
    pairs.paired = paired
    unpaired: dict[str, int] = {}
    for s in spans:
        if s.kind in CALLERS | HANDLERS and s.span_id not in paired:
            unpaired[s.kind] = unpaired.get(s.kind, 0) + 1
    pairs.unpaired = dict(sorted(unpaired.items()))
    return pairs


def fill_peers_and_protocols(spans: list[SpanRecord], pairs: Pairs) -> None:
    """Name each span's peer (the other side's agent) and protocol, unless it said so."""
    by_id = {s.span_id: s for s in spans}
    partner: dict[str, str] = {}
    protocol: dict[str, str] = {}
    for client, server in pairs.calls:
        partner.setdefault(client.span_id, server.agent)
        partner.setdefault(server.span_id, client.agent)
        guess = _protocol(client) or _protocol(server) or "http"
        protocol.setdefault(client.span_id, guess)
        protocol.setdefault(server.span_id, guess)
    for producer_id, consumers in pairs.queued.items():
        producer = by_id[producer_id]
        partner.setdefault(producer_id, consumers[0].agent)
        for consumer in consumers:
            partner.setdefault(consumer.span_id, producer.agent)
    for s in spans:
        a = s.attrs
        if not s.peer:
            s.peer = partner.get(s.span_id) or _peer_attribute(s)
        if not s.protocol and "switchboard.protocol" not in a:
            s.protocol = protocol.get(s.span_id) or _protocol(s)
            if not s.protocol and s.kind in ("producer", "consumer"):
                s.protocol = "queue"
            elif not s.protocol and s.kind in ("client", "server"):
                s.protocol = "http"  # request-response: what our http protocol models


# Database systems (`db.system.name`) that are caches: their calls are `cache`, not `db`.
CACHE_SYSTEMS = frozenset(
    {"redis", "memcached", "valkey", "hazelcast", "aerospike", "geode", "coherence", "ignite"}
)
_DB_KEYS = ("db.system.name", "db.system", "db.type")  # new name, old, OpenTracing
_DB_MARKERS = ("db.namespace", "db.name", "db.query.text", "db.statement", "db.instance")


def find_virtual(spans: list[SpanRecord], pairs: Pairs) -> None:
    """The client spans whose server recorded nothing, and producer spans no consumer
    span received; run after `fill_peers_and_protocols` (it names the peers)."""
    # A client span around another client span of its service (a library under a
    # library): the inner one is the call.
    wraps = {s.parent_id for s in spans if s.kind == "client"}
    # A call to a service that did record spans but not this one's (sampled out, or the
    # request never arrived) is no virtual node: nothing is inferred for it.
    services = {s.agent for s in spans}
    for s in spans:
        if s.span_id in pairs.paired or s.span_id in wraps:
            continue
        if s.kind == "client" and s.peer and s.peer not in services:
            pairs.virtual.append(s)
        elif s.kind == "producer" and destination_of(s):
            pairs.unconsumed.append(s)


def _protocol(s: SpanRecord) -> str:
    """What a span's attributes say it talks: db, cache, rpc, queue, websocket, http, or
    "" when they name none. A database client over HTTP (say Elasticsearch) is still a
    database call, and gRPC is RPC though it rides on HTTP/2."""
    a = s.attrs
    system = next((str(a[k]) for k in _DB_KEYS if a.get(k)), "")
    if system or any(k in a for k in _DB_MARKERS):
        return "cache" if system.lower() in CACHE_SYSTEMS else "db"
    if a.get("rpc.system") or a.get("rpc.system.name"):
        return "rpc"
    if any(k in a for k in ("messaging.system", "messaging.destination.name",
                            "messaging.destination")):  # fmt: skip
        return "queue"
    if str(a.get("network.protocol.name", "")).lower() == "websocket":
        return "websocket"
    if any(k.startswith(("http.", "url.")) for k in a):
        return "http"
    return ""


# Attributes naming the other side of a span, in the order Tempo's service graphs read
# them (`peer.service`, its newer name, then addresses that are names, then the database).
_PEER_KEYS = {
    "client": ("peer.service", "service.peer.name", "server.address", "net.peer.name",
               "peer.hostname", "http.host", "db.namespace", "db.name", "db.system.name",
               "db.system", "db.type", "rpc.service"),
    "server": ("peer.service", "service.peer.name", "client.address"),
    "producer": ("peer.service", "service.peer.name"),
    "consumer": ("peer.service", "service.peer.name"),
}  # fmt: skip


def _peer_attribute(s: SpanRecord) -> str:
    a = s.attrs
    for key in _PEER_KEYS.get(s.kind, ("peer.service", "service.peer.name")):
        value = a.get(key)
        if value and isinstance(value, str | int) and not is_address(str(value)):
            return str(value)
    if s.kind in ("producer", "consumer"):
        return destination_of(s)
    return ""


def destination_of(s: SpanRecord) -> str:
    """The queue a messaging span names: `messaging.destination.name`, the older
    `messaging.destination`, or (RabbitMQ's default exchange) the routing key."""
    a = s.attrs
    for key in ("messaging.destination.name", "messaging.destination"):
        value = a.get(key)
        if isinstance(value, str) and value and value != "amq.default":
            return value
    for key in ("messaging.rabbitmq.destination.routing_key", "messaging.rabbitmq.routing_key"):
        value = a.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


# -- messages ---------------------------------------------------------------------------


@dataclass
class Inferred:
    """The inferred tables and what was adjusted to make them."""

    messages: pd.DataFrame
    queues: pd.DataFrame
    brokers: list[str]
    clock_skew_adjusted: int


def infer_messages(spans: list[SpanRecord], pairs: Pairs) -> Inferred:
    """The messages of the calls and queued messages, and the queues' depth over time."""
    rows: list[dict[str, Any]] = []
    skew = 0
    by_id = {s.span_id: s for s in spans}

    def add(**row: Any) -> str:
        nonlocal skew
        if row["delivered_at"] < row["sent_at"]:  # the receiver's clock is behind
            row["delivered_at"] = row["sent_at"]
            skew += 1
        given = row.pop("msg_id", "")
        # A temporary id, renumbered in time order once every message is known.
        msg_id = given or f"#{len(rows) + 1}"
        row["inferred_id"] = not given
        delivered = not math.isnan(row["delivered_at"])
        row.setdefault("outcome", "delivered" if delivered else "in_flight")
        row.setdefault("ended_at", row["delivered_at"])
        rows.append(dict(row, msg_id=msg_id))
        return msg_id

    attempt: dict[str, int] = defaultdict(int)
    started: dict[str, str] = {}  # handler span -> the message that started it
    for client, server in sorted(pairs.calls, key=lambda p: (p[1].start, p[1].order)):
        attempt[client.span_id] += 1
        request = add(
            type=client.name or server.name,
            protocol=client.protocol or server.protocol,
            kind="request",
            src=client.agent,
            dst=server.agent,
            correlation_id=client.correlation_id,
            causation_id="",
            span_id=client.span_id,
            attempt=attempt[client.span_id],
            sent_at=client.start,
            delivered_at=server.start,
            size_bytes=_size(client, server, "http.request.body.size"),
        )
        started[server.span_id] = request
        if math.isnan(server.end):
            continue  # the server never answered within the trace
        late = not math.isnan(client.end) and client.end < server.end and client.outcome != "ok"
        response: dict[str, Any] = {"delivered_at": client.end}
        if late:  # the client stopped waiting before the answer came
            response = {"delivered_at": math.nan, "outcome": "expired", "ended_at": server.end}
        elif not math.isnan(client.end):
            response["delivered_at"] = max(client.end, server.end)
            skew += client.end < server.end
        add(
            type=server.name or client.name,
            protocol=server.protocol or client.protocol,
            kind="response",
            src=server.agent,
            dst=client.agent,
            correlation_id=server.correlation_id,
            causation_id=request,
            span_id=server.span_id,
            attempt=1,
            sent_at=server.end,
            size_bytes=_size(server, client, "http.response.body.size"),
            **response,
        )

    for client in pairs.virtual:
        # The node did not record when the request arrived: it is taken to arrive as sent
        # and to be answered as the client saw the answer.
        request = add(
            type=client.name,
            protocol=client.protocol,
            kind="request",
            src=client.agent,
            dst=client.peer,
            correlation_id=client.correlation_id,
            causation_id="",
            span_id=client.span_id,
            attempt=1,
            sent_at=client.start,
            delivered_at=client.start,
            size_bytes=_size(client, client, "http.request.body.size"),
        )
        if not math.isnan(client.end):
            add(
                type=client.name,
                protocol=client.protocol,
                kind="response",
                src=client.peer,
                dst=client.agent,
                correlation_id=client.correlation_id,
                causation_id=request,
                span_id=client.span_id,
                attempt=1,
                sent_at=client.end,
                delivered_at=client.end,
                size_bytes=_size(client, client, "http.response.body.size"),
            )

    events: dict[str, list[tuple[float, int, str]]] = defaultdict(list)  # queue events
    for producer in pairs.unconsumed:
        broker = destination_of(producer)
        stored = producer.start if math.isnan(producer.end) else producer.end
        add(
            msg_id=str(producer.attrs.get("messaging.message.id") or ""),
            type=producer.name,
            protocol=producer.protocol or "queue",
            kind="publish",
            src=producer.agent,
            dst=broker,
            correlation_id=producer.correlation_id,
            causation_id="",
            span_id=producer.span_id,
            attempt=1,
            sent_at=producer.start,
            delivered_at=stored,
            size_bytes=_size(producer, producer, "messaging.message.body.size"),
        )
        events[broker].append((stored, 0, "publish"))
    for producer_id in sorted(pairs.queued, key=lambda i: (by_id[i].start, by_id[i].order)):
        producer = by_id[producer_id]
        consumers = sorted(pairs.queued[producer_id], key=lambda c: (c.start, c.order))
        broker = _destination(producer, consumers)
        stored = producer.start if math.isnan(producer.end) else producer.end
        stored = max(producer.start, min(stored, consumers[0].start))
        given = str(producer.attrs.get("messaging.message.id") or "")
        msg_id = add(
            msg_id=given,
            type=producer.name,
            protocol=producer.protocol or "queue",
            kind="publish",
            src=producer.agent,
            dst=broker,
            correlation_id=producer.correlation_id,
            causation_id="",
            span_id=producer.span_id,
            attempt=1,
            sent_at=producer.start,
            delivered_at=stored,
            size_bytes=_size(producer, consumers[0], "messaging.message.body.size"),
        )
        count: dict[str, int] = defaultdict(int)
        for consumer in consumers:
            count[consumer.agent] += 1  # the same consumer again: a redelivery
            if count[consumer.agent] == 1:  # each subscribing service gets its own copy
                events[broker].append((stored, 0, "publish"))
            at = max(consumer.start, stored)
            skew += consumer.start < stored
            add(
                msg_id=msg_id,
                type=producer.name,
                protocol=consumer.protocol or "queue",
                kind="deliver",
                src=broker,
                dst=consumer.agent,
                correlation_id=consumer.correlation_id,
                causation_id="",
                span_id=producer.span_id,  # as the simulator's broker: the producer's span
                attempt=count[consumer.agent],
                sent_at=at,
                delivered_at=at,
                size_bytes=_size(producer, consumer, "messaging.message.body.size"),
            )
            started.setdefault(consumer.span_id, msg_id)
            first = count[consumer.agent] == 1
            events[broker].append((at, 2, "deliver" if first else "redeliver"))
            if not math.isnan(consumer.end):
                done = "ack" if consumer.outcome == "ok" else "settle"
                events[broker].append((max(consumer.end, at), 1, done))
    _causations(rows, by_id, started)
    messages = _messages_table(rows)
    return Inferred(messages, _queues_table(events), sorted(events), skew)


def _destination(producer: SpanRecord, consumers: list[SpanRecord]) -> str:
    for s in (producer, *consumers):
        name = destination_of(s)
        if name:
            return name
    return DEFAULT_BROKER


def _size(s: SpanRecord, other: SpanRecord, key: str) -> int:
    for a in (s.attrs, other.attrs):
        value = a.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return 0


def _causations(rows: list[dict], by_id: dict[str, SpanRecord], started: dict[str, str]) -> None:
    """A request or publish is caused by the message that started its nearest handler."""
    for row in rows:
        if row["kind"] not in ("request", "publish"):
            continue
        node = by_id.get(row["span_id"])
        hops = 0
        while node is not None and hops < 1000:  # a cycle in a bad file must not hang us
            if node.span_id in started:
                row["causation_id"] = started[node.span_id]
                break
            node, hops = by_id.get(node.parent_id), hops + 1


def _messages_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows in time order, numbered; inferred ids renumbered to follow that order."""
    rows.sort(key=lambda r: (r["sent_at"], _KIND_ORDER.get(r["kind"], 9)))
    renamed: dict[str, str] = {}
    for row in rows:
        if row.pop("inferred_id", False) and row["msg_id"] not in renamed:
            renamed[row["msg_id"]] = f"m{len(renamed) + 1}"
    for seq, row in enumerate(rows):
        row.update(seq=seq, version=1, duplicate=False)
        row["msg_id"] = renamed.get(row["msg_id"], row["msg_id"])
        row["causation_id"] = renamed.get(row["causation_id"], row["causation_id"])
    types = DTYPES["messages"]
    known = set(rows[0]) if rows else set()
    table = pd.DataFrame(rows, columns=list(types))
    for column, dtype in types.items():
        if column not in known:  # a column the contract gained that a trace knows nothing of
            table[column] = dtype_default(dtype)
    return conform("messages", table)


_KIND_ORDER = {"request": 0, "publish": 1, "deliver": 2, "response": 3}


def _queues_table(events: dict[str, list[tuple[float, int, str]]]) -> pd.DataFrame:
    """Each queue's state after every change: ready, in flight, and running totals."""
    rows = []
    for queue, changes in sorted(events.items()):
        depth = in_flight = enqueued = acked = redelivered = 0
        rows.append((0.0, queue, 0, 0, 0, 0, 0, 0, 0))
        for time, _, what in sorted(changes):
            if what == "publish":
                depth, enqueued = depth + 1, enqueued + 1
            elif what == "deliver":
                depth, in_flight = max(depth - 1, 0), in_flight + 1
            elif what == "redeliver":
                in_flight, redelivered = in_flight + 1, redelivered + 1
            else:  # ack or settle: the consumer is done with it
                in_flight = max(in_flight - 1, 0)
                acked += what == "ack"
            rows.append((time, queue, depth, in_flight, 0, enqueued, acked, redelivered, 0))
    return conform("queues", pd.DataFrame(rows, columns=QUEUE_COLUMNS))


# -- agents -----------------------------------------------------------------------------


def agents_table(
    resources: list[Any], spans: list[SpanRecord], brokers: list[str], pairs: Pairs
) -> pd.DataFrame:
    """One row per service (its resources merged) and per inferred broker."""
    attrs: dict[str, dict[str, Any]] = {}
    for resource in resources:
        attrs.setdefault(resource.service, {}).update(resource.attrs)
    kinds: dict[str, set[str]] = defaultdict(set)
    for s in spans:
        kinds[s.agent].add(s.kind)
    calls: dict[str, set[str]] = defaultdict(set)
    for client, server in pairs.calls:
        calls[client.agent].add(server.agent)
    virtual: dict[str, str] = {}  # virtual node -> its role
    for client in pairs.virtual:
        calls[client.agent].add(client.peer)
        virtual.setdefault(client.peer, VIRTUAL_ROLES.get(client.protocol, "service"))
    rows = []
    for agent in sorted(attrs):
        a = attrs[agent]
        role = a.get("switchboard.agent.role")
        if not role:
            role = "service" if kinds[agent] & HANDLERS or not kinds[agent] else "client"
        rows.append(
            {
                "agent": agent,
                "role": str(role),
                "version": _int(a.get("switchboard.agent.version"), 1),
                "workers": _int(a.get("switchboard.agent.workers"), 0),
                "calls": str(a.get("switchboard.agent.calls") or ",".join(sorted(calls[agent]))),
                "service_version": str(a.get("service.version") or ""),
                "inferred": False,
            }
        )
    nodes = {broker: "broker" for broker in brokers}
    nodes |= {node: role for node, role in sorted(virtual.items()) if node not in nodes}
    for node, role in nodes.items():
        if node not in attrs:
            row = {"agent": node, "role": role, "version": 1, "workers": 0, "calls": ""}
            rows.append(dict(row, service_version="", inferred=True))
    columns = [*AGENT_COLUMNS, "service_version", "inferred"]
    table = pd.DataFrame(rows, columns=columns)
    return conform("agents", table).astype({"service_version": "str", "inferred": "bool"})


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
