"""Trace files written by other tools import without surprises, and bad files get one
sentence (never a traceback, never a hang).

The real files are in `tests/foreign_traces/` (see its README for where each comes
from); the malformed ones are made here from a small valid OTLP/JSON request.
"""

from __future__ import annotations

import gzip
import json
import math
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sim import otlp
from sim.otlp.common import is_address
from sim.trace import Run

FOREIGN = Path(__file__).parent / "foreign_traces"

# file: (format read, spans, agents, failed spans). Agents are what the tool itself shows
# as services (Zipkin's localEndpoint.serviceName, Jaeger's process, OTLP's service.name).
EXPECTED: dict[str, tuple[str, int, set[str], int]] = {
    "contrib/zipkinreceiver-sample3.json": ("zipkin", 1, {"unknown_service"}, 1),
    "contrib/zipkinreceiver-sample4.json": ("zipkin", 1, {"unknown_service"}, 1),
    "jaeger-ui/flamegraph-testTrace.json": ("jaeger", 4, {"load-generator", "ride-sharing-app"}, 0),
    "jaeger-ui/oltp2jaeger-multi-out.json": ("jaeger", 4, {"example-trace"}, 0),
    "jaeger-ui/otlp2jaeger-in-error.json": ("otlp/json", 1, {"unknown_service"}, 0),
    "jaeger-ui/otlp2jaeger-multi-in.json.txt": ("otlp/json", 4, {"example-trace"}, 0),
    "jaeger-ui/spanLongerAsParent.json": ("jaeger", 8, {"api-gateway", "customers-service"}, 0),
    "jaeger-ui/testTraceNormal.json": ("jaeger", 5, {"api-gateway", "customers-service"}, 0),
    "jaeger-ui/traceWithOverlappingChildren.json": ("jaeger", 3, {"service-one", "service-two"}, 0),
    "jaeger/anonymizer-trace_success.json": ("jaeger", 2, {"16af988c443cff37", "3c220036602f839e"}, 1),
    "jaeger/apiv3-GetTrace.json": ("jaeger-v3", 1, {"unknown_service"}, 0),
    "jaeger/es_01.json": ("jaeger", 1, {"service-x"}, 1),
    "jaeger/example_trace.json": ("otlp/json", 5, {f"example-service-{i}" for i in (1, 2, 3)}, 0),
    "jaeger/memory-otel_traces_01.json": ("otlp/json", 4, {"service-x"}, 4),
    "jaeger/otlp2jaeger-in.json": ("otlp/json", 1, {"telemetrygen"}, 0),
    "jaeger/otlp2jaeger-out.json": ("jaeger", 1, {"telemetrygen"}, 0),
    "jaeger/ui_01.json": ("jaeger", 5, {"service-x", "service-y"}, 1),  # two spans share id 2
    "jaeger/zipkin_01.json": ("zipkin", 1, {"foo"}, 0),
    "jaeger/zipkin_03.json": ("zipkin", 1, {"schemas-service"}, 0),
    "otel-proto/trace.json": ("otlp/json", 1, {"my.service"}, 0),
    "zipkin-v1/span-client.json": ("zipkin-v1", 1, {"frontend"}, 0),
    "zipkin-v1/span-local.json": ("zipkin-v1", 1, {"zipkin-server"}, 0),
    "zipkin-v1/span-rpc-ipv6.json": ("zipkin-v1", 2, {"zipkin-query", "zipkin-web"}, 0),
    "zipkin-v1/span-rpc.json": ("zipkin-v1", 2, {"zipkin-query", "zipkin-web"}, 0),
    "zipkin/ascend.json": ("zipkin", 8, {"auth-service", "content-service", "mobile-gateway"}, 0),
    "zipkin/envoy.json": ("zipkin", 1, {"unknown_service"}, 0),
    "zipkin/lens-malformed.json": ("zipkin", 7, {"rewards", "unknown_service"}, 0),
    "zipkin/messaging-kafka.json": ("zipkin", 28, {"servicea", "serviceb"}, 3),
    "zipkin/messaging.json": ("zipkin", 4, {"backend", "frontend"}, 0),
    "zipkin/messaging2.json": ("zipkin", 11, {"auth-service", "mobile-gateway", "notification-service", "transfer-service"}, 0),
    "zipkin/netflix.json": ("zipkin", 6, {"api", "apip", "session_logs"}, 0),
    "zipkin/simple-db-p6.json": ("zipkin", 5, {"bootifulmeters"}, 0),
    "zipkin/skew.json": ("zipkin", 4, {"servicea", "serviceb"}, 0),
    "zipkin/yelp.json": ("zipkin", 16, {"mobile_api", "routing", "spectre", "unknown", "yelp-main", "yelp_main/api_proxy"}, 0),
    "zipkin/zipkin2-chinese.json": ("zipkin", 1, {"订单维护服务"}, 1),
    "zipkin/zipkin2-client.json": ("zipkin", 1, {"frontend"}, 0),
}  # fmt: skip

