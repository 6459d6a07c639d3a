"""The dashboard under Streamlit's AppTest: what a user sees on every page.

Most tests point the built-in scenario folder at a temporary copy holding `basic` plus a
faulty and a broken scenario, so they do not depend on which scenarios the repo ships.
The app is booted by the `boot` fixture, and `chain` and `partition` are runs, all of
tests/conftest.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import sim
from sim import loading
from sim.trace import Run, conform
from ui import figures, state

if TYPE_CHECKING:
    from tests.conftest import Boot

FAULTY = """\
name: faulty
description: basic at twice the load, a 1 s timeout, 10% loss then a partition.
seed: 7
duration: 60
agents:
  - {id: client, role: client}
  - id: api
    role: service
    workers: 4
    service_time: {dist: lognormal, mean: 0.1, p99: 0.5}
channels:
  - {from: client, to: api, protocol: http, timeout: 1}
network:
  default: {latency: {dist: normal, mean: 0.005, sd: 0.001}}
workload:
  - {from: client, to: api, type: task.run, arrivals: {kind: poisson, rate: 40}}
faults:
  - {kind: loss, probability: 0.1, start: 10, end: 30, targets: [api]}
  - {kind: partition, groups: [[client], [api]], start: 40, end: 45}
"""


@pytest.fixture
def scenarios(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scenario folder with `basic`, `faulty`, `cut` and `broken` (a misspelt field)."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    basic = loading.builtin_path("basic")
    shutil.copy(basic, folder / "basic.yaml")
    (folder / "faulty.yaml").write_text(FAULTY)
    # Cut off for the whole run: no request succeeds, so there is no latency to show.
    cut = FAULTY.replace("name: faulty", "name: cut").split("faults:")[0]
    cut += "faults:\n  - {kind: partition, groups: [[client], [api]], start: 0}\n"
    (folder / "cut.yaml").write_text(cut)
    broken = basic.read_text().replace("workers: 4", "wokers: 4")
    assert broken != basic.read_text()
    (folder / "broken.yaml").write_text(broken)
    monkeypatch.setattr(loading, "SCENARIO_DIR", folder)
    return folder


def metrics(at: AppTest) -> dict[str, str]:
    """The summary cards as label -> shown value."""
    return {m.label: m.value for m in at.metric}


def table(at: AppTest, first_column: str, title: str) -> dict[str, int]:
    """A summary table's `count` column keyed by its first column, found by its title."""
    titles = [m.value for m in at.markdown]
    index = [t.strip("*") for t in titles if t.startswith("**")].index(title)
    frame = at.dataframe[index].value
    return dict(zip(frame[first_column], frame["count"], strict=True))


def test_opens_on_the_default_scenario_with_its_summary(boot: Boot) -> None:
    names = loading.builtin_names()
    default = "collaboration" if "collaboration" in names else "basic"
    expected = sim.run(default).summary()

    at = boot()

    assert not at.error
    assert at.selectbox(key="scenario").value == default
    assert at.number_input(key="seed").value == loading.load(default).seed
    shown = metrics(at)
    assert list(shown) == [
        "Requests",
        "Goodput (/s)",
        "Success rate",
        "p99 latency",
        "Amplification",
        "Wire messages",
        "Errors",
        "Dead-lettered",
        "Breaker open",
        "Wasted work",
    ]
    assert shown["Requests"] == f"{expected['requests']:,}"
    assert shown["Wire messages"] == f"{expected['messages']:,}"
    assert shown["Success rate"] == f"{expected['success_rate']:.1%}"
    assert table(at, "outcome", "Messages by outcome") == expected["messages_by_outcome"]
    assert table(at, "outcome", "Requests by outcome") == expected["requests_by_outcome"]


def test_basic_shows_spans_by_kind_and_latency_by_channel(scenarios: Path, boot: Boot) -> None:
    expected = sim.run("basic").summary()

    at = boot()

    titles = [m.value for m in at.markdown]
    assert "**Faults**" not in titles  # basic has none, so no empty table
    spans = at.dataframe[2].value.set_index("outcome")
    assert spans["total"].to_dict() == expected["spans_by_outcome"]
    assert {"client", "server"} <= set(spans.columns)
    latency = at.dataframe[3].value
    assert latency[["caller", "callee"]].values.tolist() == [["client", "api"]]
    assert latency["p99_ms"].iloc[0] == pytest.approx(expected["p99"] * 1000)


