"""The scenario model: built-ins, the JSON Schema, every error sentence, samplers, arrivals."""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import cli, loading
from sim import scenario as sc
from sim.arrivals import arrival_times
from sim.distributions import Z99, Constant, Exponential, Lognormal, Normal, Pareto, Uniform
from sim.loading import ScenarioError

ROOT = Path(__file__).resolve().parent.parent

BASE: dict[str, Any] = {
    "name": "t",
    "duration": 30,
    "agents": [
        {"id": "client", "role": "client"},
        {
            "id": "api",
            "role": "service",
            "workers": 2,
            "service_time": {"dist": "exponential", "mean": 0.1},
            "calls": ["db"],
        },
        {"id": "db", "role": "service"},
    ],
    "channels": [{"from": "client", "to": "api", "timeout": 5}],
    "network": {
        "default": {"latency": {"dist": "constant", "value": 0.001}, "loss": 0.0},
        "links": [{"from": "api", "to": "db", "loss": 0.01}],
    },
    "workload": [{"from": "client", "to": "api", "arrivals": {"kind": "poisson", "rate": 5}}],
    "faults": [
        {"kind": "crash", "targets": ["db"], "start": 10, "end": 12},
        {"kind": "loss", "targets": ["api"], "start": 1, "end": 2, "probability": 0.5},
    ],
}


def base() -> dict[str, Any]:
    """A fresh copy of a valid scenario touching every section."""
    return copy.deepcopy(BASE)


