"""The trace contract in one place: what a run records and how it is kept.

- `schema`: the eight tables (`TABLES`), their columns (`COLUMNS`) and dtypes (`DTYPES`),
  `conform`, `empty_table` and the on-disk `FORMAT_VERSION`;
- `recorder`: the `Recorder`, the journal a run writes while it goes on;
- `run`: the `Run` (the tables plus a manifest), saved and loaded as a directory;
- `digest`: SHA-256 digests of a run's tables, to tell whether a trace changed.
"""

# A mypyc build of the hot path's modules, when one is built and current (see
# protocols.compiled), is imported in their place.
from protocols.compiled import extend as _extend

__path__ = _extend(__path__, __name__)

from sim.trace.digest import run_digests, table_digest
from sim.trace.recorder import Recorder
from sim.trace.run import Run, load, manifest_for
from sim.trace.schema import COLUMNS, DTYPES, FORMAT_VERSION, TABLES, conform, empty_table

__all__ = [
    "COLUMNS",
    "DTYPES",
    "FORMAT_VERSION",
    "TABLES",
    "Recorder",
    "Run",
    "conform",
    "empty_table",
    "load",
    "manifest_for",
    "run_digests",
    "table_digest",
]
