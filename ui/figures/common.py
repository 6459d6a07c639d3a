"""What every figure shares: colours, fault bands, None-separated segments, WebGL switch.

Pure helpers: no Streamlit here, so notebooks build the same figures as the dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

# Past this many points in one figure, scatter traces switch to WebGL: SVG slows down
# badly past ~10k points, WebGL does not (it also draws under --disable-gpu).
WEBGL_POINTS = 10_000

PROTOCOL_COLORS = {
    "http": "#1f77b4",
    "queue": "#2ca02c",
    "sse": "#9467bd",
    "websocket": "#ff7f0e",
}
EXTRA_COLORS = ("#17becf", "#8c564b", "#bcbd22", "#e377c2", "#7f7f7f")

# Where a message ended when it was not delivered; red family so failures stand out
# against the protocol colours.
OUTCOME_COLORS = {
    "dropped": "#d62728",
    "partitioned": "#a0522d",
    "unavailable": "#e377c2",
    "rejected": "#7f7f7f",
    "dead_lettered": "#000000",
    "expired": "#bcbd22",
    "in_flight": "#17becf",
}
OUTCOME_SYMBOLS = {
    "dropped": "x",
    "partitioned": "square-x-open",
    "unavailable": "circle-x-open",
    "rejected": "diamond-x-open",
    "dead_lettered": "hexagram",
    "expired": "hourglass",
    "in_flight": "circle-open",
}

SPAN_COLORS = {
    "ok": "#4c78a8",
    "error": "#e45756",
    "timeout": "#f58518",
    "deadline_exceeded": "#b279a2",
    "rejected": "#9d755d",
    "cancelled": "#bab0ac",
    "partial": "#72b7b2",
    "open": "#54a24b",
}

# Resilience4j's states; green/orange/red as the Hystrix dashboard colours health.
BREAKER_STATES = ("CLOSED", "HALF_OPEN", "OPEN", "FORCED_OPEN", "DISABLED")
BREAKER_COLORS = {
    "CLOSED": "#2ca02c",
    "HALF_OPEN": "#ff9900",
    "OPEN": "#d62728",
    "FORCED_OPEN": "#7b1fa2",
    "DISABLED": "#9e9e9e",
}

# Fault windows: light fills so the data stays readable through them. Partitions use
# Maelstrom/Jepsen's tan (#E9DCA0).
FAULT_COLORS = {
    "partition": "#E9DCA0",
    "latency": "#FFD59E",
    "loss": "#F7B6B6",
    "duplicate": "#B2EBF2",
    "crash": "#C8C8C8",
    "pause": "#C5CAE9",
    "error": "#F8BBD0",
    "overload": "#FFE0B2",
    "overloaded": "#FFCCBC",  # a model provider's 529/503 bursts
    "poison": "#D7CCC8",
    "breaker": "#DCEDC8",  # an operator's action on a breaker
}
FAULT_OPACITY = 0.45
FAULT_SHAPE_PREFIX = "fault:"


def log_ticks(lo: float, hi: float) -> dict[str, Any]:
    """Tick settings for a log axis whose range is [lo, hi] in log10 units.

    One tick per decade reads best over several decades, but a range inside one decade
    would then show no label at all: there, ticks at 1, 2 and 5 of each decade, and
    every tenth of a decade when even those miss the range.
    """
    if hi - lo >= 1.0:
        return {"dtick": 1}
    for mantissas in ((1, 2, 5), (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9), tuple(range(10, 100))):
        scale = 10 if mantissas[-1] >= 10 else 1
        values = [
            m / scale * 10.0**e
            for e in range(math.floor(lo) - 1, math.ceil(hi) + 1)
            for m in mantissas
        ]
        inside = [v for v in values if lo <= math.log10(v) <= hi]
        if len(inside) >= 2:
            return {"tickvals": inside, "ticktext": [f"{v:.3g}" for v in inside]}
    return {"nticks": 4}


def color_for(name: str, palette: dict[str, str], index: int = 0) -> str:
    """The palette's colour for `name`, or a stable extra colour for an unknown name."""
    if name in palette:
        return palette[name]
    return EXTRA_COLORS[index % len(EXTRA_COLORS)]


def scatter_class(points: int) -> type[go.Scatter] | type[go.Scattergl]:
    """`go.Scattergl` for a figure with more than WEBGL_POINTS points, else `go.Scatter`."""
    return go.Scattergl if points > WEBGL_POINTS else go.Scatter


def segments(
    x0: Iterable[float], y0: Iterable[float], x1: Iterable[float], y1: Iterable[float]
) -> tuple[list[float | None], list[float | None]]:
    """Line segments as one trace's x and y: `x0, x1, None, x0, x1, None, ...`.

    One trace of N segments draws far faster than N traces; the `None` breaks the line.
    """
    xs: list[float | None] = []
    ys: list[float | None] = []
    for a, b, c, d in zip(x0, y0, x1, y1, strict=True):
        xs += [float(a), float(c), None]
        ys += [float(b), float(d), None]
    return xs, ys


def fault_windows(faults: pd.DataFrame | None, end: float) -> list[dict[str, Any]]:
    """The fault windows as dicts `fault_id, kind, start, end, targets`, open ends closed
    at `end` (the run's end)."""
    if faults is None or faults.empty:
        return []
    rows = []
    for row in faults.itertuples(index=False):
        stop = float(row.end) if row.end is not None and not pd.isna(row.end) else end
        rows.append(
            {
                "fault_id": str(row.fault_id),
                "kind": str(row.kind),
                "start": float(row.start),
                "end": max(stop, float(row.start)),
                "targets": str(getattr(row, "targets", "") or ""),
            }
        )
    return rows


