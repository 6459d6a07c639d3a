"""A run's summary computed a batch of rows at a time, from its Parquet files.

`sim.metrics.summarize` holds whole tables; a run of ten million messages would need
gigabytes for it. Here the spans are read once, a batch of rows at a time, through the
columns the summary needs, and each batch leaves behind only what the totals need: a
value count, a request's span id as a 64-bit number and whether it is still open, the
latency of each successful request and call (a double), a call's (caller, callee) as a
small code. That is about 30 bytes a request, however wide its rows. Percentiles are
then computed by the same pandas functions over the same values, so every number is
exactly the in-memory summary's (tests/test_spill.py compares them on the built-ins).

Span ids are the recorder's 16 hex digits, read as numbers without a Python string per
row; a run whose ids are not (an imported trace's) numbers them through a dict instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sim.metrics import CALLERS, NOT_REQUESTS, PERCENTILES, SERVERS

# Rows per batch: a batch's columns are a few MB, whatever the run's length.
BATCH_ROWS = 131072
SPAN_COLUMNS = [
    "span_id", "parent_id", "kind", "name", "agent", "peer", "correlation_id",
    "outcome", "start", "end", "error",
]  # fmt: skip


def batches(path: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The rows of the Parquet file at `path`, `columns` only, a batch at a time."""
    file = pq.ParquetFile(path)
    yield from file.iter_batches(batch_size=BATCH_ROWS, columns=columns, use_threads=False)


class NotHex(Exception):
    """A span id that is not 16 hex digits: the run is numbered through a dict."""


class SpanKeys:
    """Span ids as uint64 numbers: their 16 hex digits read as one (the recorder's), or,
    for a run whose ids are not, a number given to each id the first time it is seen."""

    def __init__(self, hex_ids: bool = True) -> None:
        self.hex = hex_ids
        self._numbers: dict[str, int] = {}

    def __call__(self, ids: pa.Array) -> np.ndarray:
        """The numbers of `ids` (a string array without nulls)."""
        if self.hex:
            return _hex_numbers(ids)
        numbers = self._numbers
        return np.array(
            [numbers.setdefault(i, len(numbers)) for i in ids.to_pylist()], dtype=np.uint64
        )


