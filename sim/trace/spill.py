"""Spilling a run's trace to Parquet while it goes on, so the trace never sits in memory.

`SpillingRecorder` is the `Recorder` with a sink: every `rows` messages it hands the
rows recorded since the last spill to Parquet files, and forgets them. What it hands
over is what never changes once recorded; what may still change stays in memory:

- A message's `delivered_at`, `ended_at`, `outcome` and `reason`, and a span's `end`,
  `wait`, `outcome`, `attempts`, `error`, `status` and its sparse columns, may change
  long after the row was written: an in-flight copy ends when it lands, a delivered copy
  can still get a receiver's verdict (`mark_last`, a dead letter, minutes later), an
  open span ends whenever its call does (a WebSocket connection at the run's end). No
  row is ever known to be final, so "flush a row once it is final" cannot bound memory.
  These columns stay in the recorder's own arrays, indexed by seq as always (24 bytes a
  message, about 56 a span): the hot path is the plain recorder's, unchanged.
- Everything else (ids, types, agents, correlation and causation ids, span ids, sizes,
  attempts: about nine tenths of a row's bytes) is written to a raw part file per spill
  and dropped from memory. Effects and queue samples never change: they go straight to
  their final files.

At the end `finish` joins each raw part with its slice of the in-memory columns, one part
at a time, into the run's `messages.parquet` and `spans.parquet` (one row group per
part), writes the small tables and `run.json`, and deletes the raw parts. The directory
is then an ordinary saved run (`sim.load` reads it), and the `LazyRun` it returns reads
it lazily. Rejoining at the end rather than applying an updates log on every read keeps
the files' values final, so a reader can filter on an outcome with Parquet's own
statistics, and nothing downstream has to know the run was spilled.

Row order, ids and dtypes are the in-memory recorder's, so a spilled run's digests equal
the in-memory run's (tests/test_spill.py).
"""

from __future__ import annotations

import json
import shutil
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from protocols.transport import Message
from sim.trace.lazy import LazyRun
from sim.trace.recorder import NAN, Recorder, _ended, _span_ids
from sim.trace.run import _json_default
from sim.trace.schema import (
    AGENT_COLUMNS,
    BREAKER_COLUMNS,
    EFFECT_COLUMNS,
    FAULT_COLUMNS,
    MESSAGE_COLUMNS,
    QUEUE_COLUMNS,
    SPAN_COLUMNS,
    conform,
)

# Messages between two spills: a part of about 16 MB of strings.
SPILL_ROWS = 65536
RAW = ".spill"
_STRING = pa.large_string()


