"""Sweeps and the protocol advisor, as a user sees them.

A sweep's rows must be the very runs `sim.run` gives with the same overrides and seeds,
whether they ran in this process, on a local pool or on a Dask cluster; its means must
carry Student-t intervals across replications; a run that fails must become a row that
says why, never the end of the sweep; and the advisor must read a real sweep's numbers
and change its answer when the workload's needs change.

Runs are short (20 to 40 simulated seconds) so that the file stays well under two
minutes on two cores; nothing here measures speed (see bench/sweep.py for that).
"""

from __future__ import annotations

import contextlib
import math
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import distributed
import pandas as pd
import pytest
import yaml

import sim
from sim import advisor_a2a, cli
from sim import sweeps as sw
from sim.advisor import Needs, advise
from sim.sweeps import on_dask
from sim.sweeps.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
T_975_DF1 = 12.706  # Student's t, 97.5% quantile, 1 degree of freedom (two replications)
T_975_DF2 = 4.303  # ... and 2 degrees of freedom (three replications)

# 2 protocols x 2 loads x 2 replications of request-response, 20 simulated seconds each.
SMALL: dict[str, Any] = {
    "name": "small",
    "scenario": "request-response",
    "seed": 7,
    "replications": 2,
    "axes": [
        {"name": "protocol", "path": "channels.0.protocol", "values": ["http", "queue"]},
        {"name": "load", "path": "workload.0.arrivals.rate", "values": [0.5, 0.9], "scale": 40},
        {"name": "duration", "path": "duration", "values": [20]},
    ],
}

# Every way an axis value can spoil a run: a protocol that does not exist, a negative
# rate, and a case whose override cannot even be placed (the scenario has one channel).
BROKEN: dict[str, Any] = {
    "name": "broken",
    "scenario": "request-response",
    "seed": 1,
    "replications": 1,
    "axes": [
        {"name": "protocol", "path": "channels.0.protocol", "values": ["http", "carrier-pigeon"]},
        {"name": "load", "path": "workload.0.arrivals.rate", "values": [0.5, -1], "scale": 40},
        {"name": "faults", "cases": {"none": {}, "misplaced": {"channels.3.protocol": "http"}}},
        {"name": "duration", "path": "duration", "values": [20]},
    ],
}
PIGEON = (
    "invalid scenario: channels.0.protocol: must be 'http', 'queue', 'sse', 'websocket', 'a2a' "
    "or 'mcp', "
    "got 'carrier-pigeon'"
)
NEGATIVE = "invalid scenario: workload.0.arrivals.rate: must be greater than 0, got -40.0"
MISPLACED = (
    "invalid scenario: channels.3.protocol: channels is a list of 1, so '3' must be an index "
    "from 0 to 0"
)


def comparable(rows: pd.DataFrame) -> pd.DataFrame:
    """Every column but the wall time, which differs from run to run by nature."""
    return rows.drop(columns=["wall_seconds"])


def same(a: Any, b: Any) -> bool:
    """Equal, counting a missing number (NaN, None) as equal to another missing one."""
    missing = [x is None or (isinstance(x, float) and math.isnan(x)) for x in (a, b)]
    return all(missing) if any(missing) else a == b


@pytest.fixture(scope="module")
def small_rows() -> pd.DataFrame:
    """The SMALL sweep on a local pool of two processes (the default path)."""
    return sw.sweep(SMALL, workers=2)


# --- rows are runs -------------------------------------------------------------------------


def test_rows_equal_single_runs_with_the_same_seeds(small_rows):
    rows = small_rows
    # One row per run, in grid order: protocol, then load, then replication.
    assert list(rows["index"]) == list(range(8))
    assert list(rows["protocol"]) == ["http"] * 4 + ["queue"] * 4
    assert list(rows["load"]) == [0.5, 0.5, 0.9, 0.9] * 2
    assert list(rows["replication"]) == [0, 1] * 4
    assert (rows["error"] == "").all()
    metrics = sw.metric_columns(rows)
    assert {"requests", "p99", "served", "lost", "lost_rate", "errors.timeout"} <= set(metrics)
    for row in rows.to_dict(orient="records"):
        run = sim.run(
            "request-response",
            seed=row["seed"],
            channels__0__protocol=row["protocol"],
            workload__0__arrivals__rate=row["load"] * 40,
            duration=20,
        )
        expected = sw.metrics_of(run.summary())
        assert expected["requests"] > 100  # a run that did something
        assert set(expected) <= set(metrics)
        differ = {k: (row[k], v) for k, v in expected.items() if not same(row[k], v)}
        assert not differ, f"row {row['index']} differs from its single run: {differ}"


