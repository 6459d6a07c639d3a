"""Following a live trace: what an OTLP receiver (`python -m sim serve-otlp`, or one
started here) appends to its file, imported again every few seconds as the run on screen.

Two ways in, on the Run page: type the path of a receiver's output file (as a saved run
is opened), or start a receiver from the page (a background thread owned by this
session, on 127.0.0.1, on the port asked for or any free one). While following, a
`run_every` fragment in the sidebar (drawn by `app.py` on every page) checks the file;
when it has grown it is imported again and the pages redraw on it, and the sidebar shows
how many requests, spans and traces it holds. Stop ends the following (and the
receiver, if it was started here); the last import stays on screen.
"""

from __future__ import annotations

import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from sim import Run
from sim.otlp import OtlpError, import_trace
from sim.otlp.receiver import DEFAULT_PORT, Receiver
from ui import state, traces
from ui.path_form import path_form

FOLLOW = "live_follow"  # the Follow under way, if any
PATH = "live_path"  # the file path typed
PORT = "live_port"  # the port asked for a receiver started here
NOTE = "live_note"  # why the last start or follow did not begin
POLL_S = 3.0  # seconds between two looks at the file


@dataclass
class Follow:
    """A file being followed, and the receiver writing it when this session owns one."""

    path: Path
    receiver: Receiver | None = None
    seen: tuple[int, int] | None = None  # (size, mtime ns) of the file last imported
    requests: int = 0
    spans: int = 0
    traces: int = 0
    note: str = ""  # why nothing is shown yet, or the importer's sentence


def _stop_later(receiver: Receiver) -> None:
    """Stop a receiver from a thread of its own: a session's state can be collected in
    any thread, the receiver's own included, where `stop` would wait on itself."""
    threading.Thread(target=receiver.stop, daemon=True).start()


def start_receiver(port: int) -> Follow:
    """A receiver on 127.0.0.1:`port` (0: any free port) writing to a new temporary
    file, serving in a background thread; OSError when the port is taken."""
    folder = Path(tempfile.mkdtemp(prefix="switchboard-live-"))
    receiver = Receiver(folder / "traces.jsonl", port=port).start()
    follow = Follow(folder / "traces.jsonl", receiver)
    # A session closed without Stop still stops its receiver once its state is dropped.
    weakref.finalize(follow, _stop_later, receiver)
    return follow