class SpillingRecorder(Recorder):
    """A `Recorder` that writes its finished columns to Parquet under `directory`."""

    def __init__(self, directory: str | Path, rows: int | None = None) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.raw = self.directory / RAW
        if self.raw.exists():
            shutil.rmtree(self.raw)
        self.raw.mkdir(parents=True)
        self._rows = max(1, SPILL_ROWS if rows is None else rows)
        self._next_spill = self._rows
        # Rows already on disk (messages, spans) and the raw parts holding them.
        self._m_base = 0
        self._s_base = 0
        self._parts: list[tuple[int, int, int, int]] = []
        self._writers: dict[str, pq.ParquetWriter] = {}
        # The small numbers that stay in memory, in machine ints rather than a list's
        # 8-byte pointers: 4 bytes an attempt count or status, 1 a duplicate flag. Only
        # `mark_last` reads a copy's attempt and flag back (`Recorder._last_delivered`).
        self._m_attempt = array("i")
        self._m_dup = array("b")
        self._s_attempts = array("i")
        self._s_status = array("i")

    # -- the one hot-path addition: count messages to the next spill -------------------

    def message_sent(self, msg: Message, now: float) -> int:
        """Record a copy put on the wire (see `Recorder.message_sent`); spills every
        `rows` copies."""
        seq = super().message_sent(msg, now)
        if seq >= self._next_spill:
            self._next_spill = seq + self._rows
            self.spill()
        return seq

    # -- spilling ---------------------------------------------------------------------

    def spill(self) -> None:
        """Write the unchanging columns of the rows recorded since the last spill."""
        self._flush_messages()
        self._freeze()
        m_end = len(self._m_outcome)
        s_end = len(self._s_outcome)  # every span's fixed fields are flushed by now
        part = len(self._parts)
        if m_end > self._m_base or s_end > self._s_base:
            pq.write_table(self._message_part(m_end), self.raw / f"messages-{part:06d}.parquet")
            pq.write_table(self._span_part(s_end), self.raw / f"spans-{part:06d}.parquet")
            self._parts.append((self._m_base, m_end, self._s_base, s_end))
            self._m_base, self._s_base = m_end, s_end
        self._spill_effects()
        self._spill_queues()

    def _take(self, name: str) -> pa.ChunkedArray:
        """The frozen chunks of string column `name`, handed over and forgotten."""
        chunks = self._chunks[name]
        taken = pa.chunked_array(chunks, type=_STRING)
        chunks.clear()
        return taken

    def _message_part(self, end: int) -> pa.Table:
        columns: dict[str, Any] = {
            "seq": pa.array(np.arange(self._m_base, end, dtype=np.int64)),
            "msg_id": self._take("_m_id"),
            "type": self._take("_m_type"),
            "version": _ints(self._m_version),
            "protocol": self._take("_m_protocol"),
            "kind": self._take("_m_kind"),
            "src": self._take("_m_src"),
            "dst": self._take("_m_dst"),
            "correlation_id": self._take("_m_corr"),
            "causation_id": self._take("_m_cause"),
            "span_id": hex_ids(np.frombuffer(self._m_span, dtype=np.int64)),
            "attempt": _machine_ints(self._m_attempt, self._m_base, end),
            "sent_at": _doubles(self._m_sent),
            "size_bytes": _ints(self._m_size),
            "duplicate": pc.cast(
                _machine_ints(self._m_dup, self._m_base, end, np.int8), pa.bool_()
            ),
        }
        # A copy's attempt and duplicate flag stay in memory too (a few bytes a row): a
        # dead letter's search for its copy (`Recorder.mark_last`) reads them by seq. The
        # send time never changes and nothing reads it back by seq: it goes.
        for values in (self._m_version, self._m_size):
            values.clear()
        del self._m_span[:]
        del self._m_sent[:]
        return pa.table(columns)

    def _span_part(self, end: int) -> pa.Table:
        columns: dict[str, Any] = {
            "span_id": hex_ids(np.arange(self._s_base, end, dtype=np.int64)),
            "parent_id": hex_ids(np.frombuffer(self._s_parent, dtype=np.int64)),
            "correlation_id": self._take("_s_corr"),
            "name": self._take("_s_name"),
            "kind": self._take("_s_kind"),
            "agent": self._take("_s_agent"),
            "peer": self._take("_s_peer"),
            "protocol": self._take("_s_protocol"),
            "start": _doubles(self._s_start),
            "deadline": _doubles(self._s_deadline),
        }
        for values in (self._s_parent, self._s_start, self._s_deadline):
            del values[:]
        return pa.table(columns)

    def _spill_effects(self) -> None:
        if not len(self._e_time):
            return
        table = pa.table(
            {
                "time": _doubles(self._e_time),
                "agent": self._take("_e_agent"),
                "key": self._take("_e_key"),
                "msg_id": self._take("_e_msg"),
                "correlation_id": self._take("_e_corr"),
            }
        )
        del self._e_time[:]
        self._write("effects", table)

    def _spill_queues(self) -> None:
        if not self.queues:
            return
        frame = conform("queues", pd.DataFrame(self.queues, columns=QUEUE_COLUMNS))
        self.queues.clear()
        self._write("queues", pa.Table.from_pandas(frame, preserve_index=False))

    def _write(self, name: str, table: pa.Table) -> None:
        """Append `table` to the final file of an append-only table."""
        table = table.replace_schema_metadata(None)
        writer = self._writers.get(name)
        if writer is None:
            writer = pq.ParquetWriter(self.directory / f"{name}.parquet", table.schema)
            self._writers[name] = writer
        writer.write_table(table.cast(writer.schema))

    # -- mark_last over rows on disk --------------------------------------------------

    def _deliveries_of(self, msg_id: str) -> Iterator[int]:
        """`Recorder._deliveries_of` over the copies in memory, then on disk (newest
        first): `Recorder.mark_last` finds a dead letter's copy wherever it is."""
        ids = [i for c in self._chunks["_m_id"] for i in c.to_pylist()] + list(self._m_id)
        kinds = [k for c in self._chunks["_m_kind"] for k in c.to_pylist()] + list(self._m_kind)
        for index in range(len(ids) - 1, -1, -1):
            if ids[index] == msg_id and kinds[index] == "deliver":
                yield self._m_base + index
        for number in range(len(self._parts) - 1, -1, -1):
            rows = pq.read_table(
                self.raw / f"messages-{number:06d}.parquet",
                columns=["seq"],
                filters=(pc.field("msg_id") == msg_id) & (pc.field("kind") == "deliver"),
            )
            yield from reversed(rows["seq"].to_pylist())

    # -- the end ----------------------------------------------------------------------

    def tables(self) -> dict[str, pd.DataFrame]:
        """Not available: a spilled trace is read from its files (`finish`)."""
        raise RuntimeError("a spilled run's tables are on disk: call finish()")

    def finish(self, manifest: dict[str, Any]) -> LazyRun:
        """Write the run's files, delete the raw parts, and return the run read lazily."""
        self.spill()
        self._finish_messages()
        self._finish_spans()
        for writer in self._writers.values():
            writer.close()
        for name, columns in (("effects", EFFECT_COLUMNS), ("queues", QUEUE_COLUMNS)):
            if name not in self._writers:
                _save(self.directory, name, pd.DataFrame(columns=columns))
        _save(self.directory, "breakers", pd.DataFrame(self.breakers, columns=BREAKER_COLUMNS))
        _save(self.directory, "faults", pd.DataFrame(self.faults, columns=FAULT_COLUMNS))
        agents = pd.DataFrame(self.agents, columns=_agent_columns(self.agents))
        _save(self.directory, "agents", agents)
        k = len(self._s_outcome)
        ids = _span_ids(k if self.tasks else 0)
        _save(self.directory, "tasks", self._task_table(ids))
        shutil.rmtree(self.raw)
        self._release()
        run = LazyRun(self.directory, manifest)
        saved = dict(manifest, summary=run.summary())
        (self.directory / "run.json").write_text(json.dumps(saved, indent=2, default=_json_default))
        return run

    def _release(self) -> None:
        """Drop the in-memory columns once they are in the files (the summary that
        follows reads the files, and a big run's columns are hundreds of MB)."""
        for name, value in vars(self).items():
            if name.startswith(("_m_", "_s_", "_e_")) and hasattr(value, "clear"):
                value.clear()
            elif name.startswith(("_m_", "_s_", "_e_")) and isinstance(value, array):
                del value[:]
        # A process the run left suspended is closed when it is collected, and the span
        # it was in ends then (`with ctx.span(...)`): that span, and any copy, now reads
        # as ended, so the late end is ignored as on an ended span (instead of an
        # IndexError printed for every such process).
        self._m_outcome = self._s_outcome = _ENDED  # type: ignore[assignment]

    def _finish_messages(self) -> None:
        path = self.directory / "messages.parquet"
        writer: pq.ParquetWriter | None = None
        reasons = _Sparse(self._m_reason)
        subscriptions, keys = _Sparse(self._m_sub), _Sparse(self._m_key)
        for number, (lo, hi, _s_lo, _s_hi) in enumerate(self._parts):
            part = pq.read_table(self.raw / f"messages-{number:06d}.parquet")
            columns = {name: part[name] for name in part.column_names}
            columns["delivered_at"] = _doubles(self._m_delivered, lo, hi)
            columns["ended_at"] = pa.array(_ended(self._m_delivered, self._m_ended, lo, hi))
            columns["outcome"] = pa.array(self._m_outcome[lo:hi], type=_STRING)
            columns["reason"] = _sparse_strings(reasons, lo, hi)
            columns["subscription"] = _sparse_strings(subscriptions, lo, hi)
            columns["ordering_key"] = _sparse_strings(keys, lo, hi)
            table = pa.table({name: columns[name] for name in MESSAGE_COLUMNS})
            writer = _append(writer, path, table)
        if writer is None:
            _save(self.directory, "messages", pd.DataFrame(columns=MESSAGE_COLUMNS))
        else:
            writer.close()

    def _finish_spans(self) -> None:
        path = self.directory / "spans.parquet"
        writer: pq.ParquetWriter | None = None
        answered, lost = _Sparse(self._s_answered), _Sparse(self._s_lost)
        errors = _Sparse(self._s_error)
        usage, first_token = _Sparse(self._s_usage), _Sparse(self._s_first_token)
        for number, (_m_lo, _m_hi, lo, hi) in enumerate(self._parts):
            part = pq.read_table(self.raw / f"spans-{number:06d}.parquet")
            columns = {name: part[name] for name in part.column_names}
            start = part["start"].to_numpy()
            columns["end"] = _doubles(self._s_end, lo, hi)
            columns["wait"] = _doubles(self._s_wait, lo, hi)
            columns["outcome"] = pa.array(self._s_outcome[lo:hi], type=_STRING)
            columns["attempts"] = _machine_ints(self._s_attempts, lo, hi)
            columns["error"] = _sparse_strings(errors, lo, hi)
            columns["status"] = _machine_ints(self._s_status, lo, hi)
            columns["answered"] = _sparse_ints(answered, lo, hi)
            columns["lost_events"] = _sparse_ints(lost, lo, hi)
            tokens_in = np.full(hi - lo, -1, dtype=np.int64)
            tokens_out = np.full(hi - lo, -1, dtype=np.int64)
            cost = np.full(hi - lo, NAN)
            ttft = np.full(hi - lo, NAN)
            for index, (i, o, c) in usage.within(lo, hi):
                tokens_in[index], tokens_out[index], cost[index] = i, o, c
            for index, at in first_token.within(lo, hi):
                ttft[index] = at - start[index]
            columns.update(input_tokens=tokens_in, output_tokens=tokens_out, cost=cost, ttft=ttft)
            table = pa.table({name: columns[name] for name in SPAN_COLUMNS})
            writer = _append(writer, path, table)
        if writer is None:
            _save(self.directory, "spans", pd.DataFrame(columns=SPAN_COLUMNS))
        else:
            writer.close()


