"""Export a Run as OpenTelemetry traces (OTLP/JSON) or as CSV tables.

The OTLP document is one `ExportTraceServiceRequest`: one resource per agent
(`service.name` = the agent), one scope (`switchboard`) whose attributes record the time
origin, and one span per row of `spans`:

- `traceId`: a digest of the span's correlation id (`protocols.envelope.trace_id_for`), so
  every span of one request shares it and the same run always gives the same ids;
- `spanId`, `parentSpanId`: the run's own 16-hex span ids;
- `kind`: client 3, server 2, producer 4, consumer 5; any other kind is internal 1 with
  the original in `switchboard.span.kind`;
- times: simulated seconds after `EPOCH_UNIX_NANO`, in nanoseconds, as strings; a span
  still open when the run ended ends at the run's end with `switchboard.outcome=open`;
- `status`: OK for `ok`, ERROR (with the error as message) for every failure, unset for
  `partial` and `open`;
- `events`: `retry` for each re-sent request or publish, `redelivery` for each delivery
  with a delivery count above 1, `breaker.rejected` (or `rejected`) for a refused call,
  `a2a.task.state` for each row of `tasks` on the span serving the task (`sim.otlp.tasks`);
- attributes: the HTTP and messaging semantic conventions where they apply (A2A and MCP
  are JSON-RPC over HTTP POSTs; MCP calls also get `mcp.method.name`), the GenAI
  ones (OTel semantic conventions v1.41: `gen_ai.operation.name` `chat`,
  `gen_ai.provider.name` and its older name `gen_ai.system`, `gen_ai.request.model`,
  `gen_ai.usage.input_tokens`/`output_tokens`) on the calls to and spans of an `llm`
  agent, and `switchboard.*` for what they have no name for (outcome, wait, deadline,
  attempts, cost).
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from protocols.envelope import span_id_for, trace_id_for
from sim._version import __version__
from sim.agents.steps import DISCOVER
from sim.otlp import jaeger
from sim.otlp.common import (
    EPOCH_KEY,
    EPOCH_UNIX_NANO,
    FAILED,
    KIND_CODES,
    MAPPED_SPAN_COLUMNS,
    NANOS,
    SCOPE_NAME,
    STATUS_ERROR,
    STATUS_OK,
    OtlpError,
    attribute_list,
    hex_to_base64,
    is_hex_id,
    span_defaults,
    write_atomically,
)
from sim.otlp.tasks import task_events
from sim.trace.schema import TABLES

if TYPE_CHECKING:
    from sim.trace.run import Run

HTTP_LIKE = frozenset({"http", "sse", "websocket", "a2a", "mcp"})
# Spans that are one HTTP request (an SSE stream opens with one), named "{method} {route}"
# as the HTTP conventions name them; a WebSocket's messages are not requests.
HTTP_NAMED = frozenset({"http", "sse"})
# SSE opens its stream with a GET, a WebSocket with a GET upgrade; a call is a POST (an
# A2A JSON-RPC request, an MCP Streamable HTTP message).
HTTP_METHOD = {"http": "POST", "sse": "GET", "websocket": "GET", "a2a": "POST", "mcp": "POST"}
# Reads among the calls (span names, `sim.agents.steps`), and the routes they take.
READS = frozenset({DISCOVER})
ROUTES = {DISCOVER: "/.well-known/agent-card.json"}
HTTP_PORT = 80
# An exception's type by the outcome it ended in (the event a failed span records).
EXCEPTION_TYPES = {
    "timeout": "TimeoutError",
    "deadline_exceeded": "DeadlineExceededError",
    "cancelled": "CancelledError",
    "error": "Error",
}
SENDS = frozenset({"request", "publish"})  # kinds that carry a span's own call
RECEIVES = frozenset({"request", "publish", "deliver"})  # kinds that start a handler
OPEN_BREAKER = frozenset({"open", "forced_open"})
_SPAN_ID = re.compile(r"[0-9a-f]{16}\Z")


def to_otlp(run: Run, epoch_unix_nano: int | None = None) -> dict[str, Any]:
    """The run as an OTLP/JSON `ExportTraceServiceRequest` (a dict ready for json.dump).

    Simulated second 0 is `epoch_unix_nano`: by default `EPOCH_UNIX_NANO`, or for an
    imported run the instant its trace started, so that its spans keep their times.
    """
    from sim.world import sparse_gc

    # Millions of small acyclic dicts: the default GC thresholds would rescan them
    # over and over and take more than half the time.
    with sparse_gc():
        return _Exporter(run, epoch_unix_nano).document()


def otlp_json(run: Run, epoch_unix_nano: int | None = None) -> str:
    """The OTLP/JSON text of `run`: one line, so it is also a valid JSON-lines file."""
    from sim.world import sparse_gc

    with sparse_gc():
        return json.dumps(to_otlp(run, epoch_unix_nano), separators=(",", ":")) + "\n"


def write_otlp(run: Run, path: str | Path) -> Path:
    """Write `run` as OTLP/JSON to `path`, whole or not at all."""
    text = otlp_json(run)
    return write_atomically(Path(path), lambda tmp: tmp.write_text(text))


def to_jaeger(run: Run) -> dict[str, Any]:
    """The run as Jaeger's query API JSON (`{"data": [trace, ...]}`), which Jaeger's UI
    opens by upload; the OTLP export translated as the Collector's Jaeger exporter does."""
    return jaeger.from_otlp(to_otlp(run))


