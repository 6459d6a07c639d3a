"""The agent graph: who calls whom, over which protocol, in which breaker state at a
moment of the run, with the links a partition cuts and the agents that are down.

The layout is networkx's: layered left to right (clients first) when the call graph has
no cycle, else a spring layout with a fixed seed, so the picture never moves between
reruns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from sim.scenario import Fault
from ui.figures.breakers import state_at
from ui.figures.common import (
    BREAKER_COLORS,
    PROTOCOL_COLORS,
    base_layout,
    color_for,
    fault_windows,
)

LAYOUT_SEED = 7
NODE_SIZE = 34  # pixels
LABEL_PREFIX = "label:"  # the name of an agent's label annotation
ROLE_COLORS = {"client": "#4c78a8", "service": "#72b7b2", "broker": "#f2cf5b"}
# Message kinds that go from the initiator of an exchange to its target; responses,
# acks and pongs go back and would draw every edge twice.
FORWARD_KINDS = ("request", "publish", "deliver", "event", "ping")

Positions = dict[str, tuple[float, float]]
Arc = tuple[np.ndarray, np.ndarray]  # the x and the y of a curved edge
Arcs = dict[tuple[str, str], Arc]


@dataclass
class Moment:
    """What is broken at one time: down agents, cut links and the other fault windows
    open then (loss, latency, errors...), as `kind on targets`."""

    down: dict[str, str] = field(default_factory=dict)  # agent -> "crashed" / "paused"
    cut: list[tuple[set[str], set[str], str]] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    def is_cut(self, a: str, b: str) -> bool:
        """True when a partition stops messages from `a` to `b` at this moment."""
        for left, right, direction in self.cut:
            if (a in left and b in right) or (direction == "both" and b in left and a in right):
                return True
        return False


def graph(
    agents: pd.DataFrame,
    messages: pd.DataFrame,
    spans: pd.DataFrame | None = None,
    channels: Iterable[tuple[str, str, str]] = (),
) -> nx.DiGraph:
    """The call graph: a node per agent (`role`), an edge per (initiator, target) with
    its `protocol` and `messages` (copies of messages in both directions).

    Edges come from client/producer spans, forward messages and declared `channels`
    (caller, callee, protocol), so a channel that carried nothing still shows.
    """
    empty_calls = pd.DataFrame(columns=["agent", "peer", "protocol", "n"])
    calls = empty_calls
    if spans is not None and not spans.empty:
        called = spans[spans["kind"].isin(["client", "producer"]) & (spans["peer"] != "")]
        calls = _counts(called, ["agent", "peer", "protocol"])
    forward = _counts(messages[messages["kind"].isin(FORWARD_KINDS)], ["src", "dst", "protocol"])
    return graph_from_counts(agents, calls, forward, _counts(messages, ["src", "dst"]), channels)


def _counts(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Rows counted per value of `by` (with `n`), in the order of each group's first row:
    what `Run.group_counts` gives."""
    if rows.empty:
        return pd.DataFrame(columns=[*by, "n"])
    first = pd.Series(np.arange(len(rows)), index=rows.index)
    grouped = first.groupby([rows[c] for c in by], sort=False)
    table = pd.DataFrame({"n": grouped.size(), "first": grouped.min()}).reset_index()
    return table.sort_values("first", kind="stable")[[*by, "n"]].reset_index(drop=True)


def graph_from_counts(
    agents: pd.DataFrame,
    calls: pd.DataFrame,
    forward: pd.DataFrame,
    pairs: pd.DataFrame,
    channels: Iterable[tuple[str, str, str]] = (),
) -> nx.DiGraph:
    """`graph` from counted rows (`Run.group_counts`, each in first-row order): client
    and producer calls with a peer per (agent, peer, protocol), forward messages per
    (src, dst, protocol), every message per (src, dst). An edge's protocol is its most
    frequent one (the first seen among equals)."""
    g = nx.DiGraph()
    for row in agents.itertuples(index=False):
        g.add_node(str(row.agent), role=str(getattr(row, "role", "service")))
    edges: dict[tuple[str, str], dict[str, Any]] = {}

    def edge(a: str, b: str, protocol: str) -> dict[str, Any]:
        return edges.setdefault((a, b), {"protocol": protocol, "messages": 0})

    for a, b, protocol in channels:
        edge(str(a), str(b), str(protocol))
    for (a, b), protocol in _modes(calls, ["agent", "peer"]):
        edge(a, b, protocol)["protocol"] = protocol
    if len(pairs):
        for (a, b), protocol in _modes(forward, ["src", "dst"]):
            if (b, a) not in edges:
                edge(a, b, protocol)
        totals = pairs.assign(src=pairs["src"].astype(str), dst=pairs["dst"].astype(str))
        for (a, b), n in totals.groupby(["src", "dst"], sort=True)["n"].sum().items():
            key = (str(a), str(b)) if (str(a), str(b)) in edges else (str(b), str(a))
            if key in edges:
                edges[key]["messages"] += int(n)
    for (a, b), data in edges.items():
        for node in (a, b):
            if node not in g:
                g.add_node(node, role="service")
        g.add_edge(a, b, **data)
    return g