def test_running_another_scenario_changes_the_summary(scenarios: Path, boot: Boot) -> None:
    at = boot()
    before = metrics(at)
    assert at.subheader[0].value == "basic · seed 1"

    at.selectbox(key="scenario").select("faulty").run()
    assert at.number_input(key="seed").value == 7  # the scenario's own seed
    assert metrics(at) == before  # nothing reruns until Run is pressed
    at.button[0].click().run()

    assert not at.exception and not at.error
    expected = sim.run(loading.load("faulty")).summary()
    after = metrics(at)
    assert after != before
    assert after["Requests"] == f"{expected['requests']:,}"
    assert at.subheader[0].value == "faulty · seed 7"
    messages = table(at, "outcome", "Messages by outcome")
    assert messages == expected["messages_by_outcome"]
    assert messages["dropped"] > 0 and messages["partitioned"] > 0
    faults = at.dataframe[-1].value
    assert faults["kind"].tolist() == ["loss", "partition"]


def test_a_run_where_nothing_succeeds_shows_no_latency(scenarios: Path, boot: Boot) -> None:
    at = boot()

    at.selectbox(key="scenario").select("cut").run()
    at.button[0].click().run()

    assert not at.exception and not at.error
    shown = metrics(at)
    assert shown["Success rate"] == "0.0%"
    assert shown["Goodput (/s)"] == "0.00"
    assert shown["p99 latency"] == "—"
    assert at.dataframe[3].value.empty  # latency by channel: no successful call
    assert table(at, "outcome", "Messages by outcome").get("partitioned", 0) > 0


def test_another_seed_gives_another_run(scenarios: Path, boot: Boot) -> None:
    at = boot()
    before = metrics(at)

    at.number_input(key="seed").set_value(2).run()
    at.button[0].click().run()

    assert not at.exception and not at.error
    expected = sim.run("basic", seed=2).summary()
    assert metrics(at)["Requests"] == f"{expected['requests']:,}"
    assert metrics(at) != before
    assert at.subheader[0].value == "basic · seed 2"


def test_the_run_survives_reruns(scenarios: Path, boot: Boot) -> None:
    at = boot()
    at.selectbox(key="scenario").select("faulty").run()
    at.button[0].click().run()
    faulty = metrics(at)

    # Changing a widget reruns the script; the Run on screen must not be lost or redone.
    at.selectbox(key="scenario").select("basic").run()

    assert metrics(at) == faulty
    assert at.subheader[0].value == "faulty · seed 7"


def test_a_broken_scenario_shows_one_error_and_keeps_the_summary(
    scenarios: Path, boot: Boot
) -> None:
    at = boot()
    before = metrics(at)

    at.selectbox(key="scenario").select("broken").run()
    at.button[0].click().run()

    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert "broken.yaml" in message and "wokers" in message
    assert "Traceback" not in message
    assert metrics(at) == before
    assert at.subheader[0].value == "basic · seed 1"

    # The error goes away with the next good run.
    at.selectbox(key="scenario").select("faulty").run()
    at.button[0].click().run()
    assert not at.error
    assert at.subheader[0].value == "faulty · seed 7"


def test_a_failing_run_shows_a_sentence_not_a_traceback(
    scenarios: Path, monkeypatch: pytest.MonkeyPatch, boot: Boot
) -> None:
    at = boot()
    before = metrics(at)

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the event queue ran dry\nsecond line of detail")

    monkeypatch.setattr("sim.world.simulate", explode)
    at.button[0].click().run()

    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert "basic" in message and "the event queue ran dry" in message
    assert "second line" not in message and "Traceback" not in message
    assert metrics(at) == before


# --- the Run page: editor, knobs, uploads, saved runs, downloads -----------------------


def heading(at: AppTest) -> str:
    """The summary's heading: `scenario · seed N`."""
    return at.subheader[0].value


def button(at: AppTest, label: str) -> Any:
    """The button with this label."""
    return next(b for b in at.button if b.label == label)


def test_invalid_yaml_lists_its_errors_and_keeps_the_previous_run(
    scenarios: Path, boot: Boot
) -> None:
    at = boot()
    before = metrics(at)

    at.text_area(key="scenario_text").input("name: basic\nagents: [unclosed\n").run()

    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert "basic.yaml (edited)" in message and "invalid YAML" in message and "line" in message
    at.button[0].click().run()  # Run: nothing runs, the same single error
    assert not at.exception and len(at.error) == 1
    assert at.error[0].value.startswith("Not run:")
    assert metrics(at) == before and heading(at) == "basic · seed 1"


