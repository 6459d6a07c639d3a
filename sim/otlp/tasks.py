"""The `tasks` table in OTLP: each task state change as a span event, and back.

A row of `tasks` (an A2A task's transition) becomes an event named `a2a.task.state` on
the span serving the task (the row's `span_id`), at the row's time, with attributes
`a2a.task.id`, `a2a.task.state` (the new state), `a2a.task.previous_state` and
`switchboard.reason`. Span events rather than spans: a transition is an instant in the
life of the request that its server span already covers, and OTel's exception and
retry events are recorded the same way. Import reads them back into the table.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from sim.otlp.common import NANOS
from sim.trace.schema import TASK_COLUMNS, conform

EVENT = "a2a.task.state"

# (time, name, attributes) of a span's events, as the exporter collects them.
SpanEvent = tuple[float, str, dict[str, Any]]


def task_events(tasks: pd.DataFrame) -> dict[str, list[SpanEvent]]:
    """The span events of the task transitions, by the span id they belong on."""
    out: dict[str, list[SpanEvent]] = {}
    columns = (tasks[c].tolist() for c in ("span_id", "time", "task_id", "from_state",
                                            "to_state", "reason", "agent"))  # fmt: skip
    for span, time, task, src, dst, reason, agent in zip(*columns, strict=True):
        attrs = {
            "a2a.task.id": task,
            "a2a.task.state": dst,
            "a2a.task.previous_state": src,
            "switchboard.reason": reason,
            "switchboard.agent": agent,
        }
        out.setdefault(str(span), []).append((float(time), EVENT, attrs))
    return out


def tasks_table(spans: list[Any], origin: int) -> pd.DataFrame:
    """The `tasks` table of imported spans (each with `task_events`, `span_id`, `agent`,
    `correlation_id`), times counted from `origin` (ns), in time order."""
    rows = []
    for span in spans:
        for nanos, a in span.task_events:
            rows.append(
                {
                    "time": (nanos - origin) / NANOS,
                    "task_id": str(a.get("a2a.task.id", "")),
                    "agent": str(a.get("switchboard.agent") or span.agent),
                    "from_state": str(a.get("a2a.task.previous_state", "")),
                    "to_state": str(a.get("a2a.task.state", "")),
                    "reason": str(a.get("switchboard.reason", "")),
                    "span_id": span.span_id,
                    "correlation_id": span.correlation_id,
                }
            )
    table = pd.DataFrame(rows, columns=TASK_COLUMNS)
    return conform("tasks", table.sort_values("time", kind="stable").reset_index(drop=True))
