"""Read OTLP/JSON traces (whatever the file's format became on the way): span records.

`sim.otlp.source` gives the file's documents and `sim.otlp.shapes` turns each into
OTLP/JSON `resourceSpans` (Jaeger and Zipkin translated); this module reads those: ids
in OTLP/JSON's hex or protobuf JSON's base64, enums as integers or names, fields in
lowerCamelCase or snake_case.

Every span becomes a row of `spans` as it is (ids, parent, name, kind, agent =
`service.name` of its resource, times in seconds from the time origin, status and the
other marks of failure real instrumentations use -> outcome), and keeps what the
contract's columns cannot hold in its `otel` column, so that an export writes it back as
the file gave it. `sim.otlp.infer` then infers the messages, peers, agents and queues.
The time origin is Switchboard's epoch when the file is a Switchboard export (so a round
trip gives back the same times), else the earliest span's start.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sim._version import __version__
from sim.otlp import shapes, source
from sim.otlp.common import (
    EPOCH_KEY,
    KIND_CODES,
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
    is_address,
    shown,
    span_defaults,
)
from sim.otlp.tasks import EVENT as TASK_EVENT
from sim.trace.schema import DTYPES, conform

# Span outcomes a `switchboard.outcome` attribute may carry back.
OUTCOMES = frozenset(
    {"ok", "error", "timeout", "deadline_exceeded", "rejected", "cancelled", "partial", "open"}
)
# gRPC status codes (rpc.grpc.status_code) that name an outcome of ours.
GRPC_OUTCOMES = {1: "cancelled", 4: "deadline_exceeded"}
GRPC_NAMES = {"CANCELLED": "cancelled", "DEADLINE_EXCEEDED": "deadline_exceeded"}


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
    # False when the file gave no start time (OTLP/JSON omits a zero one; Zipkin's
    # `timestamp` is optional): `date_undated` gives the span one from its neighbours.
    dated: bool = True
    # What the file said that the contract's columns have no room for, kept so that an
    # export gives it back as it was (`otel_record`).
    kind_code: int = 0
    file_name: str | None = None  # the file's name when a Switchboard export renamed it
    events: list[dict[str, Any]] = field(default_factory=list)
    link_refs: list[dict[str, Any]] = field(default_factory=list)
    trace_state: str = ""
    flags: int = 0
    resource: int = 0
    scope: int = 0
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


@dataclass(slots=True)
class Scope:
    """An instrumentation scope of the file (the library that made the spans)."""

    name: str
    version: str
    attrs: dict[str, Any]


@dataclass
class Parsed:
    """Everything read from one file, before inference."""

    spans: list[SpanRecord] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    scopes: list[Scope] = field(default_factory=list)
    epochs: set[int | None] = field(default_factory=set)
    scope_attrs: dict[str, Any] = field(default_factory=dict)
    requests: int = 0
    duplicates: int = 0
    shared_ids: int = 0
    # Repairs made to what a file said, counted for the manifest (see `repair_times`).
    undated: int = 0
    ends_before_start: int = 0
    self_parents: int = 0
    reused_ids: int = 0
    # A span id used by several whole spans: those spans, to tell a copy from another one.
    reused: dict[str, set[tuple[Any, ...]]] = field(default_factory=dict)
    taken: dict[str, int] = field(default_factory=dict)  # see `_free_id`
    switchboard: bool = False
    format: str = "otlp/json"
    # Distinct resources and scopes by content: a Collector file repeats them per line.
    resource_index: dict[str, int] = field(default_factory=dict)
    scope_index: dict[str, int] = field(default_factory=dict)

    def add_resource(self, resource: Resource) -> int:
        """The index of `resource` in `resources`, adding it if it is new."""
        key = json.dumps([resource.service, resource.attrs], sort_keys=True, default=str)
        if key not in self.resource_index:
            self.resource_index[key] = len(self.resources)
            self.resources.append(resource)
        return self.resource_index[key]

    def add_scope(self, scope: Scope) -> int:
        """The index of `scope` in `scopes`, adding it if it is new."""
        key = json.dumps([scope.name, scope.version, scope.attrs], sort_keys=True, default=str)
        if key not in self.scope_index:
            self.scope_index[key] = len(self.scopes)
            self.scopes.append(scope)
        return self.scope_index[key]


# -- reading the file -------------------------------------------------------------------


def parse_file(path: Path, max_bytes: int | None = None) -> Parsed:
    """Read every span of a trace file; raises OtlpError naming what and where.

    `max_bytes` caps the bytes read, after decompression (default
    `sim.limits.MAX_OTLP_BYTES`).
    """
    try:
        return _parse_file(path, max_bytes)
    except RecursionError:
        # Attributes nest (arrays and key-value lists of values) and are read by
        # recursion: JSON just shallow enough for the parser can still be too deep.
        raise OtlpError(
            f"{path} is nested too deeply to read (an OTLP export is a dozen levels deep)"
        ) from None


# The spans read so far, by (trace id, span id).
Seen = dict[tuple[str, str], "SpanRecord"]


def _parse_file(path: Path, max_bytes: int | None) -> Parsed:
    parsed = Parsed()
    seen: Seen = {}
    other_signals = False
    formats: list[str] = []
    for where, doc, encoding in source.documents(path, max_bytes):
        place = f"{path}" + (f" {where}" if where else "")
        for batch in shapes.batches(doc, place, encoding):
            if isinstance(batch, shapes.OtherSignal):
                other_signals = True  # a metrics or logs line of a Collector file
                continue
            parsed.requests += 1
            if batch.format not in formats:
                formats.append(batch.format)
            resources = _list(batch.resource_spans, batch.where, "resourceSpans")
            _read_request(parsed, seen, batch.where, resources)
    if not parsed.spans:
        extra = " (only metrics or logs)" if other_signals else ""
        raise OtlpError(f"{path} holds no spans{extra}: nothing to import")
    repoint_shared_children(parsed)
    unique_across_traces(parsed)
    repair_times(parsed)
    parsed.format = "+".join(formats)
    return parsed


def _read_request(parsed: Parsed, seen: Seen, place: str, resources: list) -> None:
    for r, rs in enumerate(resources):
        at_r = f"resourceSpans[{r}]"
        rs = _object(rs, place, at_r)
        resource = _field(rs, "resource") or {}
        attrs = attribute_map(_list(_field(resource, "attributes") or [], place, at_r))
        # The OpenTelemetry default for a resource that does not name its service; an
        # address is no service's name (some Zipkin tracers put one there).
        service = str(attrs.get("service.name") or "unknown_service")
        if is_address(service):
            service = str(attrs.get("host.name") or "unknown_service")
        resource_at = parsed.add_resource(Resource(service, attrs))
        scopes = _field(rs, "scopeSpans", "scope_spans", "instrumentationLibrarySpans")
        for s, ss in enumerate(_list(scopes or [], place, f"{at_r}.scopeSpans")):
            at_s = f"{at_r}.scopeSpans[{s}]"
            ss = _object(ss, place, at_s)
            scope = _field(ss, "scope", "instrumentationLibrary") or {}
            scope_attrs = attribute_map(_list(_field(scope, "attributes") or [], place, at_s))
            spans = _list(_field(ss, "spans") or [], place, f"{at_s}.spans")
            if not spans:
                continue
            epoch = scope_attrs.get(EPOCH_KEY)
            parsed.epochs.add(epoch if isinstance(epoch, int) else None)
            scope_name = _field(scope, "name")
            if scope_name == SCOPE_NAME:
                parsed.switchboard = True
                parsed.scope_attrs.update(scope_attrs)
            version = _field(scope, "version")
            scope_at = parsed.add_scope(
                Scope(
                    scope_name if isinstance(scope_name, str) else "",
                    version if isinstance(version, str) else "",
                    scope_attrs,
                )
            )
            for k, span in enumerate(spans):
                record = _read_span(span, service, place, f"{at_s}.spans[{k}]")
                record.resource, record.scope = resource_at, scope_at
                _add_span(parsed, seen, record, place, f"{at_s}.spans[{k}]")


def _add_span(parsed: Parsed, seen: Seen, record: SpanRecord, place: str, at: str) -> None:
    """Add a span, sorting out a span id met before in the same trace: a B3 shared server
    span gets its own id; a fragment gives way to the whole span; a copy is dropped; two
    whole, different spans under one id (instances that took the same message) both stay."""
    first = seen.get((record.trace_id, record.span_id))
    if first is None:
        _append(parsed, seen, record)
        return
    if {first.kind, record.kind} == {"client", "server"} and first.agent != record.agent:
        # Zipkin's B3 lets a server reuse its client's span id (`shared`); as Jaeger's
        # query service and Tempo do, the server gets an id of its own, child of the
        # client's (its children are re-pointed once every span is read).
        server = record if record.kind == "server" else first
        client = first if server is record else record
        server.span_id = _free_id(
            seen, server.trace_id, _unshared_id(server.trace_id, client.span_id), parsed.taken
        )
        server.parent_id = client.span_id
        parsed.shared_ids += 1
        seen[(server.trace_id, server.span_id)] = server
        seen[(client.trace_id, client.span_id)] = client
        if server is first:
            _append(parsed, seen, record)
        else:
            record.order = len(parsed.spans)
            parsed.spans.append(record)
        return
    if _completeness(record) > _completeness(first):
        # Zipkin takes a span in pieces: a late fragment (a name, no times) read first
        # gives way to the whole span.
        record.order = first.order
        parsed.spans[first.order] = record
        seen[(record.trace_id, record.span_id)] = record
        parsed.duplicates += 1
        return
    copies = parsed.reused.setdefault(record.span_id, {_identity(first)})
    if _identity(record) in copies or _completeness(record) < _completeness(first):
        parsed.duplicates += 1  # the same span exported twice, or a fragment: keep the first
        return
    copies.add(_identity(record))
    record.span_id = _free_id(
        seen, record.trace_id, _unshared_id(record.trace_id, record.span_id), parsed.taken
    )
    parsed.reused_ids += 1
    _append(parsed, seen, record)


def _identity(s: SpanRecord) -> tuple[Any, ...]:
    """What tells two records of one span id apart: a copy has the same."""
    return (s.start_ns, s.end_ns, s.name, s.agent)


def _append(parsed: Parsed, seen: Seen, record: SpanRecord) -> None:
    seen[(record.trace_id, record.span_id)] = record
    record.order = len(parsed.spans)
    parsed.spans.append(record)


def _completeness(s: SpanRecord) -> tuple[bool, bool, bool]:
    """How much of a span a record holds: a start, an end, a kind."""
    return (s.dated, s.end_ns is not None, s.kind_code != 0)


def _free_id(seen: Seen, trace_id: str, wanted: str, taken: dict[str, int]) -> str:
    """`wanted`, or (when a span of the trace already has it) an id derived from it that
    none has; `taken` counts the derivations made from each id so far."""
    candidate, n = wanted, taken.get(wanted, 0)
    while (trace_id, candidate) in seen:
        n += 1
        candidate = hashlib.sha256(f"{wanted}:{n}".encode()).hexdigest()[:16]
    taken[wanted] = n
    return candidate


def _unshared_id(trace_id: str, span_id: str) -> str:
    """The id a shared server span gets: derived, so the same file imports the same."""
    digest = hashlib.sha256(f"{trace_id}:{span_id}:server".encode()).hexdigest()
    return digest[:16] if digest[:16].strip("0") else "0" * 15 + "1"


def unique_across_traces(parsed: Parsed) -> None:
    """A span id is unique within its trace only (OTLP's rule): a span whose id a span of
    another trace has already gets an id of its own, and its trace's children follow it
    (a run's spans are keyed by span id alone)."""
    owner: dict[str, str] = {}
    renamed: dict[tuple[str, str], str] = {}
    for s in parsed.spans:
        if owner.setdefault(s.span_id, s.trace_id) == s.trace_id:
            continue
        new, n = s.span_id, 0
        while new in owner:
            n += 1
            new = hashlib.sha256(f"{s.trace_id}:{s.span_id}:{n}".encode()).hexdigest()[:16]
        renamed[(s.trace_id, s.span_id)] = new
        owner[new] = s.trace_id
        s.span_id = new
        parsed.reused_ids += 1
    if renamed:
        for s in parsed.spans:
            s.parent_id = renamed.get((s.trace_id, s.parent_id), s.parent_id)


def repair_times(parsed: Parsed) -> None:
    """Make every span's times usable, counting each repair for the manifest.

    A span without a start time gets the first of: its earliest event; its end (or its
    earliest child's start, if sooner); its nearest dated ancestor's start; its trace's
    earliest start; the file's; 0. A span
    that ends before it starts (clocks stepped back) ends when it starts, and a span
    that names itself as its parent is a root.
    """
    for s in parsed.spans:
        if s.parent_id == s.span_id:
            s.parent_id = ""
            parsed.self_parents += 1
    undated = [s for s in parsed.spans if not s.dated]
    if undated:
        _date_undated(parsed.spans, undated)
        parsed.undated = len(undated)
    for s in parsed.spans:
        if s.end_ns is not None and s.end_ns < s.start_ns:
            s.end_ns = s.start_ns
            parsed.ends_before_start += 1


def _date_undated(spans: list[SpanRecord], undated: list[SpanRecord]) -> None:
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    dated = [s for s in spans if s.dated]
    first_of_trace: dict[str, int] = {}
    first_child: dict[tuple[str, str], int] = {}
    for s in dated:
        first_of_trace[s.trace_id] = min(s.start_ns, first_of_trace.get(s.trace_id, s.start_ns))
        key = (s.trace_id, s.parent_id)
        first_child[key] = min(s.start_ns, first_child.get(key, s.start_ns))
    first = min((s.start_ns for s in dated), default=0)
    fixed: set[int] = set()  # ids (id()) of undated spans already given a start
    for s in undated:
        # Up the ancestors until a span whose start is known or can be told from its own
        # events or end; every span passed on the way starts then.
        chain: list[SpanRecord] = []
        on_chain: set[int] = set()
        node: SpanRecord | None = s
        while node is not None and not node.dated and id(node) not in fixed:
            own = _own_start(node, first_child)
            if own is not None:
                node.start_ns = own
                fixed.add(id(node))
                break
            if id(node) in on_chain:  # a cycle of undated spans
                node = None
                break
            chain.append(node)
            on_chain.add(id(node))
            node = by_id.get((node.trace_id, node.parent_id))
        base = node.start_ns if node is not None else first_of_trace.get(s.trace_id, first)
        for n in chain:
            n.start_ns = base
            fixed.add(id(n))


def _own_start(s: SpanRecord, first_child: dict[tuple[str, str], int]) -> int | None:
    """A start told by the span itself: its earliest event, else its end (or its
    earliest child's start, when sooner)."""
    times = [e["time_ns"] for e in s.events if e["time_ns"] > 0]
    if times:
        return min(times)
    if s.end_ns is not None:
        return min(s.end_ns, first_child.get((s.trace_id, s.span_id), s.end_ns))
    return None


def repoint_shared_children(parsed: Parsed) -> None:
    """Children of a shared id on the server's service hang under the server's new id."""
    if not parsed.shared_ids:
        return
    moved: dict[tuple[str, str, str], str] = {}  # (trace, old id, service) -> new id
    for s in parsed.spans:
        if (
            s.kind == "server"
            and s.parent_id
            and s.span_id == _unshared_id(s.trace_id, s.parent_id)
        ):
            moved[(s.trace_id, s.parent_id, s.agent)] = s.span_id
    for s in parsed.spans:
        new = moved.get((s.trace_id, s.parent_id, s.agent))
        if new is not None and new != s.span_id:
            s.parent_id = new


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
                f"{what} has parentSpanId {shown(parent)}: a span id is 16 hex digits, "
                "not all zeros"
            )
    # A zero time is an absent one (OTLP/JSON leaves zero fields out): never 1970.
    start = _nanos(span, ("startTimeUnixNano", "start_time_unix_nano"), what)
    end = _nanos(span, ("endTimeUnixNano", "end_time_unix_nano"), what)
    attrs = attribute_map(_list(_field(span, "attributes") or [], place, f"{at}.attributes"))
    status = _field(span, "status") or {}
    code = _field(status, "code") if isinstance(status, dict) else None
    code = STATUS_OF_NAME.get(code, 0) if isinstance(code, str) else _int_or(code, 0)
    message = _field(status, "message") if isinstance(status, dict) else ""
    links, refs = [], []
    for link in _list(_field(span, "links") or [], place, f"{at}.links"):
        if not isinstance(link, dict):
            continue
        linked = decode_id(_field(link, "spanId", "span_id"), 16)
        if not linked:
            continue
        links.append(linked)
        ref: dict[str, Any] = {
            "trace_id": decode_id(_field(link, "traceId", "trace_id"), 32) or trace_id,
            "span_id": linked,
        }
        link_attrs = attribute_map(_field(link, "attributes") or [])
        if link_attrs:
            ref["attributes"] = link_attrs
        state = _field(link, "traceState", "trace_state")
        if isinstance(state, str) and state:
            ref["trace_state"] = state
        refs.append(ref)
    events = _events(_field(span, "events") or [])
    kind_value = _field(span, "kind")
    state = _field(span, "traceState", "trace_state")
    return SpanRecord(
        span_id=span_id,
        parent_id=parent_id,
        trace_id=trace_id,
        name=name if isinstance(name, str) else "",
        kind=_kind(kind_value),
        agent=service,
        start_ns=start or 0,
        end_ns=end,
        attrs=attrs,
        status_code=code,
        status_message=message if isinstance(message, str) else "",
        links=links,
        exception=_exception(events),
        dated=start is not None,
        kind_code=_kind_code(kind_value),
        events=events,
        link_refs=refs,
        trace_state=state if isinstance(state, str) else "",
        flags=_int_or(_field(span, "flags"), 0),
        task_events=[(e["time_ns"], e["attributes"]) for e in events if e["name"] == TASK_EVENT],
    )


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else default
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
        return default


def _events(events: Any) -> list[dict[str, Any]]:
    """A span's events as {name, time_ns, attributes}, in the file's order."""
    out: list[dict[str, Any]] = []
    if not isinstance(events, list):
        return out
    for event in events:
        if not isinstance(event, dict):
            continue
        name = _field(event, "name")
        attrs = attribute_map(_field(event, "attributes") or [])
        out.append(
            {
                "name": name if isinstance(name, str) else "",
                "time_ns": _int_or(_field(event, "timeUnixNano", "time_unix_nano"), 0),
                "attributes": attrs,
            }
        )
    return out


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
            f"{what} has {names[0]} {shown(value)}: a {noun} id is {digits} hex digits, "
            "not all zeros"
        )
    return decoded


