"""The space-time (Lamport) diagram of messages, and the data steps that feed it.

One horizontal lifeline per agent, time flowing left to right; one arrow per copy of a
message, from (sent_at, sender) to (delivered_at, receiver). Messages that were not
delivered stop where they died (half-way for the network's losses, at the receiver's
door when it was down or refused them) and end in a marker for their outcome. As in
Maelstrom's `messages.svg`, time can be physical (seconds) or logical (the index of each
send and receive event in the run's total order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ui.figures.common import (
    OUTCOME_COLORS,
    OUTCOME_SYMBOLS,
    PROTOCOL_COLORS,
    add_fault_bands,
    base_layout,
    color_for,
    time_axis_title,
)
from ui.figures.failures import failure_traces

# More arrows than this on screen is unreadable, and slow to draw: thin beyond it.
MAX_ARROWS = 2000

# How far along the sender -> receiver line an undelivered message died (0..1).
DIED_AT = {"unavailable": 1.0, "rejected": 1.0, "dead_lettered": 1.0}
DIED_HALFWAY = 0.5

CURSOR = "cursor"
CURTAIN = "curtain"
PLAYBACK = "playback"  # the in-chart Play/Pause buttons
PLAY_LABEL = "Play window"
PAUSE_LABEL = "Pause"
ANCESTORS = "happened before"
DESCENDANTS = "happened after"
FADED = 0.18  # the opacity of the arrows outside a causal highlight


@dataclass(frozen=True)
class Filters:
    """Which messages the diagram shows; empty means no filter on that column."""

    correlation_id: str = ""
    agents: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    types: tuple[str, ...] = ()


@dataclass
class Window:
    """The messages of one time window after filtering and thinning."""

    rows: pd.DataFrame  # the arrows to draw
    total: int  # messages in the window before thinning
    start: float
    end: float
    step: int = 1  # every `step`-th delivered message is drawn when thinned
    failures_kept: int = 0
    notes: list[str] = field(default_factory=list)
    folded: int = 0  # stream events left out between each stream's first and last
    streams: int = 0  # the streams they belong to

    @property
    def thinned(self) -> bool:
        """True when fewer arrows are drawn than there are messages in the window."""
        return len(self.rows) < self.total

    def note(self) -> str:
        """The sentence that says the diagram was thinned ('' when it was not)."""
        if not self.thinned:
            return ""
        if self.step == 1:
            delivered = "the other delivered ones" if self.folded else "every delivered one"
        else:
            delivered = f"every {_ordinal(self.step)} delivered one"

        folded = (
            f" The {self.streams:,} streams show their first and last events (a model's "
            f"tokens, progress): {self.folded:,} events between them are left out."
            if self.folded
            else ""
        )
        return (
            f"Showing {len(self.rows):,} of {self.total:,} messages in this window: "
            f"{self.failures_kept:,} that were not delivered and {delivered}.{folded} "
            "To draw every arrow, pick Box select in the diagram's toolbar and drag "
            "across a stretch: it becomes the window and is queried again at full "
            "density (or narrow the Window slider, or filter)."
        )


def _ordinal(n: int) -> str:
    """`n` as an English ordinal: 1st, 2nd, 3rd, 4th, 11th..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def end_times(messages: pd.DataFrame, duration: float) -> pd.Series:
    """When each message stopped: delivered_at, else ended_at, else the run's end."""
    ended = messages["delivered_at"]
    if "ended_at" in messages.columns:
        ended = ended.fillna(messages["ended_at"])
    return ended.fillna(duration)


