"""The Compare page's sweeps and advisor under Streamlit's AppTest: what a user sees.

Saved sweeps, the advisor's cache and the built-in sweeps folder are pointed at
temporary folders, so the tests never read or write the checkout's runs/. The tiny
sweep (`tiny_spec`, `tiny_rows`) and the `boot` fixture are tests/conftest.py's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from sim import advisor
from sim import sweeps as sw
from sim.sweeps import spec as sweep_spec
from sim.sweeps import store
from tests.test_app import button, charts
from ui import sweeps

if TYPE_CHECKING:
    from tests.conftest import Boot

SWEEPS = {"compare_view": "sweeps"}  # session state that opens Compare on its sweeps view


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty saved-sweeps folder and advisor cache, inside `tmp_path`."""
    monkeypatch.setattr(sweeps, "SWEEPS_DIR", tmp_path / "sweeps")
    monkeypatch.setattr(advisor, "ADVISOR_CACHE", tmp_path / "sweeps" / "advisor")
    return tmp_path


def open_dir(at: AppTest, folder: Path | str) -> AppTest:
    """Open a sweep directory through the text input."""
    at.button_group(key="sweep_source").set_value("saved sweep").run()
    at.text_input(key="sweep_path").input(str(folder))  # held by the form until submitted
    return button(at, "Open sweep").click().run()


def sweep_chart(at: AppTest) -> dict[str, Any]:
    """The sweep view's chart (the first; the advisor's comes after it)."""
    return charts(at)[0]


def headline(at: AppTest) -> str:
    """The advisor's headline (a success box when the needs are met, else a warning)."""
    boxes = [b.value for b in at.success] + [w.value for w in at.warning]
    return next(b for b in boxes if b.startswith(("Use ", "No protocol")))


def test_a_saved_sweep_opens_from_the_list_with_its_views_and_means(
    tiny_rows: pd.DataFrame, places: Path, boot: Boot
) -> None:
    sw.save(tiny_rows, places / "sweeps" / "tiny")
    at = boot("compare", **SWEEPS)
    at.button_group(key="sweep_source").set_value("saved sweep").run()
    at.selectbox(key="sweep_saved").select(str(places / "sweeps" / "tiny")).run()

    assert not at.exception and not at.error
    assert at.subheader[0].value.startswith("tiny · 16 runs")
    latency = sweep_chart(at)
    assert {t["meta"]["series"] for t in latency["data"]} == {"http", "queue"}
    assert {t["meta"]["facet"] for t in latency["data"]} == {"none", "partition"}
    assert {t["meta"]["metric"] for t in latency["data"]} == {"p50", "p95", "p99"}
    means = sw.means(tiny_rows)
    table = at.dataframe[0].value
    assert len(table) == len(means) == 8 and (table["runs"] == 2).all()
    np.testing.assert_allclose(table["p99 ms"], means["p99"] * 1000)
    assert not at.warning or "failed" not in at.warning[0].value
    at.button_group(key="sweep_percentiles").set_value(["p99"]).run()
    assert {t["meta"]["metric"] for t in sweep_chart(at)["data"]} == {"p99"}
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Rows (CSV)" in labels

    for view, metric in (
        ("goodput", "goodput"),
        ("amplification", "amplification"),
        ("dead letters", "dead_lettered"),
        ("lost", "lost_rate"),
    ):
        at.button_group(key="sweep_view").set_value(view).run()
        spec = sweep_chart(at)
        assert {t["meta"]["metric"] for t in spec["data"]} == {metric}, view
    assert not at.exception


def test_a_directory_that_is_not_a_sweep_says_so_and_the_sweep_stays(
    tiny_rows: pd.DataFrame, places: Path, boot: Boot
) -> None:
    saved = sw.save(tiny_rows, places / "mine")
    at = open_dir(boot("compare", **SWEEPS), saved)
    assert at.subheader[0].value.startswith("tiny · 16 runs")
    before = sweep_chart(at)

    at = open_dir(at, places)

    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert "not a saved sweep" in message and "Traceback" not in message
    assert at.subheader[0].value.startswith("tiny · 16 runs")
    assert sweep_chart(at) == before

    at = open_dir(at, places / "nowhere")
    assert len(at.error) == 1 and "is not a directory" in at.error[0].value


def test_failed_runs_are_counted_with_their_errors(
    tiny_rows: pd.DataFrame, places: Path, boot: Boot
) -> None:
    broken = tiny_rows.copy()
    broken.attrs = dict(tiny_rows.attrs)
    broken.loc[3, "error"] = "ValueError: the broker fell over"
    broken.loc[3, sw.metric_columns(tiny_rows)] = np.nan

    at = open_dir(boot("compare", **SWEEPS), sw.save(broken, places / "broken"))

    assert not at.exception and not at.error
    assert any(w.value == "1 of 16 runs failed." for w in at.warning)
    failed = at.dataframe[0].value
    assert failed["error"].tolist() == ["ValueError: the broker fell over"]
    assert failed["index"].tolist() == [3]
    means = at.dataframe[1].value
    assert means["errors"].sum() == 1


