"""Plain-text reports of a run, for the terminal."""

from __future__ import annotations

import pandas as pd

from sim.agents.steps import COMPLETE, STEPS
from sim.trace.run import Run


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def describe(run: Run) -> str:
    """A short summary: requests, outcomes, latency, goodput, amplification."""
    s = run.summary()
    lines = [
        f"{run.name} (seed {run.manifest.get('seed')}, {run.duration:g} s simulated, "
        f"{run.manifest.get('wall_seconds', 0):.2f} s wall)",
        f"  requests     {s['requests']}  ok {s['ok']} ({s['success_rate']:.1%})  "
        f"goodput {s['goodput']:.2f}/s",
        # Each outcome line sits under the count it breaks down.
        "  outcomes     " + _pairs(s["requests_by_outcome"]),
        f"  latency      p50 {_ms(s['p50'])}  p95 {_ms(s['p95'])}  p99 {_ms(s['p99'])}",
        f"  messages     {s['messages']}  amplification {s['amplification']:.2f} per request",
        "  on the wire  " + _pairs(s["messages_by_outcome"]),
    ]
    return "\n".join(lines)


def _pairs(counts: dict[str, int]) -> str:
    return "  ".join(f"{k} {v}" for k, v in counts.items()) or "-"


# --- the collaboration's nine steps (named by sim.agents.steps) ----------------


def task_spans(run: Run, correlation_id: str) -> pd.DataFrame:
    """The spans of one collaboration task that are steps, in start order, with `step`."""
    spans = run.spans
    mine = spans[spans["correlation_id"] == correlation_id]
    keys = {(name, kind, protocol): (step, what) for step, what, name, kind, protocol in STEPS}
    rows = zip(mine["name"], mine["kind"], mine["protocol"], strict=True)
    labels = [keys.get(row) for row in rows]
    picked = mine.assign(
        step=[lab[0] if lab else "" for lab in labels],
        what=[lab[1] if lab else "" for lab in labels],
    )
    picked = picked[picked["step"] != ""]
    # The orchestrator's own server span is step 0; a worker's HTTP spans are not steps.
    orchestrators = _orchestrators(run)
    picked = picked[(picked["protocol"] != "http") | picked["agent"].isin(orchestrators)]
    return picked.sort_values(["start", "span_id"], kind="stable")


def _orchestrators(run: Run) -> list[str]:
    agents = run.agents
    if agents.empty or "role" not in agents.columns:
        return []
    return agents.loc[agents["role"] == "orchestrator", "agent"].tolist()


def slowest_task(run: Run) -> str | None:
    """The correlation id of the slowest task an orchestrator completed, if any."""
    orchestrators = _orchestrators(run)
    spans = run.spans
    if not orchestrators or spans.empty:
        return None
    done = spans[
        (spans["name"] == COMPLETE)
        & spans["agent"].isin(orchestrators)
        & spans["outcome"].isin(["ok", "partial"])
    ]
    if done.empty:
        return None
    served = spans[
        (spans["kind"] == "server")
        & (spans["protocol"] == "http")
        & spans["agent"].isin(orchestrators)
        & spans["correlation_id"].isin(done["correlation_id"])
    ]
    served = served.assign(latency=served["end"] - served["start"])
    return str(served.sort_values(["latency", "span_id"]).iloc[-1]["correlation_id"])


def timeline(run: Run) -> str:
    """The nine-step timeline of the slowest completed collaboration task ("" if none)."""
    cid = slowest_task(run)
    if cid is None:
        return ""
    steps = task_spans(run, cid)
    t0 = steps["start"].min()
    lines = [f"slowest task {cid}: the nine steps"]
    for row in steps.itertuples(index=False):
        took = row.end - row.start
        lines.append(
            f"  {row.step:>4}  +{(row.start - t0) * 1000:9.1f} ms  {took * 1000:9.1f} ms  "
            f"{row.protocol:<9} {row.agent} -> {row.peer}  {row.what} ({row.outcome})"
        )
    return "\n".join(lines)
