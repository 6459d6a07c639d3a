"""The advisor's A2A question: for a long task, which interaction mode.

Given whether the caller's user must see progress and whether the client may go
offline for a while, it reads the `a2a-modes` sweep (each mode, with the client online
and offline) and recommends the mode that finishes the most tasks, needs no more than
the caller can give, and costs the fewest messages:

- progress must show: streaming (each chunk as it is made) or polling (what the task
  holds at each poll); blocking and push show nothing until the end;
- the client may go offline: judged on the sweep's `offline` case, where a stream must
  be subscribed to again, a poll retried, and a push sent meanwhile is lost;
- among the modes left, the highest share of tasks completed (within `tolerance` of
  the best counts as as good), then the fewest messages per task.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from sim.advisor import Advice
from sim.sweeps.stats import means

A2A_SWEEP = "a2a-modes"
# Where `python -m sim advise --a2a` keeps the built-in sweep once run (as the protocol
# advisor keeps its own under runs/sweeps).
A2A_CACHE = Path("runs") / "sweeps" / A2A_SWEEP
MODES = ("blocking", "streaming", "polling", "push")
# What the caller's user sees while the task runs, by mode.
PROGRESS = {"blocking": "nothing", "streaming": "every chunk as it is made",
            "polling": "the artifact so far at each poll", "push": "nothing"}  # fmt: skip
ROLE = {
    "blocking": "one SendMessage held open until the task ends",
    "streaming": "SendStreamingMessage, subscribed to again after a cut",
    "polling": "SendMessage returning at once, then GetTask polls",
    "push": "SendMessage returning at once, then webhook notifications",
}


class A2aNeeds(BaseModel):
    """What a long task's caller needs from its A2A mode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    progress: bool = Field(False, description="Must the user see progress while it runs?")
    offline: bool = Field(False, description="Does the client go offline for a while?")
    tolerance: float = Field(
        0.05, ge=0, le=1, description="Completed shares this close to the best count as equal."
    )


def advise_a2a(rows: pd.DataFrame, needs: A2aNeeds) -> Advice:
    """Recommend an A2A mode for `needs` from the rows of an a2a-modes sweep."""
    missing = {"mode", "connectivity"} - set(rows.columns)
    if missing:
        raise ValueError(
            "the A2A advisor needs a sweep over mode and connectivity; this one has no "
            + " or ".join(sorted(missing))
            + " axis"
        )
    table = means(rows)
    case = "offline" if needs.offline else "online"
    cell = table[table["connectivity"] == case]
    if cell.empty:
        raise ValueError(f"the sweep has no '{case}' connectivity case")
    records: list[dict[str, Any]] = []
    for mode in [m for m in MODES if m in set(cell["mode"])]:
        row = cell[cell["mode"] == mode].iloc[0]
        records.append(
            {
                "protocol": mode,  # the Advice's stack names modes here
                "completed": float(row["success_rate"]),
                "completed_ci": float(row.get("success_rate_ci", math.nan)),
                "p99": float(row["p99"]),
                "messages": float(row["amplification"]),
                "lost_rate": float(row["lost_rate"]),
                "progress": PROGRESS[mode],
                "meets_progress": not needs.progress or PROGRESS[mode] != "nothing",
            }
        )
    verdicts = pd.DataFrame.from_records(records)
    allowed = verdicts[verdicts["meets_progress"]]
    pool = allowed if not allowed.empty else verdicts
    best = float(pool["completed"].max())
    good = pool[pool["completed"] >= best - needs.tolerance - 1e-12]
    choice = good.sort_values(["messages", "completed"], ascending=[True, False], kind="stable")
    mode = str(choice["protocol"].iloc[0])
    chosen = verdicts[verdicts["protocol"] == mode].iloc[0]
    met = not allowed.empty and best > 0
    where = "with the client offline for a while" if needs.offline else "with the client online"
    headline = (
        f"Use {mode} ({ROLE[mode]}) for a long task {where}."
        if met
        else f"No mode meets every need {where}; closest: {mode}."
    )
    reasons = [
        f"{mode} completed {chosen['completed']:.0%} of tasks {where}, at "
        f"{chosen['messages']:.1f} messages per task; the user sees {chosen['progress']}."
    ]
    for other in verdicts.itertuples(index=False):
        if other.protocol == mode:
            continue
        why = (
            "shows no progress"
            if not other.meets_progress
            else (f"{other.messages:.1f} messages per task")
        )
        reasons.append(f"{other.protocol}: completed {other.completed:.0%}; {why}.")
    evidence = rows[(rows["mode"] == mode) & (rows["connectivity"] == case)]
    notes = []
    if best < 1:
        notes.append(
            f"No mode completed every task {where}: the rest failed or timed out (a cut "
            "blocking send, a push lost while offline, a task asked for while offline)."
        )
    return Advice([mode], headline, reasons, math.nan, verdicts, evidence.reset_index(drop=True),
                  met, notes)  # fmt: skip


__all__ = ["A2A_CACHE", "A2A_SWEEP", "A2aNeeds", "advise_a2a"]
