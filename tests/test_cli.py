"""The command line: what `run`, `list`, `validate` and `schema` print, and every user error.

Each user error is one sentence on stderr and exit status 2, never a traceback. Most
cases call `sim.cli.main` in-process (fast); a few go through a real `python -m sim`
subprocess, so the process-level behaviour (exit status, no traceback) is checked too.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import sim
from sim import cli, loading
from sim.trace import TABLES, Run

ROOT = Path(__file__).resolve().parent.parent
BASIC = loading.builtin_path("basic")

VALID = """\
name: small
duration: 5
agents:
  - {id: c, role: client}
  - {id: s, role: service, workers: 2}
workload:
  - {from: c, to: s, arrivals: {kind: constant, rate: 4}}
"""


def python_m_sim(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run `python -m sim ARGS` in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SWITCHBOARD_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def fails(capsys, *args: str) -> str:
    """Run the CLI in-process, expect a user error, and return its stderr."""
    assert cli.main(list(args)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    return err


# --- run -----------------------------------------------------------------------------------


def test_run_prints_a_summary_and_saves_the_trace(tmp_path):
    out = tmp_path / "run"
    proc = python_m_sim(
        "run", "basic", "--seed", "5", "--set", "agents.1.workers=8", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("basic (seed 5, 60 s simulated, ")
    assert lines[1].lstrip().startswith("requests ")
    assert lines[2].lstrip().startswith("outcomes     ok ")
    assert lines[3].lstrip().startswith("latency      p50 ")
    assert lines[5].lstrip().startswith("on the wire  delivered ")
    assert lines[-1] == f"saved to {out}"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["run.json", *(f"{t}.parquet" for t in TABLES)]
    )
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["seed"] == 5
    assert manifest["scenario"]["seed"] == 5
    assert manifest["scenario"]["agents"][1]["workers"] == 8
    run = Run.load(out)
    assert run.summary()["requests"] == manifest["summary"]["requests"] > 0
    assert f"requests     {manifest['summary']['requests']}  " in proc.stdout
    # The --set took effect in the simulation, not only in the manifest: 8 workers.
    assert run.agents.set_index("agent").loc["api", "workers"] == 8


def test_seed_and_set_change_the_run(tmp_path, capsys):
    paths = {}
    for name, extra in [("a", []), ("b", ["--seed", "2"]), ("c", ["--set", "agents.1.workers=1"])]:
        paths[name] = tmp_path / name
        assert cli.main(["run", "basic", "--quiet", "--out", str(paths[name]), *extra]) == 0
    assert capsys.readouterr().out.splitlines() == [f"saved to {paths[n]}" for n in "abc"]
    a, b, c = (Run.load(paths[n]) for n in "abc")
    assert a.manifest["seed"] == 1  # the file's own seed
    assert b.manifest["seed"] == 2
    assert not a.messages["sent_at"].equals(b.messages["sent_at"])
    # One worker instead of four: requests wait for it.
    wait = {
        name: r.spans[r.spans["kind"] == "server"]["wait"].mean()
        for name, r in [("a", a), ("c", c)]
    }
    assert wait["c"] > wait["a"]
    # Same scenario, same seed, same tables.
    again = tmp_path / "again"
    assert cli.main(["run", "basic", "--quiet", "--out", str(again)]) == 0
    pd.testing.assert_frame_equal(Run.load(again).messages, a.messages)


def test_run_saves_under_runs_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    scenario = tmp_path / "small.yaml"
    scenario.write_text(VALID)
    assert cli.main(["run", str(scenario), "--seed", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"saved to {Path('runs') / 'small-seed3'}"
    assert (tmp_path / "runs" / "small-seed3" / "run.json").is_file()


def test_run_of_a_json_file(tmp_path, capsys):
    import yaml

    scenario = tmp_path / "small.json"
    scenario.write_text(json.dumps(yaml.safe_load(VALID)))
    assert cli.main(["run", str(scenario), "--quiet", "--out", str(tmp_path / "o")]) == 0
    assert Run.load(tmp_path / "o").summary()["requests"] == 20


def test_sim_run_from_python_twice():
    # `sim.run` is a function, and stays one however often it runs.
    first = sim.run("basic", seed=4)
    second = sim.run("basic", seed=4, agents__1__workers=2)
    assert callable(sim.run)
    assert first.manifest["seed"] == second.manifest["seed"] == 4
    assert second.scenario.agents[1].workers == 2


def test_the_package_names_its_public_api():
    assert sorted(sim.__all__) == sorted(
        ["Run", "Scenario", "ScenarioError", "UserError", "__version__", "check", "load",
         "means", "run", "sweep",
         # agents written in Python (docs/agents.md)
         "AgentContext", "CallError", "CallFailed", "CallRejected", "CallTimeout",
         "FanOutResult", "PluginError", "Published", "Readable", "Request", "Response",
         "SessionMessage", "StreamEvent", "Unreadable", "handles", "load_plugins",
         "register_role", "role"]
    )  # fmt: skip
    for name in ("run", "load", "check", "sweep", "means"):
        assert inspect.isfunction(getattr(sim, name)), name
    run = sim.run("basic", duration=5)
    assert sorted(sim.check(run)) == sorted(c.name for c in sim.checks.CHECKS)


# --- list, validate, schema ----------------------------------------------------------------


# Two wrong things at once: B gives C 10 s of a request A waits 2 s for (a retried call,
# its deadline not shrunk), and a stream whose missed events left the replay buffer.
TWO_VIOLATIONS = """\
name: two-violations
duration: 30
agents:
  - {id: A, role: client}
  - {id: B, role: service, calls: [C]}
  - {id: C, role: service, service_time: {dist: constant, value: 3}}
  - {id: s, role: service, service_time: {dist: constant, value: 20}}
