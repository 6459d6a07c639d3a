"""OpenTelemetry traces out and in (sim.otlp), and the `export` / `import-otlp` verbs.

- Round trip: a run exported to OTLP/JSON and imported back has the same spans.
- The export is what the official `opentelemetry-proto` package parses.
- A program instrumented with the real `opentelemetry-sdk` (an HTTP call, a producer and
  its consumers) imports into a run whose messages, spans, agents and queues hold the
  expected pairs, and whose Replay and Cascades figures draw them.
- Every bad input is one sentence naming what is wrong and where, and leaves nothing.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from google.protobuf.json_format import MessageToDict, MessageToJson, Parse
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import sim
from protocols.envelope import trace_id_for
from sim import cli, otlp
from sim.otlp.common import EPOCH_UNIX_NANO, dtype_default, span_defaults
from sim.trace import DTYPES, TABLES, Run, conform

ROOT = Path(__file__).resolve().parent.parent


# -- helpers ----------------------------------------------------------------------------


def table(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A contract table from partial rows: every other column gets its default."""
    defaults = span_defaults() if name == "spans" else {}
    full = []
    for row in rows:
        base = {c: defaults.get(c, dtype_default(t)) for c, t in DTYPES[name].items()}
        full.append(base | row)
    return conform(name, pd.DataFrame(full, columns=list(DTYPES[name])))


def spans_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The OTLP spans of a document by span id, each with its resource's service name."""
    out = {}
    for rs in doc["resourceSpans"]:
        service = attrs_of(rs["resource"])["service.name"]
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                out[span["spanId"]] = dict(span, service=service)
    return out


def attrs_of(obj: dict[str, Any]) -> dict[str, Any]:
    """OTLP attributes as a dict (the values' one field, as written)."""
    return {a["key"]: next(iter(a["value"].values())) for a in obj.get("attributes", [])}


