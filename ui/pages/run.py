"""Run page: pick, upload or edit a scenario, turn its main knobs, run it, read its summary.

The editor's YAML text is the scenario; the knobs are overrides on top of it (as the
CLI's `--set`). The finished Run is kept in `st.session_state["run"]` for every page. A
scenario with errors lists them next to the editor and nothing runs; a run that fails
says so in one `st.error`. Either way the previous Run stays on screen.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import Path
from typing import Any

import streamlit as st

from sim import Run, loading
from sim.otlp import otlp_json
from sim.plugins import plugin_roles
from sim.scenario import Scenario
from sim.trace.run import RunFileError
from ui import export, knobs, live, state, traces
from ui import summary as views
from ui.figures import reads
from ui.path_form import path_form

log = logging.getLogger(__name__)

# Session-state keys of this page (RUN, RUN_SOURCE and ERROR live in ui.state).
SCENARIO = "scenario"  # the selectbox's value
SEED = "seed"  # the number input's value
TEXT = "scenario_text"  # the editor's text
ORIGIN = "scenario_origin"  # {"label": file name, "text": its text as loaded}
UPLOAD = "upload"  # the file uploader
UPLOAD_ERROR = "upload_error"  # why the last upload was refused
OPEN_PATH = "open_path"  # a saved run directory to open
ERROR_OF = "run_error_of"  # "open" when ui.state's ERROR is a saved run's that did not open
KNOBS_OPEN = 12  # more knobs than this start folded: they would push the results off screen


def peek(name: str) -> Scenario | None:
    """A built-in scenario, or None when its file is broken.

    A broken file is reported when the user runs it, with its own sentences, so this
    stays quiet about it.
    """
    try:
        return loading.load(name)
    except Exception:
        return None


def scenario_seed(name: str) -> int:
    """The seed written in a built-in scenario; 0 when the file cannot be read."""
    scenario = peek(name)
    return int(scenario.seed) if scenario is not None else 0


def builtin_text(name: str) -> str:
    """A built-in scenario's file as text ('' when unreadable)."""
    try:
        return loading.builtin_path(name).read_text(encoding="utf-8")
    except OSError:
        return ""


def load_builtin(name: str) -> None:
    """Put a built-in scenario in the editor, with its own seed."""
    text = builtin_text(name)
    st.session_state[TEXT] = text
    st.session_state[ORIGIN] = {"label": f"{name}.yaml", "text": text, "builtin": name}
    st.session_state[SEED] = scenario_seed(name)


def on_scenario_change() -> None:
    """A newly picked scenario replaces the editor's text and starts from its own seed."""
    load_builtin(st.session_state[SCENARIO])
    st.session_state.pop(UPLOAD_ERROR, None)


def on_upload() -> None:
    """An uploaded file goes into the editor (data only: YAML safe loading, later)."""
    uploaded = st.session_state.get(UPLOAD)
    st.session_state.pop(UPLOAD_ERROR, None)
    if uploaded is None:
        return
    try:
        text = export.upload_text(uploaded.name, uploaded.getvalue())
    except export.UploadError as exc:
        st.session_state[UPLOAD_ERROR] = str(exc)
        return
    st.session_state[TEXT] = text
    st.session_state[ORIGIN] = {"label": uploaded.name, "text": text, "builtin": None}
    with contextlib.suppress(Exception):  # the editor lists the file's errors
        st.session_state[SEED] = int(loading.from_text(text, uploaded.name).seed)


def editor_label() -> str:
    """How errors name the editor's text: the file it came from, '(edited)' once changed."""
    origin = st.session_state.get(ORIGIN, {})
    label = origin.get("label", "scenario")
    return label if st.session_state.get(TEXT) == origin.get("text") else f"{label} (edited)"


def parse(text: str, label: str) -> tuple[dict[str, Any] | None, Scenario | None, list[str]]:
    """(raw data, scenario, errors) of the editor's text; errors are sentences."""
    try:
        data = loading.parse_text(text, label)
        scenario = loading.validate(data, label)
    except loading.ScenarioError as exc:
        return None, None, list(exc.lines)
    return data, scenario, []