def test_replication_r_uses_seed_plus_r_in_every_cell(small_rows):
    rows = small_rows
    assert list(rows["seed"]) == [7 + r for r in rows["replication"]]
    by = rows.set_index(["protocol", "load", "replication"])
    for load in (0.5, 0.9):
        for r in (0, 1):
            # Common random numbers: the same replication offers every protocol the very
            # same arrivals, so the cells differ only by the protocol.
            assert by.loc[("http", load, r), "requests"] == by.loc[("queue", load, r), "requests"]
        for protocol in ("http", "queue"):
            # Replications are independent draws: their arrivals and latencies differ.
            first, second = by.loc[(protocol, load, 0)], by.loc[(protocol, load, 1)]
            assert first["requests"] != second["requests"]
            assert first["p99"] != second["p99"]


# --- means and confidence intervals ---------------------------------------------------------


def test_means_use_student_t_across_replications():
    spec = load_spec(
        {
            "name": "known",
            "scenario": "request-response",
            "replications": 4,
            "axes": [{"name": "protocol", "path": "channels.0.protocol", "values": ["a", "b"]}],
        }
    )
    records = [
        # Cell a: three good replications and one failure whose numbers must not count.
        {"index": 0, "protocol": "a", "replication": 0, "p99": 1.0, "requests": 10},
        {"index": 1, "protocol": "a", "replication": 1, "p99": 2.0, "requests": 12},
        {"index": 2, "protocol": "a", "replication": 2, "p99": 4.0, "requests": 14},
        {"index": 3, "protocol": "a", "replication": 3, "p99": 100.0, "error": "boom"},
        # Cell b: one good replication (no interval from one value), three failures.
        {"index": 4, "protocol": "b", "replication": 0, "p99": 0.5, "requests": 9},
        *(
            {"index": 4 + r, "protocol": "b", "replication": r, "error": "invalid scenario: x"}
            for r in (1, 2, 3)
        ),
    ]
    for record in records:
        record.setdefault("error", "")
        record["seed"] = 1 + record["replication"]
    table = sw.means(sw.to_frame(spec, records)).set_index("protocol")
    a, b = table.loc["a"], table.loc["b"]
    assert (a["runs"], a["errors"]) == (3, 1)
    assert (b["runs"], b["errors"]) == (1, 3)
    assert a["p99"] == pytest.approx(7 / 3)
    half = T_975_DF2 * statistics.stdev([1.0, 2.0, 4.0]) / math.sqrt(3)
    assert a["p99_ci"] == pytest.approx(half, rel=1e-3)
    assert a["requests"] == pytest.approx(12.0)
    assert a["requests_ci"] == pytest.approx(T_975_DF2 * 2 / math.sqrt(3), rel=1e-3)
    assert b["p99"] == 0.5
    assert math.isnan(b["p99_ci"])
    assert math.isnan(b["goodput"])  # a metric no good run reported


def test_means_of_a_real_sweep(small_rows):
    table = sw.means(small_rows)
    assert list(table.columns[:5]) == ["protocol", "load", "duration", "runs", "errors"]
    assert len(table) == 4
    for cell in table.to_dict(orient="records"):
        mine = small_rows[
            (small_rows["protocol"] == cell["protocol"]) & (small_rows["load"] == cell["load"])
        ]
        assert cell["runs"] == 2 and cell["errors"] == 0
        for metric in ("p99", "requests", "goodput"):
            values = list(mine[metric])
            assert cell[metric] == pytest.approx(statistics.mean(values))
            half = T_975_DF1 * statistics.stdev(values) / math.sqrt(2)
            assert cell[f"{metric}_ci"] == pytest.approx(half, rel=1e-3)
            assert cell[f"{metric}_ci"] > 0


# --- failures become rows -------------------------------------------------------------------


