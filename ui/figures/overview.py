"""The overview of a whole run that scales: per agent, messages sent and failures over
time, as two heatmaps of fixed size whatever the run's size (a 1,000,000-message run
bins in a fraction of a second). Dragging a box on it picks Replay's window: an
invisible grid of points, one per cell, makes the box selectable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ui.figures.common import base_layout, time_axis_title

BINS = 240  # time columns: about one per 4 px on a normal screen
PICKER = "window picker"  # the invisible trace a box selection reads


def binned(
    times: np.ndarray, lanes: np.ndarray, lane_count: int, duration: float, bins: int = BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Counts per (lane, time bin) and the bins' edges: a `lane_count x bins` array."""
    edges = np.linspace(0.0, max(float(duration), 1e-9), bins + 1)
    ok = np.isfinite(times) & (lanes >= 0)
    grid, _, _ = np.histogram2d(
        lanes[ok].astype(float),
        np.clip(times[ok], 0.0, edges[-1]),
        bins=(np.arange(lane_count + 1) - 0.5, edges),
    )
    return grid, edges


def overview(
    messages: pd.DataFrame,
    failures: pd.DataFrame,
    agents: Sequence[str],
    duration: float,
    *,
    window: tuple[float, float] | None = None,
    bins: int = BINS,
) -> go.Figure:
    """Messages sent per agent per time bin (top, blues) and failures there (bottom,
    reds; `failures` from `failures.failure_events`), Replay's `window` outlined."""
    lanes = list(agents)
    index = {a: i for i, a in enumerate(lanes)}
    sent = messages["src"].map(index).fillna(-1).to_numpy(dtype=int)
    traffic, edges = binned(
        messages["sent_at"].to_numpy(dtype=float), sent, len(lanes), duration, bins
    )
    where = failures["agent"].map(index).fillna(-1).to_numpy(dtype=int)
    failed, _ = binned(failures["time"].to_numpy(dtype=float), where, len(lanes), duration, bins)
    centres = (edges[:-1] + edges[1:]) / 2
    width = float(edges[1] - edges[0])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    for row, grid, scale, what in (
        (1, traffic, "Blues", "messages sent"),
        (2, failed, "Reds", "failures"),
    ):
        fig.add_trace(
            go.Heatmap(
                z=np.log1p(grid),  # a burst should not wash out the rest of the run
                x=centres,
                y=lanes,
                customdata=grid,
                colorscale=scale,
                showscale=False,
                hovertemplate=f"%{{y}}: %{{customdata:,.0f}} {what} around %{{x:.1f}} s"
                "<extra></extra>",
                name=what,
                xgap=0,
                ygap=1,
            ),
            row=row,
            col=1,
        )
        # One transparent point per cell: a box dragged over the heatmap selects them.
        xs, ys = np.meshgrid(centres, lanes)
        fig.add_trace(
            go.Scatter(
                x=xs.ravel(),
                y=ys.ravel(),
                mode="markers",
                marker={"size": 6, "opacity": 0},
                hoverinfo="skip",
                showlegend=False,
                name=PICKER,
                customdata=np.full(xs.size, width),
            ),
            row=row,
            col=1,
        )
    if window is not None:
        for row in (1, 2):
            fig.add_vrect(
                x0=window[0],
                x1=window[1],
                line={"color": "#111", "width": 1.5},
                fillcolor="rgba(0,0,0,0)",
                row=row,  # type: ignore[arg-type]
                col=1,  # type: ignore[arg-type]
            )
    height = 120 + 2 * max(60, 16 * len(lanes))
    base_layout(fig, height=height)
    fig.update_layout(
        dragmode="select", selectdirection="h", margin={"t": 30, "b": 40}, showlegend=False
    )
    fig.update_xaxes(range=[0, duration])
    fig.update_xaxes(title=time_axis_title(), row=2, col=1)
    fig.update_yaxes(title="sent", autorange="reversed", row=1, col=1, fixedrange=True)
    fig.update_yaxes(title="failures", autorange="reversed", row=2, col=1, fixedrange=True)
    return fig


def selected_range(points: Sequence[dict[str, object]]) -> tuple[float, float] | None:
    """The time range a box selection on the overview covers (whole cells), or None."""
    xs = [float(p["x"]) for p in points if isinstance(p.get("x"), int | float)]  # type: ignore[arg-type]
    if not xs:
        return None
    half = 0.0
    for p in points:
        value = p.get("customdata")
        if isinstance(value, int | float):
            half = float(value) / 2
            break
    return max(0.0, min(xs) - half), max(xs) + half


def jumps(
    failures: pd.DataFrame, faults: pd.DataFrame, breakers: pd.DataFrame
) -> dict[str, np.ndarray]:
    """The times Replay can jump to, sorted: every failure, every fault window's start,
    every breaker opening."""
    opened = (
        breakers[breakers["to_state"].isin(["OPEN", "FORCED_OPEN"])] if len(breakers) else breakers
    )
    return {
        "failure": np.sort(failures["time"].to_numpy(dtype=float)),
        "fault": np.sort(faults["start"].to_numpy(dtype=float)) if len(faults) else np.array([]),
        "breaker opening": np.sort(opened["time"].to_numpy(dtype=float))
        if len(opened)
        else np.array([]),
    }


def next_after(times: np.ndarray, after: float) -> float | None:
    """The first of the sorted `times` strictly after `after` (by more than a
    microsecond), or None."""
    i = int(np.searchsorted(times, after + 1e-6, side="right"))
    return float(times[i]) if i < len(times) else None
