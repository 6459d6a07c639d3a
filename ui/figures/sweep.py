"""Sweeps: a metric against offered load, one line per protocol, one panel per fault
case, error bars from the replications; and the evidence behind the advisor's answer.

The builders take the per-cell means of `sim.means(rows)` (rows are averaged
first when given instead) and work for any sweep: `x` and `color` default to the
built-in sweep's `load` and `protocol` axes and fall back to the first numeric axis and
the first other axis. A sweep with nothing to draw raises ValueError with one sentence.

    import sim
    from sim.advisor import Needs, advise
    from ui import figures

    rows = sim.sweep("protocols-under-load", replications=1)  # 64 runs
    means = sim.means(rows)
    figures.latency_vs_load(means)  # one panel per fault case
    figures.goodput_vs_load(means, faults="none")
    needs = Needs(loss_tolerable=False)
    figures.advice_figure(advise(rows, needs), needs)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from plotly.subplots import make_subplots

from sim.advisor import Advice, Needs
from ui.figures.common import EXTRA_COLORS, PROTOCOL_COLORS, base_layout, finite

PERCENTILES = ("p50", "p95", "p99")
# p99 is what the advisor judges on: the solid line; the others recede.
PERCENTILE_DASH = {"p50": "dot", "p95": "dash", "p99": "solid"}
FACET = "faults"
# Colours for the values of an axis that is not `protocol` (or an unknown protocol).
SERIES_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    *EXTRA_COLORS,
)
# Further axes that vary inside one line's colour: told apart by marker.
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star", "cross")
# Columns of a sweep table that are neither axes nor metrics.
NOT_AXES = frozenset({"index", "replication", "seed", "error", "wall_seconds", "runs", "errors"})
FADED = 0.35  # opacity of a protocol that misses a need on the advice figure
NEEDS = (("p99", "meets_p99"), ("loss", "meets_loss"), ("features", "meets_features"))


@dataclass(frozen=True)
class MetricStyle:
    """How a metric shows on an axis: its title, the factor from the sweep's unit to the
    shown one (seconds to ms), a tick format and whether the axis is logarithmic."""

    title: str
    scale: float = 1.0
    tickformat: str | None = None
    log: bool = False


METRIC_STYLES = {
    "p50": MetricStyle("p50 latency (ms)", 1000.0, log=True),
    "p95": MetricStyle("p95 latency (ms)", 1000.0, log=True),
    "p99": MetricStyle("p99 latency (ms)", 1000.0, log=True),
    "goodput": MetricStyle("goodput (ok requests/s)"),
    "requests": MetricStyle("requests per run"),
    "ok": MetricStyle("ok requests per run"),
    "success_rate": MetricStyle("requests ok", tickformat=".0%"),
    "error_rate": MetricStyle("requests failed", tickformat=".1%"),
    "messages": MetricStyle("wire messages per run"),
    "amplification": MetricStyle("wire messages per request"),
    "served": MetricStyle("requests served per run"),
    "redone": MetricStyle("requests served twice or more per run"),
    "held": MetricStyle("requests still held per run"),
    "lost": MetricStyle("requests lost per run"),
    "lost_rate": MetricStyle("requests lost", tickformat=".1%"),
    "dead_lettered": MetricStyle("dead-lettered messages per run"),
    "breaker_open_time": MetricStyle("breaker open (s per run)"),
    "wasted_work": MetricStyle("wasted work (s per run)"),
}


def style_of(metric: str) -> MetricStyle:
    """The axis style of a metric; an unknown metric (e.g. `errors.timeout`) is shown as
    it is, under its own name."""
    if metric in METRIC_STYLES:
        return METRIC_STYLES[metric]
    if metric.startswith("errors."):
        return MetricStyle(f"{metric.removeprefix('errors.')} errors per run")
    return MetricStyle(metric)


def sweep_axes(table: pd.DataFrame) -> list[str]:
    """The axis columns of a sweep's rows or means: the spec's axes when the frame still
    carries it (`attrs["sweep"]`), else every column that is not a metric or bookkeeping."""
    from sim.sweeps.stats import metric_columns

    spec = table.attrs.get("sweep") or {}
    named = [a.get("name") for a in spec.get("axes", []) if isinstance(a, dict)]
    named = [n for n in named if n in table.columns]
    if named:
        return named
    metrics = set(metric_columns(table))
    return [
        c
        for c in table.columns
        if c not in NOT_AXES
        and c not in metrics
        and not (c.endswith("_ci") and c.removesuffix("_ci") in metrics)
    ]


def as_means(table: pd.DataFrame) -> pd.DataFrame:
    """Per-cell means: `table` itself when it already is, else `sim.means(table)`
    (a sweep's rows, one per replication)."""
    if "replication" in table.columns and "runs" not in table.columns:
        from sim.sweeps.stats import means

        return means(table)
    return table


@dataclass(frozen=True)
class Plan:
    """Which columns a sweep figure draws: x, the colour of each line, one panel per
    value of `facet`, and the other axes that vary (`rest`, told apart by marker)."""

    frame: pd.DataFrame
    x: str
    color: str | None
    facet: str | None
    rest: tuple[str, ...]


def plan(
    means: pd.DataFrame,
    *,
    x: str = "load",
    color: str = "protocol",
    faults: str | None = None,
    facet: str | None = FACET,
) -> Plan:
    """Resolve which axis goes where, falling back when the sweep lacks the wanted ones.

    `x` falls back to the first numeric axis (else the first axis, as categories),
    `color` to the first axis left; `faults` keeps that case of the `faults` axis only
    (one panel), otherwise `facet` (if it is an axis) gives one panel per value.
    """
    frame = as_means(means)
    if frame.empty:
        raise ValueError("This sweep has no runs to plot.")
    axes = sweep_axes(frame)
    if not axes:
        raise ValueError("This sweep has no axis to plot against: it varies nothing.")
    if faults is not None:
        if FACET not in frame.columns:
            raise ValueError(f"This sweep has no {FACET} axis to pick the case '{faults}' from.")
        frame = frame[frame[FACET].astype(str) == str(faults)]
        if frame.empty:
            raise ValueError(f"This sweep has no {FACET} case named '{faults}'.")
        # One case left: the axis no longer varies, so it names no panel, colour or line.
        axes = [a for a in axes if a != FACET] or axes
        facet = None
    numeric = [a for a in axes if is_numeric_dtype(frame[a]) and not is_bool_dtype(frame[a])]
    x_axis = x if x in axes else (numeric[0] if numeric else axes[0])
    facet_axis = facet if facet in axes and facet != x_axis and faults is None else None
    left = [a for a in axes if a not in (x_axis, facet_axis)]
    color_axis = color if color in left else (left[0] if left else None)
    rest = tuple(a for a in left if a != color_axis and frame[a].nunique(dropna=False) > 1)
    return Plan(frame.reset_index(drop=True), x_axis, color_axis, facet_axis, rest)


def metric_vs_load(
    means: pd.DataFrame,
    metric: str,
    faults: str | None = None,
    title: str | None = None,
    *,
    x: str = "load",
    color: str = "protocol",
    facet: str | None = FACET,
) -> go.Figure:
    """Any metric of a sweep against offered load: one line per protocol (colour), one
    panel per fault case, error bars of the 95% confidence interval (`<metric>_ci`).

    `faults` names one fault case to draw alone. Latency is shown in ms and loads as a
    percentage of capacity; the traces' `meta` holds `series`, `metric` and `facet`.
    """
    return _lines(means, [metric], faults, title, x=x, color=color, facet=facet)


def latency_vs_load(
    means: pd.DataFrame,
    faults: str | None = None,
    *,
    x: str = "load",
    color: str = "protocol",
    facet: str | None = FACET,
    percentiles: Sequence[str] = PERCENTILES,
    title: str | None = "Latency percentiles against offered load",
) -> go.Figure:
    """p50, p95 and p99 latency (ms, log scale) against offered load: one colour per
    protocol, one dash per percentile, one panel per fault case, error bars from the
    replications' confidence intervals."""
    table = as_means(means)
    present = [p for p in percentiles if p in table.columns]
    if not present and not table.empty:
        raise ValueError("This sweep has no latency percentiles to plot.")
    return _lines(table, present, faults, title, x=x, color=color, facet=facet)


def goodput_vs_load(means: pd.DataFrame, faults: str | None = None, **kwargs: Any) -> go.Figure:
    """Goodput (ok requests per second) against offered load, per protocol."""
    kwargs.setdefault("title", "Goodput against offered load")
    return metric_vs_load(means, "goodput", faults, **kwargs)


def amplification_vs_load(
    means: pd.DataFrame, faults: str | None = None, **kwargs: Any
) -> go.Figure:
    """Wire messages per request against offered load, per protocol: what retries,
    acks, redeliveries and stream events cost on the wire."""
    kwargs.setdefault("title", "Message amplification against offered load")
    return metric_vs_load(means, "amplification", faults, **kwargs)


def dead_letters_vs_load(
    means: pd.DataFrame, faults: str | None = None, **kwargs: Any
) -> go.Figure:
    """Messages parked in dead-letter queues per run against offered load, per protocol."""
    kwargs.setdefault("title", "Dead-lettered messages against offered load")
    return metric_vs_load(means, "dead_lettered", faults, **kwargs)


def lost_vs_load(means: pd.DataFrame, faults: str | None = None, **kwargs: Any) -> go.Figure:
    """The share of requests lost (never answered, never held) against offered load."""
    kwargs.setdefault("title", "Requests lost against offered load")
    return metric_vs_load(means, "lost_rate", faults, **kwargs)


def _lines(
    means: pd.DataFrame,
    metrics: Sequence[str],
    faults: str | None,
    title: str | None,
    *,
    x: str,
    color: str,
    facet: str | None,
) -> go.Figure:
    """The figure behind every `*_vs_load` builder: `metrics` against x, one line per
    series, one panel per facet value (see `plan`)."""
    p = plan(means, x=x, color=color, faults=faults, facet=facet)
    _check_metrics(p.frame, metrics)
    panels = list(dict.fromkeys(p.frame[p.facet])) if p.facet else [None]
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        shared_yaxes=True,
        horizontal_spacing=0.03 if len(panels) > 1 else 0.0,
        subplot_titles=[f"{p.facet}: {v}" for v in panels] if p.facet else None,
    )
    for col, trace in _line_traces(p, metrics, panels):
        fig.add_trace(trace, row=1, col=col)
    return _lay_out_lines(fig, p, metrics, title)


