"""Digests of a run's tables: a fingerprint that changes when any value or row order does.

A digest is the SHA-256 of a table written as canonical CSV (pandas' round-trip float
text, `\\n` line ends, no index). CSV rather than Parquet bytes because Parquet files
carry the writer's version and encoding choices, which change with pyarrow, not with the
simulation. A sparse column (`schema.SPARSE_COLUMNS`: a model call's tokens and cost) that
holds only its "nothing here" value is left out, so a run without model calls has the
digest it had before the column existed; likewise an added table (`schema.ADDED_TABLES`:
`tasks`) that the run leaves empty.

A run read from disk in batches (`sim.trace.lazy.LazyRun`) is digested a batch at a
time: the CSV of the batches one after the other is the CSV of the whole table, so the
digest is the same as of the table in memory.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sim.trace.schema import ADDED_TABLES, SPARSE_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from sim.trace.run import Run


def table_digest(table: pd.DataFrame) -> str:
    """The SHA-256 (hex) of `table` as canonical CSV, column order and row order included."""
    return batches_digest([table])


def batches_digest(batches: Iterable[pd.DataFrame], drop: list[str] | None = None) -> str:
    """`table_digest` of the table made of `batches` in order (without the columns `drop`)."""
    sha = hashlib.sha256()
    header = True
    for batch in batches:
        part = batch.drop(columns=drop) if drop else batch
        sha.update(part.to_csv(index=False, lineterminator="\n", header=header).encode("utf-8"))
        header = False
    return sha.hexdigest()


def run_digests(run: Run) -> dict[str, str]:
    """One digest per table of the trace contract, by table name (an added table the run
    leaves empty has none: the run digests as before that table existed)."""
    return {
        name: batches_digest(run.batches(name), _unused(run, name))
        for name in run.tables
        if not (name in ADDED_TABLES and run.row_count(name) == 0)
    }


def _unused(run: Run, name: str) -> list[str]:
    """The table's sparse columns that hold nothing, read a batch at a time."""
    sparse = SPARSE_COLUMNS.get(name, {})
    present = [column for column in sparse if column in run.column_names(name)]
    if not present:
        return []
    unused = set(present)
    for batch in run.batches(name, present):
        unused = {column for column in unused if _all_empty(batch[column], sparse[column])}
        if not unused:
            break
    return [column for column in present if column in unused]


def _all_empty(column: pd.Series, empty: object) -> bool:
    if isinstance(empty, float) and math.isnan(empty):
        return bool(column.isna().all())
    return bool((column == empty).all())
