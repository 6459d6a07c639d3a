"""The overview of a whole run that scales: messages and failures over time, per agent
or per link (sender -> receiver), as two heatmaps of fixed size whatever the run's size.

The counts are binned once per run (`by_agent`, `by_link`: a 1,000,000-message run bins
in a fraction of a second, and the page caches the result by run); `figure` draws them.
Dragging a box on it picks Replay's window: an invisible row of points, one per time
bin, makes the box selectable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ui.figures.common import base_layout, time_axis_title

BINS = 240  # time columns: about one per 4 px on a normal screen
PICKER = "window picker"  # the invisible trace a box selection reads
ARROW = " → "  # between a link's sender and receiver in its row label
# Client calls that had not ended when the run stopped are neither ok nor failed.
UNFINISHED = ("open",)
CALL_OK = ("ok",)
# A message outside calls (stream events, queue publishes and deliveries) failed when it
# never arrived. Requests and answers are judged through their call (a lost request
# shows as its call failing); handshakes, acks and pings are bookkeeping.
NOT_JUDGED = ("request", "response", "control", "ack", "ping", "pong")
NOT_FAILED = ("delivered", "in_flight")


@dataclass(frozen=True)
class Bins:
    """A run's counts per row (an agent, or a link) and time bin, binned once.

    `traffic`: messages sent; `failed`: failures; `tried` (links only): what the
    failure rate is out of, the calls that ended there plus the messages outside calls.
    """

    by: str  # "agent" or "link"
    rows: tuple[str, ...]
    traffic: np.ndarray
    failed: np.ndarray
    edges: np.ndarray
    tried: np.ndarray | None = None

    @property
    def rate(self) -> np.ndarray:
        """Failures per try in each cell (NaN where nothing was tried); links only."""
        tried = self.tried if self.tried is not None else self.traffic
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(tried > 0, self.failed / np.maximum(tried, 1), np.nan)


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


def by_agent(
    messages: pd.DataFrame,
    failures: pd.DataFrame,
    agents: Sequence[str],
    duration: float,
    bins: int = BINS,
) -> Bins:
    """Messages each agent sent, and the failures at its lifeline (`failures` from
    `failures.failure_events`), per time bin."""
    return by_agent_batches([messages], failures, agents, duration, bins)


def by_agent_batches(
    messages: Iterable[pd.DataFrame],
    failures: pd.DataFrame,
    agents: Sequence[str],
    duration: float,
    bins: int = BINS,
) -> Bins:
    """`by_agent` of the messages read a batch at a time (`src`, `sent_at` only): counts
    add up, so a run of millions of messages is never held whole."""
    lanes = list(agents)
    index = {a: i for i, a in enumerate(lanes)}
    traffic, edges = binned(np.array([]), np.array([], dtype=int), len(lanes), duration, bins)
    for batch in messages:
        sent = batch["src"].map(index).fillna(-1).to_numpy(dtype=int)
        traffic += binned(batch["sent_at"].to_numpy(dtype=float), sent, len(lanes), duration, bins)[
            0
        ]
    where = failures["agent"].map(index).fillna(-1).to_numpy(dtype=int)
    failed, _ = binned(failures["time"].to_numpy(dtype=float), where, len(lanes), duration, bins)
    return Bins("agent", tuple(lanes), traffic, failed, edges)


def link_label(src: str, dst: str) -> str:
    """A link's row label: `A → B`."""
    return f"{src}{ARROW}{dst}"


def by_link(
    messages: pd.DataFrame,
    spans: pd.DataFrame,
    agents: Sequence[str],
    duration: float,
    bins: int = BINS,
) -> Bins:
    """Per link (sender -> receiver, in agent order): the messages sent on it, and its
    failure rate over time, of the calls over it that ended then (client spans, failed
    unless ok) and of the messages on it outside calls (failed when never delivered)."""
    calls = spans[(spans["kind"] == "client") & ~spans["outcome"].isin(UNFINISHED)]
    calls = calls[calls["peer"].astype(str) != ""]
    links = pd.concat(
        [
            messages[["src", "dst"]].drop_duplicates(),
            calls[["agent", "peer"]]
            .drop_duplicates()
            .rename(columns={"agent": "src", "peer": "dst"}),
        ]
    )
    return by_link_batches(links, lambda: [messages], [calls], agents, duration, bins)


# What `by_link_batches` reads of the messages, and of the client spans.
LINK_MESSAGE_COLUMNS = ["src", "dst", "sent_at", "kind", "outcome"]
LINK_CALL_COLUMNS = ["agent", "peer", "start", "end", "outcome"]