@dataclass(frozen=True)
class _Line:
    """One line of a sweep figure in one panel: its label, colour and marker, the panel's
    facet value (None when there is one panel) and whether it enters the legend."""

    label: str
    color: str
    symbol: str
    panel: Any
    legend: bool


def _check_metrics(frame: pd.DataFrame, metrics: Sequence[str]) -> None:
    """Raise ValueError when a metric is missing, or none has a value to draw."""
    for metric in metrics:
        if metric not in frame.columns:
            raise ValueError(f"This sweep has no metric named '{metric}'.")
    if not any(frame[m].notna().any() for m in metrics):
        raise ValueError(
            f"This sweep has no values of {', '.join(metrics)} to plot: "
            "every run failed or none measured it."
        )


def _line_traces(
    p: Plan, metrics: Sequence[str], panels: list[Any]
) -> list[tuple[int, go.Scatter]]:
    """Every trace as (panel column, trace): per panel, per line (in order of first
    appearance), per metric."""
    frame = p.frame
    keys = [k for k in (p.color, *p.rest) if k]
    # One line per combination of the colour axis and the other varying axes.
    line_of = pd.Series([_series_key(row, keys) for _, row in frame.iterrows()], index=frame.index)
    colors = _colors(frame, p.color)
    symbols = _symbols(frame, p.rest)
    numeric_x = is_numeric_dtype(frame[p.x]) and not is_bool_dtype(frame[p.x])
    traces = []
    for col, panel in enumerate(panels, start=1):
        part = frame if panel is None else frame[frame[p.facet] == panel]
        for key in dict.fromkeys(line_of):
            cell = part[line_of[part.index] == key]
            if cell.empty:
                continue
            if numeric_x:
                cell = cell.sort_values(p.x, kind="stable")
            first = cell.iloc[0]
            line = _Line(
                label=_series_label(first, p.color, p.rest),
                color=colors.get(first[p.color] if p.color else None, "#1f77b4"),
                symbol=symbols.get(_series_key(first, list(p.rest)), "circle"),
                panel=panel,
                legend=col == 1,
            )
            xs = cell[p.x].to_numpy() if numeric_x else cell[p.x].astype(str).tolist()
            traces += [
                (col, _metric_trace(p, cell, xs, metric, metrics, line)) for metric in metrics
            ]
    return traces


