"""Queues over time: depth, in flight and dead-letter depth per queue, and the DLQ's
messages.

`queues` holds periodic samples of every queue: a service's worker queue
(`<agent>.workers`) and a broker's queues (`<queue>`, its dead-letter queue
`<queue>.dlq`). A `.dlq` queue's own depth is drawn with the dead-letter depths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ui.figures.common import (
    EXTRA_COLORS,
    add_fault_bands,
    base_layout,
    empty_figure,
    scatter_class,
    time_axis_title,
)

PANELS = (  # (column, y-axis title): axis titles, not subplot titles, which would
    # collide with the fault bands' labels above the plot
    ("depth", "waiting"),
    ("in_flight", "in flight"),
    ("dlq_depth", "in the DLQ"),
)
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    *EXTRA_COLORS,
)

DLQ_COLUMNS = [
    "seq",
    "msg_id",
    "type",
    "src",
    "dst",
    "correlation_id",
    "attempt",
    "sent_at",
    "ended_at",
    "reason",
]


def is_dlq(name: str) -> bool:
    """True for a dead-letter queue's own samples (`<queue>.dlq`)."""
    return name.endswith(".dlq")


def queues_figure(
    queues: pd.DataFrame,
    duration: float,
    faults: pd.DataFrame | None = None,
    *,
    names: Sequence[str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Stacked panels sharing the time axis: depth, in flight, and DLQ depth when any
    queue has dead letters.

    One line per queue with the same colour in every panel (one legend entry). A
    `.dlq` queue's depth goes in the DLQ panel. `names` limits the queues drawn.
    WebGL past 10k points. Fault windows shaded.
    """
    table = queues if not names else queues[queues["queue"].isin(list(names))]
    if table.empty:
        return empty_figure("No queue samples in this run.")
    ordered = table.sort_values(["queue", "time"], kind="stable")
    queue_names = list(dict.fromkeys(ordered["queue"]))
    trace_type = scatter_class(3 * len(ordered))
    panels = PANELS if _has_dead_letters(ordered, queue_names) else PANELS[:2]
    fig = make_subplots(
        rows=len(panels),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
    )
    for k, name in enumerate(queue_names):
        rows = ordered[ordered["queue"] == name]
        lines = _queue_lines(rows, name, PALETTE[k % len(PALETTE)], panels, trace_type)
        for row, line in lines:
            fig.add_trace(line, row=row, col=1)
    add_fault_bands(fig, faults, duration)
    base_layout(fig, height=220 + 180 * len(panels), title=title)
    fig.update_xaxes(range=[0, duration])
    fig.update_xaxes(title=time_axis_title(), row=len(panels), col=1)
    fig.update_yaxes(rangemode="tozero")
    for row, (_, label) in enumerate(panels, start=1):
        fig.update_yaxes(title=label, row=row, col=1)
    return fig


def _has_dead_letters(samples: pd.DataFrame, queue_names: list[str]) -> bool:
    """True when some queue is a DLQ or reports dead letters."""
    # The DLQ panel only when some queue has dead letters: an empty third panel reads
    # as a broken chart.
    return any(is_dlq(n) for n in queue_names) or bool(
        "dlq_depth" in samples.columns and samples["dlq_depth"].any()
    )


def _panel_values(rows: pd.DataFrame, name: str, column: str) -> pd.Series | None:
    """What one queue's samples draw in the panel of `column`, or None when nothing: a
    DLQ's own depth goes in the DLQ panel only, and a queue without dead letters stays
    out of it."""
    if is_dlq(name):
        return rows["depth"] if column == "dlq_depth" else None
    values = rows[column] if column in rows.columns else None
    if values is None or (column == "dlq_depth" and not values.any()):
        return None
    return values


def _queue_lines(
    rows: pd.DataFrame,
    name: str,
    color: str,
    panels: Sequence[tuple[str, str]],
    trace_type: type[go.Scatter] | type[go.Scattergl],
) -> list[tuple[int, go.Scatter | go.Scattergl]]:
    """One queue's lines as (panel row, trace); only the first is in the legend."""
    lines: list[tuple[int, go.Scatter | go.Scattergl]] = []
    for row, (column, _) in enumerate(panels, start=1):
        values = _panel_values(rows, name, column)
        if values is None:
            continue
        line = trace_type(
            x=rows["time"].to_numpy(dtype=float),
            y=values.to_numpy(dtype=float),
            mode="lines",
            line={"color": color, "width": 1.5, "shape": "hv"},
            name=name,
            legendgroup=name,
            showlegend=not lines,
            hovertemplate=f"{name}: %{{y}} at %{{x:.1f}} s<extra>{column}</extra>",
        )
        lines.append((row, line))
    return lines


def busiest(queues: pd.DataFrame, n: int = 6) -> list[str]:
    """The `n` queues that held the most: by deepest backlog, then most in flight, then
    most enqueued (dead-letter queues first when they hold anything)."""
    if queues.empty:
        return []
    grouped = queues.groupby("queue", sort=True)
    rank = pd.DataFrame(
        {
            "dlq": [is_dlq(str(q)) for q in grouped.groups],
            "depth": grouped["depth"].max(),
            "in_flight": grouped["in_flight"].max() if "in_flight" in queues else 0,
            "enqueued": grouped["enqueued"].max() if "enqueued" in queues else 0,
        }
    )
    rank["dlq"] = rank["dlq"] & (rank["depth"] > 0)
    rank = rank.sort_values(
        ["dlq", "depth", "in_flight", "enqueued"], ascending=False, kind="stable"
    )
    return [str(q) for q in rank.index[:n]]


def dead_letters(messages: pd.DataFrame, spans: pd.DataFrame | None = None) -> pd.DataFrame:
    """The messages parked in a dead-letter queue: rows of `messages` with outcome
    `dead_lettered`; `attempt` is the delivery count. A `reason` column is kept when
    the run records one. With `spans`, a `handler_error` column says why the consumer's
    handler failed on its last delivery (the error of its last failed consumer span)."""
    rows = messages[messages["outcome"] == "dead_lettered"]
    out = rows[[c for c in DLQ_COLUMNS if c in rows.columns]].reset_index(drop=True)
    if spans is not None and not out.empty and "span_id" in rows.columns:
        failed = spans[(spans["kind"] == "consumer") & (spans["outcome"] != "ok")]
        last = failed.sort_values("start", kind="stable").groupby("parent_id")["error"].last()
        # A plain dict lookup: mapping through an empty Series gives float NaNs.
        errors = last.dropna().astype(str).to_dict()
        out["handler_error"] = [
            errors.get(s) or "(no failed handler recorded)" for s in rows["span_id"]
        ]
    return out


def idle_queues(queues: pd.DataFrame) -> list[str]:
    """The queues that never held, served or took a message: all their samples zero."""
    if queues.empty:
        return []
    counted = [c for c in ("depth", "in_flight", "enqueued", "dlq_depth") if c in queues]
    peak = queues.groupby("queue", sort=True)[counted].max().sum(axis=1)
    return [str(q) for q in peak.index[peak == 0]]


def queue_totals(queues: pd.DataFrame) -> pd.DataFrame:
    """Each queue's last sample: `queue, depth, in_flight, dlq_depth, enqueued, acked,
    redelivered, dead_lettered`, plus `max_depth` over the run."""
    if queues.empty:
        return pd.DataFrame(columns=["queue", "max_depth"])
    last = queues.sort_values("time", kind="stable").groupby("queue", sort=True).tail(1)
    last = last.set_index("queue").drop(columns=["time"])
    last.insert(0, "max_depth", queues.groupby("queue")["depth"].max())
    return last.reset_index()


def topic_subscriptions(scenario: Any, queues: pd.DataFrame) -> pd.DataFrame:
    """Each topic's subscriptions with their backlog: `topic, subscription, subscriber,
    backlog` (ready and in flight at the last sample), `deepest`, `acked`,
    `redelivered` and `dead_lettered`, by topic then subscription. A subscription is a
    queue channel naming the topic (its queue, the channel's request queue); a topic
    copies each publish into every one, so one that falls behind shows here alone."""
    columns = ["topic", "subscription", "subscriber", "backlog", "deepest", "acked",
               "redelivered", "dead_lettered"]  # fmt: skip
    rows: dict[tuple[str, str], str] = {}
    for channel in getattr(scenario, "channels", None) or []:
        if getattr(channel, "protocol", "") != "queue":
            continue
        settings = scenario.queue_settings(channel)
        if settings.topic is not None:
            rows.setdefault((settings.topic, settings.requests_of(channel.dst)), channel.dst)
    if not rows:
        return pd.DataFrame(columns=columns)
    totals = queue_totals(queues).set_index("queue") if not queues.empty else pd.DataFrame()
    out = []
    for (topic, queue), agent in sorted(rows.items()):
        last = totals.loc[queue] if queue in totals.index else None

        def count(name: str, last: Any = last) -> int:
            return int(last[name]) if last is not None and name in last else 0

        out.append(
            (
                topic,
                queue,
                agent,
                count("depth") + count("in_flight"),
                count("max_depth"),
                count("acked"),
                count("redelivered"),
                count("dead_lettered"),
            )
        )
    return pd.DataFrame(out, columns=columns)
