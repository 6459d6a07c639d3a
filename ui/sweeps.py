"""The Compare page's sweeps: open a saved sweep or run a built-in one, and see its
metrics against offered load (the advisor below them is ui/advisor.py).

The sweep on screen (its rows, one per run) lives in `st.session_state[ROWS]` with a
digest under KEY; means, figures and advice are cached on that digest, so reruns and
page switches never recompute them. A directory that is not a sweep, or a sweep whose
every run failed, is one sentence in `st.error`, and the sweep on screen stays.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from sim import advisor
from sim import sweeps as sw
from sim.loading import ScenarioError
from sim.sweeps.spec import builtin_sweeps, expand, load_spec
from ui import summary as views
from ui.figures import sweep as charts
from ui.path_form import path_form

log = logging.getLogger(__name__)

# Where `python -m sim sweep` saves by default; relative to where the app is served from.
SWEEPS_DIR = Path("runs") / "sweeps"
WORKERS: int | None = None  # every core the process may use, as the CLI does

# Session state: the sweep on screen.
ROWS = "sweep_rows"
LABEL = "sweep_label"
KEY = "sweep_key"
ERROR = "sweep_error"
ORIGIN = "sweep_origin"  # where the sweep on screen comes from, and where it is kept
# Widgets.
SOURCE = "sweep_source"
SAVED = "sweep_saved"
PATH = "sweep_path"
BUILTIN = "sweep_builtin"
REPS = "sweep_replications"
VIEW = "sweep_view"
METRIC = "sweep_metric"
PERCENTS = "sweep_percentiles"

VIEWS = {
    "latency": charts.latency_vs_load,
    "goodput": charts.goodput_vs_load,
    "amplification": charts.amplification_vs_load,
    "dead letters": charts.dead_letters_vs_load,
    "lost": charts.lost_vs_load,
}
OTHER = "other metric"
CHART_CONFIG = {"displaylogo": False}


# --- loading and running ------------------------------------------------------------


def saved_sweeps(root: Path | None = None) -> list[str]:
    """The saved sweeps under `root` (default SWEEPS_DIR): directories holding sweep.json."""
    where = root if root is not None else SWEEPS_DIR
    if not where.is_dir():
        return []
    return sorted(str(d) for d in where.iterdir() if (d / "sweep.json").is_file())


def digest(rows: pd.DataFrame) -> str:
    """A digest naming a sweep's rows: equal rows share cached means and figures."""
    h = hashlib.sha256()
    h.update(str(rows.attrs.get("fingerprint", "")).encode())
    h.update(f"{len(rows)}:{','.join(map(str, rows.columns))}".encode())
    if len(rows):
        h.update(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())
    return h.hexdigest()[:20]


def store(rows: pd.DataFrame, origin: str) -> None:
    """Put a sweep on screen, titled `name · N runs`, with where it came from; forget the
    previous error."""
    st.session_state[ROWS] = rows
    st.session_state[LABEL] = f"{sweep_name(rows)} · {len(rows)} runs"
    st.session_state[ORIGIN] = origin
    st.session_state[KEY] = digest(rows)
    st.session_state.pop(ERROR, None)


def sweep_name(rows: pd.DataFrame) -> str:
    """The sweep's name from its spec ('sweep' when it has none)."""
    return str((rows.attrs.get("sweep") or {}).get("name") or "sweep")


def open_sweep(path: str) -> None:
    """Open a saved sweep directory (sweep.json + rows.parquet) as the sweep on screen."""
    folder = Path(path.strip()).expanduser()
    try:
        if not folder.is_dir():
            raise ScenarioError([f"{folder} is not a directory, so it holds no saved sweep."])
        rows = sw.load(folder)
    except Exception as exc:
        st.session_state[ERROR] = views.error_text(exc, f"Opening {folder}")
        return
    store(rows, f"Opened from {folder}.")


def on_saved() -> None:
    """Picking a saved sweep opens it."""
    chosen = st.session_state.get(SAVED)
    if chosen:
        st.session_state[PATH] = chosen
        open_sweep(chosen)


def progress_bar(
    total: int, label: str
) -> tuple[DeltaGenerator, Callable[[int, int, dict[str, Any]], None]]:
    """A progress bar and the `progress(done, total, row)` callback that feeds it."""
    bar = st.progress(0.0, text=f"{label}: 0 of {total} runs")
    failed = 0

    def tick(done: int, of: int, row: dict[str, Any]) -> None:
        nonlocal failed
        failed += bool(row.get("error"))
        extra = f", {failed} failed" if failed else ""
        bar.progress(min(done / max(of, 1), 1.0), text=f"{label}: {done} of {of} runs{extra}")

    return bar, tick