# A hex digit's value by its byte, 255 for any other byte.
_DIGIT = np.full(256, 255, dtype=np.uint8)
_DIGIT[np.frombuffer(b"0123456789", dtype=np.uint8)] = np.arange(10, dtype=np.uint8)
_DIGIT[np.frombuffer(b"abcdef", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)


def _hex_numbers(ids: pa.Array) -> np.ndarray:
    """16-hex-digit lowercase ids as numbers, read from the array's bytes (NotHex if any
    id is not one)."""
    n = len(ids)
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    ids = ids.cast(pa.large_string())
    if ids.null_count or pc.min(pc.binary_length(ids)).as_py() != 16:
        raise NotHex
    if pc.max(pc.binary_length(ids)).as_py() != 16:
        raise NotHex
    offsets = np.frombuffer(ids.buffers()[1], dtype=np.int64)[ids.offset : ids.offset + n + 1]
    data = np.frombuffer(ids.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    digits = _DIGIT[data].reshape(n, 16)
    if (digits == 255).any():
        raise NotHex
    numbers = np.zeros(n, dtype=np.uint64)
    for place in range(16):
        numbers = (numbers << np.uint64(4)) | digits[:, place].astype(np.uint64)
    return numbers


def _in(column: pa.Array, values: tuple[str, ...]) -> pa.Array:
    return pc.is_in(column, value_set=pa.array(values, type=column.type))


def _mask(expression: pa.Array) -> np.ndarray:
    """A boolean array as numpy, null as false."""
    return np.asarray(pc.fill_null(expression, False).to_numpy(zero_copy_only=False), dtype=bool)


def _count(counter: Counter[str], column: pa.Array) -> None:
    for item in pc.value_counts(column).to_pylist():
        if item["values"] is not None:
            counter[str(item["values"])] += int(item["counts"])


class _Pairs:
    """Codes for (caller, callee) pairs, the same code for the same pair in every batch."""

    def __init__(self) -> None:
        self.codes: dict[tuple[str, str], int] = {}

    def __call__(self, agents: pa.Array, peers: pa.Array) -> np.ndarray:
        """The code of each row's (agent, peer)."""
        a, p = pc.dictionary_encode(agents), pc.dictionary_encode(peers)
        a_index = a.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        p_index = p.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        a_names, p_names = a.dictionary.to_pylist(), p.dictionary.to_pylist()
        width = len(p_names)
        local = a_index * width + p_index
        uniques, inverse = np.unique(local, return_inverse=True)
        codes = self.codes
        table = np.array(
            [
                codes.setdefault((a_names[u // width], p_names[u % width]), len(codes))
                for u in uniques.tolist()
            ],
            dtype=np.int64,
        )
        return table[inverse.reshape(-1)]


class SpanTotals:
    """What one pass over the spans leaves for the summary (see the module's docstring)."""

    def __init__(self, keys: SpanKeys) -> None:
        self.keys = keys
        self.spans_by_outcome: Counter[str] = Counter()
        self.requests_by_outcome: Counter[str] = Counter()
        self.exceptions = 0
        self._roots: list[np.ndarray] = []
        self._root_open: list[np.ndarray] = []
        self._ok_latency: list[np.ndarray] = []
        self._parents: list[np.ndarray] = []
        self._call_latency: list[np.ndarray] = []
        self._call_pair: list[np.ndarray] = []
        self.pairs = _Pairs()

    def add(self, batch: pa.RecordBatch) -> None:
        """Take one batch of spans (SPAN_COLUMNS) into the totals."""
        get = batch.column
        kind, outcome = get("kind"), get("outcome")
        _count(self.spans_by_outcome, outcome)
        caller = _mask(_in(kind, CALLERS))
        raised = _mask(pc.starts_with(get("error"), "raised "))
        self.exceptions += int((raised & ~caller).sum())
        ok = _mask(pc.equal(outcome, "ok"))
        start = get("start").to_numpy(zero_copy_only=False)
        end = get("end").to_numpy(zero_copy_only=False)
        # The callers' successful calls: latency by (caller, callee).
        calls = caller & ok
        if calls.any():
            take = pa.array(np.flatnonzero(calls))
            self._call_latency.append(end[calls] - start[calls])
            self._call_pair.append(self.pairs(get("agent").take(take), get("peer").take(take)))
        # The requests: callers' spans with no parent.
        parent = get("parent_id")
        root = caller & _mask(pc.equal(parent, "")) & ~_mask(_in(get("name"), NOT_REQUESTS))
        if root.any():
            take = pa.array(np.flatnonzero(root))
            _count(self.requests_by_outcome, outcome.take(take))
            self._roots.append(self.keys(get("span_id").take(take)))
            self._root_open.append(_mask(pc.equal(outcome.take(take), "open")))
            done = root & ok
            self._ok_latency.append(end[done] - start[done])
        # Server work done for a parent: a request's, if the parent is one.
        served = _mask(_in(kind, SERVERS)) & ok & ~_mask(pc.equal(parent, ""))
        if served.any():
            self._parents.append(self.keys(parent.take(pa.array(np.flatnonzero(served)))))

    def roots(self) -> np.ndarray:
        """The requests' span ids as numbers, in row order."""
        return _concat(self._roots, np.uint64)

    def root_open(self) -> np.ndarray:
        """Whether each request is still open, in row order."""
        return _concat(self._root_open, np.bool_)

    def ok_latency(self) -> pd.Series:
        """The successful requests' latencies, in row order."""
        return pd.Series(_concat(self._ok_latency, np.float64), dtype="float64")

    def parents(self) -> np.ndarray:
        """The parents of the servers' successful spans, as numbers."""
        return _concat(self._parents, np.uint64)

    def latency_by_channel(self) -> pd.DataFrame:
        """`sim.metrics.latency_by_channel` of the calls seen."""
        columns = ["agent", "peer", "calls", "p50", "p95", "p99"]
        latency = _concat(self._call_latency, np.float64)
        if not len(latency):
            return pd.DataFrame(columns=columns)
        pairs = sorted(self.pairs.codes)
        # Codes renumbered in (caller, callee) order, as groupby(sort=True) orders them.
        rank = np.empty(len(pairs), dtype=np.int64)
        for position, pair in enumerate(pairs):
            rank[self.pairs.codes[pair]] = position
        codes = rank[_concat(self._call_pair, np.int64)]
        grouped = pd.DataFrame({"code": codes, "latency": latency}).groupby("code", sort=True)[
            "latency"
        ]
        table = grouped.quantile(list(PERCENTILES)).unstack()
        table.columns = ["p50", "p95", "p99"]
        table.insert(0, "calls", grouped.size())
        seen = [pairs[int(code)] for code in table.index]
        table.insert(0, "peer", [peer for _, peer in seen])
        table.insert(0, "agent", [agent for agent, _ in seen])
        return table.reset_index(drop=True)[columns]


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def span_totals(path: Path) -> SpanTotals:
    """One pass over the spans file at `path`."""
    for hex_ids in (True, False):
        totals = SpanTotals(SpanKeys(hex_ids))
        try:
            for batch in batches(path, SPAN_COLUMNS):
                totals.add(batch)
        except NotHex:
            continue
        return totals
    raise AssertionError("unreachable: numbering through a dict takes any id")


def served(totals: SpanTotals) -> tuple[np.ndarray, int]:
    """Which requests a server finished at least once (in row order), and how many
    extra times such work was done (`sim.metrics.delivery`'s served and redone)."""
    roots, parents = totals.roots(), totals.parents()
    mine = parents[np.isin(parents, roots)]
    redone = len(mine) - len(np.unique(mine))
    return np.isin(roots, mine), int(redone)


def unserved_roots(path: Path, keep: np.ndarray) -> pd.DataFrame:
    """The requests whose `keep` is true (in row order of all requests): their agent,
    correlation id and outcome (a second pass, for a run whose broker held requests)."""
    frames = []
    offset = 0
    for batch in batches(path, SPAN_COLUMNS):
        get = batch.column
        root = (
            _mask(_in(get("kind"), CALLERS))
            & _mask(pc.equal(get("parent_id"), ""))
            & ~_mask(_in(get("name"), NOT_REQUESTS))
        )
        rows = np.flatnonzero(root)
        chosen = rows[keep[offset : offset + len(rows)]]
        offset += len(rows)
        if len(chosen):
            part = batch.select(["agent", "correlation_id", "outcome"]).take(pa.array(chosen))
            frames.append(part.to_pandas())
    if not frames:
        return pd.DataFrame({"agent": [], "correlation_id": [], "outcome": []}, dtype="str")
    return pd.concat(frames, ignore_index=True)


def held(messages: Path, unserved: pd.DataFrame) -> np.ndarray:
    """Which of the `unserved` requests a broker accepted and never dead-lettered
    (`sim.metrics.delivery`'s held), scanning the messages a batch at a time."""
    wanted = set(zip(unserved["agent"], unserved["correlation_id"], strict=True))
    accepted: set[tuple[str, str]] = set()
    dead: set[str] = set()
    for batch in batches(messages, ["kind", "outcome", "src", "correlation_id"]):
        get = batch.column
        outcome = get("outcome")
        published = _mask(pc.equal(get("kind"), "publish")) & _mask(pc.equal(outcome, "delivered"))
        if published.any():
            take = pa.array(np.flatnonzero(published))
            pairs = zip(
                get("src").take(take).to_pylist(),
                get("correlation_id").take(take).to_pylist(),
                strict=True,
            )
            accepted.update(pair for pair in pairs if pair in wanted)
        letters = _mask(pc.equal(outcome, "dead_lettered"))
        if letters.any():
            dead.update(get("correlation_id").take(pa.array(np.flatnonzero(letters))).to_pylist())
    return np.array(
        [
            (agent, cid) in accepted and cid not in dead
            for agent, cid in zip(unserved["agent"], unserved["correlation_id"], strict=True)
        ],
        dtype=bool,
    )


def any_accepted(messages: Path) -> bool:
    """Whether a broker confirmed any publish (only then can a request be held)."""
    for batch in batches(messages, ["kind", "outcome"]):
        get = batch.column
        if (
            _mask(pc.equal(get("kind"), "publish")) & _mask(pc.equal(get("outcome"), "delivered"))
        ).any():
            return True
    return False


def delivery(directory: Path, totals: SpanTotals) -> dict[str, int]:
    """`sim.metrics.delivery` from the totals (and, for queue runs, a second look)."""
    served_mask, redone = served(totals)
    unserved = ~served_mask
    not_open = ~totals.root_open()
    held_count = 0
    lost = int((unserved & not_open).sum())
    if unserved.any() and any_accepted(directory / "messages.parquet"):
        rows = unserved_roots(directory / "spans.parquet", unserved)
        kept = held(directory / "messages.parquet", rows)
        held_count = int(kept.sum())
        lost -= int((kept & (rows["outcome"] != "open").to_numpy()).sum())
    return {"served": int(served_mask.sum()), "redone": redone, "held": held_count, "lost": lost}


def counts(counter: Counter[str]) -> dict[str, int]:
    """A Counter as `sim.metrics.counts` gives it: a plain dict sorted by value name."""
    return {key: int(counter[key]) for key in sorted(counter)}


def message_outcomes(path: Path) -> dict[str, int]:
    """The messages' outcomes counted, a batch at a time."""
    total: Counter[str] = Counter()
    for batch in batches(path, ["outcome"]):
        _count(total, batch.column(0))
    return counts(total)


__all__ = ["BATCH_ROWS", "SpanKeys", "SpanTotals", "delivery", "message_outcomes", "span_totals"]
