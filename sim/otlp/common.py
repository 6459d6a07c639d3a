"""What the OTLP export and import share: codes, attribute names, AnyValue, file writing.

OTLP/JSON is the protobuf JSON mapping of `ExportTraceServiceRequest` with two
deviations the OTLP specification makes: trace and span ids are hex strings (not
base64), and enums may be integers. 64-bit integers (times, `intValue`) are strings.
"""

from __future__ import annotations

import base64
import errno
import ipaddress
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sim.trace.recorder import Recorder
from sim.trace.schema import DTYPES

# Simulated second 0 is this instant: 2026-01-01T00:00:00Z, in nanoseconds since the Unix
# epoch. Fixed, so that the same run always exports the same file; recorded in the scope
# attributes (EPOCH_KEY) so that an import maps times back to simulated seconds exactly.
EPOCH_UNIX_NANO = 1_767_225_600 * 1_000_000_000
NANOS = 1_000_000_000

SCOPE_NAME = "switchboard"
EPOCH_KEY = "switchboard.epoch_unix_nano"

# SpanKind and StatusCode of opentelemetry/proto/trace/v1/trace.proto.
KIND_CODES = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
KIND_OF_CODE = {0: "internal", **{code: kind for kind, code in KIND_CODES.items()}}
KIND_OF_NAME = {f"SPAN_KIND_{kind.upper()}": kind for kind in KIND_CODES} | {
    "SPAN_KIND_UNSPECIFIED": "internal"
}
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
STATUS_OF_NAME = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}

# Span outcomes that are failures: exported as status ERROR.
FAILED = frozenset({"error", "timeout", "deadline_exceeded", "rejected", "cancelled"})

_HEX = re.compile(r"[0-9a-fA-F]+\Z")


class OtlpError(ValueError):
    """Input that is not usable OTLP/JSON; the message is one sentence naming where."""


# -- ids --------------------------------------------------------------------------------


def is_hex_id(value: str, digits: int) -> bool:
    """Whether `value` is `digits` hex digits and not all zeros (a zero id is invalid)."""
    return len(value) == digits and bool(_HEX.match(value)) and value.strip("0") != ""


def decode_id(value: Any, digits: int) -> str | None:
    """A trace or span id as lowercase hex, from OTLP/JSON's hex or protobuf's base64.

    OTLP/JSON writes ids as hex; the standard protobuf JSON mapping (`MessageToJson`)
    writes bytes as base64. The two never clash: 32 (or 16) hex digits are 24 (or 12)
    bytes in base64, not 16 (or 8). Returns None when `value` is neither.
    """
    if not isinstance(value, str):
        return None
    if is_hex_id(value, digits):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    hexed = raw.hex()
    return hexed if is_hex_id(hexed, digits) else None


def pad_trace_id(value: Any) -> str | None:
    """A trace id as 32 lowercase hex digits: Jaeger and Zipkin write 64-bit ones in 16,
    Tempo's search drops leading zeros; base64 (protobuf JSON) is read too."""
    if isinstance(value, str) and 0 < len(value) <= 32 and _HEX.match(value):
        padded = value.lower().zfill(32)
        return padded if padded.strip("0") else None
    return decode_id(value, 32)


def pad_span_id(value: Any) -> Any:
    """A span id of up to 16 hex digits as 16: Jaeger's and Zipkin's older clients print
    a 64-bit id without its leading zeros (`a68c6983a6d81a2`). Anything else is returned
    as it is, for the OTLP reader to refuse in a sentence."""
    if isinstance(value, str) and 0 < len(value) < 16 and _HEX.match(value):
        return value.lower().zfill(16)
    return value


def shown(value: Any, limit: int = 40) -> str:
    """`value` as a sentence quotes it: its repr, cut short when a file holds a huge one."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def is_address(value: str) -> bool:
    """Whether `value` is an IP address (with or without a port): never an agent's name."""
    text = value.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def hex_to_base64(value: str) -> str:
    """A hex id in base64: what `google.protobuf.json_format` expects for bytes fields."""
    return base64.b64encode(bytes.fromhex(value)).decode()


# -- AnyValue and attributes ------------------------------------------------------------


def any_value(value: Any) -> dict[str, Any]:
    """A Python value as an OTLP AnyValue (bool before int: bool is an int in Python)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": attribute_list(value)}}
    return {"stringValue": str(value)}


def attribute_list(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    """A dict as OTLP's list of KeyValue, skipping None and NaN (OTLP has no null)."""
    return [
        {"key": key, "value": any_value(value)}
        for key, value in attributes.items()
        if value is not None and not (isinstance(value, float) and math.isnan(value))
    ]