# fixed64: a time past this is no time at all (the year 2554).
_MAX_NANOS = 2**64


def _nanos(span: dict[str, Any], names: tuple[str, str], what: str) -> int | None:
    """A time in nanoseconds since 1970, None when absent or zero."""
    value = _field(span, *names)
    if value in (None, ""):
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, float) and not value.is_integer():
            value = round(value)  # a JSON number written with an exponent
        nanos = int(value)
    except (TypeError, ValueError, OverflowError):
        raise OtlpError(
            f"{what} has {names[0]} {shown(value)}, not an integer number of nanoseconds"
        ) from None
    if not 0 <= nanos < _MAX_NANOS:
        raise OtlpError(
            f"{what} has {names[0]} {shown(value)}: a time is nanoseconds since 1970, "
            "from 0 to 2^64"
        )
    return nanos or None


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return KIND_OF_NAME.get(value, "internal")
    if isinstance(value, int):
        return KIND_OF_CODE.get(value, "internal")
    return "internal"


def _kind_code(value: Any) -> int:
    """The SpanKind number as the file gave it (0, unspecified, when unknown)."""
    if isinstance(value, str):
        return KIND_CODES.get(KIND_OF_NAME.get(value, ""), 0) if value in KIND_OF_NAME else 0
    if isinstance(value, int) and not isinstance(value, bool) and value in KIND_OF_CODE:
        return value
    return 0


