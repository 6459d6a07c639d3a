"""The dashboard under Streamlit's AppTest: what a user sees on the Run page.

Most tests point the built-in scenario folder at a temporary copy holding `basic` plus a
faulty and a broken scenario, so they do not depend on which scenarios the repo ships.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import sim
from sim import loading

APP = "../app.py"  # AppTest resolves it against this file's folder
TIMEOUT = 60

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


def start() -> AppTest:
    """The app after its first run, with no uncaught exception."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    """The summary cards as label -> shown value."""
    return {m.label: m.value for m in at.metric}


def table(at: AppTest, first_column: str, title: str) -> dict[str, int]:
    """A summary table's `count` column keyed by its first column, found by its title."""
    titles = [m.value for m in at.markdown]
    index = [t.strip("*") for t in titles if t.startswith("**")].index(title)
    frame = at.dataframe[index].value
    return dict(zip(frame[first_column], frame["count"], strict=True))


def test_opens_on_the_default_scenario_with_its_summary() -> None:
    names = loading.builtin_names()
    default = "collaboration" if "collaboration" in names else "basic"
    expected = sim.run(default).summary()

    at = start()

    assert not at.error
    assert at.selectbox(key="scenario").value == default
    assert at.number_input(key="seed").value == loading.load(default).seed
    shown = metrics(at)
    assert list(shown) == [
        "Requests",
        "Goodput",
        "Success rate",
        "p99 latency",
        "Amplification",
        "Wire messages",
    ]
    assert shown["Requests"] == f"{expected['requests']:,}"
    assert shown["Wire messages"] == f"{expected['messages']:,}"
    assert shown["Success rate"] == f"{expected['success_rate']:.1%}"
    assert table(at, "outcome", "Messages by outcome") == expected["messages_by_outcome"]
    assert table(at, "outcome", "Requests by outcome") == expected["requests_by_outcome"]


def test_basic_shows_spans_by_kind_and_latency_by_channel(scenarios: Path) -> None:
    expected = sim.run("basic").summary()

    at = start()

    titles = [m.value for m in at.markdown]
    assert "**Faults**" not in titles  # basic has none, so no empty table
    spans = at.dataframe[2].value.set_index("outcome")
    assert spans["total"].to_dict() == expected["spans_by_outcome"]
    assert {"client", "server"} <= set(spans.columns)
    latency = at.dataframe[3].value
    assert latency[["caller", "callee"]].values.tolist() == [["client", "api"]]
    assert latency["p99_ms"].iloc[0] == pytest.approx(expected["p99"] * 1000)


def test_running_another_scenario_changes_the_summary(scenarios: Path) -> None:
    at = start()
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


def test_a_run_where_nothing_succeeds_shows_no_latency(scenarios: Path) -> None:
    at = start()

    at.selectbox(key="scenario").select("cut").run()
    at.button[0].click().run()

    assert not at.exception and not at.error
    shown = metrics(at)
    assert shown["Success rate"] == "0.0%"
    assert shown["Goodput"] == "0.00 /s"
    assert shown["p99 latency"] == "—"
    assert at.dataframe[3].value.empty  # latency by channel: no successful call
    assert table(at, "outcome", "Messages by outcome").get("partitioned", 0) > 0


def test_another_seed_gives_another_run(scenarios: Path) -> None:
    at = start()
    before = metrics(at)

    at.number_input(key="seed").set_value(2).run()
    at.button[0].click().run()

    assert not at.exception and not at.error
    expected = sim.run("basic", seed=2).summary()
    assert metrics(at)["Requests"] == f"{expected['requests']:,}"
    assert metrics(at) != before
    assert at.subheader[0].value == "basic · seed 2"


def test_the_run_survives_reruns(scenarios: Path) -> None:
    at = start()
    at.selectbox(key="scenario").select("faulty").run()
    at.button[0].click().run()
    faulty = metrics(at)

    # Changing a widget reruns the script; the Run on screen must not be lost or redone.
    at.selectbox(key="scenario").select("basic").run()

    assert metrics(at) == faulty
    assert at.subheader[0].value == "faulty · seed 7"


def test_a_broken_scenario_shows_one_error_and_keeps_the_summary(scenarios: Path) -> None:
    at = start()
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
    scenarios: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = start()
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
