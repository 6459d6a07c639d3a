"""Digests of a run's tables: a fingerprint that changes when any value or row order does.

A digest is the SHA-256 of a table written as canonical CSV (pandas' round-trip float
text, `\\n` line ends, no index). CSV rather than Parquet bytes because Parquet files
carry the writer's version and encoding choices, which change with pyarrow, not with the
simulation. A sparse column (`schema.SPARSE_COLUMNS`: a model call's tokens and cost) that
holds only its "nothing here" value is left out, so a run without model calls has the
digest it had before the column existed; likewise an added table (`schema.ADDED_TABLES`:
`tasks`) that the run leaves empty.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING

from sim.trace.schema import ADDED_TABLES, SPARSE_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from sim.trace.run import Run


def table_digest(table: pd.DataFrame) -> str:
    """The SHA-256 (hex) of `table` as canonical CSV, column order and row order included."""
    text = table.to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_digests(run: Run) -> dict[str, str]:
    """One digest per table of the trace contract, by table name (an added table the run
    leaves empty has none: the run digests as before that table existed)."""
    return {
        name: table_digest(_used(name, table))
        for name, table in run.tables.items()
        if not (name in ADDED_TABLES and table.empty)
    }


def _used(name: str, table: pd.DataFrame) -> pd.DataFrame:
    """`table` without its sparse columns that hold nothing."""
    unused = [
        column
        for column, empty in SPARSE_COLUMNS.get(name, {}).items()
        if column in table.columns and _all_empty(table[column], empty)
    ]
    return table.drop(columns=unused) if unused else table


def _all_empty(column: pd.Series, empty: object) -> bool:
    if isinstance(empty, float) and math.isnan(empty):
        return bool(column.isna().all())
    return bool((column == empty).all())
