"""What a trace document is: OTLP in its wrappers, Jaeger, Zipkin, or something refused.

Recognised, each turned into OTLP/JSON `resourceSpans` for the one reader:

| shape | from |
|---|---|
| `{"resourceSpans": [...]}` | OTLP/JSON (SDK, Collector file exporter line, OTLP/HTTP body) |
| `{"batches": [...]}` | Tempo `GET /api/traces/<id>` (v1) |
| `{"trace": {"resourceSpans": [...]}}` | Tempo `GET /api/v2/traces/<id>` |
| `{"result": {"resourceSpans": [...]}}` | Jaeger `GET /api/v3/traces/<id>` |
| `{"data": [trace, ...]}`, one trace, a list of them | Jaeger `GET /api/traces/<id>`, the UI's JSON |
| one Jaeger span, `[span, ...]` (process inline) | Jaeger's Elasticsearch documents, its anonymizer |
| `[span, ...]`, `[[span, ...], ...]`, one span | Zipkin v2 `GET /api/v2/trace/<id>`, `/traces` |
| the same with `binaryAnnotations` | Zipkin v1 (`/api/v1`, Envoy, Finagle), turned into v2 first |
| `{"name", "context": {"trace_id", ...}, ...}`, a list of them | the Python SDK's console exporter |

Anything else gets one sentence saying what it looks like and what to download instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sim.otlp import console, jaeger, zipkin
from sim.otlp.common import OtlpError

OTHER_SIGNALS = ("resourceMetrics", "resource_metrics", "resourceLogs", "resource_logs")


@dataclass(frozen=True, slots=True)
class Batch:
    """One request's worth of OTLP `resourceSpans`, where it came from, in what format."""

    where: str
    resource_spans: Any
    format: str


class OtherSignal:
    """A document of metrics or logs (a Collector file may mix them in): skipped."""


def batches(doc: Any, place: str, encoding: str) -> Iterator[Batch | OtherSignal]:
    """The OTLP batches of one document; raises OtlpError when it holds no spans we read."""
    otlp = "otlp/protobuf" if encoding == "protobuf" else "otlp/json"
    if isinstance(doc, list):
        yield from _list(doc, place, otlp)
        return
    if not isinstance(doc, dict):
        raise OtlpError(f"{place} is {describe(doc)}, not a trace: {EXPECTED}")
    found = _field(doc, "resourceSpans", "resource_spans")
    if found is not None:
        yield Batch(place, found, otlp)
    elif isinstance(doc.get("batches"), list):
        yield Batch(place, doc["batches"], "tempo")
    elif isinstance(doc.get("trace"), dict):
        inner = doc["trace"]
        found = _field(inner, "resourceSpans", "resource_spans", "batches")
        if found is None:
            raise OtlpError(f"{place} is a Tempo v2 trace response with no spans in its trace")
        yield Batch(place, found, "tempo")
    elif isinstance(doc.get("result"), dict):
        found = _field(doc["result"], "resourceSpans", "resource_spans")
        if found is None:
            raise OtlpError(f"{place} is a Jaeger API v3 response whose result holds no spans")
        yield Batch(place, found, "jaeger-v3")
    elif isinstance(doc.get("error"), dict) and (
        "grpcCode" in doc["error"] or "httpCode" in doc["error"]
    ):
        message = doc["error"].get("message") or "no message"
        raise OtlpError(f"{place} is an error response of Jaeger's API v3 ({message}), not a trace")
    elif "data" in doc and ("errors" in doc or "total" in doc):
        yield from _jaeger_response(doc, place)
    elif jaeger.is_trace(doc):
        yield Batch(place, jaeger.resource_spans(doc), "jaeger")
    elif jaeger.is_trace(doc.get("data")):  # the UI's state: {"data": trace, "id": ...}
        yield Batch(place, jaeger.resource_spans(doc["data"]), "jaeger")
    elif jaeger.is_span(doc):  # one span, as Jaeger's Elasticsearch stores it
        yield from _jaeger_spans([doc], place)
    elif zipkin.is_span(doc):  # one span, as Zipkin's own tools print one
        yield from _zipkin(place, [doc])
    elif console.is_span(doc):  # one span of the SDK's console exporter
        yield Batch(place, console.resource_spans([doc]), "otel-console")
    elif isinstance(doc.get("spans"), list) and isinstance(doc.get("process"), dict):
        raise OtlpError(
            f"{place} is a Jaeger Thrift batch (an agent's or client's wire format, not "
            "what Jaeger serves): download the trace from Jaeger's /api/traces/<traceID>"
        )
    elif isinstance(doc.get("spans"), list) and (
        "processMap" in doc or _is_jaeger_model_span(doc["spans"])
    ):
        raise OtlpError(
            f"{place} is Jaeger's internal model JSON (api_v2 protobuf, ids in base64), "
            "which is not read: download the trace from Jaeger's /api/traces/<traceID> or "
            "/api/v3/traces/<traceID>"
        )
    elif isinstance(doc.get("traces"), list):
        raise OtlpError(
            f"{place} is a Tempo search response (trace ids and matched span summaries, "
            "not whole traces): download each trace from /api/traces/<traceID>"
        )
    elif any(k in doc for k in OTHER_SIGNALS):
        yield OtherSignal()
    else:
        raise OtlpError(f"{place} is not a trace this reads: {EXPECTED}; found {describe(doc)}")


