"""The advisor's A2A mode question, on sweep rows shaped like the a2a-modes sweep's."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sim import cli
from sim import sweeps as sw
from sim.advisor_a2a import A2aNeeds, advise_a2a
from sim.sweeps.spec import load_spec

# (mode, connectivity): (completed share, messages per task), two replications alike.
CELLS = {
    ("blocking", "online"): (0.0, 2.5), ("blocking", "offline"): (0.0, 2.2),
    ("streaming", "online"): (1.0, 26.0), ("streaming", "offline"): (0.8, 26.0),
    ("polling", "online"): (1.0, 63.0), ("polling", "offline"): (0.8, 48.5),
    ("push", "online"): (1.0, 6.8), ("push", "offline"): (0.65, 5.0),
}  # fmt: skip


def rows() -> pd.DataFrame:
    records = []
    for (mode, connectivity), (done, messages) in CELLS.items():
        for replication in (0, 1):
            records.append({
                "mode": mode, "connectivity": connectivity, "replication": replication,
                "seed": replication, "requests": 10.0, "success_rate": done, "p99": 330.0,
                "amplification": messages, "lost_rate": 0.0, "error": "",
            })  # fmt: skip
    frame = pd.DataFrame.from_records(records)
    frame.attrs["sweep"] = {"axes": [{"name": "mode"}, {"name": "connectivity"}]}
    return frame


@pytest.mark.parametrize(
    ("needs", "mode"),
    [
        (A2aNeeds(), "push"),  # every mode but blocking finishes; push is cheapest
        (A2aNeeds(progress=True), "streaming"),  # push shows nothing; streaming < polling
        (A2aNeeds(offline=True), "streaming"),  # push loses what it sends while offline
        (A2aNeeds(offline=True, progress=True), "streaming"),
    ],
)
def test_the_advisor_picks_the_mode_for_the_needs(needs: A2aNeeds, mode: str) -> None:
    advice = advise_a2a(rows(), needs)
    assert advice.stack == [mode]
    assert advice.met
    assert mode in advice.headline
    assert len(advice.verdicts) == 4


def test_the_advisor_says_what_each_mode_costs() -> None:
    advice = advise_a2a(rows(), A2aNeeds(progress=True))
    assert advice.reasons[0].startswith("streaming completed 100% of tasks")
    assert "push: completed 100%; shows no progress." in advice.reasons


def test_the_advisor_needs_mode_and_connectivity_axes() -> None:
    with pytest.raises(ValueError, match="mode and connectivity"):
        advise_a2a(rows().drop(columns="connectivity"), A2aNeeds())


def test_the_builtin_a2a_modes_sweep_has_the_axes_the_advisor_reads() -> None:
    spec = load_spec("a2a-modes")
    assert [axis.name for axis in spec.axes] == ["mode", "connectivity"]


# -- python -m sim advise --a2a ---------------------------------------------------------


def advise(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    """Run `python -m sim advise` in-process; its standard output's lines (standard error
    holds at most the progress bar of a sweep it runs)."""
    assert cli.main(["advise", *args]) == 0
    out, err = capsys.readouterr()
    assert "error" not in err
    return out.splitlines()


def test_advise_a2a_on_a_saved_sweep_answers_for_the_clients_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sw.save(rows(), tmp_path / "saved")
    lines = advise(capsys, "--a2a", "--offline", "--sweep", str(tmp_path / "saved"))
    assert lines[0] == (
        "Use streaming (SendStreamingMessage, subscribed to again after a cut) for a long "
        "task with the client offline for a while."
    )
    assert "  - push: completed 65%; 5.0 messages per task." in lines
    at = lines.index("evidence with the client offline for a while (means over replications):")
    table = [line.split() for line in lines[at + 1 : at + 6]]
    assert table[0][:4] == ["mode", "completed", "p99", "s"]
    assert [row[:2] for row in table[1:]] == [
        ["blocking", "0%"], ["streaming", "80%"], ["polling", "80%"], ["push", "65%"],
    ]  # fmt: skip
    assert lines[-1] == "2 sweep rows behind the recommendation"
    progress = advise(capsys, "--a2a", "--progress", "--sweep", str(tmp_path / "saved"))
    assert progress[0].startswith("Use streaming (")
    assert advise(capsys, "--a2a", "--sweep", str(tmp_path / "saved"))[0].startswith("Use push (")


def test_advise_a2a_runs_the_builtin_sweep_once_and_then_reads_its_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    first = advise(capsys, "--a2a", "--offline", "--workers", "1")
    assert (tmp_path / "runs" / "sweeps" / "a2a-modes" / "sweep.json").is_file()
    # The built-in sweep's numbers: offline, push loses what it sends meanwhile.
    assert first[0].startswith("Use streaming (")
    assert "  - push: completed 65%; 5.2 messages per task." in first

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the cached sweep should have been read, not run again")

    monkeypatch.setattr("sim.sweeps.store.sweep", never)
    assert advise(capsys, "--a2a", "--offline") == first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--offline"],
            "--offline is a need of the A2A question: add --a2a to ask which A2A mode suits "
            "a long task",
        ),
        (
            ["--progress", "--offline", "--p99", "1s"],
            "--progress and --offline are needs of the A2A question: add --a2a to ask which "
            "A2A mode suits a long task",
        ),
        (
            ["--a2a", "--fan-out", "--load", "0.5"],
            "--a2a asks which A2A mode suits a long task; --fan-out, --load belong to the "
            "protocol question (its needs are --progress and --offline)",
        ),
    ],
)
def test_advise_a2a_flags_out_of_place_are_one_sentence(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert cli.main(["advise", *args]) == 2
    assert capsys.readouterr() == ("", f"error: {message}\n")


def test_advise_a2a_on_a_sweep_without_modes_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flat = rows().drop(columns="connectivity")
    flat.attrs["sweep"] = {"axes": [{"name": "mode"}]}
    sw.save(flat, tmp_path / "flat")
    assert cli.main(["advise", "--a2a", "--sweep", str(tmp_path / "flat")]) == 2
    assert capsys.readouterr() == (
        "",
        "error: the A2A advisor needs a sweep over mode and connectivity; this one has no "
        "connectivity axis\n",
    )
