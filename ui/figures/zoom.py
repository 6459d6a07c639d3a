"""Zooming Replay's space-time diagram into a stretch dragged across it.

Streamlit's plotly chart reports box selections, not zoom: a box dragged across the
diagram with the toolbar's Box select (a horizontal band) names a stretch, which becomes
Replay's window, so the arrows the thinned sample left out are queried again and drawn.
Dragging still pans by default: in select mode plotly.js reports a click as an empty
selection, and clicking an arrow must keep picking its message. Pure functions of the
selection event, no Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Box select on the diagram picks a stretch of time: the whole height, any width.
DRAG = {"selectdirection": "h"}
HOW = "pick Box select in the diagram's toolbar and drag across a stretch"


def _get(value: Any, name: str) -> Any:
    """`value[name]` for Streamlit's read-only attribute dictionaries, or None."""
    if isinstance(value, Mapping) or hasattr(value, "get"):
        try:
            return value.get(name)
        except (AttributeError, TypeError):
            return None
    return None


def box_range(event: Any) -> tuple[float, float] | None:
    """The x range (axis units) of the box in a chart's selection event, or None when
    the selection is not a box (a click, or nothing)."""
    selection = _get(event, "selection")
    boxes = _get(selection, "box") if selection is not None else None
    if not boxes:
        return None
    xs = _get(boxes[0], "x")
    try:
        lo, hi = (float(v) for v in list(xs)[:2])
    except (TypeError, ValueError):
        return None
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo == hi:
        return None
    return min(lo, hi), max(lo, hi)


def to_seconds(span: tuple[float, float], events: np.ndarray | None) -> tuple[float, float]:
    """A range on the diagram's x axis in simulated seconds: itself in physical time, the
    times of the events it spans in logical time (x counts events)."""
    if events is None or len(events) == 0:
        return span
    last = len(events) - 1
    lo = float(events[int(np.clip(np.floor(span[0]), 0, last))])
    hi = float(events[int(np.clip(np.ceil(span[1]), 0, last))])
    return lo, hi


def window_of(
    event: Any, events: np.ndarray | None, duration: float, least: float
) -> tuple[float, float] | None:
    """The window (seconds, within the run, at least `least` wide) a box dragged across
    the diagram asks for, or None when the event holds no box."""
    span = box_range(event)
    if span is None:
        return None
    lo, hi = to_seconds(span, events)
    lo, hi = max(0.0, lo), min(float(duration), hi)
    if hi - lo < least:
        mid = (lo + hi) / 2
        lo = max(0.0, min(mid - least / 2, float(duration) - least))
        hi = min(float(duration), lo + least)
    return (lo, hi) if hi > lo else None
