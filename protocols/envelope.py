"""The message envelope: a self-describing, versioned, traceable wrapper for every message.

Modelled on CloudEvents 1.0 (`id`, `source`, `type`, `time`, `data`, with a schema URI
and the correlation, distributed-tracing and delivery-count extensions) and on W3C Trace
Context (`traceparent`). The simulator keeps messages on the wire in the cheap
`protocols.transport.Message` slots dataclass; the pydantic `Envelope` is built only at
the boundaries (validation on receipt, export, tests):

    env = Envelope.from_message(msg, time=now)      # wire form -> envelope
    msg = env.to_message(dst="B", kind="request")   # envelope -> wire form
    Envelope.model_json_schema()                    # the JSON Schema of the envelope

Trace context ids are derived, not drawn: the trace id is a digest of a trace-id source
(the correlation id, usually) and each hop's parent id is a digest of the trace id and
the sending span's handle, so the same run gives the same ids in any process.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Annotated, Any, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from protocols.transport import Message

# -- W3C Trace Context ----------------------------------------------------------------

TRACEPARENT_FORMAT = "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>"
# The header grammar of every version; a version above 00 may append fields after a dash.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\Z")
TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$"
SAMPLED = "01"
_ZERO_TRACE = "0" * 32
_ZERO_PARENT = "0" * 16


class TraceParent(NamedTuple):
    """A parsed `traceparent` header."""

    version: str
    trace_id: str
    parent_id: str
    flags: str

    @property
    def sampled(self) -> bool:
        """Whether the sampled flag (bit 0) is set."""
        return bool(int(self.flags, 16) & 1)

    def __str__(self) -> str:
        return f"{self.version}-{self.trace_id}-{self.parent_id}-{self.flags}"


def _digest(text: str, size: int, person: bytes) -> str:
    """A keyed digest as lowercase hex, never all zeros (an all-zero id is invalid)."""
    hexed = hashlib.blake2b(text.encode(), digest_size=size, person=person).hexdigest()
    # Odds of 2^-64 at worst, but the spec makes a zero id invalid, so rule it out.
    return hexed if hexed.strip("0") else hexed[:-1] + "1"


def trace_id_for(source: str) -> str:
    """The 32-hex trace id derived from `source` (a correlation id, say)."""
    return _digest(source, 16, b"switchboard.tid")


def span_id_for(trace_id: str, span: int | str) -> str:
    """The 16-hex parent id of the span with handle `span` in the trace `trace_id`.

    It depends on the trace id too, so span handles reused across traces (or runs)
    still give distinct parent ids within one trace's context.
    """
    return _digest(f"{trace_id}/{span}", 8, b"switchboard.sid")


def new_traceparent(trace_id_source: str, span_id: int | str = "root", sampled: bool = True) -> str:
    """A new trace context: trace id from `trace_id_source`, parent id from `span_id`.

    `new_traceparent(c, s)` equals `child_traceparent(new_traceparent(c), s)`: the parent
    id of a hop depends only on its trace and its span, never on the path taken.
    """
    trace_id = trace_id_for(trace_id_source)
    flags = SAMPLED if sampled else "00"
    return f"00-{trace_id}-{span_id_for(trace_id, span_id)}-{flags}"


def child_traceparent(parent: str, span_id: int | str) -> str:
    """The context the next hop sends: the same trace id and flags, a new parent id.

    Raises ValueError when `parent` is not a valid traceparent.
    """
    ctx = parse_traceparent(parent)
    # A child always speaks version 00: the only version whose format we know.
    return f"00-{ctx.trace_id}-{span_id_for(ctx.trace_id, span_id)}-{ctx.flags}"


def parse_traceparent(value: str) -> TraceParent:
    """Parse and validate a traceparent; raises ValueError with one sentence saying why.

    Per the spec: lowercase hex only; version ff, an all-zero trace id and an all-zero
    parent id are invalid; version 00 has exactly four fields; a higher version may carry
    more fields after a dash, and only the first four are read.
    """
    if not isinstance(value, str):
        raise ValueError(f"a traceparent must be a string, not {type(value).__name__}")
    match = _TRACEPARENT.match(value)
    if match is None:
        raise ValueError(f"traceparent {value!r} is not of the form {TRACEPARENT_FORMAT}")
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff":
        raise ValueError("traceparent version ff is invalid")
    if version == "00" and rest is not None:
        raise ValueError("a version 00 traceparent has nothing after its flags")
    if trace_id == _ZERO_TRACE:
        raise ValueError("a traceparent with an all-zero trace id is invalid")
    if parent_id == _ZERO_PARENT:
        raise ValueError("a traceparent with an all-zero parent id is invalid")
    return TraceParent(version, trace_id, parent_id, flags)


def is_valid_traceparent(value: str) -> bool:
    """Whether `value` is a valid traceparent."""
    try:
        parse_traceparent(value)
    except ValueError:
        return False
    return True


def _check_traceparent(value: str) -> str:
    parse_traceparent(value)
    return value


def message_traceparent(msg: Message) -> str:
    """The traceparent of `msg`, derived from its correlation id and span when it has none."""
    if msg.traceparent:
        return msg.traceparent
    return new_traceparent(msg.correlation_id or msg.msg_id, msg.span if msg.span >= 0 else "root")


# -- validation errors as one sentence ------------------------------------------------


def describe_validation_error(error: ValidationError, what: str, root: str = "") -> str:
    """One sentence naming the first error's field path and what is wrong with it.

    `what` names the thing validated ("task.result v2"), `root` prefixes the path
    ("data"). Further errors are counted, not listed, to keep it to one sentence.
    """
    errors = error.errors()
    first = errors[0]
    path = root
    for part in first["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    msg = str(first["msg"]).removeprefix("Value error, ").rstrip(".")
    where = f" at {path}" if path else ""
    more = len(errors) - 1
    tail = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return f"{what} failed validation{where}: {msg}{tail}."


class EnvelopeError(ValueError):
    """An envelope that failed validation; the message is one sentence with the field path."""


# -- the envelope ---------------------------------------------------------------------

# Dotted names as CloudEvents recommends (task.run, org.sim.task.result); no spaces.
TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
SCHEMA_PREFIX = "urn:switchboard:schema:"


def schema_uri(type_: str, version: int) -> str:
    """The URI naming the schema of `type_` at `version` (CloudEvents `dataschema`)."""
    return f"{SCHEMA_PREFIX}{type_}:v{version}"


Traceparent = Annotated[
    str,
    AfterValidator(_check_traceparent),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": TRACEPARENT_PATTERN,
            "description": f"W3C Trace Context: {TRACEPARENT_FORMAT}; a new parent id per hop.",
        }
    ),
]


class Envelope(BaseModel):
    """One message as the world outside the simulator sees it: a CloudEvents-style event.

    Strict: unknown fields and wrongly typed values are errors. `schema` defaults to the
    URI of (`type`, `version`) and `idempotency_key` to `id`.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        # `schema` would shadow BaseModel.schema(): the attribute is `schema_uri`, the
        # JSON key `schema`.
        serialize_by_alias=True,
        title="Envelope",
    )

    id: str = Field(
        min_length=1,
        description="Producer-unique id; a re-send keeps it, a new logical message gets a new one.",
    )
    type: str = Field(pattern=TYPE_PATTERN, description="What the message is, e.g. task.result.")
    version: int = Field(ge=1, description="Version of the type's data schema.")
    schema_uri: str = Field(
        "",
        alias="schema",
        description="URI of the data schema; empty: derived from type and version.",
    )
    source: str = Field(min_length=1, description="The sending agent.")
    time: float = Field(ge=0, allow_inf_nan=False, description="Simulated seconds when sent.")
    correlation_id: str = Field("", description="The conversation or task it belongs to.")
    causation_id: str = Field("", description="Id of the message that caused this one.")
    traceparent: Traceparent
    deadline: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="Absolute simulated time; null: none."
    )
    idempotency_key: str = Field("", description="Dedupe key; empty: the id.")
    delivery_count: int = Field(1, ge=1, description="Set by the transport: 1 on first delivery.")
    data: Any = Field(None, description="The payload, valid against `schema`.")

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, raw: Any) -> Any:
        """Fill `schema` and `idempotency_key` when missing or empty (their documented defaults)."""
        if not isinstance(raw, dict):
            return raw
        filled = dict(raw)
        if not filled.get("idempotency_key") and isinstance(filled.get("id"), str):
            filled["idempotency_key"] = filled["id"]
        key = "schema_uri" if "schema_uri" in filled and "schema" not in filled else "schema"
        type_, version = filled.get("type"), filled.get("version")
        if not filled.get(key) and isinstance(type_, str) and isinstance(version, int):
            filled[key] = schema_uri(type_, version)
        return filled

    @property
    def size_bytes(self) -> int:
        """The size of the message on the wire: its JSON in UTF-8."""
        return len(self.model_dump_json().encode())

    @classmethod
    def from_message(cls, msg: Message, time: float) -> Envelope:
        """The envelope of a wire message sent at `time` (the wire form keeps no time).

        A message without a traceparent gets one derived from its correlation id and span,
        `delivery_count` is the message's `attempt`, and an infinite deadline is none.
        """
        return cls(
            id=msg.msg_id,
            type=msg.type,
            version=msg.version,
            source=msg.src,
            time=float(time),
            correlation_id=msg.correlation_id,
            causation_id=msg.causation_id,
            traceparent=message_traceparent(msg),
            deadline=msg.deadline if math.isfinite(msg.deadline) else None,
            idempotency_key=msg.idempotency_key,
            delivery_count=msg.attempt,
            data=msg.body,
        )

    def to_message(
        self,
        dst: str,
        kind: str = "request",
        protocol: str = "http",
        span: int = -1,
        size_bytes: int | None = None,
    ) -> Message:
        """The wire form of this envelope, addressed to `dst`; its size is the JSON size."""
        return Message(
            msg_id=self.id,
            type=self.type,
            src=self.source,
            dst=dst,
            kind=kind,
            protocol=protocol,
            version=self.version,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            span=span,
            attempt=self.delivery_count,
            size_bytes=self.size_bytes if size_bytes is None else size_bytes,
            body=self.data,
            traceparent=self.traceparent,
            deadline=math.inf if self.deadline is None else self.deadline,
            # The wire form leaves the default key empty, so a round trip is exact.
            idempotency_key="" if self.idempotency_key == self.id else self.idempotency_key,
        )

    def next_hop(
        self,
        id: str,
        source: str,
        time: float,
        span: int | str,
        type: str | None = None,
        version: int | None = None,
        data: Any = None,
    ) -> Envelope:
        """The message this one causes at the next hop (a reply, a forwarded task).

        The correlation id, the trace id and the deadline travel on; the causation id
        is this message's id; the parent id is that of the sending `span`.
        """
        return Envelope(
            id=id,
            type=self.type if type is None else type,
            version=self.version if version is None else version,
            source=source,
            time=float(time),
            correlation_id=self.correlation_id,
            causation_id=self.id,
            traceparent=child_traceparent(self.traceparent, span),
            deadline=self.deadline,
            data=data,
        )