def assert_same_spans(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Every contract column equal; times to the nanosecond OTLP carries."""
    a = a.sort_values("span_id").reset_index(drop=True)
    b = b.sort_values("span_id").reset_index(drop=True)
    assert len(a) == len(b)
    for column, dtype in DTYPES["spans"].items():
        if dtype == "float64":
            np.testing.assert_allclose(a[column], b[column], rtol=0, atol=1e-9, err_msg=column)
            assert (a[column].isna() == b[column].isna()).all(), column
        else:
            assert a[column].tolist() == b[column].tolist(), column


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the CLI in-process, expect a user error, return its one line of stderr."""
    assert cli.main(list(args)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    return err.removeprefix("error: ").strip()


# -- a hand-made run with every case the export maps ------------------------------------


def shop_run() -> Run:
    """web calls orders (a retry), orders publishes to billing (one redelivery), a call
    refused by an open breaker, a dead-lettering span of the broker, an open call."""
    spans = table(
        "spans",
        [
            dict(span_id="0000000000000001", correlation_id="web-1", name="order.place",
                 kind="client", agent="web", peer="orders", protocol="http", start=1.0,
                 end=1.5, deadline=6.0, outcome="ok", attempts=2, status=200),
            dict(span_id="0000000000000002", parent_id="0000000000000001",
                 correlation_id="web-1", name="order.place", kind="server", agent="orders",
                 peer="web", protocol="http", start=1.3, end=1.45, wait=0.05, outcome="ok",
                 status=200),
            dict(span_id="0000000000000003", parent_id="0000000000000002",
                 correlation_id="web-1", name="invoice.create", kind="producer",
                 agent="orders", peer="billing", protocol="queue", start=1.35, end=1.36,
                 outcome="ok"),
            dict(span_id="0000000000000004", parent_id="0000000000000003",
                 correlation_id="web-1", name="invoice.create", kind="consumer",
                 agent="billing", peer="orders", protocol="queue", start=1.4, end=1.6,
                 outcome="error", error="handler failed", status=500),
            dict(span_id="0000000000000005", parent_id="0000000000000003",
                 correlation_id="web-1", name="invoice.create", kind="consumer",
                 agent="billing", peer="orders", protocol="queue", start=2.5, end=2.7,
                 outcome="ok"),
            dict(span_id="0000000000000006", correlation_id="web-2", name="order.place",
                 kind="client", agent="web", peer="orders", protocol="http", start=3.0,
                 end=3.0, outcome="rejected", error="breaker open"),
            dict(span_id="0000000000000007", parent_id="0000000000000003",
                 correlation_id="web-1", name="invoice.create", kind="dead_letter",
                 agent="broker", peer="orders", protocol="queue", start=3.1, end=3.1,
                 outcome="error", attempts=3, error="orders.requests: 3 deliveries"),
            dict(span_id="0000000000000008", correlation_id="web-3", name="order.place",
                 kind="client", agent="web", peer="orders", protocol="http", start=9.0,
                 end=math.nan, deadline=14.0, outcome="open"),
        ],
    )  # fmt: skip
    m = dict(type="order.place", version=1, protocol="http", correlation_id="web-1")
    q = dict(m, type="invoice.create", protocol="queue", span_id="0000000000000003")
    messages = table(
        "messages",
        [
            dict(m, msg_id="m1", kind="request", src="web", dst="orders", attempt=1,
                 span_id="0000000000000001", sent_at=1.0, ended_at=1.1, outcome="dropped",
                 size_bytes=300),
            dict(m, msg_id="m1", kind="request", src="web", dst="orders", attempt=2,
                 span_id="0000000000000001", sent_at=1.25, delivered_at=1.3, ended_at=1.3,
                 outcome="delivered", size_bytes=300),
            dict(m, msg_id="m2", kind="response", src="orders", dst="web", attempt=1,
                 causation_id="m1", span_id="0000000000000002", sent_at=1.45,
                 delivered_at=1.5, ended_at=1.5, outcome="delivered", size_bytes=120),
            dict(q, msg_id="m3", kind="publish", src="orders", dst="broker", attempt=1,
                 causation_id="m1", sent_at=1.35, delivered_at=1.355, ended_at=1.355,
                 outcome="delivered", size_bytes=80),
            dict(q, msg_id="m3", kind="deliver", src="broker", dst="billing", attempt=1,
                 sent_at=1.39, delivered_at=1.4, ended_at=1.4, outcome="delivered",
                 size_bytes=80),
            dict(q, msg_id="m3", kind="deliver", src="broker", dst="billing", attempt=2,
                 sent_at=2.49, delivered_at=2.5, ended_at=2.5, outcome="delivered",
                 size_bytes=80),
        ],
    )  # fmt: skip
    for i in range(len(messages)):
        messages.loc[i, "seq"] = i
    breakers = table(
        "breakers",
        [dict(time=2.9, agent="web", target="orders", from_state="closed", to_state="open",
              reason="failure rate 0.6 >= 0.5", failure_rate=0.6, calls=10)],
    )  # fmt: skip
    agents = table(
        "agents",
        [
            dict(agent="web", role="client", version=1, workers=1, calls="orders"),
            dict(agent="orders", role="service", version=2, workers=4, calls="billing"),
            dict(agent="billing", role="service", version=1, workers=2),
            dict(agent="broker", role="broker", version=1),
        ],
    )
    manifest = {"format": 1, "name": "shop", "seed": 7, "duration": 10.0}
    return Run({"spans": spans, "messages": messages, "breakers": breakers, "agents": agents},
               manifest)  # fmt: skip


@pytest.fixture(scope="module")
def simulated() -> Run:
    """A run of the simulator with timeouts, deadlines and spans still open at the end."""
    return sim.run("timeout-chain", duration=40)


# -- export -----------------------------------------------------------------------------


def test_export_maps_kinds_times_status_and_semantic_conventions() -> None:
    doc = otlp.to_otlp(shop_run())
    spans = spans_of(doc)
    client, server = spans["0000000000000001"], spans["0000000000000002"]
    producer, consumer = spans["0000000000000003"], spans["0000000000000004"]
    assert client["traceId"] == trace_id_for("web-1") == producer["traceId"]
    assert spans["0000000000000006"]["traceId"] == trace_id_for("web-2")
    assert server["parentSpanId"] == "0000000000000001" and "parentSpanId" not in client
    assert [client["kind"], server["kind"], producer["kind"], consumer["kind"]] == [3, 2, 4, 5]
    assert client["service"] == "web" and consumer["service"] == "billing"
    assert client["startTimeUnixNano"] == str(EPOCH_UNIX_NANO + 1_000_000_000)
    assert client["endTimeUnixNano"] == str(EPOCH_UNIX_NANO + 1_500_000_000)
    assert client["status"] == {"code": 1}
    assert consumer["status"] == {"code": 2, "message": "handler failed"}

    a = attrs_of(client)
    assert a["http.request.method"] == "POST"
    assert a["http.response.status_code"] == "200"  # int64 is a string in OTLP/JSON
    assert a["server.address"] == "orders"
    assert a["http.request.resend_count"] == "1"
    assert a["http.request.body.size"] == "300"
    assert a["switchboard.deadline"] == 6.0 and a["switchboard.attempts"] == "2"
    assert a["switchboard.correlation_id"] == "web-1" and a["switchboard.outcome"] == "ok"
    assert attrs_of(server)["switchboard.wait"] == 0.05
    assert attrs_of(server)["http.response.body.size"] == "120"
    p, c = attrs_of(producer), attrs_of(consumer)
    assert p["messaging.system"] == "switchboard"
    assert p["messaging.operation.type"] == "send" and c["messaging.operation.type"] == "process"
    assert p["messaging.destination.name"] == c["messaging.destination.name"] == "billing"
    assert p["messaging.message.id"] == c["messaging.message.id"] == "m3"
    assert c["error.type"] == "500"

    # Scope: the time origin, so that an import maps times back exactly.
    scope = doc["resourceSpans"][0]["scopeSpans"][0]["scope"]
    assert scope["name"] == "switchboard"
    assert attrs_of(scope)["switchboard.epoch_unix_nano"] == str(EPOCH_UNIX_NANO)
    orders = next(
        rs for rs in doc["resourceSpans"] if attrs_of(rs["resource"])["service.name"] == "orders"
    )
    assert attrs_of(orders["resource"])["switchboard.agent.workers"] == "4"


def test_export_events_for_retries_redeliveries_and_breaker_rejections() -> None:
    spans = spans_of(otlp.to_otlp(shop_run()))

    def events(span_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            (e["name"], e["timeUnixNano"], attrs_of(e)) for e in spans[span_id].get("events", [])
        ]

    ((name, at, a),) = events("0000000000000001")
    assert (name, at) == ("retry", str(EPOCH_UNIX_NANO + 1_250_000_000))
    assert a["switchboard.attempt"] == "2" and a["messaging.message.id"] == "m1"
    ((name, at, a),) = events("0000000000000003")  # the producer sees its message redelivered
    assert (name, at, a["switchboard.delivery_count"]) == (
        "redelivery", str(EPOCH_UNIX_NANO + 2_490_000_000), "2",
    )  # fmt: skip
    assert [e[0] for e in events("0000000000000005")] == ["redelivery"]  # the second delivery
    # The first delivery is no redelivery; its handler failed: an exception event.
    ((name, _, a),) = events("0000000000000004")
    assert (name, a["exception.message"]) == ("exception", "handler failed")
    ((name, _, a),) = events("0000000000000006")
    assert name == "breaker.rejected"
    assert a["switchboard.breaker.state"] == "open" and a["switchboard.reason"] == "breaker open"


def test_export_keeps_open_and_unknown_kinds_recognisable() -> None:
    spans = spans_of(otlp.to_otlp(shop_run()))
    still_open = spans["0000000000000008"]
    assert still_open["endTimeUnixNano"] == str(EPOCH_UNIX_NANO + 10 * 1_000_000_000)
    assert attrs_of(still_open)["switchboard.outcome"] == "open"
    assert still_open["status"] == {}  # neither OK nor ERROR
    dead = spans["0000000000000007"]
    assert dead["kind"] == 1 and attrs_of(dead)["switchboard.span.kind"] == "dead_letter"
    assert dead["service"] == "broker"


def test_export_is_deterministic(simulated: Run) -> None:
    assert otlp.otlp_json(simulated) == otlp.otlp_json(simulated)
    doc = otlp.to_otlp(simulated)
    first = simulated.spans.iloc[0]
    span = spans_of(doc)[first["span_id"]]
    assert span["traceId"] == trace_id_for(first["correlation_id"])


def test_export_parses_with_the_official_opentelemetry_proto(simulated: Run) -> None:
    for run in (shop_run(), simulated):
        doc = otlp.to_otlp(run)
        # OTLP/JSON writes ids in hex; json_format implements protobuf's base64 mapping.
        request = Parse(json.dumps(otlp.protobuf_json(doc)), ExportTraceServiceRequest())
        parsed = [
            (rs.resource, span)
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]
        assert len(parsed) == len(run.spans)
        services = {a.value.string_value for rs in request.resource_spans
                    for a in rs.resource.attributes if a.key == "service.name"}  # fmt: skip
        assert services == set(run.agents["agent"]) | set(run.spans["agent"])
        rows = run.spans.set_index("span_id")
        for _, span in parsed:
            row = rows.loc[span.span_id.hex()]
            assert span.trace_id.hex() == trace_id_for(row["correlation_id"])
            assert span.parent_span_id.hex() == row["parent_id"]
            start = EPOCH_UNIX_NANO + round(row["start"] * 1e9)
            assert span.start_time_unix_nano == start
            assert span.end_time_unix_nano >= span.start_time_unix_nano
    shop = Parse(
        json.dumps(otlp.protobuf_json(otlp.to_otlp(shop_run()))), ExportTraceServiceRequest()
    )
    kinds = {s.span_id.hex(): s.kind for rs in shop.resource_spans for ss in rs.scope_spans
             for s in ss.spans}  # fmt: skip
    assert kinds["0000000000000003"] == ProtoSpan.SPAN_KIND_PRODUCER
    assert kinds["0000000000000004"] == ProtoSpan.SPAN_KIND_CONSUMER


def test_csv_export_to_a_directory_and_a_reproducible_zip(tmp_path: Path) -> None:
    run = shop_run()
    otlp.write_csv(run, tmp_path / "csv")
    for name in TABLES:
        back = pd.read_csv(tmp_path / "csv" / f"{name}.csv")
        assert list(back.columns) == list(run.tables[name].columns)
        assert len(back) == len(run.tables[name])
    assert json.loads((tmp_path / "csv" / "run.json").read_text())["name"] == "shop"
    otlp.write_csv(run, tmp_path / "a.zip")
    # The same bytes every time, and the same as the in-memory archive a download serves.
    assert (tmp_path / "a.zip").read_bytes() == otlp.csv_zip(run) == otlp.csv_zip(shop_run())
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert sorted(archive.namelist()) == sorted([f"{n}.csv" for n in TABLES] + ["run.json"])
        spans = pd.read_csv(io.BytesIO(archive.read("spans.csv")), keep_default_na=False)
    assert spans["span_id"].astype(str).str.zfill(16).tolist() == run.spans["span_id"].tolist()


# -- round trip -------------------------------------------------------------------------


def test_round_trip_gives_back_the_same_spans(tmp_path: Path, simulated: Run) -> None:
    for run in (shop_run(), simulated):
        path = otlp.write_otlp(run, tmp_path / f"{run.name}.otlp.json")
        back = otlp.import_otlp(path)
        assert_same_spans(run.spans, back.spans)
        assert back.manifest["time_origin"] == "switchboard epoch"
        assert back.manifest["name"] == run.name and back.duration == run.duration
        assert set(back.agents["agent"]) >= set(run.agents["agent"])
        # What a trace carries of the agents comes back too.
        assert back.agents.set_index("agent").loc[run.agents["agent"], "role"].tolist() == (
            run.agents["role"].tolist()
        )


def test_round_trip_carries_span_columns_the_contract_gains_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A column OTLP has no field for travels as `switchboard.<column>`."""
    monkeypatch.setitem(DTYPES["spans"], "hops", "int64")
    monkeypatch.setitem(DTYPES["spans"], "zone", "str")
    run = shop_run()
    run.tables["spans"] = run.spans.assign(
        hops=range(len(run.spans)), zone=["eu", "", "us", "", "", "", "", "eu"]
    )
    doc = otlp.to_otlp(run)
    a = attrs_of(spans_of(doc)["0000000000000002"])
    assert a["switchboard.hops"] == "1" and "switchboard.zone" not in a  # "" is the default
    back = otlp.import_otlp(otlp.write_otlp(run, tmp_path / "t.json"))
    assert_same_spans(run.spans, back.spans)
    assert back.spans.sort_values("span_id")["zone"].tolist() == run.spans["zone"].tolist()


def test_round_trip_messages_of_a_simulated_run(tmp_path: Path, simulated: Run) -> None:
    """Messages are inferred, not carried: each answered call gives a request and a
    response between the same agents as the simulator's own messages."""
    back = otlp.import_otlp(otlp.write_otlp(simulated, tmp_path / "t.json"))
    mine = back.messages
    theirs = simulated.messages[simulated.messages["kind"].isin(["request", "response"])]
    pairs = lambda t: set(zip(t["kind"], t["src"], t["dst"], strict=True))  # noqa: E731
    assert pairs(mine) <= pairs(theirs)
    servers = back.spans[back.spans["kind"] == "server"]
    assert (mine["kind"] == "request").sum() == len(servers)
    assert (mine["kind"] == "response").sum() == servers["end"].notna().sum()
    # A request leaves when its client span starts and arrives when the server span does.
    request = mine[mine["kind"] == "request"].iloc[0]
    client = back.spans.set_index("span_id").loc[request["span_id"]]
    assert request["sent_at"] == client["start"]


def test_imported_run_saves_and_loads(tmp_path: Path) -> None:
    back = otlp.import_otlp(otlp.write_otlp(shop_run(), tmp_path / "shop.json"))
    otlp.save_run(back, tmp_path / "run")
    again = Run.load(tmp_path / "run")
    for name in TABLES:
        pd.testing.assert_frame_equal(back.tables[name], again.tables[name], check_like=False)
    assert again.manifest["imported"] is True
    assert again.manifest["has_breakers"] is False and again.manifest["has_faults"] is False
    assert again.manifest["has_scenario"] is False
    assert again.summary()["requests"] == 3  # root client spans
    assert sorted(f.name for f in tmp_path.iterdir()) == ["run", "shop.json"]  # no temporary


def test_reexport_of_an_imported_trace_keeps_its_trace_ids(tmp_path: Path) -> None:
    path = write_sdk_trace(tmp_path / "sdk.json", style="sdk")
    first = otlp.import_otlp(path)
    again = otlp.import_otlp(otlp.write_otlp(first, tmp_path / "again.json"))
    assert_same_spans(first.spans, again.spans)
    assert again.spans["trace_id"].tolist() == first.spans["trace_id"].tolist()


# -- a program instrumented with the real OpenTelemetry SDK -------------------------------

T0 = 1_700_000_000_000_000_000  # the program's wall clock, in ns: any instant will do
MS = 1_000_000


class CountingIds(IdGenerator):
    """Ids 1, 2, 3...: the test's trace is the same on every run."""

    def __init__(self) -> None:
        self.n = 0

    def generate_span_id(self) -> int:
        self.n += 1
        return self.n

    def generate_trace_id(self) -> int:
        self.n += 1
        return (0xABC << 64) + self.n


def sdk_spans() -> list[Any]:
    """frontend calls api over HTTP; api publishes to the `orders` queue; worker
    consumes it twice (the first handler fails, the redelivery is linked, not parented);
    frontend's call to an uninstrumented database times out."""
    exporter = InMemorySpanExporter()
    ids = CountingIds()
    propagator = TraceContextTextMapPropagator()

    def tracer(service: str) -> trace.Tracer:
        provider = TracerProvider(resource=Resource.create({"service.name": service}),
                                  id_generator=ids)  # fmt: skip
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return provider.get_tracer("test-program", "1.0")

    frontend, api, worker = tracer("frontend"), tracer("api"), tracer("worker")
    client = frontend.start_span(
        "GET /orders", kind=SpanKind.CLIENT, start_time=T0,
        attributes={"http.request.method": "GET", "server.address": "api.internal",
                    "url.full": "http://api.internal/orders"},
    )  # fmt: skip
    headers: dict[str, str] = {}
    propagator.inject(headers, context=trace.set_span_in_context(client))
    server = api.start_span(
        "GET /orders", context=propagator.extract(headers), kind=SpanKind.SERVER,
        start_time=T0 + 10 * MS, attributes={"http.request.method": "GET", "url.path": "/orders"},
    )  # fmt: skip
    producer = api.start_span(
        "publish orders", context=trace.set_span_in_context(server), kind=SpanKind.PRODUCER,
        start_time=T0 + 20 * MS,
        attributes={"messaging.system": "rabbitmq", "messaging.destination.name": "orders",
                    "messaging.operation.type": "send", "messaging.message.id": "order-42",
                    "messaging.message.body.size": 512},
    )  # fmt: skip
    carrier: dict[str, str] = {}
    propagator.inject(carrier, context=trace.set_span_in_context(producer))
    producer.end(end_time=T0 + 25 * MS)
    server.set_attribute("http.response.status_code", 200)
    server.end(end_time=T0 + 40 * MS)
    client.set_attribute("http.response.status_code", 200)
    client.end(end_time=T0 + 50 * MS)

    db = frontend.start_span(
        "SELECT orders", kind=SpanKind.CLIENT, start_time=T0 + 55 * MS,
        attributes={"db.system": "postgresql", "server.address": "db.internal"},
    )  # fmt: skip
    db.set_status(Status(StatusCode.ERROR, "ReadTimeout: timed out"))
    db.end(end_time=T0 + 155 * MS)

    consumer = worker.start_span(
        "process orders", context=propagator.extract(carrier), kind=SpanKind.CONSUMER,
        start_time=T0 + 60 * MS,
        attributes={"messaging.system": "rabbitmq", "messaging.destination.name": "orders",
                    "messaging.operation.type": "process"},
    )  # fmt: skip
    consumer.record_exception(RuntimeError("boom"), timestamp=T0 + 70 * MS)
    consumer.set_status(Status(StatusCode.ERROR, "boom"))
    consumer.end(end_time=T0 + 80 * MS)
    redelivered = worker.start_span(
        "process orders", context=trace.set_span_in_context(trace.INVALID_SPAN),
        kind=SpanKind.CONSUMER, start_time=T0 + 100 * MS,
        links=[Link(producer.get_span_context())],
        attributes={"messaging.system": "rabbitmq", "messaging.destination.name": "orders"},
    )  # fmt: skip
    redelivered.end(end_time=T0 + 120 * MS)
    return list(exporter.get_finished_spans())


def write_sdk_trace(path: Path, style: str) -> Path:
    """The SDK's spans as OTLP/JSON, encoded by the SDK's own OTLP encoder.

    `sdk`: one pretty-printed object as `MessageToJson` writes it (base64 ids, enum
    names). `collector`: the Collector file exporter's JSON lines, one request per
    resource, hex ids and integer enums, with a metrics line in between.
    """
    request = encode_spans(sdk_spans())
    if style == "sdk":
        path.write_text(MessageToJson(request))
        return path
    lines = []
    for resource_spans in request.resource_spans:
        one = ExportTraceServiceRequest(resource_spans=[resource_spans])
        doc = MessageToDict(one, use_integers_for_enums=True)
        for rs in doc["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64decode(span[key]).hex()
                    for link in span.get("links", []):
                        for key in ("traceId", "spanId"):
                            link[key] = base64.b64decode(link[key]).hex()
        lines.append(json.dumps(doc))
    lines.insert(1, json.dumps({"resourceMetrics": []}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Run:
    path = write_sdk_trace(tmp_path_factory.mktemp("sdk") / "collector.jsonl", "collector")
    return otlp.import_otlp(path)


def test_sdk_and_collector_files_import_alike(tmp_path: Path, imported: Run) -> None:
    sdk = otlp.import_otlp(write_sdk_trace(tmp_path / "sdk.json", "sdk"))
    for name in TABLES:
        pd.testing.assert_frame_equal(sdk.tables[name], imported.tables[name])
    gz = tmp_path / "collector.json.gz"
    gz.write_bytes(gzip.compress(write_sdk_trace(tmp_path / "c.jsonl", "collector").read_bytes()))
    pd.testing.assert_frame_equal(otlp.import_otlp(gz).spans, imported.spans)


def test_sdk_spans_import_as_they_are(imported: Run) -> None:
    spans = imported.spans.set_index("name", drop=False)
    assert len(spans) == 6
    client, server = spans.loc["GET /orders"].iloc[0], spans.loc["GET /orders"].iloc[1]
    assert (client["kind"], client["agent"]) == ("client", "frontend")
    assert (server["kind"], server["agent"], server["parent_id"]) == (
        "server", "api", client["span_id"],
    )  # fmt: skip
    producer = spans.loc["publish orders"]
    assert (producer["kind"], producer["parent_id"]) == ("producer", server["span_id"])
    # Times: seconds from the earliest span.
    assert (client["start"], server["start"], server["end"], client["end"]) == pytest.approx(
        (0.0, 0.010, 0.040, 0.050)
    )
    assert imported.manifest["time_origin"] == "earliest span"
    assert imported.manifest["time_origin_unix_nano"] == T0
    # Peers: the partner span's service, else what the attributes name.
    assert (client["peer"], server["peer"], producer["peer"]) == ("api", "frontend", "worker")
    db = spans.loc["SELECT orders"]
    assert (db["peer"], db["outcome"], db["error"]) == (
        "db.internal", "timeout", "ReadTimeout: timed out",
    )  # fmt: skip
    consumers = spans.loc["process orders"]
    assert consumers["outcome"].tolist() == ["error", "ok"]
    assert consumers["error"].tolist() == ["boom", ""]
    assert consumers["links"].iloc[1] == producer["span_id"]
    assert (client["protocol"], producer["protocol"], server["status"]) == ("http", "queue", 200)
    # Correlation: the trace id; the linked redelivery is its own trace.
    assert client["correlation_id"] == client["trace_id"] == producer["correlation_id"]
    assert imported.manifest["source"]["traces"] == 3


def test_sdk_messages_are_inferred_from_span_pairs(imported: Run) -> None:
    m = imported.messages
    spans = imported.spans.set_index("name", drop=False)
    client = spans.loc["GET /orders"].iloc[0]
    request = m[m["kind"] == "request"].iloc[0]
    response = m[m["kind"] == "response"].iloc[0]
    # The database recorded no spans: a virtual node answers the call to it.
    assert m["kind"].tolist() == [
        "request", "publish", "response", "request", "deliver", "deliver", "response",
    ]  # fmt: skip
    db = m[m["dst"] == "db.internal"]
    assert (db["protocol"].tolist(), db["src"].tolist()) == (["db"], ["frontend"])
    assert m[m["src"] == "db.internal"]["delivered_at"].tolist() == pytest.approx([0.155])
    assert (request["src"], request["dst"], request["protocol"]) == ("frontend", "api", "http")
    assert (request["sent_at"], request["delivered_at"]) == pytest.approx((0.0, 0.010))
    assert request["span_id"] == client["span_id"] and request["outcome"] == "delivered"
    assert (response["src"], response["dst"], response["causation_id"]) == (
        "api", "frontend", request["msg_id"],
    )  # fmt: skip
    assert (response["sent_at"], response["delivered_at"]) == pytest.approx((0.040, 0.050))

    publish = m[m["kind"] == "publish"].iloc[0]
    assert (publish["src"], publish["dst"], publish["msg_id"]) == ("api", "orders", "order-42")
    assert (publish["sent_at"], publish["delivered_at"]) == pytest.approx((0.020, 0.025))
    assert publish["causation_id"] == request["msg_id"]  # the handler's incoming request
    assert publish["size_bytes"] == 512
    deliveries = m[m["kind"] == "deliver"]
    assert deliveries["src"].tolist() == ["orders", "orders"]
    assert deliveries["dst"].tolist() == ["worker", "worker"]
    assert deliveries["attempt"].tolist() == [1, 2]  # the linked second one: a redelivery
    assert deliveries["msg_id"].tolist() == ["order-42", "order-42"]
    assert deliveries["sent_at"].tolist() == pytest.approx([0.060, 0.100])
    assert m["seq"].tolist() == list(range(7)) and (m["outcome"] == "delivered").all()
    assert imported.manifest["unpaired_spans"] == {"client": 1}  # the database call
    assert imported.manifest["virtual_nodes"] == ["db.internal"]


def test_sdk_agents_and_queues(imported: Run) -> None:
    agents = imported.agents.set_index("agent")
    assert agents.index.tolist() == ["api", "frontend", "worker", "orders", "db.internal"]
    assert agents["role"].tolist() == ["service", "client", "service", "broker", "database"]
    assert agents["inferred"].tolist() == [False, False, False, True, True]
    assert agents.loc["frontend", "calls"] == "api,db.internal"
    q = imported.queues
    assert set(q["queue"]) == {"orders"}
    assert q["time"].tolist() == pytest.approx([0.0, 0.025, 0.060, 0.080, 0.100, 0.120])
    assert q["depth"].tolist() == [0, 1, 0, 0, 0, 0]
    assert q["in_flight"].tolist() == [0, 0, 1, 0, 1, 0]
    assert q["redelivered"].iloc[-1] == 1 and q["acked"].iloc[-1] == 1
    flags = imported.manifest
    assert flags["imported"] and flags["messages_inferred"] and flags["queues_inferred"]
    assert not flags["has_breakers"] and not flags["has_faults"] and flags["has_queues"]
    assert imported.breakers.empty and imported.faults.empty


def test_dashboard_figures_accept_an_imported_run(imported: Run) -> None:
    figures = pytest.importorskip("ui.figures")
    run = imported
    rows = figures.window(run.messages, 0.0, run.duration, run.duration).rows
    assert len(rows) == 7
    fig = figures.spacetime(rows, run.agents["agent"].tolist(), run.duration, run.faults)
    drawn = {int(s) for t in fig.data for s in (t.customdata or []) if s is not None}
    assert drawn == set(run.messages["seq"])
    traces = figures.trace_index(run.spans)
    main = traces.iloc[0]
    assert main["spans"] == 4  # client, server, producer, first consumer
    trace_spans = run.spans[run.spans["correlation_id"] == main["correlation_id"]]
    waterfall = figures.waterfall(trace_spans, run.faults, run.duration)
    bars = [t for t in waterfall.data if t.type == "bar" and t.name in ("ok", "error")]
    assert sum(len(t.y) for t in bars) == 4
    assert figures.queues_figure(run.queues, run.duration, run.faults).data


# -- bad input --------------------------------------------------------------------------


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def good_span(**changes: Any) -> dict[str, Any]:
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "op", "kind": 2,
            "startTimeUnixNano": "1000", "endTimeUnixNano": "2000"}  # fmt: skip
    return {k: v for k, v in (span | changes).items() if v is not None}


def request_of(*spans: dict[str, Any]) -> dict[str, Any]:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": list(spans)}]}]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", "is not JSON: Expecting value at line 1 column 1"),
        ('{\n  "resourceSpans": [\n  }', "is not JSON: Expecting value at line 3 column 3"),
        (
            '{"foo": 1, "bar": 2}',
            "is not a trace this reads: expected OTLP (resourceSpans), Tempo (batches), "
            "Jaeger (data) or a Zipkin list of spans; found an object with bar, foo",
        ),
        (
            "[1]",
            "item 0 is a number, not a trace: expected OTLP (resourceSpans)",
        ),
        ("", "is empty: expected trace data"),
        ('{"resourceMetrics": []}', "holds no spans (only metrics or logs): nothing to import"),
        ('{"resourceSpans": {}}', "resourceSpans is an object with no keys, not a list"),
    ],
)
def test_not_otlp_json(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "in.json", text)
    with pytest.raises(otlp.OtlpError) as caught:
        otlp.import_otlp(path)
    assert str(caught.value).startswith(path)
    assert expected in str(caught.value)


def test_json_lines_errors_name_the_line(tmp_path: Path) -> None:
    good = json.dumps(request_of(good_span()))
    path = write(tmp_path / "c.jsonl", f"{good}\n\n{{oops\n")
    with pytest.raises(otlp.OtlpError, match=r"c\.jsonl line 3 is not JSON: Expecting property"):
        otlp.import_otlp(path)
    second = json.dumps(request_of(good_span(spanId="ef" * 8), good_span(spanId=None)))
    path = write(tmp_path / "d.jsonl", f"{good}\n{second}\n")
    with pytest.raises(otlp.OtlpError) as caught:
        otlp.import_otlp(path)
    assert str(caught.value) == (
        f'{path} line 2: resourceSpans[0].scopeSpans[0].spans[1] ("op") has no spanId'
    )


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (good_span(traceId=None), 'spans[0] ("op") has no traceId'),
        (good_span(spanId=""), 'spans[0] ("op") has no spanId'),
        (good_span(spanId="xyz"), "has spanId 'xyz': a span id is 16 hex digits, not all zeros"),
        (good_span(spanId="0" * 16), "has spanId '0000000000000000': a span id is 16 hex digits"),
        (good_span(traceId="ab" * 8), f"has traceId '{'ab' * 8}': a trace id is 32 hex digits"),
        (good_span(parentSpanId="zz"), "has parentSpanId 'zz': a span id is 16 hex digits"),
        (good_span(startTimeUnixNano="-1"), "has startTimeUnixNano '-1': a time is nanoseconds"),
        (good_span(startTimeUnixNano="soon"), "has startTimeUnixNano 'soon', not an integer"),
    ],
)
def test_spans_with_missing_or_bad_ids(tmp_path: Path, span: dict, expected: str) -> None:
    path = write(tmp_path / "one.json", json.dumps(request_of(span), indent=2))
    with pytest.raises(otlp.OtlpError) as caught:
        otlp.import_otlp(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: resourceSpans[0].scopeSpans[0].spans[0]")
    assert expected in message


def test_binary_and_clashing_ids(tmp_path: Path) -> None:
    path = tmp_path / "trace.pb"
    path.write_bytes(b"\x0a\x8f\x01\xff\xfe binary protobuf")
    with pytest.raises(otlp.OtlpError, match="is neither JSON nor an OTLP protobuf"):
        otlp.import_otlp(path)
    # A span id is unique within its trace only: the second trace's span gets its own.
    clash = request_of(good_span(), good_span(traceId="12" * 16))
    both = otlp.import_otlp(write(tmp_path / "clash.json", json.dumps(clash)))
    assert len(both.spans) == 2 and both.spans["span_id"].is_unique
    assert both.manifest["reused_span_ids"] == 1
    twice = otlp.import_otlp(
        write(tmp_path / "twice.json", json.dumps(request_of(good_span(), good_span())))
    )
    assert len(twice.spans) == 1 and twice.manifest["duplicate_spans"] == 1


# -- the command line -------------------------------------------------------------------


def test_cli_export_and_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "shop"
    shop_run().save(run_dir)
    assert cli.main(["export", str(run_dir), "--format", "otlp"]) == 0
    assert f"wrote 8 spans of shop to {run_dir / 'trace.otlp.json'}" in capsys.readouterr().out
    assert (
        cli.main(["export", str(run_dir), "--format", "csv", "--out", str(tmp_path / "t.zip")]) == 0
    )
    assert zipfile.is_zipfile(tmp_path / "t.zip")
    assert cli.main(["export", str(run_dir), "--format", "otlp", "--out", "-"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["resourceSpans"]
    out = tmp_path / "imported"
    assert cli.main(["import-otlp", str(run_dir / "trace.otlp.json"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        "imported 8 spans in 3 traces from 4 services (otlp/json); inferred 5 messages"
    ) in printed
    assert_same_spans(shop_run().spans, Run.load(out).spans)
    # Importing again replaces the run it wrote.
    assert cli.main(["import-otlp", str(run_dir / "trace.otlp.json"), "--out", str(out)]) == 0


def test_cli_errors_are_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing"
    assert fails(capsys, "export", str(missing), "--format", "otlp") == (
        f"no run at {missing}: there is no such directory"
    )
    assert fails(capsys, "export", str(tmp_path), "--format", "csv") == (
        f"no run at {tmp_path}: it has no run.json (save one with run --out)"
    )
    run_dir = tmp_path / "shop"
    shop_run().save(run_dir)
    assert fails(capsys, "export", str(run_dir), "--format", "csv", "--out", "-") == (
        "--out - (standard output) works only with --format otlp or jaeger"
    )
    assert fails(capsys, "import-otlp", str(missing), "--out", str(tmp_path / "r")) == (
        f"cannot read {missing}: no such file or directory"
    )
    bad = write(tmp_path / "bad.json", json.dumps(request_of(good_span(spanId=None))))
    assert fails(capsys, "import-otlp", bad, "--out", str(tmp_path / "r")) == (
        f'{bad}: resourceSpans[0].scopeSpans[0].spans[0] ("op") has no spanId'
    )
    assert not (tmp_path / "r").exists()  # nothing half-written
    good = write(tmp_path / "good.json", json.dumps(request_of(good_span())))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert fails(capsys, "import-otlp", good, "--out", str(busy)) == (
        f"cannot write the run to {busy}: the directory holds files and is not a run"
    )
    assert [f.name for f in busy.iterdir()] == ["notes.txt"]


def test_export_never_replaces_a_directory_of_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "shop"
    shop_run().save(run_dir)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert fails(capsys, "export", str(run_dir), "--format", "otlp", "--out", str(mine)) == (
        f"cannot write {mine}: is a directory"
    )
    assert fails(capsys, "export", str(run_dir), "--format", "csv", "--out", str(mine)) == (
        f"cannot write the CSV tables to {mine}: the directory holds other files (notes.txt)"
    )
    assert [f.name for f in mine.iterdir()] == ["notes.txt"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["mine", "shop"]
    # An earlier CSV export is replaced whole.
    assert cli.main(["export", str(run_dir), "--format", "csv", "--out", str(tmp_path / "c")]) == 0
    assert cli.main(["export", str(run_dir), "--format", "csv", "--out", str(tmp_path / "c")]) == 0
    assert len(list((tmp_path / "c").iterdir())) == len(TABLES) + 1


def test_failed_import_leaves_an_existing_run_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    shop_run().save(run_dir)
    before = {f.name: f.read_bytes() for f in run_dir.iterdir()}
    bad = write(tmp_path / "bad.jsonl", json.dumps(request_of(good_span())) + "\n{\n")
    assert "line 2 is not JSON" in fails(capsys, "import-otlp", bad, "--out", str(run_dir))
    assert {f.name: f.read_bytes() for f in run_dir.iterdir()} == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["bad.jsonl", "run"]


def test_cli_subprocess_exit_status_and_no_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path / "x.json", "not json")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SWITCHBOARD_DEBUG", None)
    done = subprocess.run(
        [sys.executable, "-m", "sim", "import-otlp", bad, "--out", str(tmp_path / "r")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == f"error: {bad} is not JSON: Expecting value at line 1 column 1\n"
    assert not (tmp_path / "r").exists()