def from_any_value(value: Any) -> Any:
    """An OTLP AnyValue as a Python value (None when it is empty or unknown)."""
    if not isinstance(value, dict):
        return None
    for key, convert in _ANY_VALUE_READERS:
        if key in value:
            return convert(value[key])
    return None


_INT64 = (-(2**63), 2**63 - 1)


def _int(text: Any) -> int | None:
    # OTLP's intValue is an int64: a value past it (or infinite) is not one, so it is missing
    # rather than an overflow in a table column later.
    try:
        value = int(text)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if _INT64[0] <= value <= _INT64[1] else None


def _float(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError, OverflowError):
        return None


def _array(value: Any) -> list[Any]:
    values = value.get("values", []) if isinstance(value, dict) else []
    return [from_any_value(v) for v in values] if isinstance(values, list) else []


def _kvlist(value: Any) -> dict[str, Any]:
    values = value.get("values", []) if isinstance(value, dict) else []
    return attribute_map(values) if isinstance(values, list) else {}


_ANY_VALUE_READERS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("stringValue", lambda v: v if isinstance(v, str) else str(v)),
    ("string_value", lambda v: v if isinstance(v, str) else str(v)),
    ("boolValue", bool),
    ("bool_value", bool),
    ("intValue", _int),
    ("int_value", _int),
    ("doubleValue", _float),
    ("double_value", _float),
    ("arrayValue", _array),
    ("array_value", _array),
    ("kvlistValue", _kvlist),
    ("kvlist_value", _kvlist),
    ("bytesValue", str),
    ("bytes_value", str),
)


def attribute_map(attributes: Iterable[Any] | Any) -> dict[str, Any]:
    """OTLP's list of KeyValue as a dict; entries without a string key are skipped, and
    anything but a list (a bad file's number or string) is no attributes."""
    out: dict[str, Any] = {}
    if not isinstance(attributes, list):
        return out
    for item in attributes:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = from_any_value(item.get("value"))
    return out


# -- writing files whole or not at all ----------------------------------------------------


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Write a file or directory at `path` via a temporary sibling and a rename.

    `write(tmp)` fills the temporary path (a file path, or a directory it may create).
    On any error the temporary is removed and `path` is left as it was. An existing
    directory at `path` is replaced only by a directory, swapped out and removed once the
    new one is in place; callers check first that it is theirs to replace.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / "out"
    try:
        write(target)
        if path.is_dir():
            if not target.is_dir():  # never swap a directory out for a file
                raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
            old = tmp / "old"
            os.replace(path, old)
            try:
                os.replace(target, path)
            except OSError:
                os.replace(old, path)  # put the previous one back
                raise
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


# -- columns the trace contract may grow --------------------------------------------------

# Span columns the OTLP mapping carries in its own fields or named attributes; any other
# column of `spans` travels as a `switchboard.<column>` attribute, so that columns added
# to the contract later survive a round trip without a change here.
MAPPED_SPAN_COLUMNS = frozenset(
    {
        "span_id", "parent_id", "correlation_id", "name", "kind", "agent", "peer", "protocol",
        "start", "end", "deadline", "wait", "outcome", "attempts", "error", "status",
        "trace_id", "links", "otel",
    }
)  # fmt: skip


def dtype_default(dtype: str) -> Any:
    """The value a column of `dtype` holds when nothing is known."""
    if dtype.startswith(("int", "uint")):
        return 0
    if dtype.startswith("float"):
        return math.nan
    if dtype == "bool":
        return False
    return ""


def span_defaults() -> dict[str, Any]:
    """What the recorder writes in each span column when nobody sets it (-1, NaN, "").

    Asked of the recorder itself, so a sentinel it uses for a new column (say -1 for
    "not a fan-out") is what an imported span gets too; the dtype's default otherwise.
    """
    defaults = {c: dtype_default(t) for c, t in DTYPES["spans"].items()}
    try:
        recorder = Recorder()
        recorder.span_start("span", "internal", "agent", "", "", 0.0)
        row = recorder.tables()["spans"].iloc[0]
    except Exception:  # the recorder's API moved on: the dtype defaults still hold
        return defaults
    for column in defaults:
        if column in row.index:
            value = row[column]
            defaults[column] = value.item() if hasattr(value, "item") else value
    return defaults