REFUSED = {
    "refused/jaeger-thrift_batch_01.json": "is a Jaeger Thrift batch",
    "refused/jaeger-domain_01.json": "is Jaeger's internal model JSON",
    "refused/jaeger-ui-testTrace.json": "has traceId 'trace-123': a trace id is 32 hex digits",
}


def check_sane(run: Run) -> None:
    """What any imported run must be: times from 0, no span ending before it starts,
    unique span ids, agents that are names, a finite duration."""
    spans = run.spans
    assert len(spans) > 0
    assert (spans["start"] >= 0).all()
    ended = spans[spans["end"].notna()]
    assert (ended["end"] >= ended["start"]).all()
    assert spans["span_id"].is_unique
    assert all(agent and not is_address(agent) for agent in spans["agent"])
    assert math.isfinite(run.manifest["duration"]) and run.manifest["duration"] >= 0
    assert set(spans["outcome"]) <= {
        "ok",
        "error",
        "timeout",
        "deadline_exceeded",
        "cancelled",
        "open",
    }


def test_every_foreign_file_is_listed() -> None:
    """A file added to tests/foreign_traces without an expectation fails here."""
    files = {
        str(p.relative_to(FOREIGN))
        for p in FOREIGN.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    assert files == set(EXPECTED) | set(REFUSED)
    readme = (FOREIGN / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in files)
    assert all(p.stat().st_size < 50_000 for p in FOREIGN.rglob("*"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_foreign_file_imports(name: str) -> None:
    fmt, count, agents, failed = EXPECTED[name]
    run = otlp.import_trace(FOREIGN / name)
    check_sane(run)
    assert run.manifest["source"]["format"] == fmt
    assert len(run.spans) == count
    assert set(run.spans["agent"]) == agents
    assert (run.spans["outcome"] == "error").sum() == failed


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_foreign_non_traces_get_one_sentence(name: str) -> None:
    with pytest.raises(otlp.OtlpError) as caught:
        otlp.import_trace(FOREIGN / name)
    assert REFUSED[name] in str(caught.value) and "\n" not in str(caught.value)


# -- what each class of file needed --------------------------------------------------------


def test_jaeger_span_ids_without_leading_zeros_are_padded() -> None:
    """Jaeger UI's fixtures (and older Jaeger clients) print 64-bit span ids without
    their leading zeros: 15 digits is still an id, and parent links hold."""
    run = otlp.import_trace(FOREIGN / "jaeger-ui/spanLongerAsParent.json")
    by_id = run.spans.set_index("span_id")
    assert "04b52eb0cabcb50a" in by_id.index
    child = run.spans[run.spans["name"] == "HikariProxyPreparedStatement.executeQuery"]
    assert set(child["parent_id"]) == {"04b52eb0cabcb50a"}
    assert run.manifest["missing_parents"] == 0


def test_jaeger_spans_on_their_own_keep_their_own_processes() -> None:
    """The anonymizer's list of spans and an Elasticsearch span document carry their
    process inline; two spans of two services stay two agents."""
    run = otlp.import_trace(FOREIGN / "jaeger/anonymizer-trace_success.json")
    kinds = dict(zip(run.spans["agent"], run.spans["kind"], strict=True))
    assert kinds == {"16af988c443cff37": "server", "3c220036602f839e": "client"}
    es = otlp.import_trace(FOREIGN / "jaeger/es_01.json")
    (row,) = es.spans.itertuples()
    assert (row.agent, row.outcome, row.span_id) == ("service-x", "error", "0000000000000002")
    assert row.start == 0 and row.end == pytest.approx(5e-6)


def test_one_zipkin_span_on_its_own() -> None:
    run = otlp.import_trace(FOREIGN / "zipkin/zipkin2-client.json")
    (row,) = run.spans.itertuples()
    assert (row.agent, row.kind, row.peer) == ("frontend", "client", "backend")
    assert row.end == pytest.approx(0.207)
    assert run.manifest["virtual_nodes"] == ["backend"]


def test_zipkin_v1_rpc_becomes_a_client_and_a_server() -> None:
    """A v1 span holding cs/sr/ss/cr is the client's and the server's side of one call,
    as Zipkin reads it: two spans, two services, a request and its response."""
    run = otlp.import_trace(FOREIGN / "zipkin-v1/span-rpc.json")
    spans = run.spans.set_index("kind")
    assert spans.loc["client", "agent"] == "zipkin-web"
    assert spans.loc["server", "agent"] == "zipkin-query"
    assert spans.loc["server", "parent_id"] == spans.loc["client", "span_id"]
    assert spans.loc["client", "end"] == pytest.approx(0.051)
    assert 0 < spans.loc["server", "start"] < spans.loc["server", "end"] < 0.051
    assert list(run.messages["kind"]) == ["request", "response"]
    assert list(run.messages["src"]) == ["zipkin-web", "zipkin-query"]
    local = otlp.import_trace(FOREIGN / "zipkin-v1/span-local.json")
    assert list(local.spans["agent"]) == ["zipkin-server"]  # from the `lc` annotation


def v1(span_id: str, parent: str | None, name: str, **sides: Any) -> dict[str, Any]:
    """A Zipkin v1 span: `sides` maps core annotation values to (µs, service)."""
    out: dict[str, Any] = {"traceId": "f3e648a459e6c685", "id": span_id, "name": name}
    if parent:
        out["parentId"] = parent
    out["annotations"] = [
        {"timestamp": when, "value": value, "endpoint": {"serviceName": svc, "ipv4": "10.0.0.1"}}
        for value, (when, svc) in sides.items()
    ]
    return out


def test_zipkin_v1_trace_as_zipkin_shows_it(tmp_path: Path) -> None:
    """A whole v1 trace (as Zipkin 1.x's UI downloaded it): a server root, a call to a
    backend recorded by both sides in one span, an error binary annotation."""
    t = 1_509_771_706_395_235
    root = v1("f3e648a459e6c685", None, "get", sr=(t, "frontend"), ss=(t + 113_839, "frontend"))
    call = v1(
        "2ce51fa654dd0c2f", "f3e648a459e6c685", "get",
        cs=(t + 38_972, "frontend"), sr=(t + 84_156, "backend"),
        ss=(t + 100_246, "backend"), cr=(t + 106_777, "frontend"),
    )  # fmt: skip
    call["binaryAnnotations"] = [
        {"key": "error", "value": "db down", "endpoint": {"serviceName": "backend"}},
        {"key": "sa", "value": True, "endpoint": {"serviceName": "backend", "port": 9000}},
    ]
    path = tmp_path / "v1.json"
    path.write_text(json.dumps([root, call]))
    run = otlp.import_trace(path)
    check_sane(run)
    assert run.manifest["source"]["format"] == "zipkin-v1"
    rows = {(r.agent, r.kind): r for r in run.spans.itertuples()}
    assert set(rows) == {("frontend", "server"), ("frontend", "client"), ("backend", "server")}
    client, server = rows[("frontend", "client")], rows[("backend", "server")]
    assert client.span_id == "2ce51fa654dd0c2f" and server.parent_id == client.span_id
    assert (client.start, client.end) == pytest.approx((0.038972, 0.106777))
    assert (server.start, server.end) == pytest.approx((0.084156, 0.100246))
    assert (server.outcome, server.error) == ("error", "db down")
    assert client.outcome == "ok" and client.peer == "backend"
    assert list(run.messages["src"]) == ["frontend", "backend"]


def otlp_doc(*spans: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeSpans": [{"scope": {}, "spans": list(spans)}],
            }
        ]
    }


T0 = 1_700_000_000_000_000_000
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def otlp_span(
    span_id: str, parent: str = "", start: Any = T0, end: Any = T0 + 10**8, **kw: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"traceId": TRACE, "spanId": span_id, "name": "op", "kind": 2}
    if start is not None:
        out["startTimeUnixNano"] = str(start)
    if end is not None:
        out["endTimeUnixNano"] = str(end)
    if parent:
        out["parentSpanId"] = parent
    return out | kw


A, B, C = "00f067aa0ba902b7", "00f067aa0ba902b8", "00f067aa0ba902b9"


def test_spans_without_a_start_time_are_dated_from_their_neighbours(tmp_path: Path) -> None:
    """OTLP/JSON leaves a zero time out and Zipkin's timestamp is optional: such a span is
    read (never refused, never put in 1970), dated from its events, its end, its parent."""
    doc = otlp_doc(
        otlp_span(A, start=T0 + 10**6),
        otlp_span(B, A, start=0, end=T0 + 5 * 10**6),  # a zero time: absent
        otlp_span(C, A, start=None, end=None, events=[{"timeUnixNano": str(T0 + 2 * 10**6), "name": "x"}]),
        otlp_span("00f067aa0ba902ba", C, start=None, end=None),
    )  # fmt: skip
    path = tmp_path / "undated.json"
    path.write_text(json.dumps(doc))
    run = otlp.import_trace(path)
    check_sane(run)
    start = dict(zip(run.spans["span_id"], run.spans["start"], strict=True))
    assert start == pytest.approx({A: 0.0, B: 0.004, C: 0.001, "00f067aa0ba902ba": 0.001})
    assert run.manifest["spans_without_start"] == 3
    assert run.manifest["duration"] == pytest.approx(0.099)  # A ends at T0 + 100 ms
    zipkin = tmp_path / "zipkin.json"
    zipkin.write_text(
        json.dumps(
            [
                {"traceId": TRACE, "id": A, "timestamp": T0 // 1000, "duration": 100,
                 "localEndpoint": {"serviceName": "a"}},
                {"traceId": TRACE, "id": B, "parentId": A, "localEndpoint": {"serviceName": "a"}},
            ]
        )
    )  # fmt: skip
    late = otlp.import_trace(zipkin)
    assert list(late.spans["start"]) == [0.0, 0.0]
    assert list(late.spans["outcome"]) == ["ok", "open"]


def test_end_before_start_and_self_parent_are_repaired_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(otlp_doc(otlp_span(A, A, end=T0 - 10**9), otlp_span(B, A))))
    run = otlp.import_trace(path)
    check_sane(run)
    row = run.spans.set_index("span_id").loc[A]
    assert (row["parent_id"], row["end"]) == ("", row["start"])
    assert (run.manifest["ends_before_start"], run.manifest["self_parents"]) == (1, 1)


