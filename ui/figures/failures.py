"""Failures where they happened, with the sentence that says why: what the simulator
knows and a tracing tool cannot (the fault that dropped a message, the breaker that
refused a call and since when, the answer that came after its caller had left).

`failure_events` turns a run's tables into one row per failure: where (an agent's
lifeline), when, a short label for the diagram, and a root-cause sentence. The
space-time diagram draws them as markers (`failure_traces`); Cascades lists a trace's
sentences (`root_causes`). Pure functions of the tables, no Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ui.figures.breakers import reason_text

EVENT_COLUMNS = ["time", "agent", "kind", "label", "detail", "correlation_id", "seq"]

# Each kind of failure: its legend name, marker, colour. Red family for failures that
# end a request, orange for what only costs time or work.
KINDS = {
    "gave up": ("caller gave up (timeout, deadline)", "x-thin-open", "#d62728"),
    "retry": ("retry (numbered)", "circle-open", "#ff7f0e"),
    "refused": ("refused (breaker, budget, limit)", "diamond-open", "#8c564b"),
    "5xx": ("5xx answer", "square-open", "#e377c2"),
    "late": ("answer after the caller left (wasted)", "triangle-right-open", "#9467bd"),
    "lost events": ("stream events lost", "star-open", "#17becf"),
    "dropped": ("message lost (fault)", "x-open", "#7f7f7f"),
}
GAVE_UP = ("timeout", "deadline_exceeded")
# Past this many markers in a window, labels are left off (markers and hover stay).
LABELLED = 150
TRACE_PREFIX = "trace:"  # a marker's customdata: the trace it links to
LIFT = 0.22  # how far above its agent's lifeline a marker sits (lanes are 1 apart)


def failure_events(
    messages: pd.DataFrame,
    spans: pd.DataFrame,
    breakers: pd.DataFrame | None = None,
    faults: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every failure of a run, one row each, in time order: `time, agent, kind, label,
    detail, correlation_id, seq` (`seq`: the message it concerns, or -1)."""
    parts = [
        _gave_up(spans),
        _retries(messages),
        _refused(spans, breakers),
        _server_errors(spans),
        _late_answers(messages, spans),
        _lost_events(spans),
        _dropped(messages, faults),
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=EVENT_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["time", "kind"], kind="stable").reset_index(drop=True)


def _frame(rows: dict[str, object]) -> pd.DataFrame:
    """Columns (equal-length sequences or scalars) as an events table."""
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def _gave_up(spans: pd.DataFrame) -> pd.DataFrame:
    """Callers that stopped waiting: client spans ended by a timeout or a deadline."""
    rows = spans[(spans["kind"] == "client") & spans["outcome"].isin(GAVE_UP)]
    rows = rows[rows["end"].notna()]
    if rows.empty:
        return _frame({})
    waited = rows["end"] - rows["start"]
    what = np.where(rows["outcome"] == "timeout", "timeout", "deadline")
    return _frame(
        {
            "time": rows["end"].to_numpy(dtype=float),
            "agent": rows["agent"].astype(str).to_numpy(),
            "kind": "gave up",
            "label": what,
            "detail": [
                f"{a} gave up on {p} after {w:.3f} s at {e:.3f} s ({k}"
                + (f": {err}" if err else "")
                + ")"
                for a, p, w, e, k, err in zip(
                    rows["agent"],
                    rows["peer"],
                    waited,
                    rows["end"],
                    what,
                    rows["error"],
                    strict=True,
                )
            ],
            "correlation_id": rows["correlation_id"].astype(str).to_numpy(),
            "seq": -1,
        }
    )


def _retries(messages: pd.DataFrame) -> pd.DataFrame:
    """Each retried request at its sender, numbered (attempt 2 is retry 1)."""
    rows = messages[(messages["kind"] == "request") & (messages["attempt"] > 1)]
    if rows.empty:
        return _frame({})
    number = rows["attempt"].astype(int) - 1
    return _frame(
        {
            "time": rows["sent_at"].to_numpy(dtype=float),
            "agent": rows["src"].astype(str).to_numpy(),
            "kind": "retry",
            "label": [f"retry {n}" for n in number],
            "detail": [
                f"{s} retried {t} to {d} (retry {n}, attempt {n + 1}) at {at:.3f} s"
                for s, t, d, n, at in zip(
                    rows["src"], rows["type"], rows["dst"], number, rows["sent_at"], strict=True
                )
            ],
            "correlation_id": rows["correlation_id"].astype(str).to_numpy(),
            "seq": rows["seq"].to_numpy(),
        }
    )