def finished(rows: pd.DataFrame, label: str) -> bool:
    """False (and an error on screen) when no run of the sweep finished."""
    if len(rows) and (rows["error"] == "").any():
        return True
    first = next((e for e in rows["error"] if e), "it has no runs")
    st.session_state[ERROR] = f"Every run of {label} failed (the first: {first})."
    return False


def save_place(name: str, replications: int, usual: int) -> Path:
    """Where a sweep run here is kept: under its name (where the CLI saves it, and where
    `python -m sim advise` keeps its sweep) only when it is the sweep its file describes;
    with other replications, beside it (`NAME-1rep`), never over it."""
    if replications == usual:
        return SWEEPS_DIR / name
    return SWEEPS_DIR / f"{name}-{replications}rep"


def run_builtin(name: str, replications: int) -> None:
    """Run a built-in sweep here, with a progress bar; save it where the CLI would."""
    try:
        spec = load_spec(name).model_copy(update={"replications": int(replications)})
        bar, tick = progress_bar(len(expand(spec)), f"Sweeping {name}")
        try:
            rows = sw.sweep(spec, workers=WORKERS, progress=tick)
        finally:
            bar.empty()
    except Exception as exc:
        log.exception("sweep %s failed", name)
        st.session_state[ERROR] = views.error_text(exc, f"The sweep {name}")
        return
    if not finished(rows, name):
        return
    where = save_place(spec.name, int(replications), int(load_spec(name).replications))
    try:
        sw.save(rows, where)
        note = f"Run here and saved to {where} (Parquet): it opens again under saved sweeps."
    except OSError as exc:  # a read-only checkout: the sweep is shown, only not kept
        note = f"Run here; not saved to {where} ({exc.strerror or exc})."
    store(rows, note)


def run_advisor_sweep() -> bool:
    """The advisor's built-in sweep, from the cache the CLI's `advise` shares (run and
    saved there when missing or stale); True when it is on screen."""
    name, where = advisor.ADVISOR_SWEEP, advisor.ADVISOR_CACHE
    try:
        spec = load_spec(name)
        bar, tick = progress_bar(len(expand(spec)), f"Sweeping {name}")
        try:
            rows = sw.cached(spec, where, workers=WORKERS, progress=tick)
        finally:
            bar.empty()
    except Exception as exc:
        log.exception("advisor sweep failed")
        st.session_state[ERROR] = views.error_text(exc, f"The sweep {name}")
        return False
    if not finished(rows, name):
        return False
    store(rows, f"Kept in {where}, the cache `python -m sim advise` shares.")
    return True


# --- caches (keyed by the sweep's digest; `_rows` is left out of the key) -------------


