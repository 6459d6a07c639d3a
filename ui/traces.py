"""Real traces on the dashboard: a trace file uploaded on the Run page becomes the run
on screen, read by `sim.otlp.import_trace` (OTLP JSON, JSON Lines or protobuf, the
OpenTelemetry SDK's console output, Jaeger, Zipkin v1 or v2, Tempo; gzipped or not). A
file it cannot read gets the importer's one sentence and the run on screen stays."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from sim import Run
from sim.otlp import OtlpError, import_trace
from ui import state
from ui import summary as views

log = logging.getLogger(__name__)

UPLOAD = "trace_upload"  # the file uploader
ERROR = "trace_upload_error"  # why the last trace file was refused
MAX_UPLOAD_MB = 200  # Streamlit's own default cap; gzip inflates within the import's cap
FORMATS = (
    "OTLP JSON, JSON Lines or protobuf, the OpenTelemetry SDK's console output, Jaeger, "
    "Zipkin (v1 or v2) or Tempo JSON; gzipped or not"
)


def import_bytes(name: str, data: bytes) -> Run:
    """The Run of an uploaded trace file's bytes; OtlpError naming the file as the user
    named it (the importer reads paths: the bytes go through a temporary file)."""
    shown = Path(name).name or "trace"
    with tempfile.TemporaryDirectory(prefix="switchboard-trace-") as folder:
        path = Path(folder) / shown
        path.write_bytes(data)
        try:
            return import_trace(path)
        except OtlpError as exc:
            raise OtlpError(str(exc).replace(str(path), shown)) from None


SUFFIXES = (".gz", ".jsonl", ".json", ".pb", ".binpb", ".proto", ".otlp", ".jaeger", ".zipkin")


def trace_name(run: Run, label: str) -> str:
    """What an imported run is called: a Switchboard export's own run name, else the
    file's name without its format suffixes."""
    if run.manifest.get("source", {}).get("switchboard_export"):
        return run.name
    name = Path(label).name
    for suffix in SUFFIXES:
        name = name.removesuffix(suffix)
    return name or "trace"


def source_of(run: Run, label: str) -> dict[str, Any]:
    """What `state.store` keeps about an imported run: its name and where it came from."""
    return {
        "scenario": trace_name(run, label),
        "seed": run.manifest.get("seed"),
        "label": label,
        "imported": True,
    }


def on_upload() -> None:
    """An uploaded trace file replaces the run on screen; a refused one leaves it."""
    uploaded = st.session_state.get(UPLOAD)
    st.session_state.pop(ERROR, None)
    if uploaded is None:
        return
    try:
        run = import_bytes(uploaded.name, uploaded.getvalue())
    except OtlpError as exc:
        st.session_state[ERROR] = str(exc)
        return
    except Exception as exc:  # the importer's bug, not the file's fault: one sentence
        log.exception("importing %s failed", uploaded.name)
        st.session_state[ERROR] = views.error_text(exc, f"Importing {uploaded.name}")
        return
    state.store(run, source_of(run, uploaded.name))


def upload() -> None:
    """The uploader, and the sentence of a file it refused."""
    st.file_uploader(
        "Or open a trace file",
        type=None,  # the importer recognises what a file holds, whatever its name
        key=UPLOAD,
        on_change=on_upload,
        max_upload_size=MAX_UPLOAD_MB,
        help=f"A real system's trace: {FORMATS}. Messages, peers and queues are inferred "
        "from its spans; a Switchboard export keeps its A2A tasks.",
    )
    if ERROR in st.session_state:
        st.error(st.session_state[ERROR], icon=":material/block:")
