"""Every chart of the dashboard as a pure function: a Run's tables in, a plotly Figure out.

No Streamlit here: notebooks and tests call the same builders the pages do.

>>> import sim
>>> from ui import figures
>>> run = sim.run("timeout-chain")
>>> rows = figures.window(run.messages, 25, 35, run.duration).rows
>>> fig = figures.spacetime(rows, run.agents["agent"].tolist(), run.duration, run.faults)
>>> len(figures.fault_bands(fig))
1
"""

from ui.figures import compare, failures, overview
from ui.figures.breakers import bands, breakers_figure, edge_label, state_at, transitions_table
from ui.figures.cascade import gave_up_at, trace_index, tree_order, waterfall
from ui.figures.common import (
    BREAKER_COLORS,
    FAULT_COLORS,
    PROTOCOL_COLORS,
    WEBGL_POINTS,
    add_fault_bands,
    empty_figure,
    fault_bands,
    fault_windows,
    scatter_class,
    segments,
    spec_values,
)
from ui.figures.compare import (
    comparison_figure,
    per_bucket,
    requests,
    requests_figure,
    summary_diff,
)
from ui.figures.queues import (
    busiest,
    dead_letters,
    idle_queues,
    queue_totals,
    queues_figure,
    topic_subscriptions,
)
from ui.figures.replay import (
    MAX_ARROWS,
    Filters,
    Window,
    causal,
    cursor_of,
    end_times,
    event_times,
    filter_messages,
    message_detail,
    message_label,
    move_cursor,
    spacetime,
    to_logical,
    window,
    with_cursor,
    with_playback,
)
from ui.figures.sweep import (
    advice_figure,
    amplification_vs_load,
    dead_letters_vs_load,
    goodput_vs_load,
    latency_vs_load,
    lost_vs_load,
    metric_vs_load,
)
from ui.figures.topology import Moment, broken_at, curve, graph, layout, moment, topology

__all__ = [
    "BREAKER_COLORS",
    "FAULT_COLORS",
    "MAX_ARROWS",
    "PROTOCOL_COLORS",
    "WEBGL_POINTS",
    "Filters",
    "Moment",
    "Window",
    "add_fault_bands",
    "advice_figure",
    "amplification_vs_load",
    "bands",
    "breakers_figure",
    "broken_at",
    "busiest",
    "causal",
    "compare",
    "comparison_figure",
    "cursor_of",
    "curve",
    "dead_letters",
    "dead_letters_vs_load",
    "edge_label",
    "empty_figure",
    "end_times",
    "event_times",
    "failures",
    "fault_bands",
    "fault_windows",
    "filter_messages",
    "gave_up_at",
    "goodput_vs_load",
    "graph",
    "idle_queues",
    "latency_vs_load",
    "layout",
    "lost_vs_load",
    "message_detail",
    "message_label",
    "metric_vs_load",
    "moment",
    "move_cursor",
    "overview",
    "per_bucket",
    "queue_totals",
    "queues_figure",
    "requests",
    "requests_figure",
    "scatter_class",
    "segments",
    "spacetime",
    "spec_values",
    "state_at",
    "summary_diff",
    "to_logical",
    "topic_subscriptions",
    "topology",
    "trace_index",
    "transitions_table",
    "tree_order",
    "waterfall",
    "window",
    "with_cursor",
    "with_playback",
]