def test_an_invalid_scenario_lists_every_problem_next_to_the_editor(
    scenarios: Path, boot: Boot
) -> None:
    at = boot()
    text = at.text_area(key="scenario_text").value
    broken = text.replace("workers: 4", "workers: -1").replace("timeout: 5", "timeout: 0")
    at.text_area(key="scenario_text").input(broken).run()

    assert len(at.error) == 1
    message = at.error[0].value
    assert "2 problem(s)" in message
    assert "agents.1.workers" in message and "channels.0.timeout" in message
    assert heading(at) == "basic · seed 1"
    # Fixing the text clears the errors.
    at.text_area(key="scenario_text").input(text).run()
    assert not at.error and at.success[0].value == "basic.yaml: valid."


def test_an_edited_scenario_runs_as_edited(scenarios: Path, boot: Boot) -> None:
    at = boot()
    text = at.text_area(key="scenario_text").value.replace("rate: 20", "rate: 5")
    at.text_area(key="scenario_text").input(text).run()
    at.button[0].click().run()

    assert not at.exception and not at.error
    expected = sim.run("basic", workload__0__arrivals__rate=5).summary()
    assert metrics(at)["Requests"] == f"{expected['requests']:,}"


def test_the_knobs_override_the_scenario(scenarios: Path, boot: Boot) -> None:
    at = boot()
    workers = next(n for n in at.number_input if n.label == "api")
    workers.set_value(1).run()
    caption = [c.value for c in at.code]
    assert caption and "--set agents.1.workers=1" in caption[0]
    at.button[0].click().run()

    assert not at.exception and not at.error
    expected = sim.run("basic", agents__1__workers=1).summary()
    assert metrics(at)["Requests"] == f"{expected['requests']:,}"
    assert metrics(at)["p99 latency"] != metrics(boot())["p99 latency"]


def test_a_fault_window_can_be_moved_or_switched_off(scenarios: Path, boot: Boot) -> None:
    at = boot()
    at.selectbox(key="scenario").select("faulty").run()
    off = next(c for c in at.checkbox if c.label == "1: partition")
    off.uncheck().run()
    start_box = next(n for n in at.number_input if n.label == "0: loss start (s)")
    start_box.set_value(20.0).run()
    at.button[0].click().run()

    assert not at.exception and not at.error
    data = loading.read_data(loading.builtin_path("faulty"))
    data["faults"] = [dict(data["faults"][0], start=20.0)]
    expected = sim.run(data).summary()
    assert metrics(at)["Requests"] == f"{expected['requests']:,}"
    assert "partitioned" not in table(at, "outcome", "Messages by outcome")
    assert at.dataframe[-1].value["start"].tolist() == [20.0]


def test_an_uploaded_file_goes_into_the_editor(scenarios: Path, boot: Boot) -> None:
    at = boot()
    at.file_uploader[0].set_value(("mine.yaml", FAULTY.encode(), "application/x-yaml")).run()

    assert at.text_area(key="scenario_text").value == FAULTY
    assert at.number_input(key="seed").value == 7
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert heading(at) == "faulty · seed 7"


def test_an_upload_over_5_mb_is_refused(scenarios: Path, boot: Boot) -> None:
    at = boot()
    text = at.text_area(key="scenario_text").value
    big = b"# padding\n" * (530 * 1024)
    at.file_uploader[0].set_value(("huge.yaml", big, "application/x-yaml")).run()

    assert not at.exception
    assert any("over 5 MB are refused" in w.value for w in at.warning)
    assert at.text_area(key="scenario_text").value == text
    assert heading(at) == "basic · seed 1"


def test_a_saved_run_opens_and_downloads_are_offered(
    scenarios: Path, tmp_path: Path, boot: Boot
) -> None:
    saved = sim.run("faulty").save(tmp_path / "faulty-run")
    at = boot()
    assert len(at.get("download_button")) == 3  # the run, the trace as CSV and as OTLP

    at.text_input(key="open_path").input(str(saved))  # held by the form until submitted
    button(at, "Open run").click().run()
    assert not at.exception and not at.error
    assert heading(at) == "faulty · seed 7"

    at.text_input(key="open_path").input(
        str(tmp_path / "nothing")
    )  # held by the form until submitted
    button(at, "Open run").click().run()
    assert len(at.error) == 1 and "no run.json" in at.error[0].value
    assert heading(at) == "faulty · seed 7"