def check_broken(rows: pd.DataFrame) -> None:
    """The BROKEN sweep's rows: each spoiled run says why; the one good run is complete."""
    assert len(rows) == 8
    errors = {(r["protocol"], r["load"], r["faults"]): r["error"] for r in rows.to_dict("records")}
    assert errors == {
        ("http", 0.5, "none"): "",
        ("http", 0.5, "misplaced"): MISPLACED,
        ("http", -1, "none"): NEGATIVE,
        ("http", -1, "misplaced"): MISPLACED,
        ("carrier-pigeon", 0.5, "none"): PIGEON,
        ("carrier-pigeon", 0.5, "misplaced"): MISPLACED,
        # Both values are wrong; the first problem in the file's order is named.
        ("carrier-pigeon", -1, "none"): PIGEON,
        ("carrier-pigeon", -1, "misplaced"): MISPLACED,
    }
    metrics = sw.metric_columns(rows)
    good = rows[rows["error"] == ""]
    assert good[metrics].notna().all(axis=None)
    assert good["requests"].iloc[0] > 100
    assert rows.loc[rows["error"] != "", metrics].isna().all(axis=None)
    table = sw.means(rows)
    assert list(table["runs"]) == [1, 0, 0, 0, 0, 0, 0, 0]
    assert list(table["errors"]) == [0, 1, 1, 1, 1, 1, 1, 1]


def test_invalid_axis_values_become_error_rows_on_the_local_pool():
    check_broken(sw.sweep(BROKEN, workers=2))


def test_a_run_that_raises_becomes_an_error_row(monkeypatch):
    # One worker runs in this process, so the monkeypatch reaches the runs.
    import sim.world

    real = sim.world.simulate

    def simulate(scenario: Any, progress: Any = None) -> Any:
        if scenario.channels[0].protocol == "queue":
            raise RuntimeError("the queue blew up")
        return real(scenario, progress)

    monkeypatch.setattr(sim.world, "simulate", simulate)
    told: list[tuple[int, int, str]] = []
    rows = sw.sweep(SMALL, workers=1, progress=lambda d, t, row: told.append((d, t, row["error"])))
    assert [(d, t) for d, t, _ in told] == [(d, 8) for d in range(1, 9)]
    queue, http = rows[rows["protocol"] == "queue"], rows[rows["protocol"] == "http"]
    assert list(queue["error"]) == ["RuntimeError: the queue blew up"] * 4
    assert queue[sw.metric_columns(rows)].isna().all(axis=None)
    assert (http["error"] == "").all()
    assert http[sw.metric_columns(rows)].notna().all(axis=None)
    assert list(sw.means(rows)["errors"]) == [0, 0, 2, 2]


# --- Dask -----------------------------------------------------------------------------------

# SMALL with 8 replications of 5 simulated seconds: 32 runs, enough for the Dask path to
# give each of its tasks several.
BATCHED: dict[str, Any] = {
    **SMALL,
    "name": "batched",
    "replications": 8,
    "axes": [*SMALL["axes"][:2], {"name": "duration", "path": "duration", "values": [5]}],
}
# The run of BATCHED that kills its worker process in the crash test: queue, load 0.9,
# replication 5 (index 16 + 8 + 5, seed 7 + 5).
CRASHING = {"index": 29, "seed": 12, "rate": 36.0}


@pytest.fixture(scope="module")
def batched_serial() -> pd.DataFrame:
    """The BATCHED sweep run in this process, one run after another."""
    return sw.sweep(BATCHED, workers=1)


@pytest.fixture(scope="module")
def dask_client() -> Any:
    """One real cluster of two worker processes on loopback for the Dask checks that do
    not break their workers, so that the file pays its start-up once."""
    with on_dask.local_cluster(2) as client:
        yield client


def break_queue_runs() -> None:
    """Run on each Dask worker: make every queue run raise, as a bug in one run would."""
    import sim.world

    real = sim.world.simulate

    def simulate(scenario: Any, progress: Any = None) -> Any:
        if scenario.channels[0].protocol == "queue":
            raise RuntimeError("the queue blew up")
        return real(scenario, progress)

    sim.world.simulate = simulate


class CrashOneRun(distributed.WorkerPlugin):
    """On every worker, also one restarted after a crash: the CRASHING run ends the
    worker's process at once, as a segfault or the out-of-memory killer would."""

    def setup(self, worker: Any) -> None:
        import os

        import sim.world

        real = sim.world.simulate

        def simulate(scenario: Any, progress: Any = None) -> Any:
            arrivals = scenario.workload[0].arrivals
            if (
                scenario.channels[0].protocol == "queue"
                and scenario.seed == CRASHING["seed"]
                and arrivals.rate == CRASHING["rate"]
            ):
                os._exit(1)
            return real(scenario, progress)

        sim.world.simulate = simulate


