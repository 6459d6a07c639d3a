"""`python -m sim calibrate`: distributions fitted from a trace recover the parameters that
made it, and the scenario written reproduces the trace's latency percentiles."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import yaml

import sim
from sim import cli, loading, otlp
from sim.calibrate import calibrate
from sim.fit import fit
from sim.trace import Run

TWO_TIERS = {
    "name": "two-tiers",
    "seed": 3,
    "duration": 400,
    "agents": [
        {"id": "client", "role": "client"},
        {"id": "front", "role": "service", "workers": 3, "calls": ["back"],
         "service_time": {"dist": "exponential", "mean": 0.02}},
        {"id": "back", "role": "service", "workers": 2,
         "service_time": {"dist": "lognormal", "mean": 0.03, "p99": 0.15}},
    ],
    "channels": [{"from": "client", "to": "front"}, {"from": "front", "to": "back"}],
    "network": {"default": {"latency": {"dist": "constant", "value": 0.004}}},
    "workload": [{"from": "client", "to": "front", "type": "order.place",
                  "arrivals": {"kind": "poisson", "rate": 25}}],
}  # fmt: skip


@pytest.mark.parametrize(
    ("draw", "dist", "params"),
    [
        (lambda r: r.expovariate(1 / 0.2), "exponential", {"mean": 0.2}),
        (lambda r: r.lognormvariate(-3.2, 0.6), "lognormal",
         {"mean": float(np.exp(-3.2 + 0.18)), "p99": float(np.exp(-3.2 + 2.3263 * 0.6))}),
        (lambda r: r.gauss(1.0, 0.1), "normal", {"mean": 1.0, "sd": 0.1}),
        (lambda r: 0.25, "constant", {"value": 0.25}),
    ],
)  # fmt: skip
def test_fit_recovers_known_parameters(draw, dist: str, params: dict[str, float]) -> None:
    rng = random.Random(7)
    fitted = fit([draw(rng) for _ in range(5000)])
    assert fitted.dist["dist"] == dist
    for key, value in params.items():
        assert fitted.dist[key] == pytest.approx(value, rel=0.05), key
    assert fitted.acceptable


def client_latency(run: Run, agent: str) -> np.ndarray:
    s = run.spans
    calls = s[(s["kind"] == "client") & (s["agent"] == agent) & (s["outcome"] == "ok")]
    return np.percentile((calls["end"] - calls["start"]).to_numpy(), [50, 99])


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The two-tier run, exported as OTLP and imported: calibration sees only the trace."""
    run = sim.run(loading.validate(TWO_TIERS, "two-tiers"))
    path = tmp_path_factory.mktemp("cal") / "two-tiers.otlp.json"
    return otlp.import_trace(otlp.write_otlp(run, path))


def test_calibration_recovers_the_scenario_that_made_the_trace(traced: Run) -> None:
    result = calibrate(traced)
    agents = {a["id"]: a for a in result.scenario["agents"]}
    assert agents["client"]["role"] == "client"
    assert agents["front"]["calls"] == ["back"] and "calls" not in agents["back"]
    assert (agents["front"]["workers"], agents["back"]["workers"]) == (3, 2)
    front, back = agents["front"]["service_time"], agents["back"]["service_time"]
    assert front["dist"] == "exponential" and front["mean"] == pytest.approx(0.02, rel=0.05)
    assert back["dist"] == "lognormal"
    assert back["mean"] == pytest.approx(0.03, rel=0.05)
    assert back["p99"] == pytest.approx(0.15, rel=0.10)
    assert result.service_times["front"].acceptable and result.service_times["back"].acceptable
    latency = result.scenario["network"]["default"]["latency"]
    assert latency["dist"] == "constant" and latency["value"] == pytest.approx(0.004, rel=0.10)
    ((workload),) = result.scenario["workload"]
    assert (workload["from"], workload["to"], workload["type"]) == ("client", "front",
                                                                    "order.place")  # fmt: skip
    assert workload["arrivals"]["rate"] == pytest.approx(25, rel=0.05)
    assert result.error_rates == {"back": 0.0, "front": 0.0}


def test_the_calibrated_scenario_reproduces_the_trace_percentiles(traced: Run) -> None:
    again = sim.run(loading.validate(calibrate(traced).scenario, "calibrated"))
    for caller in ("client", "front"):  # the edges client -> front and front -> back
        want, got = client_latency(traced, caller), client_latency(again, caller)
        assert got == pytest.approx(want, rel=0.10), caller


def test_cli_writes_a_scenario_that_loads(
    traced: Run, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    trace = otlp.write_jaeger(traced, tmp_path / "t.jaeger.json")
    out = tmp_path / "calibrated.yaml"
    assert cli.main(["calibrate", str(trace), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "service time back" in printed and "KS D" in printed and f"wrote {out}" in printed
    scenario = loading.validate(yaml.safe_load(out.read_text()), str(out))
    assert [a.id for a in scenario.agents] == ["client", "back", "front"]


def test_cli_refuses_a_trace_without_calls(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "op", "kind": 1,
            "startTimeUnixNano": "1000", "endTimeUnixNano": "2000"}  # fmt: skip
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}))
    assert cli.main(["calibrate", str(path), "-o", str(tmp_path / "x.yaml")]) == 2
    assert "holds no calls between services: nothing to calibrate" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()