def problems(data: Any, tmp_path: Path, name: str = "s.yaml") -> list[str]:
    """The error lines the loader gives for `data` written to a file (none if valid)."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        loading.load(str(path))
    except ScenarioError as exc:
        return exc.lines
    return []


def only_problem(data: Any, tmp_path: Path) -> str:
    """The single error line of `data`, without the file name."""
    lines = problems(data, tmp_path)
    assert len(lines) == 1, lines
    prefix = f"{tmp_path / 's.yaml'}: "
    assert lines[0].startswith(prefix), lines
    return lines[0][len(prefix) :]


def test_base_scenario_is_valid(tmp_path):
    assert problems(base(), tmp_path) == []


# --- built-ins and the schema ----------------------------------------------------------


def builtin_files() -> list[Path]:
    return sorted((ROOT / "scenarios").glob("*.yaml"))


def test_there_are_builtin_scenarios():
    assert "basic" in loading.builtin_names()
    assert loading.builtin_names() == sorted(p.stem for p in builtin_files())


@pytest.mark.parametrize("path", builtin_files(), ids=lambda p: p.stem)
def test_builtin_scenario_validates(path):
    scenario = loading.load(path.stem)
    assert scenario.duration > 0
    assert loading.resolve(path.stem) == path


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "sim", "schema"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_schema_lists_the_sections(schema):
    assert schema["type"] == "object"
    assert {
        "name",
        "description",
        "seed",
        "duration",
        "agents",
        "channels",
        "network",
        "workload",
        "faults",
    } <= set(schema["properties"])
    assert {"name", "duration", "agents"} <= set(schema["required"])
    # Readable field names: the channel's ends are `from` and `to`, as in the files.
    assert {"from", "to", "timeout"} <= set(schema["$defs"]["Channel"]["properties"])


def test_schema_forbids_unknown_fields_everywhere(schema):
    objects = [schema, *schema["$defs"].values()]
    models = [o for o in objects if o.get("type") == "object" and "properties" in o]
    assert len(models) > 20
    assert all(m.get("additionalProperties") is False for m in models)


@pytest.mark.parametrize("path", builtin_files(), ids=lambda p: p.stem)
def test_builtin_scenario_matches_the_schema(schema, path):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_schema_rejects_what_the_model_rejects(schema):
    jsonschema = pytest.importorskip("jsonschema")
    data = base()
    data["network"]["default"]["loss"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


# --- unknown fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d.update(duraton=10),
            "duraton: unknown field 'duraton'; did you mean 'duration'?",
        ),
        (
            lambda d: d["agents"][1].update(servce_time=1),
            "agents.1.servce_time: unknown field 'servce_time'; did you mean 'service_time'?",
        ),
        (
            lambda d: d["channels"][0].update(timout=3),
            "channels.0.timout: unknown field 'timout'; did you mean 'timeout'?",
        ),
        (
            lambda d: d["network"]["default"].update(latncy=1),
            "network.default.latncy: unknown field 'latncy'; did you mean 'latency'?",
        ),
        (
            lambda d: d["network"]["links"][0].update(los=0.1),
            "network.links.0.los: unknown field 'los'; did you mean 'loss'?",
        ),
        (
            lambda d: d["workload"][0].update(tpye="x"),
            "workload.0.tpye: unknown field 'tpye'; did you mean 'type'?",
        ),
        (
            lambda d: d["faults"][0].update(ed=5),
            "faults.0.ed: unknown field 'ed'; did you mean 'end'?",
        ),
        # The suggestion comes from the fault's own kind: `factor` belongs to overload
        # faults, so a loss fault gets none for `factr`.
        (
            lambda d: d["faults"][1].update(factr=2),
            "faults.1.factr: unknown field 'factr'",
        ),
        (
            lambda d: d["agents"][1]["service_time"].update(meen=1),
            "agents.1.service_time.meen: unknown field 'meen'; did you mean 'mean'?",
        ),
        (lambda d: d.update(colour="red"), "colour: unknown field 'colour'"),
    ],
)
def test_unknown_field_is_an_error(tmp_path, edit, message):
    data = base()
    edit(data)
    assert only_problem(data, tmp_path) == message


def test_misspelt_required_field_reports_both(tmp_path):
    data = base()
    data["faults"][1]["probabilty"] = data["faults"][1].pop("probability")
    assert problems(data, tmp_path) == [
        f"{tmp_path / 's.yaml'}: faults.1.probability: required field is missing",
        f"{tmp_path / 's.yaml'}: faults.1.probabilty: unknown field 'probabilty'; "
        "did you mean 'probability'?",
    ]


# --- cross-checks and ranges ---------------------------------------------------------------


def _set(path: str, value: Any):
    def edit(data: dict[str, Any]) -> None:
        loading.set_path(data, path, value)

    return edit


def _add(section: str, item: Any):
    def edit(data: dict[str, Any]) -> None:
        data[section].append(item)

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # a channel, a workload, a fault, a call or a link naming an unknown agent
        (_set("channels.0.to", "apii"), "channels.0.to: unknown agent 'apii'"),
        (_set("channels.0.from", "ghost"), "channels.0.from: unknown agent 'ghost'"),
        (_set("workload.0.from", "clint"), "workload.0.from: unknown agent 'clint'"),
        (_set("workload.0.to", "ap"), "workload.0.to: unknown agent 'ap'"),
        (_set("faults.0.targets.0", "dbb"), "faults.0.targets.0: unknown agent 'dbb'"),
        (
            _set("faults.1", {"kind": "partition", "groups": [["client"], ["x"]], "start": 0}),
            "faults.1.groups.1.0: unknown agent 'x'",
        ),
        (_set("agents.1.calls.0", "cache"), "agents.1.calls.0: unknown agent 'cache'"),
        (_set("network.links.0.to", "dc2"), "network.links.0.to: unknown agent 'dc2'"),
        (_add("agents", {"id": "api"}), "agents.3.id: duplicate agent id 'api'"),
        # a workload from a service would silently send nothing
        (
            _set("workload.0.from", "db"),
            "workload.0.from: agent 'db' is a service, so it would send nothing; "
            "give it role: client",
        ),
        (
            _add("channels", {"from": "client", "to": "api"}),
            "channels.1: a second channel from 'client' to 'api' (channels.0 already sets it)",
        ),
        # windows that end before they start
        (
            _set("faults.0.end", 5),
            "faults.0.end: the fault window ends at 5, before it starts at 10",
        ),
        (
            _set(
                "workload.0",
                {
                    "from": "client",
                    "to": "api",
                    "start": 20,
                    "end": 10.5,
                    "arrivals": {"kind": "poisson", "rate": 1},
                },
            ),
            "workload.0.end: the workload ends at 10.5, before it starts at 20",
        ),
        (
            _set(
                "workload.0.arrivals",
                {"kind": "spike", "rate": 1, "spike_rate": 9, "spike_start": 10, "spike_end": 4},
            ),
            "workload.0.arrivals.spike_end: the spike ends at 4, before it starts at 10",
        ),
        # probabilities outside [0, 1]
        (
            _set("network.default.loss", 1.5),
            "network.default.loss: must be between 0 and 1, got 1.5",
        ),
        (
            _set("network.default.duplicate", -0.1),
            "network.default.duplicate: must be between 0 and 1, got -0.1",
        ),
        (_set("network.links.0.loss", 2), "network.links.0.loss: must be between 0 and 1, got 2"),
        (
            _set("faults.1.probability", 1.01),
            "faults.1.probability: must be between 0 and 1, got 1.01",
        ),
        # negative latencies and durations
        (
            _set("network.default.latency.value", -0.1),
            "network.default.latency.value: must be at least 0, got -0.1",
        ),
        (
            _set("network.default.latency", {"dist": "normal", "mean": -1, "sd": 0.1}),
            "network.default.latency.mean: must be at least 0, got -1",
        ),
        (
            _set("network.links.0.latency", {"dist": "uniform", "low": -1, "high": 1}),
            "network.links.0.latency.low: must be at least 0, got -1",
        ),
        (_set("duration", -5), "duration: must be greater than 0, got -5"),
        (_set("duration", 0), "duration: must be greater than 0, got 0"),
        (_set("faults.0.start", -1), "faults.0.start: must be at least 0, got -1"),
        (_set("channels.0.timeout", -2), "channels.0.timeout: must be greater than 0, got -2"),
        # other field errors, in the same plain words
        (
            _set("agents.0.role", "clent"),
            "agents.0.role: unknown role 'clent'; did you mean 'client'? (roles: client, "
            "service, broker, orchestrator, worker, registry, llm, or one a plugin module "
            "registers: --plugin MODULE)",
        ),
        (_set("agents.1.workers", "many"), "agents.1.workers: must be an integer, got 'many'"),
        (_set("agents.1.workers", 0), "agents.1.workers: must be at least 1, got 0"),
        (
            _set("name", "my run"),
            "name: must use only letters, digits, '_', '.' and '-', got 'my run'",
        ),
        (
            _set("agents.1.service_time", {"dist": "gamma", "mean": 1}),
            "agents.1.service_time: unknown dist 'gamma'; expected one of 'constant', "
            "'uniform', 'normal', 'exponential', 'lognormal', 'pareto'",
        ),
        (
            _set("agents.1.service_time", {"mean": 1}),
            "agents.1.service_time: 'dist' is missing; expected one of 'constant', "
            "'uniform', 'normal', 'exponential', 'lognormal', 'pareto'",
        ),
        (
            _set("agents.1.service_time", {"dist": "lognormal", "mean": 1, "p99": 0.5}),
            "agents.1.service_time.p99: must be greater than mean (1), got 0.5",
        ),
        (
            _set("agents.1.service_time", {"dist": "lognormal", "mean": 1, "p99": 20}),
            "agents.1.service_time.p99: can be at most 14.97 times the mean for a lognormal, "
            "got 20.00 times",
        ),
        (
            _set("faults.0.kind", "meteor"),
            "faults.0: unknown kind 'meteor'; expected one of 'latency', 'loss', 'duplicate', "
            "'partition', 'crash', 'pause', 'error', 'overload', 'overloaded', 'poison', 'breaker'",
        ),
        (_set("faults.0.targets", []), "faults.0.targets: must list at least 1 item"),
        (_set("agents", []), "agents: must list at least 1 item"),
        (_set("workload", "lots"), "workload: must be a list, got 'lots'"),
        (
            _set("network.links.0.symmetric", "maybe"),
            "network.links.0.symmetric: must be true or false, got 'maybe'",
        ),
    ],
)
def test_each_problem_has_its_exact_sentence(tmp_path, edit, message):
    data = base()
    edit(data)
    assert only_problem(data, tmp_path) == message


def test_every_problem_of_a_file_is_reported_in_file_order(tmp_path, capsys):
    data = base()
    data["duration"] = -1
    data["agents"][1]["workers"] = 0
    data["agents"][1]["calls"] = ["dbb"]
    data["channels"][0]["to"] = "apii"
    data["network"]["default"]["loss"] = 7
    # pydantic skips a model's own checks when one of its fields is invalid; the window
    # is still reported.
    data["workload"][0].update(start=9, end=3, arrivals={"kind": "poissn", "rate": 1})
    data["faults"][0]["end"] = 1
    data["faults"][1]["probability"] = -1
    path = tmp_path / "many.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert cli.main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}: duration: must be greater than 0, got -1",
        f"{path}: agents.1.workers: must be at least 1, got 0",
        f"{path}: agents.1.calls.0: unknown agent 'dbb'",
        f"{path}: channels.0.to: unknown agent 'apii'",
        f"{path}: network.default.loss: must be between 0 and 1, got 7",
        f"{path}: workload.0.arrivals: unknown kind 'poissn'; expected one of 'poisson', "
        "'constant', 'bursts', 'ramp', 'spike'",
        f"{path}: workload.0.end: the workload ends at 3, before it starts at 9",
        f"{path}: faults.0.end: the fault window ends at 1, before it starts at 10",
        f"{path}: faults.1.probability: must be between 0 and 1, got -1",
    ]


def test_validate_lists_valid_and_invalid_files(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    data = base()
    data["seed"] = -3
    bad.write_text(json.dumps(data))
    assert cli.main(["validate", "basic", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == f"{loading.builtin_path('basic')}: valid (2 agents, 1 workloads, 0 faults)\n"
    assert err == f"{bad}: seed: must be at least 0, got -3\n"
    assert cli.main(["validate", "basic"]) == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "the scenario is empty; it needs at least name, duration and agents"),
        (
            [1, 2],
            "the scenario must be a mapping of sections (name, duration, agents, ...), not a list",
        ),
        (
            "hello",
            "the scenario must be a mapping of sections (name, duration, agents, ...), "
            "not the single value 'hello'",
        ),
    ],
)
def test_a_file_that_is_not_a_scenario(tmp_path, data, message):
    assert only_problem(data, tmp_path) == message


def test_model_checks_hold_without_the_loader():
    # The same sentences when a Scenario is built in Python (a notebook).
    with pytest.raises(ValueError, match="the fault window ends at 1, before it starts at 2"):
        sc.CrashFault(targets=["a"], start=2, end=1)
    with pytest.raises(ValueError, match="must be at least low"):
        Uniform(low=2, high=1)


def test_valid_values_at_the_edges_pass(tmp_path):
    data = base()
    data["network"]["default"].update(loss=1, duplicate=0)
    data["faults"][0].update(start=10, end=10)  # an empty window is allowed
    data["network"]["default"]["latency"] = {"dist": "constant", "value": 0}
    assert problems(data, tmp_path) == []


# --- distributions -------------------------------------------------------------------------

N = 200_000


def draws(dist: Any, n: int = N, seed: int = 7) -> list[float]:
    sample = dist.sampler(random.Random(seed))
    return [sample() for _ in range(n)]


@pytest.mark.parametrize(
    ("dist", "sd"),
    [
        (Constant(value=0.25), 0.0),
        (Uniform(low=1, high=3), 2 / math.sqrt(12)),
        (Normal(mean=5, sd=1), 1.0),
        (Exponential(mean=0.2), 0.2),
        (Lognormal(mean=0.1, p99=0.5), None),
        (Pareto(scale=1, alpha=3), math.sqrt(3 / 4)),
    ],
    ids=["constant", "uniform", "normal", "exponential", "lognormal", "pareto"],
)
def test_sample_mean_is_near_the_mean(dist, sd):
    xs = draws(dist)
    if sd is None:  # lognormal: sd from its parameters
        mu, sigma = dist.params()
        sd = math.sqrt((math.exp(sigma**2) - 1) * math.exp(2 * mu + sigma**2))
    # Five standard errors: fails for a wrong sampler, not by chance.
    assert abs(statistics.fmean(xs) - dist.mean()) <= 5 * sd / math.sqrt(N) + 1e-12
    assert min(xs) >= 0


def test_lognormal_hits_its_p99():
    dist = Lognormal(mean=0.1, p99=0.5)
    xs = sorted(draws(dist))
    p99 = xs[int(0.99 * N)]
    # The empirical p99 of 200,000 draws is within about 2% of the true one.
    assert p99 == pytest.approx(0.5, rel=0.03)
    assert statistics.fmean(x > 0.5 for x in xs) == pytest.approx(0.01, abs=0.0015)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    mean=st.floats(1e-4, 1e3),
    ratio=st.floats(1.0001, 14.9),
)
def test_lognormal_parameters_give_back_mean_and_p99(mean, ratio):
    dist = Lognormal(mean=mean, p99=mean * ratio)
    mu, sigma = dist.params()
    assert math.exp(mu + sigma**2 / 2) == pytest.approx(mean, rel=1e-9)
    assert math.exp(mu + Z99 * sigma) == pytest.approx(mean * ratio, rel=1e-9)


def test_normal_is_truncated_at_zero():
    dist = Normal(mean=0.1, sd=0.5)
    xs = draws(dist, n=50_000)
    # 42% of the draws are negative: drawn again, not clamped to 0.
    assert min(xs) > 0.0
    assert statistics.fmean(xs) == pytest.approx(dist.mean(), rel=0.02)
    assert dist.mean() == pytest.approx(0.4375, abs=1e-3)


@settings(derandomize=True, max_examples=100, deadline=None)
@given(
    dist=st.one_of(
        st.builds(Normal, mean=st.floats(0, 10), sd=st.floats(0, 10)),
        st.builds(Exponential, mean=st.floats(1e-3, 10)),
        st.builds(Pareto, scale=st.floats(1e-3, 10), alpha=st.floats(0.5, 5)),
        st.floats(1e-3, 10).flatmap(
            lambda m: st.builds(Lognormal, mean=st.just(m), p99=st.floats(m * 1.01, m * 14))
        ),
    ),
    seed=st.integers(0, 2**32),
)
def test_no_distribution_draws_a_negative_time(dist, seed):
    assert min(draws(dist, n=200, seed=seed)) >= 0


def test_same_stream_same_draws():
    dist = Lognormal(mean=1, p99=5)
    assert draws(dist, n=10, seed=3) == draws(dist, n=10, seed=3)
    assert draws(dist, n=10, seed=3) != draws(dist, n=10, seed=4)


# --- arrivals ------------------------------------------------------------------------------


def times(
    model: Any, start: float = 0.0, end: float = 1000.0, seed: int = 11, since: float | None = None
) -> list[float]:
    out = list(arrival_times(model, random.Random(seed), start, end, since))
    assert out == sorted(out)
    first = start if since is None else max(start, since)
    assert all(first <= t < end for t in out)
    return out


def near_poisson(count: int, expected: float) -> bool:
    """Within five standard deviations of a Poisson count."""
    return abs(count - expected) <= 5 * math.sqrt(expected)


def test_poisson_count_is_near_rate_times_duration():
    ts = times(sc.Poisson(rate=20), 0, 1000)
    assert near_poisson(len(ts), 20_000)
    gaps = [b - a for a, b in itertools.pairwise(ts)]
    # Exponential gaps: mean 1/rate and P(gap > mean) = e^-1.
    assert statistics.fmean(gaps) == pytest.approx(0.05, rel=0.04)
    assert statistics.fmean(g > 0.05 for g in gaps) == pytest.approx(math.exp(-1), abs=0.02)


@pytest.mark.parametrize(
    ("rate", "start", "end", "count"),
    [(4, 0, 10, 40), (49, 0, 1, 49), (3, 0.1, 7.1, 21), (10, 2, 3, 10), (0.3, 0, 10, 3)],
)
def test_constant_rate_gives_the_exact_count(rate, start, end, count):
    ts = times(sc.ConstantRate(rate=rate), start, end)
    assert len(ts) == count
    assert ts[0] == start
    assert all(b - a == pytest.approx(1 / rate) for a, b in itertools.pairwise(ts))


def test_bursts_arrive_all_at_once():
    ts = times(sc.Bursts(size=7, every=10), 0, 100)
    assert len(ts) == 70
    assert sorted(set(ts)) == [10.0 * k for k in range(10)]
    assert all(ts.count(t) == 7 for t in set(ts))


def test_bursts_over_a_background():
    ts = times(sc.Bursts(size=50, every=100, rate=2), 0, 1000)
    bursts = [t for t in set(ts) if ts.count(t) >= 50]
    assert sorted(bursts) == [100.0 * k for k in range(10)]
    assert near_poisson(len(ts) - 500, 2 * 1000)


def test_ramp_rate_grows_linearly():
    # Rate t at time t, from 0 to 100 over [0, 100): 1,250 expected in the first half,
    # 3,750 in the second.
    ts = times(sc.Ramp(start_rate=0, end_rate=100), 0, 100)
    first = sum(t < 50 for t in ts)
    assert near_poisson(first, 1250)
    assert near_poisson(len(ts) - first, 3750)
    # The ramp is relative to the window, not to time zero.
    shifted = times(sc.Ramp(start_rate=0, end_rate=100), 1000, 1100)
    assert near_poisson(sum(t < 1050 for t in shifted), 1250)


def test_ramp_down():
    ts = times(sc.Ramp(start_rate=40, end_rate=0), 0, 100)
    assert near_poisson(sum(t < 50 for t in ts), 1500)
    assert near_poisson(sum(t >= 50 for t in ts), 500)


def test_spike_rate_inside_and_outside_its_window():
    ts = times(sc.Spike(rate=5, spike_rate=50, spike_start=200, spike_end=300), 0, 1000)
    inside = sum(200 <= t < 300 for t in ts)
    assert near_poisson(inside, 50 * 100)
    assert near_poisson(len(ts) - inside, 5 * 900)


def test_arrivals_are_reproducible_per_stream():
    model = sc.Poisson(rate=3)
    assert times(model, seed=1) == times(model, seed=1)
    assert times(model, seed=1) != times(model, seed=2)


def test_empty_window_has_no_arrivals():
    for model in (sc.Poisson(rate=5), sc.ConstantRate(rate=5), sc.Bursts(size=3, every=1)):
        assert times(model, 10, 10) == []


def test_resuming_keeps_the_phase_of_regular_arrivals():
    # A client that restarts at `since` goes on with the same schedule, not a new one.
    for model in (sc.ConstantRate(rate=4), sc.Bursts(size=3, every=0.7)):
        whole = times(model, 1, 11)
        assert times(model, 1, 11, since=3.1) == [t for t in whole if t >= 3.1]
        assert times(model, 1, 11, since=0) == whole


def test_resuming_a_ramp_goes_on_from_the_rate_reached():
    # Rate t over [0, 100): from 50 on, 3,750 arrivals are expected; a ramp restarted
    # at 50 (0 to 100 over the last 50 s) would give 2,500.
    ts = times(sc.Ramp(start_rate=0, end_rate=100), 0, 100, since=50)
    assert near_poisson(len(ts), 3750)


INFINITE_TEXT = """\
name: endless
duration: .inf
agents:
  - {id: c, role: client}
  - {id: s, service_time: {dist: exponential, mean: .nan}}
