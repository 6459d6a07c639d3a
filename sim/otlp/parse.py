"""Read OpenTelemetry traces (OTLP/JSON) from a real system: files in, span records out.

Reads what the OpenTelemetry Collector's file exporter writes (one
`ExportTraceServiceRequest` per line), what an SDK exporter writes (one object, pretty
or not), or a JSON array of requests; ids in OTLP/JSON's hex or protobuf JSON's base64,
enums as integers or names, fields in lowerCamelCase or snake_case. Lines that hold
metrics or logs are skipped. Plain and gzip-compressed files both work.

Every span becomes a row of `spans` as it is (ids, parent, name, kind, agent =
`service.name` of its resource, times in seconds from the time origin, status ->
outcome); `sim.otlp.infer` then infers the messages, peers, agents and queues. The
time origin is Switchboard's epoch when the file is a Switchboard export (so a round
trip gives back the same times), else the earliest span's start.
"""

from __future__ import annotations

import gzip
import json
import math
import platform
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sim import limits
from sim._version import __version__
from sim.otlp.common import (
    EPOCH_KEY,
    KIND_OF_CODE,
    KIND_OF_NAME,
    MAPPED_SPAN_COLUMNS,
    NANOS,
    SCOPE_NAME,
    STATUS_ERROR,
    STATUS_OF_NAME,
    OtlpError,
    attribute_map,
    decode_id,
    span_defaults,
)
from sim.otlp.tasks import read_task_events
from sim.trace.schema import DTYPES, conform

# Span outcomes a `switchboard.outcome` attribute may carry back.
OUTCOMES = frozenset(
    {"ok", "error", "timeout", "deadline_exceeded", "rejected", "cancelled", "partial", "open"}
)
# gRPC status codes (rpc.grpc.status_code) that name an outcome of ours.
GRPC_OUTCOMES = {1: "cancelled", 4: "deadline_exceeded"}


@dataclass(slots=True)
class SpanRecord:
    """One imported span, before it becomes a row; `sim.otlp.infer` fills `peer`."""

    span_id: str
    parent_id: str
    trace_id: str
    name: str
    kind: str
    agent: str
    start_ns: int
    end_ns: int | None
    attrs: dict[str, Any]
    status_code: int
    status_message: str
    links: list[str]
    exception: str = ""
    order: int = 0
    start: float = 0.0
    end: float = math.nan
    outcome: str = "ok"
    error: str = ""
    protocol: str = ""
    peer: str = ""
    correlation_id: str = ""
    # A2A task transitions recorded as span events: (time in ns, attributes).
    task_events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


@dataclass(slots=True)
class Resource:
    """A resource of the file: one service instance."""

    service: str
    attrs: dict[str, Any]


@dataclass
class Parsed:
    """Everything read from one file, before inference."""

    spans: list[SpanRecord] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    epochs: set[int | None] = field(default_factory=set)
    scope_attrs: dict[str, Any] = field(default_factory=dict)
    requests: int = 0
    duplicates: int = 0
    switchboard: bool = False


# -- reading the file -------------------------------------------------------------------


def read_documents(path: Path, max_bytes: int | None = None) -> Iterator[tuple[str, Any]]:
    """Each JSON document in the file, with where it is ("line 3", "item 2", or "").

    At most `max_bytes` of JSON are read (default `sim.limits.MAX_OTLP_BYTES`), after
    decompression: a small gzip file may inflate to gigabytes.
    """
    label = str(path)
    raw = _read_capped(path, limits.MAX_OTLP_BYTES if max_bytes is None else max_bytes)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise OtlpError(
            f"{label} is not text, so not OTLP/JSON (OTLP/protobuf is not read: "
            "export with the JSON encoding)"
        ) from None
    if not text.strip():
        raise OtlpError(f"{label} is empty: expected OTLP/JSON traces")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as exc:
        yield from _json_lines(label, text, exc)
        return
    except (RecursionError, ValueError) as exc:
        raise OtlpError(f"{label} {_unreadable(exc)}") from None
    if isinstance(whole, list):
        for i, item in enumerate(whole):
            yield f"item {i}", item
    else:
        yield "", whole


