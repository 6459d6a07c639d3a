"""Golden traces: every built-in scenario, at its own seed, gives the tables it gave when
its digests were recorded, byte for byte.

A refactor or a speed-up must leave these digests alone. A deliberate change of
behaviour updates them in the same commit, with the reason in its message:

    SWITCHBOARD_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import sim
from sim.trace import run_digests

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
UPDATE = os.environ.get("SWITCHBOARD_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_builtin_scenario_matches_its_golden_digests(path: Path) -> None:
    run = sim.run(path)
    assert run.manifest["kernel"] == "fast"
    digests = run_digests(run)
    golden = GOLDEN / f"{path.stem}.json"
    if UPDATE:
        golden.write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")
    recorded = json.loads(golden.read_text())
    changed = sorted(name for name in recorded if recorded[name] != digests.get(name))
    assert not changed, f"{path.stem}: tables changed: {', '.join(changed)}"
    assert sorted(digests) == sorted(recorded), "the trace contract's tables changed"


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_plain_simpy_path_gives_identical_tables(path: Path) -> None:
    """The kernel's shortcuts into SimPy's internals change speed, never the trace."""
    plain = sim.run(path, plain_simpy=True)
    assert plain.manifest["kernel"] == "plain"
    recorded = json.loads((GOLDEN / f"{path.stem}.json").read_text())
    digests = run_digests(plain)
    changed = sorted(name for name in recorded if recorded[name] != digests.get(name))
    assert not changed, f"{path.stem}: the plain SimPy path changed {', '.join(changed)}"


def test_every_builtin_scenario_has_golden_digests() -> None:
    recorded = sorted(p.stem for p in GOLDEN.glob("*.json"))
    assert recorded == sorted(p.stem for p in SCENARIOS)
