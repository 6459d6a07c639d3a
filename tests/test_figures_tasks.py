"""A2A task-state bands and the tasks table, pure: a `tasks` table in, the bands, the
endings, the summary and the figure's data out (no browser, no Streamlit)."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

import sim
from sim.trace import conform
from ui.figures import tasks as tf

DURATION = 20.0


def synthetic_tasks() -> pd.DataFrame:
    """Five tasks on one agent: t1 asks for input and completes; t2 waits for
    credentials and fails; t3 is rejected at creation; t4 still waits for credentials at
    the end of the run; t5 is cancelled before any work."""
    rows = [
        (1.0, "t1", "", "submitted", "message received", "c-1"),
        (2.0, "t1", "submitted", "working", "a worker took it", "c-1"),
        (3.0, "t2", "", "submitted", "message received", "c-2"),
        (3.0, "t2", "submitted", "working", "a worker took it", "c-2"),
        (4.0, "t3", "", "rejected", "the agent refused it", "c-3"),
        (5.0, "t1", "working", "input-required", "the agent asks its client for input", "c-1"),
        (6.0, "t2", "working", "auth-required", "the agent needs credentials", "c-2"),
        (7.0, "t4", "", "working", "a worker took it", "c-4"),
        (8.0, "t5", "", "submitted", "message received", "c-5"),
        (9.0, "t1", "input-required", "working", "the client answered", "c-1"),
        (10.0, "t2", "auth-required", "failed", "no credentials came", "c-2"),
        (11.0, "t5", "submitted", "canceled", "the client cancelled it", "c-5"),
        (12.0, "t1", "working", "completed", "the work is done", "c-1"),
        (15.0, "t4", "working", "auth-required", "the agent needs credentials", "c-4"),
    ]
    frame = pd.DataFrame(
        rows, columns=["time", "task_id", "from_state", "to_state", "reason", "correlation_id"]
    )
    frame["agent"] = "agent"
    frame["span_id"] = ""
    return conform("tasks", frame)


def stretches(table: pd.DataFrame, task: str) -> list[tuple[str, float, float]]:
    part = table[table["task_id"] == task]
    return [(s, a, b) for s, a, b in zip(part["state"], part["start"], part["end"], strict=True)]


def test_bands_hold_each_non_terminal_stretch_and_the_open_one_runs_to_the_end() -> None:
    table = tf.bands(synthetic_tasks(), DURATION)
    assert stretches(table, "t1") == [
        ("submitted", 1.0, 2.0),
        ("working", 2.0, 5.0),
        ("input-required", 5.0, 9.0),
        ("working", 9.0, 12.0),
    ]
    assert stretches(table, "t3") == []  # rejected at creation: only its ending
    assert stretches(table, "t4") == [("working", 7.0, 15.0), ("auth-required", 15.0, DURATION)]
    assert table.loc[table["task_id"] == "t4", "open"].tolist() == [False, True]
    assert not table.loc[table["task_id"] == "t1", "open"].any()
    assert set(table["state"]).isdisjoint({"completed", "failed", "canceled", "rejected"})


def test_endings_are_where_each_task_reached_a_terminal_state() -> None:
    ends = tf.endings(synthetic_tasks())
    got = dict(zip(ends["task_id"], zip(ends["state"], ends["time"], strict=True), strict=True))
    assert got == {
        "t1": ("completed", 12.0),
        "t2": ("failed", 10.0),
        "t3": ("rejected", 4.0),
        "t5": ("canceled", 11.0),
    }
    assert ends.set_index("task_id").loc["t2", "reason"] == "no credentials came"


def test_the_summary_gives_final_state_open_and_time_in_each_state() -> None:
    rows = tf.summary(synthetic_tasks(), DURATION).set_index("task")
    assert list(rows.index) == ["t1", "t2", "t3", "t4", "t5"]  # as first seen
    assert rows["final_state"].to_dict() == {
        "t1": "completed",
        "t2": "failed",
        "t3": "rejected",
        "t4": "auth-required",
        "t5": "canceled",
    }
    assert rows["open"].to_dict() == {
        "t1": False,
        "t2": False,
        "t3": False,
        "t4": True,
        "t5": False,
    }
    assert math.isnan(rows.loc["t4", "end"]) and rows.loc["t1", "end"] == 12.0
    assert rows.loc["t1", "working"] == 6.0 and rows.loc["t1", "input-required"] == 4.0
    assert rows.loc["t4", "auth-required"] == 5.0  # from 15 s to the end of the run
    assert rows.loc["t2", "submitted"] == 0.0  # taken by a worker at once
    assert rows.loc["t1", "trace"] == "c-1"
    # A column per state the run saw, in the lifecycle's order; no terminal ones.
    assert list(rows.columns[-4:]) == ["submitted", "working", "input-required", "auth-required"]


def bars(fig: go.Figure) -> dict[str, go.Bar]:
    return {t.name: t for t in fig.data if isinstance(t, go.Bar)}


def test_the_figure_draws_a_band_per_state_a_marker_per_ending_and_an_arrow_if_open() -> None:
    fig = tf.tasks_figure(synthetic_tasks(), DURATION)
    drawn = bars(fig)
    assert set(drawn) == {"submitted", "working", "input-required", "auth-required"}
    waiting = drawn["input-required"]
    assert list(waiting.y) == ["t1 (c-1)"] and list(waiting.base) == [5.0]
    assert list(waiting.x) == [4.0]
    assert "task t1" in waiting.hovertext[0] and "input-required" in waiting.hovertext[0]
    assert "the agent asks its client for input" in waiting.hovertext[0]
    assert waiting.marker.pattern.shape == "/"  # interrupted: hatched
    assert drawn["working"].marker.pattern.shape == ""
    # t2's submitted lasted 0 s: not drawn as seconds of queueing.
    assert "t2 (c-2)" not in list(drawn["submitted"].y)

    ends = {t.name: t for t in fig.data if isinstance(t, go.Scatter) and t.mode == "markers"}
    assert list(ends["completed"].x) == [12.0] and ends["completed"].marker.symbol == "circle"
    assert list(ends["failed"].y) == ["t2 (c-2)"] and ends["failed"].marker.symbol == "x"
    assert list(ends["rejected"].y) == ["t3 (c-3)"]
    assert "no credentials came" in ends["failed"].hovertext[0]
    still = ends["open at the end"]
    assert list(still.x) == [DURATION] and list(still.y) == ["t4 (c-4)"]
    assert "still auth-required" in still.hovertext[0]
    # Tasks top to bottom in the order they began.
    assert list(fig.layout.yaxis.categoryarray) == [
        "t5 (c-5)",
        "t4 (c-4)",
        "t3 (c-3)",
        "t2 (c-2)",
        "t1 (c-1)",
    ]


def test_the_figure_draws_the_first_tasks_and_says_how_many_it_left_out() -> None:
    fig = tf.tasks_figure(synthetic_tasks(), DURATION, limit=2)
    assert list(fig.layout.yaxis.categoryarray) == ["t2 (c-2)", "t1 (c-1)"]
    assert "the first 2 of 5 tasks" in fig.layout.title.text
    shown = {y for t in fig.data for y in (t.y or []) if y is not None}
    assert shown == {"t1 (c-1)", "t2 (c-2)"}


def test_no_tasks_draws_an_empty_figure_and_an_empty_table() -> None:
    empty = conform("tasks", pd.DataFrame(columns=synthetic_tasks().columns))
    fig = tf.tasks_figure(empty, DURATION)
    assert not fig.data and "No agent-protocol task" in fig.layout.annotations[0].text
    assert tf.summary(empty, DURATION).empty and tf.bands(empty, DURATION).empty


def test_the_long_a2a_task_run_shows_its_waits_for_input_and_every_ending() -> None:
    run = sim.run("a2a-long-task")
    rows = tf.summary(run.tasks, run.duration)
    assert len(rows) == run.tasks["task_id"].nunique()
    assert set(rows["final_state"]) == {"completed"} and not rows["open"].any()
    waited = rows[rows["input-required"] > 0]
    asked = run.tasks[run.tasks["to_state"] == "input-required"]["task_id"]
    assert set(waited["task"]) == set(asked) and len(asked) > 0
    fig = tf.tasks_figure(run.tasks, run.duration, run.faults)
    assert len(bars(fig)["input-required"].y) == len(asked)
    completed = next(t for t in fig.data if t.name == "completed")
    assert len(completed.x) == len(rows)