def _exception(events: list[dict[str, Any]]) -> str:
    """The text of a span's first exception event, as the SDK (or OpenTracing's `error`
    log) records one."""
    for event in events:
        attrs = event["attributes"]
        if event["name"] in ("exception", "error") or attrs.get("event") == "error":
            kind = attrs.get("exception.type") or attrs.get("error.kind") or ""
            text = attrs.get("exception.message") or attrs.get("message") or ""
            return f"{kind}: {text}" if kind and text else str(kind or text or event["name"])
    return ""


_describe = shapes.describe


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
        if isinstance(a.get("switchboard.name"), str):
            s.file_name, s.name = s.name, a["switchboard.name"]
        s.correlation_id = str(a.get("switchboard.correlation_id") or s.trace_id)
        s.outcome, s.error = _outcome(s)
        if s.outcome == "open":
            s.end = math.nan  # a Switchboard export cuts open spans at the run's end
        s.protocol = str(a["switchboard.protocol"]) if "switchboard.protocol" in a else ""
        s.peer = str(a.get("switchboard.peer") or "")
    return int(origin), how


def _outcome(s: SpanRecord) -> tuple[str, str]:
    """The outcome and error text of a span, from our attribute or from what real
    instrumentations mark failures with (see `failed`)."""
    a = s.attrs
    error = str(a.get("switchboard.error") or "")
    theirs = a.get("switchboard.outcome")
    if theirs in OUTCOMES:
        return str(theirs), error
    if s.end_ns is None:
        return "open", error
    if not failed(s):
        return "ok", error
    flag = a.get("error")
    flag_text = flag if isinstance(flag, str) and flag.lower() not in ("true", "1") else ""
    error = (
        error
        or s.status_message
        or s.exception
        or str(a.get("error.type") or "")
        or flag_text
        or (f"HTTP {_status(a)}" if _status(a) else "")
    )
    rpc = _rpc_outcome(a)
    if rpc:
        return rpc, error
    if _status(a) in TIMEOUT_STATUSES:
        return "timeout", error
    text = f"{a.get('error.type') or ''} {error} {s.exception}".lower()
    if "deadline" in text:
        return "deadline_exceeded", error
    if "timeout" in text or "timed out" in text:
        return "timeout", error
    if "cancel" in text:
        return "cancelled", error
    return "error", error