def test_batches_hold_each_run_once_shrink_and_mix_the_grid():
    tasks = sw.expand(load_spec(BATCHED))
    groups = on_dask.batches(tasks, threads=2)
    # Large batches first, single runs last, so that both workers end together.
    assert [len(g) for g in groups] == [8, 6, 4, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    assert sorted(t.index for g in groups for t in g) == list(range(32))
    # The first batch holds a run of every cell (cheap and dear runs together).
    cells = {(t.labels["protocol"], t.labels["load"]) for t in groups[0]}
    assert cells == {("http", 0.5), ("http", 0.9), ("queue", 0.5), ("queue", 0.9)}
    # Many threads for few runs: one run per task; a huge sweep: at most MAX_BATCH.
    assert [len(g) for g in on_dask.batches(tasks, threads=64)] == [1] * 32
    sizes = [len(g) for g in on_dask.batches(tasks * 40, threads=2)]
    assert max(sizes) == on_dask.MAX_BATCH and sizes[-1] == 1 and len(sizes) < 100
    assert on_dask.batches([], threads=2) == []


def test_dask_local_cluster_gives_the_serial_results(tmp_path, capsys, recwarn):
    # The command line's own cluster: `--dask` (local) with two worker processes.
    path, out = tmp_path / "batched.yaml", tmp_path / "out"
    path.write_text(yaml.safe_dump(BATCHED))
    args = ["sweep", str(path), "--dask", "--workers", "2", "--out", str(out), "--quiet"]
    with contextlib.ExitStack() as stack:
        # Another cluster's dashboard on Dask's default port (unless something holds it
        # already) must not make this one warn on stderr.
        taken = stack.enter_context(socket.socket())
        with contextlib.suppress(OSError):
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        assert cli.main(args) == 0
    assert capsys.readouterr() == (f"32 runs (0 failed) saved to {out}\n", "")
    assert not [w for w in recwarn if "already in use" in str(w.message)]
    serial = sw.sweep(path, workers=1)
    on_dask_rows = sw.load(out)
    pd.testing.assert_frame_equal(comparable(on_dask_rows), comparable(serial))
    assert on_dask_rows.attrs == serial.attrs
    pd.testing.assert_frame_equal(pd.read_parquet(out / "means.parquet"), sw.means(serial))


def test_dask_runs_go_in_batches_and_progress_counts_each_run(dask_client, batched_serial):
    told: list[tuple[int, int]] = []
    with distributed.get_task_stream(dask_client) as stream:
        rows = sw.sweep(BATCHED, client=dask_client, progress=lambda d, t, _: told.append((d, t)))
    pd.testing.assert_frame_equal(comparable(rows), comparable(batched_serial))
    # 32 runs, 2 worker threads: 13 Dask tasks of 8 runs down to 1, not 32 of one.
    assert len(stream.data) == 13
    assert told == [(done, 32) for done in range(1, 33)]


def test_dask_gives_the_local_results_and_error_rows(dask_client, small_rows):
    client = dask_client
    on_client = sw.sweep(SMALL, client=client)
    pd.testing.assert_frame_equal(comparable(on_client), comparable(small_rows))
    assert on_client.attrs == small_rows.attrs
    # A scheduler's address, with a client of its own.
    on_address = sw.sweep(SMALL, scheduler=client.scheduler.address)
    pd.testing.assert_frame_equal(comparable(on_address), comparable(small_rows))

    check_broken(sw.sweep(BROKEN, client=client))

    client.run(break_queue_runs)
    rows = sw.sweep(SMALL, client=client)
    queue, http = rows[rows["protocol"] == "queue"], rows[rows["protocol"] == "http"]
    assert list(queue["error"]) == ["RuntimeError: the queue blew up"] * 4
    assert queue[sw.metric_columns(rows)].isna().all(axis=None)
    pd.testing.assert_frame_equal(
        comparable(http), comparable(small_rows[small_rows["protocol"] == "http"])
    )


def test_a_run_that_kills_its_dask_worker_is_named_and_the_rest_finish(batched_serial):
    with on_dask.local_cluster(2) as client:
        client.register_plugin(CrashOneRun())
        told: list[str] = []
        rows = sw.sweep(BATCHED, client=client, progress=lambda _d, _t, r: told.append(r["error"]))
    crashed = rows["index"] == CRASHING["index"]
    assert list(rows.loc[crashed, "error"]) == [
        "run 29 (protocol=queue, load=0.9, duration=5 #5) killed its Dask worker process "
        "each time it was tried"
    ]
    assert rows.loc[crashed, sw.metric_columns(rows)].isna().all(axis=None)
    # The runs that shared a batch or a worker with it were run again and came back whole.
    pd.testing.assert_frame_equal(comparable(rows[~crashed]), comparable(batched_serial[~crashed]))
    assert len(told) == 32 and sum(bool(e) for e in told) == 1


# --- sweep files and the command line -------------------------------------------------------

TINY = """\
name: tiny
scenario: request-response
seed: 3
replications: 2
axes:
  - {name: protocol, path: channels.0.protocol, values: [http, queue]}
  - {name: duration, path: duration, values: [10]}
"""


def fails(capsys: Any, *args: str) -> str:
    """Run the CLI in-process, expect a user error (exit 2), and return its stderr."""
    assert cli.main(list(args)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: x\nscenario: request-response\ncolour: red\n",
            "colour: unknown field 'colour' (a sweep has name, description, scenario, seed, "
            "replications, axes)",
        ),
        (
            "name: x\nscenario: request-response\naxes:\n"
            "  - {name: p, path: channels.0.protocol, values: [http], cases: {a: {}}}\n",
            "axes.0: an axis needs either values (with a path) or cases, not both",
        ),
        (
            "name: x\nscenario: request-response\naxes:\n"
            "  - {name: p, path: channels.0.protocol, value: [http]}\n",
            "axes.0.value: unknown field 'value' (an axis has name, path, values, scale, cases)",
        ),
        (
            "name: x\nscenario: no-such-scenario\n",
            "scenario: no scenario file or built-in scenario named 'no-such-scenario' "
            "(see 'python -m sim list')",
        ),
        (
            "name: x\nscenario: request-response\naxes:\n"
            "  - {name: s, path: seed, values: [1, 2]}\n",
            "axes.0: an axis may not set seed: replication r of every cell runs with the "
            "sweep's seed + r",
        ),
        (
            "name: x\nscenario: request-response\nreplications: 0\n",
            "replications: input should be greater than or equal to 1",
        ),
    ],
)
def test_sweep_file_errors(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert fails(capsys, "sweep", str(path)) == f"{path}: {message}\n"


def test_unknown_builtin_sweep(capsys):
    assert fails(capsys, "sweep", "no-such-sweep") == (
        "no sweep file or built-in sweep named 'no-such-sweep' "
        "(built-in sweeps: a2a-modes, protocols-under-load)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["sweep", "x.yaml", "--workers", "0"],
            "python -m sim sweep: argument --workers: must be a positive integer, got '0'",
        ),
        (
            ["sweep", "x.yaml", "--workers", "two"],
            "python -m sim sweep: argument --workers: must be a positive integer, got 'two'",
        ),
        (
            ["advise", "--p99", "fast"],
            "python -m sim advise: argument --p99: must be a duration like 250ms or 0.25s, "
            "got 'fast'",
        ),
        (
            ["advise", "--p99", "0ms"],
            "python -m sim advise: argument --p99: must be a duration like 250ms or 0.25s, "
            "got '0ms'",
        ),
        (
            ["advise", "--load", "none"],
            "python -m sim advise: argument --load: must be a load like 0.75 or 75%, got 'none'",
        ),
    ],
)
def test_bad_sweep_and_advise_arguments(capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    assert exit_.value.code == 2
    assert capsys.readouterr() == ("", message + " (see --help)\n")


def test_a_bad_scheduler_address_is_one_sentence(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    assert fails(capsys, "sweep", str(path), "--quiet", "--scheduler", "nowhere") == (
        "'nowhere' is not a Dask scheduler address (missing port number in address "
        "'nowhere'); expected e.g. tcp://10.0.0.5:8786, or 'local' for a cluster on this "
        "machine\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--dask", "tcp://10.0.0.5:8786", "--workers", "2"],
            "--workers counts local processes or the workers of --dask local; the cluster at "
            "tcp://10.0.0.5:8786 has its own workers",
        ),
        (
            ["--dask", "--scheduler", "tcp://10.0.0.5:8786"],
            "give --dask or --scheduler, not both: they say the same",
        ),
    ],
)
def test_dask_arguments_that_contradict_each_other(tmp_path, capsys, args, message):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    assert fails(capsys, "sweep", str(path), "--quiet", *args) == f"error: {message}\n"


