"""A sweep's statistics: each cell's means with confidence intervals across replications.

`means(rows)` is `sim.means`: per cell of the grid, each metric's mean and the
half-width of its 95% Student-t confidence interval.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from sim.sweeps.runner import METRICS
from sim.theory import t_quantile

LEVEL = 0.95


def metric_columns(rows: pd.DataFrame) -> list[str]:
    """The metric columns of a sweep's rows."""
    return [c for c in rows.columns if c in METRICS or c.startswith("errors.")]


def axis_columns(rows: pd.DataFrame) -> list[str]:
    """The axis columns of a sweep's rows (what varies between cells)."""
    spec = rows.attrs.get("sweep")
    if spec:
        return [axis["name"] for axis in spec["axes"]]
    skip = {"index", "replication", "seed", "error", "wall_seconds", *metric_columns(rows)}
    return [c for c in rows.columns if c not in skip]


def means(rows: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Per cell: each metric's mean and the half-width of its confidence interval.

    Columns: the axes, `runs` (replications that finished), `errors` (that failed), then
    `<metric>` (the mean) and `<metric>_ci` (half-width across replications, Student's t;
    NaN with fewer than two values).
    """
    axes = axis_columns(rows)
    metrics = metric_columns(rows)
    good = rows[rows["error"] == ""]
    records: list[dict[str, Any]] = []
    groups = rows.groupby(axes, sort=False, dropna=False) if axes else [((), rows)]
    for key, cell in groups:
        key = key if isinstance(key, tuple) else (key,)
        ok = good.loc[good.index.intersection(cell.index)]
        record: dict[str, Any] = dict(zip(axes, key, strict=True))
        record["runs"] = len(ok)
        record["errors"] = len(cell) - len(ok)
        for metric in metrics:
            values = ok[metric].dropna()
            record[metric] = float(values.mean()) if len(values) else math.nan
            record[f"{metric}_ci"] = _half_width(values, level)
        records.append(record)
    out = pd.DataFrame.from_records(records)
    out.attrs["sweep"] = rows.attrs.get("sweep", {})
    return out


def _half_width(values: pd.Series, level: float) -> float:
    n = len(values)
    if n < 2:
        return math.nan
    sd = float(values.std(ddof=1))
    return t_quantile((1 + level) / 2, n - 1) * sd / math.sqrt(n)