# --- the other pages ---------------------------------------------------------------------


def charts(at: AppTest) -> list[dict[str, Any]]:
    """Every plotly chart on the page, as its JSON spec."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def arrows(spec: dict[str, Any]) -> list[int]:
    """The seqs of the message arrows of a space-time diagram's spec."""
    seqs = []
    for trace in spec["data"]:
        if trace.get("name") in ("lifelines", "selected") or "customdata" not in trace:
            continue
        if (trace.get("meta") or {}).get("failures"):  # failure markers, not arrows
            continue
        seqs += [int(v) for v in trace["customdata"][1::3]]
    return seqs


def cursor(spec: dict[str, Any]) -> float:
    """The x of the time cursor on a space-time diagram's spec."""
    return next(t["x"][0] for t in spec["data"] if t.get("name") == "cursor")


def test_every_page_opens_on_the_default_run(boot: Boot) -> None:
    at = boot()
    default = sim.run(state.default_scenario(loading.builtin_names()))
    expected_charts = {
        "replay": 2,  # the space-time diagram and the whole run's overview
        "cascades": 1,
        "breakers": 0 if default.breakers.empty else 1,
        "queues": 1,
        "topology": 1,
        "compare": 0,  # until a run B is made
    }
    for page, count in expected_charts.items():
        at.switch_page(state.PAGES[page]).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
        assert len(at.get("plotly_chart")) == count, page
        assert at.title[0].value == page.capitalize()


