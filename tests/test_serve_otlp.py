"""`python -m sim serve-otlp`: a real OpenTelemetry SDK exporter sends to it on localhost.

The load test sends a bounded burst (a few thousand spans from three services, in
batches, over concurrent connections) through the SDK's own OTLP/HTTP exporter, protobuf
and JSON-free, and checks that every span arrived and imports.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from sim import otlp
from sim.otlp.receiver import Receiver

ROOT = Path(__file__).resolve().parent.parent
BURST = 3_000  # spans per service: bounded, well past one exporter batch (512)
SERVICES = ("frontend", "api", "worker")


def post(url: str, body: bytes, kind: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": kind, **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_burst_from_the_real_sdk_exporter_loses_nothing(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path / "live.jsonl", port=0).start()
    providers = []
    sent: set[str] = set()
    try:
        for service in SERVICES:
            exporter = OTLPSpanExporter(
                endpoint=receiver.url,
                compression=Compression.Gzip if service == "api" else Compression.NoCompression,
            )
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            # The queue holds the whole burst: the SDK must not drop before sending.
            provider.add_span_processor(
                BatchSpanProcessor(exporter, max_queue_size=BURST, max_export_batch_size=512)
            )
            providers.append(provider)
        tracers = [p.get_tracer("burst") for p in providers]
        for i in range(BURST):
            for tracer in tracers:
                with tracer.start_as_current_span(f"op {i % 7}", kind=SpanKind.SERVER) as span:
                    span.set_attribute("burst.index", i)
                    sent.add(format(span.get_span_context().span_id, "016x"))
        for provider in providers:
            assert provider.force_flush(timeout_millis=60_000)
            provider.shutdown()
    finally:
        receiver.stop()
    assert receiver.spans == len(sent) == BURST * len(SERVICES)
    run = otlp.import_trace(tmp_path / "live.jsonl")
    assert set(run.spans["span_id"]) == sent
    assert sorted(set(run.spans["agent"])) == sorted(SERVICES)
    assert run.manifest["source"]["format"] == "otlp/json"
    assert receiver.requests >= BURST * len(SERVICES) // 512


def test_json_bodies_and_refusals(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path / "t.jsonl", port=0, max_body=4096).start()
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "op", "kind": 2,
            "startTimeUnixNano": "1000", "endTimeUnixNano": "2000"}  # fmt: skip
    request = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}]}
    body = json.dumps(request).encode()
    try:
        assert post(receiver.url, body, "application/json") == (200, b"{}")
        assert post(receiver.url, gzip.compress(body), "application/json",
                    **{"Content-Encoding": "gzip"})[0] == 200  # fmt: skip
        status, answer = post(receiver.url, b"not json", "application/json")
        assert status == 400 and json.loads(answer)["message"] == "the body is not JSON"
        assert post(receiver.url, body, "text/plain")[0] == 415
        assert (
            post(receiver.url.replace("/v1/traces", "/v1/logs"), body, "application/json")[0] == 404
        )
        assert post(receiver.url, b" " * 5000, "application/json")[0] == 413
    finally:
        receiver.stop()
    assert (receiver.requests, receiver.spans) == (2, 2)
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [request, request]


def test_cli_serves_until_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "cli.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "sim", "serve-otlp", "--out", str(out), "--port", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:"), first
        url = first.split()[2].rstrip(",")
        span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "op",
                "startTimeUnixNano": "1000", "endTimeUnixNano": "2000"}  # fmt: skip
        request = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
        assert post(url, json.dumps(request).encode(), "application/json")[0] == 200
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert f"received 1 spans in 1 requests into {out}" in stdout
    assert "Traceback" not in stderr


@pytest.mark.parametrize("port", ["-1", "70000", "http"])
def test_cli_bad_port_is_one_sentence(port: str, capsys: pytest.CaptureFixture) -> None:
    from sim import cli

    with pytest.raises(SystemExit) as caught:
        cli.main(["serve-otlp", "--out", "x.jsonl", "--port", port])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "must be a port number from 0 to 65535" in err and err.count("\n") == 1