def _json_lines(label: str, text: str, whole_error: json.JSONDecodeError) -> Iterator[tuple]:
    """The documents of a JSON-lines file; or the whole-file error if it is not one."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip())
    try:
        json.loads(lines[first])
    except json.JSONDecodeError:
        # Not one document per line: a single (pretty-printed) document that is broken.
        raise OtlpError(
            f"{label} is not JSON: {whole_error.msg} at line {whole_error.lineno} "
            f"column {whole_error.colno}"
        ) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line)
        except json.JSONDecodeError as exc:
            raise OtlpError(
                f"{label} line {number} is not JSON: {exc.msg} at column {exc.colno}"
            ) from None
        except (RecursionError, ValueError) as exc:
            raise OtlpError(f"{label} line {number} {_unreadable(exc)}") from None


# Bytes read at a time: the cap is checked between chunks, so at most one chunk past it
# is ever held.
_CHUNK = 1 << 24


def _read_capped(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, gunzipped if it is gzip, refused past `max_bytes` of them."""
    label = str(path)
    chunks: list[bytes] = []
    size = 0
    gzipped = False
    try:
        with path.open("rb") as file:
            gzipped = file.read(2) == b"\x1f\x8b"
            file.seek(0)
            stream: Any = gzip.GzipFile(fileobj=file) if gzipped else file
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    what = "inflates to" if gzipped else "holds"
                    raise OtlpError(
                        f"{label} {what} more than {_mib(max_bytes)} of JSON, past the cap "
                        "of an import (a trace too large to import whole, or a gzip bomb); "
                        "raise it with --max-mb if the file is genuine"
                    )
                chunks.append(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        if gzipped:
            raise OtlpError(f"{label} is a damaged gzip file: {exc}") from None
        reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        raise OtlpError(f"cannot read {label}: {reason.lower()}") from None
    return b"".join(chunks)


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB" if size >= 2**20 else f"{size:,} bytes"


def _unreadable(exc: BaseException) -> str:
    """Why JSON that parses in principle cannot be read: nesting or a huge number."""
    if isinstance(exc, RecursionError):
        return "is nested too deeply to read (an OTLP export is a dozen levels deep)"
    if "integer string conversion" in str(exc):
        return "holds a number with thousands of digits, which no OTLP field needs"
    return f"cannot be read ({exc})"


def parse_file(path: Path, max_bytes: int | None = None) -> Parsed:
    """Read every span of an OTLP/JSON file; raises OtlpError naming what and where.

    `max_bytes`: see `read_documents`.
    """
    try:
        return _parse_file(path, max_bytes)
    except RecursionError:
        # Attributes nest (arrays and key-value lists of values) and are read by
        # recursion: JSON just shallow enough for the parser can still be too deep.
        raise OtlpError(
            f"{path} is nested too deeply to read (an OTLP export is a dozen levels deep)"
        ) from None


def _parse_file(path: Path, max_bytes: int | None) -> Parsed:
    parsed = Parsed()
    seen: dict[str, str] = {}  # span id -> trace id
    other_signals = False
    for where, doc in read_documents(path, max_bytes):
        place = f"{path}" + (f" {where}" if where else "")
        if not isinstance(doc, dict):
            raise OtlpError(
                f"{place} is not an OTLP trace export: expected an object with "
                f"resourceSpans, found {_describe(doc)}"
            )
        resource_spans = _field(doc, "resourceSpans", "resource_spans")
        if resource_spans is None:
            if any(k in doc for k in _OTHER_SIGNALS):
                other_signals = True  # a metrics or logs line of a Collector file
                continue
            raise OtlpError(
                f"{place} is not an OTLP trace export: expected an object with "
                f"resourceSpans, found {_describe(doc)}"
            )
        parsed.requests += 1
        _read_request(parsed, seen, place, _list(resource_spans, place, "resourceSpans"))
    if not parsed.spans:
        extra = " (only metrics or logs)" if other_signals else ""
        raise OtlpError(f"{path} holds no spans{extra}: nothing to import")
    return parsed


_OTHER_SIGNALS = ("resourceMetrics", "resource_metrics", "resourceLogs", "resource_logs")


def _read_request(parsed: Parsed, seen: dict[str, str], place: str, resources: list) -> None:
    for r, rs in enumerate(resources):
        at_r = f"resourceSpans[{r}]"
        rs = _object(rs, place, at_r)
        resource = _field(rs, "resource") or {}
        attrs = attribute_map(_list(_field(resource, "attributes") or [], place, at_r))
        # The OpenTelemetry default for a resource that does not name its service.
        service = str(attrs.get("service.name") or "unknown_service")
        parsed.resources.append(Resource(service, attrs))
        scopes = _field(rs, "scopeSpans", "scope_spans", "instrumentationLibrarySpans")
        for s, ss in enumerate(_list(scopes or [], place, f"{at_r}.scopeSpans")):
            at_s = f"{at_r}.scopeSpans[{s}]"
            ss = _object(ss, place, at_s)
            scope = _field(ss, "scope", "instrumentationLibrary") or {}
            scope_attrs = attribute_map(_list(_field(scope, "attributes") or [], place, at_s))
            spans = _list(_field(ss, "spans") or [], place, f"{at_s}.spans")
            if spans:
                epoch = scope_attrs.get(EPOCH_KEY)
                parsed.epochs.add(epoch if isinstance(epoch, int) else None)
                if _field(scope, "name") == SCOPE_NAME:
                    parsed.switchboard = True
                    parsed.scope_attrs.update(scope_attrs)
            for k, span in enumerate(spans):
                record = _read_span(span, service, place, f"{at_s}.spans[{k}]")
                trace = seen.get(record.span_id)
                if trace == record.trace_id:
                    parsed.duplicates += 1  # the same span exported twice: keep the first
                    continue
                if trace is not None:
                    raise OtlpError(
                        f"{place}: {at_s}.spans[{k}] reuses span id {record.span_id} of "
                        f"trace {trace} in trace {record.trace_id}; span ids must be unique"
                    )
                seen[record.span_id] = record.trace_id
                record.order = len(parsed.spans)
                parsed.spans.append(record)


def _read_span(span: Any, service: str, place: str, at: str) -> SpanRecord:
    span = _object(span, place, at)
    name = _field(span, "name")
    what = f"{place}: {at}" + (f' ("{name}")' if isinstance(name, str) and name else "")
    trace_id = _id(span, ("traceId", "trace_id"), 32, what)
    span_id = _id(span, ("spanId", "span_id"), 16, what)
    parent = _field(span, "parentSpanId", "parent_span_id")
    parent_id = ""
    if parent:  # empty or absent: a root span
        parent_id = decode_id(parent, 16) or ""
        if not parent_id:
            raise OtlpError(
                f"{what} has parentSpanId {parent!r}: a span id is 16 hex digits, not all zeros"
            )
    start = _nanos(span, ("startTimeUnixNano", "start_time_unix_nano"), what)
    if start is None:
        raise OtlpError(f"{what} has no startTimeUnixNano")
    end = _nanos(span, ("endTimeUnixNano", "end_time_unix_nano"), what) or None
    attrs = attribute_map(_list(_field(span, "attributes") or [], place, f"{at}.attributes"))
    status = _field(span, "status") or {}
    code = _field(status, "code") if isinstance(status, dict) else None
    code = STATUS_OF_NAME.get(code, 0) if isinstance(code, str) else int(code or 0)
    message = _field(status, "message") if isinstance(status, dict) else ""
    links = []
    for link in _list(_field(span, "links") or [], place, f"{at}.links"):
        linked = (
            decode_id(_field(link, "spanId", "span_id"), 16) if isinstance(link, dict) else None
        )
        if linked:
            links.append(linked)
    return SpanRecord(
        span_id=span_id,
        parent_id=parent_id,
        trace_id=trace_id,
        name=name if isinstance(name, str) else "",
        kind=_kind(_field(span, "kind")),
        agent=service,
        start_ns=start,
        end_ns=end,
        attrs=attrs,
        status_code=code,
        status_message=message if isinstance(message, str) else "",
        links=links,
        exception=_exception(_field(span, "events") or []),
        task_events=read_task_events(_field(span, "events")),
    )


def _field(obj: Any, *names: str) -> Any:
    """The first of `names` present in `obj` (lowerCamelCase or snake_case)."""
    if isinstance(obj, dict):
        for name in names:
            if name in obj:
                return obj[name]
    return None


def _object(value: Any, place: str, at: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OtlpError(f"{place}: {at} is {_describe(value)}, not an object")
    return value


def _list(value: Any, place: str, at: str) -> list[Any]:
    if not isinstance(value, list):
        raise OtlpError(f"{place}: {at} is {_describe(value)}, not a list")
    return value


def _id(span: dict[str, Any], names: tuple[str, str], digits: int, what: str) -> str:
    value = _field(span, *names)
    if value in (None, ""):
        raise OtlpError(f"{what} has no {names[0]}")
    decoded = decode_id(value, digits)
    if decoded is None:
        noun = "trace" if digits == 32 else "span"
        raise OtlpError(
            f"{what} has {names[0]} {value!r}: a {noun} id is {digits} hex digits, not all zeros"
        )
    return decoded


def _nanos(span: dict[str, Any], names: tuple[str, str], what: str) -> int | None:
    value = _field(span, *names)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise OtlpError(f"{what} has {names[0]} {value!r}, not an integer") from None


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return KIND_OF_NAME.get(value, "internal")
    if isinstance(value, int):
        return KIND_OF_CODE.get(value, "internal")
    return "internal"


def _exception(events: Any) -> str:
    """The message of a span's first `exception` event, as the SDK records errors."""
    if not isinstance(events, list):
        return ""
    for event in events:
        if isinstance(event, dict) and event.get("name") == "exception":
            attrs = attribute_map(event.get("attributes") or [])
            kind, text = attrs.get("exception.type") or "", attrs.get("exception.message") or ""
            return f"{kind}: {text}" if kind and text else str(kind or text)
    return ""


def _describe(value: Any) -> str:
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


# -- from spans to a Run ----------------------------------------------------------------


def resolve(parsed: Parsed) -> tuple[int, str]:
    """Set each span's times, outcome, error, protocol; return the time origin."""
    # Switchboard's epoch only when every scope with spans names the same one.
    known = [epoch for epoch in parsed.epochs if epoch is not None]
    if len(parsed.epochs) == 1 and known:
        origin, how = known[0], "switchboard epoch"
    else:
        origin, how = min(s.start_ns for s in parsed.spans), "earliest span"
    for s in parsed.spans:
        a = s.attrs
        s.start = (s.start_ns - origin) / NANOS
        s.end = math.nan if s.end_ns is None else (s.end_ns - origin) / NANOS
        s.kind = str(a.get("switchboard.span.kind") or s.kind)
        s.correlation_id = str(a.get("switchboard.correlation_id") or s.trace_id)
        s.outcome, s.error = _outcome(s)
        if s.outcome == "open":
            s.end = math.nan  # a Switchboard export cuts open spans at the run's end
        s.protocol = str(a["switchboard.protocol"]) if "switchboard.protocol" in a else ""
        s.peer = str(a.get("switchboard.peer") or "")
    return int(origin), how


def _outcome(s: SpanRecord) -> tuple[str, str]:
    """The outcome and error text of a span, from our attribute or from its status."""
    a = s.attrs
    error = str(a.get("switchboard.error") or "")
    theirs = a.get("switchboard.outcome")
    if theirs in OUTCOMES:
        return str(theirs), error
    if s.end_ns is None:
        return "open", error
    failed = s.status_code == STATUS_ERROR or (s.status_code == 0 and "error.type" in a)
    if not failed:
        return "ok", error
    error = error or s.status_message or s.exception or str(a.get("error.type") or "")
    grpc = a.get("rpc.grpc.status_code")
    if isinstance(grpc, int) and grpc in GRPC_OUTCOMES:
        return GRPC_OUTCOMES[grpc], error
    text = f"{a.get('error.type') or ''} {error}".lower()
    if "deadline" in text:
        return "deadline_exceeded", error
    if "timeout" in text or "timed out" in text:
        return "timeout", error
    if "cancel" in text:
        return "cancelled", error
    return "error", error


# The spans columns a GenAI-instrumented trace fills (OTel semantic conventions).
GEN_AI_USAGE = {
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
}


def spans_table(spans: list[SpanRecord]) -> pd.DataFrame:
    """The `spans` table of the imported spans, with the trace id and links kept.

    Every column of the contract is filled: from the span, from a `switchboard.<column>`
    attribute (a Switchboard export carries columns OTLP has no field for), or with the
    recorder's default.
    """
    contract = DTYPES["spans"]
    defaults = span_defaults()
    extra = [c for c in contract if c not in MAPPED_SPAN_COLUMNS]
    rows = []
    for s in spans:
        a = s.attrs
        row: dict[str, Any] = {
            "span_id": s.span_id,
            "parent_id": s.parent_id,
            "correlation_id": s.correlation_id,
            "name": s.name,
            "kind": s.kind,
            "agent": s.agent,
            "peer": s.peer,
            "protocol": s.protocol,
            "start": s.start,
            "end": s.end,
            "deadline": _number(a.get("switchboard.deadline"), math.nan),
            "wait": _number(a.get("switchboard.wait"), 0.0),
            "outcome": s.outcome,
            "attempts": _attempts(a),
            "error": s.error,
            "status": _status(a),
        }
        for column in extra:
            value = a.get(f"switchboard.{column}")
            if value is None and column in GEN_AI_USAGE:
                value = a.get(GEN_AI_USAGE[column])  # a GenAI instrumentation's tokens
            row[column] = _coerce(value, contract[column], defaults[column])
        row["trace_id"] = s.trace_id
        row["links"] = ",".join(s.links)
        rows.append(row)
    columns = [*contract, "trace_id", "links"]
    table = pd.DataFrame(rows, columns=columns)
    return conform("spans", table).astype({"trace_id": "str", "links": "str"})


def _coerce(value: Any, dtype: str, default: Any) -> Any:
    """An attribute's value as a column of `dtype`, or `default` if it does not fit."""
    if value is None:
        return default
    try:
        if dtype.startswith(("int", "uint")):
            return int(value) if not isinstance(value, float) or value.is_integer() else default
        if dtype.startswith("float"):
            return float(value)
        if dtype == "bool":
            return value if isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default
    return str(value)


def _number(value: Any, default: float) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


def _attempts(a: dict[str, Any]) -> int:
    for key, extra in (("switchboard.attempts", 0), ("http.request.resend_count", 1)):
        value = a.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return max(1, value + extra)
    return 1


def _status(a: dict[str, Any]) -> int:
    for key in ("switchboard.status", "http.response.status_code", "http.status_code"):
        value = a.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return 0


def versions() -> dict[str, str]:
    """The versions that made an imported run (no wall clock: imports are reproducible)."""
    return {
        "switchboard": __version__,
        "python": platform.python_version(),
        "pandas": pd.__version__,
    }