class _Ended:
    """The outcome column of a finished spilled run: every row has ended."""

    def __getitem__(self, row: int) -> str:
        return "ended"

    def __len__(self) -> int:
        return 0


_ENDED = _Ended()


def _append(writer: pq.ParquetWriter | None, path: Path, table: pa.Table) -> pq.ParquetWriter:
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    writer.write_table(table)
    return writer


def _save(directory: Path, name: str, frame: pd.DataFrame) -> None:
    conform(name, frame).to_parquet(directory / f"{name}.parquet", index=False)


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def hex_ids(indexes: np.ndarray) -> pa.Array:
    """`span_hex(i)` for each span index, "" for -1 (no span), as Arrow strings."""
    n = len(indexes)
    present = indexes >= 0
    number = (indexes[present] + 1).astype(np.uint64)
    digits = np.empty((len(number), 16), dtype=np.uint8)
    for place in range(16):
        digits[:, place] = _HEX[(number >> np.uint64(4 * (15 - place))) & np.uint64(15)]
    lengths = np.where(present, 16, 0).astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(digits.reshape(-1).tobytes())
    )


def _ints(values: list[Any]) -> pa.Array:
    return pa.array(np.array(values, dtype=np.int64))


def _machine_ints(values: Any, lo: int, hi: int, dtype: type = np.intc) -> pa.Array:
    """Rows lo..hi-1 of an array("i") (typed as the `Recorder`'s list it replaces) as an
    int64 column."""
    return pa.array(np.frombuffer(values, dtype=dtype)[lo:hi].astype(np.int64))