def test_replay_filters_change_the_diagram(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    before = arrows(charts(at)[0])
    assert before

    at.multiselect(key="replay_kinds").set_value(["request"]).run()

    after = arrows(charts(at)[0])
    kinds = chain.messages.set_index("seq").loc[after, "kind"]
    assert set(kinds) == {"request"} and 0 < len(after) < len(before)
    at.multiselect(key="replay_agents").set_value(["C"]).run()
    rows = chain.messages.set_index("seq").loc[arrows(charts(at)[0])]
    assert ((rows["src"] == "C") | (rows["dst"] == "C")).all()


def test_replay_switches_to_logical_time(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    physical = charts(at)[0]
    at.button_group(key="replay_time").set_value("logical").run()

    logical = charts(at)[0]
    assert logical["layout"]["xaxis"]["title"]["text"].startswith("event order")
    assert physical["layout"]["xaxis"]["title"]["text"] == "simulated time (s)"
    xs = [x for t in logical["data"] if t.get("name") == "http" for x in t["x"] if x is not None]
    assert all(float(x).is_integer() for x in xs)


def test_replay_play_moves_the_cursor_and_pages_the_window(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    start, end = at.slider(key="replay_window").value
    assert cursor(charts(at)[0]) == end  # the whole window shown

    at.button(key="replay_play").click().run()  # from the window's end: start it again
    first = cursor(charts(at)[0])
    assert start < first < end
    at.run()  # one more tick (run_every never ticks under AppTest: each run is one)
    second = cursor(charts(at)[0])
    assert second > first
    assert at.button(key="replay_play").label == "Pause"
    for _ in range(25):  # past the window's end: the next window comes up
        at.run()
    new_start, new_end = at.slider(key="replay_window").value
    assert new_start >= end and new_end - new_start == pytest.approx(end - start)

    at.button(key="replay_play").click().run()
    paused = cursor(charts(at)[0])
    at.run()
    assert cursor(charts(at)[0]) == paused


def test_replay_scrubbing_the_window_redraws_and_thins(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    at.slider(key="replay_window").set_value((30.0, 45.0)).run()
    spec = charts(at)[0]
    assert spec["layout"]["xaxis"]["range"] == [30.0, 45.0]
    assert all(chain.messages.set_index("seq").loc[s, "sent_at"] <= 45.0 for s in arrows(spec))
    at.slider(key="replay_window").set_value((0.0, 120.0)).run()
    at.selectbox(key="replay_limit").select(500).run()
    assert len(arrows(charts(at)[0])) <= 500
    assert any("Showing" in i.value for i in at.info)


def test_selecting_a_message_shows_its_envelope(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    options = at.selectbox(key="replay_message").options
    assert len(options) > 1
    seq = arrows(charts(at)[0])[3]
    at.selectbox(key="replay_message").set_value(seq).run()

    detail = at.dataframe[0].value.set_index("field")["value"]
    row = chain.messages.set_index("seq").loc[seq]
    assert detail["msg_id"] == row["msg_id"] and detail["correlation_id"] == row["correlation_id"]
    selected = [t for t in charts(at)[0]["data"] if t.get("name") == "selected"]
    assert [int(v) for v in selected[0]["customdata"][1::3]] == [seq]


def test_the_trace_chosen_on_replay_is_shown_on_cascades(chain: Run, boot: Boot) -> None:
    roots = chain.spans[(chain.spans["parent_id"] == "") & (chain.spans["outcome"] == "timeout")]
    trace, sent = str(roots["correlation_id"].iloc[0]), float(roots["start"].iloc[0])
    at = boot("replay", chain)
    # The trace filter offers the traces of the window on screen: scrub to this one first.
    at.slider(key="replay_window").set_value((sent - 1.0, sent + 1.0)).run()
    assert trace in at.selectbox(key="replay_trace").options
    at.selectbox(key="replay_trace").set_value(trace).run()

    seqs = arrows(charts(at)[0])
    assert set(chain.messages.set_index("seq").loc[seqs, "correlation_id"]) == {trace}
    assert len(seqs) == (chain.messages["correlation_id"] == trace).sum()

    at.switch_page(state.PAGES["cascades"]).run()
    assert not at.exception
    assert at.selectbox(key="cascades_trace").value == trace
    spans = {
        span
        for t in charts(at)[0]["data"]
        if t["type"] == "bar" and "customdata" in t
        for span in t["customdata"]
    }
    assert spans == set(chain.spans.loc[chain.spans["correlation_id"] == trace, "span_id"])


def test_cascades_offers_timed_out_traces_and_draws_the_one_picked(chain: Run, boot: Boot) -> None:
    at = boot("cascades", chain)
    options = at.selectbox(key="cascades_trace").options
    index = figures.trace_index(chain.spans).set_index("correlation_id")
    assert all(index.loc[o.split(" · ")[0], "timeouts"] > 0 for o in options)
    first = charts(at)[0]

    second = at.selectbox(key="cascades_trace").options[1].split(" · ")[0]
    at.selectbox(key="cascades_trace").set_value(second).run()
    assert charts(at)[0]["data"] != first["data"]
    assert charts(at)[0]["layout"]["title"]["text"] == f"trace {second}"
    at.switch_page(state.PAGES["replay"]).run()  # and the choice carries back to Replay
    assert at.selectbox(key="replay_trace").value == second


def synthetic_breakers() -> pd.DataFrame:
    """B -> C opens while C is slow and closes after it recovers."""
    rows = [
        (32.0, "B", "C", "CLOSED", "OPEN", "slow-call rate 100% >= 100%", 0.0, 1.0, 10),
        (37.0, "B", "C", "OPEN", "HALF_OPEN", "waited 5 s in OPEN", 0.0, 1.0, 10),
        (62.0, "B", "C", "HALF_OPEN", "CLOSED", "3 permitted calls ok", 0.0, 0.0, 3),
        (40.0, "A", "B", "CLOSED", "OPEN", "failure rate 60% >= 50%", 0.6, 0.2, 20),
        (45.0, "A", "B", "OPEN", "HALF_OPEN", "waited 5 s in OPEN", 0.6, 0.2, 20),
        (46.0, "A", "B", "HALF_OPEN", "CLOSED", "3 permitted calls ok", 0.0, 0.0, 3),
    ]
    columns = ["time", "agent", "target", "from_state", "to_state", "reason"]
    columns += ["failure_rate", "slow_rate", "calls"]
    return conform("breakers", pd.DataFrame(rows, columns=columns))


def test_breakers_draws_bands_and_filters_by_breaker(chain: Run, boot: Boot) -> None:
    run = Run(dict(chain.tables, breakers=synthetic_breakers()), chain.manifest)
    at = boot("breakers", run)
    spec = charts(at)[0]
    edges = {y for t in spec["data"] if t["type"] == "bar" for y in t["y"]}
    assert edges == {"A → B", "B → C"}
    opened = next(t for t in spec["data"] if t.get("name") == "OPEN")
    assert sorted(zip(opened["y"], opened["base"], opened["x"], strict=True)) == [
        ("A → B", 40.0, 5.0),
        ("B → C", 32.0, 5.0),
    ]

    at.multiselect(key="breakers_edges").set_value(["B → C"]).run()
    spec = charts(at)[0]
    assert {y for t in spec["data"] if t["type"] == "bar" for y in t["y"]} == {"B → C"}
    transitions = at.dataframe[0].value  # first, right under the chart
    assert set(transitions["breaker"]) == {"B → C"} and len(transitions) == 3


def test_breakers_says_so_when_no_breaker_changed_state(chain: Run, boot: Boot) -> None:
    at = boot("breakers", chain)
    assert not at.get("plotly_chart") and not at.error
    assert "No circuit breaker changed state" in at.info[0].value


def test_queues_draws_each_queue_and_lists_dead_letters(chain: Run, boot: Boot) -> None:
    messages = chain.messages.copy()
    parked = messages.index[messages["kind"] == "request"][:2]
    messages.loc[parked, "outcome"] = "dead_lettered"
    messages.loc[parked, "attempt"] = 5
    messages["reason"] = ""
    messages.loc[parked, "reason"] = "handler failed 5 times"
    run = Run(dict(chain.tables, messages=messages), chain.manifest)
    at = boot("queues", run)

    names = {t["name"] for t in charts(at)[0]["data"] if not t["name"].startswith("fault")}
    assert names == {"B.workers", "C.workers"}
    at.multiselect(key="queues_names").set_value(["C.workers"]).run()
    names = {t["name"] for t in charts(at)[0]["data"] if not t["name"].startswith("fault")}
    assert names == {"C.workers"}
    letters = at.dataframe[-1].value
    assert letters["attempt"].tolist() == [5, 5]
    assert letters["reason"].tolist() == ["handler failed 5 times"] * 2


def test_topology_follows_the_time_slider(partition: Run, boot: Boot) -> None:
    at = boot("topology", partition)
    at.slider(key="topology_time").set_value(5.0).run()
    assert "partitioned" not in [t["name"] for t in charts(at)[0]["data"]]

    at.slider(key="topology_time").set_value(25.0).run()
    assert "partitioned" in [t["name"] for t in charts(at)[0]["data"]]
    assert "partition" in at.caption[-1].value
    edges = at.dataframe[0].value
    assert set(zip(edges["caller"], edges["callee"], strict=True)) == {
        ("client", "api"),
        ("api", "store"),
    }


def test_topology_starts_at_the_replay_cursor(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    at.slider(key="replay_cursor").set_value(42.0).run()
    at.switch_page(state.PAGES["topology"]).run()
    assert at.slider(key="topology_time").value == 42.0


def test_compare_runs_a_second_scenario_beside_the_first(scenarios: Path, boot: Boot) -> None:
    at = boot("compare")
    assert "No run B yet" in at.info[0].value
    at.selectbox(key="compare_scenario").select("faulty").run()
    at.number_input(key="compare_seed").set_value(7).run()
    button(at, "Run B").click().run()

    assert not at.exception and not at.error
    specs = charts(at)
    assert len(specs) == 3
    assert specs[0]["layout"]["xaxis"]["range"] == specs[1]["layout"]["xaxis"]["range"]
    assert specs[0]["layout"]["yaxis"]["range"] == specs[1]["layout"]["yaxis"]["range"]
    diff = next(d.value for d in at.dataframe if "metric" in d.value.columns)
    diff = diff.set_index("metric")
    a, b = sim.run("basic").summary(), sim.run(loading.load("faulty")).summary()
    assert diff.loc["Requests", "a"] == a["requests"] and diff.loc["Requests", "b"] == b["requests"]

    before = specs[2]["data"][0]["x"]
    at.select_slider(key="compare_bucket").set_value(5.0).run()
    assert charts(at)[2]["data"][0]["x"] != before


def test_compare_loads_a_saved_run(chain: Run, tmp_path: Path, boot: Boot) -> None:
    saved = chain.save(tmp_path / "chain")
    at = boot("compare")
    at.button_group(key="compare_source").set_value("saved run").run()
    at.text_input(key="compare_path").input(str(saved))  # held by the form until submitted
    button(at, "Load B").click().run()

    assert not at.exception and not at.error
    assert len(charts(at)) == 3
    assert "timeout-chain" in charts(at)[1]["layout"]["title"]["text"]


def test_cascades_offering_another_list_shows_its_first_trace(chain: Run, boot: Boot) -> None:
    at = boot("cascades", chain)
    at.button_group(key="cascades_show").set_value("slowest").run()

    slowest = figures.trace_index(chain.spans).sort_values("duration", ascending=False)
    expected = str(slowest["correlation_id"].iloc[0])
    assert at.selectbox(key="cascades_trace").value == expected
    names = {t.get("name") for t in charts(at)[0]["data"]}
    assert "after the caller gave up" in names


def test_pages_keep_their_state_across_page_switches(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    at.slider(key="replay_window").set_value((30.0, 45.0)).run()
    at.multiselect(key="replay_kinds").set_value(["request"]).run()
    at.switch_page(state.PAGES["topology"]).run()
    at.switch_page(state.PAGES["replay"]).run()

    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="replay_window").value == (30.0, 45.0)
    assert at.multiselect(key="replay_kinds").value == ["request"]
    assert charts(at)[0]["layout"]["xaxis"]["range"] == [30.0, 45.0]


def builtin(name: str) -> Run:
    """A built-in scenario's run; skips when this checkout does not ship it."""
    if name not in loading.builtin_names():
        pytest.skip(f"no built-in scenario {name}")
    return sim.run(name)


def test_the_poison_run_lists_its_dead_letters_with_their_reasons(boot: Boot) -> None:
    run = builtin("collaboration-poison")
    at = boot("queues", run)

    parked = run.messages[run.messages["outcome"] == "dead_lettered"]
    assert len(parked) > 0
    letters = at.dataframe[-1].value
    assert letters["seq"].tolist() == parked["seq"].tolist()
    assert letters["attempt"].tolist() == parked["attempt"].tolist()
    assert all(letters["reason"].str.len() > 0)
    names = {t["name"] for t in charts(at)[0]["data"]}
    if any(q.endswith(".dlq") for q in run.queues["queue"].unique()):
        assert any(n.endswith(".dlq") for n in names)  # the DLQ is among the busiest


def test_the_overload_run_shows_its_breakers(boot: Boot) -> None:
    run = builtin("collaboration-overload")
    if run.breakers.empty:
        pytest.skip("collaboration-overload records no breaker transition")
    at = boot("breakers", run)

    spec = charts(at)[0]
    edges = {y for t in spec["data"] if t["type"] == "bar" for y in t["y"]}
    expected = {
        f"{a} → {t}" for a, t in zip(run.breakers["agent"], run.breakers["target"], strict=True)
    }
    assert edges == expected
    assert len(at.dataframe[0].value) == len(run.breakers)  # the transitions


APP_PLUGIN = """
import sim


@sim.role("app-echo")
class Echo:
    def on_task_run(self, ctx, request):
        yield ctx.work(0.01)
        return "echo"
"""

APP_PLUGIN_SCENARIO = """name: echoes
duration: 5
agents:
  - {id: client, role: client}
  - {id: echo, role: app-echo, workers: 2}
workload:
  - {from: client, to: echo, type: task.run, arrivals: {kind: constant, rate: 2}}
"""


def test_plugin_roles_run_from_the_run_page(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, boot: Boot
) -> None:
    # The module the person starting the dashboard named (make run PLUGINS=...).
    from sim.plugins import plugin_role, unregister_role

    (tmp_path / "app_echo_plugin.py").write_text(APP_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SWITCHBOARD_PLUGINS", "app_echo_plugin")
    try:
        at = boot()
        assert plugin_role("app-echo") is not None
        at.text_area(key="scenario_text").input(APP_PLUGIN_SCENARIO).run()
        at.button[0].click().run()
        assert not at.exception and not at.error
        run = at.session_state["run"]
        served = run.spans[(run.spans["agent"] == "echo") & (run.spans["kind"] == "server")]
        assert len(served) == 10 and (served["status"] == 200).all()
    finally:
        unregister_role("app-echo")


def test_a_plugin_module_that_cannot_load_is_one_sentence_on_the_page(
    monkeypatch: pytest.MonkeyPatch, boot: Boot
) -> None:
    monkeypatch.setenv("SWITCHBOARD_PLUGINS", "no_such_plugin_module")
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"),
                           default_timeout=60)  # fmt: skip
    at.run()
    assert not at.exception
    assert any("plugin module 'no_such_plugin_module' not found" in e.value for e in at.error)
