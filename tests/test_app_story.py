"""The dashboard tells the failure story (issue 16) under AppTest: state that belongs to
a run stays with it, following a trace fits the view to it, Compare judges fairly, and
the failures are drawn where they happened. Browser-only checks are in
tests/test_browser_story.py."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from sim.trace import Run
from ui import state

if TYPE_CHECKING:
    from tests.conftest import Boot


def charts(at: Any) -> list[dict[str, Any]]:
    """Every plotly chart on the page, as its JSON spec."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def arrows(spec: dict[str, Any]) -> list[int]:
    """The seqs of the message arrows of a space-time diagram's spec."""
    seqs = []
    for trace in spec["data"]:
        if trace.get("name") in ("lifelines", "selected") or "customdata" not in trace:
            continue
        if trace.get("mode") != "lines+markers":
            continue
        seqs += [int(v) for v in trace["customdata"][1::3]]
    return seqs


def cursor(spec: dict[str, Any]) -> float:
    """The x of the time cursor on a space-time diagram's spec."""
    return float(next(t["x"][0] for t in spec["data"] if t.get("name") == "cursor"))


def timed_out_trace(run: Run) -> str:
    """A trace whose request timed out, late in the run (after Replay's first window)."""
    spans = run.spans
    roots = spans[(spans["parent_id"] == "") & (spans["outcome"] == "timeout")]
    return str(roots.sort_values("start")["correlation_id"].iloc[-1])


# --- state that belongs to a run -------------------------------------------------------


def test_opening_cascades_does_not_filter_replay(chain: Run, boot: Boot) -> None:
    at = boot("cascades", chain)
    shown = at.selectbox(key="cascades_trace").value
    assert shown  # Cascades shows a trace...
    at.switch_page(state.PAGES["replay"]).run()
    # ...but nobody chose it: Replay shows every trace.
    assert at.selectbox(key="replay_trace").value == ""
    seqs = arrows(charts(at)[0])
    traces = set(chain.messages.set_index("seq").loc[seqs, "correlation_id"])
    assert len(traces) > 1


def test_a_trace_of_another_run_is_not_an_empty_filter(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain, trace="no-such-trace")
    assert at.selectbox(key="replay_trace").value == ""
    assert len(arrows(charts(at)[0])) > 0
    assert any("not in this run" in c.value for c in at.caption)


