"""Real traces in, faithfully (issue 17): what a file says survives import and export,
real-trace quirks are read as what they mean, and the formats users download import.

Every fixture here is hand-made from the format documentation summarised in
`shared/research/trace-formats.md` (OTLP/JSON and protobuf, Jaeger's query API v1 and
v3, Tempo's trace-by-id v1 and v2, Zipkin v2), not copied from another project.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sim
from sim import cli, otlp
from sim.trace import Run
from tests.test_otlp import shop_run, table

T0 = 1_700_000_000_000_000_000  # 2023-11-14: far from Switchboard's own epoch (2026)
MS = 1_000_000
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"
OUTSIDE_PARENT = "53995c3f42cd8ad8"  # a caller whose spans are not in the file


# -- helpers ----------------------------------------------------------------------------


def kv(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """OTLP/JSON attributes, written by hand as the spec encodes them."""

    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, float):
            return {"doubleValue": v}
        if isinstance(v, list):
            return {"arrayValue": {"values": [value(x) for x in v]}}
        return {"stringValue": v}

    return [{"key": k, "value": value(v)} for k, v in attrs.items()]


def plain(attrs: list[dict[str, Any]]) -> dict[str, Any]:
    """OTLP attributes back to a dict of Python values (as `kv` wrote them)."""
    return otlp.common.attribute_map(attrs)


def span(
    span_id: str,
    name: str,
    kind: int,
    start_ms: float,
    end_ms: float,
    parent: str = "",
    trace: str = TRACE,
    attrs: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(T0 + int(start_ms * MS)),
        "endTimeUnixNano": str(T0 + int(end_ms * MS)),
        "attributes": kv(attrs or {}),
        "status": status or {},
    }
    if parent:
        out["parentSpanId"] = parent
    return out | extra


def resource(service: str, *spans: dict[str, Any], **attrs: Any) -> dict[str, Any]:
    return {
        "resource": {"attributes": kv({"service.name": service, **attrs})},
        "scopeSpans": [{"scope": {"name": "hand.made", "version": "1.0"}, "spans": list(spans)}],
    }


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The spans of an OTLP document by span id, each with its resource and scope."""
    out = {}
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                out[s["spanId"]] = dict(s, resource=plain(rs["resource"]["attributes"]),
                                        scope=ss["scope"])  # fmt: skip
    return out


def rows(run: Run) -> pd.DataFrame:
    return run.spans.set_index("span_id", drop=False)


# -- fidelity ---------------------------------------------------------------------------

CHECKOUT_ATTRS = {
    "http.request.method": "GET",
    "url.path": "/cart",
    "http.route": "/cart",
    "http.response.status_code": 200,
    "retry.ratio": 0.25,
    "cache.hit": False,
    "tags": ["a", "b"],
}


def faithful_doc() -> dict[str, Any]:
    """A server span whose caller is outside the file, with everything OTLP can say."""
    server = span(
        "00f067aa0ba902b7", "GET /cart", 2, 0, 250, parent=OUTSIDE_PARENT,
        attrs=CHECKOUT_ATTRS, status={"code": 1},
        traceState="vendor=abc", flags=0x301,
        events=[{"timeUnixNano": str(T0 + 120 * MS), "name": "cache.miss",
                 "attributes": kv({"cache.key": "cart:42"})}],
        links=[{"traceId": OTHER_TRACE, "spanId": "b7ad6b7169203331",
                "attributes": kv({"link.reason": "batch"})}],
    )  # fmt: skip
    child = span(
        "1111111111111111", "SELECT carts", 3, 20, 60, parent="00f067aa0ba902b7",
        attrs={"db.system.name": "postgresql", "db.namespace": "carts"},
        status={"code": 2, "message": "deadlock"},
        events=[{"timeUnixNano": str(T0 + 59 * MS), "name": "exception",
                 "attributes": kv({"exception.type": "DeadlockDetected",
                                   "exception.message": "deadlock"})}],
    )  # fmt: skip
    res = resource(
        "checkout", server, child, **{"service.version": "1.4.2", "host.name": "node-7",
                                      "k8s.pod.name": "checkout-5d9c"}
    )  # fmt: skip
    return {"resourceSpans": [res]}