def _metric_trace(
    p: Plan, cell: pd.DataFrame, xs: Any, metric: str, metrics: Sequence[str], line: _Line
) -> go.Scatter:
    """One metric of one line's cells, scaled to its unit, with its error bars; with
    several metrics (the latency percentiles) each gets a dash and its name."""
    factor = style_of(metric).scale
    several = len(metrics) > 1
    name = f"{line.label} {metric}" if several else line.label
    ci_column = f"{metric}_ci"
    ci = cell[ci_column].to_numpy(dtype=float) * factor if ci_column in cell.columns else None
    return go.Scatter(
        x=xs,
        y=cell[metric].to_numpy(dtype=float) * factor,
        error_y=_error_bars(ci),
        mode="lines+markers",
        name=name,
        legendgroup=name,
        showlegend=line.legend,
        line={
            "color": line.color,
            "dash": PERCENTILE_DASH.get(metric, "solid") if several else "solid",
            "width": 2.2 if not several or metric == "p99" else 1.4,
        },
        marker={"size": 6, "symbol": line.symbol},
        meta={
            "series": line.label,
            "metric": metric,
            "facet": None if line.panel is None else str(line.panel),
        },
        hovertemplate=_hover(p, metric, name, line.panel),
    )


def _lay_out_lines(fig: go.Figure, p: Plan, metrics: Sequence[str], title: str | None) -> go.Figure:
    """Legend, axis titles and the y axis's scale and format, from the first metric's
    style."""
    style = style_of(metrics[0])
    # Legend under the panels: above them it collides with the title and panel titles.
    base_layout(fig, height=480, title=title, legend_below=True)
    fig.update_layout(legend={"y": -0.2})
    x_title = "offered load (% of capacity)" if p.x == "load" else p.x
    fig.update_xaxes(title=x_title)
    if p.x == "load":
        fig.update_xaxes(tickformat=".0%")
    y_title = style.title if len(metrics) == 1 else "latency (ms)"
    fig.update_yaxes(title=y_title, row=1, col=1)
    if style.log:
        shown = pd.concat([p.frame[m] for m in metrics]).to_numpy(dtype=float) * style.scale
        ticks = log_ticks(shown)
        fig.update_yaxes(
            type="log", tickvals=ticks or None, ticktext=[f"{t:,g}" for t in ticks] or None
        )
    else:
        fig.update_yaxes(rangemode="tozero")
    if style.tickformat:
        fig.update_yaxes(tickformat=style.tickformat)
    return fig