def jaeger_json(run: Run) -> str:
    """The Jaeger JSON text of `run`."""
    from sim.world import sparse_gc

    with sparse_gc():
        return json.dumps(to_jaeger(run), separators=(",", ":")) + "\n"


def write_jaeger(run: Run, path: str | Path) -> Path:
    """Write `run` as Jaeger JSON to `path`, whole or not at all."""
    text = jaeger_json(run)
    return write_atomically(Path(path), lambda tmp: tmp.write_text(text))


def protobuf_json(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of an OTLP/JSON document with base64 ids, as `json_format.Parse` expects.

    OTLP/JSON writes ids in hex; the standard protobuf JSON mapping that
    `google.protobuf.json_format` implements reads bytes as base64.
    """
    out = json.loads(json.dumps(document))
    for resource in out.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = hex_to_base64(span[key])
                for link in span.get("links", []):
                    for key in ("traceId", "spanId"):
                        link[key] = hex_to_base64(link[key])
    return out


# -- CSV --------------------------------------------------------------------------------


def csv_files(run: Run) -> dict[str, str]:
    """Each table as the text of NAME.csv, and the manifest as run.json."""
    files = {f"{name}.csv": run.tables[name].to_csv(index=False) for name in TABLES}
    files["run.json"] = json.dumps(run.manifest, indent=2, default=_json_default) + "\n"
    return files


def csv_zip(run: Run) -> bytes:
    """The CSV tables and run.json as a zip archive, for a download button.

    Entries carry a fixed date, so the same run always gives the same bytes.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in csv_files(run).items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), text)
    return buffer.getvalue()


def write_csv(run: Run, path: str | Path) -> Path:
    """Write each table as NAME.csv, plus run.json, into a directory or a .zip file.

    A path ending in `.zip` gives a zip archive (`csv_zip`); any other path gives a
    directory. Whole or not at all; an existing directory is replaced only if it holds
    nothing but an earlier export.
    """
    target = Path(path)
    if target.suffix == ".zip":
        data = csv_zip(run)
        return write_atomically(target, lambda tmp: tmp.write_bytes(data))
    if target.is_dir():
        others = [f.name for f in target.iterdir() if f.suffix != ".csv" and f.name != "run.json"]
        if others:
            raise OtlpError(
                f"cannot write the CSV tables to {target}: the directory holds other files "
                f"({', '.join(sorted(others)[:3])})"
            )
    files = csv_files(run)

    def write_dir(tmp: Path) -> None:
        tmp.mkdir()
        for name, text in files.items():
            (tmp / name).write_text(text)

    return write_atomically(target, write_dir)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# -- the exporter -----------------------------------------------------------------------


