"""The waterfall of one trace's spans: where a timeout cascaded and what ran on after.

As in Jaeger's trace timeline: one row per span in call-tree order (children under
their parent, by start time), a bar from start to end on the trace's time axis. On top:
the time spent queued before work began (`wait`), each hop's deadline, the moment a
timeout fired, and the work that went on after a caller up the chain had given up.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ui.figures.common import (
    SPAN_COLORS,
    add_fault_bands,
    base_layout,
    color_for,
    finite,
    time_axis_title,
)

GAVE_UP = ("timeout", "deadline_exceeded", "cancelled")
FAILED = ("error", "timeout", "deadline_exceeded", "rejected", "cancelled", "partial")


def trace_index(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per trace (correlation ID): `correlation_id, start, end, duration, spans,
    outcome` (of its root span), `timeouts` (spans that timed out) and `failed` (spans
    that did not end ok), sorted by start."""
    return trace_index_of([trace_part(spans)])


def trace_part(spans: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What `trace_index_of` combines from some of a run's spans: their counts and times
    per trace, and their root spans' outcomes (a batch of rows need not hold whole traces)."""
    # One grouping of plain columns (grouping by another Series was most of the time).
    flags = spans[["correlation_id", "start", "end"]].assign(
        timeouts=spans["outcome"].isin(GAVE_UP).to_numpy(),
        failed=spans["outcome"].isin(FAILED).to_numpy(),
    )
    counts = flags.groupby("correlation_id", sort=False).agg(
        start=("start", "min"),
        end=("end", "max"),
        spans=("start", "size"),
        timeouts=("timeouts", "sum"),
        failed=("failed", "sum"),
    )
    roots = spans.loc[spans["parent_id"] == "", ["correlation_id", "outcome"]]
    return counts, roots.drop_duplicates("correlation_id")


def trace_index_of(parts: Iterable[tuple[pd.DataFrame, pd.DataFrame]]) -> pd.DataFrame:
    """`trace_index` of spans read in parts (`trace_part` of each, in the table's order),
    so a run's spans need not be held at once."""
    columns = ["correlation_id", "start", "end", "duration", "spans", "outcome", "timeouts"]
    counted, rooted = [], []
    for counts, roots in parts:
        if len(counts):
            counted.append(counts)
            rooted.append(roots)
    if not counted:
        return pd.DataFrame(columns=[*columns, "failed"])
    if len(counted) == 1:
        table = counted[0]
    else:
        table = (
            pd.concat(counted)
            .groupby(level=0, sort=False)
            .agg(
                start=("start", "min"),
                end=("end", "max"),
                spans=("spans", "sum"),
                timeouts=("timeouts", "sum"),
                failed=("failed", "sum"),
            )
        )
    roots = pd.concat(rooted).drop_duplicates("correlation_id")
    table["outcome"] = roots.set_index("correlation_id")["outcome"].reindex(table.index)
    table["outcome"] = table["outcome"].fillna("")
    table["duration"] = table["end"] - table["start"]
    table = table.rename_axis("correlation_id").reset_index()
    return table.sort_values(["start", "correlation_id"], kind="stable")[
        [*columns, "failed"]
    ].reset_index(drop=True)


def tree_order(spans: pd.DataFrame) -> pd.DataFrame:
    """The spans of one trace in call-tree order, with a `depth` column (0 for roots).

    Children follow their parent, ordered by start; a span whose parent is not in the
    table is treated as a root.
    """
    if spans.empty:
        return spans.assign(depth=pd.Series(dtype="int64"))
    ordered = spans.sort_values(["start", "span_id"], kind="stable")
    ids = set(ordered["span_id"])
    children: dict[str, list[int]] = {}
    roots: list[int] = []
    for i, (span_id, parent) in enumerate(
        zip(ordered["span_id"], ordered["parent_id"], strict=True)
    ):
        del span_id
        if parent and parent in ids:
            children.setdefault(parent, []).append(i)
        else:
            roots.append(i)
    span_ids = ordered["span_id"].tolist()
    order: list[tuple[int, int]] = []
    stack = [(i, 0) for i in reversed(roots)]
    while stack:
        i, depth = stack.pop()
        order.append((i, depth))
        for child in reversed(children.get(span_ids[i], [])):
            stack.append((child, depth + 1))
    positions = [i for i, _ in order]
    out = ordered.iloc[positions].copy()
    out["depth"] = [d for _, d in order]
    return out.reset_index(drop=True)


def gave_up_at(tree: pd.DataFrame) -> pd.Series:
    """For each span (in `tree_order`), the earliest time a caller above it stopped
    waiting (timeout, deadline, cancel), or NaN: work after it is wasted."""
    by_id = dict(zip(tree["span_id"], range(len(tree)), strict=True))
    parents = tree["parent_id"].tolist()
    ends = tree["end"].tolist()
    outcomes = tree["outcome"].tolist()
    result = []
    for i in range(len(tree)):
        earliest = np.nan
        j = by_id.get(parents[i])
        while j is not None:
            if outcomes[j] in GAVE_UP and finite(ends[j]):
                earliest = ends[j] if np.isnan(earliest) else min(earliest, ends[j])
            j = by_id.get(parents[j])
        result.append(earliest)
    return pd.Series(result, index=tree.index, dtype="float64")


def _row_label(row: pd.Series) -> str:
    """A span's tick label: caller → callee, name and kind, one chevron per level."""
    # Tick labels are right-aligned, so an indent would not show: one chevron per level
    # of the call tree says how deep a span sits.
    depth = "›" * int(row["depth"])
    return f"{depth} {row['agent']} → {row['peer']} · {row['name']} ({row['kind']})".strip()


def waterfall(
    spans: pd.DataFrame,
    faults: pd.DataFrame | None = None,
    duration: float | None = None,
    *,
    title: str | None = None,
) -> go.Figure:
    """The waterfall of one trace's spans (rows of `spans` sharing a correlation ID).

    One horizontal bar per span (`base=start`, `x=end-start`), one trace per outcome;
    a hatched bar for the time queued (`wait`); a `|` marker at each deadline; an `x`
    where a timeout fired; a diamond at a model call's first token (`ttft`); a red hatched bar over the work done after a caller gave up.
    Spans still open at the end of the run stop at `duration`. Fault windows are shaded.
    """
    tree = tree_order(spans)
    end_of_run = duration if duration is not None else float(spans["end"].max() or 0.0)
    fig = go.Figure()
    if tree.empty:
        return base_layout(fig, height=200, title=title)
    starts = tree["start"].to_numpy(dtype=float)
    ends = tree["end"].fillna(end_of_run).to_numpy(dtype=float)
    for trace in (
        *_outcome_bars(tree, starts, ends),
        *_queued_bars(tree, starts),
        *_wasted_bars(tree, starts, ends),
        *_deadline_marks(tree),
        *_timeout_marks(tree, ends),
        *_first_token_marks(tree, starts),
    ):
        fig.add_trace(trace)
    add_fault_bands(fig, faults, end_of_run)
    base_layout(fig, height=max(260, 120 + 34 * len(tree)), title=title)
    fig.update_layout(barmode="overlay", bargap=0.3, hovermode="closest")
    fig.update_yaxes(
        tickvals=list(range(len(tree))),
        ticktext=[_row_label(r) for _, r in tree.iterrows()],
        range=[len(tree) - 0.5, -0.5],
        showgrid=False,
        fixedrange=True,
    )
    fig.update_xaxes(title=time_axis_title(), range=_time_range(tree, starts, ends))
    return fig


def _span_hover(row: pd.Series, start: float, end: float) -> str:
    """A span's hover text: caller, callee, timing, outcome, deadline and wait."""
    deadline = f"<br>deadline {row['deadline']:.3f} s" if finite(row["deadline"]) else ""
    wait = f"<br>queued {row['wait']:.3f} s" if finite(row["wait"]) and row["wait"] > 0 else ""
    error = f"<br>{row['error']}" if row.get("error") else ""
    ttft = row.get("ttft")
    first = f"<br>first token after {ttft:.3f} s" if finite(ttft) else ""
    return (
        f"<b>{row['agent']} → {row['peer']}</b> {row['name']} "
        f"({row['kind']}, {row['protocol']})<br>"
        f"{start:.3f}–{end:.3f} s ({end - start:.3f} s): "
        f"<b>{row['outcome']}</b>{error}{deadline}{wait}{first}<br>span {row['span_id']}"
    )


def _outcome_bars(tree: pd.DataFrame, starts: np.ndarray, ends: np.ndarray) -> list[go.Bar]:
    """The spans as bars from start to end, one trace per outcome (in order of first
    appearance) so the legend reads as a key."""
    texts = [_span_hover(tree.iloc[i], starts[i], ends[i]) for i in range(len(tree))]
    bars = []
    for k, outcome in enumerate(dict.fromkeys(tree["outcome"].tolist())):
        idx = np.flatnonzero(tree["outcome"].to_numpy() == outcome)
        bars.append(
            go.Bar(
                orientation="h",
                y=idx.tolist(),
                base=starts[idx].tolist(),
                x=(ends[idx] - starts[idx]).tolist(),
                marker={"color": color_for(outcome, SPAN_COLORS, k)},
                name=outcome,
                customdata=tree["span_id"].iloc[idx].tolist(),
                hovertext=[texts[i] for i in idx],
                hoverinfo="text",
                width=0.6,
            )
        )
    return bars


def _queued_bars(tree: pd.DataFrame, starts: np.ndarray) -> list[go.Bar]:
    """A hatched bar over the time each span waited in a queue before work began (none
    when no span waited)."""
    wait = tree["wait"].fillna(0.0).to_numpy(dtype=float)
    queued = np.flatnonzero(wait > 0)
    if not len(queued):
        return []
    return [
        go.Bar(
            orientation="h",
            y=queued.tolist(),
            base=starts[queued].tolist(),
            x=wait[queued].tolist(),
            marker={
                "color": "rgba(255,255,255,0.55)",
                "pattern": {"shape": "/", "fgcolor": "#555", "size": 6},
                "line": {"width": 0},
            },
            name="queued (wait)",
            hovertext=[f"queued {wait[i]:.3f} s before work began" for i in queued],
            hoverinfo="text",
            width=0.6,
        )
    ]


def _wasted_bars(tree: pd.DataFrame, starts: np.ndarray, ends: np.ndarray) -> list[go.Bar]:
    """A red hatched bar over the work each span did after a caller above it had given
    up (none when no work was wasted)."""
    given_up = gave_up_at(tree).to_numpy(dtype=float)
    wasted = np.flatnonzero(np.isfinite(given_up) & (ends > given_up))
    if not len(wasted):
        return []
    from_ = np.maximum(starts[wasted], given_up[wasted])
    return [
        go.Bar(
            orientation="h",
            y=wasted.tolist(),
            base=from_.tolist(),
            x=(ends[wasted] - from_).tolist(),
            marker={
                "color": "rgba(214,39,40,0.25)",
                "pattern": {"shape": "x", "fgcolor": "#d62728", "size": 6},
                "line": {"color": "#d62728", "width": 1},
            },
            name="after the caller gave up",
            hovertext=[
                f"{ends[i] - f:.3f} s of work after the caller gave up at {given_up[i]:.3f} s"
                for i, f in zip(wasted, from_, strict=True)
            ],
            hoverinfo="text",
            width=0.6,
        )
    ]


def _deadline_marks(tree: pd.DataFrame) -> list[go.Scatter]:
    """A `|` at each span's deadline (none when no span had one)."""
    deadlines = tree["deadline"].to_numpy(dtype=float)
    has_deadline = np.flatnonzero(np.isfinite(deadlines))
    if not len(has_deadline):
        return []
    return [
        go.Scatter(
            x=deadlines[has_deadline].tolist(),
            y=has_deadline.tolist(),
            mode="markers",
            marker={"symbol": "line-ns", "size": 22, "line": {"width": 3, "color": "#222"}},
            name="deadline",
            hovertext=[f"deadline {deadlines[i]:.3f} s" for i in has_deadline],
            hoverinfo="text",
        )
    ]


def _timeout_marks(tree: pd.DataFrame, ends: np.ndarray) -> list[go.Scatter]:
    """An `x` where a span gave up: timed out, hit its deadline or was cancelled."""
    fired = np.flatnonzero(tree["outcome"].isin(GAVE_UP).to_numpy())
    if not len(fired):
        return []
    return [
        go.Scatter(
            x=ends[fired].tolist(),
            y=fired.tolist(),
            mode="markers",
            marker={"symbol": "x", "size": 13, "color": "#d62728", "line": {"width": 1}},
            name="timeout fired",
            hovertext=[
                f"{tree['outcome'].iloc[i]} at {ends[i]:.3f} s: {tree['error'].iloc[i]}"
                for i in fired
            ],
            hoverinfo="text",
        )
    ]


def _first_token_marks(tree: pd.DataFrame, starts: np.ndarray) -> list[go.Scatter]:
    """A diamond where a model call's first token came (its `ttft` after the span's
    start: generated, on the model's span; received, on a stream's): the wait a user of
    a streamed answer feels, apart from the whole answer's."""
    if "ttft" not in tree:
        return []
    ttft = tree["ttft"].to_numpy(dtype=float)
    has = np.flatnonzero(np.isfinite(ttft))
    if not len(has):
        return []
    return [
        go.Scatter(
            x=(starts[has] + ttft[has]).tolist(),
            y=has.tolist(),
            mode="markers",
            marker={"symbol": "diamond", "size": 11, "color": "#9467bd", "line": {"width": 1}},
            name="first token",
            hovertext=[
                f"first token at {starts[i] + ttft[i]:.3f} s ({ttft[i]:.3f} s after the start)"
                for i in has
            ],
            hoverinfo="text",
        )
    ]


def _time_range(tree: pd.DataFrame, starts: np.ndarray, ends: np.ndarray) -> list[float]:
    """The x range: every bar and every deadline, padded by 3%."""
    deadlines = tree["deadline"].to_numpy(dtype=float)
    lo = float(starts.min())
    hi = float(np.nanmax(np.concatenate([ends, deadlines[np.isfinite(deadlines)]])))
    pad = max((hi - lo) * 0.03, 1e-3)
    return [lo - pad, hi + pad]