def test_the_advisor_switches_to_a_queue_when_loss_is_not_tolerable(
    tiny_rows: pd.DataFrame, places: Path, boot: Boot
) -> None:
    at = open_dir(boot("compare", **SWEEPS), sw.save(tiny_rows, places / "tiny"))
    at.slider(key="advisor_load").set_value(90).run()

    assert headline(at).startswith("Use HTTP")
    verdicts = at.dataframe[1].value
    assert verdicts["protocol"].tolist() == ["http", "queue"]

    at.checkbox(key="advisor_loss_ok").uncheck().run()

    assert not at.exception
    assert headline(at).startswith("Use a queue")
    assert any("Loss is not tolerable" in m.value for m in at.markdown)
    advice = charts(at)[1]
    outlined = {t["meta"]["protocol"] for t in advice["data"] if t["marker"]["line"]["width"] > 0}
    assert outlined == {"queue"}
    evidence = at.dataframe[-1].value
    assert set(evidence["protocol"]) == {"queue"} and set(evidence["load"]) == {0.9}
    assert len(evidence) == 4  # 2 fault cases x 2 replications

    at.checkbox(key="advisor_streaming").check().run()
    assert "SSE" in headline(at) or "sse" in headline(at)
    at.number_input(key="advisor_p99").set_value(1.0).run()  # 1 ms: nothing meets it
    assert headline(at).startswith("No protocol meets every need")
    assert any("bottleneck" in i.value for i in at.info)


def test_with_no_sweep_the_advisor_runs_its_sweep_into_the_shared_cache(
    tiny_spec: dict[str, Any], places: Path, monkeypatch: pytest.MonkeyPatch, boot: Boot
) -> None:
    spec_file = places / "advisor-sweep.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec), encoding="utf-8")
    monkeypatch.setattr(advisor, "ADVISOR_SWEEP", str(spec_file))
    at = boot("compare", **SWEEPS)
    assert any("No sweep is open" in i.value for i in at.info)

    button(at, f"Open or run {spec_file}").click().run()

    assert not at.exception and not at.error
    assert (advisor.ADVISOR_CACHE / "sweep.json").is_file()
    assert headline(at).startswith("Use HTTP")
    assert at.subheader[0].value.startswith("tiny · 16 runs")
    assert len(charts(at)) == 2

    # Another session reads the same cache: nothing runs again.
    def no_sweep(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the cached sweep ran again")

    monkeypatch.setattr(store, "sweep", no_sweep)  # what `cached` would run
    again = boot("compare", **SWEEPS)
    button(again, f"Open or run {spec_file}").click().run()
    assert not again.exception and not again.error
    assert headline(again).startswith("Use HTTP")


def test_an_advisor_sweep_that_cannot_run_says_so_in_one_sentence(
    places: Path, monkeypatch: pytest.MonkeyPatch, boot: Boot
) -> None:
    monkeypatch.setattr(advisor, "ADVISOR_SWEEP", "no-such-sweep")
    at = boot("compare", **SWEEPS)

    button(at, "Open or run no-such-sweep").click().run()

    assert not at.exception
    assert len(at.error) == 1
    assert "no sweep file or built-in sweep named 'no-such-sweep'" in at.error[0].value
    assert not (places / "sweeps" / "advisor").exists()


def test_a_builtin_sweep_runs_from_the_page_and_is_saved(
    tiny_spec: dict[str, Any], places: Path, monkeypatch: pytest.MonkeyPatch, boot: Boot
) -> None:
    builtin = places / "builtin-sweeps"
    builtin.mkdir()
    (builtin / "tiny.yaml").write_text(yaml.safe_dump(tiny_spec), encoding="utf-8")
    broken = {**tiny_spec, "name": "broken", "replications": "many"}
    (builtin / "broken.yaml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    monkeypatch.setattr(sweep_spec, "SWEEP_DIR", builtin)
    at = boot("compare", **SWEEPS)
    assert at.button_group(key="sweep_source").value == "built-in sweep"  # none saved yet

    at.selectbox(key="sweep_builtin").select("tiny").run()
    assert at.number_input(key="sweep_replications").value == 2  # the file's
    at.number_input(key="sweep_replications").set_value(1).run()
    button(at, "Run sweep").click().run()

    assert not at.exception and not at.error
    assert at.subheader[0].value == "tiny · 8 runs"
    assert any(c.value.startswith("Run here and saved to") for c in at.caption)
    assert {t["meta"]["series"] for t in sweep_chart(at)["data"]} == {"http", "queue"}
    # One replication instead of the file's two: kept beside the sweep, never over it
    # (runs/sweeps/NAME is also where `python -m sim advise` keeps its sweep).
    assert not (places / "sweeps" / "tiny").exists()
    assert len(sw.load(places / "sweeps" / "tiny-1rep")) == 8

    # A sweep file with an error: one sentence, and the sweep on screen stays.
    at.selectbox(key="sweep_builtin").select("broken").run()
    button(at, "Run sweep").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "replications" in at.error[0].value
    assert at.subheader[0].value == "tiny · 8 runs"

    # What was run here is now among the saved sweeps.
    at.button_group(key="sweep_source").set_value("saved sweep").run()
    assert str(places / "sweeps" / "tiny-1rep") in at.selectbox(key="sweep_saved").options


def test_the_two_runs_view_is_still_the_default(boot: Boot) -> None:
    at = boot("compare")

    assert not at.exception
    assert at.button_group(key="compare_view").value == "two runs"
    assert "No run B yet" in at.info[0].value