class _Exporter:
    """Builds the OTLP document of one run; indexes the messages once."""

    def __init__(self, run: Run, epoch_unix_nano: int | None) -> None:
        self.run = run
        self.epoch = int(epoch_unix_nano if epoch_unix_nano is not None else _epoch_of(run))
        spans = run.spans
        self.spans = spans
        last = max(_max(spans["start"]), _max(spans["end"]), run.duration, 0.0)
        self.run_end = last  # where a still-open span is cut off
        self.trace_ids = _trace_ids(spans)
        self.ids = _otel_span_ids(spans, self.trace_ids)
        messages = run.messages
        # Column lists: indexing a list is far cheaper than pandas row access.
        self.m = {c: messages[c].tolist() for c in messages.columns}
        self.sent_by: dict[str, list[int]] = defaultdict(list)
        self.deliveries: dict[str, list[int]] = defaultdict(list)
        for i, (span, kind, msg_id) in enumerate(
            zip(self.m["span_id"], self.m["kind"], self.m["msg_id"], strict=True)
        ):
            self.sent_by[span].append(i)
            if kind == "deliver":
                self.deliveries[msg_id].append(i)
        self.breakers = _breaker_history(run.breakers)
        self.task_events = task_events(run.tasks)
        # Columns with no OTLP field or convention: carried as switchboard.<column>.
        self.extra_columns = [
            c for c in spans.columns if c not in MAPPED_SPAN_COLUMNS and c.isidentifier()
        ]
        self.defaults = span_defaults()
        self.models = _llm_models(run.manifest)

    def document(self) -> dict[str, Any]:
        scope = {
            "name": SCOPE_NAME,
            "version": __version__,
            "attributes": attribute_list(
                {
                    EPOCH_KEY: self.epoch,
                    "switchboard.run.name": self.run.name,
                    "switchboard.run.seed": _int_or_none(self.run.manifest.get("seed")),
                    "switchboard.run.duration": float(self.run.duration),
                }
            ),
        }
        by_agent: dict[str, list[dict[str, Any]]] = {}
        agents = self.run.agents
        for agent in agents["agent"].tolist():
            by_agent.setdefault(str(agent), [])
        extra = sorted(set(self.spans["agent"].tolist()) - set(by_agent))
        for agent in extra:
            by_agent[agent] = []
        # Imported spans go back under the resource and scope their file gave them.
        kept: dict[int, dict[int, list[dict[str, Any]]]] = {}
        for row in self.spans.itertuples(index=False):
            record = _record(row)
            if record is None:
                by_agent[row.agent].append(self.span(row))
            else:
                spans = kept.setdefault(int(record.get("resource", 0)), {})
                spans.setdefault(int(record.get("scope", 0)), []).append(
                    self.faithful_span(row, record)
                )
        info = {str(r["agent"]): r for r in agents.to_dict(orient="records")}
        resources = [
            {
                "resource": {"attributes": attribute_list(_resource_attributes(a, info.get(a)))},
                "scopeSpans": [{"scope": dict(scope), "spans": spans}],
            }
            for a, spans in by_agent.items()
            if spans or not kept
        ]
        resources += self.kept_resources(kept)
        return {"resourceSpans": resources}

    def kept_resources(self, kept: dict[int, dict[int, list[dict[str, Any]]]]) -> list[dict]:
        """The resourceSpans of imported spans: the file's resources and scopes."""
        given = self.run.manifest.get("resources") or []
        scopes = self.run.manifest.get("scopes") or []
        out = []
        for r, by_scope in kept.items():
            attrs = given[r].get("attributes", {}) if r < len(given) else {}
            scope_spans = []
            for sc, spans in by_scope.items():
                scope = scopes[sc] if sc < len(scopes) else {}
                entry: dict[str, Any] = {}
                for key in ("name", "version"):
                    if scope.get(key):
                        entry[key] = scope[key]
                if scope.get("attributes"):
                    entry["attributes"] = attribute_list(scope["attributes"])
                scope_spans.append({"scope": entry, "spans": spans})
            out.append(
                {"resource": {"attributes": attribute_list(attrs)}, "scopeSpans": scope_spans}
            )
        return out

    # -- one span -----------------------------------------------------------------------

    def span(self, row: Any) -> dict[str, Any]:
        kind = str(row.kind)
        outcome = str(row.outcome)
        start, end = float(row.start), float(row.end)
        open_ = math.isnan(end) or outcome == "open"
        out: dict[str, Any] = {
            "traceId": self.trace_ids[row.span_id],
            "spanId": self.ids[row.span_id],
        }
        if row.parent_id:
            out["parentSpanId"] = self.parent_id(str(row.parent_id), out["traceId"])
        out["name"] = str(row.name)
        if str(row.protocol) in HTTP_NAMED and kind in ("client", "server"):
            out["name"] = f"{http_method(row)} {http_route(str(row.name))}"
        out["kind"] = KIND_CODES.get(kind, KIND_CODES["internal"])
        out["startTimeUnixNano"] = str(self.nanos(start))
        out["endTimeUnixNano"] = str(self.nanos(max(start, self.run_end) if open_ else end))
        outgoing = self.outgoing(row)
        incoming = self.incoming(row)
        out["attributes"] = attribute_list(self.attributes(row, outgoing, incoming))
        events = self.events(row, outgoing, incoming)
        if events:
            out["events"] = events
        links = self.links(row)
        if links:
            out["links"] = links
        if outcome == "ok":
            out["status"] = {"code": STATUS_OK}
        elif outcome in FAILED:
            out["status"] = {"code": STATUS_ERROR, "message": str(row.error) or outcome}
        else:
            out["status"] = {}  # partial, open: neither a success nor a failure
        return out

    def parent_id(self, parent: str, trace_id: str) -> str:
        """The parent's OTLP id: a parent not among the spans (a trace cut short, a
        caller outside it) keeps its id when it is one, rather than a made-up one."""
        known = self.ids.get(parent)
        if known:
            return known
        if is_hex_id(parent, 16):
            return parent.lower()
        return span_id_for(trace_id, parent)

    def faithful_span(self, row: Any, record: dict[str, Any]) -> dict[str, Any]:
        """An imported span as its file gave it (`sim.otlp.parse.otel_record`)."""
        out: dict[str, Any] = {
            "traceId": self.trace_ids[row.span_id],
            "spanId": self.ids[row.span_id],
        }
        if record.get("trace_state"):
            out["traceState"] = record["trace_state"]
        if row.parent_id:
            out["parentSpanId"] = self.parent_id(str(row.parent_id), out["traceId"])
        if record.get("flags"):
            out["flags"] = int(record["flags"])
        out["name"] = str(record.get("name", row.name))
        out["kind"] = int(record.get("kind") or 0)
        out["startTimeUnixNano"] = str(record["start_ns"])
        if record.get("end_ns") is not None:
            out["endTimeUnixNano"] = str(record["end_ns"])
        out["attributes"] = attribute_list(record.get("attributes") or {})
        events = [
            {
                "timeUnixNano": str(event["time_ns"]),
                "name": event["name"],
                "attributes": attribute_list(event.get("attributes") or {}),
            }
            for event in record.get("events", [])
        ]
        if events:
            out["events"] = events
        links = []
        for ref in record.get("links", []):
            link: dict[str, Any] = {"traceId": ref["trace_id"], "spanId": ref["span_id"]}
            if ref.get("trace_state"):
                link["traceState"] = ref["trace_state"]
            if ref.get("attributes"):
                link["attributes"] = attribute_list(ref["attributes"])
            links.append(link)
        if links:
            out["links"] = links
        status = record.get("status") or {}
        out["status"] = {
            k: v for k, v in (("code", status.get("code")), ("message", status.get("message"))) if v
        }
        return out

    def links(self, row: Any) -> list[dict[str, str]]:
        """Span links (an imported run keeps them in a `links` column of span ids)."""
        text = getattr(row, "links", "")
        if not isinstance(text, str) or not text:
            return []
        own = self.trace_ids[row.span_id]
        return [
            {"traceId": self.trace_ids.get(linked, own), "spanId": self.ids.get(linked, linked)}
            for linked in text.split(",")
            if is_hex_id(self.ids.get(linked, linked), 16)
        ]

    def nanos(self, seconds: float) -> int:
        return self.epoch + round(seconds * NANOS)

    def outgoing(self, row: Any) -> int | None:
        """The first request or publish this span sent (its call), or None."""
        return self.first_sent(row, *SENDS)

    def first_sent(self, row: Any, *kinds: str) -> int | None:
        """The first message of one of `kinds` this span sent, or None."""
        kind_of = self.m["kind"]
        for i in self.sent_by.get(row.span_id, ()):
            if kind_of[i] in kinds:
                return i
        return None

    def incoming(self, row: Any) -> int | None:
        """The message that started this handler: the parent's last copy to arrive first."""
        if not row.parent_id or row.kind not in ("server", "consumer"):
            return None
        m, best, when = self.m, None, -math.inf
        start = float(row.start) + 1e-9
        for i in self.sent_by.get(row.parent_id, ()):
            arrived = m["delivered_at"][i]
            if (
                m["kind"][i] in RECEIVES
                and m["dst"][i] == row.agent
                and arrived == arrived  # not NaN
                and when < arrived <= start
            ):
                best, when = i, arrived
        return best

    def attributes(self, row: Any, outgoing: int | None, incoming: int | None) -> dict[str, Any]:
        kind, protocol, peer = str(row.kind), str(row.protocol), str(row.peer)
        status, attempts = int(row.status), int(row.attempts)
        attrs: dict[str, Any] = {}
        if protocol in HTTP_LIKE and kind in ("client", "server"):
            attrs["http.request.method"] = http_method(row)
            if status > 0:
                attrs["http.response.status_code"] = status
            host = peer if kind == "client" else str(row.agent)
            attrs["server.address"] = host
            attrs["server.port"] = HTTP_PORT
            if protocol in HTTP_NAMED:
                route = http_route(str(row.name))
                attrs["http.route"] = route
                attrs["url.scheme"] = "http"
                if kind == "client":
                    attrs["url.full"] = f"http://{host}{route}"
                else:
                    attrs["url.path"] = route
            if kind == "server" and peer:
                attrs["client.address"] = peer
            attrs["network.protocol.name"] = "websocket" if protocol == "websocket" else "http"
            if kind == "client" and attempts > 1:
                attrs["http.request.resend_count"] = attempts - 1
            body = outgoing if kind == "client" else self.first_sent(row, "response")
            if body is not None:
                key = "http.request.body.size" if kind == "client" else "http.response.body.size"
                attrs[key] = int(self.m["size_bytes"][body])
        if protocol == "queue":
            message = outgoing if kind in ("producer", "client") else incoming
            attrs["messaging.system"] = SCOPE_NAME
            attrs["messaging.operation.type"] = (
                "send" if kind in ("producer", "client") else "process"
            )
            attrs["messaging.operation.name"] = (
                "publish" if kind in ("producer", "client") else "process"
            )
            attrs["messaging.destination.name"] = self.destination(row, message)
            if message is not None:
                attrs["messaging.message.id"] = self.m["msg_id"][message]
                attrs["messaging.message.body.size"] = int(self.m["size_bytes"][message])
            if row.correlation_id:
                attrs["messaging.message.conversation_id"] = str(row.correlation_id)
        if protocol == "mcp" and kind in ("client", "server"):
            # OTel's MCP conventions (semantic conventions v1.41, gen-ai/mcp.md).
            attrs["mcp.method.name"] = "tools/call"
            attrs["gen_ai.operation.name"] = "execute_tool"
            attrs["jsonrpc.protocol.version"] = "2.0"
        if kind in ("client", "server"):
            model = self.models.get(str(row.agent) if kind == "server" else peer)
            if model is not None:
                attrs.update(_gen_ai_attributes(row, *model))
        if row.outcome in FAILED:
            attrs["error.type"] = str(status) if status >= 400 else str(row.outcome)
        if peer:
            attrs["peer.service"] = peer
        attrs.update(
            {
                "switchboard.outcome": str(row.outcome),
                "switchboard.correlation_id": str(row.correlation_id),
                "switchboard.protocol": protocol,
                "switchboard.peer": peer,
                "switchboard.attempts": attempts,
                "switchboard.wait": float(row.wait),
                "switchboard.deadline": float(row.deadline),  # NaN (none) is left out
                "switchboard.status": status or None,
                "switchboard.error": str(row.error) or None,
                "switchboard.span.kind": None if kind in KIND_CODES else kind,
                # HTTP spans are named "{method} {route}": the run's own name, kept.
                "switchboard.name": str(row.name)
                if protocol in HTTP_NAMED and kind in ("client", "server")
                else None,
            }
        )
        for column in self.extra_columns:
            value = getattr(row, column)
            value = value.item() if hasattr(value, "item") else value
            if column in self.defaults and value == self.defaults[column]:
                continue  # the recorder's "nothing here" (-1, ""): the import restores it
            attrs[f"switchboard.{column}"] = value
        return attrs

    def destination(self, row: Any, message: int | None) -> str:
        """The queue: a `queue` column if the tables have one, else the receiving agent."""
        if message is not None and "queue" in self.m:
            return str(self.m["queue"][message])
        if "queue" in self.spans.columns:
            return str(row.queue)
        # Producer and consumer both name the consumer's queue: its agent.
        return str(row.peer) if row.kind in ("producer", "client") else str(row.agent)

    def events(self, row: Any, outgoing: int | None, incoming: int | None) -> list[dict]:
        m = self.m
        events: list[tuple[float, str, dict[str, Any]]] = []
        for i in self.sent_by.get(row.span_id, ()):
            if m["kind"][i] in SENDS and m["attempt"][i] > 1:
                events.append(
                    (m["sent_at"][i], "retry", _message_attributes(m, i, "switchboard.attempt"))
                )
        if row.kind == "producer" and outgoing is not None:
            for i in self.deliveries.get(m["msg_id"][outgoing], ()):
                if m["attempt"][i] > 1:
                    at = m["sent_at"][i]
                    events.append((at, "redelivery", _delivery_attributes(m, i)))
        if incoming is not None and m["kind"][incoming] == "deliver" and m["attempt"][incoming] > 1:
            at = m["delivered_at"][incoming]
            events.append((at, "redelivery", _delivery_attributes(m, incoming)))
        if row.outcome in FAILED and row.outcome != "rejected":
            # The exception event an instrumented program records for a failure.
            at = float(row.end) if not math.isnan(float(row.end)) else float(row.start)
            name = EXCEPTION_TYPES.get(str(row.outcome), "Error")
            if row.outcome == "error" and int(row.status) >= 400:
                name = "HTTPError"
            events.append(
                (
                    at,
                    "exception",
                    {
                        "exception.type": name,
                        "exception.message": str(row.error) or str(row.outcome),
                    },
                )
            )
        if row.outcome == "rejected":
            at = float(row.end) if not math.isnan(float(row.end)) else float(row.start)
            state = self.breaker_state(str(row.agent), str(row.peer), float(row.start))
            name = "breaker.rejected" if state in OPEN_BREAKER else "rejected"
            attrs = {"switchboard.reason": str(row.error), "switchboard.breaker.state": state}
            events.append((at, name, attrs))
        events.extend(self.task_events.get(row.span_id, ()))
        events.sort(key=lambda e: e[0])
        return [
            {"timeUnixNano": str(self.nanos(at)), "name": name, "attributes": attribute_list(a)}
            for at, name, a in events
        ]

    def breaker_state(self, agent: str, target: str, time: float) -> str | None:
        """The state of the breaker (agent -> target) at `time`, if it ever moved."""
        state = None
        for when, to_state in self.breakers.get((agent, target), ()):
            if when > time:
                break
            state = to_state
        return state


