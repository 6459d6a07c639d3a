"""Row conditions that read the same over a table in memory and over its Parquet file.

A page asks a Run for "the messages sent before 12 s of trace t-42" as a `Cond`, built
with the functions below. `mask` evaluates it on a pandas frame (the in-memory `Run`);
`expression` turns it into a pyarrow expression (`LazyRun`), which Parquet's statistics
and the dataset scanner push down, so only the matching rows are read. Both give the
same rows: a comparison with a missing value (NaN or null) is false, as in pandas.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# The comparisons a condition may make, by name.
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Compare:
    """`column <op> value` (false where the column holds nothing)."""

    column: str
    op: str
    value: Any


@dataclass(frozen=True)
class In:
    """The column's value is one of `values`."""

    column: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Missing:
    """The column holds nothing here (NaN or null)."""

    column: str


@dataclass(frozen=True)
class Not:
    """Every row `part` does not match (a row where it compares a missing value too)."""

    part: Cond


@dataclass(frozen=True)
class AllOf:
    """Rows matching every part."""

    parts: tuple[Cond, ...]


@dataclass(frozen=True)
class AnyOf:
    """Rows matching at least one part."""

    parts: tuple[Cond, ...]


Cond = Compare | In | Missing | Not | AllOf | AnyOf


def eq(column: str, value: Any) -> Cond:
    """`column == value`."""
    return Compare(column, "==", value)


def ne(column: str, value: Any) -> Cond:
    """`column != value` (true where it holds nothing, as in pandas)."""
    return Not(eq(column, value))


def lt(column: str, value: Any) -> Cond:
    """`column < value`."""
    return Compare(column, "<", value)


def le(column: str, value: Any) -> Cond:
    """`column <= value`."""
    return Compare(column, "<=", value)


def gt(column: str, value: Any) -> Cond:
    """`column > value`."""
    return Compare(column, ">", value)


def ge(column: str, value: Any) -> Cond:
    """`column >= value`."""
    return Compare(column, ">=", value)


def isin(column: str, values: Iterable[Any]) -> Cond:
    """The column's value is one of `values`."""
    return In(column, tuple(values))


def missing(column: str) -> Cond:
    """The column holds NaN or null."""
    return Missing(column)


def all_of(*parts: Cond | None) -> Cond | None:
    """Every part (None parts are left out; None when none is left)."""
    kept = tuple(p for p in parts if p is not None)
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else AllOf(kept)


def any_of(*parts: Cond) -> Cond:
    """At least one part."""
    return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))


def columns_of(cond: Cond | None) -> set[str]:
    """The columns a condition reads."""
    if cond is None:
        return set()
    if isinstance(cond, Compare | In | Missing):
        return {cond.column}
    if isinstance(cond, Not):
        return columns_of(cond.part)
    return set().union(*(columns_of(p) for p in cond.parts))


def mask(frame: pd.DataFrame, cond: Cond | None) -> np.ndarray:
    """The rows of `frame` that `cond` matches, as a boolean array (all, for None)."""
    if cond is None:
        return np.ones(len(frame), dtype=bool)
    if isinstance(cond, Compare):
        result = _COMPARE[cond.op](frame[cond.column], cond.value)
        return np.asarray(result.fillna(False), dtype=bool)
    if isinstance(cond, In):
        return np.asarray(frame[cond.column].isin(list(cond.values)), dtype=bool)
    if isinstance(cond, Missing):
        return np.asarray(frame[cond.column].isna(), dtype=bool)
    if isinstance(cond, Not):
        return ~mask(frame, cond.part)
    parts = [mask(frame, p) for p in cond.parts]
    combine = np.logical_and if isinstance(cond, AllOf) else np.logical_or
    return combine.reduce(parts) if parts else np.ones(len(frame), dtype=bool)


def expression(cond: Cond) -> pc.Expression:
    """`cond` as a pyarrow expression that keeps exactly the rows `mask` keeps."""
    if isinstance(cond, Compare):
        # A comparison with null is null, which a filter drops: false, as in pandas.
        return _COMPARE[cond.op](pc.field(cond.column), pa.scalar(cond.value))
    if isinstance(cond, In):
        values = list(cond.values)
        if not values:
            return pc.scalar(False)
        if all(isinstance(v, str) for v in values):
            return pc.field(cond.column).isin(pa.array(values, type=pa.string()))
        return pc.field(cond.column).isin(pa.array(values))
    if isinstance(cond, Missing):
        return pc.field(cond.column).is_null(nan_is_null=True)
    if isinstance(cond, Not):
        inner = expression(cond.part)
        # Where the part is null (it compared a missing value), pandas' mask was
        # false, so its negation is true.
        return ~inner | inner.is_null()
    parts = [expression(p) for p in cond.parts]
    out = parts[0]
    for part in parts[1:]:
        out = (out & part) if isinstance(cond, AllOf) else (out | part)
    return out


__all__ = [
    "AllOf",
    "AnyOf",
    "Compare",
    "Cond",
    "In",
    "Missing",
    "Not",
    "all_of",
    "any_of",
    "columns_of",
    "eq",
    "expression",
    "ge",
    "gt",
    "isin",
    "le",
    "lt",
    "mask",
    "missing",
    "ne",
]