def signature(path: Path) -> tuple[int, int] | None:
    """The file's (size, mtime ns), or None when it does not exist."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def complete_lines(path: Path, folder: Path) -> Path | None:
    """A copy of `path` cut after its last newline (a line still being written is left
    for the next look), in `folder`; None when there is no newline to cut at."""
    data = path.read_bytes()
    cut = data.rfind(b"\n")
    if cut < 0 or cut == len(data) - 1:
        return None
    copy = folder / path.name
    copy.write_bytes(data[: cut + 1])
    return copy


def read(path: Path) -> Run:
    """Import the followed file; a JSON Lines file whose last line is not finished yet
    is read up to its last whole line."""
    try:
        return import_trace(path)
    except OtlpError as first:
        with tempfile.TemporaryDirectory(prefix="switchboard-live-") as folder:
            copy = complete_lines(path, Path(folder))
            if copy is None:
                raise
            try:
                return import_trace(copy)
            except OtlpError:
                raise first from None


def refresh(follow: Follow) -> Run | None:
    """The file imported again when it changed since the last look, else None; counts
    and note updated. A file that cannot be read leaves the run on screen as it was."""
    sig = signature(follow.path)
    if sig is None:
        follow.note = f"Waiting for {follow.path}: there is no such file yet."
        return None
    if sig == follow.seen:
        return None
    follow.seen = sig
    if sig[0] == 0:
        follow.note = "Waiting for the first request."
        return None
    try:
        run = read(follow.path)
    except OtlpError as exc:
        follow.note = str(exc)
        return None
    source = run.manifest.get("source", {})
    follow.requests = int(source.get("requests", 0))
    follow.spans = int(source.get("spans", 0))
    follow.traces = int(source.get("traces", 0))
    follow.note = ""
    return run


def show_run(run: Run, follow: Follow) -> None:
    """Put the newly imported run on screen, keeping the trace chosen if it is still
    there (a live run grows; the reader should not lose their place each time)."""
    trace = st.session_state.get(state.TRACE)
    label = follow.path.name
    source = traces.source_of(run, label)
    state.store(run, {**source, "scenario": f"{source['scenario']} (live)"})
    if trace:
        st.session_state[state.TRACE] = trace


def current() -> Follow | None:
    """The Follow under way in this session, if any."""
    follow = st.session_state.get(FOLLOW)
    return follow if isinstance(follow, Follow) else None


def stop() -> None:
    """Stop following (and the receiver started here); the last import stays."""
    follow = st.session_state.pop(FOLLOW, None)
    if isinstance(follow, Follow) and follow.receiver is not None:
        follow.receiver.stop()


def begin(follow: Follow) -> None:
    """Follow `follow` from now on (stopping any other), and import what is there."""
    stop()
    st.session_state.pop(NOTE, None)
    st.session_state[FOLLOW] = follow
    run = refresh(follow)
    if run is not None:
        show_run(run, follow)


def on_start() -> None:
    """The Start button: a receiver on the port asked for."""
    port = int(st.session_state.get(PORT) or 0)
    try:
        follow = start_receiver(port)
    except OSError as exc:
        st.session_state[NOTE] = (
            f"Cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}): another receiver "
            "may hold it; pick another port, or 0 for any free one."
        )
        return
    begin(follow)


def on_follow() -> None:
    """The Follow button: the file typed."""
    typed = str(st.session_state.get(PATH) or "").strip()
    if not typed:
        st.session_state[NOTE] = "Type the path of a receiver's output file first."
        return
    begin(Follow(Path(typed).expanduser()))


def controls() -> None:
    """The Run page's expander: follow a file or start a receiver, or what is followed
    and Stop."""
    follow = current()
    with st.expander(
        "Follow a live trace (OTLP receiver)",
        expanded=follow is not None,
        icon=":material/sensors:",
    ):
        if follow is not None:
            status(follow)
            return
        # Forms (ui.path_form): Enter in a field acts as its button, and a click cannot be
        # lost to the rerun the field would otherwise start on Enter.
        path_form(
            "follow_file",
            "Receiver output file",
            PATH,
            "Follow file",
            placeholder="traces.jsonl",
            help="The file `python -m sim serve-otlp --out FILE` appends to (or any trace "
            "file that grows), on the machine that serves this page.",
            icon=":material/sensors:",
            on_click=on_follow,
        )
        with st.form("start_receiver", border=False):
            port, start = st.columns([4, 1], vertical_alignment="bottom")
            port.number_input(
                "Or start a receiver here, on port",
                min_value=0,
                max_value=65535,
                value=DEFAULT_PORT,
                step=1,
                format="%d",
                key=PORT,
                persist_state="session",
                help="OTLP/HTTP on 127.0.0.1 (no authentication: loopback only), 4318 by "
                "default; 0 picks any free port. It runs until Stop or until this session ends.",
            )
            start.form_submit_button(
                "Start receiver", on_click=on_start, icon=":material/podcasts:", width="stretch"
            )
        if NOTE in st.session_state:
            st.warning(st.session_state[NOTE], icon=":material/block:")


def status(follow: Follow) -> None:
    """What is followed, where to send, the counts, and Stop."""
    if follow.receiver is not None:
        st.markdown(f"Receiving at `{follow.receiver.url}`, written to `{follow.path}`.")
        st.caption(
            "Point an exporter at it: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="
            f"{follow.receiver.url}` (JSON or protobuf)."
        )
    else:
        st.markdown(f"Following `{follow.path}`.")
    st.markdown(
        f"**{follow.requests:,} requests, {follow.spans:,} spans, {follow.traces:,} traces** "
        "imported"
    )
    if follow.note:
        st.caption(follow.note)
    st.button("Stop following", on_click=stop, icon=":material/stop:", key="live_stop")


def tick() -> None:
    """One look at the followed file (the sidebar fragment's body): a changed file is
    imported again and every part of the page redraws on it."""
    follow = current()
    if follow is None:
        return
    run = refresh(follow)
    st.caption(
        f":material/sensors: Live: {follow.requests:,} requests, {follow.spans:,} spans, "
        f"{follow.traces:,} traces"
    )
    if follow.note:
        st.caption(follow.note)
    if st.button("Stop following", icon=":material/stop:", key="live_stop_sidebar"):
        stop()
        st.rerun(scope="app")  # the Run page's controls show again
    if run is not None:
        show_run(run, follow)
        st.rerun(scope="app")  # every part of the page redraws on the new import


def sidebar() -> None:
    """The live status in the sidebar of every page, refreshed every POLL_S seconds
    while something is followed."""
    if current() is None:
        return
    with st.sidebar:
        st.fragment(tick, run_every=POLL_S)()
