"""A2A tasks on Replay, and real traces on the dashboard (issues 15 and 17), under
Streamlit's AppTest: task-state bands and the tasks table; a trace file opened by upload;
a live OTLP receiver followed."""

from __future__ import annotations

import gzip
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
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
    # Named after the file (a Jaeger file carries no Switchboard run name).
    assert heading(at) == "chain · imported trace"
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


# --- a live receiver followed (issue 17) ----------------------------------------------


def otlp_request(trace: int, spans: int, service: str = "shop") -> dict[str, Any]:
    """An OTLP/JSON ExportTraceServiceRequest: one trace of `spans` spans, a root server
    span and its children, 10 ms each, one after the other."""
    base = 1_700_000_000_000_000_000 + trace * 1_000_000_000
    trace_id = f"{trace:032x}"
    rows = []
    for i in range(spans):
        rows.append(
            {
                "traceId": trace_id,
                "spanId": f"{trace * 100 + i + 1:016x}",
                "parentSpanId": "" if i == 0 else f"{trace * 100 + 1:016x}",
                "name": "GET /cart" if i == 0 else f"step {i}",
                "kind": 2 if i == 0 else 1,
                "startTimeUnixNano": str(base + i * 10_000_000),
                "endTimeUnixNano": str(base + (i + 1) * 10_000_000),
                "status": {},
            }
        )
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return {
        "resourceSpans": [
            {"resource": resource, "scopeSpans": [{"scope": {"name": "test"}, "spans": rows}]}
        ]
    }


def post(url: str, request: dict[str, Any]) -> int:
    body = json.dumps(request).encode()
    sent = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(sent, timeout=10) as answer:
        return int(answer.status)


def live_line(at: AppTest) -> str:
    """The sidebar's live counts."""
    return next(c.value for c in at.caption if "Live:" in c.value)


def click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click()
    return at.run()


def test_a_receiver_started_on_the_page_is_followed_and_stopped(boot: Boot) -> None:
    at = boot()
    before = heading(at)
    at.number_input(key="live_port").set_value(0)  # any free port
    click(at, "Start receiver")
    assert not at.exception and not at.error
    follow = at.session_state["live_follow"]
    url = follow.receiver.url
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/v1/traces")
    assert any(url in m.value for m in at.markdown)
    assert "0 requests, 0 spans, 0 traces" in live_line(at)
    assert heading(at) == before  # nothing arrived yet: the run on screen stays

    assert post(url, otlp_request(1, 3)) == 200
    assert post(url, otlp_request(2, 2)) == 200
    at.run()
    assert not at.exception
    assert "2 requests, 5 spans, 2 traces" in live_line(at)
    assert heading(at).endswith("(live) · imported trace")
    assert len(at.session_state["run"].spans) == 5

    assert post(url, otlp_request(3, 4)) == 200
    at.run()
    assert "3 requests, 9 spans, 3 traces" in live_line(at)
    assert len(at.session_state["run"].spans) == 9
    at.switch_page(state.PAGES["replay"]).run()
    assert not at.exception and "3 requests, 9 spans" in live_line(at)
    at.switch_page(state.PAGES["run"]).run()

    click(at, "Stop following")
    assert not any("Live:" in c.value for c in at.caption)
    assert len(at.session_state["run"].spans) == 9  # the last import stays on screen
    with pytest.raises(urllib.error.URLError):
        post(url, otlp_request(4, 1))


def test_a_typed_file_is_followed_a_whole_line_at_a_time(tmp_path: Path, boot: Boot) -> None:
    out = tmp_path / "traces.jsonl"
    at = boot()
    at.text_input(key="live_path").input(str(out))  # held by the form until submitted
    click(at, "Follow file")
    assert not at.exception
    assert any("no such file yet" in c.value for c in at.caption)

    first = json.dumps(otlp_request(1, 2))
    second = json.dumps(otlp_request(2, 3))
    out.write_text(first + "\n" + second[:40])  # the receiver is half-way through a line
    at.run()
    assert not at.exception and not at.error
    assert "1 requests, 2 spans, 1 traces" in live_line(at)
    with out.open("a") as file:
        file.write(second[40:] + "\n")
    at.run()
    assert "2 requests, 5 spans, 2 traces" in live_line(at)
    assert heading(at) == "traces (live) · imported trace"


def test_a_port_in_use_gets_one_sentence(boot: Boot) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        at = boot()
        at.number_input(key="live_port").set_value(taken.getsockname()[1])
        click(at, "Start receiver")
    assert not at.exception
    assert any("Cannot listen on 127.0.0.1" in w.value for w in at.warning)
    assert "live_follow" not in at.session_state