def test_reexport_keeps_ids_parents_times_attributes_events_links(tmp_path: Path) -> None:
    path = write_json(tmp_path / "faithful.json", faithful_doc())
    run = otlp.import_otlp(path)
    # The parent is not in the file: the span still names it.
    assert rows(run).loc["00f067aa0ba902b7", "parent_id"] == OUTSIDE_PARENT
    original = by_id(faithful_doc())
    again = by_id(otlp.to_otlp(run))
    assert set(again) == set(original)
    for span_id, before in original.items():
        after = again[span_id]
        for key in ("traceId", "parentSpanId", "name", "kind", "startTimeUnixNano",
                    "endTimeUnixNano", "status", "traceState", "flags"):  # fmt: skip
            assert after.get(key) == before.get(key), (span_id, key)
        # Exactly the file's attributes: none invented, none lost, types kept.
        assert plain(after["attributes"]) == plain(before["attributes"]), span_id
        assert [(e["name"], e["timeUnixNano"], plain(e.get("attributes", [])))
                for e in after.get("events", [])] == [
            (e["name"], e["timeUnixNano"], plain(e.get("attributes", [])))
            for e in before.get("events", [])
        ]  # fmt: skip
        assert [(link["traceId"], link["spanId"], plain(link.get("attributes", [])))
                for link in after.get("links", [])] == [
            (link["traceId"], link["spanId"], plain(link.get("attributes", [])))
            for link in before.get("links", [])
        ]  # fmt: skip
        assert after["resource"] == before["resource"]
        assert after["scope"] == {"name": "hand.made", "version": "1.0"}


def test_parent_outside_the_file_keeps_its_id_after_a_second_round(tmp_path: Path) -> None:
    run = otlp.import_otlp(write_json(tmp_path / "f.json", faithful_doc()))
    back = otlp.import_otlp(otlp.write_otlp(run, tmp_path / "again.json"))
    assert rows(back).loc["00f067aa0ba902b7", "parent_id"] == OUTSIDE_PARENT
    assert back.manifest["time_origin_unix_nano"] == T0
    assert back.spans["start"].tolist() == run.spans["start"].tolist()


# -- real-trace quirks -------------------------------------------------------------------

EXCEPTION = {"name": "exception", "timeUnixNano": str(T0 + 5 * MS)}


