"""The figure builders, pure: a Run's tables in, a plotly Figure out; assertions on the
traces' data, never on pixels."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

import sim
from sim import loading
from sim.trace import Run, conform
from ui import export, figures, knobs
from ui.figures import cascade

# The runs (`chain`, `partition`, `loss`) are fixtures of tests/conftest.py.


def synthetic_breakers() -> pd.DataFrame:
    """Two breakers: B -> C opens when C slows down, probes, reopens, then closes;
    A -> B is forced open by hand and later disabled."""
    rows = [
        (32.0, "B", "C", "CLOSED", "OPEN", "slow-call rate 100% >= 100%", 0.0, 1.0, 10),
        (37.0, "B", "C", "OPEN", "HALF_OPEN", "waited 5 s in OPEN", 0.0, 1.0, 10),
        (38.5, "B", "C", "HALF_OPEN", "OPEN", "a permitted call was slow", 0.0, 1.0, 3),
        (61.0, "B", "C", "OPEN", "HALF_OPEN", "waited 5 s in OPEN", 0.0, 0.0, 0),
        (62.0, "B", "C", "HALF_OPEN", "CLOSED", "3 permitted calls ok", 0.0, 0.0, 3),
        (40.0, "A", "B", "CLOSED", "FORCED_OPEN", "forced open by the operator", 0.6, 0.2, 20),
        (50.0, "A", "B", "FORCED_OPEN", "DISABLED", "disabled by the operator", 0.0, 0.0, 0),
    ]
    columns = ["time", "agent", "target", "from_state", "to_state", "reason"]
    columns += ["failure_rate", "slow_rate", "calls"]
    return conform("breakers", pd.DataFrame(rows, columns=columns))


def with_breakers(run: Run) -> Run:
    """The run with the synthetic breakers table (the simulator's breaker may not be
    wired into every scenario yet)."""
    return Run(dict(run.tables, breakers=synthetic_breakers()), run.manifest)


def cascade_trace(run: Run) -> str:
    """A trace whose root call timed out while work went on below it (the cascade)."""
    spans = run.spans
    roots = spans[(spans["parent_id"] == "") & (spans["outcome"] == "timeout")]
    for root in roots.itertuples(index=False):
        trace = spans[spans["correlation_id"] == root.correlation_id]
        if len(trace) >= 3 and (trace["end"] > root.end).any():
            return str(root.correlation_id)
    raise AssertionError("timeout-chain has no cascading trace")


def arrows(fig: go.Figure, names: set[str] | None = None) -> dict[str, list[int]]:
    """The message arrows of a space-time figure: trace name -> seqs, one per segment."""
    out: dict[str, list[int]] = {}
    for trace in fig.data:
        if trace.name in ("lifelines", "selected") or trace.customdata is None:
            continue
        if names is not None and trace.name not in names:
            continue
        custom = list(trace.customdata)
        out[trace.name] = [int(custom[i]) for i in range(1, len(custom), 3)]
    return out


# --- fault bands -------------------------------------------------------------------------


def test_fault_bands_cover_each_window_on_every_subplot(chain: Run) -> None:
    fig = figures.breakers_figure(synthetic_breakers(), chain.duration, chain.faults)

    assert figures.fault_bands(fig) == [("f0-latency", 30.0, 60.0)]
    rects = [s for s in fig.layout.shapes if (s.name or "").startswith("fault:")]
    assert {s.xref for s in rects} == {"x", "x2"}  # both panels
    assert all(s.type == "rect" and s.y0 == 0 and s.y1 == 1 for s in rects)
    assert "fault: latency" in [t.name for t in fig.data]  # the legend says what it is


def test_a_fault_without_end_is_shaded_to_the_end_of_the_run() -> None:
    faults = pd.DataFrame(
        {
            "fault_id": ["f0-partition"],
            "kind": ["partition"],
            "start": [40.0],
            "end": [np.nan],
            "targets": ["api"],
            "params": ["{}"],
        }
    )
    fig = figures.add_fault_bands(go.Figure(), faults, 60.0)
    assert figures.fault_bands(fig) == [("f0-partition", 40.0, 60.0)]


def test_every_time_axis_figure_shades_the_faults(chain: Run) -> None:
    trace = chain.spans[chain.spans["outcome"] == "timeout"]["correlation_id"].iloc[0]
    built = {
        "spacetime": figures.spacetime(
            figures.window(chain.messages, 25, 40, chain.duration).rows,
            chain.agents["agent"].tolist(),
            chain.duration,
            chain.faults,
            x_range=(25, 40),
        ),
        "waterfall": figures.waterfall(
            chain.spans[chain.spans["correlation_id"] == trace], chain.faults, chain.duration
        ),
        "breakers": figures.breakers_figure(synthetic_breakers(), chain.duration, chain.faults),
        "queues": figures.queues_figure(chain.queues, chain.duration, chain.faults),
        "requests": figures.requests_figure(chain.spans, chain.duration, chain.faults),
        "comparison": figures.comparison_figure([("A", chain.spans, chain.duration, chain.faults)]),
    }
    for name, fig in built.items():
        bands = figures.fault_bands(fig)
        assert [(b[1], b[2]) for b in bands] == [(30.0, 60.0)], name


# --- space-time diagram ------------------------------------------------------------------


def in_window(messages: pd.DataFrame, start: float, end: float, duration: float) -> set[int]:
    """The seqs of the messages on the wire at some point of [start, end], computed here
    independently of the builder."""
    stop = messages["delivered_at"].fillna(messages["ended_at"]).fillna(duration)
    mask = (messages["sent_at"] <= end) & (stop >= start)
    return set(messages.loc[mask, "seq"].tolist())


def test_spacetime_draws_one_arrow_per_message_in_the_window(loss: Run) -> None:
    start, end = 14.0, 18.0
    win = figures.window(loss.messages, start, end, loss.duration)
    fig = figures.spacetime(
        win.rows, loss.agents["agent"].tolist(), loss.duration, loss.faults, x_range=(start, end)
    )

    drawn = [seq for seqs in arrows(fig).values() for seq in seqs]
    assert sorted(drawn) == sorted(in_window(loss.messages, start, end, loss.duration))
    assert len(drawn) == len(set(drawn)) == win.total
    assert not win.thinned and win.note() == ""
    for trace in fig.data:
        if trace.name in arrows(fig):
            xs = list(trace.x)
            assert xs[2::3] == [None] * (len(xs) // 3)  # segments separated by None
    assert list(fig.layout.xaxis.range) == [start, end]
    assert list(fig.layout.yaxis.ticktext) == ["client", "api"]


def test_spacetime_colours_by_protocol_and_separates_handshakes(loss: Run) -> None:
    win = figures.window(loss.messages, 0, 5, loss.duration)
    fig = figures.spacetime(win.rows, ["client", "api"], loss.duration)
    names = set(arrows(fig))
    assert {"http", "http handshakes"} <= names
    handshakes = set(arrows(fig)["http handshakes"])
    controls = set(win.rows.loc[win.rows["kind"] == "control", "seq"])
    assert handshakes == controls
    color = {t.name: t.line.color for t in fig.data}
    assert color["http"] == figures.PROTOCOL_COLORS["http"]


def test_dropped_messages_are_marked_where_they_died(loss: Run) -> None:
    start, end = 15.0, 45.0
    win = figures.window(loss.messages, start, end, loss.duration, limit=10**6)
    fig = figures.spacetime(win.rows, ["client", "api"], loss.duration, x_range=(start, end))
    dropped = loss.messages[
        (loss.messages["outcome"] == "dropped") & loss.messages["seq"].isin(win.rows["seq"])
    ]
    assert len(dropped) > 0

    trace = next(t for t in fig.data if t.name == "dropped")
    assert sorted(arrows(fig)["dropped"]) == sorted(dropped["seq"].tolist())
    assert trace.marker.symbol == "x" and trace.line.dash == "dash"
    ends_x = list(trace.x)[1::3]
    ends_y = list(trace.y)[1::3]
    assert ends_x == pytest.approx(dropped["ended_at"].tolist())
    assert ends_y == pytest.approx([0.5] * len(dropped))  # half-way between the lanes
    sizes = list(trace.marker.size)
    assert sizes[0::3] == [0] * len(dropped) and all(s > 0 for s in sizes[1::3])


def test_partitioned_messages_are_marked(partition: Run) -> None:
    win = figures.window(partition.messages, 19, 36, partition.duration, limit=10**6)
    fig = figures.spacetime(win.rows, ["client", "api", "store"], partition.duration)
    expected = win.rows.loc[win.rows["outcome"] == "partitioned", "seq"].tolist()
    assert len(expected) > 0
    assert sorted(arrows(fig)["partitioned"]) == sorted(expected)
    trace = next(t for t in fig.data if t.name == "partitioned")
    assert trace.marker.symbol == "square-x-open"


def test_a_crowded_window_is_thinned_and_keeps_every_failure(loss: Run) -> None:
    win = figures.window(loss.messages, 0, loss.duration, loss.duration, limit=300)
    failures = int((loss.messages["outcome"] != "delivered").sum())

    assert win.total == len(loss.messages) and len(win.rows) <= 300
    assert win.thinned and "Showing" in win.note() and f"{win.total:,}" in win.note()
    assert int((win.rows["outcome"] != "delivered").sum()) == failures
    again = figures.window(loss.messages, 0, loss.duration, loss.duration, limit=300)
    assert again.rows["seq"].tolist() == win.rows["seq"].tolist()  # the same sample


def test_logical_time_counts_events_in_order(chain: Run) -> None:
    events = figures.event_times(chain.messages, chain.duration)
    assert len(events) == 2 * len(chain.messages)
    assert np.all(np.diff(events) >= 0)
    win = figures.window(chain.messages, 0, 10, chain.duration)
    fig = figures.spacetime(win.rows, ["A", "B", "C"], chain.duration, events=events)
    trace = next(t for t in fig.data if t.name == "http")
    sent = list(trace.x)[0::3]
    assert sent == [float(v) for v in sent] and all(float(v).is_integer() for v in sent)
    arrived = list(trace.x)[1::3]
    assert all(a > s for s, a in zip(sent, arrived, strict=True))
    assert fig.layout.xaxis.title.text.startswith("event order")
    # The first message of the run is its first event.
    assert figures.to_logical([chain.messages["sent_at"].min()], events)[0] == 0


def test_past_ten_thousand_points_the_diagram_stays_svg(chain: Run) -> None:
    # WebGL drew only the arrows' endpoint dots in Streamlit's plotly.js (issue 16); the
    # arrows are capped (4,000 at most on the page), which SVG draws.
    win = figures.window(chain.messages, 0, chain.duration, chain.duration, limit=10**6)
    assert 3 * len(win.rows) < figures.WEBGL_POINTS
    small = figures.spacetime(win.rows, ["A", "B", "C"], chain.duration)
    assert {t.type for t in small.data} == {"scatter"}

    big = pd.concat(
        [chain.messages.assign(seq=chain.messages["seq"] + k * 10**6) for k in range(3)]
    )
    large = figures.spacetime(big, ["A", "B", "C"], chain.duration)
    assert 3 * len(big) > figures.WEBGL_POINTS
    assert {t.type for t in large.data} == {"scatter"}


def test_the_cursor_is_a_line_and_a_curtain_on_a_copy(chain: Run) -> None:
    win = figures.window(chain.messages, 0, 20, chain.duration)
    base = figures.spacetime(win.rows, ["A", "B", "C"], chain.duration, x_range=(0, 20))
    traces = len(base.data)
    fig = figures.with_cursor(base, 7.5)

    assert figures.cursor_of(fig) == 7.5
    assert figures.cursor_of(json.loads(fig.to_json())) == 7.5
    # Traces drawn last, over every arrow: plotly.js animates traces without a redraw.
    assert [t.name for t in fig.data[-2:]] == ["curtain", "cursor"]
    curtain = fig.data[-2]
    assert (min(curtain.x), max(curtain.x)) == (7.5, 20)
    assert len(base.data) == traces  # the cached base figure is untouched


def test_filters_select_by_trace_agent_protocol_kind_and_type(chain: Run) -> None:
    m = chain.messages
    trace = cascade_trace(chain)
    one = figures.filter_messages(m, figures.Filters(correlation_id=trace))
    assert set(one["correlation_id"]) == {trace}
    assert len(one) == (m["correlation_id"] == trace).sum()
    c = figures.filter_messages(m, figures.Filters(agents=("C",)))
    assert ((c["src"] == "C") | (c["dst"] == "C")).all() and len(c) > 0
    requests = figures.filter_messages(m, figures.Filters(kinds=("request",)))
    assert set(requests["kind"]) == {"request"}
    assert figures.filter_messages(m, figures.Filters(protocols=("queue",))).empty
    assert len(figures.filter_messages(m, figures.Filters(types=("tcp.syn",)))) > 0


def test_message_detail_lists_the_envelope_and_its_span(chain: Run) -> None:
    seq = int(chain.messages["seq"].iloc[4])
    detail = figures.message_detail(chain.messages, chain.spans, seq).set_index("field")
    for field in ("msg_id", "type", "kind", "src", "dst", "correlation_id", "attempt", "outcome"):
        assert field in detail.index
    assert detail.loc["correlation_id", "value"] == chain.messages["correlation_id"].iloc[4]
    assert "span" in detail.index


# --- waterfall ---------------------------------------------------------------------------


def bars(fig: go.Figure) -> dict[str, tuple[float, float]]:
    """span_id -> (start, end) from the waterfall's outcome bars."""
    out = {}
    for trace in fig.data:
        if trace.type == "bar" and trace.customdata is not None:
            for span, base, width in zip(trace.customdata, trace.base, trace.x, strict=True):
                out[span] = (base, base + width)
    return out