def _modes(counts: pd.DataFrame, by: list[str]) -> list[tuple[tuple[str, str], str]]:
    """Each pair of `by`'s most frequent protocol (the first counted among equals), in
    sorted pair order."""
    if counts.empty:
        return []
    ranked = counts.assign(order=np.arange(len(counts))).sort_values(
        ["n", "order"], ascending=[False, True], kind="stable"
    )
    best = ranked.drop_duplicates(by)
    out = [
        ((str(a), str(b)), str(p)) for a, b, p in best[[*by, "protocol"]].itertuples(index=False)
    ]
    return sorted(out, key=lambda item: (item[0][0], item[0][1]))


def _mode(values: pd.Series) -> str:
    """The most frequent value, or '' when there is none."""
    return str(values.value_counts().idxmax()) if len(values) else ""


def layout(g: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Node positions in columns by call depth: clients first, then every agent at its
    shortest call distance from a client, in the agents table's order within a column.

    Agents no client reaches go in a last column. A graph with no client and no agent
    that nobody calls (a pure cycle) gets a spring layout with a fixed seed.
    """
    if g.number_of_nodes() == 0:
        return {}
    sources = [n for n in g.nodes if g.nodes[n].get("role") == "client"]
    sources = sources or [n for n in g.nodes if g.in_degree(n) == 0]
    if not sources:
        pos = nx.spring_layout(g, seed=LAYOUT_SEED)
        return {str(k): (float(v[0]), float(v[1])) for k, v in pos.items()}
    depth = nx.multi_source_dijkstra_path_length(g, sources)
    last = max(depth.values(), default=0) + 1
    columns: dict[int, list[str]] = {}
    for node in g.nodes:  # insertion order: the agents table's
        columns.setdefault(int(depth.get(node, last)), []).append(str(node))
    # Placed by hand, not by networkx's multipartite_layout: that one groups a column's
    # agents in a set, whose order follows the process's string hashing, so the picture
    # moved between server restarts.
    layers = sorted(columns)
    pos: dict[str, tuple[float, float]] = {}
    for i, layer in enumerate(layers):
        x = -1.0 + 2.0 * i / (len(layers) - 1) if len(layers) > 1 else 0.0
        column = columns[layer]
        for j, node in enumerate(column):
            pos[node] = (x, 1.0 - 2.0 * j / (len(column) - 1) if len(column) > 1 else 0.0)
    return pos


def curve(
    a: tuple[float, float], b: tuple[float, float], bend: float = 0.18, points: int = 17
) -> tuple[np.ndarray, np.ndarray]:
    """A quadratic arc from `a` to `b`, bulging to the left of the direction of travel
    by `bend` times its length: A -> B and B -> A arc apart instead of overlapping, and
    an edge between two agents of one column clears the agents between them."""
    (x0, y0), (x1, y1) = a, b
    dx, dy = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2 - dy * bend, (y0 + y1) / 2 + dx * bend
    t = np.linspace(0.0, 1.0, points)
    xs = (1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t**2 * x1
    ys = (1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t**2 * y1
    return xs, ys


def moment(
    faults: pd.DataFrame | None, scenario_faults: list[Fault], time: float, end: float
) -> Moment:
    """Crashed/paused agents and partitioned groups at `time`.

    `scenario_faults` (the scenario's fault models, in the faults table's order) give a
    partition's groups; without them a partition cuts its targets from everyone else.
    """
    out = Moment()
    for i, window in enumerate(fault_windows(faults, end)):
        if not window["start"] <= time < max(window["end"], window["start"] + 1e-9):
            continue
        targets = [t for t in window["targets"].split(",") if t]
        spec = scenario_faults[i] if i < len(scenario_faults) else None
        if window["kind"] in ("crash", "pause"):
            for agent in targets:
                out.down[agent] = "crashed" if window["kind"] == "crash" else "paused"
        elif window["kind"] == "partition":
            groups = [set(g) for g in (getattr(spec, "groups", None) or [])]
            direction = str(getattr(spec, "direction", "both"))
            if len(groups) >= 2:
                for j in range(1, len(groups)):
                    out.cut.append((groups[0], groups[j], direction))
            else:
                spec_targets = set(getattr(spec, "targets", None) or targets)
                out.cut.append((spec_targets, {"*"}, "both"))
        else:
            on = f" on {', '.join(targets)}" if targets else ""
            out.other.append(f"{window['kind']} fault{on}")
    return out


HEALTHY_BREAKER_STATES = ("CLOSED", "DISABLED")


def broken_at(at: Moment, breakers: dict[tuple[str, str], str]) -> list[str]:
    """Everything broken at one moment, one phrase each: agents down, partitions, other
    faults, and every breaker that is not closed (`breakers`: `state_at`'s answer)."""
    out = [f"{agent} {how}" for agent, how in sorted(at.down.items())]
    out += [
        f"partition {' '.join(sorted(a))} | {' '.join(sorted(b - {'*'})) or 'everyone else'}"
        for a, b, _ in at.cut
    ]
    out += at.other
    out += [
        f"breaker {a} → {b} {state}"
        for (a, b), state in sorted(breakers.items())
        if state not in HEALTHY_BREAKER_STATES
    ]
    return out


def topology(
    g: nx.DiGraph,
    breakers: pd.DataFrame | None = None,
    at: Moment | None = None,
    *,
    time: float | None = None,
    title: str | None = None,
) -> go.Figure:
    """The call graph drawn at `time`: edges coloured by protocol (one trace each) with
    an arrowhead at the callee, a marker mid-edge coloured by its breaker's state at
    `time`, cut links dashed red, and down agents crossed out."""
    pos = layout(g)
    at = at or Moment()
    states = state_at(breakers, time) if breakers is not None and time is not None else {}
    arcs: Arcs = {(a, b): curve(pos[a], pos[b]) for a, b in g.edges}
    edge_traces, arrowheads = _protocol_edges(g, pos, arcs)
    fig = go.Figure()
    for trace in (
        *edge_traces,
        *_edge_markers(g, arcs, states, at),
        *_agents(g, pos, at),
        *_breaker_legend(states),
    ):
        fig.add_trace(trace)
    # Names after the arrowheads, on a white ground: an arrow never hides a name.
    names = [
        {
            "x": pos[name][0],
            "y": pos[name][1],
            "text": name,
            "showarrow": False,
            "yshift": NODE_SIZE / 2 + 9,
            "bgcolor": "rgba(255,255,255,0.85)",
            "font": {"size": 12},
            "name": f"{LABEL_PREFIX}{name}",
        }
        for name in g.nodes
    ]
    # All at once: `add_annotation` copies every annotation so far at each call, which
    # took minutes for a fleet of a thousand agents.
    fig.update_layout(annotations=[*fig.layout.annotations, *arrowheads, *names])
    for role in sorted({str(g.nodes[n].get("role", "service")) for n in g.nodes}):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=f"agent: {role}",
                marker={
                    "size": 12,
                    "color": ROLE_COLORS.get(role, "#72b7b2"),
                    "line": {"width": 1.5, "color": "#333"},
                },
            )
        )
    return _frame(fig, pos, title)