def quirks_doc() -> dict[str, Any]:
    """One root span per quirk, each in its own trace, on the service `edge`."""
    cases: list[tuple[str, int, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
        # name, kind, attributes, status, extra fields
        ("envoy error", 2, {"error": True, "http.request.method": "GET"}, {}, {}),
        ("error tag text", 3, {"error": "upstream reset"}, {}, {}),
        ("exception only", 2, {}, {},
         {"events": [dict(EXCEPTION, attributes=kv({"exception.type": "ValueError",
                                                    "exception.message": "bad"}))]}),
        ("gateway timeout", 3, {"http.response.status_code": 504}, {"code": 2}, {}),
        ("upstream 504", 2, {"http.response.status_code": 504}, {}, {}),
        ("timeout exception", 3, {}, {"code": 2},
         {"events": [dict(EXCEPTION, attributes=kv({"exception.type": "TimeoutError"}))]}),
        ("grpc deadline", 3, {"rpc.system.name": "grpc", "rpc.method": "shop.Cart/Get",
                              "rpc.response.status_code": "DEADLINE_EXCEEDED"}, {"code": 2}, {}),
        ("grpc old", 3, {"rpc.system": "grpc", "rpc.service": "shop.Cart",
                         "rpc.grpc.status_code": 4}, {"code": 2}, {}),
        ("postgres", 3, {"db.system.name": "postgresql", "db.namespace": "orders",
                         "server.address": "10.1.2.3"}, {}, {}),
        ("mysql old", 3, {"db.system": "mysql", "net.peer.name": "mysql.internal"}, {}, {}),
        ("redis", 3, {"db.system.name": "redis", "peer.service": "session-cache"}, {}, {}),
        ("new peer name", 3, {"http.request.method": "POST",
                              "service.peer.name": "payments"}, {}, {}),
        ("address only", 3, {"http.request.method": "GET",
                             "server.address": "192.168.0.4"}, {}, {}),
        ("old destination", 4, {"messaging.system": "jms",
                                "messaging.destination": "invoices"}, {}, {}),
        ("routing key", 4, {"messaging.system": "rabbitmq", "messaging.destination.name": "",
                            "messaging.rabbitmq.destination.routing_key": "emails"}, {}, {}),
        ("explicit ok", 2, {"error": True}, {"code": 1}, {}),
    ]  # fmt: skip
    spans = []
    for i, (name, kind, attrs, status, extra) in enumerate(cases, start=1):
        trace = f"{i:032x}"
        spans.append(span(f"{i:016x}", name, kind, 0, 10, trace=trace, attrs=attrs,
                          status=status, **extra))  # fmt: skip
    return {"resourceSpans": [resource("edge", *spans)]}


@pytest.fixture(scope="module")
def quirks(tmp_path_factory: pytest.TempPathFactory) -> Run:
    path = tmp_path_factory.mktemp("quirks") / "quirks.json"
    return otlp.import_otlp(write_json(path, quirks_doc()))


@pytest.mark.parametrize(
    ("name", "outcome", "error"),
    [
        ("envoy error", "error", ""),
        ("error tag text", "error", "upstream reset"),
        ("exception only", "error", "ValueError: bad"),
        ("gateway timeout", "timeout", "HTTP 504"),
        ("upstream 504", "timeout", "HTTP 504"),
        ("timeout exception", "timeout", "TimeoutError"),
        ("grpc deadline", "deadline_exceeded", ""),
        ("grpc old", "deadline_exceeded", ""),
        ("explicit ok", "ok", ""),
    ],
)
def test_real_failure_markers(quirks: Run, name: str, outcome: str, error: str) -> None:
    row = quirks.spans.set_index("name").loc[name]
    assert (row["outcome"], row["error"]) == (outcome, error)


@pytest.mark.parametrize(
    ("name", "protocol", "peer"),
    [
        ("grpc deadline", "rpc", ""),
        ("grpc old", "rpc", "shop.Cart"),
        ("postgres", "db", "orders"),  # the address is skipped: never an IP as a peer
        ("mysql old", "db", "mysql.internal"),
        ("redis", "cache", "session-cache"),
        ("new peer name", "http", "payments"),
        ("address only", "http", ""),
        ("old destination", "queue", "invoices"),
        ("routing key", "queue", "emails"),
    ],
)
def test_what_a_call_is_and_whom_it_calls(quirks: Run, name: str, protocol: str, peer: str) -> None:
    row = quirks.spans.set_index("name").loc[name]
    assert (row["protocol"], row["peer"]) == (protocol, peer)


def test_uninstrumented_peers_become_virtual_nodes(quirks: Run) -> None:
    agents = quirks.agents.set_index("agent")
    virtual = agents[agents["inferred"]]
    assert virtual["role"].to_dict() == {
        "emails": "broker",
        "invoices": "broker",
        "mysql.internal": "database",
        "orders": "database",
        "payments": "service",
        "session-cache": "cache",
        "shop.Cart": "service",
    }
    assert not any(otlp.common.is_address(a) for a in quirks.agents["agent"])
    m = quirks.messages
    calls = m[m["kind"] == "request"]
    assert sorted(calls["dst"]) == sorted(
        ["mysql.internal", "orders", "payments", "session-cache", "shop.Cart"]
    )
    assert sorted(m[m["kind"] == "publish"]["dst"]) == ["emails", "invoices"]
    assert quirks.manifest["virtual_nodes"] == [
        "mysql.internal", "orders", "payments", "session-cache", "shop.Cart",
    ]  # fmt: skip


# -- formats ------------------------------------------------------------------------------


def jaeger_doc() -> dict[str, Any]:
    """Jaeger's `/api/traces/{id}` JSON: frontend calls checkout, whose handler failed
    (error=true, an exception log) and follows from a span of another trace."""

    def tag(key: str, kind: str, value: Any) -> dict[str, Any]:
        return {"key": key, "type": kind, "value": value}

    t = T0 // 1000  # microseconds
    spans = [
        {"traceID": TRACE, "spanID": "aaaaaaaaaaaaaaaa", "operationName": "GET /cart",
         "references": [], "startTime": t, "duration": 300_000, "processID": "p1",
         "tags": [tag("span.kind", "string", "client"), tag("http.request.method", "string", "GET"),
                  tag("peer.service", "string", "checkout"), tag("otel.scope.name", "string", "requests")],
         "logs": [], "warnings": None},
        {"traceID": TRACE, "spanID": "bbbbbbbbbbbbbbbb", "operationName": "GET /cart",
         "references": [
             {"refType": "FOLLOWS_FROM", "traceID": OTHER_TRACE, "spanID": "cccccccccccccccc"},
             {"refType": "CHILD_OF", "traceID": TRACE, "spanID": "aaaaaaaaaaaaaaaa"}],
         "startTime": t + 10_000, "duration": 250_000, "processID": "p2", "flags": 1,
         "tags": [tag("span.kind", "string", "server"), tag("error", "bool", True),
                  tag("http.response.status_code", "int64", 500), tag("weight", "float64", 0.5)],
         "logs": [{"timestamp": t + 200_000, "fields": [
             tag("event", "string", "exception"), tag("exception.type", "string", "KeyError"),
             tag("exception.message", "string", "cart 42")]}],
         "warnings": None},
    ]  # fmt: skip
    processes = {
        "p1": {"serviceName": "frontend", "tags": [tag("hostname", "string", "web-1")]},
        "p2": {"serviceName": "checkout", "tags": [tag("ip", "string", "10.0.0.5"),
                                                   tag("service.version", "string", "2.0")]},
    }  # fmt: skip
    trace = {"traceID": TRACE, "spans": spans, "processes": processes, "warnings": None}
    return {"data": [trace], "total": 0, "limit": 0, "offset": 0, "errors": None}


def test_jaeger_query_api_json(tmp_path: Path) -> None:
    run = otlp.import_trace(write_json(tmp_path / "trace.json", jaeger_doc()))
    spans = rows(run)
    client, server = spans.loc["aaaaaaaaaaaaaaaa"], spans.loc["bbbbbbbbbbbbbbbb"]
    assert (client["kind"], client["agent"], server["kind"], server["agent"]) == (
        "client", "frontend", "server", "checkout",
    )  # fmt: skip
    assert server["parent_id"] == "aaaaaaaaaaaaaaaa"  # CHILD_OF wins over FOLLOWS_FROM
    assert (server["outcome"], server["error"]) == ("error", "KeyError: cart 42")
    assert (server["start"], server["end"]) == pytest.approx((0.010, 0.260))
    record = json.loads(server["otel"])
    assert record["links"] == [
        {"trace_id": OTHER_TRACE, "span_id": "cccccccccccccccc",
         "attributes": {"opentracing.ref_type": "follows_from"}}
    ]  # fmt: skip
    # The file's own error tag stays (it also failed the span).
    assert record["attributes"] == {"error": True, "http.response.status_code": 500, "weight": 0.5}
    assert record["events"][0]["name"] == "exception"
    assert run.manifest["source"]["format"] == "jaeger"
    assert {"hostname": "web-1", "service.name": "frontend"} in [
        r["attributes"] for r in run.manifest["resources"]
    ]
    assert run.messages["kind"].tolist() == ["request", "response"]


def comparable_jaeger(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Jaeger spans with their process inlined and tags, references, logs unordered."""
    out = []
    for trace in doc["data"]:
        for s in trace["spans"]:
            process = trace["processes"][s["processID"]]
            out.append(
                {
                    "ids": (s["traceID"], s["spanID"]),
                    "name": s["operationName"],
                    "times": (s["startTime"], s["duration"]),
                    "flags": s.get("flags", 0),
                    "references": sorted(
                        (r["refType"], r["traceID"], r["spanID"]) for r in s["references"]
                    ),
                    "tags": sorted((t["key"], t["type"], str(t["value"])) for t in s["tags"]),
                    "logs": [
                        (
                            log["timestamp"],
                            sorted((f["key"], str(f["value"])) for f in log["fields"]),
                        )
                        for log in s["logs"]
                    ],
                    "service": process["serviceName"],
                    "process": sorted((t["key"], str(t["value"])) for t in process["tags"]),
                }
            )
    return sorted(out, key=lambda s: s["ids"])


def test_jaeger_round_trip_gives_the_same_json(tmp_path: Path) -> None:
    run = otlp.import_trace(write_json(tmp_path / "trace.json", jaeger_doc()))
    assert comparable_jaeger(otlp.to_jaeger(run)) == comparable_jaeger(jaeger_doc())


def zipkin_doc() -> list[dict[str, Any]]:
    """Zipkin v2: frontend calls backend with B3 shared span ids; backend's handler calls
    an uninstrumented MySQL; the error tag carries a message."""
    t = T0 // 1000
    return [
        {"traceId": TRACE[16:], "id": "000000000000000a", "kind": "CLIENT", "name": "get /cart",
         "timestamp": t, "duration": 300_000,
         "localEndpoint": {"serviceName": "frontend", "ipv4": "10.0.0.9"},
         "remoteEndpoint": {"serviceName": "backend"}, "tags": {"http.method": "GET"}},
        {"traceId": TRACE[16:], "id": "000000000000000a", "kind": "SERVER", "name": "get /cart",
         "shared": True, "timestamp": t + 10_000, "duration": 250_000,
         "localEndpoint": {"serviceName": "backend", "ipv4": "10.0.0.5", "port": 8080},
         "remoteEndpoint": {"ipv4": "10.0.0.9"},
         "tags": {"http.status_code": "504", "error": "upstream timeout"},
         "annotations": [{"timestamp": t + 20_000, "value": "wr"}]},
        {"traceId": TRACE[16:], "id": "000000000000000b", "parentId": "000000000000000a",
         "kind": "CLIENT", "name": "query", "timestamp": t + 30_000, "duration": 100_000,
         "localEndpoint": {"serviceName": "backend", "ipv4": "10.0.0.5"},
         "remoteEndpoint": {"serviceName": "mysql", "ipv4": "10.0.0.7", "port": 3306},
         "tags": {"sql.query": "select 1"}},
        {"traceId": TRACE[16:], "id": "000000000000000c", "parentId": "000000000000000a",
         "name": "render", "timestamp": t + 5_000, "duration": 1_000,
         "localEndpoint": {"ipv4": "10.0.0.9"}},
    ]  # fmt: skip


def test_zipkin_v2_with_shared_span_ids(tmp_path: Path) -> None:
    run = otlp.import_trace(write_json(tmp_path / "zipkin.json", zipkin_doc()))
    spans = run.spans
    assert len(spans) == 4 and spans["span_id"].is_unique
    assert (spans["trace_id"] == "0" * 16 + TRACE[16:]).all()  # 64-bit ids padded
    client = spans[(spans["kind"] == "client") & (spans["agent"] == "frontend")].iloc[0]
    server = spans[spans["kind"] == "server"].iloc[0]
    query = spans[spans["name"] == "query"].iloc[0]
    # The shared server span: an id of its own, a child of the client's.
    assert client["span_id"] == "000000000000000a" != server["span_id"]
    assert server["parent_id"] == "000000000000000a"
    # The server's child on its own service hangs under it; the client's under the client.
    assert query["parent_id"] == server["span_id"]
    render = spans[spans["name"] == "render"].iloc[0]
    assert render["agent"] == "unknown_service"  # an address is never a service
    assert (server["outcome"], server["error"]) == ("timeout", "upstream timeout")
    assert (query["protocol"], query["peer"]) == ("http", "mysql")
    assert run.manifest["shared_span_ids"] == 1
    assert run.manifest["virtual_nodes"] == ["mysql"]
    assert json.loads(server["otel"])["events"][0]["name"] == "wr"
    assert client["start"] == 0.0 and server["start"] == pytest.approx(0.010)


def otlp_base64(doc: dict[str, Any]) -> dict[str, Any]:
    """A document as gogo jsonpb writes it (Tempo): base64 ids, enum names."""
    out = json.loads(json.dumps(doc))
    kinds = {0: "SPAN_KIND_UNSPECIFIED", 1: "SPAN_KIND_INTERNAL", 2: "SPAN_KIND_SERVER",
             3: "SPAN_KIND_CLIENT", 4: "SPAN_KIND_PRODUCER", 5: "SPAN_KIND_CONSUMER"}  # fmt: skip
    codes = {0: "STATUS_CODE_UNSET", 1: "STATUS_CODE_OK", 2: "STATUS_CODE_ERROR"}
    b64 = lambda h: base64.b64encode(bytes.fromhex(h)).decode()  # noqa: E731
    for rs in out["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if s.get(key):
                        s[key] = b64(s[key])
                for link in s.get("links", []):
                    link["traceId"], link["spanId"] = b64(link["traceId"]), b64(link["spanId"])
                s["kind"] = kinds[s["kind"]]
                if "code" in s.get("status", {}):
                    s["status"]["code"] = codes[s["status"]["code"]]
    return out


def wrapped(kind: str) -> Any:
    """`faithful_doc` in the wrapper one of the APIs returns it in."""
    doc = faithful_doc()
    if kind == "tempo-v1":
        return {"batches": otlp_base64(doc)["resourceSpans"]}
    if kind == "tempo-v2":
        return {"trace": otlp_base64(doc), "metrics": {"inspectedBytes": "1024"}}
    if kind == "jaeger-v3":
        return {"result": doc}
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["tempo-v1", "tempo-v2", "jaeger-v3"])
def test_tempo_and_jaeger_v3_trace_by_id(tmp_path: Path, kind: str) -> None:
    plain_run = otlp.import_otlp(write_json(tmp_path / "plain.json", faithful_doc()))
    run = otlp.import_trace(write_json(tmp_path / f"{kind}.json", wrapped(kind)))
    columns = [c for c in run.spans.columns if c != "otel"]
    pd.testing.assert_frame_equal(run.spans[columns], plain_run.spans[columns])
    assert [json.loads(o) for o in run.spans["otel"]] == [
        json.loads(o) for o in plain_run.spans["otel"]
    ]
    assert run.manifest["source"]["format"] == ("jaeger-v3" if kind == "jaeger-v3" else "tempo")


def sdk_request() -> Any:
    """The SDK's own protobuf encoding of the test program's spans (test_otlp)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from tests.test_otlp import sdk_spans

    return encode_spans(sdk_spans())


def test_otlp_protobuf_files_and_gzip(tmp_path: Path) -> None:
    from google.protobuf.json_format import MessageToDict

    from tests.test_otlp import write_sdk_trace

    reference = otlp.import_otlp(write_sdk_trace(tmp_path / "sdk.jsonl", "collector"))
    request = sdk_request()
    # The Collector's `format: proto`: each request after its 4-byte big-endian length;
    # here the resources split over two requests.
    first, second = type(request)(), type(request)()
    first.resource_spans.extend(request.resource_spans[:1])
    second.resource_spans.extend(request.resource_spans[1:])
    framed = b"".join(len(m).to_bytes(4, "big") + m for m in
                      (first.SerializeToString(), second.SerializeToString()))  # fmt: skip
    (tmp_path / "traces.pb").write_bytes(framed)
    (tmp_path / "body.pb").write_bytes(request.SerializeToString())  # an OTLP/HTTP body
    (tmp_path / "traces.pb.gz").write_bytes(gzip.compress(framed))
    jsonl = "\n".join(json.dumps(MessageToDict(m)) for m in (first, second)) + "\n"
    (tmp_path / "lines.jsonl.gz").write_bytes(gzip.compress(jsonl.encode()))
    columns = [c for c in reference.spans.columns if c != "otel"]
    for name in ("traces.pb", "body.pb", "traces.pb.gz", "lines.jsonl.gz"):
        run = otlp.import_trace(tmp_path / name)
        got = run.spans.sort_values("span_id").reset_index(drop=True)
        want = reference.spans.sort_values("span_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(got[columns], want[columns], obj=name)
        assert len(run.messages) == len(reference.messages), name
    assert otlp.import_trace(tmp_path / "traces.pb").manifest["source"]["format"] == (
        "otlp/protobuf"
    )
    assert otlp.import_trace(tmp_path / "traces.pb").manifest["source"]["requests"] == 2


def test_a_truncated_protobuf_file_is_one_sentence(tmp_path: Path) -> None:
    data = sdk_request().SerializeToString()
    framed = len(data).to_bytes(4, "big") + data
    (tmp_path / "cut.pb").write_bytes(framed + framed[:20])
    with pytest.raises(otlp.OtlpError) as caught:
        otlp.import_trace(tmp_path / "cut.pb")
    assert (
        str(caught.value)
        == f"{tmp_path / 'cut.pb'} message 2 is cut short: the file ends inside it"
    )


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"traces": [{"traceID": "d6e9329d67b6146a", "rootServiceName": "shop", "spanSets": []}]},
         "is a Tempo search response (trace ids and matched span summaries, not whole traces): "
         "download each trace from /api/traces/<traceID>"),
        ({"data": None, "total": 0, "limit": 0, "offset": 0,
          "errors": [{"code": 404, "msg": "trace not found"}]},
         "is a Jaeger query API response holding no traces (the query reported: trace not found)"),
        ({"error": {"grpcCode": 5, "httpCode": 404, "message": "trace not found"}},
         "is an error response of Jaeger's API v3 (trace not found), not a trace"),
        ([{"parent": "frontend", "child": "backend", "callCount": 12}],
         "is a dependency list (Jaeger's or Zipkin's /dependencies): links between services, "
         "not spans"),
        ({"process": {"serviceName": "shop"}, "spans": [{"traceIdLow": 1, "spanId": 2}]},
         "is a Jaeger Thrift batch (an agent's or client's wire format, not what Jaeger "
         "serves): download the trace from Jaeger's /api/traces/<traceID>"),
        ([], "is an empty list: no spans to import"),
        ({"trace": {}, "status": "PARTIAL"},
         "is a Tempo v2 trace response with no spans in its trace"),
    ],
)  # fmt: skip
def test_unsupported_shapes_get_one_sentence(tmp_path: Path, doc: Any, expected: str) -> None:
    path = write_json(tmp_path / "x.json", doc)
    with pytest.raises(otlp.OtlpError) as caught:
        otlp.import_trace(path)
    assert str(caught.value) == f"{path} {expected}"