def test_the_waterfall_has_one_bar_per_span_of_the_trace(chain: Run) -> None:
    spans = chain.spans[chain.spans["correlation_id"] == cascade_trace(chain)]
    fig = figures.waterfall(spans, chain.faults, chain.duration)

    drawn = bars(fig)
    assert set(drawn) == set(spans["span_id"])
    for row in spans.itertuples(index=False):
        assert drawn[row.span_id] == pytest.approx((row.start, row.end))
    tree = figures.tree_order(spans)
    assert tree["depth"].tolist() == [0, 1, 2]  # A -> B -> C, in call order
    assert len(fig.layout.yaxis.ticktext) == len(spans)


def test_the_waterfall_marks_deadlines_timeouts_and_wasted_work(chain: Run) -> None:
    spans = chain.spans[chain.spans["correlation_id"] == cascade_trace(chain)]
    fig = figures.waterfall(spans, chain.faults, chain.duration)
    by_name = {t.name: t for t in fig.data}

    deadlines = sorted(spans["deadline"].dropna())
    assert sorted(by_name["deadline"].x) == pytest.approx(deadlines)
    timed_out = spans[spans["outcome"].isin(cascade.GAVE_UP)]
    assert sorted(by_name["timeout fired"].x) == pytest.approx(sorted(timed_out["end"]))

    # A gave up at its 20 s timeout while B went on waiting for C: hatched red.
    root = spans[spans["parent_id"] == ""].iloc[0]
    assert root["outcome"] == "timeout"
    wasted = by_name["after the caller gave up"]
    assert min(wasted.base) == pytest.approx(root["end"])
    later = spans[spans["end"] > root["end"]]
    assert len(wasted.base) == len(later)


