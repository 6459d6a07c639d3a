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
"""

from __future__ import annotations

from typing import Any

from sim.otlp.common import KIND_CODES, STATUS_ERROR, STATUS_OF_NAME, any_value, pad_trace_id

_STATUS_TAGS = frozenset({"error", "otel.status_code", "otel.status_description"})


def is_span(value: Any) -> bool:
    """Whether `value` looks like a Zipkin v2 span."""
    return isinstance(value, dict) and "traceId" in value and "id" in value


def is_v1_span(value: Any) -> bool:
    """Whether `value` looks like a Zipkin v1 span (annotations carry the endpoints)."""
    return isinstance(value, dict) and "binaryAnnotations" in value


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
    attrs: dict[str, Any] = {k: str(v) for k, v in tags.items() if k not in _STATUS_TAGS}
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
        "spanId": span.get("id"),
        "name": str(span.get("name") or ""),
        "kind": kind,
        "attributes": [{"key": k, "value": any_value(v)} for k, v in attrs.items()],
    }
    if span.get("parentId"):
        out["parentSpanId"] = span["parentId"]
    start = span.get("timestamp")
    if isinstance(start, int | float) and not isinstance(start, bool):
        out["startTimeUnixNano"] = str(int(start) * 1000)
        duration = span.get("duration")
        if isinstance(duration, int | float) and not isinstance(duration, bool):
            out["endTimeUnixNano"] = str((int(start) + int(duration)) * 1000)
    out["events"] = [
        {"timeUnixNano": str(int(a.get("timestamp") or 0) * 1000), "name": str(a.get("value"))}
        for a in span.get("annotations") or []
        if isinstance(a, dict)
    ]
    out["status"] = _status(tags)
    return out


def _status(tags: dict[str, Any]) -> dict[str, Any]:
    error = tags.get("error")
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
