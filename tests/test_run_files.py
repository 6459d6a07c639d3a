"""A saved run that is not whole is refused with one sentence, never read as empty tables."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import sim
from sim.trace import run_digests
from sim.trace.run import RunFileError


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The timeout-chain scenario's run, saved once."""
    return sim.run("timeout-chain").save(tmp_path_factory.mktemp("runs") / "chain")


def damaged(saved: Path, tmp_path: Path, harm: Callable[[Path], None]) -> Path:
    """A copy of the saved run with `harm` done to it."""
    copy = Path(shutil.copytree(saved, tmp_path / "run"))
    harm(copy)
    return copy


CASES: dict[str, tuple[Callable[[Path], object], str]] = {
    "missing table": (
        lambda d: (d / "spans.parquet").unlink(),
        "has no spans.parquet: a saved run has all its tables",
    ),
    "manifest a list": (
        lambda d: (d / "run.json").write_text("[1, 2]"),
        "run.json must hold a JSON object (the run's manifest), not list",
    ),
    "manifest not json": (
        lambda d: (d / "run.json").write_text("{name: oops"),
        "run.json is not valid JSON",
    ),
    "manifest deeply nested": (
        lambda d: (d / "run.json").write_text("[" * 100_000 + "]" * 100_000),
        "run.json is not valid JSON",
    ),
    "wrong columns": (
        lambda d: pd.DataFrame({"x": [1]}).to_parquet(d / "messages.parquet"),
        "messages.parquet lacks the columns seq, msg_id",
    ),
    "not parquet": (
        lambda d: (d / "queues.parquet").write_text("hello"),
        "queues.parquet is not a readable Parquet file",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_damaged_run_is_refused_with_a_sentence(saved: Path, tmp_path: Path, case: str) -> None:
    harm, message = CASES[case]
    folder = damaged(saved, tmp_path, harm)
    with pytest.raises(RunFileError, match="^.*" + message.replace("(", r"\(").replace(")", r"\)")):
        sim.load(folder)
    done = subprocess.run(
        [sys.executable, "-m", "sim", "export", str(folder), "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert message in done.stderr


def test_a_whole_run_loads_back(saved: Path) -> None:
    assert len(sim.load(saved).spans) == len(pd.read_parquet(saved / "spans.parquet"))


def test_a_run_saved_before_a_column_was_added_loads_with_its_empty_value(
    saved: Path, tmp_path: Path
) -> None:
    # Runs saved before spans gained `lost_events` (SSE streams' lost events) still load:
    # no span of theirs was known to have lost any, which the recorder writes as -1.
    def older(d: Path) -> None:
        spans = pd.read_parquet(d / "spans.parquet")
        spans.drop(columns="lost_events").to_parquet(d / "spans.parquet")

    run = sim.load(damaged(saved, tmp_path, older))
    assert (run.spans["lost_events"] == -1).all()
    assert run.spans.equals(sim.load(saved).spans)


def test_a_run_saved_before_spans_had_tokens_and_cost_loads_with_none(
    saved: Path, tmp_path: Path
) -> None:
    # Runs saved before spans gained a model call's tokens and cost: none of their spans
    # was a model call (-1, -1, NaN), and their digests are what they were.
    def older(d: Path) -> None:
        spans = pd.read_parquet(d / "spans.parquet")
        spans.drop(columns=["input_tokens", "output_tokens", "cost"]).to_parquet(
            d / "spans.parquet"
        )

    run = sim.load(damaged(saved, tmp_path, older))
    assert (run.spans[["input_tokens", "output_tokens"]] == -1).all().all()
    assert run.spans["cost"].isna().all()
    assert run.spans.equals(sim.load(saved).spans)
    assert run_digests(run) == run_digests(sim.load(saved))