def test_trace_index_has_one_row_per_trace(chain: Run) -> None:
    index = figures.trace_index(chain.spans)
    assert len(index) == chain.spans["correlation_id"].nunique()
    row = index.set_index("correlation_id").loc[cascade_trace(chain)]
    assert row["outcome"] == "timeout" and row["timeouts"] >= 1 and row["spans"] == 3


# --- breakers ----------------------------------------------------------------------------


def test_breaker_bands_follow_the_transitions() -> None:
    table = figures.bands(synthetic_breakers(), 120.0)
    bc = table[table["edge"] == "B → C"][["state", "start", "end"]].values.tolist()
    assert bc == [
        ["CLOSED", 0.0, 32.0],
        ["OPEN", 32.0, 37.0],
        ["HALF_OPEN", 37.0, 38.5],
        ["OPEN", 38.5, 61.0],
        ["HALF_OPEN", 61.0, 62.0],
        ["CLOSED", 62.0, 120.0],
    ]
    ab = table[table["edge"] == "A → B"][["state", "start", "end"]].values.tolist()
    assert ab == [["CLOSED", 0.0, 40.0], ["FORCED_OPEN", 40.0, 50.0], ["DISABLED", 50.0, 120.0]]


def test_the_breakers_figure_draws_the_bands_and_the_rates() -> None:
    fig = figures.breakers_figure(synthetic_breakers(), 120.0)
    states = {t.name: t for t in fig.data if t.type == "bar"}
    assert set(states) == {"CLOSED", "OPEN", "HALF_OPEN", "FORCED_OPEN", "DISABLED"}
    opened = states["OPEN"]
    assert list(opened.y) == ["B → C", "B → C"]
    assert list(opened.base) == [32.0, 38.5]
    assert list(opened.x) == pytest.approx([5.0, 22.5])
    assert opened.marker.color == figures.BREAKER_COLORS["OPEN"]
    assert "slow-call rate 100%" in opened.hovertext[0]  # the reason, on hover
    slow = next(t for t in fig.data if t.name == "B → C slow-call rate")
    assert list(slow.x) == [32.0, 37.0, 38.5, 61.0, 62.0, 120.0]
    assert list(slow.y) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert slow.line.shape == "hv"
    only = figures.breakers_figure(synthetic_breakers(), 120.0, edges=["A → B"])
    assert {y for t in only.data if t.type == "bar" for y in t.y} == {"A → B"}


