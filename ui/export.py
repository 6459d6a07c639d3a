"""A run as downloadable files: the run directory zipped, and the trace as CSV files.

Pure functions returning bytes, so the Run page can hand them to `st.download_button`
(computed only when the user clicks) and tests can open the archives.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

from sim import Run
from sim.trace.schema import TABLES

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # scenario files over 5 MB are refused


def run_zip(run: Run, folder: str = "run") -> bytes:
    """The run saved as a directory (`run.json` + one Parquet file per table), zipped
    under `folder/`; `sim.load` reads the unzipped folder back."""
    with tempfile.TemporaryDirectory() as tmp:
        path = run.save(Path(tmp) / folder)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(path.iterdir()):
                archive.write(file, f"{folder}/{file.name}")
    return buffer.getvalue()


def trace_csv_zip(run: Run) -> bytes:
    """Every table of the run's trace contract, each as `<table>.csv`, in one zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in TABLES:
            table = run.tables.get(name) if hasattr(run, "tables") else getattr(run, name)
            if table is not None:
                archive.writestr(f"{name}.csv", table.to_csv(index=False))
    return buffer.getvalue()


class UploadError(ValueError):
    """An uploaded file that cannot be used; the message is the sentence to show."""


def upload_text(name: str, data: bytes) -> str:
    """The text of an uploaded scenario file, or an UploadError saying why not.

    Files over 5 MB are refused before anything reads them; the content is only ever
    decoded as text (the editor then parses it with YAML safe loading).
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(
            f"{name} is {len(data) / 1024 / 1024:.1f} MB: scenario files over "
            f"{MAX_UPLOAD_BYTES // 1024 // 1024} MB are refused."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadError(f"{name} is not UTF-8 text, so it cannot be a scenario file.") from None