def knob_widget(knob: knobs.Knob, key: str) -> bool | str | int | float | None:
    """One knob as the widget that fits its kind; returns the widget's value."""
    if knob.kind in ("enabled", "flag"):
        return st.checkbox(
            knob.label, value=bool(knob.value), key=key, persist_state="session", help=knob.help
        )
    if knob.kind in ("number", "integer"):
        # A plugin role's setting: no bounds here, its own model validates what is set.
        integer = knob.kind == "integer"
        value = st.number_input(
            knob.label,
            value=int(knob.value) if integer else float(knob.value),
            step=1 if integer else None,
            format="%d" if integer else "%g",
            key=key,
            persist_state="session",
            help=knob.help,
        )
        return int(value) if integer else value
    if knob.kind == "choice":
        return st.selectbox(
            knob.label,
            knob.options,
            index=knob.options.index(knob.value),
            key=key,
            persist_state="session",
        )
    if knob.kind == "count":
        return int(
            st.number_input(
                knob.label,
                min_value=1,
                value=int(knob.value),
                step=1,
                key=key,
                persist_state="session",
                help=knob.help,
            )
        )
    if knob.kind == "share":
        return st.number_input(
            knob.label,
            min_value=0.01,
            max_value=1.0,
            value=float(knob.value),
            step=0.05,
            format="%g",
            key=key,
            persist_state="session",
            help=knob.help,
        )
    optional = knob.kind == "optional_seconds"
    return st.number_input(
        knob.label,
        min_value=0.0,
        value=None if knob.value is None else float(knob.value),
        step=0.5 if knob.kind != "rate" else 1.0,
        format="%g",
        key=key,
        persist_state="session",
        help=knob.help,
        placeholder="none" if optional else None,
    )


def knob_widgets(scenario: Scenario, digest: str) -> dict[str, Any]:
    """The knobs as widgets: a column per group, then one row per fault window;
    returns {path: value}.

    Widget keys carry a digest of the editor's text, so editing the text (or picking
    another scenario) starts the knobs again from the text's values.
    """
    values: dict[str, Any] = {}
    groups: dict[str, list[knobs.Knob]] = {}
    for knob in knobs.knobs(scenario):
        groups.setdefault(knob.group, []).append(knob)
    if not groups:
        st.caption("This scenario has no knobs to turn.")
        return values
    faults = groups.pop("Faults", [])
    per_row = 4  # narrower columns wrap every label
    listed = list(groups.items())
    for first in range(0, len(listed), per_row):
        row = listed[first : first + per_row]
        for column, (group, items) in zip(st.columns(per_row), row, strict=False):
            with column:
                st.markdown(f"###### {group}")
                for knob in items:
                    values[knob.path] = knob_widget(knob, f"knob:{digest}:{knob.path}")
    if faults:
        # A fault is three knobs (on, start, end): one row each, aligned like a table.
        st.markdown("###### Fault windows")
        for first in range(0, len(faults), 3):
            cells = st.columns([2, 1, 1, 4], vertical_alignment="bottom")
            for column, knob in zip(cells, faults[first : first + 3], strict=False):
                with column:
                    values[knob.path] = knob_widget(knob, f"knob:{digest}:{knob.path}")
    return values


def run_scenario(
    scenario: Scenario, seed: int, label: str, builtin: str | None, where: Any = None
) -> None:
    """Run the scenario with the page's seed (its progress bar in `where`); on failure
    keep the previous Run."""
    scenario = scenario.model_copy(update={"seed": seed})
    name = scenario.name
    st.session_state.pop(ERROR_OF, None)
    try:
        run = state.simulate(scenario, f"{name} (seed {seed})", where)
    except loading.ScenarioError as exc:
        st.session_state[state.ERROR] = views.error_text(exc, label)
    except Exception as exc:
        # The user gets one sentence; whoever runs the server still needs the traceback.
        log.exception("run of %s with seed %s failed", name, seed)
        st.session_state[state.ERROR] = views.error_text(
            exc, f"The run of {builtin or name} with seed {seed}"
        )
    else:
        state.store(run, {"scenario": name, "seed": seed, "label": label})