def test_breaker_state_at_a_time() -> None:
    table = synthetic_breakers()
    assert figures.state_at(table, 10.0) == {("A", "B"): "CLOSED", ("B", "C"): "CLOSED"}
    assert figures.state_at(table, 33.0)[("B", "C")] == "OPEN"
    assert figures.state_at(table, 45.0) == {("A", "B"): "FORCED_OPEN", ("B", "C"): "OPEN"}


def test_no_breakers_gives_a_figure_that_says_so() -> None:
    fig = figures.breakers_figure(synthetic_breakers().iloc[0:0], 60.0)
    assert "No breaker" in fig.layout.annotations[0].text


# --- queues ------------------------------------------------------------------------------


def test_queue_figure_draws_depth_and_in_flight_per_queue(chain: Run) -> None:
    fig = figures.queues_figure(chain.queues, chain.duration, chain.faults)
    by = {(t.name, t.yaxis): t for t in fig.data if t.name in ("B.workers", "C.workers")}
    assert set(by) == {
        ("B.workers", "y"),
        ("B.workers", "y2"),
        ("C.workers", "y"),
        ("C.workers", "y2"),
    }
    b = chain.queues[chain.queues["queue"] == "B.workers"]
    assert figures.spec_values(json.loads(fig.to_json())["data"][0]["y"]).tolist() == pytest.approx(
        b["depth"].tolist()
    )
    assert len(figures.queues_figure(chain.queues, chain.duration, names=["C.workers"]).data) == 2


