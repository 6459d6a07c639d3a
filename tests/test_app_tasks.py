"""A2A tasks on Replay, and real traces on the dashboard (issues 15 and 17), under
Streamlit's AppTest: task-state bands and the tasks table; a trace file opened by upload;
a live OTLP receiver followed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from streamlit.testing.v1 import AppTest

import sim
from sim.trace import Run

if TYPE_CHECKING:
    from tests.conftest import Boot


@pytest.fixture(scope="module")
def a2a() -> Run:
    """a2a-long-task: 32 five-minute tasks, some waiting for their client's input."""
    return sim.run("a2a-long-task")


def charts(at: AppTest) -> list[dict[str, Any]]:
    """Every plotly chart on the page, as its JSON spec."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def subheaders(at: AppTest) -> list[str]:
    return [h.value for h in at.subheader]


def test_replay_draws_each_tasks_states_and_lists_the_tasks(a2a: Run, boot: Boot) -> None:
    at = boot("replay", a2a)
    assert not at.error
    assert "A2A tasks" in subheaders(at)
    specs = charts(at)
    assert len(specs) == 3  # the diagram, the overview, the task bands
    bands = specs[2]["data"]
    names = {t["name"] for t in bands}
    assert {"working", "input-required", "completed"} <= names
    waiting = next(t for t in bands if t["name"] == "input-required")
    asked = a2a.tasks[a2a.tasks["to_state"] == "input-required"]
    assert len(waiting["y"]) == len(asked)
    assert any("asks its client for input" in h for h in waiting["hovertext"])
    tasks = next(df.value for df in at.dataframe if "final_state" in df.value.columns)
    assert len(tasks) == a2a.tasks["task_id"].nunique()
    assert set(tasks["final_state"]) == {"completed"} and not tasks["open"].any()
    assert (tasks.loc[tasks["task"].isin(asked["task_id"]), "input-required"] > 0).all()


def test_a_run_without_tasks_shows_nothing_extra_on_replay(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    assert "A2A tasks" not in subheaders(at)
    assert len(at.get("plotly_chart")) == 2
