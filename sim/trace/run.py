"""The Run: the trace of one simulation, as pandas tables plus a manifest.

The tables (`sim.trace.schema`) are the only contract between the simulator and whatever
reads it (the dashboard, notebooks, checks). On disk a run is a directory: `run.json`
(scenario, seed, versions, wall time, summary) and one Parquet file per table.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim._version import __version__
from sim.metrics import summarize
from sim.scenario import RECORDED, Scenario
from sim.trace.query import Cond, mask
from sim.trace.schema import (
    ADDED_COLUMNS,
    ADDED_TABLES,
    COLUMNS,
    FORMAT_VERSION,
    TABLES,
    conform,
    empty_table,
)


def manifest_for(scenario: Scenario, wall_seconds: float) -> dict[str, Any]:
    """What is needed to reproduce a run: the scenario, its seed and the versions."""
    import numpy
    import simpy

    return {
        "format": FORMAT_VERSION,
        "name": scenario.name,
        "seed": scenario.seed,
        "duration": scenario.duration,
        "scenario": scenario.model_dump(mode="json", by_alias=True),
        "versions": {
            "switchboard": __version__,
            "python": platform.python_version(),
            "simpy": simpy.__version__,
            "numpy": numpy.__version__,
            "pandas": pd.__version__,
        },
        "wall_seconds": round(wall_seconds, 3),
    }


class Run:
    """A finished simulation: its eight tables, its manifest and its summary.

    Checks are functions of a Run (`sim.checks`); a Run does not call them.
    """

    def __init__(self, tables: dict[str, pd.DataFrame], manifest: dict[str, Any]) -> None:
        # A table a run does not have (an imported trace has no breakers) is empty.
        self.tables = {name: tables.get(name, empty_table(name)) for name in TABLES}
        self.manifest = manifest

    @property
    def messages(self) -> pd.DataFrame:
        """One row per copy of a message on the wire."""
        return self.tables["messages"]

    @property
    def spans(self) -> pd.DataFrame:
        """One row per operation: a call, a handler run, a stream, a queue job."""
        return self.tables["spans"]

    @property
    def breakers(self) -> pd.DataFrame:
        """One row per circuit-breaker state transition."""
        return self.tables["breakers"]

    @property
    def queues(self) -> pd.DataFrame:
        """One row per sample of a queue."""
        return self.tables["queues"]

    @property
    def faults(self) -> pd.DataFrame:
        """One row per fault window."""
        return self.tables["faults"]

    @property
    def agents(self) -> pd.DataFrame:
        """One row per agent."""
        return self.tables["agents"]

    @property
    def effects(self) -> pd.DataFrame:
        """One row per effect a receiver applied (exactly-once checks count them)."""
        return self.tables["effects"]

    @property
    def tasks(self) -> pd.DataFrame:
        """One row per agent-protocol task state change (A2A)."""
        return self.tables["tasks"]

    @property
    def name(self) -> str:
        """The scenario's name."""
        return str(self.manifest.get("name", "run"))

    @property
    def duration(self) -> float:
        """The simulated length of the run, in seconds."""
        return float(self.manifest.get("duration", 0.0))

    @cached_property
    def scenario(self) -> Scenario:
        """The scenario that produced this run (its plugin roles accepted as recorded,
        whether or not their plugin is loaded here)."""
        return Scenario.model_validate(self.manifest["scenario"], context=RECORDED)

    def batches(self, name: str, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """The table `name` (only `columns`) a batch of rows at a time, in order: here
        the whole table at once (a run read from disk, `LazyRun`, reads it in parts)."""
        table = self.tables[name]
        yield table if columns is None else table[columns]

    def row_count(self, name: str) -> int:
        """Rows in the table `name`."""
        return len(self.tables[name])

    # Queries. A page asks for the rows it draws through these, never for a whole table:
    # a run read from its files (`LazyRun`) answers them by reading only those rows.

    def select(
        self,
        name: str,
        columns: list[str] | None = None,
        where: Cond | None = None,
        *,
        compact: bool = False,
    ) -> pd.DataFrame:
        """The rows of `name` matching `where` (`sim.trace.query`), in the table's order,
        only `columns` (all when None). `compact`: text columns may come as pandas
        categories (a run read from its files: millions of rows stay small)."""
        table = self.tables[name]
        if where is not None:
            keep = mask(table, where)
            if not keep.all():
                table = table[keep]
        return table if columns is None else table[columns]

    def select_batches(
        self, name: str, columns: list[str] | None = None, where: Cond | None = None
    ) -> Iterator[pd.DataFrame]:
        """`select` a batch of rows at a time, in order (here: all at once)."""
        yield self.select(name, columns, where)

    def count_where(self, name: str, where: Cond | None = None) -> int:
        """How many rows of `name` match `where`."""
        if where is None:
            return self.row_count(name)
        return int(mask(self.tables[name], where).sum())

    def group_counts(self, name: str, by: list[str], where: Cond | None = None) -> pd.DataFrame:
        """Rows of `name` matching `where`, counted per distinct value of the `by`
        columns: the `by` columns and `n`, one row per group in the order of each
        group's first row."""
        return group_counts([self.select(name, by, where)], by)

    def column_names(self, name: str) -> list[str]:
        """The columns of the table `name`."""
        return [str(column) for column in self.tables[name].columns]

    def summary(self) -> dict[str, Any]:
        """Headline numbers: outcomes, latency percentiles, goodput, amplification."""
        return summarize(self.tables, self.duration)

    def save(self, directory: str | Path) -> Path:
        """Write run.json and one Parquet file per table into `directory`."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            self.tables[name].to_parquet(path / f"{name}.parquet", index=False)
        manifest = dict(self.manifest, summary=self.summary())
        (path / "run.json").write_text(json.dumps(manifest, indent=2, default=_json_default))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Run:
        """Read a run written by `save`; the tables equal the saved ones.

        A directory that is not a whole saved run (no run.json, a run.json that is not
        a JSON object, a table missing or without its contract's columns) raises
        `RunFileError` with one sentence saying what is wrong, rather than coming back
        with empty tables.
        """
        path = Path(directory)
        manifest_file = path / "run.json"
        if not manifest_file.is_file():
            raise RunFileError(f"{path} holds no run.json, so it is not a saved run")
        try:
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RunFileError(f"{manifest_file} is not valid JSON ({_first_line(exc)})") from None
        if not isinstance(manifest, dict):
            raise RunFileError(
                f"{manifest_file} must hold a JSON object (the run's manifest), "
                f"not {type(manifest).__name__}"
            )
        check_manifest(manifest, manifest_file)
        tables = {name: _read_table(path, name) for name in TABLES}
        return cls(tables, manifest)


def group_counts(batches: Iterable[pd.DataFrame], by: list[str]) -> pd.DataFrame:
    """`Run.group_counts` of a table read a batch at a time (the batches in order)."""
    parts = []
    offset = 0
    dtypes: dict[str, Any] = {}
    for batch in batches:
        dtypes = {c: batch[c].dtype for c in by}
        if len(batch):
            first = np.arange(offset, offset + len(batch), dtype=np.int64)
            frame = batch[by].reset_index(drop=True).assign(first=first)
            grouped = frame.groupby(by, sort=False, dropna=False)["first"]
            parts.append(grouped.agg(["min", "size"]).reset_index())
        offset += len(batch)
    if not parts:
        empty = {c: pd.Series(dtype=dtypes.get(c, object)) for c in by}
        return pd.DataFrame({**empty, "n": pd.Series(dtype="int64")})
    table = pd.concat(parts, ignore_index=True)
    if len(parts) > 1:
        grouped = table.groupby(by, sort=False, dropna=False)
        table = grouped.agg(min=("min", "min"), size=("size", "sum")).reset_index()
    table = table.sort_values("min", kind="stable").reset_index(drop=True)
    # Grouping gives its keys back as objects: as the table had them.
    return table[by].astype(dtypes).assign(n=table["size"].astype("int64"))


class RunFileError(ValueError):
    """A saved run that cannot be read; the message is one sentence saying why."""


def check_manifest(manifest: dict[str, Any], file: Path) -> None:
    """`RunFileError` when a run.json's fields that every reader uses have the wrong
    type: a duration that is not a number of seconds (every time axis is built on it),
    a seed that is not a whole number; no duration at all (read as 0 s, every rate of
    the summary would be nonsense, and nothing in the trace says how long the run was:
    its last event is not its end)."""
    if "duration" not in manifest:
        raise RunFileError(
            f"{file} has no duration (the run's length in seconds), so its rates and time "
            "axes cannot be computed: it was not written by Switchboard, or was edited"
        )
    duration = manifest["duration"]
    number = isinstance(duration, int | float) and not isinstance(duration, bool)
    if not number or not math.isfinite(duration) or duration < 0:
        raise RunFileError(
            f"{file}: duration must be the run's length in seconds, a number of 0 or more, "
            f"not {json.dumps(duration)[:40]}"
        )
    seed = manifest.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise RunFileError(
            f"{file}: seed must be a whole number of 0 or more, not {json.dumps(seed)[:40]}"
        )


def _read_table(path: Path, name: str) -> pd.DataFrame:
    """One table of a saved run, checked against the trace contract."""
    file = path / f"{name}.parquet"
    if not file.is_file() and name in ADDED_TABLES:
        return empty_table(name)  # saved before the table was added to the contract
    if not file.is_file():
        raise RunFileError(f"{path} has no {name}.parquet: a saved run has all its tables")
    try:
        table = pd.read_parquet(file)
    except Exception as exc:  # pyarrow raises many kinds for a file that is not Parquet
        raise RunFileError(f"{file} is not a readable Parquet file ({_first_line(exc)})") from None
    # A column added to the contract since the run was saved gets its "nothing here"
    # value: a run saved before it still loads, as it was.
    for column, value in ADDED_COLUMNS.get(name, {}).items():
        if column not in table.columns:
            table[column] = value
    missing = [column for column in COLUMNS[name] if column not in table.columns]
    if missing:
        raise RunFileError(f"{file} lacks the columns {', '.join(missing)} of the {name} table")
    # In the contract's order (a column added back lands at the end), extra ones after.
    table = table[COLUMNS[name] + [c for c in table.columns if c not in COLUMNS[name]]]
    try:
        return conform(name, table)
    except (TypeError, ValueError) as exc:
        raise RunFileError(f"{file} has a column of the wrong type ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def load(directory: str | Path) -> Run:
    """Load a saved Run from its directory (`Run.save`, `python -m sim run --out`)."""
    return Run.load(directory)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to run.json")
