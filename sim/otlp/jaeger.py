"""Jaeger's query API JSON (`GET /api/traces/{id}`, the UI's JSON) to and from OTLP/JSON.

The mapping is the OpenTelemetry Collector's Jaeger translator, both ways:

- a `process` is a resource (`serviceName` -> `service.name`, its tags the other
  attributes); tags are attributes; logs are events (their `event` field the name);
- the parent is the first CHILD_OF reference within the trace, else the first
  FOLLOWS_FROM; every other reference is a link with `opentracing.ref_type`;
- the tags `span.kind`, `error`, `otel.status_code`, `otel.status_description`,
  `w3c.tracestate`, `otel.scope.name`/`version` become the span's kind, status, trace
  state and scope (and are written back from them);
- status: a true `error` tag wins (Jaeger and Envoy mark failures so), then
  `otel.status_code`, then an HTTP status (5xx, or 4xx on a client, failed);
- times are microseconds since the epoch; ids hex, a trace id of 16 digits when its
  high half is zero (as Jaeger prints it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sim.otlp.common import (
    KIND_CODES,
    STATUS_ERROR,
    STATUS_OF_NAME,
    STATUS_OK,
    any_value,
    attribute_map,
    decode_id,
    pad_span_id,
    pad_trace_id,
)

KIND_OF_TAG = {kind: code for kind, code in KIND_CODES.items()}
TAG_OF_KIND = {code: kind for kind, code in KIND_CODES.items()}
STATUS_TAG = {STATUS_OK: "OK", STATUS_ERROR: "ERROR"}
# Tags that are fields of an OTLP span, not attributes. `error` is one only beside
# `otel.status_code=ERROR` (the Collector writes both); alone (a Jaeger client, Envoy)
# it is the file's own tag and stays an attribute, besides failing the span.
_FIELD_TAGS = frozenset(
    {
        "span.kind", "otel.status_code", "otel.status_description", "w3c.tracestate",
        "otel.scope.name", "otel.scope.version", "otel.library.name", "otel.library.version",
    }
)  # fmt: skip
REF_TYPE = "opentracing.ref_type"


# -- Jaeger to OTLP ---------------------------------------------------------------------


def is_trace(value: Any) -> bool:
    """Whether `value` looks like one Jaeger trace: spans and (usually) processes."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("spans"), list)
        and ("processes" in value or "traceID" in value)
    )


def is_span(value: Any) -> bool:
    """Whether `value` looks like one Jaeger span on its own (as Elasticsearch stores it,
    or in the anonymizer's list of spans): ids, an operation name and, inline, a process."""
    return (
        isinstance(value, dict)
        and "spanID" in value
        and "traceID" in value
        and ("operationName" in value or "process" in value)
    )


def traces_of_spans(spans: list[Any]) -> list[dict[str, Any]]:
    """Jaeger spans on their own (each with its process inline) as traces, by trace id in
    order of appearance."""
    traces: dict[str, dict[str, Any]] = {}
    for span in spans:
        if is_span(span):
            key = str(span.get("traceID"))
            traces.setdefault(key, {"traceID": key, "spans": [], "processes": {}})
            traces[key]["spans"].append(span)
    return list(traces.values())