# 408 Request Timeout and 504 Gateway Timeout: the answer of a proxy or server that
# stopped waiting (Envoy's upstream timeout is a 504).
TIMEOUT_STATUSES = frozenset({408, 504})


def failed(s: SpanRecord) -> bool:
    """Whether a span failed: status ERROR; or, with the status unset, `error.type`, an
    `error` tag (Jaeger, Envoy, Zipkin: anything but false), an exception event, or an
    HTTP 5xx (a 4xx on a client). An explicit OK status is a success."""
    if s.status_code == STATUS_ERROR:
        return True
    if s.status_code != 0:
        return False
    a = s.attrs
    flag = a.get("error")
    if flag is True or (isinstance(flag, str) and flag.lower() not in ("", "false", "0")):
        return True
    if "error.type" in a or s.exception:
        return True
    status = _status(a)
    return status >= 500 or (status >= 400 and s.kind == "client")


def _rpc_outcome(a: dict[str, Any]) -> str:
    """A deadline or cancellation an RPC status names, old and new attribute names."""
    grpc = a.get("rpc.grpc.status_code")
    if isinstance(grpc, str) and grpc.isdigit():
        grpc = int(grpc)
    if isinstance(grpc, int) and grpc in GRPC_OUTCOMES:
        return GRPC_OUTCOMES[grpc]
    for key in ("rpc.status_code", "rpc.response.status_code"):
        code = a.get(key)
        if isinstance(code, str):
            named = GRPC_NAMES.get(code.upper()) or (
                GRPC_OUTCOMES.get(int(code)) if code.isdigit() else None
            )
            if named:
                return named
    return ""