def open_saved(path: str) -> None:
    """Put a saved run directory (`--out`, `Run.save`) on screen, read once."""
    folder = Path(path).expanduser()
    try:
        run = state.open_saved(folder)
    except RunFileError as exc:  # the folder is not a saved run: its one sentence
        st.session_state[state.ERROR] = f"Not opened: {exc}."
        st.session_state[ERROR_OF] = "open"
    except Exception as exc:
        st.session_state[state.ERROR] = views.error_text(exc, f"Opening {folder}")
        st.session_state[ERROR_OF] = "open"
    else:
        seed = run.manifest.get("seed", 0)
        state.store(run, {"scenario": run.name, "seed": seed, "label": folder.name})


def show_downloads(run: Run) -> None:
    """The run as a zip of its directory, and its trace as CSV files; built on click."""
    source = st.session_state.get(state.RUN_SOURCE, {})
    stem = f"{source.get('scenario', run.name)}-seed{source.get('seed', 0)}"
    left, right, otlp, _ = st.columns([1, 1, 1, 2])
    left.download_button(
        "Run (zip)",
        data=lambda: export.run_zip(run, stem),
        file_name=f"{stem}.zip",
        mime="application/zip",
        icon=":material/download:",
        on_click="ignore",
        help="The run directory: run.json and one Parquet file per table (sim.load reads it).",
    )
    right.download_button(
        "Trace (CSV)",
        data=lambda: export.trace_csv_zip(run),
        file_name=f"{stem}-csv.zip",
        mime="application/zip",
        icon=":material/table:",
        on_click="ignore",
        help="One CSV file per table: messages, spans, breakers, queues, faults, agents.",
    )
    otlp.download_button(
        "Trace (OTLP)",
        data=lambda: otlp_json(run).encode(),
        file_name=f"{stem}.otlp.json",
        mime="application/json",
        icon=":material/account_tree:",
        on_click="ignore",
        help="OpenTelemetry OTLP/JSON: one resource per agent, for Jaeger or any OTLP tool.",
    )


def show_summary() -> None:
    """The Run on screen: headline cards, then tables of outcomes, latency and faults."""
    run: Run | None = st.session_state.get(state.RUN)
    if run is None:
        st.info("No run yet: pick a scenario and press Run.", icon=":material/info:")
        return
    summary = state.summary(run)
    st.subheader(state.heading(run), anchor=False)
    wall = run.manifest.get("wall_seconds")
    timing = f" in {wall:.2f} s of wall time" if isinstance(wall, int | float) else ""
    previous = st.session_state.get(state.PREVIOUS)
    against = f" Changes are against the previous run, {previous['label']}." if previous else ""
    st.caption(f"{run.duration:,.0f} s simulated{timing}.{against}")
    show_cards(summary, previous["summary"] if previous else None)
    show_downloads(run)
    show_outcomes(run, summary)
    show_latency(summary)
    show_faults(run)


def show_cards(summary: dict[str, Any], previous: dict[str, Any] | None = None) -> None:
    """The headline cards, six in a row, then the second row (with tokens and cost
    when the run made model calls); each with its change against the previous run."""
    rows = (views.cards(summary), views.more_cards(summary) + views.llm_cards(summary))
    for row in rows:
        for column, card in zip(
            st.columns(6), views.with_deltas(row, summary, previous), strict=False
        ):
            column.metric(
                card.label,
                card.value,
                delta=card.delta,
                delta_color=card.delta_color,  # type: ignore[arg-type]
                help=card.help,
                border=True,
            )


