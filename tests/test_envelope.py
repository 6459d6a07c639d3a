"""The envelope: its JSON Schema, trace context, the schema registry, versions and sizes."""

from __future__ import annotations

import json
import math
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import simpy
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from protocols.envelope import (
    TYPE_PATTERN,
    Envelope,
    EnvelopeError,
    child_traceparent,
    estimate_size_bytes,
    is_valid_traceparent,
    json_size,
    new_traceparent,
    parse_envelope,
    parse_traceparent,
    schema_uri,
)
from protocols.schemas import (
    DEFAULT_CONFIDENCE,
    EXAMPLES,
    TASK_RESULT,
    Accepted,
    Progress,
    Rejected,
    SchemaRegistry,
    TaskResultV1,
    TaskResultV2,
    default_registry,
)
from protocols.transport import Message, PerfectTransport

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # the spec's example


def good_envelope(**changes: Any) -> dict[str, Any]:
    """A valid envelope as JSON-ready data."""
    raw = {
        "id": "m1",
        "type": "task.result",
        "version": 2,
        "source": "worker-1",
        "time": 12.5,
        "correlation_id": "c-1",
        "causation_id": "m0",
        "traceparent": TP,
        "deadline": 30.0,
        "delivery_count": 1,
        "data": EXAMPLES[(TASK_RESULT, 2)],
    }
    raw.update(changes)
    return raw


# -- the envelope and its JSON Schema -------------------------------------------------


def test_the_json_schema_exports_and_validates_a_good_envelope():
    schema = Envelope.model_json_schema()
    json.dumps(schema)  # exportable as it is
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert {"id", "type", "version", "source", "time", "traceparent"} <= set(schema["required"])
    assert "schema" in schema["properties"]  # the JSON key, not the attribute name
    env = Envelope.model_validate(good_envelope())
    dumped = json.loads(env.model_dump_json())
    jsonschema.validate(dumped, schema)
    assert Envelope.model_validate_json(env.model_dump_json()) == env


def test_defaults_fill_the_schema_uri_and_the_idempotency_key():
    env = Envelope.model_validate(good_envelope())
    assert env.schema_uri == schema_uri("task.result", 2) == "urn:switchboard:schema:task.result:v2"
    assert env.idempotency_key == "m1"
    assert json.loads(env.model_dump_json())["schema"] == env.schema_uri
    kept = Envelope.model_validate(good_envelope(schema="https://x/s/2", idempotency_key="k"))
    assert (kept.schema_uri, kept.idempotency_key) == ("https://x/s/2", "k")