def _protocol_edges(
    g: nx.DiGraph, pos: Positions, arcs: Arcs
) -> tuple[list[go.Scatter], list[dict[str, Any]]]:
    """One line trace per protocol (sorted by name) and an arrowhead per edge, whose
    width grows with the edge's traffic."""
    by_protocol: dict[str, list[tuple[str, str]]] = {}
    for a, b, data in g.edges(data=True):
        by_protocol.setdefault(str(data.get("protocol", "")), []).append((a, b))
    biggest = max((d.get("messages", 0) for _, _, d in g.edges(data=True)), default=1) or 1
    traces: list[go.Scatter] = []
    arrowheads: list[dict[str, Any]] = []
    for k, (protocol, edges) in enumerate(sorted(by_protocol.items())):
        color = color_for(protocol, PROTOCOL_COLORS, k)
        traces.append(_protocol_trace(protocol, color, [arcs[edge] for edge in edges]))
        for a, b in edges:
            messages = g.edges[a, b].get("messages", 0)
            width = 1 + 3 * math.log1p(messages) / math.log1p(biggest)
            arrowheads.append(_arrowhead(pos[b], arcs[a, b], color, width))
    return traces, arrowheads


def _protocol_trace(protocol: str, color: str, arcs: list[Arc]) -> go.Scatter:
    """The arcs of one protocol as a single line trace."""
    xs, ys = _joined(arcs)
    return go.Scatter(
        x=xs,
        y=ys,
        mode="lines",
        line={"color": color, "width": 2.5},
        name=f"{protocol or 'unknown'} calls",
        hoverinfo="skip",
    )


