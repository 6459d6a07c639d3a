"""Agent-protocol tasks over a run: each A2A task's states as bands, and a table of them.

The `tasks` table holds one row per state change (`time, task_id, agent, from_state,
to_state, reason`). Here each task is a row of bands, one per stretch in a state, like
the breakers' bands: active states (submitted, working) in blues, the interrupted ones
(input-required, auth-required: the task waits on its client) in loud colours, and the
terminal state (completed, failed, canceled, rejected) as a marker where the task ended,
not a band: a finished task has no time left in any state. A task still open at the end
of the run has its last band run to the end, with an arrow there.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from protocols.a2a.lifecycle import INTERRUPTED, STATES, TERMINAL
from ui.figures.common import add_fault_bands, base_layout, empty_figure, time_axis_title

# Active states blue (lighter while queued), waiting on the client amber and violet,
# the endings as a reader expects them: completed green, failed red, the two refusals
# grey and brown.
TASK_COLORS = {
    "submitted": "#9ecae1",
    "working": "#1f77b4",
    "input-required": "#ff9900",
    "auth-required": "#9467bd",
    "completed": "#2ca02c",
    "failed": "#d62728",
    "canceled": "#7f7f7f",
    "rejected": "#8c564b",
}
TERMINAL_SYMBOLS = {
    "completed": "circle",
    "failed": "x",
    "canceled": "square",
    "rejected": "diamond",
}
OTHER_COLOR = "#bcbd22"  # a state the model does not know (an imported trace's)
OPEN_SYMBOL = "triangle-right"
BAND_COLUMNS = [
    "task_id",
    "label",
    "agent",
    "correlation_id",
    "state",
    "start",
    "end",
    "reason",
    "open",
]
END_COLUMNS = ["task_id", "label", "agent", "correlation_id", "state", "time", "reason"]
# A band narrower than this share of the run is drawn this wide (hover keeps the true
# times): a task queued for a millisecond would otherwise be invisible.
MIN_BAND_SHARE = 0.004
MAX_TASKS = 60  # rows drawn at most: past this the chart says how many it left out


def task_label(task_id: str, correlation_id: str = "") -> str:
    """How a task is named on the axis: its id, with the trace it serves when known."""
    return f"{task_id} ({correlation_id})" if correlation_id else task_id


def _ordered(tasks: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Each task's rows in time order, tasks in the order they were first seen."""
    rows = tasks.sort_values("time", kind="stable")
    groups = {str(k): g for k, g in rows.groupby("task_id", sort=False)}
    return [(task, groups[task]) for task in dict.fromkeys(rows["task_id"].astype(str))]


def _corr(group: pd.DataFrame) -> str:
    """The trace a task serves: its first non-empty correlation id, or ''."""
    if "correlation_id" not in group.columns:
        return ""
    found = [str(v) for v in group["correlation_id"] if isinstance(v, str) and v]
    return found[0] if found else ""


def bands(tasks: pd.DataFrame, duration: float) -> pd.DataFrame:
    """Each task's stretches in a non-terminal state: one row per stretch.

    A state lasts from the transition into it to the task's next transition, or to
    `duration` when there is none (`open` is then True: the task never ended). Columns:
    `task_id, label, agent, correlation_id, state, start, end, reason` (of the
    transition that began the stretch), `open`. Terminal states are in `endings`.
    """
    out = []
    for task, group in _ordered(tasks):
        times = group["time"].astype(float).tolist()
        states = group["to_state"].astype(str).tolist()
        reasons = group["reason"].astype(str).tolist()
        corr = _corr(group)
        agent = str(group["agent"].iloc[0])
        for i, state in enumerate(states):
            if state in TERMINAL:
                continue
            last = i + 1 == len(times)
            stop = duration if last else times[i + 1]
            row = [task, task_label(task, corr), agent, corr, state, times[i]]
            out.append([*row, max(stop, times[i]), reasons[i], last])
    return pd.DataFrame(out, columns=BAND_COLUMNS)


def endings(tasks: pd.DataFrame) -> pd.DataFrame:
    """Where each task reached a terminal state: `task_id, label, agent,
    correlation_id, state, time, reason`, one row per task that ended."""
    out = []
    for task, group in _ordered(tasks):
        done = group[group["to_state"].isin(TERMINAL)]
        if done.empty:
            continue
        row = done.iloc[0]
        corr = _corr(group)
        state, time, reason = str(row["to_state"]), float(row["time"]), str(row["reason"])
        out.append([task, task_label(task, corr), str(row["agent"]), corr, state, time, reason])
    return pd.DataFrame(out, columns=END_COLUMNS)


def summary(tasks: pd.DataFrame, duration: float) -> pd.DataFrame:
    """One row per task: `task, trace, agent, final_state, open` (no terminal state by
    the end of the run), `start`, `end` (NaN while open), then the seconds spent in each
    non-terminal state the run saw (a column per state, in the lifecycle's order)."""
    spent = bands(tasks, duration)
    ends = endings(tasks).set_index("task_id")
    seen = [s for s in STATES if s not in TERMINAL and s in set(spent["state"])]
    seen += sorted(set(spent["state"]) - set(seen))
    out = []
    for task, group in _ordered(tasks):
        mine = spent[spent["task_id"] == task]
        final = str(group["to_state"].iloc[-1])
        row: dict[str, object] = {
            "task": task,
            "trace": _corr(group),
            "agent": str(group["agent"].iloc[0]),
            "final_state": final,
            "open": task not in ends.index,
            "start": float(group["time"].iloc[0]),
            "end": float(ends.loc[task, "time"]) if task in ends.index else float("nan"),
        }
        for state in seen:
            part = mine[mine["state"] == state]
            row[state] = float((part["end"] - part["start"]).sum())
        out.append(row)
    columns = ["task", "trace", "agent", "final_state", "open", "start", "end", *seen]
    return pd.DataFrame(out, columns=columns)