def log_ticks(values: Any) -> list[float]:
    """Ticks at 1, 2 and 5 times each power of ten across the values' range.

    Plotly's own log ticks label 2s and 5s with bare digits ("1000, 2, 5, 10k"), which
    reads as noise; these read as plain numbers.
    """
    positive = [float(v) for v in values if finite(v) and float(v) > 0]
    if not positive:
        return []
    lo, hi = min(positive), max(positive)
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks = [m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5)]
    return [t for t in ticks if lo / 2.5 <= t <= hi * 2.5]


def _series_key(row: pd.Series, keys: Sequence[str]) -> str:
    """The line a row belongs to: its values of `keys`, joined."""
    # A string, not a tuple: pandas compares a Series to a tuple element by element.
    return "\x1f".join(str(row[k]) for k in keys)


def _series_label(row: pd.Series, color: str | None, rest: Sequence[str]) -> str:
    """A line's legend label: its colour axis's value, then the other axes'."""
    parts = [str(row[color])] if color else []
    parts += [f"{axis}={row[axis]}" for axis in rest]
    return " · ".join(parts) or "all runs"


def _colors(frame: pd.DataFrame, axis: str | None) -> dict[Any, str]:
    """A colour per value of `axis`: a protocol's own, else the next series colour."""
    if axis is None:
        return {}
    out: dict[Any, str] = {}
    extra = 0
    for value in dict.fromkeys(frame[axis]):
        if str(value) in PROTOCOL_COLORS:
            out[value] = PROTOCOL_COLORS[str(value)]
        else:
            out[value] = SERIES_COLORS[extra % len(SERIES_COLORS)]
            extra += 1
    return out