def test_queue_figure_adds_a_dlq_panel_for_dead_letters() -> None:
    samples = conform(
        "queues",
        pd.DataFrame(
            {
                "time": [0.0, 1.0, 2.0, 0.0, 1.0, 2.0],
                "queue": ["tasks"] * 3 + ["tasks.dlq"] * 3,
                "depth": [3, 5, 2, 0, 1, 2],
                "in_flight": [1, 2, 1, 0, 0, 0],
                "dlq_depth": [0, 1, 2, 0, 0, 0],
                "enqueued": [3, 8, 8, 0, 1, 2],
                "acked": [0, 2, 5, 0, 0, 0],
                "redelivered": [0, 1, 2, 0, 0, 0],
                "dead_lettered": [0, 1, 2, 0, 0, 0],
            }
        ),
    )
    fig = figures.queues_figure(samples, 3.0)
    dlq = [t for t in fig.data if t.yaxis == "y3"]
    assert {t.name for t in dlq} == {"tasks", "tasks.dlq"}
    assert list(next(t for t in dlq if t.name == "tasks.dlq").y) == [0, 1, 2]


def test_the_busiest_queues_come_first(chain: Run) -> None:
    big = pd.concat(
        [chain.queues, chain.queues.assign(queue="Z.workers", depth=chain.queues["depth"] + 50)]
    )
    assert figures.busiest(big, 2) == ["Z.workers", "B.workers"]
    assert figures.busiest(big, 1) == ["Z.workers"]


