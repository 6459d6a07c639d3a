"""What the pages read of a run (`ui.figures.reads`), through the Run's queries: the same
figures' data from an in-memory Run as from the whole tables, and from the same run
spilled to Parquet and read lazily, without loading its messages or spans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim
from sim import Run
from sim.trace import query as q
from sim.trace import spill
from sim.trace.lazy import LazyRun
from ui import figures
from ui import summary as views
from ui.figures import overview, reads, replay
from ui.figures.topology import graph_from_counts

# Failures of every kind between them: refused, gave up, late answers and retries;
# messages dropped by a fault; dead letters and streams.
SCENARIOS = ("retry-storm-breaker", "fault-loss", "collaboration-poison")


@pytest.fixture(scope="module", params=SCENARIOS)
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Run, LazyRun]:
    """A built-in scenario's run in memory, and spilled (many row groups) read lazily."""
    name = str(request.param)
    memory = sim.run(name)
    folder = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spill, "SPILL_ROWS", 500)  # many row groups: order across them
        lazy = sim.run(name, spill=folder)
    assert isinstance(lazy, LazyRun)
    return memory, lazy


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal rows and columns, whatever their index labels."""
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def windows(run: Run) -> list[tuple[float, float, replay.Filters, int]]:
    """Windows with and without thinning and filters."""
    d = run.duration
    agent = str(run.agents["agent"].iloc[0])
    trace = str(run.messages["correlation_id"].replace("", np.nan).dropna().iloc[0])
    return [
        (0.0, d, replay.Filters(), 2000),  # the whole run, thinned
        (0.0, d, replay.Filters(), 500),
        (d * 0.4, d * 0.45, replay.Filters(), 2000),
        (d * 0.2, d * 0.6, replay.Filters(agents=(agent,)), 1000),
        (0.0, d, replay.Filters(kinds=("request",)), 300),
        (0.0, d, replay.Filters(correlation_id=trace), 2000),
        (d + 1.0, d + 2.0, replay.Filters(), 2000),  # past the end: nothing
    ]


def test_conditions_select_the_same_rows_in_memory_and_from_parquet(
    runs: tuple[Run, LazyRun],
) -> None:
    memory, lazy = runs
    d = memory.duration
    for cond in (
        None,
        q.eq("kind", "request"),
        q.ne("outcome", "delivered"),
        q.isin("seq", [0, 3, 17]),
        q.isin("src", []),
        q.gt("attempt", 1),
        q.Not(q.missing("delivered_at")),
        reads.on_wire(d * 0.3, d * 0.5, d),
    ):
        same(memory.select("messages", None, cond), lazy.select("messages", None, cond))
        assert memory.count_where("messages", cond) == lazy.count_where("messages", cond)
        same(
            memory.group_counts("messages", ["src", "kind"], cond),
            lazy.group_counts("messages", ["src", "kind"], cond),
        )
    for cond in (q.ge("status", 500), q.ne("outcome", "ok"), q.eq("parent_id", "")):
        same(memory.select("spans", None, cond), lazy.select("spans", None, cond))
    assert not {"messages", "spans"} & set(lazy.tables.loaded())


def test_the_replay_window_is_the_whole_tables_window(runs: tuple[Run, LazyRun]) -> None:
    memory, lazy = runs
    for start, end, flt, limit in windows(memory):
        before = replay.window(
            replay.filter_messages(memory.messages, flt), start, end, memory.duration, limit
        )
        for run in (memory, lazy):
            win = reads.window(run, start, end, flt, limit)
            same(before.rows, win.rows)
            assert (win.total, win.step, win.failures_kept, win.folded, win.streams) == (
                before.total,
                before.step,
                before.failures_kept,
                before.folded,
                before.streams,
            )
        # In memory the rows are the table's own (their index labels too).
        assert reads.window(memory, start, end, flt, limit).rows.index.equals(before.rows.index)
    assert not {"messages", "spans"} & set(lazy.tables.loaded())


def test_failures_overview_and_logical_time_match_the_whole_tables(
    runs: tuple[Run, LazyRun],
) -> None:
    memory, lazy = runs
    events = figures.failures.failure_events(
        memory.messages, memory.spans, memory.breakers, memory.faults
    )
    agents = memory.agents["agent"].tolist()
    by_agent = overview.by_agent(memory.messages, events, agents, memory.duration)
    by_link = overview.by_link(memory.messages, memory.spans, agents, memory.duration)
    times = figures.event_times(memory.messages, memory.duration)
    for run in (memory, lazy):
        same(events, reads.failure_events(run))
        for got, want in (
            (reads.overview_by_agent(run, events), by_agent),
            (reads.overview_by_link(run), by_link),
        ):
            assert got.rows == want.rows
            for field in ("traffic", "failed", "edges", "tried"):
                np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
        np.testing.assert_array_equal(reads.event_times(run), times)
    assert not {"messages", "spans"} & set(lazy.tables.loaded())


def test_cascades_topology_and_tables_match_the_whole_tables(
    runs: tuple[Run, LazyRun],
) -> None:
    memory, lazy = runs
    index = figures.trace_index(memory.spans)
    trace = str(index["correlation_id"].iloc[len(index) // 2])
    graph = figures.graph(memory.agents, memory.messages, memory.spans, [("x", "y", "http")])
    letters = figures.dead_letters(memory.messages, memory.spans)
    requests = figures.requests(memory.spans)
    spans_table = views.spans_table(memory.spans)
    sent = memory.messages.loc[memory.messages["sent_at"] <= memory.duration / 2]
    options = [str(v) for v in sent["correlation_id"].unique()[:300]]
    seq = int(memory.messages["seq"].iloc[len(memory.messages) // 3])
    detail = replay.message_detail(memory.messages, memory.spans, seq)
    for run in (memory, lazy):
        same(reads.trace_index(run), index)
        same(reads.trace_spans(run, trace), memory.spans[memory.spans["correlation_id"] == trace])
        calls, forward, pairs = reads.graph_counts(run)
        got = graph_from_counts(run.agents, calls, forward, pairs, [("x", "y", "http")])
        assert list(got.nodes(data=True)) == list(graph.nodes(data=True))
        assert list(got.edges(data=True)) == list(graph.edges(data=True))
        same(figures.dead_letters(*reads.dead_letter_rows(run)), letters)
        same(figures.requests(reads.request_spans(run)), requests)
        same(views.spans_table_of(reads.spans_by_outcome_kind(run)), spans_table)
        assert reads.traces_sent(run, 0.0, memory.duration / 2) == options
        same(reads.message_detail(run, seq), detail)
        for column in ("protocol", "kind", "type"):
            assert reads.values(run, "messages", column) == sorted(
                str(v) for v in memory.messages[column].unique()
            )
    assert not {"messages", "spans"} & set(lazy.tables.loaded())


def test_a_run_saved_before_a_column_was_added_is_still_read(tmp_path: Path) -> None:
    # A query on a column the file lacks falls back to reading the table, as `tables`.
    run = sim.run("fault-loss")
    folder = run.save(tmp_path / "old")
    spans = pd.read_parquet(folder / "spans.parquet").drop(columns=["lost_events"])
    spans.to_parquet(folder / "spans.parquet", index=False)
    lazy = LazyRun.open(folder)
    same(
        reads.failure_events(lazy),
        figures.failures.failure_events(run.messages, run.spans, run.breakers, run.faults),
    )