@pytest.mark.parametrize(
    "changes, path",
    [
        ({"colour": "red"}, "colour"),
        ({"traceparent": "00-" + "0" * 32 + "-b7ad6b7169203331-01"}, "traceparent"),
        ({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-" + "0" * 16 + "-01"}, "traceparent"),
        ({"traceparent": "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, "traceparent"),
        ({"traceparent": TP.upper()}, "traceparent"),
        ({"traceparent": TP[:-1]}, "traceparent"),
        ({"traceparent": TP + "-extra"}, "traceparent"),
        ({"version": "2"}, "version"),
        ({"time": -1.0}, "time"),
        ({"id": ""}, "id"),
        ({"delivery_count": 0}, "delivery_count"),
    ],
)
def test_an_envelope_with_an_unknown_field_or_a_bad_value_is_refused(changes, path):
    raw = good_envelope(**changes)
    with pytest.raises(ValidationError):
        Envelope.model_validate(raw)
    with pytest.raises(EnvelopeError) as refused:
        parse_envelope(json.dumps(raw))
    reason = str(refused.value)
    assert reason.startswith(f"the envelope failed validation at {path}: ")
    assert reason.endswith(".") and "\n" not in reason


@pytest.mark.parametrize("bad", ["colour", "traceparent", "version"])
def test_the_json_schema_refuses_what_the_model_refuses(bad):
    raw = {
        "colour": good_envelope(colour="red"),
        "traceparent": good_envelope(traceparent="not-a-traceparent"),
        "version": good_envelope(version="2"),
    }[bad]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(raw, Envelope.model_json_schema())


# -- trace context --------------------------------------------------------------------


def test_a_child_keeps_the_trace_id_and_changes_the_parent_id():
    root = new_traceparent("c-1")
    child = child_traceparent(root, 7)
    grandchild = child_traceparent(child, 8)
    ids = [parse_traceparent(tp) for tp in (root, child, grandchild)]
    assert len({ctx.trace_id for ctx in ids}) == 1
    assert len({ctx.parent_id for ctx in ids}) == 3
    assert all(ctx.version == "00" and ctx.sampled for ctx in ids)
    # The parent id names the span, whatever path led there.
    assert child == new_traceparent("c-1", 7)
    unsampled = new_traceparent("c-1", sampled=False)
    assert child_traceparent(unsampled, 7).endswith("-00")


def test_trace_ids_are_deterministic_for_the_same_inputs():
    assert new_traceparent("c-1", 3) == new_traceparent("c-1", 3)
    assert new_traceparent("c-1", 3) != new_traceparent("c-1", 4)
    assert new_traceparent("c-1").split("-")[1] != new_traceparent("c-2").split("-")[1]
    # And in another process, whatever its string-hash seed.
    code = "from protocols.envelope import new_traceparent; print(new_traceparent('c-1', 3))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == new_traceparent("c-1", 3)


def test_traceparent_validation_follows_the_spec():
    assert parse_traceparent(TP).trace_id == "0af7651916cd43dd8448eb211c80319c"
    # A future version may carry more fields: the first four are read.
    assert is_valid_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-more")
    for bad in [
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-more",
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
        "",
    ]:
        assert not is_valid_traceparent(bad), bad
    with pytest.raises(ValueError, match="is not of the form"):
        child_traceparent("nonsense", 1)


spans = st.integers(min_value=0, max_value=2**63) | st.text(max_size=20)


@given(source=st.text(max_size=40), span=spans, hop=spans, sampled=st.booleans())
def test_every_generated_traceparent_parses(source, span, hop, sampled):
    root = new_traceparent(source, span, sampled=sampled)
    child = child_traceparent(root, hop)
    for tp in (root, child):
        ctx = parse_traceparent(tp)
        assert ctx.sampled is sampled
        assert str(ctx) == tp
    assert parse_traceparent(child).trace_id == parse_traceparent(root).trace_id


@given(st.text(max_size=70))
def test_parsing_any_text_either_succeeds_or_says_why(text):
    try:
        parse_traceparent(text)
    except ValueError as error:
        assert str(error)


def test_the_next_hop_carries_correlation_trace_and_deadline():
    first = Envelope.model_validate(good_envelope())
    reply = first.next_hop(id="m2", source="planner", time=13.0, span=4, data={"ok": True})
    assert (reply.correlation_id, reply.causation_id, reply.deadline) == ("c-1", "m1", 30.0)
    assert reply.idempotency_key == "m2" and reply.delivery_count == 1
    before, after = parse_traceparent(first.traceparent), parse_traceparent(reply.traceparent)
    assert after.trace_id == before.trace_id and after.parent_id != before.parent_id


# -- the wire form --------------------------------------------------------------------

ids = st.text(alphabet=string.ascii_letters + string.digits + "-_.:", min_size=1, max_size=16)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(min_value=1e-3, max_value=1e12)
    | st.text(max_size=20)
)
json_data = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def messages(draw) -> Message:
    """Wire messages with every envelope field set or left at its default."""
    msg_id = draw(ids)
    return Message(
        msg_id=msg_id,
        type=draw(st.from_regex(TYPE_PATTERN, fullmatch=True).filter(lambda t: t.isascii())),
        src=draw(ids),
        dst=draw(ids),
        kind=draw(st.sampled_from(["request", "response", "publish", "event"])),
        protocol=draw(st.sampled_from(["http", "queue", "sse", "websocket"])),
        version=draw(st.integers(min_value=1, max_value=12)),
        correlation_id=draw(st.just("") | ids),
        causation_id=draw(st.just("") | ids),
        span=draw(st.integers(min_value=-1, max_value=10**6)),
        attempt=draw(st.integers(min_value=1, max_value=30)),
        body=draw(json_data),
        traceparent=draw(st.just("") | ids.map(new_traceparent)),
        deadline=draw(st.just(math.inf) | st.floats(min_value=0.01, max_value=1e6)),
        idempotency_key=draw(st.just("") | ids.filter(lambda k: k != msg_id)),
    )


@given(msg=messages(), time=st.floats(min_value=0.001, max_value=1e6))
def test_a_message_goes_to_an_envelope_and_back_unchanged(msg, time):
    env = Envelope.from_message(msg, time)
    assert env.delivery_count == msg.attempt and env.time == time
    assert is_valid_traceparent(env.traceparent)
    if msg.traceparent:
        assert env.traceparent == msg.traceparent
    if not msg.idempotency_key:
        assert env.idempotency_key == msg.msg_id
    if msg.traceparent:  # a missing traceparent is filled in: the one change allowed
        back = env.to_message(msg.dst, msg.kind, msg.protocol, msg.span, msg.size_bytes)
        assert back == msg


@given(msg=messages(), time=st.floats(min_value=0.001, max_value=1e6))
def test_the_fast_estimate_is_the_json_size(msg, time):
    env = Envelope.from_message(msg, time)
    assert env.size_bytes == len(env.model_dump_json().encode())
    assert estimate_size_bytes(msg, time) == env.size_bytes


def test_size_bytes_is_the_json_size_of_every_built_in_example():
    registry = default_registry()
    for (type_, version), data in EXAMPLES.items():
        model = registry.model(type_, version).model_validate(data)
        for body in (data, model):  # a plain dict or a validated model on the wire
            msg = Message(msg_id="m9", type=type_, src="a", dst="b", version=version, body=body)
            env = Envelope.from_message(msg, 1.5)
            assert env.size_bytes == len(env.model_dump_json().encode())
            assert estimate_size_bytes(msg, 1.5) == env.size_bytes
            assert env.to_message("b").size_bytes == env.size_bytes
    assert json_size({"é": ['"quoted"\n', None, True, 1.5]}) == len(
        json.dumps(
            {"é": ['"quoted"\n', None, True, 1.5]}, ensure_ascii=False, separators=(",", ":")
        ).encode()
    )


# -- validation and versions ----------------------------------------------------------


def test_every_built_in_schema_exports_and_accepts_its_example():
    registry = default_registry()
    assert registry.types() == [
        "agent.card",
        "negotiation.bid",
        "progress",
        "task.result",
        "task.run",
    ]
    for (type_, version), data in EXAMPLES.items():
        schema = registry.json_schema(type_, version)
        assert schema["$id"] == schema_uri(type_, version)
        jsonschema.validate(data, schema)
        verdict = registry.accept(type_, version, data)
        assert isinstance(verdict, Accepted) and verdict and not verdict.converted
    card = registry.accept("agent.card", 1, EXAMPLES[("agent.card", 1)])
    assert isinstance(card, Accepted)
    dumped = json.loads(card.data.model_dump_json())
    assert dumped["capabilities"] == {"streaming": True, "pushNotifications": False}
    assert "defaultInputModes" in dumped


@pytest.mark.parametrize(
    "data, path, what",
    [
        (
            {**EXAMPLES[(TASK_RESULT, 2)], "confidence": 1.5},
            "data.confidence",
            "less than or equal to 1",
        ),
        ({"state": "completed", "confidence": 0.5}, "data.task_id", "Field required"),
        (
            {**EXAMPLES[(TASK_RESULT, 2)], "parts": [{"text": 3}]},
            "data.parts[0].text",
            "valid string",
        ),
        (
            {**EXAMPLES[(TASK_RESULT, 2)], "parts": [{}]},
            "data.parts[0]",
            "exactly one of text or data",
        ),
        (
            {**EXAMPLES[(TASK_RESULT, 2)], "score": 3},
            "data.score",
            "Extra inputs are not permitted",
        ),
        ("a text", "data", "valid dictionary"),
    ],
)
def test_invalid_data_is_rejected_with_its_reason(data, path, what):
    verdict = default_registry().accept(TASK_RESULT, 2, data, reads=[2])
    assert isinstance(verdict, Rejected) and not verdict
    assert verdict.reason.startswith(f"task.result v2 failed validation at {path}: ")
    assert what in verdict.reason
    assert verdict.reason.endswith(".") and "\n" not in verdict.reason


def test_several_errors_are_counted_in_the_one_sentence():
    verdict = default_registry().accept(TASK_RESULT, 1, {"status": "lost"})
    assert isinstance(verdict, Rejected)
    assert verdict.reason == (
        "task.result v1 failed validation at data.task_id: Field required (and 1 more error)."
    )


def test_a_v2_result_read_by_a_v1_reader_is_converted_lossily():
    verdict = default_registry().accept(TASK_RESULT, 2, EXAMPLES[(TASK_RESULT, 2)], reads=[1])
    assert isinstance(verdict, Accepted)
    assert verdict.data == TaskResultV1(
        task_id="t-1", status="completed", output="A short summary."
    )
    assert (verdict.version, verdict.path, verdict.lossy, verdict.converted) == (
        1,
        (2, 1),
        True,
        True,
    )


def test_a_v1_result_read_by_a_v2_reader_is_converted_with_the_default():
    verdict = default_registry().accept(TASK_RESULT, 1, EXAMPLES[(TASK_RESULT, 1)], reads={2})
    assert isinstance(verdict, Accepted)
    assert isinstance(verdict.data, TaskResultV2)
    assert verdict.data.state == "completed" and verdict.data.confidence == DEFAULT_CONFIDENCE
    assert [p.text for p in verdict.data.parts] == ["A short summary."]
    assert (verdict.version, verdict.lossy) == (2, False)


def test_a_reader_of_both_versions_takes_either_as_it_is():
    registry = default_registry()
    for version in (1, 2):
        verdict = registry.accept(TASK_RESULT, version, EXAMPLES[(TASK_RESULT, version)], [2, 1])
        assert isinstance(verdict, Accepted) and verdict.path == (version,)


def test_a_version_with_no_converter_path_is_rejected_with_a_reason():
    registry = default_registry()
    registry.register("progress", 2, Progress)  # a new version, shipped without converters
    verdict = registry.accept("progress", 2, EXAMPLES[("progress", 1)], reads=[1])
    assert verdict == Rejected(
        "progress v2 cannot be read by an agent that reads v1: no converter from v2 to v1."
    )
    assert registry.accept("progress", 3, {}, [1]) == Rejected(
        "progress v3 cannot be read: it is not a known version (v1, v2)."
    )
    assert registry.accept("task.unknown", 1, {}, [1]) == Rejected(
        "task.unknown v1 cannot be read: no schema is registered for task.unknown."
    )
    assert registry.accept("progress", 1, EXAMPLES[("progress", 1)], []) == Rejected(
        "progress v1 cannot be read by an agent that reads no version of progress."
    )


class Count(BaseModel):
    n: int


def test_conversions_chain_take_the_shortest_path_and_report_failures():
    registry = SchemaRegistry()
    for version in (1, 2, 3):
        registry.register("count", version, Count)
    registry.add_converter("count", 1, 2, lambda c: {"n": c.n + 10})
    registry.add_converter("count", 2, 3, lambda c: {"n": c.n + 100})
    registry.add_converter("count", 3, 1, lambda c: {"n": -1})
    chained = registry.accept("count", 1, {"n": 0}, reads=[3])
    assert isinstance(chained, Accepted) and chained.data == Count(n=110)
    assert chained.path == (1, 2, 3)
    # A reader of 2 and 3 gets the nearer one; the order it lists them in does not matter.
    for reads in ([2, 3], [3, 2], {3, 2}):
        assert registry.accept("count", 1, {"n": 0}, reads).path == (1, 2)

    registry.add_converter("count", 2, 1, lambda c: {"n": "many"})
    broken = registry.accept("count", 2, {"n": 5}, reads=[1])
    assert isinstance(broken, Rejected)
    assert broken.reason.startswith(
        "count v2 could not be converted to v1: the converted count v1 failed validation at data.n"
    )
    with pytest.raises(ValueError, match="not registered"):
        registry.add_converter("count", 1, 9, lambda c: c)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("count", 1, Count)


def test_v1_and_v2_agents_coexist_over_a_network():
    """A rolling upgrade: v1 and v2 workers send results to a v1 and a v2 collector."""
    env = simpy.Environment()
    net = PerfectTransport(env, latency=0.01)
    registry = default_registry()
    reads = {"old": [1], "new": [2]}
    got: dict[str, list[Any]] = {"old": [], "new": []}
    rejected: list[str] = []

    def receiver(agent: str):
        def receive(msg: Message) -> None:
            verdict = registry.accept_message(msg, reads[agent])
            if verdict:
                got[agent].append((msg.src, verdict.data))
            else:
                rejected.append(verdict.reason)

        return receive

    for agent in ("old", "new"):
        net.attach(agent, receiver(agent))
    workers = {"w1": 1, "w2": 2}  # w2 was upgraded, w1 not yet
    for src, version in workers.items():
        for dst in ("old", "new"):
            first = Envelope(
                id=f"{src}-{dst}",
                type=TASK_RESULT,
                version=version,
                source=src,
                time=0.0,
                correlation_id="job-1",
                traceparent=new_traceparent("job-1", src),
                data=EXAMPLES[(TASK_RESULT, version)],
            )
            net.send(first.to_message(dst, kind="publish", protocol="queue"))
    bad = Message(msg_id="x", type=TASK_RESULT, src="w2", dst="old", version=2, body={"state": "?"})
    net.send(bad)
    env.run()
    assert [(src, type(data)) for src, data in got["old"]] == [
        ("w1", TaskResultV1),
        ("w2", TaskResultV1),
    ]
    assert [(src, type(data)) for src, data in got["new"]] == [
        ("w1", TaskResultV2),
        ("w2", TaskResultV2),
    ]
    assert rejected == [
        "task.result v2 failed validation at data.task_id: Field required (and 2 more errors)."
    ]