def test_dead_letters_are_the_dead_lettered_messages_with_their_delivery_count(chain: Run) -> None:
    messages = chain.messages.head(6).copy()
    messages.loc[messages.index[[1, 3]], "outcome"] = "dead_lettered"
    messages.loc[messages.index[[1, 3]], "attempt"] = [5, 20]
    messages["reason"] = ["", "handler failed 5 times", "", "version 3 unreadable", "", ""]
    letters = figures.dead_letters(messages)
    assert letters["attempt"].tolist() == [5, 20]
    assert letters["reason"].tolist() == ["handler failed 5 times", "version 3 unreadable"]
    assert "reason" not in figures.dead_letters(messages.drop(columns=["reason"])).columns


# --- topology ----------------------------------------------------------------------------


def test_topology_has_every_agent_and_call_edge(partition: Run) -> None:
    g = figures.graph(partition.agents, partition.messages, partition.spans)
    assert set(g.nodes) == {"client", "api", "store"}
    assert set(g.edges) == {("client", "api"), ("api", "store")}
    assert g.edges["client", "api"]["protocol"] == "http"
    assert figures.layout(g) == figures.layout(g)  # deterministic
    assert (
        figures.layout(g)["client"][0] < figures.layout(g)["api"][0] < figures.layout(g)["store"][0]
    )


def test_topology_marks_partitioned_links_and_breaker_states(partition: Run) -> None:
    g = figures.graph(partition.agents, partition.messages, partition.spans)
    faults = list(partition.scenario.faults)
    before = figures.topology(g, at=figures.moment(partition.faults, faults, 5, 60), time=5)
    during = figures.topology(g, at=figures.moment(partition.faults, faults, 25, 60), time=25)
    assert "partitioned" not in [t.name for t in before.data]
    cut = next(t for t in during.data if t.name == "partitioned")
    assert list(cut.x).count(None) == 1  # one link, api <-> store: one arc

    breakers = synthetic_breakers().replace({"B": "api", "C": "store", "A": "client"})
    fig = figures.topology(g, breakers, time=33.0)
    marker = next(t for t in fig.data if t.name == "breaker state")
    edges = list(g.edges)
    colors = dict(zip(edges, marker.marker.color, strict=True))
    assert colors[("api", "store")] == figures.BREAKER_COLORS["OPEN"]
    assert colors[("client", "api")] == figures.BREAKER_COLORS["CLOSED"]


def test_topology_lays_agents_out_in_columns_by_call_depth(chain: Run) -> None:
    g = figures.graph(chain.agents, chain.messages, chain.spans)
    g.add_edge("C", "B", protocol="http", messages=1)  # a cycle: still columns
    pos = figures.layout(g)
    assert pos["A"][0] < pos["B"][0] < pos["C"][0]
    xs, ys = figures.curve(pos["A"], pos["B"])
    there, back = figures.curve(pos["B"], pos["C"]), figures.curve(pos["C"], pos["B"])
    assert (xs[0], ys[0]) == pytest.approx(pos["A"]) and (xs[-1], ys[-1]) == pytest.approx(pos["B"])
    assert there[1][8] != pytest.approx(back[1][8])  # B -> C and C -> B arc apart


LAYOUT_IN_A_PROCESS = """
import json, networkx as nx
from ui.figures import layout
g = nx.DiGraph()
g.add_node("client", role="client")
for name in ["w1", "w2", "w3", "w4", "w5", "w6"]:
    g.add_edge("client", name)
print(json.dumps(layout(g)))
"""


def test_topology_layout_is_the_same_in_every_process() -> None:
    # A column's order once followed the process's string hashing (a set inside
    # networkx's multipartite layout): the picture moved between server restarts.
    def layout_with(hash_seed: str) -> dict[str, list[float]]:
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run(
            [sys.executable, "-c", LAYOUT_IN_A_PROCESS],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out)

    first = layout_with("1")
    assert all(layout_with(seed) == first for seed in ("2", "3", "4"))
    # The agents table's order reads top-down within a column.
    ys = [first[f"w{i}"][1] for i in range(1, 7)]
    assert ys == sorted(ys, reverse=True)