def _joined(arcs: Iterable[Arc]) -> tuple[list[float | None], list[float | None]]:
    """Arcs as one trace's x and y, each arc ended by None so the line breaks there."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for arc_x, arc_y in arcs:
        xs += [*arc_x.tolist(), None]
        ys += [*arc_y.tolist(), None]
    return xs, ys


def _arrowhead(callee: tuple[float, float], arc: Arc, color: str, width: float) -> dict[str, Any]:
    """The annotation that draws an arrowhead at the end of `arc`, pointing along its
    last stretch."""
    # The head stops short of the callee's marker, whose radius (standoff, in pixels)
    # would otherwise hide it.
    return {
        "x": callee[0],
        "y": callee[1],
        "ax": float(arc[0][-3]),
        "ay": float(arc[1][-3]),
        "xref": "x",
        "yref": "y",
        "axref": "x",
        "ayref": "y",
        "showarrow": True,
        "text": "",
        "arrowhead": 2,
        "arrowsize": 1.0,
        "arrowwidth": width,
        "arrowcolor": color,
        "standoff": NODE_SIZE / 2 + 2,
    }


def _edge_markers(
    g: nx.DiGraph, arcs: Arcs, states: dict[tuple[str, str], str], at: Moment
) -> list[go.Scatter]:
    """The dashed red overlay of the cut links (when any) and the markers mid-edge
    (when there are edges)."""
    cut = [(a, b) for a, b in g.edges if _edge_cut(at, a, b)]
    traces = []
    if cut:
        traces.append(_cut_trace([arcs[edge] for edge in cut]))
    if g.number_of_edges():
        traces.append(_marker_trace(g, arcs, states, set(cut)))
    return traces


def _edge_cut(at: Moment, a: str, b: str) -> bool:
    """True when a partition stops messages either way between `a` and `b`."""
    return at.is_cut(a, b) or at.is_cut(b, a) or _cut_from_all(at, a, b)


def _cut_trace(arcs: list[Arc]) -> go.Scatter:
    """The partitioned links, dashed red over their protocol's line."""
    xs, ys = _joined(arcs)
    return go.Scatter(
        x=xs,
        y=ys,
        mode="lines",
        name="partitioned",
        line={"color": "#d62728", "width": 4, "dash": "dash"},
        hoverinfo="skip",
    )