def resource_spans(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """One Jaeger trace as OTLP/JSON `resourceSpans` (one resource per process)."""
    processes = trace.get("processes")
    processes = dict(processes) if isinstance(processes, dict) else {}
    groups: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = {}
    for span in trace.get("spans") or []:
        if not isinstance(span, dict):
            continue
        process = span.get("process")  # older (v1 "embedded") files carry it inline
        key = str(span.get("processID", ""))
        if isinstance(process, dict) and key not in processes:
            if "processID" not in span:  # spans on their own: one key per process
                key = json.dumps(process, sort_keys=True, default=str)
            processes[key] = process
        tags = _tags(span.get("tags"))
        scope = (str(tags.get("otel.scope.name") or tags.get("otel.library.name") or ""),
                 str(tags.get("otel.scope.version") or tags.get("otel.library.version") or ""))  # fmt: skip
        groups.setdefault(key, {}).setdefault(scope, []).append(_span(span, tags))
    out = []
    for key, scopes in groups.items():
        process = processes.get(key)
        process = process if isinstance(process, dict) else {}
        attrs = {"service.name": process.get("serviceName") or "unknown_service"}
        attrs |= _tags(process.get("tags"))
        out.append(
            {
                "resource": {"attributes": _attribute_list(attrs)},
                "scopeSpans": [
                    {"scope": _scope(name, version), "spans": spans}
                    for (name, version), spans in scopes.items()
                ],
            }
        )
    return out


def _scope(name: str, version: str) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    if name:
        scope["name"] = name
    if version:
        scope["version"] = version
    return scope


def _span(span: dict[str, Any], tags: dict[str, Any]) -> dict[str, Any]:
    trace_id = pad_trace_id(span.get("traceID"))
    out: dict[str, Any] = {
        "traceId": trace_id or span.get("traceID"),
        "spanId": pad_span_id(span.get("spanID")),
    }
    listed = span.get("references")
    refs = [r for r in listed if isinstance(r, dict)] if isinstance(listed, list) else []
    parent = _parent(refs, trace_id)
    if parent is None and span.get("parentSpanID"):  # the deprecated field, if set
        parent = {"spanID": span["parentSpanID"]}
    if parent is not None:
        out["parentSpanId"] = pad_span_id(parent.get("spanID"))
    links = []
    for ref in refs:
        if ref is parent:
            continue
        ref_type = "child_of" if ref.get("refType") == "CHILD_OF" else "follows_from"
        links.append(
            {
                "traceId": pad_trace_id(ref.get("traceID")) or trace_id,
                "spanId": pad_span_id(ref.get("spanID")),
                "attributes": _attribute_list({REF_TYPE: ref_type}),
            }
        )
    out["name"] = str(span.get("operationName") or "")
    out["kind"] = KIND_OF_TAG.get(str(tags.get("span.kind") or "").lower(), 0)
    start = _int(span.get("startTime"))
    out["startTimeUnixNano"] = str(start * 1000) if start is not None else None
    duration = _int(span.get("duration"))
    if start is not None and duration is not None:
        out["endTimeUnixNano"] = str((start + duration) * 1000)
    fields = _FIELD_TAGS | ({"error"} if tags.get("otel.status_code") == "ERROR" else set())
    out["attributes"] = _attribute_list({k: v for k, v in tags.items() if k not in fields})
    out["events"] = list(_events(span.get("logs")))
    if links:
        out["links"] = links
    state = tags.get("w3c.tracestate")
    if isinstance(state, str) and state:
        out["traceState"] = state
    if _int(span.get("flags")):
        out["flags"] = _int(span.get("flags"))
    out["status"] = _status(tags, out["kind"])
    return out


def _parent(refs: list[dict[str, Any]], trace_id: str | None) -> dict[str, Any] | None:
    """Jaeger's parent rule: the first CHILD_OF in the trace, else the first FOLLOWS_FROM."""
    same = [r for r in refs if pad_trace_id(r.get("traceID")) in (trace_id, None)]
    for ref_type in ("CHILD_OF", "FOLLOWS_FROM"):
        for ref in same:
            if ref.get("refType", "CHILD_OF") == ref_type:
                return ref
    return None


def _status(tags: dict[str, Any], kind: int) -> dict[str, Any]:
    """The span's status: `otel.status_code` when the tags carry one (an OTLP status,
    exactly), else a true `error` tag, else the HTTP status."""
    error = tags.get("error")
    message = tags.get("otel.status_description")
    message = message if isinstance(message, str) else ""
    code = tags.get("otel.status_code")
    if isinstance(code, str) and code:
        number = STATUS_OF_NAME.get(f"STATUS_CODE_{code.upper()}", 0)
        return {"code": number, "message": message} if message else {"code": number}
    if error is not None and error is not False and str(error).lower() != "false":
        if isinstance(error, str) and error.lower() != "true" and not message:
            message = error  # Zipkin-style: the error tag carries the message
        return {"code": STATUS_ERROR, "message": message} if message else {"code": STATUS_ERROR}
    http = _int(tags.get("http.response.status_code", tags.get("http.status_code")))
    if http is not None and (http >= 500 or (http >= 400 and kind == KIND_CODES["client"])):
        return {"code": STATUS_ERROR}
    return {}


def _events(logs: Any) -> Iterator[dict[str, Any]]:
    for log in logs if isinstance(logs, list) else []:
        if not isinstance(log, dict):
            continue
        fields = _tags(log.get("fields"))
        name = fields.pop("event", "")
        event: dict[str, Any] = {
            "timeUnixNano": str((_int(log.get("timestamp")) or 0) * 1000),
            "name": str(name),
        }
        if fields:
            event["attributes"] = _attribute_list(fields)
        yield event


def _tags(tags: Any) -> dict[str, Any]:
    """Jaeger's typed tags `{key, type, value}` as a dict of Python values."""
    out: dict[str, Any] = {}
    for tag in tags if isinstance(tags, list) else []:
        if not isinstance(tag, dict) or not isinstance(tag.get("key"), str):
            continue
        kind, value = str(tag.get("type", "string")).lower(), tag.get("value")
        if kind == "bool":
            value = value if isinstance(value, bool) else str(value).lower() == "true"
        elif kind == "int64":
            value = _int(value)
        elif kind == "float64":
            try:
                value = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError, OverflowError):  # a 400-digit integer
                value = None
        elif not isinstance(value, str):
            value = "" if value is None else str(value)
        if value is not None:
            out[tag["key"]] = value
    return out


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
        return None