def _symbols(frame: pd.DataFrame, rest: Sequence[str]) -> dict[str, str]:
    """A marker symbol per combination of the other varying axes (`rest`)."""
    if not rest:
        return {}
    combos = dict.fromkeys(_series_key(row, list(rest)) for _, row in frame.iterrows())
    return {combo: SYMBOLS[k % len(SYMBOLS)] for k, combo in enumerate(combos)}


def _error_bars(ci: Any) -> dict[str, Any]:
    """Plotly's `error_y` for half-widths `ci`; hidden when none is finite."""
    if ci is None or not any(finite(v) for v in ci):
        return {"visible": False}
    # One replication gives no interval (NaN): that point simply has no bar.
    return {"type": "data", "array": ci, "visible": True, "thickness": 1.2, "width": 4}


def _hover(p: Plan, metric: str, name: str, panel: Any) -> str:
    """A trace's hover template: the series, its value in its unit, the x and panel."""
    x = "%{x:.0%}" if p.x == "load" else "%{x}"
    style = style_of(metric)
    y = f"%{{y:{style.tickformat}}}" if style.tickformat else "%{y:.4g}"
    unit = " ms" if style.scale == 1000.0 else ""
    where = f" ({p.facet}: {panel})" if panel is not None else ""
    return f"{name}: {y}{unit} at {p.x} {x}{where}<extra>{metric}</extra>"