def breaker_since(breakers: pd.DataFrame | None, agent: str, target: str, time: float) -> str:
    """'breaker A → B OPEN since 7.97 s: <why it opened>' for the breaker's state at
    `time`, or '' when it was not open then (or the run has no such breaker)."""
    if breakers is None or breakers.empty:
        return ""
    pair = breakers[
        (breakers["agent"] == agent) & (breakers["target"] == target) & (breakers["time"] <= time)
    ].sort_values("time", kind="stable")
    if pair.empty or str(pair["to_state"].iloc[-1]) not in ("OPEN", "FORCED_OPEN"):
        return ""
    last = pair.iloc[-1]
    opened = pair[pair["from_state"] != pair["to_state"]]
    reason = reason_text(str(last["reason"]), last.get("calls")) if last["reason"] else ""
    since = float(opened["time"].iloc[-1]) if len(opened) else float(last["time"])
    return f"breaker {agent} → {target} {last['to_state']} since {since:.3f} s" + (
        f": {reason}" if reason else ""
    )


def _refused(spans: pd.DataFrame, breakers: pd.DataFrame | None) -> pd.DataFrame:
    """Calls refused before they reached the wire: an open breaker, a budget, a limit."""
    rows = spans[(spans["kind"] == "client") & (spans["outcome"] == "rejected")]
    if rows.empty:
        return _frame({})
    details = []
    for r in rows.itertuples(index=False):
        why = breaker_since(breakers, str(r.agent), str(r.peer), float(r.start))
        details.append(
            f"{r.agent} → {r.peer} refused at {r.start:.3f} s: "
            + (why or (str(r.error) if r.error else "rejected"))
        )
    return _frame(
        {
            "time": rows["start"].to_numpy(dtype=float),
            "agent": rows["agent"].astype(str).to_numpy(),
            "kind": "refused",
            "label": [
                "breaker" if "breaker" in d.split(": ", 1)[-1] else "refused" for d in details
            ],
            "detail": details,
            "correlation_id": rows["correlation_id"].astype(str).to_numpy(),
            "seq": -1,
        }
    )


def _server_errors(spans: pd.DataFrame) -> pd.DataFrame:
    """5xx answers, where the caller received them."""
    status = pd.to_numeric(spans["status"], errors="coerce")
    rows = spans[(spans["kind"] == "client") & (status >= 500) & spans["end"].notna()]
    if rows.empty:
        return _frame({})
    codes = pd.to_numeric(rows["status"]).astype(int)
    return _frame(
        {
            "time": rows["end"].to_numpy(dtype=float),
            "agent": rows["agent"].astype(str).to_numpy(),
            "kind": "5xx",
            "label": codes.astype(str).to_numpy(),
            "detail": [
                f"{p} answered {a} with {c} at {e:.3f} s" + (f" ({err})" if err else "")
                for a, p, c, e, err in zip(
                    rows["agent"], rows["peer"], codes, rows["end"], rows["error"], strict=True
                )
            ],
            "correlation_id": rows["correlation_id"].astype(str).to_numpy(),
            "seq": -1,
        }
    )