def filter_messages(messages: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """The messages matching every filter that is set."""
    mask = pd.Series(True, index=messages.index)
    if filters.correlation_id:
        mask &= messages["correlation_id"] == filters.correlation_id
    if filters.agents:
        wanted = list(filters.agents)
        mask &= messages["src"].isin(wanted) | messages["dst"].isin(wanted)
    if filters.protocols:
        mask &= messages["protocol"].isin(list(filters.protocols))
    if filters.kinds:
        mask &= messages["kind"].isin(list(filters.kinds))
    if filters.types:
        mask &= messages["type"].isin(list(filters.types))
    return messages[mask] if not bool(mask.all()) else messages


def window(
    messages: pd.DataFrame,
    start: float,
    end: float,
    duration: float,
    limit: int = MAX_ARROWS,
) -> Window:
    """The messages on the wire at some point in [start, end], at most `limit` of them.

    Past the limit, streams are thinned first: each SSE stream keeps its first and last
    delivered events (a model's token stream says when it began and ended; the chunks
    between say little more). Then every undelivered message is kept (they are what a
    reader looks for) up to half the limit, and the delivered ones are sampled evenly:
    every k-th in sequence order, so the sample is the same on every rerun.
    """
    stop = end_times(messages, duration)
    inside = messages[(messages["sent_at"] <= end) & (stop >= start)]
    total = len(inside)
    if total <= limit:
        return Window(inside, total, start, end)
    inside, folded, streams = fold_streams(inside)
    if len(inside) <= limit:
        return Window(inside, total, start, end, folded=folded, streams=streams)
    failed = inside[inside["outcome"] != "delivered"]
    if len(failed) > limit // 2:
        failed = failed.iloc[:: -(-len(failed) // (limit // 2))]
    delivered = inside[inside["outcome"] == "delivered"]
    room = max(limit - len(failed), 1)
    step = max(-(-len(delivered) // room), 1)
    rows = pd.concat([delivered.iloc[::step], failed]).sort_values("seq", kind="stable")
    return Window(
        rows,
        total,
        start,
        end,
        step=step,
        failures_kept=len(failed),
        folded=folded,
        streams=streams,
    )


def fold_streams(rows: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """`rows` without the delivered stream events between each stream's first and last
    (a stream: the events of one span); with how many were left out, and of how many
    streams."""
    events = rows[(rows["kind"] == "event") & (rows["outcome"] == "delivered")]
    if len(events) < 3:
        return rows, 0, 0
    seq = events.groupby("span_id")["seq"]
    first, last = seq.transform("min"), seq.transform("max")
    middle = (events["seq"] != first) & (events["seq"] != last)
    if not bool(middle.any()):
        return rows, 0, 0
    dropped = events.index[middle.to_numpy()]
    streams = int(events.loc[dropped, "span_id"].nunique())
    return rows.drop(index=dropped), len(dropped), streams


def event_times(messages: pd.DataFrame, duration: float) -> np.ndarray:
    """Every send and every end (delivery or death) of the run, sorted: the total order
    of events that logical time counts in."""
    times = np.concatenate(
        [messages["sent_at"].to_numpy(dtype=float), end_times(messages, duration).to_numpy()]
    )
    times = times[np.isfinite(times)]
    times.sort(kind="stable")
    return times


def to_logical(times: Sequence[float] | np.ndarray, events: np.ndarray) -> np.ndarray:
    """Seconds as event order: how many events of the run happened strictly before."""
    return np.searchsorted(events, np.asarray(times, dtype=float), side="left").astype(float)


def _hover(rows: pd.DataFrame, stop: np.ndarray) -> list[str]:
    """Each message's hover text: type, route, times, outcome (and why), trace."""
    reason = rows["reason"] if "reason" in rows.columns else None
    texts = []
    for i, row in enumerate(rows.itertuples(index=False)):
        why = f" ({reason.iloc[i]})" if reason is not None and reason.iloc[i] else ""
        dup = " · duplicate" if getattr(row, "duplicate", False) else ""
        texts.append(
            f"<b>{row.type}</b> {row.kind} {row.protocol}{dup}<br>{row.src} → {row.dst} "
            f"{row.sent_at:.4f}–{stop[i]:.4f} s {row.outcome}{why}<br>"
            f"#{row.seq} {row.correlation_id} attempt {row.attempt}"
        )
    return texts


def spacetime(
    rows: pd.DataFrame,
    lanes: Sequence[str],
    duration: float,
    faults: pd.DataFrame | None = None,
    *,
    x_range: tuple[float, float] | None = None,
    events: np.ndarray | None = None,
    selected: int | None = None,
    height: int | None = None,
    failures: pd.DataFrame | None = None,
    related: tuple[frozenset[int], frozenset[int]] | None = None,
) -> go.Figure:
    """The space-time diagram of `rows` (a slice of `messages`), one lifeline per lane.

    One trace per category keeps the figure light: delivered messages by protocol (TCP
    and TLS handshakes, `kind == control`, in a separate, fainter trace), undelivered
    ones by outcome, each a run of segments separated by `None`. Every point carries the
    message's `seq` as customdata, so a selection names the message. `events` (from
    `event_times`) switches the x axis to logical time. `selected` (a `seq`) is drawn
    thick on top. Fault windows are shaded over `x_range` (seconds). `failures` (rows of
    `failure_events`) are drawn as labelled markers where they happened. `related`
    (the selected message's causal ancestors and descendants, as seqs) are drawn in
    colour over the other arrows, which fade.
    """
    lane_index = _lane_index(rows, lanes)
    names = list(lane_index)
    arrows = _arrows(rows, lane_index, duration, events)
    # Always SVG: the arrows are capped (MAX_ARROWS, 4,000 at most on the page), which
    # SVG draws, while WebGL drew only the endpoint dots in Streamlit's plotly.js.
    trace_type = go.Scatter
    span = x_range or (0.0, duration)
    lo, hi = (_to_x(np.array(span, dtype=float), events)) if len(span) else (0.0, duration)
    fig = go.Figure()
    fig.add_trace(_lifelines(len(names), lo, hi))
    for mask, style in _categories(rows, selected, related):
        idx = np.flatnonzero(mask)
        if len(idx):
            fig.add_trace(_arrow_trace(arrows, idx, style, trace_type))
    if related is not None:
        for trace in fig.data[1:]:
            if trace.name not in (ANCESTORS, DESCENDANTS, "selected"):
                trace.opacity = FADED
    if failures is not None and len(failures):
        for trace in failure_traces(
            failures, lane_index, lambda t: _to_x(np.asarray(t, dtype=float), events)
        ):
            fig.add_trace(trace)
    add_fault_bands(
        fig,
        _overlapping(faults, span[0], span[1]),
        duration,
        to_x=(lambda t: float(_to_x(np.array([t]), events)[0])),
    )
    base_layout(fig, height=height or max(340, 130 + 75 * len(names)))
    fig.update_yaxes(
        tickvals=list(range(len(names))),
        ticktext=names,
        range=[len(names) - 0.5, -0.5],
        showgrid=False,
        zeroline=False,
        fixedrange=True,
    )
    fig.update_xaxes(title=time_axis_title(events is not None), range=[lo, hi])
    fig.update_layout(hovermode="closest", dragmode="pan", clickmode="event+select")
    return fig


def _overlapping(faults: pd.DataFrame | None, start: float, end: float) -> pd.DataFrame | None:
    """The fault windows that overlap [start, end]: a band per fault of a long run
    (hundreds) would each be a shape plotly validates again at every addition."""
    if faults is None or faults.empty:
        return faults
    ends = faults["end"].fillna(np.inf)
    return faults[(faults["start"] <= end) & (ends >= start)]


@dataclass(frozen=True)
class _Arrows:
    """Every message of a diagram as an arrow from (x0, y0) to (x1, y1) in axis units,
    with its `seq` and hover text."""

    x0: np.ndarray
    x1: np.ndarray
    y0: np.ndarray
    y1: np.ndarray
    seq: np.ndarray
    hover: np.ndarray


@dataclass(frozen=True)
class _Style:
    """How one category of arrows is drawn: its legend name, colour, line and marker."""

    name: str
    color: str
    width: float
    symbol: str
    dash: str


def _lane_index(rows: pd.DataFrame, lanes: Sequence[str]) -> dict[str, int]:
    """Each agent's lifeline, top to bottom: `lanes`, then any agent of `rows` they miss,
    sorted."""
    lane_index = {name: i for i, name in enumerate(lanes)}
    extra = sorted(set(rows["src"]).union(rows["dst"]) - set(lane_index)) if len(rows) else []
    for name in extra:  # an agent missing from the agents table still gets a lane
        lane_index[name] = len(lane_index)
    return lane_index


def _to_x(times: np.ndarray, events: np.ndarray | None) -> np.ndarray:
    """Seconds as x: themselves, or event order when `events` is given."""
    return to_logical(times, events) if events is not None else np.asarray(times, float)


def _arrows(
    rows: pd.DataFrame, lane_index: dict[str, int], duration: float, events: np.ndarray | None
) -> _Arrows:
    """Where each message's arrow starts and stops: sent at its sender's lane, stopped
    at the receiver's, or part-way there where an undelivered message died."""
    stop = end_times(rows, duration).to_numpy(dtype=float)
    y0 = rows["src"].map(lane_index).to_numpy(dtype=float)
    y_dst = rows["dst"].map(lane_index).to_numpy(dtype=float)
    along = np.array(
        [
            1.0 if o == "delivered" else DIED_AT.get(o, DIED_HALFWAY)
            for o in rows["outcome"].to_numpy(dtype=object)
        ]
    ).reshape(-1)
    return _Arrows(
        x0=_to_x(rows["sent_at"].to_numpy(dtype=float), events),
        x1=_to_x(stop, events),
        y0=y0,
        y1=y0 + (y_dst - y0) * along,
        seq=rows["seq"].to_numpy(),
        hover=np.array(_hover(rows, stop), dtype=object),
    )


def _lifelines(lanes: int, lo: float, hi: float) -> go.Scatter:
    """One grey horizontal line per lane across the x range, as a single trace."""
    return go.Scatter(
        x=[v for _ in range(lanes) for v in (lo, hi, None)],
        y=[v for i in range(lanes) for v in (i, i, None)],
        mode="lines",
        line={"color": "#bbbbbb", "width": 1},
        hoverinfo="skip",
        showlegend=False,
        name="lifelines",
    )


def _categories(
    rows: pd.DataFrame,
    selected: int | None,
    related: tuple[frozenset[int], frozenset[int]] | None = None,
) -> list[tuple[np.ndarray, _Style]]:
    """The arrows' categories in drawing order, each a mask over `rows` and its style:
    delivered messages per protocol (handshakes apart), undelivered ones per outcome,
    the selected message's causal ancestors and descendants, and the selected message
    last, on top."""
    outcome = rows["outcome"].to_numpy(dtype=object)
    delivered = outcome == "delivered"
    control = rows["kind"].to_numpy(dtype=object) == "control"
    protocols = rows["protocol"].to_numpy(dtype=object)
    out = []
    for i, protocol in enumerate(sorted(set(protocols[delivered]))):
        color = color_for(protocol, PROTOCOL_COLORS, i)
        base = delivered & (protocols == protocol)
        out.append((base & ~control, _Style(protocol, color, 1.2, "arrow", "solid")))
        out.append((base & control, _Style(f"{protocol} handshakes", color, 0.8, "arrow", "dot")))
    for i, name in enumerate(sorted(set(outcome[~delivered]))):
        color = color_for(name, OUTCOME_COLORS, i)
        symbol = OUTCOME_SYMBOLS.get(name, "x")
        out.append((outcome == name, _Style(name, color, 1.2, symbol, "dash")))
    if related is not None:
        seqs = rows["seq"].to_numpy()
        before, after = related
        out.append(
            (np.isin(seqs, list(before)), _Style(ANCESTORS, "#1565c0", 2.4, "arrow", "solid"))
        )
        out.append(
            (np.isin(seqs, list(after)), _Style(DESCENDANTS, "#e65100", 2.4, "arrow", "solid"))
        )
    if selected is not None:
        chosen = rows["seq"].to_numpy() == selected
        out.append((chosen, _Style("selected", "#000000", 3.5, "arrow", "solid")))
    return out


def _arrow_trace(
    arrows: _Arrows,
    idx: np.ndarray,
    style: _Style,
    trace_type: type[go.Scatter] | type[go.Scattergl],
) -> go.Scatter | go.Scattergl:
    """The arrows `idx` as one trace of segments `start, end, None`, with a marker (and
    the hover text) at each arrival."""
    n = len(idx)
    xs = np.empty(3 * n, dtype=object)
    ys = np.empty(3 * n, dtype=object)
    xs[0::3], xs[1::3], xs[2::3] = arrows.x0[idx], arrows.x1[idx], None
    ys[0::3], ys[1::3], ys[2::3] = arrows.y0[idx], arrows.y1[idx], None
    # Hover text on the arrival point only: half the bytes, and one label per arrow.
    text = np.full(3 * n, None, dtype=object)
    text[1::3] = arrows.hover[idx]
    hoverinfo = np.full(3 * n, "skip", dtype=object)
    hoverinfo[1::3] = "text"
    custom = np.empty(3 * n, dtype=object)
    custom[0::3], custom[1::3], custom[2::3] = arrows.seq[idx], arrows.seq[idx], None
    sizes = np.zeros(3 * n)
    sizes[1::3] = 9 if style.symbol != "arrow" else 8
    return trace_type(
        x=xs.tolist(),
        y=ys.tolist(),
        mode="lines+markers",
        line={"color": style.color, "width": style.width, "dash": style.dash},
        marker=_arrow_marker(sizes, style, webgl=trace_type is not go.Scatter),
        text=text.tolist(),
        hoverinfo=hoverinfo.tolist(),
        customdata=custom.tolist(),
        name=style.name,
        legendgroup=style.name,
    )


def _arrow_marker(sizes: np.ndarray, style: _Style, *, webgl: bool) -> dict[str, object]:
    """The arrival markers: arrowheads along each segment in SVG, a small circle in
    their place in WebGL."""
    marker: dict[str, object] = {"size": sizes.tolist(), "color": style.color}
    if webgl:
        marker["symbol"] = "circle" if style.symbol == "arrow" else style.symbol
        marker["size"] = (sizes / 2).tolist() if style.symbol == "arrow" else sizes.tolist()
    else:
        marker["symbol"] = style.symbol
        if style.symbol == "arrow":
            marker["angleref"] = "previous"  # arrowheads point along each segment
    return marker


def causal(rows: pd.DataFrame, seq: int) -> tuple[frozenset[int], frozenset[int]]:
    """The messages of `rows` that happened before message `seq` and after it, as ShiViz
    draws happens-before: a message is before another when its delivery precedes that
    one's send at the same agent, or through a chain of such steps; after, the other
    way round. Returns (ancestors, descendants), neither holding `seq`."""
    pick = rows[rows["seq"] == seq]
    if pick.empty:
        return frozenset(), frozenset()
    m = pick.iloc[0]
    src = rows["src"].to_numpy(dtype=object)
    dst = rows["dst"].to_numpy(dtype=object)
    sent = rows["sent_at"].to_numpy(dtype=float)
    got = rows["delivered_at"].to_numpy(dtype=float)  # NaN: never delivered
    seqs = rows["seq"].to_numpy()
    # Forward: the earliest time each agent has heard (transitively) of the message.
    heard: dict[object, float] = {}
    if np.isfinite(m["delivered_at"]):
        heard[m["dst"]] = float(m["delivered_at"])
    after = set()
    for i in np.argsort(sent, kind="stable"):
        if seqs[i] == seq:
            continue
        if sent[i] >= heard.get(src[i], np.inf):
            after.add(int(seqs[i]))
            if np.isfinite(got[i]) and got[i] < heard.get(dst[i], np.inf):
                heard[dst[i]] = float(got[i])
    # Backward: the latest time each agent's knowledge could still reach the message.
    needed: dict[object, float] = {m["src"]: float(m["sent_at"])}
    before = set()
    order = np.argsort(np.where(np.isfinite(got), got, -np.inf), kind="stable")[::-1]
    for i in order:
        if seqs[i] == seq or not np.isfinite(got[i]):
            continue
        if got[i] <= needed.get(dst[i], -np.inf):
            before.add(int(seqs[i]))
            if sent[i] > needed.get(src[i], -np.inf):
                needed[src[i]] = float(sent[i])
    return frozenset(before), frozenset(after)


def _cursor_x(cursor: float, events: np.ndarray | None) -> float:
    """The cursor's x: seconds, or event order when `events` is given."""
    return float(to_logical([cursor], events)[0]) if events is not None else float(cursor)


def _curtain_x(x: float, right: float) -> list[float]:
    """The curtain's outline along x: from the cursor to the right edge and back."""
    edge = max(right, x)
    return [x, edge, edge, x, x]


def _extent(fig: go.Figure) -> tuple[float, float, float]:
    """The right edge of the x axis and the y axis' two ends (lanes are reversed)."""
    xr = fig.layout.xaxis.range
    yr = fig.layout.yaxis.range or (0.5, -0.5)
    return (float(xr[1]) if xr else np.inf), float(min(yr)), float(max(yr))


def with_cursor(
    fig: go.Figure, cursor: float, events: np.ndarray | None = None, copy: bool = True
) -> go.Figure:
    """`fig` with a time cursor: a line at `cursor` (seconds) and a translucent curtain
    over what has not happened yet, up to the right edge of the x axis.

    Both are the figure's last two traces (on top of every arrow), not layout shapes:
    plotly.js animates traces without redrawing the figure, shapes only with a full
    redraw. Returns a copy unless `copy` is False, so a cached base figure is never
    changed.
    """
    out = go.Figure(fig) if copy else fig
    x = _cursor_x(cursor, events)
    right, top, bottom = _extent(out)
    right = right if np.isfinite(right) else x
    skip = {"hoverinfo": "skip", "showlegend": False, "mode": "lines"}
    out.add_trace(
        go.Scatter(
            x=_curtain_x(x, right),
            y=[top, top, bottom, bottom, top],
            fill="toself",
            fillcolor="rgba(255,255,255,0.7)",
            line={"width": 0},
            hoveron="points",
            name=CURTAIN,
            **skip,
        )
    )
    out.add_trace(
        go.Scatter(
            x=[x, x], y=[top, bottom], line={"color": "#111111", "width": 2}, name=CURSOR, **skip
        )
    )
    return out


def _cursor_traces(fig: go.Figure) -> tuple[int, int]:
    """The indices of the curtain and cursor traces `with_cursor` added."""
    names = [t.name for t in fig.data]
    return names.index(CURTAIN), names.index(CURSOR)


def move_cursor(fig: go.Figure, cursor: float, events: np.ndarray | None = None) -> go.Figure:
    """Move the cursor and curtain `with_cursor` drew on `fig` to `cursor` (seconds), in
    place: a playback frame changes two small traces, not a copy of every arrow."""
    x = _cursor_x(cursor, events)
    right, _, _ = _extent(fig)
    curtain, line = _cursor_traces(fig)
    fig.data[curtain].x = _curtain_x(x, right if np.isfinite(right) else x)
    fig.data[line].x = [x, x]
    return fig


def with_playback(
    fig: go.Figure, times: Sequence[float], frame_ms: float, events: np.ndarray | None = None
) -> go.Figure:
    """Give `fig` (with a cursor from `with_cursor`) an in-browser playback, in place:
    one animation frame per time of `times` (seconds) that moves only the cursor and
    curtain traces, and Play/Pause buttons in the chart. plotly.js plays it without a
    rerun of the page and without redrawing the arrows (`redraw` off), each frame shown
    `frame_ms` wall milliseconds."""
    curtain, line = _cursor_traces(fig)
    right, _, _ = _extent(fig)
    xs = _to_x(np.asarray(times, dtype=float), events).tolist()
    fig.frames = [
        go.Frame(
            name=f"{k}",
            data=[
                {"x": _curtain_x(x, right if np.isfinite(right) else x)},
                {"x": [x, x]},
            ],
            traces=[curtain, line],
        )
        for k, x in enumerate(xs)
    ]
    play = {
        "frame": {"duration": frame_ms, "redraw": False},
        "transition": {"duration": 0},
        "fromcurrent": True,
        "mode": "immediate",
    }
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}
    fig.update_layout(
        updatemenus=[
            {
                "type": "buttons",
                "name": PLAYBACK,
                "direction": "left",
                "showactive": False,
                "x": 0.0,
                "xanchor": "left",
                "y": 1.0,
                "yanchor": "bottom",
                "pad": {"b": 4},
                "buttons": [
                    {"label": PLAY_LABEL, "method": "animate", "args": [None, play]},
                    {"label": PAUSE_LABEL, "method": "animate", "args": [[None], pause]},
                ],
            }
        ]
    )
    return fig


def cursor_of(fig: go.Figure | dict) -> float | None:
    """The x of the cursor line drawn by `with_cursor`, or None."""
    data = fig.get("data", []) if isinstance(fig, dict) else fig.data
    for trace in data:
        name = trace.get("name") if isinstance(trace, dict) else trace.name
        if name == CURSOR:
            return float(trace["x"][0])
    return None


def message_detail(messages: pd.DataFrame, spans: pd.DataFrame, seq: int) -> pd.DataFrame:
    """One message's envelope fields as a two-column table `field, value`, followed by
    the span it belongs to (name, agent, outcome, error)."""
    row = messages[messages["seq"] == seq]
    if row.empty:
        return pd.DataFrame(columns=["field", "value"])
    record = row.iloc[0].to_dict()
    items = [(k, _show(v)) for k, v in record.items()]
    span_id = str(record.get("span_id", ""))
    if span_id and not spans.empty:
        span = spans[spans["span_id"] == span_id]
        if not span.empty:
            s = span.iloc[0]
            items.append(
                (
                    "span",
                    f"{s['name']} {s['kind']} {s['agent']} → {s['peer']}: {s['outcome']}"
                    + (f" ({s['error']})" if s.get("error") else ""),
                )
            )
    return pd.DataFrame(items, columns=["field", "value"])


def _show(value: object) -> str:
    """An envelope field as shown: floats without trailing zeros, NaN as ''."""
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)


def message_label(row: pd.Series | object) -> str:
    """A message as one line: `seq · type kind src → dst @ sent s (outcome)`."""
    get = row.__getitem__ if isinstance(row, pd.Series) else row.__getattribute__
    return (
        f"#{get('seq')} · {get('type')} {get('kind')} {get('src')} → {get('dst')} "
        f"@ {get('sent_at'):.3f} s ({get('outcome')})"
    )
