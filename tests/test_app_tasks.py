"""A2A tasks on Replay, and real traces on the dashboard (issues 15 and 17), under
Streamlit's AppTest: task-state bands and the tasks table; a trace file opened by upload;
a live OTLP receiver followed."""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING, Any

import pytest
from streamlit.testing.v1 import AppTest

import sim
from sim.otlp import jaeger_json, otlp_json
from sim.trace import Run
from ui import state

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


# --- a trace file opened by upload (issue 17) -----------------------------------------


def heading(at: AppTest) -> str:
    """The Run page's summary heading."""
    return at.subheader[0].value


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="trace_upload").set_value((name, data, "application/octet-stream"))
    return at.run()


def test_an_uploaded_trace_becomes_the_run_on_every_page(a2a: Run, boot: Boot) -> None:
    at = boot()
    assert heading(at) != "a2a-long-task · imported trace"
    upload(at, "a2a.otlp.json.gz", gzip.compress(otlp_json(a2a).encode()))
    assert not at.exception and not at.error
    assert heading(at) == "a2a-long-task · imported trace"
    assert at.session_state["run"].manifest["source"]["spans"] == len(a2a.spans)
    for page in ("replay", "cascades", "breakers", "queues", "topology", "compare"):
        at.switch_page(state.PAGES[page]).run()
        assert not at.exception, (page, [e.value for e in at.exception])
    # The A2A tasks came back from the export's span events, and Replay draws them.
    at.switch_page(state.PAGES["replay"]).run()
    assert "A2A tasks" in subheaders(at)
    bands = charts(at)[2]["data"]
    completed = next(t for t in bands if t["name"] == "completed")
    assert len(completed["x"]) == a2a.tasks["task_id"].nunique()


def test_a_jaeger_file_opens_too(chain: Run, boot: Boot) -> None:
    at = boot()
    upload(at, "chain.jaeger.json", jaeger_json(chain).encode())
    assert not at.exception and not at.error
    assert heading(at).endswith("· imported trace")
    assert at.session_state["run"].manifest["source"]["spans"] == len(chain.spans)


def test_a_bad_trace_file_gets_one_sentence_and_the_run_stays(boot: Boot) -> None:
    at = boot()
    before = heading(at)
    upload(at, "notes.json", b'{"hello": 1}')
    assert not at.exception
    assert len(at.error) == 1
    said = at.error[0].value
    assert said.startswith("notes.json is not a trace this reads") and "/tmp" not in said
    assert heading(at) == before