def test_topology_marks_crashed_agents() -> None:
    run = sim.run("fault-crash")
    at = figures.moment(run.faults, list(run.scenario.faults), 25.0, run.duration)
    assert at.down == {"store": "crashed"}
    g = figures.graph(run.agents, run.messages, run.spans)
    fig = figures.topology(g, at=at, time=25.0)
    down = next(t for t in fig.data if t.name == "down (crashed or paused)")
    assert down.hovertext == ("store: crashed",)


# --- comparison --------------------------------------------------------------------------


def test_per_bucket_counts_every_request(chain: Run) -> None:
    table = figures.per_bucket(chain.spans, chain.duration, bucket=10.0)
    summary = chain.summary()
    assert len(table) == 12 and table["time"].tolist()[:2] == [0.0, 10.0]
    assert int(table["requests"].sum()) == summary["requests"]
    assert int(table["ok"].sum()) == summary["ok"]


def test_requests_figure_aligns_axes_and_switches_to_webgl(chain: Run) -> None:
    fig = figures.requests_figure(chain.spans, chain.duration, x_range=(0, 200), y_range=(-3, 2))
    assert list(fig.layout.xaxis.range) == [0, 200] and list(fig.layout.yaxis.range) == [-3, 2]
    assert {t.type for t in fig.data if t.name in ("ok", "timeout")} == {"scatter"}
    many = pd.concat(
        [chain.spans.assign(span_id=chain.spans["span_id"] + f"-{k}") for k in range(50)]
    )
    assert len(figures.requests(many)) > figures.WEBGL_POINTS
    big = figures.requests_figure(many, chain.duration)
    assert {t.type for t in big.data if t.name == "ok"} == {"scattergl"}


def test_comparison_figure_has_both_runs_on_one_axis(chain: Run, loss: Run) -> None:
    fig = figures.comparison_figure(
        [
            ("A", chain.spans, chain.duration, chain.faults),
            ("B", loss.spans, loss.duration, loss.faults),
        ]
    )
    names = [(t.name, t.yaxis) for t in fig.data if t.name in ("A", "B")]
    assert names == [("A", "y"), ("A", "y2"), ("B", "y"), ("B", "y2")]
    assert list(fig.layout.xaxis.range) == [0, 120.0]
    assert {b[0] for b in figures.fault_bands(fig)} == {"A:f0-latency", "B:f0-loss"}
    twice = figures.comparison_figure(
        [
            ("A", loss.spans, loss.duration, loss.faults),
            ("B", loss.spans, loss.duration, loss.faults),
        ]
    )
    assert [t.name for t in twice.data].count("fault: loss") == 1  # one legend entry


def test_summary_diff_names_the_better_run() -> None:
    a = {"requests": 100, "ok": 90, "goodput": 1.5, "p99": 2.0, "errors_by_kind": {"timeout": 10}}
    b = {"requests": 100, "ok": 99, "goodput": 1.65, "p99": 0.5, "errors_by_kind": {"error": 1}}
    diff = figures.summary_diff(a, b).set_index("metric")
    assert diff.loc["Requests ok", "change"] == 9 and diff.loc["Requests ok", "better"] == "b"
    assert diff.loc["p99 latency (s)", "relative"] == pytest.approx(-0.75)
    assert diff.loc["p99 latency (s)", "better"] == "b"
    assert diff.loc["Requests", "better"] == ""
    assert diff.loc["errors: timeout", "b"] == 0 and diff.loc["errors: error", "better"] == "a"
    assert "Dead-lettered" not in diff.index  # neither summary reports it


# --- knobs, downloads, uploads (pure helpers of the Run page) ---------------------------


def test_knobs_list_the_main_fields_and_apply_as_overrides() -> None:
    scenario = loading.load("timeout-chain")
    listed = {k.path: k for k in knobs.knobs(scenario)}
    assert listed["channels.0.timeout"].value == 20
    assert listed["agents.1.workers"].value == 4
    assert listed["workload.0.arrivals.rate"].value == 2
    assert listed["faults.0.start"].value == 30 and listed["faults.0.end"].value == 60
    values = {k: k_.value for k, k_ in listed.items()}
    assert knobs.changed(list(listed.values()), values) == {}

    values.update({"channels.1.timeout": 5.0, "agents.2.workers": 8, "faults.0.enabled": False})
    overrides = knobs.changed(list(listed.values()), values)
    assert overrides == {
        "channels.1.timeout": 5.0,
        "agents.2.workers": 8,
        "faults.0.enabled": False,
    }
    data = loading.read_data(loading.builtin_path("timeout-chain"))
    changed = loading.validate(knobs.apply(data, overrides), "test")
    assert changed.channels[1].timeout == 5.0 and changed.agents[2].workers == 8
    assert changed.faults == []
    assert data["faults"]  # the original data is untouched
    line = knobs.command_line("timeout-chain", 3, overrides)
    assert line.endswith("--seed 3 --set channels.1.timeout=5.0 --set agents.2.workers=8")