def http_method(row: Any) -> str:
    """The HTTP method of a span: GET for reads (an agent card, an SSE stream, a
    WebSocket upgrade), POST for a call."""
    if str(row.name) in READS:
        return "GET"
    return HTTP_METHOD.get(str(row.protocol), "POST")


def http_route(name: str) -> str:
    """The route of a span's request: A2A's card path for a card, else /<name>."""
    return ROUTES.get(name) or "/" + name.lstrip("/")


def _epoch_of(run: Run) -> int:
    """Second 0 of `run` in Unix nanoseconds: an imported trace's own start, else ours."""
    origin = run.manifest.get("time_origin_unix_nano")
    if run.manifest.get("imported") and isinstance(origin, int) and not isinstance(origin, bool):
        return origin
    return EPOCH_UNIX_NANO


def _record(row: Any) -> dict[str, Any] | None:
    """An imported span's `otel` record, or None for a simulated span."""
    text = getattr(row, "otel", "")
    if not isinstance(text, str) or not text.startswith("{"):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "start_ns" in record else None


def _llm_models(manifest: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """(provider, model) of each `llm` agent of the run's scenario, by agent id (the
    agent's id stands for a model its block does not name)."""
    scenario = manifest.get("scenario")
    agents = scenario.get("agents") if isinstance(scenario, dict) else None
    out: dict[str, tuple[str, str]] = {}
    for agent in agents if isinstance(agents, list) else []:
        if isinstance(agent, dict) and agent.get("role") == "llm":
            block = agent.get("llm")
            block = block if isinstance(block, dict) else {}
            model = block.get("model") or agent.get("id")
            out[str(agent.get("id"))] = (str(block.get("provider", "anthropic")), str(model))
    return out


def _gen_ai_attributes(row: Any, provider: str, model: str) -> dict[str, Any]:
    """The GenAI semantic conventions' attributes of a span of a model call."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,  # the name before semantic conventions v1.37
        "gen_ai.request.model": model,
    }
    tokens_in = int(getattr(row, "input_tokens", -1))
    tokens_out = int(getattr(row, "output_tokens", -1))
    if tokens_in >= 0:
        attrs["gen_ai.usage.input_tokens"] = tokens_in
    if tokens_out >= 0:
        attrs["gen_ai.usage.output_tokens"] = tokens_out
    ttft = float(getattr(row, "ttft", math.nan))
    if not math.isnan(ttft):
        attrs["gen_ai.response.time_to_first_chunk"] = ttft
    return attrs


def _message_attributes(m: dict[str, list], i: int, count_key: str) -> dict[str, Any]:
    return {
        count_key: int(m["attempt"][i]),
        "messaging.message.id": m["msg_id"][i],
        "switchboard.message.outcome": m["outcome"][i],
    }


def _delivery_attributes(m: dict[str, list], i: int) -> dict[str, Any]:
    attrs = _message_attributes(m, i, "switchboard.delivery_count")
    attrs["switchboard.consumer"] = m["dst"][i]
    return attrs


def _breaker_history(breakers: pd.DataFrame) -> dict[tuple[str, str], list[tuple[float, str]]]:
    """Each breaker's transitions in time order, state names in lower case."""
    history: dict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)
    ordered = breakers.sort_values("time", kind="stable")
    for agent, target, time, to_state in zip(
        ordered["agent"], ordered["target"], ordered["time"], ordered["to_state"], strict=True
    ):
        history[(str(agent), str(target))].append((float(time), str(to_state).lower()))
    return history


