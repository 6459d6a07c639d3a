"""A saved run opened in the dashboard is read lazily (`ui.state.open_saved`).

A run of millions of messages saved with `--spill` opens without loading its tables:
the Run page's summary reads only the columns it needs, and each other table is read
when a page first asks for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sim
from sim.trace import run_digests
from sim.trace.lazy import LazyRun
from tests.test_app import button, heading, metrics, scenarios
from ui import state
from ui.figures import reads

if TYPE_CHECKING:
    from tests.conftest import Boot

__all__ = ["scenarios"]  # the fixture, used by name


def test_a_spilled_run_opens_lazily_and_every_page_renders(
    scenarios: Path, tmp_path: Path, boot: Boot
) -> None:
    spilled = sim.run("faulty", spill=tmp_path / "faulty-run")
    at = boot()
    at.text_input(key="open_path").input(
        str(tmp_path / "faulty-run")
    )  # held by the form until submitted
    button(at, "Open run").click().run()
    assert not at.exception and not at.error
    assert heading(at) == "faulty · seed 7"
    run = at.session_state["run"]
    assert isinstance(run, LazyRun)
    # The summary cards came from the files: the messages table was never loaded.
    assert "messages" not in run.tables.loaded()
    assert metrics(at) == metrics(boot(run=sim.run("faulty")))
    for page in ("replay", "cascades", "breakers", "queues", "topology", "compare", "run"):
        at.switch_page(f"ui/pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        # Each page read the rows it draws, never a whole messages or spans table.
        assert not {"messages", "spans"} & set(run.tables.loaded()), (page, run.tables.loaded())
    assert run_digests(run) == run_digests(spilled)
    # The tables the pages share across reruns (st.cache_resource) were never changed in
    # place by the pages that read them.
    key = state.run_key(run)
    assert state.trace_index(run, key).equals(reads.trace_index(run))
    assert state.failures(run, key).equals(reads.failure_events(run))
    assert state.request_spans(run, key).equals(reads.request_spans(run))
    shared = state.event_times(run, key)
    assert not shared.flags.writeable and (shared == reads.event_times(run)).all()


def test_a_directory_that_is_not_a_run_says_so(scenarios: Path, tmp_path: Path, boot: Boot) -> None:
    saved = sim.run("faulty").save(tmp_path / "broken-run")
    (saved / "spans.parquet").write_text("not parquet")
    at = boot()
    at.text_input(key="open_path").input(str(saved))  # held by the form until submitted
    button(at, "Open run").click().run()
    assert (
        len(at.error) == 1 and "spans.parquet is not a readable Parquet file" in at.error[0].value
    )