def by_link_batches(
    links: pd.DataFrame,
    messages: Callable[[], Iterable[pd.DataFrame]],
    calls: Iterable[pd.DataFrame],
    agents: Sequence[str],
    duration: float,
    bins: int = BINS,
) -> Bins:
    """`by_link` from the run's (`src`, `dst`) links (duplicates allowed), its messages
    a batch at a time (`messages()` starts a pass over them) and its client calls that
    ended (not `UNFINISHED`, with a peer) a batch at a time: never a whole table."""
    order = {a: i for i, a in enumerate(agents)}
    pairs = sorted(
        (
            (str(s), str(d))
            for s, d in links[["src", "dst"]].drop_duplicates().itertuples(index=False)
        ),
        key=lambda p: (order.get(p[0], len(order)), p[0], order.get(p[1], len(order)), p[1]),
    )
    rows = tuple(link_label(s, d) for s, d in pairs)
    index = pd.Series(range(len(pairs)), index=pd.MultiIndex.from_tuples(pairs), dtype=int)

    def lane_of(src: pd.Series, dst: pd.Series) -> np.ndarray:
        # One vectorised lookup of (src, dst) pairs: a million rows in well under a second.
        keys = pd.MultiIndex.from_arrays([src.astype(str), dst.astype(str)])
        return index.reindex(keys).fillna(-1).to_numpy(dtype=int)

    n = len(rows)
    traffic, edges = binned(np.array([]), np.array([], dtype=int), n, duration, bins)
    tried, failed = np.zeros_like(traffic), np.zeros_like(traffic)
    for part in calls:
        lanes = lane_of(part["agent"], part["peer"])
        ended = part["end"].fillna(part["start"]).to_numpy(dtype=float)
        bad = ~part["outcome"].isin(CALL_OK).to_numpy()
        tried += binned(ended, lanes, n, duration, bins)[0]
        failed += binned(ended[bad], lanes[bad], n, duration, bins)[0]
    for batch in messages():
        traffic += binned(
            batch["sent_at"].to_numpy(dtype=float),
            lane_of(batch["src"], batch["dst"]),
            n,
            duration,
            bins,
        )[0]
        loose = batch[~batch["kind"].isin(NOT_JUDGED)]
        if len(loose):
            where = lane_of(loose["src"], loose["dst"])
            sent = loose["sent_at"].to_numpy(dtype=float)
            lost = ~loose["outcome"].isin(NOT_FAILED).to_numpy()
            tried += binned(sent, where, n, duration, bins)[0]
            failed += binned(sent[lost], where[lost], n, duration, bins)[0]
    return Bins("link", rows, traffic, failed, edges, tried)


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
    return figure(by_agent(messages, failures, agents, duration, bins), duration, window=window)


def figure(
    counts: Bins, duration: float, *, window: tuple[float, float] | None = None
) -> go.Figure:
    """The overview of binned `counts`: traffic on top (blues, log scale so a burst does
    not wash out the rest), failures below (reds: a count per agent, a rate per link),
    Replay's `window` outlined."""
    lanes = list(counts.rows)
    edges = counts.edges
    centres = (edges[:-1] + edges[1:]) / 2
    width = float(edges[1] - edges[0])
    link = counts.by == "link"
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    sent_what = "messages" if link else "messages sent"
    panels: list[tuple[int, np.ndarray, np.ndarray, str, str, dict[str, float]]] = [
        (
            1,
            np.log1p(counts.traffic),
            counts.traffic,
            "Blues",
            f"%{{y}}: %{{customdata:,.0f}} {sent_what} around %{{x:.1f}} s",
            _from_zero(np.log1p(counts.traffic)),  # steady traffic: one shade, not stripes
        )
    ]
    if link:
        tried = counts.tried if counts.tried is not None else counts.traffic
        panels.append(
            (
                2,
                counts.rate,
                tried,
                "Reds",
                "%{y}: %{z:.0%} failed of %{customdata:,.0f} calls and messages around %{x:.1f} s",
                {"zmin": 0.0, "zmax": 1.0},
            )
        )
    else:
        panels.append(
            (
                2,
                np.log1p(counts.failed),
                counts.failed,
                "Reds",
                "%{y}: %{customdata:,.0f} failures around %{x:.1f} s",
                _from_zero(np.log1p(counts.failed)),
            )
        )
    for row, z, custom, scale, hover, bounds in panels:
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=centres,
                y=lanes,
                customdata=custom,
                colorscale=scale,
                showscale=False,
                hovertemplate=hover + "<extra></extra>",
                name="failure rate"
                if (link and row == 2)
                else ("failures" if row == 2 else sent_what),
                xgap=0,
                ygap=1,
                **bounds,
            ),
            row=row,
            col=1,
        )
        # One transparent point per time bin: a box dragged over the heatmap selects them.
        # The box spans every lane (selectdirection "h"), so one row of points is enough;
        # a point per cell made the figure ~25 MB at 1,000 agents.
        fig.add_trace(
            go.Scatter(
                x=centres if lanes else [],
                y=[lanes[0]] * len(centres) if lanes else [],
                mode="markers",
                marker={"size": 6, "opacity": 0},
                hoverinfo="skip",
                showlegend=False,
                name=PICKER,
                customdata=np.full(len(centres), width),
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
    fig.update_yaxes(
        title="failure rate" if link else "failures",
        autorange="reversed",
        row=2,
        col=1,
        fixedrange=True,
    )
    return fig


def _from_zero(z: np.ndarray) -> dict[str, float]:
    """A heatmap's colour range from zero to its largest value (plotly.js ignores a
    `zmin` given without `zmax`)."""
    top = float(np.nanmax(z)) if z.size and np.isfinite(z).any() else 0.0
    return {"zmin": 0.0, "zmax": max(top, 1e-9)}


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