def show_outcomes(run: Run, summary: dict[str, Any]) -> None:
    """Requests, messages and spans by outcome, side by side."""
    share = st.column_config.NumberColumn(format="percent")
    count = st.column_config.NumberColumn(format="localized")
    left, middle, right = st.columns([1, 1, 1.4])
    with left:
        st.markdown("**Requests by outcome**")
        st.dataframe(
            views.requests_table(summary),
            hide_index=True,
            column_config={"count": count, "share": share},
        )
    with middle:
        st.markdown("**Messages by outcome**")
        st.dataframe(
            views.messages_table(summary),
            hide_index=True,
            column_config={"count": count, "share": share},
        )
    with right:
        st.markdown("**Spans by outcome and kind**")
        spans = views.spans_table_of(reads.spans_by_outcome_kind(run))
        st.dataframe(
            spans,
            hide_index=True,
            column_config={c: count for c in spans.columns if c != "outcome"},
        )


def show_latency(summary: dict[str, Any]) -> None:
    """Latency percentiles of successful calls, per channel, in ms."""
    st.markdown("**Latency of successful calls by channel**")
    ms = "%.1f"
    st.dataframe(
        views.latency_table(summary),
        hide_index=True,
        column_config={
            "calls": st.column_config.NumberColumn(format="localized"),
            "p50_ms": st.column_config.NumberColumn("p50 (ms)", format=ms),
            "p95_ms": st.column_config.NumberColumn("p95 (ms)", format=ms),
            "p99_ms": st.column_config.NumberColumn("p99 (ms)", format=ms),
        },
    )


def show_faults(run: Run) -> None:
    """The run's fault windows, when it has any."""
    faults = views.faults_table(run.faults)
    if faults.empty:
        return
    st.markdown("**Faults**")
    st.dataframe(
        faults,
        hide_index=True,
        column_config={
            "start": st.column_config.NumberColumn("start (s)", format="%.1f"),
            "end": st.column_config.NumberColumn(
                "end (s)", format="%.1f", help="Empty: the fault lasts to the end of the run."
            ),
        },
    )


st.title("Run", anchor=False)

names = loading.builtin_names()
if not names:
    st.error("No built-in scenarios were found in the scenarios folder.", icon=":material/error:")
    st.stop()

# Defaults are written into session state before the widgets exist, so the widgets never
# get a second, conflicting default through `value=`/`index=`.
if st.session_state.get(SCENARIO) not in names:
    st.session_state[SCENARIO] = state.default_scenario(names)
    load_builtin(st.session_state[SCENARIO])
if TEXT not in st.session_state or ORIGIN not in st.session_state:
    load_builtin(st.session_state[SCENARIO])
if SEED not in st.session_state:
    st.session_state[SEED] = scenario_seed(st.session_state[SCENARIO])

pick, seed_box, button = st.columns([3, 1, 1], vertical_alignment="bottom")
name = pick.selectbox(
    "Scenario",
    names,
    key=SCENARIO,
    on_change=on_scenario_change,
    persist_state="session",
    help="Built-in scenarios, from the scenarios folder. Picking one loads it into the editor.",
)
seed = seed_box.number_input(
    "Seed",
    min_value=0,
    step=1,
    format="%d",
    key=SEED,
    persist_state="session",
    help="The same scenario and seed always give the same run. Overrides the file's seed.",
)
clicked = button.button("Run", type="primary", icon=":material/play_arrow:", width="stretch")

text = st.session_state[TEXT]
label = editor_label()
data, scenario, problems = parse(text, label)
if scenario is not None and scenario.description.strip():
    st.caption(" ".join(scenario.description.split()))
if plugin_roles():
    st.caption(
        "Plugin roles loaded (by whoever started this dashboard): "
        + ", ".join(plugin_roles())
        + ". A scenario names them as `role:`; their settings are knobs below."
    )
