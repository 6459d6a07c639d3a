"""A Run read from its Parquet files as it is asked, not loaded whole.

`LazyRun` is a `Run` over a saved run's directory (a spilled run's, or any other). Its
`tables` load a table only when one is asked for (a check or a figure that needs every
row still gets them), while `summary`, `count`, `scan` and `batches` read through
`pyarrow` with column projection and filters, so a run of ten million messages can be
summarised without holding its rows. `summary` gives exactly the in-memory summary: the
spans are read once a batch at a time (`sim.trace.streamed`: a few dozen bytes kept per
request), the rest from narrow scans handed to `sim.metrics`' own functions
(tests/test_spill.py compares both).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from sim.metrics import GAVE_UP, SERVERS, breaker_open_time, model_usage, wasted_work
from sim.trace import streamed
from sim.trace.query import Cond, columns_of, expression
from sim.trace.run import (
    Run,
    RunFileError,
    _first_line,
    _json_default,
    _read_table,
    check_manifest,
)
from sim.trace.schema import ADDED_COLUMNS, ADDED_TABLES, COLUMNS, TABLES, conform

# Rows per batch when a table is read a batch at a time.
BATCH_ROWS = 131072


class LazyTables(dict[str, pd.DataFrame]):
    """The tables of a run on disk, each read (and kept) the first time it is asked for."""

    def __init__(self, load: Callable[[str], pd.DataFrame]) -> None:
        super().__init__()
        self._load = load

    def __missing__(self, name: str) -> pd.DataFrame:
        if name not in TABLES:
            raise KeyError(name)
        table = self._load(name)
        self[name] = table
        return table

    def __iter__(self) -> Iterator[str]:
        return iter(TABLES)

    def __len__(self) -> int:
        return len(TABLES)

    def __contains__(self, name: object) -> bool:
        return name in TABLES

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(TABLES)

    def values(self) -> list[pd.DataFrame]:  # type: ignore[override]
        return [self[name] for name in TABLES]

    def items(self) -> list[tuple[str, pd.DataFrame]]:  # type: ignore[override]
        return [(name, self[name]) for name in TABLES]

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in TABLES else default

    def loaded(self) -> list[str]:
        """The tables read so far."""
        return [name for name in TABLES if dict.__contains__(self, name)]


class LazyRun(Run):
    """A Run whose tables stay in their Parquet files until asked for."""

    def __init__(self, directory: str | Path, manifest: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.manifest = manifest
        self.tables = LazyTables(lambda name: _read_table(self.directory, name))

    @classmethod
    def open(cls, directory: str | Path) -> LazyRun:
        """A saved run's directory, read lazily (`RunFileError`, one sentence, if it is
        not one: no run.json, or a table missing, unreadable or short of its columns;
        only the files' footers are read)."""
        path = Path(directory)
        try:
            found = (path / "run.json").is_file()
        except OSError as exc:  # a name too long to look up, a folder not readable
            raise RunFileError(f"{path} cannot be read ({exc.strerror or exc})") from None
        if not found:
            raise RunFileError(f"{path} holds no run.json, so it is not a saved run")
        try:
            manifest = json.loads((path / "run.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunFileError(f"{path} holds no readable run.json ({exc})") from None
        if not isinstance(manifest, dict):
            raise RunFileError(f"{path / 'run.json'} must hold a JSON object")
        check_manifest(manifest, path / "run.json")
        for name in TABLES:
            _check_table(path, name)
        return cls(path, manifest)

    def dataset(self, name: str) -> ds.Dataset:
        """The table `name` as a pyarrow dataset (for projections, filters, scans)."""
        return ds.dataset(self.directory / f"{name}.parquet", format="parquet")

    def count(self, name: str, where: pc.Expression | None = None) -> int:
        """Rows of `name` (matching `where`), counted without reading them."""
        return int(self.dataset(name).count_rows(filter=where))

    def scan(
        self, name: str, columns: list[str] | None = None, where: pc.Expression | None = None
    ) -> pd.DataFrame:
        """The rows of `name` matching `where`, only `columns`, with the contract's dtypes."""
        table = self.dataset(name).to_table(columns=columns, filter=where)
        return conform(name, table.to_pandas())

    def batches(self, name: str, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """The table a batch of rows at a time, in order (an empty table: one empty batch)."""
        if not self._on_disk(name):
            yield from super().batches(name, columns)
            return
        file = pq.ParquetFile(self.directory / f"{name}.parquet")
        empty = True
        names = file.schema_arrow.names
        stored = None if columns is None else [c for c in columns if c in names]
        for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=stored):
            empty = False
            yield self._conform(name, batch.to_pandas(), columns)
        if empty:
            table = file.schema_arrow.empty_table()
            yield self._conform(name, table.select(stored or names).to_pandas(), columns)

    def select(
        self,
        name: str,
        columns: list[str] | None = None,
        where: Cond | None = None,
        *,
        compact: bool = False,
    ) -> pd.DataFrame:
        """`Run.select`, reading only the row groups that may match and only `columns`
        (`compact`: text columns as categories, one copy of each distinct value)."""
        if dict.__contains__(self.tables, name) or not self._queryable(name, columns, where):
            return super().select(name, columns, where)
        parts = list(self._arrow_batches(name, columns, where))
        if compact:
            parts = [_dictionary_text(part) for part in parts]
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        frame = table.to_pandas()
        # Categories are kept as they are: the contract's `str` would expand them.
        order = list(frame.columns)
        text = [c for c in order if isinstance(frame[c].dtype, pd.CategoricalDtype)]
        kept = frame[text]
        frame = self._conform(name, frame.drop(columns=text), columns)
        frame[text] = kept
        frame = frame[order + [c for c in frame.columns if c not in order]]
        return frame if columns is None else frame[columns]

    def select_batches(
        self, name: str, columns: list[str] | None = None, where: Cond | None = None
    ) -> Iterator[pd.DataFrame]:
        """`Run.select_batches`: a row group at a time, those that may match only."""
        if dict.__contains__(self.tables, name) or not self._queryable(name, columns, where):
            yield from super().select_batches(name, columns, where)
            return
        for part in self._arrow_batches(name, columns, where):
            frame = self._conform(name, part.to_pandas(), columns)
            yield frame if columns is None else frame[columns]

    def count_where(self, name: str, where: Cond | None = None) -> int:
        """`Run.count_where`, reading only the columns `where` compares."""
        if dict.__contains__(self.tables, name) or not self._queryable(name, [], where):
            return super().count_where(name, where)
        if where is None:
            return self.row_count(name)
        # Row by row, not `count_rows`: pyarrow's count drops the NaN half of a
        # `Missing` under `Not` (counting every row that holds NaN, not null).
        return sum(part.num_rows for part in self._arrow_batches(name, [], where))

    def group_counts(self, name: str, by: list[str], where: Cond | None = None) -> pd.DataFrame:
        """`Run.group_counts`, grouped by Arrow a row group at a time (only the groups
        become pandas rows)."""
        if dict.__contains__(self.tables, name) or not self._queryable(name, by, where):
            return super().group_counts(name, by, where)
        parts = []
        offset = 0
        for part in self._arrow_batches(name, by, where):
            first = pa.array(np.arange(offset, offset + part.num_rows, dtype=np.int64))
            offset += part.num_rows
            grouped = part.append_column("first", first).group_by(by, use_threads=False)
            parts.append(grouped.aggregate([("first", "min"), ("first", "count")]))
        table = pa.concat_tables(parts)
        first, count = "first_min", "first_count"
        if len(parts) > 1:  # a group may span row groups: its partial counts add up
            table = table.group_by(by, use_threads=False).aggregate(
                [(first, "min"), (count, "sum")]
            )
            first, count = f"{first}_min", f"{count}_sum"
        table = table.take(pc.sort_indices(table[first]))
        frame = self._conform(name, table.select(by).to_pandas(), by)
        return frame[by].assign(n=table[count].to_numpy().astype("int64"))

    def _queryable(self, name: str, columns: list[str] | None, where: Cond | None) -> bool:
        # A table or a column added to the contract after the run was saved is not in
        # its file: such a query reads the table the way `tables` does.
        if not self._on_disk(name):
            return False
        stored = set(pq.ParquetFile(self.directory / f"{name}.parquet").schema_arrow.names)
        return columns_of(where) <= stored

    def _arrow_batches(
        self, name: str, columns: list[str] | None, where: Cond | None
    ) -> Iterator[pa.Table]:
        """The matching rows a row group at a time, in the file's order (a row group
        whose statistics rule the condition out is not read); one empty table when
        nothing matches."""
        dataset = self.dataset(name)
        names = dataset.schema.names
        stored = names if columns is None else [c for c in columns if c in names]
        flt = None if where is None else expression(where)
        found = False
        for fragment in dataset.get_fragments():
            # In file order: a page's rows come as the in-memory table has them.
            for group in fragment.split_by_row_group(filter=flt):
                part = group.to_table(columns=stored, filter=flt)
                if part.num_rows:
                    found = True
                    yield part
        if not found:
            yield dataset.schema.empty_table().select(stored)

    @staticmethod
    def _conform(name: str, frame: pd.DataFrame, columns: list[str] | None) -> pd.DataFrame:
        # A column added to the contract after the run was saved reads as its "nothing
        # here" value, as `Run.load` gives it.
        for column, value in ADDED_COLUMNS.get(name, {}).items():
            if column not in frame.columns and (columns is None or column in columns):
                frame[column] = value
        return conform(name, frame)

    def column_names(self, name: str) -> list[str]:
        """The columns of the table `name` (from the file's schema)."""
        if not self._on_disk(name):
            return super().column_names(name)
        names = list(pq.ParquetFile(self.directory / f"{name}.parquet").schema_arrow.names)
        return names + [c for c in ADDED_COLUMNS.get(name, {}) if c not in names]

    def row_count(self, name: str) -> int:
        """Rows in the table `name` (from the file's footer)."""
        if not self._on_disk(name):
            return super().row_count(name)
        return int(pq.ParquetFile(self.directory / f"{name}.parquet").metadata.num_rows)

    def _on_disk(self, name: str) -> bool:
        # A table added to the contract after the run was saved has no file: it is empty.
        return (self.directory / f"{name}.parquet").is_file()

    def summary(self) -> dict[str, Any]:
        """`Run.summary`, reading only the rows and columns each number needs."""
        return lazy_summary(self)

    def save(self, directory: str | Path) -> Path:
        """Copy the run's files into `directory` (nothing is loaded)."""
        path = Path(directory)
        if path.resolve() == self.directory.resolve():
            return path
        path.mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            shutil.copyfile(self.directory / f"{name}.parquet", path / f"{name}.parquet")
        manifest = dict(self.manifest, summary=self.summary())
        (path / "run.json").write_text(json.dumps(manifest, indent=2, default=_json_default))
        return path


def _dictionary_text(table: pa.Table) -> pa.Table:
    """`table` with its text columns dictionary-encoded (pandas categories)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            table = table.set_column(i, field.name, pc.dictionary_encode(table.column(i)))
    return table


def _check_table(path: Path, name: str) -> None:
    """What `Run.load` checks of a table, from its file's footer alone."""
    file = path / f"{name}.parquet"
    if not file.is_file():
        if name in ADDED_TABLES:
            return  # saved before the table was added: it reads empty
        raise RunFileError(f"{path} has no {name}.parquet: a saved run has all its tables")
    try:
        names = pq.ParquetFile(file).schema_arrow.names
    except Exception as exc:  # pyarrow raises many kinds for a file that is not Parquet
        raise RunFileError(f"{file} is not a readable Parquet file ({_first_line(exc)})") from None
    added = ADDED_COLUMNS.get(name, {})
    missing = [c for c in COLUMNS[name] if c not in names and c not in added]
    if missing:
        raise RunFileError(f"{file} lacks the columns {', '.join(missing)} of the {name} table")


def _in(column: str, values: tuple[str, ...]) -> pc.Expression:
    # Typed, so that an empty list is a set of strings rather than of nulls.
    return pc.field(column).isin(pa.array(list(values), type=pa.string()))


def lazy_summary(run: LazyRun) -> dict[str, Any]:
    """The summary of `sim.metrics.summarize`, from one pass over the spans a batch at a
    time (`sim.trace.streamed`) and narrow scans of the rest: memory a few tens of bytes
    a request, not the tables'."""
    duration = run.duration
    totals = streamed.span_totals(run.directory / "spans.parquet")
    latency = totals.ok_latency()
    n_requests = sum(totals.requests_by_outcome.values())
    n_ok = totals.requests_by_outcome.get("ok", 0)
    requests_by_outcome = streamed.counts(totals.requests_by_outcome)
    n_messages = run.row_count("messages")
    messages_by_outcome = streamed.message_outcomes(run.directory / "messages.parquet")
    return {
        "requests": n_requests,
        "ok": n_ok,
        "goodput": n_ok / duration if duration > 0 else 0.0,
        "success_rate": n_ok / n_requests if n_requests else 0.0,
        "p50": _quantile(latency, 0.5),
        "p95": _quantile(latency, 0.95),
        "p99": _quantile(latency, 0.99),
        "messages": n_messages,
        "amplification": n_messages / n_requests if n_requests else 0.0,
        "messages_by_outcome": messages_by_outcome,
        "spans_by_outcome": streamed.counts(totals.spans_by_outcome),
        "requests_by_outcome": requests_by_outcome,
        "errors_by_kind": {k: v for k, v in requests_by_outcome.items() if k not in ("ok", "open")},
        "exceptions": totals.exceptions,
        "latency_by_channel": totals.latency_by_channel().to_dict(orient="records"),
        **streamed.delivery(run.directory, totals),
        "dead_lettered": messages_by_outcome.get("dead_lettered", 0),
        "wasted_work": float(_wasted(run)["wasted"].sum()),
        "breaker_open_time": breaker_open_time(run.breakers, duration),
        **_usage(run),
    }


# What `sim.metrics.wasted_work` reads of a span.
WASTED_COLUMNS = ["span_id", "parent_id", "agent", "correlation_id", "kind", "outcome"]
WASTED_COLUMNS += ["start", "end", "wait"]


def _wasted(run: LazyRun) -> pd.DataFrame:
    """`sim.metrics.wasted_work` of the spans it can concern, in their order."""
    # Their ids stay an Arrow array: a run of timeouts can have millions.
    gave_up = run.dataset("spans").to_table(columns=["span_id"], filter=_in("outcome", GAVE_UP))
    if not gave_up.num_rows:
        return pd.DataFrame({"wasted": pd.Series(dtype="float64")})
    spans = run.scan(
        "spans",
        [*WASTED_COLUMNS],
        _in("outcome", GAVE_UP)
        | (_in("kind", SERVERS) & pc.field("parent_id").isin(gave_up["span_id"])),
    )
    return wasted_work(spans)


def _usage(run: LazyRun) -> dict[str, Any]:
    """`sim.metrics.model_usage` of the spans that were model calls."""
    if "input_tokens" not in run.dataset("spans").schema.names:
        return {}
    billed = run.scan(
        "spans", ["input_tokens", "output_tokens", "cost"], pc.field("input_tokens") >= 0
    )
    return model_usage(billed)


def _quantile(values: pd.Series, q: float) -> float | None:
    if values.empty:
        return None
    return float(values.quantile(q))


__all__ = ["BATCH_ROWS", "LazyRun", "LazyTables", "lazy_summary"]
