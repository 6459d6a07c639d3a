"""An OTLP/HTTP trace receiver on 127.0.0.1: a real program's exporter points at it.

`python -m sim serve-otlp --out traces.jsonl` listens on `http://127.0.0.1:4318/v1/traces`
(OTLP/HTTP's default port) and takes what an OpenTelemetry SDK's OTLP/HTTP exporter
sends: `application/x-protobuf` or `application/json` bodies, gzip-compressed or not.
Each accepted request is appended to the output file as one line of OTLP/JSON with hex
ids, the Collector file exporter's JSON Lines, which `import_trace` reads (and a
dashboard can follow as it grows: every line is written whole and flushed).

Answers follow the OTLP/HTTP specification: 200 with an empty
`ExportTraceServiceResponse` in the request's encoding; 400 for a body that is not an
OTLP trace request, 404 for another path, 405 for another method, 413 past the size
cap, 415 for another content type. Only the loopback interface is bound: the receiver
has no authentication.
"""

from __future__ import annotations

import gzip
import io
import json
import threading
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sim.otlp.common import OtlpError, decode_id

HOST = "127.0.0.1"
DEFAULT_PORT = 4318  # OTLP/HTTP's default
PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# A request body's cap, after decompression: the Collector's default receiver limit is
# in this range, and an SDK's batch (512 spans by default) is far below it.
MAX_BODY_BYTES = 64 * 2**20


class Receiver:
    """The receiver: start it, point exporters at `url`, stop it; counts what it took."""

    def __init__(
        self, out: str | Path, port: int = DEFAULT_PORT, max_body: int = MAX_BODY_BYTES
    ) -> None:
        self.out = Path(out)
        self.max_body = max_body
        self.requests = 0
        self.spans = 0
        self._lock = threading.Lock()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.out.open("a", encoding="utf-8")
        handler = type("Handler", (_Handler,), {"receiver": self})
        try:
            self._server = ThreadingHTTPServer((HOST, port), handler)
        except OSError:
            self._file.close()
            raise
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where exporters send: `http://127.0.0.1:PORT/v1/traces`."""
        return f"http://{HOST}:{self._server.server_address[1]}{PATH}"

    def start(self) -> Receiver:
        """Serve in a background thread (for tests and notebooks)."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until `stop` (or Ctrl-C)."""
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the file; requests in flight finish first."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._file.close()

    def accept(self, request: dict[str, Any]) -> int:
        """Append one request (OTLP/JSON) to the file; return its span count."""
        count = sum(
            len(ss.get("spans") or [])
            for rs in request.get("resourceSpans") or []
            for ss in rs.get("scopeSpans") or []
        )
        line = json.dumps(request, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            self.requests += 1
            self.spans += count
        return count


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per batch would drown the terminal

    def do_GET(self) -> None:
        self._answer(HTTPStatus.METHOD_NOT_ALLOWED, JSON, _status_json("use POST"))

    def do_POST(self) -> None:
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        encoding = JSON if kind == JSON else PROTOBUF
        try:
            body = self._body()
        except _Refusal as refusal:
            self._answer(refusal.status, encoding, _status_body(encoding, refusal.message))
            return
        if self.path.split("?")[0] != PATH:
            self._answer(HTTPStatus.NOT_FOUND, encoding, _status_body(encoding, "not found"))
            return
        if kind not in (JSON, PROTOBUF):
            message = f"Content-Type must be {PROTOBUF} or {JSON}"
            self._answer(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, JSON, _status_json(message))
            return
        try:
            request = _decode(body, kind)
        except OtlpError as exc:
            self._answer(HTTPStatus.BAD_REQUEST, encoding, _status_body(encoding, str(exc)))
            return
        self.receiver.accept(request)
        # An empty ExportTraceServiceResponse: no partial success to report.
        self._answer(HTTPStatus.OK, encoding, b"" if encoding == PROTOBUF else b"{}")

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise _Refusal(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        size = int(length)
        cap = self.receiver.max_body
        if size > cap:
            self.close_connection = True  # the body is left unread
            raise _Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {cap} bytes")
        body = self.rfile.read(size)
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                inflated = gzip.GzipFile(fileobj=io.BytesIO(body)).read(cap + 1)
            except (OSError, EOFError, zlib.error):
                raise _Refusal(HTTPStatus.BAD_REQUEST, "damaged gzip body") from None
            if len(inflated) > cap:
                raise _Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {cap} bytes")
            body = inflated
        return body

    def _answer(self, status: HTTPStatus, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Refusal(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _decode(body: bytes, kind: str) -> dict[str, Any]:
    """A request body as OTLP/JSON with hex ids; OtlpError when it is not one."""
    if kind == JSON:
        try:
            request = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise OtlpError("the body is not JSON") from None
    else:
        from google.protobuf.json_format import MessageToDict
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        try:
            request = MessageToDict(ExportTraceServiceRequest.FromString(body))
        except DecodeError:
            raise OtlpError("the body is not an ExportTraceServiceRequest") from None
        _hex_ids(request)
    if not isinstance(request, dict) or not isinstance(request.get("resourceSpans", []), list):
        raise OtlpError("the body is not an OTLP trace request (no resourceSpans list)")
    return request


def _hex_ids(request: dict[str, Any]) -> None:
    """Ids in OTLP/JSON's hex, not the protobuf JSON mapping's base64, in place."""
    for rs in request.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key, digits in (("traceId", 32), ("spanId", 16), ("parentSpanId", 16)):
                    if span.get(key):
                        span[key] = decode_id(span[key], digits) or span[key]
                for link in span.get("links", []):
                    for key, digits in (("traceId", 32), ("spanId", 16)):
                        if link.get(key):
                            link[key] = decode_id(link[key], digits) or link[key]


def _status_json(message: str) -> bytes:
    return json.dumps({"code": 3, "message": message}).encode()


def _status_body(kind: str, message: str) -> bytes:
    """A google.rpc.Status (code 3, INVALID_ARGUMENT) in the request's encoding."""
    if kind == JSON:
        return _status_json(message)
    text = message.encode()[:1000]
    # Field 1 (code, varint 3) and field 2 (message, length-delimited).
    return b"\x08\x03\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
