"""Zipkin v2 JSON (`GET /api/v2/trace/{id}`, a list of spans) as OTLP/JSON.

The mapping is the OpenTelemetry Collector's Zipkin translator, with current attribute
names and the advice of the format notes where the Collector loses information:

- `localEndpoint.serviceName` is the resource's `service.name` (`unknown_service` when
  absent: an address is never a service); `remoteEndpoint.serviceName` is `peer.service`,
  its address and port `network.peer.address` / `network.peer.port`;
- `kind` absent is an internal span; times are microseconds since the epoch;
- any `error` tag other than "false" is a failure, its value (unless "true") the status
  message, as Zipkin's own dependency linker counts errors; `otel.status_code` too;
- annotations are events; tags (strings in Zipkin) stay strings.

A server span that shares its client's id (B3 `shared: true`) is given its own id by the
OTLP reader (`sim.otlp.parse`), as Jaeger and Tempo do at query time.

Zipkin v1 JSON (what Envoy, Finagle and old Brave send to `/api/v1/spans`: annotations
`cs`/`sr`/`ss`/`cr`/`ms`/`mr` with endpoints, `binaryAnnotations`) is first turned into
v2 spans (`v2_spans`) as Zipkin's own `V1SpanConverter` does: one span per side of an
RPC, the side's endpoint its local one, `ca`/`sa`/`ma` the remote one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sim.otlp.common import (
    KIND_CODES,
    STATUS_ERROR,
    STATUS_OF_NAME,
    any_value,
    pad_span_id,
    pad_trace_id,
)

_STATUS_TAGS = frozenset({"error", "otel.status_code", "otel.status_description"})


def is_span(value: Any) -> bool:
    """Whether `value` looks like a Zipkin v2 span."""
    return isinstance(value, dict) and "traceId" in value and "id" in value


def is_v1_span(value: Any) -> bool:
    """Whether `value` looks like a Zipkin v1 span (annotations carry the endpoints)."""
    if not isinstance(value, dict) or "localEndpoint" in value or "kind" in value:
        return False
    annotations = value.get("annotations")
    return "binaryAnnotations" in value or (
        isinstance(annotations, list)
        and any(isinstance(a, dict) and "endpoint" in a for a in annotations)
    )


def is_v1(spans: list[Any]) -> bool:
    """Whether a list of Zipkin spans is v1 JSON (any span shaped as v1 decides)."""
    return any(is_v1_span(span) for span in spans)


def resource_spans(spans: list[Any]) -> list[dict[str, Any]]:
    """Zipkin v2 spans as OTLP/JSON `resourceSpans`, one resource per local service."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        if not is_span(span):
            continue
        local = _object(span.get("localEndpoint"))
        service = str(local.get("serviceName") or "unknown_service")
        by_service.setdefault(service, []).append(_span(span, local))
    return [
        {
            "resource": {"attributes": [{"key": "service.name", "value": any_value(service)}]},
            "scopeSpans": [{"scope": {}, "spans": converted}],
        }
        for service, converted in by_service.items()
    ]


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _span(span: dict[str, Any], local: dict[str, Any]) -> dict[str, Any]:
    tags = _object(span.get("tags"))
    attrs: dict[str, Any] = {
        str(k): _text(v) for k, v in tags.items() if k not in _STATUS_TAGS and v is not None
    }
    remote = _object(span.get("remoteEndpoint"))
    if remote.get("serviceName"):
        attrs["peer.service"] = str(remote["serviceName"])
    address = remote.get("ipv4") or remote.get("ipv6")
    if address:
        attrs["network.peer.address"] = str(address)
    if isinstance(remote.get("port"), int):
        attrs["network.peer.port"] = remote["port"]
    local_address = local.get("ipv4") or local.get("ipv6")
    if local_address:
        attrs["network.local.address"] = str(local_address)
    if isinstance(local.get("port"), int):
        attrs["network.local.port"] = local["port"]
    kind = KIND_CODES.get(str(span.get("kind") or "").lower(), 0)
    if not kind and str(tags.get("span.kind", "")).lower() == "internal":
        kind = KIND_CODES["internal"]
    out: dict[str, Any] = {
        "traceId": pad_trace_id(span.get("traceId")) or span.get("traceId"),
        "spanId": pad_span_id(span.get("id")),
        "name": str(span.get("name") or ""),
        "kind": kind,
        "attributes": [{"key": k, "value": any_value(v)} for k, v in attrs.items()],
    }
    if span.get("parentId"):
        out["parentSpanId"] = pad_span_id(span["parentId"])
    # Absent (a fragment reported late, or no timestamp at all): the OTLP reader dates it.
    start = _micros(span.get("timestamp"))
    if start:
        out["startTimeUnixNano"] = str(start * 1000)
        duration = _micros(span.get("duration"))
        if duration is not None:
            out["endTimeUnixNano"] = str((start + duration) * 1000)
    out["events"] = [
        {"timeUnixNano": str(when * 1000), "name": _text(a.get("value"))}
        for a in _annotations(span)
        if (when := _micros(a.get("timestamp")))
    ]
    out["status"] = _status(tags)
    return out