# -- malformed files -------------------------------------------------------------------------

GOOD = json.dumps(otlp_doc(otlp_span(A), otlp_span(B, A)))
DEEP = 100_000


# Documents of each format with every field of the wrong type.
WRONG_TYPES = {
    "Jaeger with wrong types": json.dumps(
        {"data": [{"traceID": 5, "spans": [{"traceID": 5, "spanID": None, "startTime": "x",
         "duration": [], "tags": "x", "logs": 7, "references": "x", "processID": {}}],
         "processes": []}], "total": 0}
    ),
    "Zipkin with wrong types": json.dumps(
        [{"traceId": 5, "id": ["x"], "timestamp": "abc", "duration": {}, "tags": ["x"],
          "annotations": "x", "localEndpoint": "svc", "kind": 3}]
    ),
    "Zipkin annotations and tags with wrong types": json.dumps(
        [{"traceId": "4bf92f3577b34da6", "id": "00f067aa0ba902b7", "timestamp": 1700000000000000,
          "duration": 5, "tags": {"error": None, "x": {"y": 1}},
          "annotations": [{"timestamp": "x", "value": None}, 5, {"timestamp": 1e400}]}]
    ),
    "Tempo with wrong types": json.dumps({"batches": [{"scopeSpans": 5}]}),
    "Zipkin v1 with wrong types": json.dumps(
        [{"traceId": "x", "id": 5, "annotations": [{"value": "cs", "timestamp": "x"}],
          "binaryAnnotations": [{"key": 5}, "x", {"key": "sa", "endpoint": "x"}]}]
    ),
    # Found by mutating the foreign files field by field (a crash each, before).
    "Zipkin v1 annotation value a list": json.dumps(
        [{"traceId": "4bf92f3577b34da6", "id": "00f067aa0ba902b7", "name": "get",
          "annotations": [{"value": ["cs"], "timestamp": 1700000000000000},
                          {"value": "cr", "timestamp": 1700000000000500}],
          "binaryAnnotations": []}]
    ),
}  # fmt: skip