EXPECTED = "expected OTLP (resourceSpans), Tempo (batches), Jaeger (data) or a Zipkin list of spans"


def _jaeger_response(doc: dict[str, Any], place: str) -> Iterator[Batch]:
    data, errors = doc.get("data"), doc.get("errors")
    traces = [t for t in data if jaeger.is_trace(t)] if isinstance(data, list) else []
    if not traces:
        why = ""
        if isinstance(errors, list) and errors:
            first = errors[0]
            text = first.get("msg") if isinstance(first, dict) else first
            why = f" (the query reported: {text})"
        raise OtlpError(f"{place} is a Jaeger query API response holding no traces{why}")
    for i, trace in enumerate(traces):
        where = place if len(traces) == 1 else f"{place} trace {i}"
        yield Batch(where, jaeger.resource_spans(trace), "jaeger")


def _is_jaeger_model_span(spans: list[Any]) -> bool:
    first = spans[0] if spans else None
    return isinstance(first, dict) and "operationName" in first and "spanId" in first


def _jaeger_spans(spans: list[Any], place: str) -> Iterator[Batch]:
    traces = jaeger.traces_of_spans(spans)
    for i, trace in enumerate(traces):
        where = place if len(traces) == 1 else f"{place} trace {i}"
        yield Batch(where, jaeger.resource_spans(trace), "jaeger")


def _zipkin(place: str, spans: list[Any]) -> Iterator[Batch]:
    """Zipkin spans, v2 or v1 (v1 turned into v2 first, as Zipkin's server does)."""
    if zipkin.is_v1(spans):
        yield Batch(place, zipkin.resource_spans(zipkin.v2_spans(spans)), "zipkin-v1")
    else:
        yield Batch(place, zipkin.resource_spans(spans), "zipkin")


def _list(doc: list[Any], place: str, otlp: str) -> Iterator[Batch | OtherSignal]:
    if not doc:
        raise OtlpError(f"{place} is an empty list: no spans to import")
    first = doc[0]
    if isinstance(first, list):  # Zipkin's /traces: a list of traces
        yield from _zipkin(
            place, [span for trace in doc if isinstance(trace, list) for span in trace]
        )
    elif zipkin.is_span(first):
        yield from _zipkin(place, doc)
    elif jaeger.is_span(first):  # Jaeger spans on their own, each with its process
        yield from _jaeger_spans(doc, place)
    elif console.is_span(first):
        yield Batch(place, console.resource_spans(doc), "otel-console")
    elif isinstance(first, dict) and {"parent", "child", "callCount"} <= set(first):
        raise OtlpError(
            f"{place} is a dependency list (Jaeger's or Zipkin's /dependencies): links "
            "between services, not spans"
        )
    elif jaeger.is_trace(first):
        for i, trace in enumerate(doc):
            if jaeger.is_trace(trace):
                yield Batch(f"{place} trace {i}", jaeger.resource_spans(trace), "jaeger")
    else:
        for i, item in enumerate(doc):
            where = f"{place} item {i}"
            if not isinstance(item, dict):
                raise OtlpError(f"{where} is {describe(item)}, not a trace: {EXPECTED}")
            yield from batches(item, where, otlp.removeprefix("otlp/") or "json")


def _field(obj: Any, *names: str) -> Any:
    if isinstance(obj, dict):
        for name in names:
            if name in obj:
                return obj[name]
    return None


def describe(value: Any) -> str:
    """A value's shape for a sentence: "an object with a, b", "a list", "a number"."""
    if isinstance(value, dict):
        keys = ", ".join(sorted(value)[:5]) or "no keys"
        return f"an object with {keys}"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number" if isinstance(value, int | float) else "a string"