def _doubles(values: array, lo: int = 0, hi: int | None = None) -> pa.Array:
    column = np.frombuffer(values, dtype=np.float64)
    return pa.array(column[lo:hi].copy())


class _Sparse:
    """A sparse column (row -> value), read part by part in row order."""

    def __init__(self, values: dict[int, Any]) -> None:
        self.values = values
        # Sorted once: a dropped message's reason can be on millions of rows, and the
        # column is read once per part.
        self.keys = sorted(values)

    def within(self, lo: int, hi: int) -> Iterator[tuple[int, Any]]:
        """The entries in rows lo..hi-1, indexed from lo."""
        keys = self.keys
        for position in range(bisect_left(keys, lo), bisect_left(keys, hi)):
            index = keys[position]
            yield index - lo, self.values[index]


def _sparse_strings(values: _Sparse, lo: int, hi: int) -> pa.Array:
    column = [""] * (hi - lo)
    for index, value in values.within(lo, hi):
        column[index] = value
    return pa.array(column, type=_STRING)


def _sparse_ints(values: _Sparse, lo: int, hi: int) -> np.ndarray:
    column = np.full(hi - lo, -1, dtype=np.int64)
    for index, value in values.within(lo, hi):
        column[index] = value
    return column


def _agent_columns(rows: list[dict[str, Any]]) -> list[str]:
    columns = list(AGENT_COLUMNS)
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    return columns
