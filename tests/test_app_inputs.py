"""Bad input on the dashboard, under Streamlit's AppTest: one sentence, the run stays.

A malformed scenario in the editor, a saved run whose run.json is damaged, a saved run
that will not open while the editor holds errors, and a trace of a single instant (an
imported span of no length) walked through every page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sim
from ui import state

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

    from tests.conftest import Boot

PAGES = ("replay", "cascades", "breakers", "queues", "topology", "compare")

# One span of no length: the trace of a single instant (duration 0, no seed).
ONE_INSTANT = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
            "scopeSpans": [
                {
                    "spans": [
                        {
                            "traceId": "0af7651916cd43dd8448eb211c80319c",
                            "spanId": "b7ad6b7169203331",
                            "name": "op",
                            "kind": 2,
                            "startTimeUnixNano": "1700000000000000000",
                            "endTimeUnixNano": "1700000000000000000",
                        }
                    ]
                }
            ],
        }
    ]
}


def heading(at: AppTest) -> str:
    return at.subheader[0].value


def button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


def open_run(at: AppTest, folder: Path) -> None:
    at.text_input(key="open_path").input(str(folder))  # held by the form until submitted
    button(at, "Open run").click().run()


def test_a_list_where_an_agent_is_named_is_listed_beside_the_editor(boot: Boot) -> None:
    # Was an uncaught TypeError (unhashable type: 'list') on the Run page.
    at = boot()
    before = heading(at)
    text = at.text_area(key="scenario_text").value
    broken = text.replace("to: registry", "to: [registry]", 1)
    assert broken != text
    at.text_area(key="scenario_text").input(broken).run()
    assert not at.exception
    assert len(at.error) == 1 and "must be a string, got a list" in at.error[0].value
    at.button[0].click().run()
    assert not at.exception and at.error[0].value.startswith("Not run:")
    assert heading(at) == before


def test_a_saved_run_that_will_not_open_says_so_beside_a_broken_editor(
    boot: Boot, tmp_path: Path
) -> None:
    # Was silent: the sentence was hidden while the editor listed its own problems.
    at = boot()
    before = heading(at)
    at.text_area(key="scenario_text").input("name: x\nagents: [unclosed\n").run()
    open_run(at, tmp_path / "no-such-run")
    said = [e.value for e in at.error]
    assert not at.exception
    assert any("no-such-run holds no run.json" in line for line in said), said
    assert any("invalid YAML" in line for line in said), said
    assert heading(at) == before


def test_a_run_json_with_a_bad_duration_is_one_sentence_and_the_run_stays(
    boot: Boot, tmp_path: Path
) -> None:
    # Was a ValueError traceback on the Run page, and the run on screen was gone.
    saved = sim.run("timeout-cascade").save(tmp_path / "saved")
    manifest = json.loads((saved / "run.json").read_text())
    (saved / "run.json").write_text(json.dumps({**manifest, "duration": "abc"}))
    at = boot()
    before = heading(at)
    open_run(at, saved)
    assert not at.exception
    assert len(at.error) == 1 and "duration must be the run's length" in at.error[0].value
    assert "Traceback" not in at.error[0].value
    assert heading(at) == before


def test_every_page_draws_a_trace_of_a_single_instant(boot: Boot, tmp_path: Path) -> None:
    # Was: Replay and Topology raised (a slider from 0 to 0), Compare raised on the
    # imported trace's missing seed (int(None)).
    at = boot()
    data = json.dumps(ONE_INSTANT).encode()
    at.file_uploader[1].set_value(("one.json", data, "application/json")).run()
    assert not at.exception and not at.error
    assert heading(at) == "one · imported trace"
    for page in PAGES:
        at.switch_page(state.PAGES[page]).run()
        assert not at.exception, (page, [e.value for e in at.exception])