workload:
  - {from: c, to: s, arrivals: {kind: poisson, rate: .inf}}
"""


def test_every_number_in_a_scenario_is_finite() -> None:
    # `.inf` passed every bound (infinity is >= 0) and the run never ended.
    with pytest.raises(ScenarioError) as err:
        loading.from_text(INFINITE_TEXT, "endless.yaml")
    assert err.value.lines == [
        "endless.yaml: duration: must be a finite number, got inf",
        "endless.yaml: agents.1.service_time.mean: must be a finite number, got nan",
        "endless.yaml: workload.0.arrivals.rate: must be a finite number, got inf",
    ]
    # A string that would only become infinite when read as a number: a string where a
    # number belongs is refused as such, once.
    text = INFINITE_TEXT.replace(".inf", "'inf'").replace("mean: .nan", "mean: 1")
    with pytest.raises(ScenarioError) as err:
        loading.from_text(text, "endless.yaml")
    assert err.value.lines == [
        "endless.yaml: duration: must be a number, got the string 'inf' (write it unquoted)",
        "endless.yaml: workload.0.arrivals.rate: must be a number, got the string 'inf' "
        "(write it unquoted)",
    ]


def test_the_cli_refuses_an_endless_scenario_in_one_sentence_per_number(tmp_path: Path) -> None:
    path = tmp_path / "endless.yaml"
    path.write_text(INFINITE_TEXT)
    done = subprocess.run(
        [sys.executable, "-m", "sim", "run", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"{path}: duration: must be a finite number, got inf" in done.stderr


def small(**extra: Any) -> dict[str, Any]:
    """A client, a service calling a store, and a broker, with `extra` sections."""
    data: dict[str, Any] = {
        "name": "small",
        "duration": 60,
        "agents": [
            {"id": "c", "role": "client"},
            {"id": "api", "calls": ["store"]},
            {"id": "store"},
            {"id": "broker", "role": "broker"},
        ],
        "workload": [{"from": "c", "to": "api", "arrivals": {"kind": "poisson", "rate": 1}}],
    }
    data.update(extra)
    return data


def refusals(data: dict[str, Any]) -> list[str]:
    """The validation problems of `data`, one sentence each (none: [])."""
    try:
        loading.validate(data, "small.yaml")
    except ScenarioError as err:
        return err.lines
    return []


def test_a_workload_aimed_at_a_client_or_a_broker_is_refused() -> None:
    workload = [
        {"from": "c", "to": "c", "arrivals": {"kind": "poisson", "rate": 1}},
        {"from": "c", "to": "broker", "arrivals": {"kind": "poisson", "rate": 1}},
    ]
    assert refusals(small(workload=workload)) == [
        "small.yaml: workload.0.to: agent 'c' is a client, so nothing would answer its "
        "requests; aim the workload at an agent that serves",
        "small.yaml: workload.1.to: agent 'broker' is a broker, so nothing would answer its "
        "requests; aim the workload at an agent that serves",
    ]


def test_a_fault_or_workload_that_starts_after_the_run_is_refused() -> None:
    faults = [{"kind": "crash", "targets": ["store"], "start": 90, "end": 100}]
    workload = [{"from": "c", "to": "api", "start": 60, "arrivals": {"kind": "poisson", "rate": 1}}]
    assert refusals(small(faults=faults, workload=workload)) == [
        "small.yaml: workload.0.start: the workload starts at 60 s, when the run has ended "
        "(duration 60 s)",
        "small.yaml: faults.0.start: the fault window starts at 90 s, when the run has ended "
        "(duration 60 s)",
    ]
    # A window that only ends after the run is fine: it lasts to the end.
    assert refusals(small(faults=[{"kind": "crash", "targets": ["store"], "start": 30}])) == []


def test_cyclic_calls_are_refused_unless_the_scenario_opts_in() -> None:
    data = small()
    data["agents"][2]["calls"] = ["api"]
    assert refusals(data) == [
        "small.yaml: agents.1.calls: the calls go round in a cycle (api -> store -> api); "
        "break it, or set allow_call_cycles: true",
    ]
    assert refusals({**data, "allow_call_cycles": True}) == []


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_huge_numbers_and_deep_nesting_get_one_sentence(tmp_path: Path, suffix: str) -> None:
    digits = "1" * 5_000
    deep = "[" * 100_000 + "]" * 100_000
    texts = {
        ".json": (f'{{"name": "x", "duration": {digits}}}', f'{{"agents": {deep}}}'),
        ".yaml": (f"name: x\nduration: {digits}\n", f"agents: {deep}\n"),
    }[suffix]
    expected = [
        "holds a number with thousands of digits, which no setting needs",
        "nested too deeply to read (a scenario is a few levels deep)",
    ]
    for text, sentence in zip(texts, expected, strict=True):
        path = tmp_path / f"odd{suffix}"
        path.write_text(text)
        done = subprocess.run(
            [sys.executable, "-m", "sim", "validate", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert done.stderr.strip() == f"{path}: {sentence}"