# The results come first, right under the Run button (filled in at the end, once the
# run is done): pressing Run changes what is on screen, however many knobs follow.
results = st.container()
with results:
    # The run on screen is drawn before a new one starts (below), so pressing Stop
    # during a run leaves it on screen; the new one replaces it once it is done.
    progress = st.container()
    # A failed run of the editor's text gives way to the text's own problems once it is
    # edited; a saved run that would not open is news whatever the editor holds.
    opening = st.session_state.get(ERROR_OF) == "open"
    if state.ERROR in st.session_state and (opening or not problems):
        st.error(st.session_state[state.ERROR], icon=":material/error:")
    show_summary()

knob_count = len(knobs.knobs(scenario)) if scenario is not None else 0
with st.expander(
    f"Knobs ({knob_count})",
    expanded=knob_count <= KNOBS_OPEN,
    icon=":material/tune:",
):
    knob_values: dict[str, Any] = {}
    if scenario is None:
        st.caption("Fix the scenario's errors to use the knobs.")
    else:
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        knob_values = knob_widgets(scenario, digest)
overrides = knobs.changed(knobs.knobs(scenario), knob_values) if scenario is not None else {}

editor_open = bool(problems) or label.endswith("(edited)") or UPLOAD_ERROR in st.session_state
with st.expander("Scenario file", expanded=editor_open, icon=":material/edit_note:"):
    left, right = st.columns([3, 2])
    with left:
        st.text_area(
            "Scenario (YAML or JSON)",
            key=TEXT,
            height=340,
            persist_state="session",
            help="Edit and press Run. The knobs above start from these values.",
        )
    with right:
        st.file_uploader(
            "Upload a scenario file",
            type=["yaml", "yml", "json"],
            key=UPLOAD,
            on_change=on_upload,
            max_upload_size=export.MAX_UPLOAD_BYTES // (1024 * 1024),
            help="YAML or JSON, at most 5 MB; read as data only (YAML safe loading).",
        )
        if UPLOAD_ERROR in st.session_state:
            st.warning(st.session_state[UPLOAD_ERROR], icon=":material/block:")
        if problems:
            intro = "Not run: " if clicked else ""
            st.error(
                f"{intro}{len(problems)} problem(s) in the scenario:\n\n" + "\n\n".join(problems),
                icon=":material/error:",
            )
        else:
            st.success(f"{label}: valid.", icon=":material/check_circle:")

with st.expander("Open a saved run", icon=":material/folder_open:"):
    path = path_form(
        "open_saved_run",
        "Run directory",
        OPEN_PATH,
        "Open run",
        placeholder="runs/my-run",
        help="A directory written by `python -m sim run --out DIR` or `Run.save(DIR)`, "
        "on the machine that serves this page.",
    )
    if path:
        open_saved(path)
        st.rerun()  # the summary above shows the run just opened
    traces.upload()  # a real system's trace file, imported
live.controls()  # follow a receiver's file, or start one here

if overrides:
    origin = st.session_state.get(ORIGIN, {})
    removed = [p for p, v in overrides.items() if p.endswith(".enabled") and not v]
    if origin.get("builtin") and not label.endswith("(edited)"):
        st.caption("The same run from the command line:")
        st.code(knobs.command_line(origin["builtin"], int(seed), overrides), language="bash")
    else:
        st.caption("Overrides: " + ", ".join(f"{p}={v}" for p, v in overrides.items()))
    if removed:
        st.caption(f"{len(removed)} fault(s) switched off, so removed from the run.")

# The first visit runs the default once, so the page never opens empty; a failure is not
# retried on every rerun (ERROR is set), the user sees it and can press Run.
first_visit = state.RUN not in st.session_state and state.ERROR not in st.session_state
if (clicked or first_visit) and scenario is not None and data is not None:
    try:
        final = loading.validate(knobs.apply(data, overrides), label) if overrides else scenario
    except loading.ScenarioError as exc:
        problems = list(exc.lines)
        st.error("The knobs made the scenario invalid:\n\n" + "\n\n".join(problems))
    else:
        builtin = st.session_state.get(ORIGIN, {}).get("builtin")
        run_scenario(final, int(seed), label, builtin, progress)
        st.rerun()  # draw the new run (or its error) where the previous one is