def parse_envelope(raw: str | bytes | dict[str, Any]) -> Envelope:
    """An envelope from JSON text or a dict; raises EnvelopeError with one sentence."""
    try:
        if isinstance(raw, dict):
            return Envelope.model_validate(raw)
        return Envelope.model_validate_json(raw)
    except ValidationError as error:
        raise EnvelopeError(describe_validation_error(error, "the envelope")) from None


# -- sizes ----------------------------------------------------------------------------


def _fixed_json_bytes() -> int:
    """Bytes of an envelope's JSON that do not depend on its values: keys and punctuation."""
    fields = Envelope.model_fields
    keys = [info.alias or name for name, info in fields.items()]
    quoted = sum(1 for info in fields.values() if info.annotation is str)
    # '{' '}' + '"key":' per field + the commas between fields + quotes of string values.
    return 2 + sum(len(key) + 3 for key in keys) + len(keys) - 1 + 2 * quoted


_FIXED_BYTES = _fixed_json_bytes()
_TRACEPARENT_BYTES = 55  # version 00: 2 + 1 + 32 + 1 + 16 + 1 + 2


def _str_bytes(text: str) -> int:
    """JSON size of a string, quotes and escapes included."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return len(text) + 2
    return len(json.dumps(text, ensure_ascii=False).encode())


def _float_bytes(value: float) -> int:
    # Python's repr matches pydantic's JSON but for exponents below -4 (1e-05 vs 0.00001).
    return len(repr(float(value))) if math.isfinite(value) else 4


def json_size(value: Any) -> int:
    """The JSON size in bytes of a plain value (dicts, lists, strings, numbers, models).

    Exact for JSON-like data but for floats below 1e-4 in magnitude, which pydantic
    writes without an exponent; an object of another kind counts as its string form.
    """
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    if isinstance(value, str):
        return _str_bytes(value)
    if isinstance(value, int):
        return len(str(int(value)))
    if isinstance(value, float):
        return _float_bytes(value)
    if isinstance(value, dict):
        items = value.items()
        return 1 + sum(_str_bytes(str(k)) + 2 + json_size(v) for k, v in items) if items else 2
    if isinstance(value, list | tuple):
        return 1 + sum(json_size(v) + 1 for v in value) if value else 2
    if isinstance(value, BaseModel):
        return len(value.model_dump_json().encode())
    return _str_bytes(str(value))


def estimate_size_bytes(msg: Message, time: float = 0.0) -> int:
    """The JSON size of `msg`'s envelope, computed without building the envelope.

    For the hot path: it adds up lengths instead of serialising, and equals
    `Envelope.from_message(msg, time).size_bytes` whenever ids are printable ASCII and
    no float is below 1e-4 in magnitude.
    """
    type_, version = msg.type, str(msg.version)
    return (
        _FIXED_BYTES
        + len(msg.msg_id)
        + len(type_)
        + len(version)
        # schema: SCHEMA_PREFIX + type + ":v" + version
        + len(SCHEMA_PREFIX)
        + len(type_)
        + 2
        + len(version)
        + len(msg.src)
        + _float_bytes(time)
        + len(msg.correlation_id)
        + len(msg.causation_id)
        + (len(msg.traceparent) if msg.traceparent else _TRACEPARENT_BYTES)
        + _float_bytes(msg.deadline)
        + len(msg.idempotency_key or msg.msg_id)
        + len(str(msg.attempt))
        + json_size(msg.body)
    )
