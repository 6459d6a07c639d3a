"""Digests of a run's tables: a fingerprint that changes when any value or row order does.

A digest is the SHA-256 of a table written as canonical CSV (pandas' round-trip float
text, `\\n` line ends, no index). CSV rather than Parquet bytes because Parquet files
carry the writer's version and encoding choices, which change with pyarrow, not with the
simulation.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from sim.trace.run import Run


def table_digest(table: pd.DataFrame) -> str:
    """The SHA-256 (hex) of `table` as canonical CSV, column order and row order included."""
    text = table.to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_digests(run: Run) -> dict[str, str]:
    """One digest per table of the trace contract, by table name."""
    return {name: table_digest(table) for name, table in run.tables.items()}