def advice_figure(advice: Advice, needs: Needs | None = None) -> go.Figure:
    """The evidence behind an `sim.advisor.Advice` at the load it judged: per protocol,
    p99 on a clean network (ms, with its confidence interval) and the share of requests
    lost under faults. Protocols that meet every need are drawn solid, the others faded;
    the recommended stack is outlined and labelled (the carrier "recommended", a
    protocol added for a feature "+ progress stream" or "+ two-way talk"). The needs
    (`needs`, else those the advice was made for) draw the p99 target and the loss
    allowed as lines.

    Each bar trace's `meta` holds `protocol`, `recommended`, `meets` and `misses`.
    """
    if needs is None:
        needs = getattr(advice, "needs", None)
    verdicts: pd.DataFrame = advice.verdicts
    if verdicts is None or verdicts.empty:
        raise ValueError("The advice has no protocols to show.")
    stack = [str(p) for p in advice.stack]
    faulty = "lost_rate_faults" in verdicts.columns and verdicts["lost_rate_faults"].notna().any()
    lost_column = "lost_rate_faults" if faulty else "lost_rate"
    lost_title = "requests lost under faults" if faulty else "requests lost"
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.12,
        subplot_titles=["p99 latency, clean network (ms)", lost_title],
    )
    for k, row in enumerate(verdicts.to_dict(orient="records")):
        for col, bar in _verdict_bars(row, k, stack, lost_column):
            fig.add_trace(bar, row=1, col=col)
    _add_need_lines(fig, needs)
    load = _num(getattr(advice, "load", math.nan))
    at = f" at {load:.0%} of capacity" if finite(load) else ""
    base_layout(fig, height=400, title=f"Evidence{at}: {' + '.join(stack)}")
    fig.update_layout(showlegend=False, bargap=0.35, uniformtext={"minsize": 11, "mode": "show"})
    fig.update_yaxes(title="p99 (ms)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title="lost", tickformat=".1%", rangemode="tozero", row=1, col=2)
    return fig


def _verdict_text(row: dict[str, Any], stack: list[str], misses: list[str]) -> str:
    """What a protocol's bars say: its place in the stack, or the needs it misses."""
    protocol = str(row["protocol"])
    if protocol in stack and protocol != stack[0]:
        # Added to the carrier for a feature only: its own loss is not the stack's.
        return "+ two-way talk" if row.get("bidirectional") else "+ progress stream"
    if protocol in stack:
        return "recommended"
    if not misses:
        return "meets the needs"
    return "misses " + ", ".join(misses)


def _verdict_bars(
    row: dict[str, Any], k: int, stack: list[str], lost_column: str
) -> list[tuple[int, go.Bar]]:
    """One protocol's two bars as (panel column, bar): p99 in ms with its confidence
    interval, and the share lost; outlined when recommended, faded when it misses a
    need."""
    protocol = str(row["protocol"])
    misses = [need for need, column in NEEDS if not bool(row.get(column, True))]
    recommended = protocol in stack
    meets = not misses
    text = _verdict_text(row, stack, misses)
    color = PROTOCOL_COLORS.get(protocol, SERIES_COLORS[k % len(SERIES_COLORS)])
    marker = {
        "color": color,
        "opacity": 1.0 if meets or recommended else FADED,
        "line": {"color": "#111111", "width": 3 if recommended else 0},
    }
    meta = {"protocol": protocol, "recommended": recommended, "meets": meets, "misses": misses}
    p99_ci = row.get("p99_ci", math.nan)
    bars = []
    for col, y, error in (
        (1, _num(row.get("p99")) * 1000.0, _num(p99_ci) * 1000.0),
        (2, _num(row.get(lost_column)), math.nan),
    ):
        bar = go.Bar(
            x=[protocol],
            y=[y],
            error_y=(
                {"type": "data", "array": [error], "visible": True}
                if finite(error)
                else {"visible": False}
            ),
            marker=marker,
            text=[text],
            textposition="outside",
            cliponaxis=False,
            name=protocol,
            legendgroup=protocol,
            showlegend=col == 1,
            meta=meta,
            hovertemplate=(
                f"{protocol}: %{{y:.0f}} ms<extra>{text}</extra>"
                if col == 1
                else f"{protocol}: %{{y:.2%}} lost<extra>{text}</extra>"
            ),
        )
        bars.append((col, bar))
    return bars


def _add_need_lines(fig: go.Figure, needs: Needs | None) -> None:
    """Draw the p99 target (left panel) and the loss allowed (right panel), when the
    needs set them."""
    if needs is not None and getattr(needs, "p99", None):
        fig.add_hline(
            y=float(needs.p99) * 1000.0,
            line={"color": "#d62728", "dash": "dash", "width": 1.5},
            annotation_text=f"target {float(needs.p99) * 1000:.0f} ms",
            annotation_position="top left",
            row=1,
            col=1,
        )
    if needs is not None and not getattr(needs, "loss_tolerable", True):
        fig.add_hline(
            y=float(needs.max_loss),
            line={"color": "#d62728", "dash": "dash", "width": 1.5},
            annotation_text=f"at most {float(needs.max_loss):.1%}",
            annotation_position="top left",
            row=1,
            col=2,
        )


def _num(value: Any) -> float:
    """`value` as a float; NaN when it is missing or not a number."""
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


__all__ = [
    "METRIC_STYLES",
    "PERCENTILES",
    "MetricStyle",
    "Plan",
    "advice_figure",
    "amplification_vs_load",
    "as_means",
    "dead_letters_vs_load",
    "goodput_vs_load",
    "latency_vs_load",
    "lost_vs_load",
    "metric_vs_load",
    "plan",
    "style_of",
    "sweep_axes",
]