def _marker_trace(
    g: nx.DiGraph, arcs: Arcs, states: dict[tuple[str, str], str], cut: set[tuple[str, str]]
) -> go.Scatter:
    """A marker at the middle of every edge: its breaker's colour, an x when cut, and the
    edge's traffic on hover."""
    mid_x: list[float] = []
    mid_y: list[float] = []
    colors: list[str] = []
    symbols: list[str] = []
    sizes: list[int] = []
    lines: list[str] = []
    texts: list[str] = []
    for a, b, data in g.edges(data=True):
        arc_x, arc_y = arcs[a, b]
        state = states.get((a, b), "")
        is_cut = (a, b) in cut
        mid_x.append(float(arc_x[len(arc_x) // 2]))
        mid_y.append(float(arc_y[len(arc_y) // 2]))
        # Only a breaker or a cut gets a visible marker; the others keep an invisible one
        # so hovering any edge still tells its traffic.
        colors.append(BREAKER_COLORS.get(state, "rgba(0,0,0,0)"))
        symbols.append("x" if is_cut else "circle")
        sizes.append(16 if (state or is_cut) else 14)
        lines.append("#333" if (state or is_cut) else "rgba(0,0,0,0)")
        texts.append(_edge_hover(a, b, data, state, is_cut))
    return go.Scatter(
        x=mid_x,
        y=mid_y,
        mode="markers",
        name="breaker state",
        marker={
            "size": sizes,
            "color": colors,
            "symbol": symbols,
            "line": {"width": 1.5, "color": lines},
        },
        hovertext=texts,
        hoverinfo="text",
        showlegend=False,
    )


def _edge_hover(a: str, b: str, data: dict[str, Any], state: str, cut: bool) -> str:
    """An edge's hover text: its protocol, traffic, breaker state and partition."""
    return (
        f"<b>{a} → {b}</b> ({data.get('protocol', '')})<br>"
        f"{data.get('messages', 0):,} messages in the run"
        + (f"<br>breaker {state}" if state else "<br>no breaker transitions")
        + ("<br><b>partitioned</b>" if cut else "")
    )


def _agents(g: nx.DiGraph, pos: Positions, at: Moment) -> list[go.Scatter]:
    """The agents, coloured by role (grey when down), and a red cross over each agent
    that is down (when any)."""
    nodes = list(g.nodes)
    roles = [str(g.nodes[n].get("role", "service")) for n in nodes]
    traces = [
        go.Scatter(
            x=[pos[n][0] for n in nodes],
            y=[pos[n][1] for n in nodes],
            mode="markers",
            marker={
                "size": NODE_SIZE,
                "color": [
                    "#dddddd" if n in at.down else ROLE_COLORS.get(r, "#72b7b2")
                    for n, r in zip(nodes, roles, strict=True)
                ],
                "line": {"width": 2, "color": "#333"},
            },
            hovertext=[
                f"<b>{n}</b> ({r})" + (f"<br><b>{at.down[n]}</b>" if n in at.down else "")
                for n, r in zip(nodes, roles, strict=True)
            ],
            hoverinfo="text",
            name="agents",
            showlegend=False,
        )
    ]
    down = [n for n in nodes if n in at.down]
    if down:
        traces.append(
            go.Scatter(
                x=[pos[n][0] for n in down],
                y=[pos[n][1] for n in down],
                mode="markers",
                marker={"symbol": "x-thin", "size": 30, "line": {"width": 4, "color": "#d62728"}},
                name="down (crashed or paused)",
                hovertext=[f"{n}: {at.down[n]}" for n in down],
                hoverinfo="text",
            )
        )
    return traces


def _breaker_legend(states: dict[tuple[str, str], str]) -> list[go.Scatter]:
    """One empty trace per breaker state shown: the mid-edge markers have no legend of
    their own."""
    return [
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            name=f"breaker {state}",
            marker={
                "size": 12,
                "color": BREAKER_COLORS.get(state, "#fff"),
                "line": {"width": 1.5, "color": "#333"},
            },
        )
        for state in sorted(set(states.values()))
    ]


def _frame(fig: go.Figure, pos: Positions, title: str | None) -> go.Figure:
    """Hidden, fixed axes padded around the agents, and a height that fits the most
    crowded column."""
    xs_all = np.array([p[0] for p in pos.values()] or [0.0])
    ys_all = np.array([p[1] for p in pos.values()] or [0.0])
    pad_x = max(float(np.ptp(xs_all)) * 0.15, 0.3)
    pad_y = max(float(np.ptp(ys_all)) * 0.2, 0.3)
    widest = max((sum(1 for p in pos.values() if p[0] == x) for x, _ in pos.values()), default=1)
    base_layout(fig, height=max(340, 140 + 75 * widest), title=title)
    fig.update_xaxes(
        visible=False, range=[xs_all.min() - pad_x, xs_all.max() + pad_x], fixedrange=True
    )
    fig.update_yaxes(
        visible=False, range=[ys_all.min() - pad_y, ys_all.max() + pad_y], fixedrange=True
    )
    fig.update_layout(hovermode="closest")
    return fig


def _cut_from_all(at: Moment, a: str, b: str) -> bool:
    """True when a partition given by targets only (cut off from every other agent)
    separates `a` from `b`."""
    return any(right == {"*"} and (a in left) != (b in left) for left, right, _ in at.cut)