def jaeger_ui_01(**fields: Any) -> str:
    """Jaeger's ui_01.json with these fields of its first span changed."""
    doc = json.loads((FOREIGN / "jaeger" / "ui_01.json").read_text())
    doc["spans"][0].update(fields)
    return json.dumps(doc)


def bad_files() -> dict[str, bytes]:
    """Each malformed file, by what is wrong with it."""
    text = {
        "truncated": GOOD[: len(GOOD) // 2],
        "corrupt": GOOD.replace(":", ";", 3),
        "wrong type: resourceSpans": json.dumps({"resourceSpans": "x"}),
        "wrong type: spans": json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": {"a": 1}}]}]}),
        "wrong type: attributes": json.dumps(otlp_doc(otlp_span(A, attributes={"k": "v"}))),
        "wrong type: time": json.dumps(otlp_doc(otlp_span(A, start=None, startTimeUnixNano=[1]))),
        "wrong type: bool time": json.dumps(
            otlp_doc(otlp_span(A, start=None, startTimeUnixNano=True))
        ),
        "link attributes not a list": json.dumps(
            otlp_doc(otlp_span(A, links=[{"traceId": TRACE, "spanId": A, "attributes": 5}]))
        ),
        "int attribute past int64": json.dumps(
            otlp_doc(
                otlp_span(A, kind=3),
                otlp_span(
                    B,
                    A,
                    kind=2,
                    attributes=[
                        {"key": "http.response.body.size", "value": {"intValue": str(2**70)}}
                    ],
                ),
            )
        ),
        "flags infinite": json.dumps(otlp_doc(otlp_span(A, flags=float("inf")))),
        "Zipkin status code past 2^64": json.dumps(
            [
                {
                    "traceId": "4bf92f3577b34da6",
                    "id": "00f067aa0ba902b7",
                    "name": "get",
                    "kind": "SERVER",
                    "timestamp": 1700000000000000,
                    "duration": 5,
                    "localEndpoint": {"serviceName": "a"},
                    "tags": {"http.status_code": 2**70},
                }
            ]
        ),
        "Jaeger references not a list": jaeger_ui_01(references=True),
        "Jaeger flags infinite": jaeger_ui_01(flags=float("inf")),
        "infinite int attribute": json.dumps(
            otlp_doc(otlp_span(A, attributes=[{"key": "n", "value": {"intValue": float("inf")}}]))
        ),
        "NaN time": GOOD.replace(f'"{T0}"', "NaN", 1),
        "negative time": json.dumps(otlp_doc(otlp_span(A, start=-5, end=10))),
        "time past 2^64": json.dumps(otlp_doc(otlp_span(A, start="9" * 30, end="9" * 31))),
        "number of 5000 digits": GOOD.replace(f'"{T0}"', "9" * 5000, 1),
        "empty resourceSpans": json.dumps({"resourceSpans": []}),
        "empty spans": json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": []}]}]}),
        "empty list": "[]",
        "empty object": "{}",
        "empty file": "",
        "blank lines": " \n\n ",
        "null": "null",
        "a string": '"hello"',
        "huge trace id": json.dumps(otlp_doc(otlp_span(A, traceId="a" * 5000))),
        "huge span id": json.dumps(otlp_doc(otlp_span("f" * 100_000))),
        "integer ids": json.dumps(otlp_doc(otlp_span(A, traceId=12, spanId=34))),
        "no ids": json.dumps(otlp_doc({"name": "x", "startTimeUnixNano": "1"})),
        "a span id in two traces": json.dumps(
            otlp_doc(otlp_span(A), otlp_span(A, traceId="5" + TRACE[1:]))
        ),
        "JSON bomb: arrays": "[" * DEEP + "]" * DEEP,
        "JSON bomb: objects": '{"a":' * DEEP + "1" + "}" * DEEP,
        "JSON bomb: attribute values": GOOD.replace(
            '"name": "op"',
            '"name": "op", "attributes": [{"key": "k", "value": '
            + '{"arrayValue": {"values": [' * 900
            + "]}}" * 900
            + "}]",
            1,
        ),
        "JSON bomb on line 2": GOOD + "\n" + "[" * DEEP + "]" * DEEP + "\n",
        **WRONG_TYPES,
    }
    raw = {name: value.encode() for name, value in text.items()}
    raw["not UTF-8"] = GOOD.replace('"op"', '"op\xe9"').encode("latin-1")
    raw["not UTF-8 on line 2"] = GOOD.encode() + b"\n" + raw["not UTF-8"] + b"\n"
    raw["NUL bytes"] = b"\0" * 100
    raw["protobuf: 2 GB length prefix"] = struct.pack(">I", 0x7FFF_FFFF) + b"\x0a\x05hello"
    raw["protobuf: 4 GB length prefix"] = struct.pack(">I", 0xFFFF_FFFF) + b"\x0a\x05hello"
    raw["protobuf: garbage request"] = b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 50
    raw["protobuf: garbage message"] = struct.pack(">I", 5) + b"\xff" * 5
    raw["gzip cut short"] = gzip.compress(GOOD.encode())[:-10]
    raw["gzip corrupt"] = gzip.compress(GOOD.encode())[:10] + b"garbage" * 10
    raw["gzip of nothing"] = gzip.compress(b"")
    raw["zstd"] = b"\x28\xb5\x2f\xfd" + b"\0" * 20
    return raw


@pytest.mark.parametrize("case", sorted(bad_files()))
def test_malformed_input_is_one_sentence_or_a_sane_run(tmp_path: Path, case: str) -> None:
    path = tmp_path / "trace.json"
    path.write_bytes(bad_files()[case])
    imports_sanely(path)


def imports_sanely(path: Path) -> None:
    """What importing a bad file must do: an OtlpError of one line that names the file,
    or a run `check_sane` accepts."""
    try:
        run = otlp.import_trace(path)
    except otlp.OtlpError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 400, message
        assert message.startswith(str(path)), message
        return
    check_sane(run)


# The command line on a subset of the bad files (a process each is slow): exit status 2,
# one line on stderr, no traceback.
CLI_CASES = [
    "truncated", "corrupt", "empty file", "huge span id", "JSON bomb: objects",
    "JSON bomb: attribute values", "not UTF-8", "protobuf: 2 GB length prefix",
    "gzip cut short", "negative time", "Zipkin v1 with wrong types", "Jaeger with wrong types",
    "protobuf: 4 GB length prefix",
]  # fmt: skip


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_import_of_a_bad_file_is_one_line(tmp_path: Path, case: str) -> None:
    path = tmp_path / "trace.json"
    path.write_bytes(bad_files()[case])
    done = subprocess.run(
        [sys.executable, "-m", "sim", "import", str(path), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_cli_import_reads_a_foreign_file_without_saving() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sim", "import", str(FOREIGN / "zipkin-v1/span-rpc.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "imported 2 spans in 1 traces from 2 services (zipkin-v1)" in done.stdout
    assert "not saved" in done.stdout


def test_zipkin_spans_in_pieces_and_ids_taken_twice(tmp_path: Path) -> None:
    """Zipkin Lens' smartthings traces: a late fragment (name only) read before the client
    and the shared server span of the same id must not hide them; two instances of a
    service taking the same message under one id are two spans (Zipkin shows both)."""
    t = T0 // 1000

    def zspan(sid: str, service: str, **kw: Any) -> dict[str, Any]:
        return {
            "traceId": TRACE,
            "id": sid,
            "name": "post",
            "localEndpoint": {"serviceName": service},
        } | kw

    spans = [
        zspan(B, "api", parentId=A),  # the fragment, first
        zspan(B, "login", parentId=A, kind="CLIENT", timestamp=t + 10, duration=500),
        zspan(B, "api", parentId=A, kind="SERVER", shared=True, timestamp=t + 20, duration=400),
        zspan(C, "pusher", parentId=A, kind="CONSUMER", timestamp=t + 30, duration=5),
        zspan(C, "pusher", parentId=A, kind="CONSUMER", timestamp=t + 40, duration=5),
        zspan(C, "pusher", parentId=A, kind="CONSUMER", timestamp=t + 40, duration=5),  # a copy
        zspan(A, "login", timestamp=t, duration=1000),
    ]  # fmt: skip
    path = tmp_path / "pieces.json"
    path.write_text(json.dumps(spans))
    run = otlp.import_trace(path)
    check_sane(run)
    kinds = sorted(zip(run.spans["agent"], run.spans["kind"], strict=True))
    assert kinds == [
        ("api", "server"), ("login", "client"), ("login", "internal"),
        ("pusher", "consumer"), ("pusher", "consumer"),
    ]  # fmt: skip
    assert run.manifest["spans_without_start"] == 0
    assert (run.manifest["duplicate_spans"], run.manifest["reused_span_ids"]) == (2, 1)
    assert list(run.messages["kind"][:2]) == ["request", "response"]


def test_a_protobuf_nesting_bomb_is_one_sentence(tmp_path: Path) -> None:
    """Attribute values nested 500 deep in a Collector `format: proto` file."""
    trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
    request = trace_service.ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = bytes.fromhex(TRACE), bytes.fromhex(A), "op"
    attribute = span.attributes.add()
    attribute.key, value = "deep", attribute.value
    for _ in range(500):
        value = value.array_value.values.add()
    value.string_value = "bottom"
    data = request.SerializeToString()
    path = tmp_path / "deep.pb"
    path.write_bytes(struct.pack(">I", len(data)) + data)
    with pytest.raises(otlp.OtlpError, match=r"deep\.pb message 1 is not an OTLP protobuf"):
        otlp.import_trace(path)


def test_a_span_id_in_two_traces_names_two_spans(tmp_path: Path) -> None:
    """OTLP makes a span id unique within its trace only (Jaeger's and Zipkin's test
    traces reuse small ids): both traces import whole, each tree as the file gave it."""
    other = "5" + TRACE[1:]
    doc = otlp_doc(
        otlp_span(A), otlp_span(B, A),
        otlp_span(A, traceId=other, name="again"), otlp_span(B, A, traceId=other, name="child"),
    )  # fmt: skip
    path = tmp_path / "two.json"
    path.write_text(json.dumps(doc))
    run = otlp.import_trace(path)
    check_sane(run)
    spans = run.spans.set_index("name", drop=False)
    assert len(run.spans) == 4 and run.manifest["reused_span_ids"] == 2
    assert spans.loc["child", "parent_id"] == spans.loc["again", "span_id"] != A
    mine = run.spans[run.spans["trace_id"] == TRACE]
    assert set(mine["span_id"]) == {A, B} and set(mine["parent_id"]) == {"", A}


def console_span(
    name: str, span_id: str, parent: str | None, kind: str, start: str, end: str, **kw: Any
) -> dict[str, Any]:
    """A span as the Python SDK's ConsoleSpanExporter prints it (`span.to_json()`)."""
    return {
        "name": name,
        "context": {"trace_id": f"0x{TRACE}", "span_id": f"0x{span_id}", "trace_state": "[]"},
        "kind": f"SpanKind.{kind}",
        "parent_id": f"0x{parent}" if parent else None,
        "start_time": f"2026-12-05T09:25:06.{start}Z",
        "end_time": f"2026-12-05T09:25:06.{end}Z",
        "status": {"status_code": "UNSET"},
        "attributes": {},
        "events": [],
        "links": [],
        "resource": {
            "attributes": {"service.name": "checkout", "telemetry.sdk.language": "python"},
            "schema_url": "",
        },
    } | kw


def test_the_python_sdk_console_output(tmp_path: Path) -> None:
    """What ConsoleSpanExporter prints (pretty objects one after another, children first)
    imports as the spans it describes; a JSON list of them too."""
    spans = [
        console_span("call", B, A, "CLIENT", "297247", "297277", attributes={"peer.service": "db"},
                     status={"status_code": "ERROR", "description": "boom"}),
        console_span("GET /cart", A, None, "SERVER", "297089", "297637",
                     events=[{"name": "hello", "timestamp": "2026-12-05T09:25:06.297129Z", "attributes": {"a": 1}}]),
    ]  # fmt: skip
    printed = tmp_path / "console.txt"
    printed.write_text("".join(json.dumps(s, indent=4) + "\n" for s in spans))
    listed = tmp_path / "console.json"
    listed.write_text(json.dumps(spans))
    for path in (printed, listed):
        run = otlp.import_trace(path)
        check_sane(run)
        assert run.manifest["source"]["format"] == "otel-console"
        rows = run.spans.set_index("name")
        assert rows.loc["GET /cart", "kind"] == "server" and rows.loc["call", "kind"] == "client"
        assert rows.loc["call", "parent_id"] == A and set(rows["agent"]) == {"checkout"}
        assert (rows.loc["call", "outcome"], rows.loc["call", "error"]) == ("error", "boom")
        assert rows.loc["call", "start"] == pytest.approx(158e-6)
        assert rows.loc["GET /cart", "end"] == pytest.approx(548e-6)
        assert run.manifest["virtual_nodes"] == ["db"]
