"""Fixtures the UI tests share: runs of built-in scenarios, the tiny sweep, and the
dashboard booted under Streamlit's AppTest.

Runs and the sweep are built once per test module (each test file gets its own, as when
every file built them itself); tests copy a table before they change it.
"""

from __future__ import annotations

import os

# The suite tests the plain modules, the source of truth: some tests patch a recorder's
# methods, which a compiled (mypyc) class forbids. tests/test_compiled.py compares a
# build's traces with theirs; SWITCHBOARD_COMPILED=1 runs the suite on the build.
os.environ.setdefault("SWITCHBOARD_COMPILED", "0")

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
import yaml

import sim
from sim import Run, loading

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

    Boot = Callable[..., AppTest]

APP = Path(__file__).resolve().parent.parent / "app.py"
TIMEOUT = 60  # seconds per script run: a cold first run imports pandas and pyarrow
TINY_LOADS = [0.5, 0.9]  # the tiny sweep's offered loads, as shares of capacity


# --- runs of built-in scenarios ------------------------------------------------------


@pytest.fixture(scope="module")
def chain() -> Run:
    """timeout-chain: A calls B calls C; C slows down from 30 s to 60 s, so timeouts
    cascade."""
    return sim.run("timeout-chain")


@pytest.fixture(scope="module")
def partition() -> Run:
    """fault-partition: the API is cut off from its store from 20 s to 35 s."""
    return sim.run("fault-partition")


@pytest.fixture(scope="module")
def loss() -> Run:
    """fault-loss: 10% of client <-> API messages lost from 15 s to 45 s."""
    return sim.run("fault-loss")


# --- the tiny sweep ------------------------------------------------------------------


def tiny_sweep_spec(folder: Path, name: str = "tiny", duration: float = 30) -> dict[str, Any]:
    """A sweep of request-response cut to `duration` seconds: http and queue at 50% and
    90% of capacity, on a clean network and with a 10 s partition, 2 replications (16
    runs, a couple of seconds in one process). The scenario file is written to `folder`."""
    data = loading.read_data(loading.builtin_path("request-response"))
    data["duration"] = duration
    folder.mkdir(parents=True, exist_ok=True)
    scenario = folder / "request-response-short.yaml"
    scenario.write_text(yaml.safe_dump(data), encoding="utf-8")
    partition = {"kind": "partition", "groups": [["api"], ["client", "broker"]]}
    return {
        "name": name,
        "description": "request-response, short: http and queue, with and without a partition.",
        "scenario": str(scenario),
        "seed": 1,
        "replications": 2,
        "axes": [
            {"name": "protocol", "path": "channels.0.protocol", "values": ["http", "queue"]},
            {
                "name": "load",
                "path": "workload.0.arrivals.rate",
                "values": TINY_LOADS,
                "scale": 40,
            },
            {
                "name": "faults",
                "cases": {
                    "none": {},
                    "partition": {"faults": [{**partition, "start": 10, "end": 20}]},
                },
            },
        ],
    }


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny sweep's spec (its scenario file in a temporary folder)."""
    return tiny_sweep_spec(tmp_path_factory.mktemp("scenario"))


@pytest.fixture(scope="module")
def tiny_rows(tiny_spec: dict[str, Any]) -> pd.DataFrame:
    """The tiny sweep's rows: http and queue x 2 loads x 2 fault cases x 2 replications."""
    return sim.sweep(tiny_spec, workers=1)


# --- the dashboard under AppTest -----------------------------------------------------


def boot_app(page: str | None = None, run: Run | None = None, **session: object) -> AppTest:
    """The app after its first run, on `page` (a key of `ui.state.PAGES`) when given,
    with `run` on screen (else the default run) and `session` in session state before
    the first run; asserts that no script raised."""
    # Imported here: the simulator's tests, which share this file, never load Streamlit.
    from streamlit.testing.v1 import AppTest

    from ui import state

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for name, value in session.items():
        at.session_state[name] = value
    if run is not None:
        at.session_state["run"] = run
    at.run()
    if page is not None:
        at.switch_page(state.PAGES[page]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def boot() -> Boot:
    """`boot(page=None, run=None, **session)`: the dashboard booted under AppTest (see
    `boot_app`)."""
    return boot_app