def _trace_ids(spans: pd.DataFrame) -> dict[str, str]:
    """Each span's trace id: from its correlation id, else from its tree's root.

    Every span of one tree must share a trace id, so a span with no correlation id takes
    its nearest ancestor's; a tree with none at all is named after its root span. An
    imported run's own trace ids (its `trace_id` column) are kept as they are.
    """
    if "trace_id" in spans.columns:  # an imported run: keep the original trace ids
        given = dict(zip(spans["span_id"], spans["trace_id"], strict=True))
        if all(is_hex_id(str(t), 32) for t in given.values()):
            return {str(k): str(v).lower() for k, v in given.items()}
    parent = dict(zip(spans["span_id"], spans["parent_id"], strict=True))
    corr = dict(zip(spans["span_id"], spans["correlation_id"], strict=True))
    source: dict[str, str] = {}
    for span in spans["span_id"]:
        path, node = [], span
        while node not in source:
            path.append(node)
            if corr.get(node):
                source[node] = corr[node]
                break
            up = parent.get(node, "")
            if not up or up not in parent or up in path:
                source[node] = f"span:{node}"
                break
            node = up
        found = source[node]
        for seen in path:
            source[seen] = found
    cache: dict[str, str] = {}
    out: dict[str, str] = {}
    for span, src in source.items():
        if src not in cache:
            cache[src] = trace_id_for(src)
        out[span] = cache[src]
    return out


def _otel_span_ids(spans: pd.DataFrame, trace_ids: dict[str, str]) -> dict[str, str]:
    """The OTLP span id of each span: its own id when it is already 16 hex digits."""
    return {
        span: span if _SPAN_ID.match(span) and is_hex_id(span, 16) else span_id_for(tid, span)
        for span, tid in trace_ids.items()
    }


def _resource_attributes(agent: str, info: dict[str, Any] | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "service.name": agent,
        # One instance per agent in a run; the SDK that "recorded" it is the simulator.
        "service.instance.id": agent,
        "telemetry.sdk.name": SCOPE_NAME,
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": __version__,
    }
    if info:
        attrs["service.version"] = str(info.get("version", ""))
        for key in ("role", "version", "workers", "calls"):
            value = info.get(key)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                attrs[f"switchboard.agent.{key}"] = (
                    int(value) if key in ("version", "workers") else str(value)
                )
    return attrs


def _max(series: pd.Series) -> float:
    value = series.max()
    return 0.0 if pd.isna(value) else float(value)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