def _late_answers(messages: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """Answers delivered after the call they answer had ended (the caller gave up)."""
    answers = messages[(messages["kind"] == "response") & messages["delivered_at"].notna()]
    if answers.empty or spans.empty:
        return _frame({})
    by_id = spans.set_index("span_id")
    served = answers["span_id"].map(by_id["parent_id"])  # the server span's caller span
    ended = served.map(by_id["end"])
    outcome = served.map(by_id["outcome"])
    late = answers[(answers["delivered_at"] > ended + 1e-9) & outcome.isin(GAVE_UP)]
    if late.empty:
        return _frame({})
    gave_up = ended[late.index]
    after = late["delivered_at"] - gave_up
    return _frame(
        {
            "time": late["delivered_at"].to_numpy(dtype=float),
            "agent": late["dst"].astype(str).to_numpy(),
            "kind": "late",
            "label": "late",
            "detail": [
                f"{s} answered {d} {x:.3f} s after {d} gave up (at {g:.3f} s); the work was wasted"
                for s, d, x, g in zip(late["src"], late["dst"], after, gave_up, strict=True)
            ],
            "correlation_id": late["correlation_id"].astype(str).to_numpy(),
            "seq": late["seq"].to_numpy(),
        }
    )


def _lost_events(spans: pd.DataFrame) -> pd.DataFrame:
    """Streams that lost events (SSE without a replay buffer long enough)."""
    if "lost_events" not in spans.columns:
        return _frame({})
    lost = pd.to_numeric(spans["lost_events"], errors="coerce").fillna(0)
    rows = spans[(lost > 0) & spans["end"].notna()]
    if rows.empty:
        return _frame({})
    counts = lost[rows.index].astype(int)
    return _frame(
        {
            "time": rows["end"].to_numpy(dtype=float),
            "agent": rows["agent"].astype(str).to_numpy(),
            "kind": "lost events",
            "label": [f"{n} lost" for n in counts],
            "detail": [
                f"{a}'s stream from {p} lost {n} event(s)"
                for a, p, n in zip(rows["agent"], rows["peer"], counts, strict=True)
            ],
            "correlation_id": rows["correlation_id"].astype(str).to_numpy(),
            "seq": -1,
        }
    )


def _dropped(messages: pd.DataFrame, faults: pd.DataFrame | None) -> pd.DataFrame:
    """Messages the network lost, with the fault window that was open then."""
    lost = ("dropped", "partitioned", "unavailable")
    rows = messages[messages["outcome"].isin(lost)]
    if rows.empty:
        return _frame({})
    ended = rows["ended_at"].fillna(rows["sent_at"]) if "ended_at" in rows else rows["sent_at"]
    details = []
    for r, at in zip(rows.itertuples(index=False), ended, strict=True):
        fault = _fault_at(faults, float(r.sent_at), str(r.src), str(r.dst))
        why = (
            f"by the {fault}"
            if fault
            else f"({r.outcome}" + (f": {r.reason})" if r.reason else ")")
        )
        details.append(f"{r.type} {r.src} → {r.dst} {r.outcome} {why} at {at:.3f} s")
    return _frame(
        {
            "time": ended.to_numpy(dtype=float),
            "agent": rows["src"].astype(str).to_numpy(),
            "kind": "dropped",
            "label": rows["outcome"].astype(str).to_numpy(),
            "detail": details,
            "correlation_id": rows["correlation_id"].astype(str).to_numpy(),
            "seq": rows["seq"].to_numpy(),
        }
    )


def _fault_at(faults: pd.DataFrame | None, time: float, src: str, dst: str) -> str:
    """'loss fault f0-loss' for a network fault open at `time` on this pair, or ''."""
    if faults is None or faults.empty:
        return ""
    open_ = faults[(faults["start"] <= time) & (faults["end"].isna() | (faults["end"] > time))]
    for f in open_.itertuples(index=False):
        targets = [t for t in str(f.targets).split(",") if t]
        if not targets or src in targets or dst in targets:
            return f"{f.kind} fault {f.fault_id}"
    return ""


def root_causes(events: pd.DataFrame, trace: str, limit: int = 8) -> list[str]:
    """A trace's failures as sentences, in time order, each said once (at most
    `limit`, then how many more)."""
    rows = events[events["correlation_id"] == trace]
    said = list(dict.fromkeys(rows["detail"].tolist()))
    if len(said) > limit:
        return [*said[:limit], f"…and {len(said) - limit} more."]
    return said


def failure_traces(
    events: pd.DataFrame,
    lane_index: dict[str, int],
    to_x: object = None,
) -> list[go.Scatter]:
    """The failures as markers on the space-time diagram, one trace per kind: at the
    agent's lifeline when they happened, labelled (up to LABELLED of them), the
    root-cause sentence on hover, and the trace they belong to as customdata (a click
    selects it: Replay offers it on Cascades). `to_x` maps seconds to the x axis."""
    rows = events[events["agent"].isin(list(lane_index))]
    labelled = len(rows) <= LABELLED
    traces = []
    for kind, (name, symbol, color) in KINDS.items():
        part = rows[rows["kind"] == kind]
        if part.empty:
            continue
        x = part["time"].to_numpy(dtype=float)
        if callable(to_x):
            x = to_x(x)
        traces.append(
            go.Scatter(
                x=np.asarray(x, dtype=float).tolist(),
                # Just above the lifeline: apart from the arrows that start or end
                # there, so a click picks the failure, not an arrow.
                y=(part["agent"].map(lane_index).astype(float) - LIFT).tolist(),
                mode="markers+text" if labelled else "markers",
                text=part["label"].tolist() if labelled else None,
                textposition="top center",
                textfont={"size": 10, "color": color},
                marker={"symbol": symbol, "size": 13, "color": color, "line": {"width": 2}},
                hovertext=part["detail"].tolist(),
                hoverinfo="text",
                customdata=[TRACE_PREFIX + str(c) for c in part["correlation_id"]],
                name=name,
                legendgroup="failures",
                meta={"failures": kind},
            )
        )
    return traces


def counts(events: pd.DataFrame) -> dict[str, int]:
    """How many failures of each kind, in KINDS order."""
    seen = events["kind"].value_counts()
    return {k: int(seen[k]) for k in KINDS if k in seen.index}


def in_window(
    events: pd.DataFrame, start: float, end: float, agents: Sequence[str]
) -> pd.DataFrame:
    """The failures between `start` and `end` at one of `agents`."""
    t = events["time"]
    return events[(t >= start) & (t <= end) & events["agent"].isin(list(agents))]