def test_zstd_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "data.json.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 20)
    with pytest.raises(otlp.OtlpError, match="is zstd-compressed"):
        otlp.import_trace(path)


# -- round trips, every format --------------------------------------------------------------


def files_of_every_format(tmp_path: Path) -> dict[str, Path]:
    from google.protobuf.json_format import Parse

    files = {
        "otlp-json": write_json(tmp_path / "otlp.json", faithful_doc()),
        "jaeger": write_json(tmp_path / "jaeger.json", jaeger_doc()),
        "zipkin": write_json(tmp_path / "zipkin.json", zipkin_doc()),
    }
    for kind in ("tempo-v1", "tempo-v2", "jaeger-v3"):
        files[kind] = write_json(tmp_path / f"{kind}.json", wrapped(kind))
    lines = tmp_path / "collector.jsonl"
    lines.write_text(json.dumps(faithful_doc()) + "\n" + json.dumps(quirks_doc()) + "\n")
    files["collector-jsonl"] = lines
    request = Parse(json.dumps(otlp_base64(faithful_doc())), type(sdk_request())())
    data = request.SerializeToString()
    (tmp_path / "otlp.pb").write_bytes(len(data).to_bytes(4, "big") + data)
    files["otlp-protobuf"] = tmp_path / "otlp.pb"
    return files


