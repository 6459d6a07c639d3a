"""Malformed scenarios and saved runs: one clear sentence each, never a crash.

A table-driven generator mutates every built-in scenario (a field dropped, a wrong type,
an out-of-range number, an unknown key, a list emptied or doubled) and feeds each
mutant to the loader the CLI and the dashboard share; a mutant that validates must run.
Then the defects it found, one test each.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sim
from sim import loading
from sim.cli import main
from sim.scenario import Scenario, reference_errors
from sim.trace.lazy import LazyRun
from sim.trace.run import Run, RunFileError
from sim.world import World

# Wrong values of every kind: null, wrong types, out of range, not finite, too large
# for a float, a bool where a number belongs, a very long string.
BAD: list[Any] = [
    None,
    [],
    {},
    "x",
    -1,
    0,
    True,
    float("nan"),
    10**400,
    "A" * 5000,
    [1],
    {"zz": 1},
]
# Mutants per built-in: every path is visited across the built-ins, a stride apart.
PER_SCENARIO = 48
SLOW = {"large", "retry-storm", "retry-storm-breaker", "retry-storm-budget"}
SLOW |= {"retry-storm-shedding"}


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into nested mappings and lists, the root excepted."""
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*prefix, index))


def at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def mutants(data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(what was done, the mutated data), deterministic: each path gets a different
    mutation from the list, in turn."""
    every = list(paths(data))
    stride = max(1, len(every) // PER_SCENARIO)
    for n, path in enumerate(every[::stride]):
        mutant = copy.deepcopy(data)
        parent, last = at(mutant, path[:-1]), path[-1]
        kind = n % (len(BAD) + 3)
        if kind < len(BAD):
            parent[last] = copy.deepcopy(BAD[kind])
            done = f"set to {BAD[kind]!r:.20}"
        elif kind == len(BAD):
            del parent[last]
            done = "dropped"
        elif isinstance(at(mutant, path), dict):
            at(mutant, path)["zz_unknown"] = 1
            done = "unknown key added"
        elif isinstance(at(mutant, path), list):
            value = at(mutant, path)
            value.extend(copy.deepcopy(value[:1]) or [None])
            done = "first item doubled"
        else:
            parent[last] = "NOPE"  # an unknown agent id, when the field names one
            done = "set to 'NOPE'"
        yield f"{'.'.join(map(str, path))} {done}", mutant


def test_every_builtin_mutated_is_one_sentence_per_problem_or_runs() -> None:
    failures: list[str] = []
    ran = 0
    for name in loading.builtin_names():
        data = loading.read_data(loading.builtin_path(name))
        first_valid = True
        for what, mutant in mutants(data):
            try:
                scenario = loading.validate(mutant, f"{name}.yaml")
            except loading.ScenarioError as exc:
                for line in exc.lines:
                    if "\n" in line or len(line) > 400 or not line.startswith(f"{name}.yaml"):
                        failures.append(f"{name}: {what}: {line[:200]!r}")
                continue
            except Exception as exc:
                failures.append(f"{name}: {what}: {type(exc).__name__}: {exc}")
                continue
            if name in SLOW or not first_valid:
                continue
            first_valid = False  # one valid mutant of each built-in runs to its end
            try:
                World(scenario).run()
                ran += 1
            except Exception as exc:
                failures.append(f"{name}: {what} ran into {type(exc).__name__}: {exc}")
    assert failures == []
    assert ran >= 15


# -- the defects the generator found ----------------------------------------------------


def basic() -> dict[str, Any]:
    return loading.read_data(loading.builtin_path("basic"))


def problems(data: Any) -> list[str]:
    """The sentences a scenario's data gets, without the label."""
    with pytest.raises(loading.ScenarioError) as caught:
        loading.validate(data, "f.yaml")
    return [line.removeprefix("f.yaml: ") for line in caught.value.lines]


@pytest.mark.parametrize("value", [[], ["api"], {}, {"id": "api"}])
def test_a_list_or_mapping_where_an_agent_is_named_is_one_sentence(value: Any) -> None:
    # Was TypeError: unhashable type (the check for two channels on one pair).
    data = basic()
    data["channels"][0]["to"] = value
    data["channels"][0]["breaker"] = {"failure_rate": 0.5}
    data["faults"] = [{"kind": "breaker", "agent": "client", "peer": "api", "start": 1}]
    kind = "a list" if isinstance(value, list) else "a mapping"
    assert f"channels.0.to: must be a string, got {kind}" in problems(data)
    assert reference_errors(data) is not None  # the raw checks alone do not raise either


def test_a_number_too_large_for_a_float_is_said_so_everywhere() -> None:
    # Was OverflowError: the window check formatted the raw 400-digit start with :g.
    data = loading.read_data(loading.builtin_path("collaboration-partition"))
    data["faults"][0]["start"] = 10**400
    said = problems(data)
    assert "faults.0.start: is too large a number, got 1e+400" in said
    assert all(len(line) < 200 for line in said)
    assert reference_errors(data)  # the raw window checks format it without overflow


def test_long_values_are_shortened_in_the_sentence() -> None:
    data = basic()
    data["agents"][1]["role"] = "R" * 5000
    data["channels"][0]["to"] = "é名" * 3000
    said = problems(data)
    assert any(line.startswith(f"agents.1.role: unknown role '{'R' * 37}...' ") for line in said)
    assert any(line.startswith(f"channels.0.to: unknown agent '{'é名' * 18}é...'") for line in said)
    assert all(len(line) < 300 for line in said)


@pytest.mark.parametrize(
    ("path", "sentence"),
    [
        (("seed",), "seed: must be a whole number, got true"),
        (("duration",), "duration: must be a number, got true"),
        (("agents", 1, "workers"), "agents.1.workers: must be a whole number, got true"),
        (("channels", 0, "timeout"), "channels.0.timeout: must be a number, got true"),
    ],
)
def test_true_where_a_number_belongs_is_refused(path: tuple[Any, ...], sentence: str) -> None:
    # Was accepted as 1: `seed: true` ran with seed 1.
    data = basic()
    at(data, path[:-1])[path[-1]] = True
    assert problems(data) == [sentence]


@pytest.mark.parametrize(
    ("path", "value", "sentence"),
    [
        (("channels", 0, "timeout"), "5",
         "channels.0.timeout: must be a number, got the string '5' (write it unquoted)"),
        (("duration",), "6e1",
         "duration: must be a number, got the string '6e1' (write it unquoted)"),
        (("agents", 1, "workers"), "4",
         "agents.1.workers: must be a whole number, got the string '4' (write it unquoted)"),
    ],
)  # fmt: skip
def test_a_string_where_a_number_belongs_is_refused(
    path: tuple[Any, ...], value: str, sentence: str
) -> None:
    # Was accepted: `timeout: "5"` ran with a 5 s timeout. Times are numbers of seconds
    # (DESIGN.md, the trace contract), and a quoted one may not mean what it reads as.
    data = basic()
    at(data, path[:-1])[path[-1]] = value
    assert problems(data) == [sentence]


@pytest.mark.parametrize(
    ("name", "text", "sentence"),
    [
        (
            "twice.yaml",
            "name: a\nduration: 10\nduration: 20\n",
            "line 3: invalid YAML: found the key 'duration' twice; a key may appear once",
        ),
        (
            "twice.json",
            '{"name": "a", "duration": 10, "duration": 20}',
            "invalid JSON: found the key 'duration' twice in one object",
        ),
    ],
)
def test_a_key_written_twice_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, sentence: str
) -> None:
    # Was the last value silently kept.
    path = tmp_path / name
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and sentence in err and "Traceback" not in err