def add_fault_bands(
    fig: go.Figure,
    faults: pd.DataFrame | None,
    end: float,
    *,
    to_x: Callable[[float], float] | None = None,
    label: bool = True,
) -> go.Figure:
    """Shade every fault window of `faults` on every subplot of `fig`, in place.

    Each band is a rectangle shape named `fault:<fault_id>` spanning the window on the x
    axis (`to_x` maps seconds to another axis, e.g. event order) and the full height.
    `end` closes windows that last to the end of the run. With `label`, the kind is
    written at the top of the band. Returns `fig`.
    """
    windows = fault_windows(faults, end)
    convert = to_x or (lambda t: t)
    for key in _fault_legend(fig, windows):
        fig.add_trace(key)
    xaxes = _x_axes(fig)
    shapes, notes = [], []
    for window in windows:
        x0, x1 = convert(window["start"]), convert(window["end"])
        shapes += [_band(window, x0, x1, axis) for axis in xaxes]
        if label:
            notes.append(_band_label(window, x0, xaxes[0]))
    # Added in one go: plotly validates the whole list again at each add_shape, which
    # is quadratic in the number of bands (a long run may have hundreds of windows).
    if shapes:
        fig.update_layout(shapes=[*fig.layout.shapes, *shapes])
    if notes:
        fig.update_layout(annotations=[*fig.layout.annotations, *notes])
    return fig


def _fault_legend(fig: go.Figure, windows: list[dict[str, Any]]) -> list[go.Scatter]:
    """One empty trace per fault kind not yet in `fig`'s legend."""
    # One legend entry per fault kind says what a band's colour means, even when the
    # band's label sits outside the visible range.
    named = {trace.name for trace in fig.data}
    return [
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            marker={"symbol": "square", "size": 12, "color": FAULT_COLORS.get(kind, "#DDD")},
            name=f"fault: {kind}",
            legendgroup="faults",
            hoverinfo="skip",
        )
        for kind in dict.fromkeys(w["kind"] for w in windows)
        if f"fault: {kind}" not in named  # a second run's faults of the same kind
    ]


def _x_axes(fig: go.Figure) -> list[str]:
    """The x axes of every subplot of `fig`: `x`, `x2`, ... in order."""
    return sorted(
        {"x" + key[5:] for key in fig.layout.to_plotly_json() if key.startswith("xaxis")} | {"x"},
        key=lambda name: int(name[1:] or 1),
    )


def _band(window: dict[str, Any], x0: float, x1: float, axis: str) -> dict[str, Any]:
    """The rectangle of one fault window over the full height of one subplot."""
    return {
        "type": "rect",
        "name": FAULT_SHAPE_PREFIX + window["fault_id"],
        "xref": axis,
        "yref": "y" + axis[1:] + " domain",
        "x0": x0,
        "x1": x1,
        "y0": 0,
        "y1": 1,
        "fillcolor": FAULT_COLORS.get(window["kind"], "#DDDDDD"),
        "opacity": FAULT_OPACITY,
        "line_width": 0,
        "layer": "below",
    }


def _band_label(window: dict[str, Any], x0: float, axis: str) -> dict[str, Any]:
    """The kind (and targets) of one fault window, written above the plot at its start."""
    targets = f" ({window['targets']})" if window["targets"] else ""
    return {
        "x": x0,
        "xref": axis,
        "y": 1.0,
        "yref": "paper",
        "text": f"{window['kind']}{targets}",
        "showarrow": False,
        "xanchor": "left",
        "yanchor": "bottom",
        "font": {"size": 10, "color": "#555"},
        "name": FAULT_SHAPE_PREFIX + window["fault_id"],
    }


def fault_bands(fig: go.Figure) -> list[tuple[str, float, float]]:
    """The fault bands drawn on `fig`: (fault_id, x0, x1), one per window (not per axis)."""
    seen: dict[str, tuple[str, float, float]] = {}
    for shape in fig.layout.shapes:
        name = shape.name or ""
        if name.startswith(FAULT_SHAPE_PREFIX) and name not in seen:
            seen[name] = (name[len(FAULT_SHAPE_PREFIX) :], float(shape.x0), float(shape.x1))
    return list(seen.values())


def time_axis_title(logical: bool = False) -> str:
    """The x-axis title of a time axis."""
    return "event order (logical time)" if logical else "simulated time (s)"


def base_layout(
    fig: go.Figure, *, height: int, title: str | None = None, legend_below: bool = False
) -> go.Figure:
    """The layout every figure shares: white background, legend on top (or below the
    x axis, for figures shown side by side), tight margins."""
    legend = {"orientation": "h", "yanchor": "bottom", "y": 1.04, "x": 0}
    if legend_below:
        legend = {"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0}
    fig.update_layout(
        height=height,
        template="plotly_white",
        margin={"l": 10, "r": 10, "t": 60 if title else 40, "b": 40},
        legend=legend,
        hoverlabel={"align": "left"},
        title={"text": title, "x": 0, "font": {"size": 15}} if title else None,
    )
    return fig


def empty_figure(message: str, height: int = 240) -> go.Figure:
    """A blank figure that says why there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return base_layout(fig, height=height)


def finite(value: Any) -> bool:
    """True for a real, finite number (not None, not NaN)."""
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def spec_values(values: Any) -> np.ndarray:
    """A trace's data array from a figure's JSON spec, decoding plotly's typed arrays.

    Plotly writes numpy arrays as `{"dtype": ..., "bdata": base64}`; lists stay lists.
    """
    if isinstance(values, dict) and "bdata" in values:
        import base64

        raw = base64.b64decode(values["bdata"])
        array = np.frombuffer(raw, dtype=np.dtype(values["dtype"]))
        shape = values.get("shape")
        if shape:
            array = array.reshape([int(s) for s in str(shape).split(",")])
        return array
    return np.asarray(values, dtype=object)
