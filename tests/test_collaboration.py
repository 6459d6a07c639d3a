"""The agent collaboration end to end, its variants, and the invariant checks on every run."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
import pytest

import sim
from sim import loading
from sim.agents.collaboration import POISONED, STEPS
from sim.agents.registry import ROLES
from sim.checks import violations
from sim.plugins import BUILTIN_ROLES
from sim.report import slowest_task, task_spans, timeline
from sim.trace import Run
from sim.world import World

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))


@functools.cache
def collab(variant: str = "") -> Run:
    """The run of the collaboration scenario or one of its variants (cached: they are
    deterministic, and several tests read the same run)."""
    return sim.run(f"collaboration-{variant}" if variant else "collaboration")


def completions(run: Run) -> pd.DataFrame:
    s = run.spans
    return s[s["name"] == "task.complete"]


# -- the core run ---------------------------------------------------------------------


def test_the_collaboration_completes_its_tasks():
    run = collab()
    done = completions(run)
    assert len(done) >= 100
    assert set(done["outcome"]) == {"ok"}
    # Every task the client sent ended ok, or was still running when the run ended.
    s = run.spans
    tasks = s[(s["kind"] == "client") & (s["parent_id"] == "") & (s["peer"] == "orchestrator")]
    assert set(tasks["outcome"]) <= {"ok", "open"}
    assert (tasks["outcome"] == "open").sum() <= 10
    assert tasks[tasks["outcome"] == "open"]["start"].min() > run.duration - 15
    assert not violations(run)


def test_a_task_follows_the_nine_steps_in_order_with_their_protocols():
    run = collab()
    for cid in completions(run)["correlation_id"].head(20):
        steps = task_spans(run, cid)
        # Every step is there, on the protocol the article names.
        assert {(s, n, k, p) for s, _, n, k, p in STEPS} == set(
            zip(steps["step"], steps["name"], steps["kind"], steps["protocol"], strict=True)
        )
        first = steps.groupby("step")["start"].min()
        last = steps.groupby("step")["end"].max()
        # Receive, discover, then assign: each starts once the one before is done.
        assert first["0"] <= first["1-2"] <= last["1-2"] <= first["3-4"]
        assert steps.iloc[-1]["name"] == "task.complete"
        assert steps.iloc[-1]["start"] == steps["start"].max()
        # Each worker: progress (5), then a writer's review (6-7), then its result
        # published (8) and matched by the orchestrator (9), then the task completes (9).
        streams = steps[(steps["name"] == "task.run") & (steps["kind"] == "client")]
        assert len(streams) == 2
        for worker, stream in zip(streams["peer"], streams.itertuples(), strict=True):
            mine = steps[(steps["agent"] == worker) | (steps["peer"] == worker)]
            progress = mine[mine["name"] == "progress"].iloc[0]
            published = mine[(mine["name"] == "task.result") & (mine["kind"] == "producer")]
            matched = mine[(mine["name"] == "task.result") & (mine["kind"] == "consumer")]
            assert stream.start <= progress["start"]
            reviews = mine[(mine["name"] == "review") & (mine["agent"] == worker)]
            before_result = progress["end"]
            if worker.startswith("writer"):
                assert len(reviews) == 1
                assert reviews.iloc[0]["start"] >= progress["end"]
                before_result = reviews.iloc[0]["end"]
            else:
                assert reviews.empty
            assert published.iloc[0]["start"] >= before_result
            assert matched.iloc[0]["start"] >= published.iloc[0]["start"]
            assert matched.iloc[0]["start"] <= steps.iloc[-1]["start"]


def test_the_writer_and_critic_negotiate_under_the_task():
    run = collab()
    s = run.spans.set_index("span_id")
    reviews = s[s["name"] == "review"]
    talks = s[(s["name"] == "negotiate") & (s["kind"] == "client")]
    # Each negotiation (in its task's trace) hangs under the review of its task.
    assert set(talks["parent_id"]) <= set(reviews.index)
    assert (talks["outcome"] == "ok").mean() > 0.9
    assert (talks["attempts"] >= 2).all() or (talks["outcome"] != "ok").any()


def test_run_prints_the_timeline_of_the_slowest_task(capsys, tmp_path):
    from sim.cli import main

    assert main(["run", "collaboration", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    cid = slowest_task(collab())
    assert f"slowest task {cid}: the nine steps" in out
    for label in ("discover workers", "assign sub-tasks", "progress streamed",
                  "writer and critic negotiate", "result published", "task completed"):  # fmt: skip
        assert label in out
    assert timeline(collab()) in out
    assert timeline(sim.run("basic")) == ""  # no orchestrator: no timeline


# -- the variants -----------------------------------------------------------------------


def test_partition_reconnects_the_worker_and_the_fanout_returns_partial_results():
    run = collab("partition")
    m, s = run.messages, run.spans
    cut = (40.0, 48.0)
    # Its SSE stream broke and reconnected (GETs with attempt > 1) once the partition healed.
    gets = m[(m["protocol"] == "sse") & (m["dst"] == "writer-2") & (m["kind"] == "request")]
    again = gets[(gets["attempt"] > 1) & (gets["outcome"] == "delivered")]
    assert (again["sent_at"] >= cut[1]).any()
    assert (gets[gets["attempt"] > 1]["outcome"] == "partitioned").any()
    # Its WebSocket to its critic closed (ping timeout) and was opened again after it.
    ws = s[(s["name"] == "ws.connection") & (s["agent"] == "writer-2")]
    assert ws["error"].str.contains("1011").any()
    syn = m[(m["type"] == "ws.syn") & (m["src"] == "writer-2") & (m["outcome"] == "delivered")]
    assert (syn["sent_at"] >= cut[1]).any()
    # Its result was published during the partition, re-sent, and arrived late.
    pubs = m[(m["kind"] == "publish") & (m["src"] == "writer-2") & (m["type"] == "task.result")]
    assert (pubs[pubs["sent_at"].between(*cut)]["outcome"] == "partitioned").any()
    assert (pubs[pubs["attempt"] > 1]["outcome"] == "delivered").any()
    late = s[(s["name"] == "task.result") & s["error"].str.startswith("late")]
    # Its critic reports after their negotiation, which the partition held up too.
    assert "writer-2" in set(late["peer"])
    assert set(late["peer"]) <= {"writer-2", "critic-2"}
    # The fan-out's partial_at_deadline policy returned what came back: a task with one
    # late result is partial (206, with the other worker's result), one with both late
    # has none (504); every other task is whole.
    done = completions(run)
    partial = done[done["outcome"] == "partial"]
    failed = done[done["outcome"] == "error"]
    assert len(partial) >= 1
    assert set(partial["correlation_id"]) | set(failed["correlation_id"]) == set(
        late["correlation_id"]
    )
    assert (partial["attempts"] == 1).all() and (partial["status"] == 206).all()
    assert (failed["attempts"] == 0).all() and (failed["status"] == 504).all()
    assert set(done["outcome"]) <= {"ok", "partial", "error"}
    assert (done["outcome"] == "ok").sum() >= 80
    assert not violations(run)


def test_poison_results_are_dead_lettered_while_other_tasks_complete():
    run = collab("poison")
    m, s = run.messages, run.spans
    dead = m[m["outcome"] == "dead_lettered"]
    assert len(dead) == 3
    assert dead["reason"].str.len().gt(0).all()
    assert dead["correlation_id"].str.contains("poison").all()  # the fault's, not tasks
    # Each poison message failed the orchestrator's handler on every one of its five
    # deliveries before the broker parked it.
    failed = s[(s["name"] == "task.result") & (s["error"] == POISONED)]
    assert failed.groupby("correlation_id").size().tolist() == [5, 5, 5]
    assert run.queues[run.queues["queue"].str.endswith(".dlq")]["depth"].max() == 3
    done = completions(run)
    assert set(done["outcome"]) == {"ok"}
    assert len(done) >= 80
    assert not violations(run)


def test_overload_grows_the_queues_and_opens_the_breakers():
    run = collab("overload")
    q, b, s = run.queues, run.breakers, run.spans
    # Where it saturates: the workers' queues (one pool over their protocols) fill up to
    # their limit...
    pools = q[q["queue"].str.fullmatch(r"(writer|critic)-\d\.workers")]
    assert pools["queue"].nunique() == 6
    assert pools.groupby("queue")["depth"].max().min() == 4
    # ...they refuse the rest (503), and the orchestrator's breakers to them open.
    streams = s[(s["name"] == "task.run") & (s["protocol"] == "sse") & (s["kind"] == "client")]
    assert (streams["error"].str.contains("503")).any()
    opened = b[b["to_state"] == "OPEN"]
    assert set(opened["agent"]) == {"orchestrator"}
    assert opened["target"].nunique() >= 3
    assert (streams["outcome"] == "rejected").sum() > 50  # failed fast while OPEN
    done = completions(run)
    assert (done["outcome"] == "error").sum() > (done["outcome"] == "ok").sum()
    assert not violations(run)


def test_a_rolling_upgrade_converts_v2_results_and_rejects_what_cannot_be_read():
    run = collab("rolling-upgrade")
    m, s = run.messages, run.spans
    upgraded = {"writer-2", "critic-2", "writer-3"}
    results = m[(m["type"] == "task.result") & (m["kind"] == "publish")]
    v2 = results[results["version"] == 2]
    assert set(v2["src"]) == upgraded
    assert v2["sent_at"].min() >= 60
    assert (results[~results["src"].isin(upgraded)]["version"] == 1).all()
    read = s[(s["name"] == "task.result") & (s["kind"] == "consumer")]
    converted = read[read["error"] == "converted v2 to v1"]
    assert len(converted) > 20
    assert converted["start"].min() >= 60
    rejected = read[read["outcome"] == "rejected"]
    assert len(rejected) > 0
    assert rejected["start"].min() >= 60
    assert rejected["error"].str.contains("task.result v2").all()
    # Workers whose negotiation did not agree: a writer, or critic-2 (critic-3 reads v1).
    assert set(rejected["peer"]) <= {"writer-2", "writer-3", "critic-2"}
    dead = m[m["outcome"] == "dead_lettered"]
    assert len(dead) == len(rejected)
    assert dead["reason"].str.contains("confidence").all()
    assert not violations(run)


# -- the checks on every run --------------------------------------------------------------


# Scenarios known to fail a check they do not declare (none, now).
KNOWN: dict[str, str] = {}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.xfail(reason=KNOWN[p.stem], strict=True))
        if p.stem in KNOWN
        else p
        for p in SCENARIOS
    ],
    ids=[p.stem for p in SCENARIOS],
)
def test_every_check_passes_on_every_built_in_scenario(path):
    run = sim.run(path)
    failed = violations(run)
    assert not failed, {k: v.head(3).to_dict("records") for k, v in failed.items()}
    assert set(violations(run, include_expected=True)) == set(run.scenario.expected_violations)


def test_a_consumer_that_is_not_idempotent_under_duplication_fails_exactly_once():
    # Duplicates on every link: the broker stores and delivers some results twice.
    scenario = loading.load("collaboration", ["network.default.duplicate=0.2", "duration=40"])
    clean = World(scenario).run()
    assert not violations(clean)
    broken = World(scenario)
    # The channel still declares the orchestrator idempotent; its deduper is removed.
    broken.agents["orchestrator"].dedupe = None
    run = broken.run()
    found = violations(run)
    assert list(found) == ["exactly_once"]
    assert (found["exactly_once"]["agent"] == "orchestrator").all()
    assert (found["exactly_once"]["effects"] >= 2).all()


def test_a_retry_storm_without_its_budget_fails_the_budget_check():
    with_budget = sim.run("retry-storm-budget")
    assert "retry_budget" not in violations(with_budget)
    # The budget works, so the check cannot fail on its own run: run the same storm with
    # the budget removed, and check it against the configuration that declares it.
    without = sim.run("retry-storm-budget", channels__0__budget=None)
    assert "retry_budget" not in violations(without)  # nothing declared: nothing checked
    judged = Run(without.tables, {**without.manifest, "scenario": with_budget.manifest["scenario"]})
    rows = violations(judged)["retry_budget"]
    assert len(rows) == 1
    assert rows.iloc[0]["retries"] > rows.iloc[0]["allowed"]


def test_every_role_a_scenario_may_name_has_its_class_in_the_registry():
    # A role is a string (plugins register more); the built-in ones are listed once.
    assert sorted(ROLES) == sorted(BUILTIN_ROLES)