channels:
  - {from: A, to: B, timeout: 2}
  - {from: B, to: C, timeout: 10, deadline: {propagate: false},
     retry: {max_attempts: 2, backoff: constant, base: 0.1}}
  - {from: A, to: s, protocol: sse, timeout: 50,
     sse: {replay_buffer: 2, progress_interval: 1}}
network:
  default: {latency: {dist: constant, value: 0.01}}
workload:
  - {from: A, to: B, arrivals: {kind: constant, rate: 1}, end: 3}
  - {from: A, to: s, arrivals: {kind: constant, rate: 1}, end: 1}
faults:
  - {kind: partition, groups: [[A], [s]], start: 5, end: 12}
"""


def test_check_shows_each_failing_checks_violating_messages_and_their_chains(tmp_path, capsys):
    scenario = tmp_path / "two.yaml"
    scenario.write_text(TWO_VIOLATIONS)
    out = tmp_path / "run"
    assert cli.main(["run", str(scenario), "--check", "--quiet", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    run = Run.load(out)
    found = sim.check(run)
    assert sorted(name for name, rows in found.items() if not rows.empty) == [
        "deadlines_shrink",
        "streams_complete",
    ]
    lines = err.splitlines()
    for name in ("deadlines_shrink", "streams_complete"):
        assert sum(line.startswith(f"check '{name}' failed") for line in lines) == 1
    # Each violation shown names its message, and its chain ends at that message...
    late = found["deadlines_shrink"]["msg_id"].iloc[0]
    lost = found["streams_complete"]["msg_id"].iloc[0]
    for msg_id in (late, lost):
        assert f"msg_id={msg_id} " in err
        [mark] = [line for line in lines if line.endswith("<- violating") and f" {msg_id} " in line]
        assert mark.split()[0] == msg_id
    # ...which starts at the workload's request that B's call to C serves.
    m = run.messages.drop_duplicates("msg_id").set_index("msg_id")
    root = m.loc[late, "causation_id"]
    assert (m.loc[root, "src"], m.loc[root, "dst"], m.loc[root, "kind"]) == ("A", "B", "request")
    first = lines.index(next(line for line in lines if f"msg_id={late} " in line))
    assert lines[first + 2].split()[0] == root
    assert lines[first + 3].split()[0] == late


def test_list_shows_every_builtin(capsys):
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = loading.builtin_names()
    assert [line.split()[0] for line in lines] == names
    basic = lines[names.index("basic")]
    assert "One client calls one service over HTTP." in basic
    assert "(invalid)" not in "\n".join(lines)


def test_list_in_a_subprocess():
    proc = python_m_sim("list")
    assert proc.returncode == 0 and proc.stderr == ""
    assert "basic" in proc.stdout.split()


def test_validate_a_valid_file(tmp_path, capsys):
    path = tmp_path / "small.yaml"
    path.write_text(VALID)
    assert cli.main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: valid (2 agents, 1 workloads, 0 faults)\n"


def test_schema_is_json(capsys):
    assert cli.main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Scenario"


# --- user errors: one sentence, exit 2, no traceback ---------------------------------------


def test_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert fails(capsys, "run", str(missing)) == f"{missing}: no such file\n"
    assert fails(capsys, "validate", str(missing)) == f"{missing}: no such file\n"


def test_unknown_builtin_name_suggests_one(capsys):
    assert fails(capsys, "run", "basci") == (
        "no scenario file or built-in scenario named 'basci'; did you mean 'basic'? "
        "(see 'python -m sim list')\n"
    )
    assert fails(capsys, "run", "zzzzzz") == (
        "no scenario file or built-in scenario named 'zzzzzz' (see 'python -m sim list')\n"
    )


def test_a_directory_is_not_a_scenario(tmp_path, capsys):
    assert (
        fails(capsys, "run", str(tmp_path)) == f"{tmp_path}: is a directory, not a scenario file\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: x\nduration: 10\n agents: []\n",
            "line 3: invalid YAML: mapping values are not allowed here; check the "
            "indentation, or quote a value that contains ': '",
        ),
        (
            "name: x\nduration: 10\nagents:\n  - {id: a, role: client\nchannels: []\n",
            "line 5: invalid YAML: expected ',' or '}', but got ':' "
            "(while parsing a flow mapping that starts on line 4)",
        ),
        (
            "name: x\n\tduration: 10\n",
            "line 2: invalid YAML: found character '\\t' that cannot start any token; "
            "indent with spaces, not tabs",
        ),
        (
            'name: "x\nduration: 1\n',
            "line 3: invalid YAML: found unexpected end of stream "
            "(while scanning a quoted scalar that starts on line 1)",
        ),
    ],
)
def test_bad_yaml_names_its_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert fails(capsys, "run", str(path)) == f"{path}: {message}\n"


def test_bad_json_names_its_line(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "name": "x",\n  "duration": 10,\n}\n')
    assert fails(capsys, "validate", str(path)) == (
        f"{path}: line 4: invalid JSON: expecting property name enclosed in double quotes\n"
    )


def test_invalid_scenario_lists_every_problem(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(VALID.replace("workers: 2", "workers: 0, wrkers: 3").replace("to: s", "to: x"))
    assert fails(capsys, "run", str(path)).splitlines() == [
        f"{path}: agents.1.workers: must be at least 1, got 0",
        f"{path}: agents.1.wrkers: unknown field 'wrkers'; did you mean 'workers'?",
        f"{path}: workload.0.to: unknown agent 'x'",
    ]


def test_unwritable_out_under_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = blocker / "run"
    assert fails(capsys, "run", "basic", "--out", str(out)) == (
        f"error: cannot write the run to {out}: {blocker} is a file, not a directory\n"
    )
    assert fails(capsys, "run", "basic", "--out", str(blocker)) == (
        f"error: cannot write the run to {blocker}: {blocker} is a file, not a directory\n"
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("oops", "--set oops: expected PATH=VALUE, e.g. agents.1.workers=8"),
        ("=3", "--set =3: expected PATH=VALUE, e.g. agents.1.workers=8"),
        (
            "agents.9.workers=3",
            "--set agents.9.workers: agents is a list of 2, so '9' must be an index from 0 to 1",
        ),
        (
            "agents.x.workers=3",
            "--set agents.x.workers: agents is a list of 2, so 'x' must be an index from 0 to 1",
        ),
        ("name.x=3", "--set name.x: name is the value 'basic', not a section with fields"),
        ("agents..id=3", "--set agents..id: the path has an empty part"),
        (
            "agents.1.workers=[",
            "--set agents.1.workers=[: the value '[' is not valid YAML (quote it to set a string)",
        ),
    ],
)
def test_bad_set(capsys, override, message):
    assert fails(capsys, "run", "basic", "--set", override) == message + "\n"


def test_set_that_makes_the_scenario_invalid(capsys):
    assert fails(capsys, "run", "basic", "--set", "agents.1.workers=0") == (
        f"{BASIC}: agents.1.workers: must be at least 1, got 0\n"
    )
    assert fails(capsys, "run", "basic", "--set", "netwrk.default.loss=0.1") == (
        f"{BASIC}: netwrk: unknown field 'netwrk'; did you mean 'network'?\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "basic", "--seed", "-1"],
            "python -m sim run: argument --seed: must be a non-negative integer, got '-1' "
            "(see --help)",
        ),
        (
            ["run", "basic", "--seed", "x"],
            "python -m sim run: argument --seed: must be a non-negative integer, got 'x' "
            "(see --help)",
        ),
        (["run"], "python -m sim run: the following arguments are required: scenario (see --help)"),
    ],
)
def test_bad_arguments(capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", message + "\n")


def test_unknown_verb(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["frobnicate"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    # How argparse quotes the choices differs between Python versions.
    assert err.startswith("python -m sim: argument verb: invalid choice: 'frobnicate' (choose")
    assert err.endswith(" (see --help)\n") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no/such/file.yaml"], "no/such/file.yaml: no such file"),
        (["run", "basic", "--set", "agents.1.workers=["], None),
        (["run", "basic", "--seed", "-1"], None),
        (["validate", "scenarios"], "scenarios: is a directory, not a scenario file"),
        (["run", "basic", "--out", "sim/__init__.py/run"], None),
    ],
)
def test_user_errors_in_a_real_process(args, message):
    proc = python_m_sim(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    if message is not None:
        assert proc.stderr == message + "\n"


def test_a_bug_is_one_sentence_and_exit_1(tmp_path, monkeypatch, capsys):
    import sim.world

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(sim.world, "simulate", explode)
    monkeypatch.delenv("SWITCHBOARD_DEBUG", raising=False)
    assert cli.main(["run", "basic", "--quiet", "--out", str(tmp_path / "out")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "internal error: RuntimeError: boom (set SWITCHBOARD_DEBUG=1 for details)\n"
    assert "Traceback" not in err