def test_the_run_zip_loads_back_and_the_csv_zip_holds_every_table(
    chain: Run, tmp_path: Path
) -> None:
    with zipfile.ZipFile(io.BytesIO(export.run_zip(chain, "chain"))) as archive:
        archive.extractall(tmp_path)
    loaded = sim.load(tmp_path / "chain")
    pd.testing.assert_frame_equal(loaded.messages, chain.messages)
    with zipfile.ZipFile(io.BytesIO(export.trace_csv_zip(chain))) as archive:
        names = sorted(archive.namelist())
        spans = pd.read_csv(archive.open("spans.csv"))
    assert names == sorted(f"{t}.csv" for t in chain.tables)
    assert len(spans) == len(chain.spans)


def test_uploads_over_5_mb_are_refused() -> None:
    assert export.upload_text("ok.yaml", b"name: x\n") == "name: x\n"
    with pytest.raises(export.UploadError, match="over 5 MB are refused"):
        export.upload_text("big.yaml", b"#" * (5 * 1024 * 1024 + 1))
    with pytest.raises(export.UploadError, match="not UTF-8"):
        export.upload_text("bin.yaml", b"\xff\xfe\x00bad")


# --- model calls: streamed tokens and the first token ---------------------------------


@pytest.fixture(scope="module")
def token_stream() -> Run:
    """A client streaming answers from a model, one token per event (the most events)."""
    return sim.run(
        {
            "name": "tokens",
            "seed": 3,
            "duration": 30,
            "agents": [
                {"id": "c", "role": "client"},
                {
                    "id": "model",
                    "role": "llm",
                    "workers": 100,
                    "llm": {"model": "claude-sonnet-4.6", "stream": {"chunk_tokens": 1}},
                },
            ],
            "channels": [{"from": "c", "to": "model", "timeout": 120, "protocol": "sse"}],
            "workload": [{"from": "c", "to": "model", "arrivals": {"kind": "poisson", "rate": 1}}],
        }
    )


def test_replay_draws_a_token_stream_by_its_first_and_last_events(token_stream: Run) -> None:
    m = token_stream.messages
    events = m[m["kind"] == "event"]
    per_stream = events.groupby("span_id").size()
    assert per_stream.min() > 3  # one token per event: hundreds per answer
    win = figures.window(m, 0, 30, 30, limit=2000)
    drawn = win.rows[win.rows["kind"] == "event"]
    # Each stream still shows when it began and when it ended.
    assert (
        drawn.groupby("span_id")["seq"]
        .agg(["min", "max", "size"])
        .equals(events.groupby("span_id")["seq"].agg(["min", "max"]).assign(size=2))
    )
    assert win.folded == len(events) - 2 * len(per_stream) and win.streams == len(per_stream)
    # The rest of the traffic is all there: only stream events were left out.
    assert len(win.rows) == len(m) - win.folded
    assert f"{win.folded:,} events between them are left out" in win.note()
    # Under the limit nothing is folded.
    assert figures.window(m, 0, 30, 30, limit=len(m)).folded == 0


def test_the_waterfall_marks_a_model_calls_first_token(token_stream: Run) -> None:
    spans = token_stream.spans
    trace = spans[spans["correlation_id"] == spans["correlation_id"].iloc[0]]
    fig = cascade.waterfall(trace, duration=30)
    marks = [t for t in fig.data if t.name == "first token"]
    assert len(marks) == 1
    timed = trace[trace["ttft"].notna()]
    assert sorted(marks[0].x) == pytest.approx(sorted(timed["start"] + timed["ttft"]))
    assert len(timed) == 2  # generated on the model's span, received on the stream's