def _annotations(span: dict[str, Any]) -> list[dict[str, Any]]:
    annotations = span.get("annotations")
    return [a for a in annotations if isinstance(a, dict)] if isinstance(annotations, list) else []


def _micros(value: Any) -> int | None:
    """Microseconds as Zipkin writes them (a number; v1 tracers also write 1.46e+15)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return int(value)
    except (ValueError, OverflowError):  # NaN, infinity
        return None


def _text(value: Any) -> str:
    """A tag's value as Zipkin's strings: booleans as "true"/"false"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _status(tags: dict[str, Any]) -> dict[str, Any]:
    error = tags.get("error")
    error = _text(error) if error is not None else None
    if error is not None and str(error).lower() != "false":
        text = str(error)
        message = tags.get("otel.status_description") or (
            "" if text.lower() in ("", "true") else text
        )
        return {"code": STATUS_ERROR, "message": str(message)} if message else {"code": 2}
    code = str(tags.get("otel.status_code") or "")
    if code:
        number = STATUS_OF_NAME.get(f"STATUS_CODE_{code.upper()}", 0)
        message = str(tags.get("otel.status_description") or "")
        return {"code": number, "message": message} if message else {"code": number}
    return {}


# -- Zipkin v1 --------------------------------------------------------------------------

# The core annotations: which side of a call a v1 span's endpoint was on (`ws`/`wr`,
# wire send and receive, stay annotations, as in Zipkin).
_CORE = frozenset({"cs", "cr", "sr", "ss", "ms", "mr"})
_REMOTE = {"sa": "CLIENT", "ca": "SERVER", "ma": ""}  # address annotation -> whose remote


def v2_spans(spans: list[Any]) -> list[dict[str, Any]]:
    """Zipkin v1 spans as v2 spans (a v2 span met among them is kept as it is)."""
    out: list[dict[str, Any]] = []
    for span in spans:
        if is_v1_span(span):
            out.extend(_from_v1(span))
        elif is_span(span):
            out.append(span)
    return out