def test_keys_merged_in_may_still_be_overridden() -> None:
    data = loading.parse_text("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  x: 3\n", "m.yaml")
    assert data["m"] == {"x": 3, "y": 2}


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, "name: basic\n".encode("utf-16")])
def test_a_file_that_is_not_utf8_text_is_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_bytes(content)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"{path}: is not UTF-8 text (a binary file, or another encoding), so it " + (
        "cannot be a scenario file"
    )


def test_an_empty_scenario_argument_is_not_called_a_directory(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Was ": is a directory, not a scenario file" (Path("") is the current folder).
    assert main(["run", ""]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("the scenario's name is empty") and "directory" not in err


# -- saved runs with a damaged run.json ---------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sim.run("timeout-cascade").save(tmp_path_factory.mktemp("runs") / "saved")


@pytest.mark.parametrize(
    ("field", "value", "sentence"),
    [
        ("duration", "abc", 'duration must be the run\'s length in seconds, a number of 0 or '
         'more, not "abc"'),
        ("duration", -5, "a number of 0 or more, not -5"),
        ("duration", None, "a number of 0 or more, not null"),
        ("seed", "x", 'seed must be a whole number of 0 or more, not "x"'),
    ],
)  # fmt: skip
def test_a_run_json_with_a_field_of_the_wrong_type_is_one_sentence(
    saved: Path, tmp_path: Path, field: str, value: Any, sentence: str
) -> None:
    # Was a ValueError from Run.duration on the Run page (its traceback on screen).
    broken = Run.load(saved).save(tmp_path / "broken")
    manifest = json.loads((broken / "run.json").read_text())
    manifest[field] = value
    (broken / "run.json").write_text(json.dumps(manifest))
    for read in (LazyRun.open, Run.load):
        with pytest.raises(RunFileError) as caught:
            read(broken)
        assert sentence in str(caught.value) and "\n" not in str(caught.value)


def test_a_run_json_without_a_duration_is_one_sentence(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was read as a run of 0 s: a summary with every rate 0 (goodput, throughput).
    broken = Run.load(saved).save(tmp_path / "broken")
    manifest = json.loads((broken / "run.json").read_text())
    del manifest["duration"]
    (broken / "run.json").write_text(json.dumps(manifest))
    for read in (LazyRun.open, Run.load):
        with pytest.raises(RunFileError) as caught:
            read(broken)
        said = str(caught.value)
        assert "has no duration (the run's length in seconds)" in said and "\n" not in said
    assert main(["export", str(broken), "--format", "csv"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has no duration" in err
    assert not (broken / "csv").exists()


def test_a_valid_scenario_is_still_a_scenario() -> None:
    assert isinstance(loading.validate(basic(), "basic.yaml"), Scenario)


@pytest.mark.parametrize("tier", [["tier-1"], {"name": "tier-1"}])
def test_a_model_tier_that_is_not_a_name_is_one_sentence(tier: Any) -> None:
    # Was TypeError: unhashable type (looked up among the profile's tiers).
    data = loading.read_data(loading.builtin_path("llm-pipeline"))
    llm = next(a for a in data["agents"] if a.get("role") == "llm")
    index = data["agents"].index(llm)
    llm["llm"]["tier"] = tier
    said = problems(data)
    assert said == [
        f"agents.{index}.llm.tier: must name one of the tiers of model "
        f"'{llm['llm']['model']}': start, tier-1"
    ]


def test_a_timeout_below_the_clock_resolution_times_every_call_out() -> None:
    # Was NameError in the call path: the attempt ended (its deadline already passed)
    # before the caller had its Call to cancel downstream work with.
    data = loading.read_data(loading.builtin_path("timeout-cascade"))
    data["channels"][0]["timeout"] = 1e-300
    run = sim.run(data)
    first_hop = run.spans[(run.spans["agent"] == data["channels"][0]["from"])]
    assert len(first_hop) > 0
    assert set(first_hop["outcome"]) == {"timeout"}


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["run", "A" * 300], "no scenario file or built-in scenario named 'AAAA"),
        (["validate", "A" * 300], "no scenario file or built-in scenario named 'AAAA"),
        (["sweep", "A" * 300], "no sweep file or built-in sweep named 'AAAA"),
        (["export", "A" * 300, "--format", "csv"], "error: no run at AAAA"),
    ],
)
def test_a_name_too_long_for_the_file_system_is_one_sentence(
    capsys: pytest.CaptureFixture[str], args: list[str], sentence: str
) -> None:
    # Was "internal error: OSError: [Errno 36] File name too long" (exit 1).
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(sentence) and len(err.splitlines()) == 1
    assert "internal error" not in err and len(err) < 400


def test_a_saved_run_path_too_long_to_look_up_is_one_sentence() -> None:
    with pytest.raises(RunFileError, match="cannot be read"):
        LazyRun.open("A" * 300)


def test_a_scaled_sweep_value_too_large_for_a_float_is_one_sentence() -> None:
    # Was OverflowError in expand(): value * scale.
    from sim.sweeps import spec

    data = loading.read_data(spec.resolve_sweep("protocols-under-load"))
    scaled = next(i for i, axis in enumerate(data["axes"]) if axis.get("scale"))
    data["axes"][scaled]["values"][0] = 10**400
    with pytest.raises(loading.ScenarioError) as caught:
        spec.load_spec(data)
    assert caught.value.lines == [
        f"sweep: axes.{scaled}: a scaled value must be a finite number (below 1.8e308)"
    ]


def test_model_settings_of_the_wrong_shape_are_one_short_sentence_each() -> None:
    # Was TypeError: unhashable type (a retry preset looked up among the presets), and a
    # 5,000-character model name or tier echoed whole.
    data = loading.read_data(loading.builtin_path("llm-pipeline"))
    models = [i for i, a in enumerate(data["agents"]) if a.get("role") == "llm"]
    data["agents"][models[0]]["llm"]["model"] = "1" * 5000
    data["agents"][models[1]]["llm"]["tier"] = "A" * 5000
    retrying = next(i for i, c in enumerate(data["channels"]) if "retry" in c)
    data["channels"][retrying]["retry"]["preset"] = []
    said = problems(data)
    assert (
        f"channels.{retrying}.retry.preset: must be 'openai-sdk' or 'anthropic-sdk', "
        + ("got a list")
        in said
    )
    assert any(f"unknown model profile '{'1' * 37}...'" in line for line in said)
    assert any(f"has no tier '{'A' * 37}...'" in line for line in said)
    assert all(len(line) < 200 for line in said)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["run", "basic", "--out", ""], "--out"),
        (["run", "basic", "--out", "  "], "--out"),
        (["run", "basic", "--spill", ""], "--spill"),
        (["export", "RUN", "--format", "csv", "--out", ""], "--out"),
        (["sweep", "protocols-under-load", "--out", ""], "--out"),
    ],
)
def test_an_empty_path_option_is_refused_not_read_as_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    args: list[str], option: str,
) -> None:  # fmt: skip
    # Was `run --out ""` saving to runs/NAME-seedN, silently: "" read as "not given".
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f"error: {option} is empty: give it a path, or leave {option} out to use its default"
    )
    assert not (tmp_path / "runs").exists()
