"""The advisor's A2A mode question, on sweep rows shaped like the a2a-modes sweep's."""

from __future__ import annotations

import pandas as pd
import pytest

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