def flat(attrs: dict[str, Any], jaeger: bool) -> str:
    """Attributes for comparing; through Jaeger (no arrays or maps in its tags) a list
    or map travels as its JSON text, as the Collector's translator writes it."""
    if jaeger:
        attrs = {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in attrs.items()}
    return json.dumps(attrs, sort_keys=True)


def essence(run: Run, jaeger: bool = False) -> list[tuple]:
    """What a round trip must keep of each span: ids, parent, times, attributes, events,
    links (their trace ids too), its service and the outcome read from it."""
    out = []
    for row in run.spans.itertuples(index=False):
        record = json.loads(row.otel)
        links = [(link["trace_id"], link["span_id"]) for link in record.get("links", [])]
        if not jaeger:
            links = [(*pair, json.dumps(link.get("attributes"), sort_keys=True))
                     for pair, link in zip(links, record.get("links", []), strict=True)]  # fmt: skip
        events = [(e["name"], e["time_ns"], flat(e["attributes"], jaeger))
                  for e in record.get("events", [])]  # fmt: skip
        out.append((
            row.trace_id, row.span_id, row.parent_id, row.name, row.kind, row.agent,
            record["start_ns"], record["end_ns"], row.outcome, row.error,
            flat(record["attributes"], jaeger), events, links,
            record.get("trace_state", ""), record.get("flags", 0) & (0xFF if jaeger else -1),
        ))  # fmt: skip
    return sorted(out)


