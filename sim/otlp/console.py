"""The OpenTelemetry Python SDK's console output (`ConsoleSpanExporter`) as OTLP/JSON.

What `span.to_json()` prints, one pretty-printed object per span, one after another
(`sim.otlp.source` reads such a run of objects): `context.trace_id`/`span_id` and
`parent_id` as `0x` hex, `kind` as `SpanKind.SERVER`, times as ISO 8601 in UTC,
`status.status_code` as a name, attributes (of the span, its events, links and
resource) as plain JSON values.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sim.otlp.common import any_value


def is_span(value: Any) -> bool:
    """Whether `value` looks like one span as the SDK's console exporter prints it."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("context"), dict)
        and "span_id" in value["context"]
        and "start_time" in value
    )


def resource_spans(spans: list[Any]) -> list[dict[str, Any]]:
    """Console spans as OTLP/JSON `resourceSpans`, one resource per distinct resource."""
    groups: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for span in spans:
        if not is_span(span):
            continue
        resource = span.get("resource")
        attrs = _dict(resource.get("attributes")) if isinstance(resource, dict) else {}
        key = json.dumps(attrs, sort_keys=True, default=str)
        groups.setdefault(key, (attrs, []))[1].append(_span(span))
    return [
        {
            "resource": {"attributes": _attributes(attrs)},
            "scopeSpans": [{"scope": {}, "spans": converted}],
        }
        for attrs, converted in groups.values()
    ]


def _span(span: dict[str, Any]) -> dict[str, Any]:
    context = span["context"]
    out: dict[str, Any] = {
        "traceId": _hex(context.get("trace_id")),
        "spanId": _hex(context.get("span_id")),
        "name": str(span.get("name") or ""),
        "kind": "SPAN_KIND_" + str(span.get("kind") or "SpanKind.INTERNAL").split(".")[-1],
        "attributes": _attributes(_dict(span.get("attributes"))),
    }
    if span.get("parent_id"):
        out["parentSpanId"] = _hex(span["parent_id"])
    for field, name in (("startTimeUnixNano", "start_time"), ("endTimeUnixNano", "end_time")):
        nanos = _nanos(span.get(name))
        if nanos is not None:
            out[field] = str(nanos)
    status = _dict(span.get("status"))
    code = str(status.get("status_code") or "UNSET").upper()
    out["status"] = {"code": f"STATUS_CODE_{code}", "message": str(status.get("description") or "")}
    out["events"] = [
        {
            "name": str(event.get("name") or ""),
            "timeUnixNano": str(_nanos(event.get("timestamp")) or 0),
            "attributes": _attributes(_dict(event.get("attributes"))),
        }
        for event in span.get("events") or []
        if isinstance(event, dict)
    ]
    out["links"] = [
        {
            "traceId": _hex(_dict(link.get("context")).get("trace_id")),
            "spanId": _hex(_dict(link.get("context")).get("span_id")),
            "attributes": _attributes(_dict(link.get("attributes"))),
        }
        for link in span.get("links") or []
        if isinstance(link, dict)
    ]
    return out


def _hex(value: Any) -> Any:
    """`0x4bf9...` as `4bf9...`; anything else as it is, for the reader to refuse."""
    return value[2:] if isinstance(value, str) and value.lower().startswith("0x") else value


def _nanos(value: Any) -> int | None:
    """An ISO 8601 time (`2026-01-01T00:00:00.123456Z`) in nanoseconds since 1970."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    whole = int(moment.replace(microsecond=0).timestamp())
    return whole * 1_000_000_000 + moment.microsecond * 1_000 if whole >= 0 else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _attributes(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": str(k), "value": any_value(v)} for k, v in attrs.items() if v is not None]