# The column of an imported run's spans holding what the file said (`otel_record`).
OTEL_COLUMN = "otel"

# The spans columns a GenAI-instrumented trace fills (OTel semantic conventions).
GEN_AI_USAGE = {
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "ttft": "gen_ai.response.time_to_first_chunk",
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
                value = a.get(GEN_AI_USAGE[column])  # a GenAI instrumentation's tokens, TTFT
            row[column] = _coerce(value, contract[column], defaults[column])
        row["trace_id"] = s.trace_id
        row["links"] = ",".join(s.links)
        row[OTEL_COLUMN] = otel_record(s)
        rows.append(row)
    columns = [*contract, "trace_id", "links", OTEL_COLUMN]
    table = pd.DataFrame(rows, columns=columns)
    return conform("spans", table).astype({"trace_id": "str", "links": "str", OTEL_COLUMN: "str"})


def otel_record(s: SpanRecord) -> str:
    """What the file said of a span beyond the contract's columns, as JSON: an export
    writes the span back from it (its kind, times to the nanosecond, attributes, events,
    links with their trace ids, status, trace state, flags, resource and scope)."""
    record: dict[str, Any] = {
        "kind": s.kind_code,
        "start_ns": s.start_ns,
        "end_ns": s.end_ns,
        "attributes": s.attrs,
        "status": {"code": s.status_code, "message": s.status_message},
        "resource": s.resource,
        "scope": s.scope,
    }
    if s.file_name is not None:
        record["name"] = s.file_name
    if s.events:
        record["events"] = s.events
    if s.link_refs:
        record["links"] = s.link_refs
    if s.trace_state:
        record["trace_state"] = s.trace_state
    if s.flags:
        record["flags"] = s.flags
    return json.dumps(record, separators=(",", ":"), default=str)


def _coerce(value: Any, dtype: str, default: Any) -> Any:
    """An attribute's value as a column of `dtype`, or `default` if it does not fit."""
    if value is None:
        return default
    try:
        if dtype.startswith(("int", "uint")):
            if isinstance(value, float) and not value.is_integer():
                return default
            number = int(value)
            # A column holds 64 bits: a bigger number in a bad file does not fit, like a
            # fraction.
            return number if -(2**63) <= number < 2**63 else default
        if dtype.startswith("float"):
            return float(value)
        if dtype == "bool":
            return value if isinstance(value, bool) else default
    except (TypeError, ValueError, OverflowError):
        return default
    return str(value)


def _number(value: Any, default: float) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


def _attempts(a: dict[str, Any]) -> int:
    for key, extra in (("switchboard.attempts", 0), ("http.request.resend_count", 1)):
        value = a.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < 2**63 - 1:
            return max(1, value + extra)
    return 1


def _status(a: dict[str, Any]) -> int:
    # A status code has three digits (gRPC's fewer): anything longer in a bad file is none,
    # not a number the int64 column cannot hold.
    for key in ("switchboard.status", "http.response.status_code", "http.status_code"):
        value = a.get(key)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value if 0 <= value < 1000 else 0
    return 0


def versions() -> dict[str, str]:
    """The versions that made an imported run (no wall clock: imports are reproducible)."""
    return {
        "switchboard": __version__,
        "python": platform.python_version(),
        "pandas": pd.__version__,
    }