def _from_v1(span: dict[str, Any]) -> list[dict[str, Any]]:
    """One v1 span as one v2 span per side it recorded (client and server, producer and
    consumer), each with its own endpoint, annotations and tags."""
    core: dict[str, dict[str, Any]] = {}
    others: list[dict[str, Any]] = []
    for a in _annotations(span):
        value = a.get("value")
        if isinstance(value, str) and value in _CORE and _micros(a.get("timestamp")) is not None:
            core.setdefault(str(value), a)
        else:
            others.append(a)
    base: dict[str, Any] = {
        k: span[k] for k in ("traceId", "id", "parentId", "name", "debug") if k in span
    }
    sides: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = []
    if "cs" in core or "cr" in core:
        sides.append(("CLIENT", core.get("cs"), core.get("cr")))
    if "sr" in core or "ss" in core:
        sides.append(("SERVER", core.get("sr"), core.get("ss")))
    if "ms" in core:
        sides.append(("PRODUCER", core["ms"], None))
    if "mr" in core:
        sides.append(("CONSUMER", core["mr"], None))
    if not sides:
        sides.append(("", None, None))
    out: list[dict[str, Any]] = []
    for i, (kind, begin, end) in enumerate(sides):
        v2 = dict(base)
        if kind:
            v2["kind"] = kind
        mark = begin or end or {}
        local = mark.get("endpoint")
        if isinstance(local, dict):
            v2["localEndpoint"] = local
        start, stop = _micros(mark.get("timestamp")), _micros((end or {}).get("timestamp"))
        duration = None
        own = _micros(span.get("timestamp"))
        if i == 0 and own:  # the span's own times are those of its first side
            start, duration = own, _micros(span.get("duration"))
        if start:
            v2["timestamp"] = start
            if duration is None and stop is not None and stop >= start:
                duration = stop - start
            if duration is not None:
                v2["duration"] = duration
        if i > 0:
            _second_side(v2, out[0], kind)
        out.append(v2)
    _place_annotations(out, others)
    _place_binary_annotations(out, span.get("binaryAnnotations"))
    return out


def _second_side(v2: dict[str, Any], first: dict[str, Any], kind: str) -> None:
    """The server half of an RPC v1 recorded as one span shares its id (B3), as Zipkin
    gives it; a consumer half gets an id of its own, child of the producer's."""
    if kind == "SERVER":
        v2["shared"] = True
        return
    seed = f"{v2.get('traceId')}:{v2.get('id')}:{kind}".encode()
    v2["id"] = hashlib.sha256(seed).hexdigest()[:16]
    v2["parentId"] = first.get("id")


def _owner(spans: list[dict[str, Any]], endpoint: Any) -> dict[str, Any]:
    """The side whose local endpoint is `endpoint` (by service name), else the first."""
    name = endpoint.get("serviceName") if isinstance(endpoint, dict) else None
    for span in spans:
        if name and _object(span.get("localEndpoint")).get("serviceName") == name:
            return span
    return spans[0]


def _place_annotations(spans: list[dict[str, Any]], annotations: list[dict[str, Any]]) -> None:
    for a in annotations:
        owner = _owner(spans, a.get("endpoint"))
        if "localEndpoint" not in owner and isinstance(a.get("endpoint"), dict):
            owner["localEndpoint"] = a["endpoint"]
        owner.setdefault("annotations", []).append(
            {"timestamp": a.get("timestamp"), "value": a.get("value")}
        )


def _place_binary_annotations(spans: list[dict[str, Any]], binary: Any) -> None:
    for b in binary if isinstance(binary, list) else []:
        if not isinstance(b, dict) or not isinstance(b.get("key"), str):
            continue
        key, value, endpoint = b["key"], b.get("value"), b.get("endpoint")
        if key in _REMOTE and isinstance(endpoint, dict):
            _set_remote(spans, _REMOTE[key], endpoint)
            continue
        owner = _owner(spans, endpoint)
        if "localEndpoint" not in owner and isinstance(endpoint, dict):
            owner["localEndpoint"] = endpoint  # `lc` names a local span's service so
        owner.setdefault("tags", {})[key] = _text(value)


def _set_remote(spans: list[dict[str, Any]], side: str, endpoint: dict[str, Any]) -> None:
    """`sa` is the client's remote (a span with only `sa` is a client), `ca` the
    server's, `ma` the broker of a producer or consumer."""
    for span in spans:
        kind = span.get("kind", "")
        if (side and kind == side) or (not side and kind in ("PRODUCER", "CONSUMER")):
            span["remoteEndpoint"] = endpoint
            return
    first = spans[0]
    if not first.get("kind") and side:
        first["kind"] = side if side == "CLIENT" else first.get("kind", "")
        if not first["kind"]:
            first.pop("kind")
    if "remoteEndpoint" not in first and side != "SERVER":
        first["remoteEndpoint"] = endpoint