@st.cache_data(max_entries=8, show_spinner=False)
def means_of(_rows: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per-cell means and confidence intervals of the sweep on screen."""
    return sw.means(_rows)


@st.cache_resource(max_entries=32, show_spinner=False)
def chart(
    _rows: pd.DataFrame, key: str, view: str, metric: str | None, percentiles: tuple[str, ...]
) -> go.Figure:
    """One sweep view (shared: never mutated); `percentiles` for the latency view.
    Raises ValueError when there is nothing to draw."""
    table = means_of(_rows, key)
    if view == OTHER:
        return charts.metric_vs_load(table, str(metric), title=f"{metric} against offered load")
    if view == "latency":
        return charts.latency_vs_load(table, percentiles=percentiles or charts.PERCENTILES)
    return VIEWS[view](table)


# --- tables shown ---------------------------------------------------------------------


def means_table(table: pd.DataFrame) -> pd.DataFrame:
    """The means as shown: axes, runs, latency in ms, goodput, rates, amplification."""
    axes = charts.sweep_axes(table)
    # `errors` only when a run failed: the table is wide enough as it is.
    failed = ["errors"] if "errors" in table.columns and table["errors"].sum() else []
    out = table[[*axes, "runs", *failed]].copy()
    for column in ("p50", "p95", "p99", "p99_ci"):
        if column in table.columns:
            out[f"{column} ms"] = table[column] * 1000.0
    for column in ("goodput", "success_rate", "lost_rate", "amplification", "dead_lettered"):
        if column in table.columns:
            out[column] = table[column]
    return out.rename(columns={"p99_ci ms": "p99 ± ms"})


def failures(rows: pd.DataFrame) -> pd.DataFrame:
    """The runs that failed: where they sit in the grid, their seed and their error."""
    axes = charts.sweep_axes(rows)
    failed = rows[rows["error"] != ""]
    return failed[["index", *axes, "replication", "seed", "error"]].reset_index(drop=True)


NUMBERS = {
    "p50 ms": st.column_config.NumberColumn("p50 (ms)", format="%.0f"),
    "p95 ms": st.column_config.NumberColumn("p95 (ms)", format="%.0f"),
    "p99 ms": st.column_config.NumberColumn("p99 (ms)", format="%.0f"),
    "p99 ± ms": st.column_config.NumberColumn(
        "p99 ± (ms)", format="%.0f", help="Half-width of the 95% confidence interval."
    ),
    "goodput": st.column_config.NumberColumn("goodput (/s)", format="%.1f"),
    "success_rate": st.column_config.NumberColumn("ok", format="percent"),
    "lost_rate": st.column_config.NumberColumn("lost", format="percent"),
    "amplification": st.column_config.NumberColumn("msgs/request", format="%.2f"),
    "dead_lettered": st.column_config.NumberColumn("dead-lettered", format="%.1f"),
    "load": st.column_config.NumberColumn("load", format="percent"),
}


# --- the page -----------------------------------------------------------------------


def source_picker() -> None:
    """Choose the sweep: a saved one (any directory), or a built-in one run here."""
    saved = saved_sweeps()
    if SOURCE not in st.session_state:
        st.session_state[SOURCE] = "saved sweep" if saved else "built-in sweep"
    source = st.segmented_control(
        "Sweep",
        ("saved sweep", "built-in sweep"),
        key=SOURCE,
        required=True,
        persist_state="session",
    )
    if source == "saved sweep":
        saved_picker(saved)
    else:
        builtin_picker()


def saved_picker(saved: list[str]) -> None:
    """Open a saved sweep: picked from those under SWEEPS_DIR, or any directory typed in."""
    pick, where = st.columns([2, 4], vertical_alignment="bottom")
    pick.selectbox(
        "Saved sweeps",
        saved,
        index=None,
        key=SAVED,
        on_change=on_saved,
        placeholder=f"in {SWEEPS_DIR}" if saved else f"none in {SWEEPS_DIR} yet",
        disabled=not saved,
        help="Sweeps saved by `python -m sim sweep` or run on this page. Picking one opens it.",
    )
    with where:
        path = path_form(
            "open_sweep",
            "Sweep directory",
            PATH,
            "Open sweep",
            placeholder="runs/sweeps/my-sweep",
            help="Any directory written by `python -m sim sweep --out DIR` or "
            "`sim.sweeps.save(rows, DIR)`: sweep.json and rows.parquet.",
            widths=(3, 1),
        )
    if path:
        open_sweep(path)


def builtin_picker() -> None:
    """Run a built-in sweep here, with the replications asked for."""
    names = builtin_sweeps()
    if not names:
        st.info("There is no built-in sweep in scenarios/sweeps.", icon=":material/info:")
        return
    if st.session_state.get(BUILTIN) not in names:
        st.session_state[BUILTIN] = names[0]
        st.session_state[REPS] = replications_of(names[0])
    pick, reps, go = st.columns([3, 1, 1], vertical_alignment="bottom")
    name = pick.selectbox(
        "Built-in sweep",
        names,
        key=BUILTIN,
        on_change=on_builtin,
        persist_state="session",
    )
    count = reps.number_input(
        "Replications",
        min_value=1,
        max_value=50,
        step=1,
        format="%d",
        key=REPS,
        persist_state="session",
        help="Runs per cell, with seeds seed, seed+1, ...; more give tighter confidence "
        "intervals and take longer.",
    )
    runs = cells_of(name) * int(count)
    if go.button("Run sweep", type="primary", icon=":material/play_arrow:", width="stretch"):
        run_builtin(name, int(count))
    description = " ".join(str(spec_field(name, "description") or "").split())
    st.caption(f"{runs} runs on every core. {description}")


def on_builtin() -> None:
    """A newly picked built-in sweep starts from its file's replications."""
    st.session_state[REPS] = replications_of(st.session_state[BUILTIN])


def replications_of(name: str) -> int:
    """The replications a built-in sweep's file asks for (1 when it cannot be read)."""
    return int(spec_field(name, "replications") or 1)


def cells_of(name: str) -> int:
    """The number of grid cells of a built-in sweep (0 when it cannot be read)."""
    try:
        return load_spec(name).cells
    except Exception:
        return 0


def spec_field(name: str, field: str) -> Any:
    """A field of a built-in sweep's spec; None when the file cannot be read (its error
    is reported when it is run)."""
    try:
        return getattr(load_spec(name), field)
    except Exception:
        return None


def show_sweep(rows: pd.DataFrame, key: str) -> None:
    """The sweep on screen: failures, a view against load, the means, a CSV download."""
    spec = rows.attrs.get("sweep") or {}
    st.subheader(st.session_state.get(LABEL, sweep_name(rows)), anchor=False)
    if ORIGIN in st.session_state:
        st.caption(st.session_state[ORIGIN])
    if spec.get("description"):
        st.caption(" ".join(str(spec["description"]).split()))
    show_failures(rows)
    show_view(rows, key)
    st.caption(
        "Means over replications; error bars are 95% confidence intervals "
        "(none with a single replication)."
    )
    st.markdown("**Means per cell**")
    table = means_table(means_of(rows, key))
    st.dataframe(table, hide_index=True, column_config=NUMBERS)
    st.download_button(
        "Rows (CSV)",
        data=lambda: rows.to_csv(index=False).encode(),
        file_name=f"{sweep_name(rows)}-rows.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        help="One row per run: its axes, seed, every metric and its error ('' when it ran).",
    )


def show_failures(rows: pd.DataFrame) -> None:
    """How many runs failed, and which (open when there are few)."""
    failed = failures(rows)
    if len(failed):
        st.warning(f"{len(failed)} of {len(rows)} runs failed.", icon=":material/warning:")
        with st.expander(f"Failed runs ({len(failed)})", expanded=len(failed) <= 5):
            st.dataframe(failed, hide_index=True)


def show_view(rows: pd.DataFrame, key: str) -> None:
    """The view picked (a metric against load), or why it cannot be drawn."""
    view = st.segmented_control(
        "View",
        (*VIEWS, OTHER),
        key=VIEW,
        required=True,
        default="latency",
        persist_state="session",
    )
    metric = None
    percentiles: tuple[str, ...] = charts.PERCENTILES
    if view == "latency":
        percentiles = percentile_picker()
    if view == OTHER:
        metrics = sw.metric_columns(rows)
        if st.session_state.get(METRIC) not in metrics:
            st.session_state[METRIC] = "success_rate" if "success_rate" in metrics else metrics[0]
        metric = st.selectbox("Metric", metrics, key=METRIC)
    try:
        figure = chart(rows, key, view, metric, percentiles)
    except ValueError as exc:
        st.info(str(exc), icon=":material/info:")
    else:
        st.plotly_chart(figure, key="sweep_chart", config=CHART_CONFIG)


def percentile_picker() -> tuple[str, ...]:
    """The latency percentiles drawn, in their order."""
    # Twelve lines per panel with four protocols: p99 alone reads best under faults.
    chosen = st.pills(
        "Percentiles",
        charts.PERCENTILES,
        selection_mode="multi",
        default=list(charts.PERCENTILES),
        key=PERCENTS,
        persist_state="session",
    )
    return tuple(p for p in charts.PERCENTILES if p in (chosen or []))


def render() -> tuple[pd.DataFrame | None, str | None]:
    """The sweeps view of the Compare page; returns the sweep on screen (rows and key),
    or (None, None)."""
    st.caption(
        "A sweep runs one scenario over a grid (protocol x offered load x faults, for the "
        "built-in one), each cell several times: compare protocols as load grows."
    )
    source_picker()
    if ERROR in st.session_state:
        st.error(st.session_state[ERROR], icon=":material/error:")
    rows = st.session_state.get(ROWS)
    key = st.session_state.get(KEY)
    if rows is None or key is None:
        st.info("No sweep yet: open a saved one or run a built-in one.", icon=":material/info:")
        return None, None
    show_sweep(rows, key)
    return rows, key


__all__ = ["open_sweep", "render", "run_advisor_sweep", "run_builtin", "saved_sweeps"]
