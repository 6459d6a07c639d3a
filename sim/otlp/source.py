"""A trace file as a stream of documents: JSON, JSON Lines or OTLP protobuf, maybe gzipped.

Gzip is inflated as it is read, never whole: JSON Lines and protobuf files are taken a
line (a message) at a time. A single JSON document has to be held whole to be parsed;
every byte read counts against the import's cap (`sim.limits.MAX_OTLP_BYTES`), after
decompression, so a small gzip file cannot inflate to gigabytes.

Protobuf is what the Collector's file exporter writes with `format: proto` (each
`ExportTraceServiceRequest` after its 4-byte big-endian length) or one bare request, as
an OTLP/HTTP body carries it. A message is turned into the dict the protobuf JSON mapping
gives (base64 ids, enum names), which the OTLP/JSON reader reads as it is.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from sim import limits
from sim.otlp.common import OtlpError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Bytes that never start text: protobuf has length bytes below 0x20 within its first few.
_BINARY = frozenset(range(0x20)) - frozenset(b"\t\r\n")
_BOM = b"\xef\xbb\xbf"


class _Capped(io.RawIOBase):
    """A read-only stream that refuses to give more than `cap` bytes in all."""

    def __init__(self, inner: BinaryIO, cap: int, label: str, gzipped: bool) -> None:
        self.inner, self.cap, self.label, self.gzipped = inner, cap, label, gzipped
        self.read_so_far = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        self.read_so_far += len(data)
        if self.read_so_far > self.cap:
            what = "inflates to" if self.gzipped else "holds"
            raise OtlpError(
                f"{self.label} {what} more than {mib(self.cap)} of JSON or protobuf, past the cap "
                "of an import (a trace too large to import whole, or a gzip bomb); "
                "raise it with --max-mb if the file is genuine"
            )
        buffer[: len(data)] = data
        return len(data)


def mib(size: int) -> str:
    """A size for a sentence: MiB when large, bytes otherwise."""
    return f"{size / 2**20:,.0f} MiB" if size >= 2**20 else f"{size:,} bytes"


def documents(path: Path, max_bytes: int | None = None) -> Iterator[tuple[str, Any, str]]:
    """Each document of the file: (where it is, the parsed value, "json" or "protobuf").

    `where` is "" for a file of one document, "line N" in JSON Lines, "message N" in a
    length-prefixed protobuf file. Raises OtlpError with one sentence naming the file.
    """
    label = str(path)
    cap = limits.MAX_OTLP_BYTES if max_bytes is None else max_bytes
    gzipped = False
    try:
        with path.open("rb") as file:
            magic = file.read(4)
            file.seek(0)
            if magic.startswith(ZSTD_MAGIC):
                raise OtlpError(
                    f"{label} is zstd-compressed (the Collector file exporter's "
                    "compression), which is not read: export without compression, or gzip it"
                )
            gzipped = magic.startswith(GZIP_MAGIC)
            inner: Any = gzip.GzipFile(fileobj=file) if gzipped else file
            stream: Any = io.BufferedReader(_Capped(inner, cap, label, gzipped), 1 << 20)
            head = stream.peek(64)[:64]
            if head.startswith(_BOM):
                stream.read(len(_BOM))
                head = stream.peek(64)[:64]
            if not _BINARY.intersection(head):
                yield from ((w, d, "json") for w, d in _json_documents(label, stream))
            else:
                messages = _protobuf_documents(label, stream, cap)
                yield from ((w, d, "protobuf") for w, d in messages)
    except (OSError, EOFError, zlib.error) as exc:
        if gzipped:
            raise OtlpError(f"{label} is a damaged gzip file: {exc}") from None
        reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        raise OtlpError(f"cannot read {label}: {reason.lower()}") from None


# -- JSON and JSON Lines ------------------------------------------------------------------


def _json_documents(label: str, stream: Any) -> Iterator[tuple[str, Any]]:
    """One document, or one per line when the first line is a whole document."""
    number, first = _next_line(stream, 0)
    if first is None:
        raise OtlpError(f"{label} is empty: expected trace data")
    try:
        doc = _loads(first)
    except json.JSONDecodeError:
        # Not a document per line: one (pretty-printed) document, read whole, or several
        # one after another (what the Python SDK's console exporter prints).
        rest = stream.read()
        whole = _whole(label, b"\n" * (number - 1) + first + b"\n" + rest)
        if isinstance(whole, _Several):
            yield from ((f"object {i + 1}", doc) for i, doc in enumerate(whole.documents))
        else:
            yield "", whole
        return
    except (RecursionError, ValueError) as exc:
        raise OtlpError(f"{label} {unreadable(exc)}") from None
    following, line = _next_line(stream, number)
    if line is None:
        yield "", doc
        return
    yield f"line {number}", doc
    while line is not None:
        try:
            yield f"line {following}", _loads(line)
        except json.JSONDecodeError as exc:
            raise OtlpError(
                f"{label} line {following} is not JSON: {exc.msg} at column {exc.colno}"
            ) from None
        except (RecursionError, ValueError) as exc:
            raise OtlpError(f"{label} line {following} {unreadable(exc)}") from None
        following, line = _next_line(stream, following)


def _next_line(stream: Any, number: int) -> tuple[int, bytes | None]:
    """The next non-blank line after line `number`, and its number (None at the end)."""
    while True:
        line = stream.readline()
        if not line:
            return number, None
        number += 1
        if line.strip():
            return number, line.rstrip(b"\r\n")


def _loads(line: bytes) -> Any:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text at byte {exc.start}") from None
    return json.loads(text)


def _whole(label: str, raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise OtlpError(f"{label} is neither UTF-8 JSON nor OTLP protobuf") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        several = _concatenated(text) if exc.msg == "Extra data" else None
        if several is not None:
            return several
        raise OtlpError(
            f"{label} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (RecursionError, ValueError) as exc:
        raise OtlpError(f"{label} {unreadable(exc)}") from None


class _Several:
    """JSON documents written one after another in one file."""

    def __init__(self, documents: list[Any]) -> None:
        self.documents = documents


def _concatenated(text: str) -> _Several | None:
    """The objects of a file that holds several, one after another; None unless every
    one parses (then the first error is the one to report)."""
    decoder, at = json.JSONDecoder(), 0
    documents: list[Any] = []
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return _Several(documents)
        try:
            document, at = decoder.raw_decode(text, at)
        except (json.JSONDecodeError, RecursionError, ValueError):
            return None
        documents.append(document)


def unreadable(exc: BaseException) -> str:
    """Why JSON that parses in principle cannot be read: nesting or a huge number."""
    if isinstance(exc, RecursionError):
        return "is nested too deeply to read (an OTLP export is a dozen levels deep)"
    if "integer string conversion" in str(exc):
        return "holds a number with thousands of digits, which no OTLP field needs"
    return f"cannot be read ({exc})"


# -- OTLP protobuf --------------------------------------------------------------------------


def _protobuf_documents(label: str, stream: Any, cap: int) -> Iterator[tuple[str, Any]]:
    """The requests of a length-prefixed protobuf file, or of one bare request; a length
    prefix claiming more than the import's cap is refused before anything is read."""
    request_type, to_dict, decode_error = _protobuf_api(label)
    head = stream.peek(4)[:4]
    # A bare request starts with field 1 (resource_spans, length-delimited): 0x0a. A
    # length prefix starts with 0x00 for any message under 16 MiB.
    if head[:1] == b"\x0a":
        data = stream.read()
        try:
            message = request_type.FromString(data)
        except decode_error:
            raise OtlpError(
                f"{label} is neither JSON nor an OTLP protobuf ExportTraceServiceRequest"
            ) from None
        yield "", to_dict(message)
        return
    number = 0
    while prefix := stream.read(4):
        number += 1
        size = int.from_bytes(prefix.ljust(4, b"\0"), "big")
        if len(prefix) == 4 and size > cap:
            raise OtlpError(
                f"{label} message {number} claims {mib(size)}, more than an import reads "
                f"({mib(cap)}): the file is not a Collector `format: proto` file, or is damaged"
            )
        data = stream.read(size)
        if len(prefix) < 4 or len(data) < size:
            raise OtlpError(
                f"{label} message {number} is cut short: the file ends inside it"
                if number > 1
                else f"{label} is neither JSON nor OTLP protobuf (a Collector `format: proto` "
                "file or an ExportTraceServiceRequest)"
            )
        try:
            message = request_type.FromString(data)
        except decode_error:
            raise OtlpError(
                f"{label} message {number} is not an OTLP protobuf ExportTraceServiceRequest"
            ) from None
        yield f"message {number}", to_dict(message)


def _protobuf_api(label: str) -> tuple[Any, Any, type[Exception]]:
    """ExportTraceServiceRequest, its dict conversion and the decode error (imported late:
    only protobuf files need them)."""
    try:
        from google.protobuf.json_format import MessageToDict
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
    except ImportError:
        raise OtlpError(
            f"{label} is binary (OTLP protobuf), which needs the package opentelemetry-proto: "
            "pip install opentelemetry-proto"
        ) from None
    return ExportTraceServiceRequest, MessageToDict, DecodeError