@pytest.mark.parametrize(
    "kind",
    ["otlp-json", "collector-jsonl", "otlp-protobuf", "tempo-v1", "tempo-v2", "jaeger-v3",
     "jaeger", "zipkin"],
)  # fmt: skip
@pytest.mark.parametrize("via", ["otlp", "jaeger"])
def test_round_trip_keeps_ids_parents_links_times_attributes(
    tmp_path: Path, kind: str, via: str
) -> None:
    first = otlp.import_trace(files_of_every_format(tmp_path)[kind])
    if via == "otlp":
        again = otlp.import_trace(otlp.write_otlp(first, tmp_path / "again.otlp.json"))
    else:
        again = otlp.import_trace(otlp.write_jaeger(first, tmp_path / "again.jaeger.json"))
    assert essence(again, jaeger=via == "jaeger") == essence(first, jaeger=via == "jaeger")
    pd.testing.assert_frame_equal(again.messages, first.messages)
    assert again.agents["agent"].tolist() == first.agents["agent"].tolist()


# -- export of simulated runs: what a Jaeger or Tempo user expects --------------------------


def test_export_of_a_simulated_run_follows_the_semantic_conventions() -> None:
    run = shop_run()
    extra = table(
        "spans",
        [dict(span_id="0000000000000009", correlation_id="web-4", name="agent.card",
              kind="client", agent="web", peer="registry", protocol="http", start=4.0,
              end=4.2, outcome="timeout", error="no answer in 0.2 s")],
    )  # fmt: skip
    run.tables["spans"] = pd.concat([run.spans, extra], ignore_index=True)
    doc = otlp.to_otlp(run)
    spans = by_id(doc)
    client, server = spans["0000000000000001"], spans["0000000000000002"]
    assert client["name"] == server["name"] == "POST /order.place"
    a, b = plain(client["attributes"]), plain(server["attributes"])
    assert a["url.full"] == "http://orders/order.place" and a["server.port"] == 80
    assert (b["url.path"], b["url.scheme"], b["http.route"]) == ("/order.place", "http",
                                                                "/order.place")  # fmt: skip
    card = spans["0000000000000009"]
    assert card["name"] == "GET /.well-known/agent-card.json"
    assert plain(card["attributes"])["http.request.method"] == "GET"
    ((event),) = card["events"]
    assert (event["name"], plain(event["attributes"])) == (
        "exception", {"exception.type": "TimeoutError", "exception.message": "no answer in 0.2 s"},
    )  # fmt: skip
    res = client["resource"]
    assert res["service.instance.id"] == "web" and res["telemetry.sdk.name"] == "switchboard"
    assert res["telemetry.sdk.language"] == "python" and res["telemetry.sdk.version"]