def tasks_figure(
    tasks: pd.DataFrame,
    duration: float,
    faults: pd.DataFrame | None = None,
    *,
    limit: int = MAX_TASKS,
    title: str | None = None,
) -> go.Figure:
    """State bands per task (horizontal bars, `base=start`, `x=end-start`, one trace per
    state so the legend is the key), a marker per terminal state where the task ended,
    an arrow at the run's end for tasks still open; hover says task, state, times and
    the reason. Draws the first `limit` tasks (by first transition) and says so in the
    title when it leaves some out. Fault windows shaded."""
    if tasks.empty:
        return empty_figure("No agent-protocol task in this run.")
    order = [task_label(t, _corr(g)) for t, g in _ordered(tasks)]
    shown = order[:limit]
    table = bands(tasks, duration)
    # A state passed through in no time (submitted, then a worker took it at once) is
    # in the table with 0 s; drawn, it would look like seconds of queueing.
    table = table[table["label"].isin(shown) & (table["end"] > table["start"])]
    ends = endings(tasks)
    ends = ends[ends["label"].isin(shown)]
    fig = go.Figure()
    for bar in _state_bars(table, duration):
        fig.add_trace(bar)
    for marker in _end_markers(ends):
        fig.add_trace(marker)
    opened = table[table["open"]]
    if len(opened):
        fig.add_trace(_open_markers(opened, duration))
    add_fault_bands(fig, faults, duration)
    if len(order) > limit:
        title = f"{title + ': ' if title else ''}the first {limit} of {len(order)} tasks"
    base_layout(fig, height=max(260, 140 + 22 * len(shown)), title=title)
    fig.update_layout(barmode="overlay", hovermode="closest")
    fig.update_yaxes(categoryorder="array", categoryarray=shown[::-1], fixedrange=True)
    fig.update_xaxes(range=[0, duration], title=time_axis_title())
    return fig


def _drawing_order(states: set[str]) -> list[str]:
    """The states to draw, long ones first: a short band (queued in submitted, a brief
    wait for input) is widened to stay visible and must lie on top, not under."""
    first = ["working", "submitted", "input-required", "auth-required"]
    return [s for s in first if s in states] + sorted(states - set(first))


def _state_bars(table: pd.DataFrame, duration: float) -> list[go.Bar]:
    """One bar trace per non-terminal state; its legend rank is the lifecycle's order."""
    bars = []
    for state in _drawing_order(set(table["state"])):
        part = table[table["state"] == state]
        waits = state in INTERRUPTED
        bars.append(
            go.Bar(
                orientation="h",
                y=part["label"].tolist(),
                base=part["start"].tolist(),
                x=(part["end"] - part["start"]).clip(lower=duration * MIN_BAND_SHARE).tolist(),
                marker={
                    "color": TASK_COLORS.get(state, OTHER_COLOR),
                    # Waiting on the client: hatched, so it reads without the colour key.
                    "pattern": {"shape": "/" if waits else "", "fgcolor": "#ffffff"},
                    "line": {"width": 0},
                },
                name=state,
                legendgroup=state,
                legendrank=_rank(state),
                customdata=part["correlation_id"].tolist(),
                hovertext=[
                    f"<b>task {r.task_id}</b> on {r.agent}: {state}<br>"
                    f"{r.start:.2f}–{r.end:.2f} s"
                    + (" (still open at the end of the run)" if r.open else "")
                    + (f"<br>{r.reason}" if r.reason else "")
                    for r in part.itertuples(index=False)
                ],
                hoverinfo="text",
                width=0.7,
            )
        )
    return bars


def _end_markers(ends: pd.DataFrame) -> list[go.Scatter]:
    """One marker trace per terminal state, at the time each task reached it."""
    markers = []
    for state in [s for s in STATES if s in TERMINAL and s in set(ends["state"])]:
        part = ends[ends["state"] == state]
        markers.append(
            go.Scatter(
                x=part["time"].tolist(),
                y=part["label"].tolist(),
                mode="markers",
                marker={
                    "symbol": TERMINAL_SYMBOLS[state],
                    "size": 10,
                    "color": TASK_COLORS[state],
                    "line": {"width": 1, "color": "#333"},
                },
                name=state,
                legendgroup=state,
                legendrank=_rank(state),
                customdata=part["correlation_id"].tolist(),
                hovertext=[
                    f"<b>task {r.task_id}</b> on {r.agent}: {state} at {r.time:.2f} s"
                    + (f"<br>{r.reason}" if r.reason else "")
                    for r in part.itertuples(index=False)
                ],
                hoverinfo="text",
            )
        )
    return markers


def _open_markers(opened: pd.DataFrame, duration: float) -> go.Scatter:
    """An arrow at the run's end on each task that never reached a terminal state."""
    return go.Scatter(
        x=[duration] * len(opened),
        y=opened["label"].tolist(),
        mode="markers",
        marker={"symbol": OPEN_SYMBOL, "size": 11, "color": "#333"},
        name="open at the end",
        legendrank=_rank("") + 1,
        customdata=opened["correlation_id"].tolist(),
        hovertext=[
            f"<b>task {r.task_id}</b> on {r.agent}: still {r.state} at the end of the run"
            for r in opened.itertuples(index=False)
        ],
        hoverinfo="text",
    )


def _rank(state: str) -> int:
    """A state's place in the legend: the lifecycle's order, unknown states after."""
    return 1000 + (STATES.index(state) if state in STATES else len(STATES))
