"""Keeping a sweep: its rows and means saved to a directory, read back, or cached there."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pandas as pd

from sim.loading import ScenarioError
from sim.sweeps.runner import Progress, sweep
from sim.sweeps.spec import SweepSpec, fingerprint, load_spec
from sim.sweeps.stats import means


def save(rows: pd.DataFrame, directory: str | Path) -> Path:
    """Write `rows.parquet`, `means.parquet` and `sweep.json` into `directory`."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    spec = rows.attrs.get("sweep", {})
    plain = rows.copy()
    plain.attrs = {}
    plain.to_parquet(out / "rows.parquet", index=False)
    table = means(rows)
    table.attrs = {}
    table.to_parquet(out / "means.parquet", index=False)
    manifest = {"sweep": spec, "fingerprint": rows.attrs.get("fingerprint", ""), "runs": len(rows)}
    (out / "sweep.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


def load(directory: str | Path) -> pd.DataFrame:
    """A saved sweep's rows (with `attrs["sweep"]`), as `save` wrote them."""
    where = Path(directory)
    try:
        manifest = json.loads((where / "sweep.json").read_text(encoding="utf-8"))
        rows = pd.read_parquet(where / "rows.parquet")
    except FileNotFoundError:
        raise ScenarioError(
            [f"{where}: not a saved sweep (no sweep.json and rows.parquet)"]
        ) from None
    except (OSError, ValueError) as exc:
        raise ScenarioError(
            [f"{where}: cannot read the sweep ({exc.__class__.__name__})"]
        ) from None
    rows.attrs["sweep"] = manifest.get("sweep", {})
    rows.attrs["fingerprint"] = manifest.get("fingerprint", "")
    return rows


def cached(
    source: str | Path | SweepSpec,
    directory: str | Path,
    workers: int | None = None,
    progress: Progress | None = None,
    scheduler: str | None = None,
) -> pd.DataFrame:
    """The sweep's rows from `directory` if they were saved by the same sweep, else run
    it (on `scheduler`, as `sweep` takes it) and save them there (how the advisor keeps
    the built-in sweep between uses)."""
    spec = load_spec(source)
    where = Path(directory)
    if (where / "sweep.json").is_file():
        try:
            rows = load(where)
        except ScenarioError:
            rows = None
        if rows is not None and rows.attrs.get("fingerprint") == fingerprint(spec):
            return rows
    rows = sweep(spec, workers=workers, scheduler=scheduler, progress=progress)
    with contextlib.suppress(OSError):  # a read-only place: the rows are only not kept
        save(rows, where)
    return rows
