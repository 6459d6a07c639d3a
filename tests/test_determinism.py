"""Determinism: the same scenario and seed give identical tables in any process.

Two subprocesses with different PYTHONHASHSEED values run the same faulty scenario and
their saved traces must be equal table for table; different seeds must differ; a saved
run must load back equal; and a component's random stream must not depend on the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from pandas.testing import assert_frame_equal

import sim
from sim.run import TABLES, Run

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))

# Random latency everywhere and one fault of every kind, so that every random stream of
# the simulator (links, workloads, service times, faults) is drawn from.
FAULTY: dict[str, Any] = {
    "name": "determinism",
    "seed": 3,
    "duration": 30,
    "agents": [
        {"id": "client", "role": "client"},
        {"id": "batch", "role": "client"},
        {
            "id": "api",
            "workers": 4,
            "service_time": {"dist": "lognormal", "mean": 0.05, "p99": 0.3},
            "calls": ["store"],
        },
        {"id": "store", "workers": 2, "service_time": {"dist": "exponential", "mean": 0.02}},
    ],
    "channels": [
        {"from": "client", "to": "api", "timeout": 2},
        {"from": "api", "to": "store", "timeout": 0.5},
    ],
    "network": {
        "default": {
            "latency": {"dist": "normal", "mean": 0.01, "sd": 0.004},
            "loss": 0.01,
            "duplicate": 0.02,
        },
        "links": [
            {"from": "api", "to": "store", "latency": {"dist": "pareto", "scale": 0.002, "alpha": 2}},
            {"from": "batch", "to": "store", "bandwidth": 20_000},
        ],
    },
    "workload": [
        {"from": "client", "to": "api", "arrivals": {"kind": "poisson", "rate": 15}},
        {"from": "batch", "to": "store", "size_bytes": 1000, "arrivals": {"kind": "bursts", "size": 5, "every": 3, "rate": 1}},
    ],
    "faults": [
        {"kind": "latency", "groups": [["api"], ["store"]], "start": 2, "end": 8, "add": {"dist": "uniform", "low": 0.05, "high": 0.3}},
        {"kind": "loss", "targets": ["api"], "probability": 0.1, "start": 5, "end": 12},
        {"kind": "duplicate", "probability": 0.2, "start": 6, "end": 14},
        {"kind": "partition", "groups": [["client", "api"], ["store"]], "direction": "one-way", "start": 9, "end": 11},
        {"kind": "crash", "targets": ["store"], "start": 13, "end": 16},
        {"kind": "pause", "targets": ["api"], "start": 17, "end": 18.5},
        {"kind": "error", "targets": ["api"], "fraction": 0.2, "status": 503, "start": 19, "end": 24},
        {"kind": "overload", "targets": ["store"], "factor": 3, "start": 22, "end": 26},
        {"kind": "poison", "from": "client", "to": "api", "count": 3, "start": 20, "end": 27},
    ],
}  # fmt: skip


def assert_runs_equal(a: Run, b: Run) -> None:
    """The six tables of two runs are equal, values and dtypes."""
    for name in TABLES:
        assert_frame_equal(a.tables[name], b.tables[name], obj=name)


def run_in_subprocess(scenario: Path, out: Path, hash_seed: str) -> Run:
    """Run the CLI in a fresh interpreter with the given PYTHONHASHSEED and load its run."""
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    command = [sys.executable, "-m", "sim", "run", str(scenario), "--seed", "7", "--quiet"]
    result = subprocess.run(
        [*command, "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return Run.load(out)


def test_same_seed_gives_identical_tables_across_processes(tmp_path: Path) -> None:
    """Two interpreters with different string hashing produce the same trace."""
    path = tmp_path / "faulty.yaml"
    path.write_text(yaml.safe_dump(FAULTY, sort_keys=False))
    first = run_in_subprocess(path, tmp_path / "one", "1")
    second = run_in_subprocess(path, tmp_path / "two", "2")
    assert_runs_equal(first, second)
    # The trace exercised what it is meant to: faults, losses, duplicates, refusals.
    outcomes = set(first.messages["outcome"])
    assert {"delivered", "dropped", "partitioned", "unavailable"} <= outcomes
    assert first.messages["duplicate"].any()
    assert len(first.faults) == len(FAULTY["faults"])
    assert first.manifest["seed"] == 7
    # And the in-process API gives the same trace as the CLI.
    assert_runs_equal(first, sim.run(FAULTY, seed=7))
    summaries = [json.loads((tmp_path / d / "run.json").read_text()) for d in ("one", "two")]
    assert summaries[0]["summary"] == summaries[1]["summary"]


def test_different_seeds_give_different_tables() -> None:
    """Another seed draws other latencies, arrivals and service times."""
    a, b = sim.run(FAULTY, seed=7), sim.run(FAULTY, seed=8)
    for name in ("messages", "spans"):
        with pytest.raises(AssertionError):
            assert_frame_equal(a.tables[name], b.tables[name])
    assert not a.messages["sent_at"].head(20).equals(b.messages["sent_at"].head(20))
    # The tables that do not depend on draws are the same.
    assert_frame_equal(a.faults, b.faults)
    assert_frame_equal(a.agents, b.agents)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_builtin_scenario_repeats_exactly(path: Path) -> None:
    """Running a built-in scenario twice in one process gives the same trace."""
    assert_runs_equal(sim.run(path), sim.run(path))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    """`Run.load(run.save(dir))` gives back equal tables, manifest and summary."""
    run = sim.run(FAULTY, seed=7)
    loaded = Run.load(run.save(tmp_path / "run"))
    assert_runs_equal(run, loaded)
    for name in TABLES:
        assert list(loaded.tables[name].columns) == list(run.tables[name].columns)
    assert loaded.summary() == run.summary()
    assert loaded.manifest["scenario"] == run.manifest["scenario"]
    assert loaded.scenario == run.scenario
    # An empty table (no breakers here) keeps its columns and dtypes too.
    assert run.breakers.empty
    assert_frame_equal(loaded.breakers, run.breakers)


def test_a_fault_on_one_link_leaves_other_links_draws_alone() -> None:
    """Each link has its own stream: loss on api<->store does not move client<->batch draws."""
    base: dict[str, Any] = {
        "name": "streams",
        "seed": 5,
        "duration": 20,
        "agents": [
            {"id": "c", "role": "client"},
            {"id": "a", "service_time": {"dist": "exponential", "mean": 0.01}, "workers": 8},
            {"id": "b", "service_time": {"dist": "exponential", "mean": 0.01}, "workers": 8},
        ],
        "network": {"default": {"latency": {"dist": "lognormal", "mean": 0.01, "p99": 0.05}}},
        "workload": [
            {"from": "c", "to": "a", "arrivals": {"kind": "poisson", "rate": 10}},
            {"from": "c", "to": "b", "arrivals": {"kind": "poisson", "rate": 10}},
        ],
    }
    faulty = dict(
        base,
        faults=[{"kind": "loss", "groups": [["c"], ["a"]], "probability": 0.5, "start": 0}],
    )
    plain, lossy = sim.run(base), sim.run(faulty)

    def to_b(run: Run) -> pd.DataFrame:
        m = run.messages
        rows = m[(m["src"] == "b") | (m["dst"] == "b")]
        return rows[["src", "dst", "sent_at", "delivered_at", "outcome"]].reset_index(drop=True)

    assert (lossy.messages["outcome"] == "dropped").sum() > 50
    assert_frame_equal(to_b(plain), to_b(lossy))