def test_a_new_run_forgets_the_trace_and_cursor_of_the_last(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    trace = timed_out_trace(chain)
    at.session_state[state.TRACE] = trace
    at.run()
    assert at.selectbox(key="replay_trace").value == trace
    at.switch_page(state.PAGES["run"]).run()
    at.button[0].click().run()  # Run
    assert not at.exception
    assert state.TRACE not in at.session_state
    at.switch_page(state.PAGES["replay"]).run()
    assert at.selectbox(key="replay_trace").value == ""
    assert not any("Filtered to trace" in i.value for i in at.info)


# --- following a trace -----------------------------------------------------------------


def test_replay_trace_from_cascades_fits_the_cursor_to_it(chain: Run, boot: Boot) -> None:
    trace = timed_out_trace(chain)
    at = boot("cascades", chain)
    at.selectbox(key="cascades_trace").set_value(trace).run()
    next(b for b in at.button if b.label.startswith("Replay trace")).click().run()
    assert at.title[0].value == "Replay"
    spec = charts(at)[0]
    _, hi = spec["layout"]["xaxis"]["range"]
    # Nothing behind the curtain: the cursor stands at the trace's end.
    assert cursor(spec) == pytest.approx(hi)
    assert any(f"Filtered to trace **{trace}**" in i.value for i in at.info)
    # Only the agents the trace involves have a lifeline.
    rows = chain.messages[chain.messages["correlation_id"] == trace]
    involved = set(rows["src"]) | set(rows["dst"])
    assert set(spec["layout"]["yaxis"]["ticktext"]) == involved
    # Showing all traces again brings the cursor back into the window. (AppTest reruns
    # the page it last switched to, not the one st.switch_page opened: switch to it.)
    at.switch_page(state.PAGES["replay"]).run()
    assert at.selectbox(key="replay_trace").value == trace
    at.button(key="replay_all_traces").click().run()
    start, end = at.slider(key="replay_window").value
    assert start <= cursor(charts(at)[0]) <= end
    assert at.selectbox(key="replay_trace").value == ""


# --- Compare ---------------------------------------------------------------------------


def test_compare_labels_runs_by_the_knob_they_differ_in(boot: Boot) -> None:
    import sim
    from sim import loading

    data = loading.read_data(loading.builtin_path("timeout-chain"))
    data["channels"][0]["timeout"] = 5
    a = sim.run(data)
    at = boot("compare", a)
    next(b for b in at.button if b.label == "Run B").click().run()
    assert not at.exception
    titles = [c["layout"]["title"]["text"] for c in charts(at)[:2]]
    assert "A → B (s) 5" in titles[0] and "A → B (s) 20" in titles[1]
    assert any("differ in: A → B (s) 5 in A, 20 in B" in c.value for c in at.caption)


def test_the_run_that_failed_most_requests_does_not_win_on_latency() -> None:
    from ui import figures

    a = {"requests": 100, "ok": 15, "success_rate": 0.15, "p50": 0.05, "p99": 0.1}
    b = {"requests": 100, "ok": 99, "success_rate": 0.99, "p50": 0.2, "p99": 0.8}
    diff = figures.summary_diff(a, b).set_index("metric")
    assert diff.loc["Success rate", "better"] == "b"
    for metric in ("p50 latency (s)", "p99 latency (s)"):
        assert diff.loc[metric, "better"].startswith("neither: a is faster but succeeds less")
    # With success alike, the faster run wins.
    diff = figures.summary_diff(a, dict(b, success_rate=0.155)).set_index("metric")
    assert diff.loc["p99 latency (s)", "better"] == "a"


@pytest.mark.parametrize("lo, hi", [(-1.2, -0.8), (0.05, 0.35), (-2.02, -1.98)])
def test_a_log_latency_axis_within_one_decade_has_tick_labels(lo: float, hi: float) -> None:
    import math

    from ui.figures.common import log_ticks

    ticks = log_ticks(lo, hi)
    assert len([v for v in ticks["tickvals"] if lo <= math.log10(v) <= hi]) >= 2
    assert log_ticks(-3.0, 1.0) == {"dtick": 1}


def test_compare_axes_label_runs_within_one_decade(chain: Run) -> None:
    import math

    from ui import figures

    fig = figures.requests_figure(chain.spans, chain.duration, y_range=(-1.2, -0.8))
    y = fig.layout.yaxis
    shown = [v for v in (y.tickvals or ()) if -1.2 <= math.log10(v) <= -0.8]
    assert len(shown) >= 2  # before: dtick=1 put no tick at all in (0.063 s, 0.16 s)


# --- Topology --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def overload() -> Run:
    """collaboration-overload: the orchestrator's breakers open at about 8 s."""
    import sim

    return sim.run("collaboration-overload")


def test_topology_names_the_open_breakers(overload: Run, boot: Boot) -> None:
    opened = overload.breakers[overload.breakers["to_state"] == "OPEN"].sort_values("time")
    assert len(opened) >= 3
    first = opened.iloc[0]
    at = boot("topology", overload)
    at.slider(key="topology_time").set_value(float(first["time"]) + 0.01).run()
    said = " ".join(w.value for w in at.warning)
    assert f"breaker {first['agent']} → {first['target']} OPEN" in said
    assert not any("nothing is broken" in c.value for c in at.caption)


def test_topology_names_sit_above_the_arrowheads_and_colours_have_a_legend(
    overload: Run,
) -> None:
    from ui import figures

    g = figures.graph(overload.agents, overload.messages, overload.spans)
    fig = figures.topology(g, overload.breakers, time=10.0)
    notes = list(fig.layout.annotations)
    heads = [i for i, a in enumerate(notes) if a.showarrow]
    labels = [i for i, a in enumerate(notes) if (a.name or "").startswith("label:")]
    assert heads and labels and max(heads) < min(labels)  # drawn after: on top
    assert all(notes[i].bgcolor for i in labels)
    assert {notes[i].text for i in labels} == set(g.nodes)
    legend = {t.name for t in fig.data if t.showlegend is not False}
    roles = {str(g.nodes[n].get("role")) for n in g.nodes}
    assert {f"agent: {r}" for r in roles} <= legend
    assert any(n.endswith(" calls") for n in legend if n)


# --- Replay: drawing and playing -------------------------------------------------------


def test_four_thousand_arrows_are_drawn_as_lines_not_webgl_dots(chain: Run) -> None:
    import pandas as pd

    from ui import figures

    copies = [chain.messages.assign(seq=chain.messages["seq"] + k * 10**6) for k in range(3)]
    rows = pd.concat(copies, ignore_index=True)
    assert "Box select in the diagram's toolbar" in figures.window(rows, 0, 120, 120, 4000).note()
    win = figures.window(rows.iloc[:4000], 0.0, chain.duration, chain.duration, 4000)
    assert len(win.rows) == 4000
    fig = figures.spacetime(win.rows, chain.agents["agent"].tolist(), chain.duration)
    drawn = [t for t in fig.data if t.name not in ("lifelines",)]
    # WebGL (scattergl) drew only the endpoint dots in Streamlit's plotly.js.
    assert drawn and all(t.type == "scatter" for t in drawn)
    assert all("lines" in t.mode for t in drawn)


def test_a_box_dragged_across_the_diagram_asks_for_that_window() -> None:
    import numpy as np

    from ui.figures import zoom

    box = {"selection": {"points": [], "box": [{"x": [12.5, 10.0], "y": [0, 3]}]}}
    assert zoom.box_range(box) == (10.0, 12.5)
    assert zoom.window_of(box, None, 120.0, 0.1) == (10.0, 12.5)
    # A click selects points, no box: not a zoom.
    assert zoom.box_range({"selection": {"points": [{"x": 1}], "box": []}}) is None
    assert zoom.box_range(None) is None
    # In logical time x counts events: the window spans the events' times.
    events = np.array([0.0, 1.0, 2.0, 5.0, 9.0])
    assert zoom.window_of({"selection": {"box": [{"x": [1.2, 2.6]}]}}, events, 10, 0.1) == (
        1.0,
        5.0,
    )
    # Never narrower than the sliders' step, never past the run.
    assert zoom.window_of({"selection": {"box": [{"x": [119.99, 130]}]}}, None, 120, 1.0) == (
        119.0,
        120.0,
    )


def test_the_diagram_zooms_with_box_select_and_says_so(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    spec = charts(at)[0]
    assert spec["layout"]["selectdirection"] == "h"
    assert spec["layout"]["dragmode"] == "pan"  # a click still picks a message
    assert any("pick Box select in the diagram's toolbar" in c.value for c in at.caption)


def test_a_playback_frame_moves_only_the_cursor(chain: Run, boot: Boot) -> None:
    from ui import figures

    base = figures.spacetime(chain.messages.iloc[:50], ["A", "B", "C"], chain.duration)
    fig = figures.with_cursor(base, 1.0)
    assert figures.move_cursor(fig, 2.5) is fig  # in place: no copy of the arrows
    assert figures.cursor_of(fig) == 2.5
    curtain = next(t for t in fig.data if t.name == "curtain")
    assert curtain.x[0] == 2.5

    # Two frames of the same window: the same arrows, the cursor moved on; another
    # window draws its own arrows.
    at = boot("replay", chain)
    at.button(key="replay_play").click().run()
    first = charts(at)[0]
    at.run()
    second = charts(at)[0]
    assert cursor(second) > cursor(first)
    assert second["data"][:-2] == first["data"][:-2]  # the last two: curtain, cursor
    at.button(key="replay_play").click().run()  # pause
    at.slider(key="replay_window").set_value((30.0, 40.0)).run()
    third = charts(at)[0]
    assert third["data"] != first["data"] and 30.0 <= cursor(third) <= 40.0


def test_one_x_is_real_time(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    at.slider(key="replay_window").set_value((10.0, 15.0)).run()
    at.selectbox(key="replay_speed").set_value(1.0).run()
    assert at.selectbox(key="replay_speed").format_func(1.0) == "1x (real time)"
    at.button(key="replay_play").click().run()  # from the window's end: back to 10 s
    # One frame (at least TICK_S = 1 wall second) at 1x: one simulated second.
    assert cursor(charts(at)[0]) == pytest.approx(11.0)
    at.button(key="replay_play").click().run()


def in_chart_playback(spec: dict[str, Any]) -> tuple[list[float], dict[str, Any]]:
    """The cursor's x in each animation frame of a space-time diagram's spec, and the
    options of its in-chart Play button (checking every frame moves only the cursor and
    its curtain)."""
    names = [t.get("name") for t in spec["data"]]
    moved = {names.index("curtain"), names.index("cursor")}
    xs = []
    for frame in spec.get("frames", []):
        assert set(frame["traces"]) == moved  # no arrow is sent again
        xs.append(float(frame["data"][frame["traces"].index(names.index("cursor"))]["x"][0]))
    menu = next(m for m in spec["layout"].get("updatemenus", []) if m["name"] == "playback")
    play = next(b for b in menu["buttons"] if b["label"] == "Play window")
    return xs, play["args"][1]


def test_the_window_plays_in_the_browser_at_the_chosen_speed(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    at.slider(key="replay_window").set_value((10.0, 15.0)).run()
    at.selectbox(key="replay_speed").set_value(1.0).run()
    xs, play = in_chart_playback(charts(at)[0])
    assert xs[0] == pytest.approx(10.0) and xs[-1] == pytest.approx(15.0)
    # 1x is real time: each frame moves the cursor by the simulated seconds it is shown.
    wall = play["frame"]["duration"] / 1000.0
    assert np.diff(xs) == pytest.approx(wall)
    assert play["frame"]["redraw"] is False and play["transition"]["duration"] == 0
    assert play["fromcurrent"] is True  # Pause, then Play window, goes on

    at.selectbox(key="replay_speed").set_value(10.0).run()
    xs, play = in_chart_playback(charts(at)[0])
    assert np.diff(xs) == pytest.approx(10.0 * play["frame"]["duration"] / 1000.0)
    assert xs[-1] == pytest.approx(15.0)
    # From the cursor when it stands inside the window.
    at.slider(key="replay_cursor").set_value(12.0).run()
    xs, _ = in_chart_playback(charts(at)[0])
    assert xs[0] == pytest.approx(12.0) and xs[-1] == pytest.approx(15.0)
    at.slider(key="replay_cursor").set_value(15.0).run()

    # Logical time: the same frames, their x counted in events.
    at.segmented_control(key="replay_time").set_value("logical").run()
    logical, play = in_chart_playback(charts(at)[0])
    events = state.event_times(chain, state.run_key(chain))
    from ui import figures

    assert logical[0] == figures.to_logical([10.0], events)[0]
    assert logical[-1] == figures.to_logical([15.0], events)[0]
    assert logical == sorted(logical)

    # Playing on the server (page after page): no in-chart playback to fight it.
    at.button(key="replay_play").click().run()
    assert not charts(at)[0].get("frames")
    at.button(key="replay_play").click().run()


def test_the_default_speed_plays_a_window_in_about_twenty_seconds() -> None:
    from ui.playback import default_speed, speed_label

    assert default_speed(20.0) == 1.0
    assert default_speed(0.2) == 0.01
    assert default_speed(2000.0) == 100.0
    assert speed_label(0.1) == "0.1x"


def test_in_logical_time_the_sliders_say_what_they_hold(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    assert at.slider(key="replay_window").label == "Window (s)"
    at.button_group(key="replay_time").set_value("logical").run()
    assert at.slider(key="replay_window").label.startswith("Window (simulated s;")
    assert "counts events" in at.slider(key="replay_cursor").label


# --- Run page --------------------------------------------------------------------------


def walk(node: Any) -> list[Any]:
    """Every element and block under `node`, in the order the page shows them."""
    out = [node]
    for child in getattr(node, "children", {}).values():
        out += walk(child)
    return out


def test_the_results_come_before_the_knobs(boot: Boot) -> None:
    at = boot()
    order = walk(at.main)
    first_card = next(i for i, n in enumerate(order) if n.type == "metric")
    knobs = next(
        i for i, n in enumerate(order) if n.type == "expander" and "Knobs" in n.proto.label
    )
    assert first_card < knobs


def test_many_knobs_start_folded(boot: Boot) -> None:
    from sim import loading
    from ui import knobs

    at = boot()
    count = len(knobs.knobs(loading.load(at.selectbox(key="scenario").value)))
    expander = next(n for n in walk(at.main) if n.type == "expander" and "Knobs" in n.proto.label)
    assert expander.proto.label == f"Knobs ({count})"
    assert expander.proto.expanded == (count <= 12)


def test_the_cards_show_the_change_against_the_previous_run(boot: Boot) -> None:
    at = boot()
    assert all(not m.delta for m in at.metric)  # the first run: nothing to compare with
    before = {m.label: m.value for m in at.metric}
    at.number_input(key="seed").set_value(at.number_input(key="seed").value + 1).run()
    at.button[0].click().run()
    assert not at.exception
    deltas = {m.label: m.delta for m in at.metric}
    assert deltas["Requests"] and deltas["Success rate"].endswith(" pp")
    assert any(before[k] != m.value for k, m in ((m.label, m) for m in at.metric))
    assert any("against the previous run" in c.value for c in at.caption)


def test_faults_read_as_words_not_json(loss: Run) -> None:
    from ui import summary

    table = summary.faults_table(loss.faults)
    assert table["params"].tolist() == ["direction both, probability 0.1"]
    assert table["targets"].tolist() == ["client, api"]


def test_tokens_and_cost_cards_when_the_run_made_model_calls(boot: Boot) -> None:
    import sim

    run = sim.run("llm-pipeline")
    expected = run.summary()
    at = boot(run=run)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Tokens in / out"] == (
        f"{expected['tokens_in'] / 1000:,.1f}k / {expected['tokens_out']:,}"
        if expected["tokens_in"] >= 100_000
        else f"{expected['tokens_in']:,} / {expected['tokens_out']:,}"
    )
    assert shown["Cost"] == f"${expected['cost']:,.4f}"
    plain = boot()  # no model calls: no such cards
    assert "Cost" not in {m.label for m in plain.metric}


# --- plugin roles from the Run page (issue 14) ----------------------------------------

SETTINGS_PLUGIN = """
from typing import Literal

from pydantic import BaseModel, Field

import sim


class EchoSettings(BaseModel):
    think: float = Field(0.01, ge=0, description="Seconds of work per request.")
    copies: int = 1
    loud: bool = False
    tone: Literal["flat", "warm"] = "flat"


@sim.role("story-echo", settings=EchoSettings)
class Echo:
    def on_task_run(self, ctx, request):
        yield ctx.work(ctx.settings.think)
        return "echo"
"""

SETTINGS_SCENARIO = """name: echoes
duration: 5
agents:
  - {id: client, role: client}
  - {id: echo, role: story-echo, workers: 2, settings: {think: 0.02}}
workload:
  - {from: client, to: echo, type: task.run, arrivals: {kind: constant, rate: 2}}
"""


@pytest.fixture
def settings_plugin(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """The module the person starting the dashboard named (make run PLUGINS=...)."""
    from sim.plugins import unregister_role

    (tmp_path / "story_echo_plugin.py").write_text(SETTINGS_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SWITCHBOARD_PLUGINS", "story_echo_plugin")
    yield
    unregister_role("story-echo")


def test_a_plugin_roles_settings_are_knobs_it_validates(settings_plugin: Any, boot: Boot) -> None:
    at = boot()
    assert any("Plugin roles loaded" in c.value and "story-echo" in c.value for c in at.caption)
    at.text_area(key="scenario_text").input(SETTINGS_SCENARIO).run()
    shown = {n.label: n for n in at.number_input}
    assert shown["echo think"].value == 0.02 and shown["echo copies"].value == 1
    assert "echo" in shown  # a plugin agent's workers too
    assert {c.label for c in at.checkbox} >= {"echo loud"}
    assert at.selectbox(key=next(s.key for s in at.selectbox if s.label == "echo tone")).value == (
        "flat"
    )

    shown["echo think"].set_value(0.05).run()
    at.button[0].click().run()
    assert not at.exception and not at.error
    run = at.session_state["run"]
    served = run.spans[(run.spans["agent"] == "echo") & (run.spans["kind"] == "server")]
    assert len(served) == 10
    assert ((served["end"] - served["start"]) >= 0.05 - 1e-9).all()

    # A value the role's model refuses is one sentence naming the field; nothing runs.
    next(n for n in at.number_input if n.label == "echo think").set_value(-1.0).run()
    at.button[0].click().run()
    assert not at.exception
    said = " ".join(e.value for e in at.error)
    assert "agents.1.settings.think" in said and "greater than or equal to 0" in said
    assert at.session_state["run"] is run  # the previous run stays on screen


# --- Breakers --------------------------------------------------------------------------


def test_a_reason_names_the_calls_it_was_judged_on(overload: Run) -> None:
    from ui import figures

    table = figures.transitions_table(overload.breakers)
    opened = table[table["to"] == "OPEN"].iloc[0]
    assert opened["calls"] == 10
    assert "over 10 calls (the window holds up to the last 20)" in opened["reason"]
    # Every opening in this run was judged on fewer calls than the window holds.
    assert not table["reason"].str.contains("over the last 20 calls").any()


def test_the_rate_lines_follow_every_call_not_only_transitions(overload: Run, boot: Boot) -> None:
    at = boot("breakers", overload)
    spec = charts(at)[0]
    edge = "orchestrator → critic-1"
    line = next(t for t in spec["data"] if t.get("name") == f"{edge} failure rate")
    transitions = (overload.breakers["target"] == "critic-1").sum()
    assert len(line["x"]) > 3 * transitions
    assert any(t.get("name") == f"{edge} at transitions" for t in spec["data"])


def test_a_short_half_open_is_visible(chain: Run) -> None:
    import pandas as pd

    from sim.trace import conform
    from ui import figures

    rows = [
        (30.0, "B", "C", "CLOSED", "OPEN", "failure rate 60% >= 50% over the last 10 calls"),
        (35.0, "B", "C", "OPEN", "HALF_OPEN", "waited 5 s in OPEN"),
        (35.02, "B", "C", "HALF_OPEN", "OPEN", "a permitted call failed"),
    ]
    columns = ["time", "agent", "target", "from_state", "to_state", "reason"]
    breakers = conform("breakers", pd.DataFrame(rows, columns=columns))
    fig = figures.breakers_figure(breakers, 120.0)
    half = next(t for t in fig.data if t.name == "HALF_OPEN")
    assert half.x[0] >= 120.0 * 0.004  # drawn at least ~0.5 s wide: a visible sliver
    assert "35.00–35.02 s" in half.hovertext[0]  # its true times on hover


def test_the_transitions_come_first_and_settings_are_one_table(overload: Run, boot: Boot) -> None:
    at = boot("breakers", overload)
    assert "reason" in at.dataframe[0].value.columns  # right under the chart
    assert not at.expander  # no stack of settings tables above them
    grid = next(d.value for d in at.dataframe if "setting" in d.value.columns)
    assert "orchestrator → critic-1" in grid.columns and "window" in set(grid["setting"])


# --- sweeps run from the page ----------------------------------------------------------


def test_a_sweep_run_here_with_other_replications_never_overwrites_the_advisors(
    tiny_spec: dict[str, Any],
    tiny_rows: Any,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    boot: Boot,
) -> None:
    import yaml

    from sim import advisor
    from sim import sweeps as sw
    from sim.sweeps import spec as sweep_spec
    from ui import sweeps

    name = str(tiny_spec["name"])
    # The advisor keeps its sweep under the sweeps folder, by the sweep's name.
    monkeypatch.setattr(sweeps, "SWEEPS_DIR", tmp_path / "sweeps")
    monkeypatch.setattr(advisor, "ADVISOR_CACHE", tmp_path / "sweeps" / name)
    builtin = tmp_path / "builtin"
    builtin.mkdir()
    (builtin / f"{name}.yaml").write_text(yaml.safe_dump(tiny_spec), encoding="utf-8")
    monkeypatch.setattr(sweep_spec, "SWEEP_DIR", builtin)
    kept = sw.save(tiny_rows, tmp_path / "sweeps" / name)

    at = boot("compare", compare_view="sweeps")
    at.button_group(key="sweep_source").set_value("built-in sweep").run()
    at.selectbox(key="sweep_builtin").select(name).run()
    at.number_input(key="sweep_replications").set_value(1).run()
    next(b for b in at.button if b.label == "Run sweep").click().run()

    assert not at.exception and not at.error
    assert len(sw.load(kept)) == len(tiny_rows) == 16  # the advisor's sweep is as it was
    assert len(sw.load(tmp_path / "sweeps" / f"{name}-1rep")) == 8


# --- Queues ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def poison() -> Run:
    """collaboration-poison: three poisoned results are dead-lettered."""
    import sim

    return sim.run("collaboration-poison")


def test_dead_letters_say_why_the_handler_failed(poison: Run, boot: Boot) -> None:
    at = boot("queues", poison)
    letters = at.dataframe[-1].value
    assert len(letters) == 3
    assert set(letters["handler_error"]) == {"poison message: the result handler failed"}


def test_queues_that_never_held_anything_are_not_drawn(poison: Run, boot: Boot) -> None:
    from ui import figures

    idle = figures.idle_queues(poison.queues)
    # writer-1 asked over a queue once and had no reply to wait for; the critics' workers
    # (one pool over their HTTP and SSE) served the streams.
    assert idle == ["writer-1.replies"]
    assert "critic-1.workers" not in idle and "orchestrator.results.dlq" not in idle
    at = boot("queues", poison)
    drawn = {t.get("name") for t in charts(at)[0]["data"]}
    assert drawn and not drawn & set(idle)
    assert any("never held, served or took a message" in c.value for c in at.caption)


def test_an_http_only_run_says_why_nothing_was_dead_lettered(loss: Run, boot: Boot) -> None:
    at = boot("queues", loss)
    assert any("no channel goes through a queue" in c.value for c in at.caption)


# --- the failure story: failures drawn where they happened, and why -------------------


def test_failures_say_why_with_what_only_the_simulator_knows(
    chain: Run, loss: Run, overload: Run
) -> None:
    from ui.figures import failures

    events = failures.failure_events(chain.messages, chain.spans, chain.breakers, chain.faults)
    said = failures.root_causes(events, "A-50")
    assert said == [
        "B gave up on C after 15.000 s at 45.385 s (timeout: no response within 15 s)",
        "B answered A with 504 at 45.387 s (HTTP 504)",
        "C answered B 9.055 s after B gave up (at 45.385 s); the work was wasted",
    ]
    lost = failures.failure_events(loss.messages, loss.spans, loss.breakers, loss.faults)
    assert (
        "dropped by the loss fault f0-loss at" in lost[lost["kind"] == "dropped"].iloc[0]["detail"]
    )
    refused = failures.failure_events(
        overload.messages, overload.spans, overload.breakers, overload.faults
    )
    first = refused[refused["kind"] == "refused"].iloc[0]["detail"]
    # The sentence names the opening of the breaker that refused, as the breakers table
    # records it: its last opening before the refusal.
    found = re.search(r"refused at ([\d.]+) s: breaker orchestrator → (\S+) OPEN since", first)
    assert found is not None, first
    refused_at, peer = float(found.group(1)), found.group(2)
    b = overload.breakers
    opens = b[(b["target"] == peer) & (b["to_state"] == "OPEN") & (b["time"] <= refused_at)]
    opened = opens.iloc[-1]
    assert (
        f"breaker orchestrator → {peer} OPEN since {opened['time']:.3f} s: "
        f"failure rate {opened['failure_rate']:.1%} >= 50%"
    ) in first
    assert "over 10 calls" in first


def test_retries_are_numbered() -> None:
    import sim
    from ui.figures import failures

    run = sim.run("llm-pipeline")
    events = failures.failure_events(run.messages, run.spans, run.breakers, run.faults)
    retries = events[events["kind"] == "retry"]
    retried = run.messages[(run.messages["kind"] == "request") & (run.messages["attempt"] > 1)]
    assert len(retries) == len(retried) > 0
    assert set(retries["label"]) == {f"retry {a - 1}" for a in retried["attempt"]}


def test_replay_draws_the_failures_where_they_happened(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    at.slider(key="replay_window").set_value((40.0, 60.0)).run()
    spec = charts(at)[0]
    marks = {
        t["meta"]["failures"]: t for t in spec["data"] if (t.get("meta") or {}).get("failures")
    }
    assert {"gave up", "5xx", "late"} <= set(marks)
    gave_up = marks["gave up"]
    lanes = spec["layout"]["yaxis"]["ticktext"]
    # B gave up on C at 45.385 s for trace A-50: a marker on B's lifeline, labelled.
    i = gave_up["customdata"].index("trace:A-50")
    assert gave_up["x"][i] == pytest.approx(45.384598, abs=1e-6)
    assert lanes[round(gave_up["y"][i])] == "B" and gave_up["text"][i] == "timeout"
    assert "B gave up on C after 15.000 s" in gave_up["hovertext"][i]
    assert any(c.value.startswith("Failures here:") for c in at.caption)


def test_a_clicked_failure_offers_its_trace_and_why(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain, replay_failure_trace="A-50")
    box = next(w.value for w in at.warning if "What went wrong in trace A-50" in w.value)
    assert "the work was wasted" in box
    next(b for b in at.button if b.label == "Open A-50 on Cascades").click().run()
    assert at.title[0].value == "Cascades"
    assert at.selectbox(key="cascades_trace").value == "A-50"


def test_happens_before_follows_deliveries_and_sends(chain: Run) -> None:
    from ui import figures

    m = chain.messages
    rows = m[(m["sent_at"] >= 25) & (m["sent_at"] <= 60)]
    request = int(m[(m["correlation_id"] == "A-50") & (m["src"] == "A")]["seq"].iloc[0])
    before, after = figures.causal(rows, request)
    trace = m[m["correlation_id"] == "A-50"].set_index("seq")
    # Its own trace: B's call to C and every answer came after it.
    assert set(trace.index) - {request} <= after
    # Nothing after it was sent before it; nothing before it was delivered after it.
    seqs = rows.set_index("seq")
    assert (seqs.loc[list(after), "sent_at"] >= seqs.loc[request, "sent_at"]).all()
    assert (seqs.loc[list(before), "delivered_at"] <= seqs.loc[request, "sent_at"]).all()
    assert not before & after


def test_selecting_a_message_lights_its_causal_thread(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    at.slider(key="replay_window").set_value((25.0, 60.0)).run()
    request = int(
        chain.messages[
            (chain.messages["correlation_id"] == "A-50") & (chain.messages["src"] == "A")
        ]["seq"].iloc[0]
    )
    at.slider(key="replay_cursor").set_value(30.5).run()  # the picker offers what is near
    label = next(
        o for o in at.selectbox(key="replay_message").options if o.startswith(f"#{request} ")
    )
    assert "A → B" in label
    at.selectbox(key="replay_message").set_value(request).run()
    spec = charts(at)[0]
    names = {t.get("name"): t for t in spec["data"]}
    assert "happened after" in names and "selected" in names
    assert names["http"].get("opacity") == pytest.approx(0.18)
    at.toggle(key="replay_thread").set_value(False).run()
    names = {t.get("name") for t in charts(at)[0]["data"]}
    assert "happened after" not in names


def test_cascades_says_what_went_wrong_and_why(chain: Run, boot: Boot) -> None:
    at = boot("cascades", chain)
    at.selectbox(key="cascades_trace").set_value("A-50").run()
    box = next(w.value for w in at.warning if "What went wrong" in w.value)
    assert "- C answered B 9.055 s after B gave up (at 45.385 s); the work was wasted" in box


# --- Compare built around the difference -----------------------------------------------


def test_compare_matches_the_same_requests_and_says_what_changed(chain: Run, boot: Boot) -> None:
    import sim
    from sim import loading

    data = loading.read_data(loading.builtin_path("timeout-chain"))
    data["channels"][0]["timeout"] = 60  # A waits long enough for B's answer
    data["channels"][1]["timeout"] = 30
    at = boot("compare", chain, compare_seed=int(chain.manifest["seed"]))
    b = sim.run(data)
    at.session_state["compare_run"] = b
    at.session_state["compare_label"] = "timeout-chain · seed 3 (longer timeouts)"
    at.run()
    assert not at.exception
    said = " ".join(m.value for m in at.markdown)
    assert "ended differently" in said and "ok only in B" in said
    table = next(d.value for d in at.dataframe if "sentence" in d.value.columns)
    first = table.iloc[0]
    assert first["sentence"] == f"{first['trace']}: ok in B, failed in A at B → C"
    # Every card carries its change against A.
    deltas = {m.label: m.delta for m in at.metric}
    assert deltas["Success rate"].startswith("+") and deltas["Success rate"].endswith(" pp")
    next(x for x in at.button if x.label == "Open it in A on Cascades").click().run()
    assert at.title[0].value == "Cascades"
    assert at.selectbox(key="cascades_trace").value == first["trace"]


# --- the overview that scales ----------------------------------------------------------


def test_the_overview_counts_every_message_and_failure(chain: Run) -> None:
    from ui import figures

    events = figures.failures.failure_events(
        chain.messages, chain.spans, chain.breakers, chain.faults
    )
    agents = chain.agents["agent"].tolist()
    fig = figures.overview.overview(chain.messages, events, agents, chain.duration)
    sent, failed = (t for t in fig.data if t.type == "heatmap")
    assert len(sent.y) == len(agents) and len(sent.x) == figures.overview.BINS
    assert sum(map(sum, sent.customdata)) == len(chain.messages)
    assert sum(map(sum, failed.customdata)) == len(events)
    # B's row holds its failures (it gave up on C and answered A with 5xx).
    b = agents.index("B")
    assert sum(failed.customdata[b]) == (events["agent"] == "B").sum() > 0


def test_a_box_on_the_overview_is_a_window_of_whole_cells() -> None:
    from ui.figures.overview import selected_range

    points = [{"x": 40.25, "customdata": 0.5}, {"x": 49.75, "customdata": 0.5}]
    assert selected_range(points) == (40.0, 50.0)
    assert selected_range([]) is None


def test_the_overview_box_picks_from_one_row_of_points_per_panel() -> None:
    # A point per cell made the figure about 25 MB at 1,000 agents; the box spans every
    # lane ("h"), so one point per time bin and panel selects the same window.
    from ui.figures import overview

    lanes = tuple(f"agent{i}" for i in range(1000))
    empty = np.zeros((len(lanes), overview.BINS))
    counts = overview.Bins(
        rows=lanes,
        edges=np.linspace(0, 100, overview.BINS + 1),
        traffic=empty,
        failed=empty,
        by="agent",
    )
    fig = overview.figure(counts, 100.0)
    pickers = [t for t in fig.data if t.name == overview.PICKER]
    assert [len(t.x) for t in pickers] == [overview.BINS, overview.BINS]
    assert fig.layout.selectdirection == "h"
    assert overview.selected_range(
        [
            {"x": x, "customdata": c}
            for x, c in zip(pickers[0].x[:3], pickers[0].customdata[:3], strict=True)
        ]
    ) == pytest.approx((0.0, 3 * 100 / overview.BINS))


def test_the_link_overview_counts_every_message_and_each_links_failure_rate(chain: Run) -> None:
    from ui.figures import overview

    agents = chain.agents["agent"].tolist()
    counts = overview.by_link(chain.messages, chain.spans, agents, chain.duration)
    assert counts.rows == ("A → B", "B → A", "B → C", "C → B")
    assert counts.traffic.sum() == len(chain.messages)
    per_link = chain.messages.groupby(["src", "dst"]).size()
    assert counts.traffic[counts.rows.index("B → C")].sum() == per_link[("B", "C")]
    # A -> B's failure rate is out of A's calls to B that ended; failed unless ok.
    calls = chain.spans[(chain.spans["kind"] == "client") & (chain.spans["agent"] == "A")]
    calls = calls[calls["peer"] == "B"]
    ended = calls[calls["outcome"] != "open"]
    a_b = counts.rows.index("A → B")
    assert counts.tried is not None and counts.tried[a_b].sum() == len(ended)
    assert counts.failed[a_b].sum() == (ended["outcome"] != "ok").sum() > 0
    rate = counts.rate[a_b]
    assert np.nanmax(rate) <= 1.0 and np.nanmax(rate) > 0.5  # the timeouts of C's slow spell
    fig = overview.figure(counts, chain.duration)
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert [t.name for t in heat] == ["messages", "failure rate"]
    assert list(heat[1].y) == list(counts.rows) and heat[1].zmax == 1.0
    # Traffic shades from zero: links as busy as each other read alike.
    assert heat[0].zmin == 0.0 and heat[0].zmax == pytest.approx(np.log1p(counts.traffic).max())


def test_the_overview_shows_links_at_a_toggle(chain: Run, boot: Boot) -> None:
    at = boot("replay", chain)
    at.button_group(key="replay_overview_by").set_value("link").run()
    assert not at.exception
    spec = charts(at)[-1]
    heat = [t for t in spec["data"] if t["type"] == "heatmap"]
    assert heat[0]["y"] == ["A → B", "B → A", "B → C", "C → B"]
    assert heat[1]["name"] == "failure rate"
    assert any("per link" in c.value for c in at.caption)


def test_jump_to_the_first_failure_and_the_next(chain: Run, boot: Boot) -> None:
    from ui import figures

    events = figures.failures.failure_events(
        chain.messages, chain.spans, chain.breakers, chain.faults
    )
    times = sorted(events["time"])
    at = boot("replay", chain)
    width = at.slider(key="replay_window").value[1] - at.slider(key="replay_window").value[0]
    at.button(key="jump_first").click().run()
    start, end = at.slider(key="replay_window").value
    assert at.slider(key="replay_cursor").value == pytest.approx(times[0])
    assert start <= times[0] <= end and end - start == pytest.approx(width)
    at.button(key="jump_next").click().run()
    later = next(t for t in times if t > times[0] + 1e-6)
    assert at.slider(key="replay_cursor").value == pytest.approx(later)
    at.button(key="jump_breaker").click().run()  # timeout-chain has no breaker
    assert any("No breaker opening after" in c.value for c in at.caption)


def test_jump_to_the_next_breaker_opening(overload: Run, boot: Boot) -> None:
    at = boot("replay", overload)
    at.button(key="jump_breaker").click().run()
    opened = overload.breakers[overload.breakers["to_state"] == "OPEN"]["time"].min()
    assert at.slider(key="replay_cursor").value == pytest.approx(opened)


def test_queues_shows_each_topics_subscriptions_with_their_own_backlog(boot: Boot) -> None:
    # One topic, two subscribers: billing keeps up, shipping (one slow worker) falls
    # behind; each subscription's backlog is its own.
    import sim

    run = sim.run(
        {
            "name": "orders-fan-out",
            "duration": 30,
            "agents": [
                {"id": "shop", "role": "client"},
                {"id": "billing", "role": "service"},
                {
                    "id": "shipping",
                    "role": "service",
                    "workers": 1,
                    "service_time": {"dist": "constant", "value": 0.5},
                },
                {"id": "broker", "role": "broker", "queue": {"flavour": "pubsub"}},
            ],
            "channels": [
                {
                    "from": "shop",
                    "to": "billing",
                    "protocol": "queue",
                    "queue": {"topic": "orders"},
                },
                {
                    "from": "shop",
                    "to": "shipping",
                    "protocol": "queue",
                    "queue": {"topic": "orders"},
                },
            ],
            "workload": [
                {"from": "shop", "to": "billing", "arrivals": {"kind": "poisson", "rate": 4}}
            ],
        }
    )
    at = boot("queues", run)
    topics = next(d.value for d in at.dataframe if "subscription" in d.value.columns)
    rows = topics.set_index("subscriber")
    assert list(rows["subscription"]) == ["billing.requests", "shipping.requests"]
    assert set(rows["topic"]) == {"orders"}
    assert rows.loc["shipping", "backlog"] > 10 * max(rows.loc["billing", "backlog"], 1)
    assert rows.loc["billing", "acked"] > rows.loc["shipping", "acked"] > 0
    assert any("copies every message it takes" in c.value for c in at.caption)
