"""A trace spilled to Parquet as the run goes (`sim.run(spill=DIR)`, `--spill DIR`).

The spilled run is the in-memory run, written differently: the same digests on every
table, the same summary, the same files `sim.load` reads. Spills here come every few
dozen messages (`SPILL_ROWS` is patched down) so that rows change after they went to
disk: copies delivered, spans ended and dead letters marked in an earlier part.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

import sim
from bench.kernel import pairs_scenario
from sim import cli
from sim.trace import Run, run_digests, spill, streamed
from sim.trace.lazy import LazyRun
from sim.trace.recorder import Recorder
from sim.trace.spill import SpillingRecorder
from sim.world import World
from tests.test_recorder import POISON_UNDER_DUPLICATION, message

# Scenarios that between them use every table and sparse column: dead letters marked on
# copies long spilled (poison), model calls' tokens and ttft (llm), tasks (a2a),
# network duplicates and crashes.
SCENARIOS = [
    "basic",
    "collaboration-poison",
    "llm-pipeline",
    "a2a-long-task",
    "fault-duplicate",
    "fault-crash",
]


@pytest.fixture(autouse=True)
def small_spills(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spill, "SPILL_ROWS", 37)


@pytest.mark.parametrize("name", SCENARIOS)
def test_spilled_run_has_the_in_memory_runs_digests_and_summary(name: str, tmp_path: Path) -> None:
    memory = sim.run(name)
    spilled = sim.run(name, spill=tmp_path)
    assert isinstance(spilled, LazyRun)
    assert run_digests(spilled) == run_digests(memory)
    assert spilled.summary() == memory.summary()


def test_summary_reads_no_whole_table_of_messages_or_spans(tmp_path: Path) -> None:
    run = sim.run("collaboration-poison", spill=tmp_path)
    assert isinstance(run, LazyRun)
    summary = run.summary()
    assert summary["dead_lettered"] == 3
    assert not {"messages", "spans"} & set(run.tables.loaded())
    # The common queries: counts and narrow scans straight from the files.
    assert run.count("messages") == summary["messages"]
    dead = run.scan("messages", ["msg_id", "outcome"], pc.field("outcome") == "dead_lettered")
    assert list(dead["outcome"]) == ["dead_lettered"] * 3
    assert not {"messages", "spans"} & set(run.tables.loaded())
    # Asked for the whole table, it loads it, equal to the in-memory one.
    assert run.messages.equals(sim.run("collaboration-poison").messages)


def test_trace_is_on_disk_while_the_run_goes(tmp_path: Path) -> None:
    parts: list[int] = []
    raw = tmp_path / spill.RAW
    sim.run("basic", spill=tmp_path, progress=lambda _: parts.append(len(list(raw.glob("*")))))
    assert parts[len(parts) // 2] > 0  # raw parts were written halfway through
    assert not raw.exists()  # and joined into the run's files at the end
    assert pq.ParquetFile(tmp_path / "messages.parquet").num_row_groups > 10


def test_spilled_directory_is_a_saved_run(tmp_path: Path) -> None:
    spilled = sim.run("fault-duplicate", spill=tmp_path / "spill")
    loaded = sim.load(tmp_path / "spill")
    assert run_digests(loaded) == run_digests(spilled)
    assert loaded.manifest["summary"] == spilled.summary()
    copied = spilled.save(tmp_path / "copy")
    assert run_digests(sim.load(copied)) == run_digests(spilled)


def test_switch_forces_the_in_memory_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_TRACE", "memory")
    run = sim.run("basic", spill=tmp_path)
    assert not isinstance(run, LazyRun)
    assert run_digests(sim.load(tmp_path)) == run_digests(run)


def test_cli_spill_saves_the_run_where_it_spilled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "basic", "--spill", str(tmp_path / "big")]) == 0
    out = capsys.readouterr().out
    assert f"saved to {tmp_path / 'big'}" in out
    assert run_digests(sim.load(tmp_path / "big")) == run_digests(sim.run("basic"))


def replay(rec: Recorder) -> None:
    """Dead letters asked for when every copy of the message is already on disk."""
    a1 = rec.message_sent(message("m1", attempt=1), 0.0)
    a2 = rec.message_sent(message("m1", attempt=2), 1.0)
    b1 = rec.message_sent(message("m1", attempt=1), 1.5)
    original = rec.message_sent(message("m2"), 1.5)
    copy = rec.message_sent(message("m2", duplicate=True), 1.5)
    for seq in (a1, a2, b1, copy, original):
        rec.message_delivered(seq, 1.6)
    rec.message_sent(message("m3"), 1.7)  # spilled again after the deliveries
    assert rec.mark_last("m1", "dead_lettered", 2.0, "a", attempt=2)
    assert rec.mark_last("m1", "dead_lettered", 3.0, "b", attempt=1)
    assert rec.mark_last("m2", "dead_lettered", 3.0, "x", attempt=1)
    assert rec.mark_last("m2", "dead_lettered", 3.0, "y", attempt=1)
    assert not rec.mark_last("m2", "dead_lettered", 3.0, "z", attempt=1)


def test_dead_letters_land_on_the_right_copy_once_it_is_on_disk(tmp_path: Path) -> None:
    memory = Recorder()
    replay(memory)
    spilling = SpillingRecorder(tmp_path, rows=1)
    replay(spilling)
    assert spilling._parts  # every copy went to disk before its dead letter
    run = spilling.finish({"name": "replay", "duration": 4.0})
    assert run.messages.equals(memory.tables()["messages"])
    assert run.messages["outcome"].tolist() == [
        "delivered", "dead_lettered", "dead_lettered", "dead_lettered", "dead_lettered",
        "in_flight",
    ]  # fmt: skip


def test_poison_under_duplication_spilled_every_few_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spill, "SPILL_ROWS", 200)
    memory = sim.run(POISON_UNDER_DUPLICATION)
    spilled = sim.run(POISON_UNDER_DUPLICATION, spill=tmp_path)
    assert memory.summary()["dead_lettered"] > 0
    assert run_digests(spilled) == run_digests(memory)


def test_processes_closed_after_the_run_end_nothing(tmp_path: Path) -> None:
    # The collaboration's workers are left inside spans when the run ends; collecting
    # them ends those spans after the spilled columns were released.
    raised: list[BaseException | None] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: raised.append(unraisable.exc_value)
    try:
        run = sim.run("collaboration", spill=tmp_path)
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert raised == []
    assert run_digests(run) == run_digests(sim.run("collaboration"))


def queue_held() -> dict[str, Any]:
    """`basic` over a queue whose consumer is too slow: requests still held at the end."""
    data = yaml.safe_load((Path(sim.__file__).parent.parent / "scenarios/basic.yaml").read_text())
    data["agents"].append({"id": "broker", "role": "broker"})
    data["agents"][1]["service_time"] = {"dist": "lognormal", "mean": 0.5, "p99": 2.0}
    data["channels"] = [
        {"from": "client", "to": "api", "protocol": "queue", "queue": {"broker": "broker"}}
    ]
    data["duration"] = 20
    return data


def test_summary_of_requests_a_broker_holds(tmp_path: Path) -> None:
    memory = sim.run(queue_held())
    assert memory.summary()["held"] > 100  # the second look at unserved requests is used
    spilled = sim.run(queue_held(), spill=tmp_path)
    assert spilled.summary() == memory.summary()


def test_summary_of_a_run_whose_span_ids_are_not_hex(tmp_path: Path) -> None:
    # An imported trace's ids may be anything: they are numbered through a dict.
    tables = dict(sim.run("fault-duplicate").tables)
    spans = tables["spans"].copy()
    rename = {old: f"span-{i}" for i, old in enumerate(spans["span_id"])} | {"": ""}
    spans["span_id"] = spans["span_id"].map(rename)
    spans["parent_id"] = spans["parent_id"].map(rename)
    tables["spans"] = spans
    run = Run(tables, {"name": "renamed", "duration": 60.0})
    run.save(tmp_path)
    assert LazyRun.open(tmp_path).summary() == run.summary()
    assert run.summary()["redone"] > 0


_POOLS: list[pa.MemoryPool] = []


def test_summary_memory_is_a_few_dozen_bytes_a_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python objects and numpy arrays (tracemalloc) and Arrow buffers (a pool of its own)
    # at their peak while the summary is computed, batches of 2,048 rows: what is kept
    # per request, not the tables.
    monkeypatch.setattr(streamed, "BATCH_ROWS", 2048)
    World(pairs_scenario(50, 10.0, 40.0), spill=tmp_path).run()
    run = LazyRun.open(tmp_path)
    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    _POOLS.append(pool)  # alive as long as any buffer it gave is
    before = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        summary = run.summary()
        traced = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(before)
    assert summary["requests"] > 15000
    assert (traced + pool.max_memory()) / summary["requests"] < 200


def held_bytes(recorder: Recorder) -> int:
    """What the recorder's message and span columns hold in memory (their containers:
    lists of interned strings and small ints point at shared objects)."""
    return sum(
        sys.getsizeof(value)
        for name, value in vars(recorder).items()
        if name.startswith(("_m_", "_s_"))
    )


def test_spilled_recorder_keeps_a_few_dozen_bytes_a_row(tmp_path: Path) -> None:
    world = World(pairs_scenario(50, 10.0, 70.0), spill=tmp_path)
    recorder = world.recorder
    seen = []
    for until in (35.0, 70.0):
        world.env.run(until=until)
        seen.append((recorder.message_count + len(recorder._s_outcome), held_bytes(recorder)))
    (rows, held), (more_rows, more_held) = seen
    assert more_rows - rows > 50000
    # What each message or span added: only the columns that may still change (a copy's
    # delivery and end times, outcome, attempt and duplicate flag; a span's end, wait,
    # outcome, attempts, error and status) in machine numbers and pointers, about 35
    # bytes a row with the containers' spare room (51 as lists).
    assert (more_held - held) / (more_rows - rows) < 42