def _attribute_list(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": any_value(v)} for k, v in attrs.items() if v is not None]


# -- OTLP to Jaeger ---------------------------------------------------------------------


def from_otlp(document: dict[str, Any]) -> dict[str, Any]:
    """An OTLP/JSON request as the Jaeger query API's JSON (`{"data": [trace, ...]}`),
    which Jaeger's UI opens by upload. One trace per trace id, in order of appearance."""
    traces: dict[str, dict[str, Any]] = {}
    process_ids: dict[str, str] = {}
    for rs in document.get("resourceSpans", []):
        attrs = attribute_map(rs.get("resource", {}).get("attributes", []))
        service = str(attrs.pop("service.name", "") or "OTLPResourceNoServiceName")
        process = {"serviceName": service, "tags": _jaeger_tags(attrs)}
        key = repr(process)
        pid = process_ids.setdefault(key, f"p{len(process_ids) + 1}")
        for ss in rs.get("scopeSpans", []):
            scope = ss.get("scope", {}) or {}
            for span in ss.get("spans", []):
                trace_id = _jaeger_trace_id(span["traceId"])
                trace = traces.setdefault(
                    trace_id,
                    {"traceID": trace_id, "spans": [], "processes": {}, "warnings": None},
                )
                trace["processes"][pid] = process
                trace["spans"].append(_jaeger_span(span, scope, pid))
    return {"data": list(traces.values()), "total": 0, "limit": 0, "offset": 0, "errors": None}


def _jaeger_trace_id(value: str) -> str:
    """Jaeger prints a trace id whose high 64 bits are zero as 16 digits."""
    hexed = decode_id(value, 32) or value
    return hexed[16:] if hexed.startswith("0" * 16) else hexed


def _jaeger_span(span: dict[str, Any], scope: dict[str, Any], pid: str) -> dict[str, Any]:
    trace_id = _jaeger_trace_id(span["traceId"])
    refs = []
    if span.get("parentSpanId"):
        refs.append({"refType": "CHILD_OF", "traceID": trace_id, "spanID": span["parentSpanId"]})
    for link in span.get("links", []):
        link_attrs = attribute_map(link.get("attributes", []))
        ref_type = "CHILD_OF" if link_attrs.get(REF_TYPE) == "child_of" else "FOLLOWS_FROM"
        refs.append(
            {
                "refType": ref_type,
                "traceID": _jaeger_trace_id(link.get("traceId") or span["traceId"]),
                "spanID": link["spanId"],
            }
        )
    tags = attribute_map(span.get("attributes", []))
    kind = TAG_OF_KIND.get(int(span.get("kind") or 0))
    if kind:
        tags["span.kind"] = kind
    if scope.get("name"):
        tags["otel.scope.name"] = scope["name"]
    if scope.get("version"):
        tags["otel.scope.version"] = scope["version"]
    status = span.get("status") or {}
    code = int(status.get("code") or 0)
    # A failed span that carries its own `error` tag (read from Jaeger) gets it back as it
    # was; otherwise the Collector's mapping: otel.status_code, and error=true on failure.
    if not (code == STATUS_ERROR and "error" in tags):
        if code in STATUS_TAG:
            tags["otel.status_code"] = STATUS_TAG[code]
        if code == STATUS_ERROR:
            tags["error"] = True
        if status.get("message"):
            tags["otel.status_description"] = status["message"]
    if span.get("traceState"):
        tags["w3c.tracestate"] = span["traceState"]
    start = int(span["startTimeUnixNano"])
    end = int(span.get("endTimeUnixNano") or start)
    out: dict[str, Any] = {
        "traceID": trace_id,
        "spanID": span["spanId"],
        "operationName": span.get("name", ""),
        "references": refs,
        "startTime": start // 1000,
        "duration": max(end - start, 0) // 1000,
        "tags": _jaeger_tags(tags),
        "logs": [
            {
                "timestamp": int(event.get("timeUnixNano") or 0) // 1000,
                "fields": _jaeger_tags(
                    {"event": event.get("name", "")} | attribute_map(event.get("attributes", []))
                ),
            }
            for event in span.get("events", [])
        ],
        "processID": pid,
        "warnings": None,
    }
    if span.get("flags"):
        out["flags"] = int(span["flags"])
    return out


def _jaeger_tags(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """A dict as Jaeger's typed tags (lists and maps as JSON strings, as the Collector)."""
    tags = []
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, bool):
            tags.append({"key": key, "type": "bool", "value": value})
        elif isinstance(value, int):
            tags.append({"key": key, "type": "int64", "value": value})
        elif isinstance(value, float):
            tags.append({"key": key, "type": "float64", "value": value})
        elif isinstance(value, list | dict):
            tags.append({"key": key, "type": "string", "value": json.dumps(value)})
        else:
            tags.append({"key": key, "type": "string", "value": str(value)})
    return tags