def test_python_m_sim_sweep_writes_the_results(tmp_path):
    path, out = tmp_path / "tiny.yaml", tmp_path / "out"
    path.write_text(TINY)
    proc = subprocess.run(
        [sys.executable, "-m", "sim", "sweep", str(path), "--out", str(out), "--workers", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == [
        *("protocol", "duration", "runs", "p50", "ms", "p99", "ms", "±", "ms"),
        *("goodput", "ok", "%", "lost", "%"),
    ]
    assert [line.split()[:3] for line in lines[1:3]] == [["http", "10", "2"], ["queue", "10", "2"]]
    assert lines[-1] == f"4 runs (0 failed) saved to {out}"
    assert sorted(p.name for p in out.iterdir()) == ["means.parquet", "rows.parquet", "sweep.json"]
    saved = sw.load(out)
    here = sw.sweep(path, workers=1)
    pd.testing.assert_frame_equal(comparable(saved), comparable(here))
    assert saved.attrs == here.attrs
    table = pd.read_parquet(out / "means.parquet")
    pd.testing.assert_frame_equal(table, sw.means(here))


def test_save_then_load_gives_the_same_rows(small_rows, tmp_path):
    sw.save(small_rows, tmp_path / "saved")
    again = sw.load(tmp_path / "saved")
    pd.testing.assert_frame_equal(again, small_rows)
    assert again.attrs == small_rows.attrs
    assert again.attrs["fingerprint"] == sw.fingerprint(load_spec(SMALL))
    # The saved table needs no spec to know its axes.
    pd.testing.assert_frame_equal(sw.means(again), sw.means(small_rows))


def test_cached_reuses_saved_rows_until_the_sweep_changes(tmp_path):
    # The base scenario sits beside the sweep file, so a change to it counts too.
    base = tmp_path / "base.yaml"
    base.write_text(loading_text("request-response").replace("duration: 60", "duration: 10"))
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.replace("request-response", "base.yaml"))
    where = tmp_path / "cache"
    runs: list[int] = []

    def count(done: int, total: int, row: dict[str, Any]) -> None:
        runs.append(done)

    first = sw.cached(path, where, workers=1, progress=count)
    assert len(runs) == 4 and (where / "sweep.json").is_file()
    runs.clear()
    again = sw.cached(path, where, workers=1, progress=count)
    assert runs == []  # nothing ran: the saved rows came back
    pd.testing.assert_frame_equal(again, first)

    path.write_text(TINY.replace("request-response", "base.yaml").replace("seed: 3", "seed: 4"))
    changed = sw.cached(path, where, workers=1, progress=count)
    assert len(runs) == 4
    assert list(changed["seed"]) == [4, 5, 4, 5]
    assert sw.load(where).attrs["fingerprint"] == changed.attrs["fingerprint"]

    runs.clear()
    base.write_text(base.read_text().replace("workers: 4", "workers: 2"))
    rerun = sw.cached(path, where, workers=1, progress=count)
    assert len(runs) == 4
    assert rerun.attrs["fingerprint"] != changed.attrs["fingerprint"]


def loading_text(name: str) -> str:
    """A built-in scenario's file text."""
    from sim import loading

    return loading.builtin_path(name).read_text()


# --- the advisor ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def advisor_rows() -> pd.DataFrame:
    """The built-in protocols-under-load sweep's shape, made small: every protocol, loads
    0.5 and 0.75, clean and faulty, two replications of 40 simulated seconds."""
    spec = load_spec("protocols-under-load").model_dump(mode="json")
    assert [a["name"] for a in spec["axes"]] == ["protocol", "load", "faults"]
    spec["axes"][1]["values"] = [0.5, 0.75]
    spec["axes"].append({"name": "duration", "path": "duration", "values": [40]})
    spec["replications"] = 2
    rows = sw.sweep(spec, workers=2)
    assert (rows["error"] == "").all()
    return rows


def test_the_advisors_numbers_are_the_sweeps(advisor_rows):
    advice = advise(advisor_rows, Needs())
    assert advice.load == 0.75
    v = advice.verdicts.set_index("protocol")
    assert list(v.index) == ["http", "queue", "pubsub", "fifo", "sse", "websocket"]
    at = advisor_rows[advisor_rows["load"] == 0.75]
    for protocol in v.index:
        mine = at[at["protocol"] == protocol]
        clean, faulty = mine[mine["faults"] == "none"], mine[mine["faults"] != "none"]
        assert v.loc[protocol, "p99"] == pytest.approx(clean["p99"].mean())
        lost = max(clean["lost_rate"].mean(), faulty["lost_rate"].mean())
        assert v.loc[protocol, "lost_rate"] == pytest.approx(lost)
    # The premise of "no loss -> queue": under the partition HTTP loses requests while
    # the broker keeps every one it accepted.
    assert v.loc["http", "lost_rate"] > 0.05
    assert v.loc["queue", "lost_rate"] <= Needs().max_loss


@pytest.mark.parametrize(
    ("needs", "stack", "headline"),
    [
        (Needs(), ["http"], "Use HTTP for request-response (at 75% of capacity)."),
        (
            Needs(loss_tolerable=False),
            ["queue"],
            "Use a queue for a durable hand-off (the broker keeps each request until it is "
            "served) (at 75% of capacity).",
        ),
        (
            Needs(streaming=True),
            ["sse"],
            "Use SSE for progress streamed back (at 75% of capacity).",
        ),
        (
            Needs(bidirectional=True),
            ["websocket"],
            "Use WebSocket for a two-way conversation (at 75% of capacity).",
        ),
        (
            Needs(streaming=True, loss_tolerable=False),
            ["queue", "sse"],
            "Use a queue for a durable hand-off (the broker keeps each request until it is "
            "served) + SSE for progress streamed back (at 75% of capacity).",
        ),
        (Needs(p99=5.0), ["http"], "Use HTTP for request-response (at 75% of capacity)."),
    ],
)
def test_the_recommendation_follows_the_needs(advisor_rows, needs, stack, headline):
    advice = advise(advisor_rows, needs)
    assert advice.stack == stack
    assert advice.met
    assert advice.headline == headline
    assert advice.notes == []
    # The evidence is the sweep's rows of the recommended protocols at the judged load:
    # every replication, clean and faulty.
    at = advisor_rows[(advisor_rows["load"] == 0.75) & advisor_rows["protocol"].isin(stack)]
    pd.testing.assert_frame_equal(advice.evidence, at.reset_index(drop=True))
    assert len(advice.evidence) == len(stack) * 2 * 2


@pytest.mark.parametrize(
    ("needs", "stack", "headline"),
    [
        (
            Needs(fan_out=True, loss_tolerable=False),
            ["pubsub"],
            "Use a Pub/Sub topic for publish-subscribe (every subscription gets its own copy, "
            "acked on its own) (at 75% of capacity).",
        ),
        (
            Needs(ordered=True, streaming=True),
            ["fifo", "sse"],
            "Use an SQS FIFO queue for ordered delivery (a message group in order, one in "
            "flight at a time) + SSE for progress streamed back (at 75% of capacity).",
        ),
    ],
)
def test_which_broker_for_fan_out_or_order(advisor_rows, needs, stack, headline):
    advice = advise(advisor_rows, needs)
    assert (advice.stack, advice.met, advice.headline) == (stack, True, headline)
    v = advice.verdicts.set_index("protocol")
    # The broker cases' own rows: a topic and its subscription lose nothing under the
    # partition, as a queue does; one FIFO message group serves one request at a time, so
    # at 75% of capacity its p99 is many times the plain queue's.
    assert v.loc["pubsub", "lost_rate"] <= Needs().max_loss
    assert v.loc["pubsub", "p99"] == pytest.approx(v.loc["queue", "p99"], rel=0.25)
    assert v.loc["fifo", "lost_rate"] <= Needs().max_loss
    assert v.loc["fifo", "p99"] > 5 * v.loc["queue", "p99"]
    assert list(v.index[v["fan_out"]]) == ["pubsub"] and list(v.index[v["ordered"]]) == ["fifo"]
    assert any(
        r.startswith(("One message must reach", "Messages of a key")) for r in advice.reasons
    )


def test_an_unreachable_p99_target_is_not_met(advisor_rows):
    advice = advise(advisor_rows, Needs(p99=0.001))
    assert not advice.met
    assert not advice.verdicts["meets_p99"].any()
    assert advice.headline.startswith("No protocol meets every need at 75% of capacity; closest: ")
    best = advice.verdicts.sort_values("p99")["protocol"].iloc[0]
    assert advice.stack == [best]
    assert advice.notes == [
        f"No protocol meets p99 <= 1 ms at 75% of capacity (best: {best}, "
        f"{advice.verdicts['p99'].min() * 1000:.0f} ms): the service, not the protocol, "
        "is the bottleneck; add capacity or shed load."
    ]
    assert any(reason.endswith("misses the 1 ms target.") for reason in advice.reasons)


@pytest.mark.parametrize(("wanted", "judged"), [(0.3, 0.5), (0.5, 0.5), (0.6, 0.75), (2.0, 0.75)])
def test_the_advice_is_judged_at_no_less_than_the_users_load(advisor_rows, wanted, judged):
    advice = advise(advisor_rows, Needs(load=wanted))
    assert advice.load == judged
    assert set(advice.evidence["load"]) == {judged}


def test_advise_on_a_saved_sweep(advisor_rows, tmp_path, capsys):
    sw.save(advisor_rows, tmp_path / "saved")
    args = ["advise", "--sweep", str(tmp_path / "saved"), "--no-loss", "--streaming"]
    assert cli.main(args) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == (
        "Use a queue for a durable hand-off (the broker keeps each request until it is "
        "served) + SSE for progress streamed back (at 75% of capacity)."
    )
    assert "evidence at load 0.75 (means over replications, clean network):" in lines
    assert lines[-1] == "8 sweep rows behind the recommendation"
    assert err == ""


def test_advise_needs_a_protocol_and_load_sweep(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    sw.save(sw.sweep(path, workers=1), tmp_path / "noload")
    assert fails(capsys, "advise", "--sweep", str(tmp_path / "noload")) == (
        "error: the advisor needs a sweep over protocol and load; this one has no load axis\n"
    )
    assert fails(capsys, "advise", "--sweep", str(tmp_path / "nothing")) == (
        f"{tmp_path / 'nothing'}: not a saved sweep (no sweep.json and rows.parquet)\n"
    )


@pytest.mark.parametrize("name", ["../../outside", "a/b", "..", "back\\\\slash"])
def test_a_sweeps_name_cannot_write_outside_runs_sweeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    # The name is the results' folder under runs/sweeps.
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.yaml"
    path.write_text(
        f'name: "{name}"\nscenario: request-response\n'
        "axes:\n  - {name: load, path: workload.0.arrivals.rate, values: [1]}\n"
    )
    assert cli.main(["sweep", str(path)]) == 2
    assert "name: must be a folder name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.yaml"]


def test_advise_runs_its_sweep_on_dask_with_the_serial_advice(tmp_path, monkeypatch, capsys):
    # The A2A question's built-in sweep (16 runs) is small enough to run twice here.
    monkeypatch.setattr(advisor_a2a, "A2A_CACHE", tmp_path / "serial")
    assert cli.main(["advise", "--a2a", "--offline", "--workers", "1"]) == 0
    serial = capsys.readouterr().out
    monkeypatch.setattr(advisor_a2a, "A2A_CACHE", tmp_path / "dask")
    assert cli.main(["advise", "--a2a", "--offline", "--dask", "--workers", "2"]) == 0
    assert capsys.readouterr().out == serial
    assert serial.startswith("Use streaming")
    pd.testing.assert_frame_equal(
        comparable(sw.load(tmp_path / "dask")), comparable(sw.load(tmp_path / "serial"))
    )


def test_advise_on_a_saved_sweep_has_nothing_to_run_on_dask(advisor_rows, tmp_path, capsys):
    sw.save(advisor_rows, tmp_path / "saved")
    assert fails(capsys, "advise", "--sweep", str(tmp_path / "saved"), "--dask") == (
        f"error: --sweep {tmp_path / 'saved'} is judged as saved, nothing runs: "
        "--dask says where runs would go\n"
    )