def test_simulated_round_trip_keeps_span_names(tmp_path: Path) -> None:
    run = sim.run("collaboration", duration=20)
    back = otlp.import_otlp(otlp.write_otlp(run, tmp_path / "c.json"))
    assert sorted(back.spans["name"]) == sorted(run.spans["name"])
    doc = otlp.to_otlp(run)
    names = {s["name"] for s in by_id(doc).values()}
    assert "GET /.well-known/agent-card.json" in names


def test_cli_export_jaeger_and_import_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "shop"
    shop_run().save(run_dir)
    assert cli.main(["export", str(run_dir), "--format", "jaeger"]) == 0
    path = run_dir / "trace.jaeger.json"
    assert f"wrote 8 spans of shop to {path}" in capsys.readouterr().out
    doc = json.loads(path.read_text())
    assert len(doc["data"]) == 3 and doc["errors"] is None
    assert cli.main(["import-otlp", str(path), "--out", str(tmp_path / "r")]) == 0
    printed = capsys.readouterr().out
    assert "(jaeger)" in printed
    again = Run.load(tmp_path / "r")
    assert sorted(again.spans["span_id"]) == sorted(shop_run().spans["span_id"])
    assert not math.isnan(again.duration)


def test_a_foreign_trace_is_named_after_its_file(tmp_path: Path) -> None:
    # Before, a loop over the tables the trace lacks reused the `name` argument, so every
    # Jaeger or Zipkin import was called "tasks".
    run = otlp.import_trace(write_json(tmp_path / "checkout.json", zipkin_doc()))
    assert run.name == run.manifest["name"] == "checkout"
    assert run.manifest["has_breakers"] is False
