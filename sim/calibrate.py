"""From a trace to a scenario that behaves like it: `python -m sim calibrate TRACE -o FILE`.

What a trace shows, and what the scenario takes from it:

- **agents**: the services that answered calls (server spans), virtual nodes (a database
  that recorded nothing) as services, and the root callers as clients;
- **calls**: each service's downstream calls, in the order its handlers make them most
  often, over the protocol the trace names (db, cache, rpc are HTTP-like calls here);
- **service time** per service: a handler span's length less its wait and the calls it
  made, fitted (`sim.fit`) with the fit's quality;
- **network latency** per pair of agents: the inferred messages' transit times, fitted;
- **workers**: the most handler spans a service ran at once;
- **errors**: the share of a service's handler spans that failed, as an `error` fault over
  the whole run when above zero;
- **workload**: each root caller's requests, as Poisson arrivals at the rate seen.

A trace's queue edges, retries, breakers and deadlines are not inferred: the report says
so, and the scenario is a starting point to add faults to and ask "what if".
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sim.fit import Fit, fit
from sim.trace.run import Run

# Protocols a scenario channel has; what a trace names otherwise is a request-response.
CHANNEL_PROTOCOLS = frozenset({"http", "sse", "websocket"})
TIE = 1e-6  # seconds: times this close are one instant (a trace's rounding)
MIN_TIMEOUT = 5.0  # seconds: a channel's timeout is never below the httpx default


@dataclass
class Calibration:
    """The scenario (as data, ready for YAML) and what each number was fitted from."""

    scenario: dict[str, Any]
    service_times: dict[str, Fit] = field(default_factory=dict)
    latencies: dict[tuple[str, str], Fit] = field(default_factory=dict)
    error_rates: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def report(self) -> str:
        """A table of every fit: what, distribution, n, mean, p50, p99, KS D, verdict."""
        lines = [f"{'what':<32} {'fit':<40} {'n':>6} {'p50':>9} {'p99':>9} {'KS D':>6}"]
        rows = [(f"service time {k}", v) for k, v in self.service_times.items()]
        rows += [(f"latency {a}<->{b}", v) for (a, b), v in self.latencies.items()]
        for what, f in rows:
            verdict = "" if f.acceptable else "  (poor fit)"
            lines.append(
                f"{what:<32} {_describe(f.dist):<40} {f.n:>6} {f.p50:>9.4g} {f.p99:>9.4g} "
                f"{f.ks:>6.3f}{verdict}"
            )
        for agent, rate in self.error_rates.items():
            lines.append(f"errors {agent}: {rate:.1%} of its handler spans failed")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def calibrate(run: Run, name: str | None = None) -> Calibration:
    """The scenario a trace (an imported or simulated Run) implies; see the module."""
    spans, messages = run.spans, run.messages
    duration = max(float(run.duration), 1e-9)
    requests = messages[messages["kind"] == "request"]
    responses = messages[messages["kind"] == "response"]
    notes: list[str] = []

    services = sorted(set(requests["dst"]))
    roots = spans[(spans["kind"] == "client") & ~spans["parent_id"].isin(set(spans["span_id"]))]
    roots = roots[~roots["agent"].isin(services)]
    clients = sorted(set(roots["agent"]))

    service_times = _service_times(spans, services, requests)
    latencies = _latencies(requests, responses)
    workers = {s: _concurrency(spans, s, requests) for s in services}
    errors = _error_rates(spans, services)
    calls = _calls(spans, services)

    agents: list[dict[str, Any]] = [{"id": c, "role": "client"} for c in clients]
    for service in services:
        agent: dict[str, Any] = {
            "id": service,
            "role": "service",
            "workers": max(1, workers.get(service, 1)),
            "service_time": service_times[service].dist,
        }
        if calls.get(service):
            agent["calls"] = calls[service]
        agents.append(agent)

    channels = []
    for (src, dst), group in requests.groupby(["src", "dst"], sort=True):
        protocol = Counter(group["protocol"]).most_common(1)[0][0]
        if protocol not in CHANNEL_PROTOCOLS:
            notes.append(f"{src} -> {dst} is {protocol} in the trace: an http channel here")
            protocol = "http"
        caller_spans = spans[spans["span_id"].isin(set(group["span_id"]))]
        longest = float((caller_spans["end"] - caller_spans["start"]).max())
        timeout = max(MIN_TIMEOUT, 2 * longest) if longest == longest else MIN_TIMEOUT
        channels.append(
            {"from": src, "to": dst, "protocol": protocol, "timeout": round(timeout, 3)}
        )
    if (messages["kind"] == "publish").any():
        notes.append("queued messages are in the trace but not in the scenario")

    all_latencies = fit(list(_transit(requests)) + list(_transit(responses)))
    network: dict[str, Any] = {"default": {"latency": all_latencies.dist}}
    links = [
        {"from": a, "to": b, "latency": f.dist} for (a, b), f in latencies.items() if f.n >= 20
    ]
    if links:
        network["links"] = links

    workload = []
    for (agent, peer), group in roots.groupby(["agent", "peer"], sort=True):
        if peer not in services:
            continue
        kind = Counter(group["name"]).most_common(1)[0][0]
        rate = len(group) / duration
        workload.append(
            {"from": agent, "to": peer, "type": str(kind),
             "arrivals": {"kind": "poisson", "rate": float(f"{rate:.6g}")}}
        )  # fmt: skip

    faults = [
        {"kind": "error", "targets": [s], "fraction": round(rate, 4), "status": 500, "start": 0}
        for s, rate in errors.items()
        if rate > 0
    ]
    scenario: dict[str, Any] = {
        "name": name or f"calibrated-{run.name}",
        "description": f"Calibrated from the trace of {run.name} by python -m sim calibrate.",
        "seed": 1,
        "duration": float(f"{duration:.6g}"),
        "agents": agents,
        "channels": channels,
        "network": network,
        "workload": workload,
    }
    if faults:
        scenario["faults"] = faults
    return Calibration(scenario, service_times, latencies, errors, notes)


def _transit(messages: pd.DataFrame) -> pd.Series:
    done = messages.dropna(subset=["delivered_at"])
    return (done["delivered_at"] - done["sent_at"]).clip(lower=0)


def _latencies(requests: pd.DataFrame, responses: pd.DataFrame) -> dict[tuple[str, str], Fit]:
    """Transit times per pair of agents, both directions together (links are symmetric)."""
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    for table in (requests, responses):
        done = table.dropna(subset=["delivered_at"])
        for src, dst, sent, arrived in zip(
            done["src"], done["dst"], done["sent_at"], done["delivered_at"], strict=True
        ):
            pair = (src, dst) if src <= dst else (dst, src)
            samples[pair].append(max(0.0, arrived - sent))
    return {pair: fit(values) for pair, values in sorted(samples.items())}


def _service_times(
    spans: pd.DataFrame, services: list[str], requests: pd.DataFrame
) -> dict[str, Fit]:
    """Each service's own work per request: handler time less wait and its calls."""
    handlers = spans[(spans["kind"] == "server") & spans["end"].notna()]
    handlers = handlers[handlers["outcome"] == "ok"]  # a failed one stopped early
    calls = spans[(spans["kind"] == "client") & spans["end"].notna()]
    in_calls = (calls["end"] - calls["start"]).groupby(calls["parent_id"]).sum()
    out: dict[str, Fit] = {}
    for service in services:
        mine = handlers[handlers["agent"] == service]
        if mine.empty:  # a virtual node: no handler spans, its callers' spans measure it
            virtual = requests[requests["dst"] == service]
            callers = spans[spans["span_id"].isin(set(virtual["span_id"]))]
            out[service] = fit((callers["end"] - callers["start"]).dropna().tolist())
            continue
        own = (mine["end"] - mine["start"]) - mine["wait"].fillna(0.0)
        own = own - mine["span_id"].map(in_calls).fillna(0.0)
        out[service] = fit(own.clip(lower=0).tolist())
    return out


def _concurrency(spans: pd.DataFrame, service: str, requests: pd.DataFrame) -> int:
    """The most requests `service` worked on at once: its handler spans (from their
    starts past waits), or for a virtual node the calls made to it."""
    mine = spans[(spans["kind"] == "server") & (spans["agent"] == service)]
    if mine.empty:
        callers = set(requests.loc[requests["dst"] == service, "span_id"])
        mine = spans[spans["span_id"].isin(callers)]
    if mine.empty:
        return 1
    # A worker freed and taken again at one instant must count once: an end up to a
    # microsecond (Jaeger's and Zipkin's resolution) after a start is taken as before it.
    starts = sorted((mine["start"] + mine["wait"].fillna(0.0)).tolist())
    ends = sorted(mine["end"].fillna(math.inf).tolist())
    released = peak = 0
    for started, start in enumerate(starts, start=1):
        while released < len(ends) and ends[released] <= start + TIE:
            released += 1
        peak = max(peak, started - released)
    return peak


def _error_rates(spans: pd.DataFrame, services: list[str]) -> dict[str, float]:
    handlers = spans[(spans["kind"] == "server") & spans["end"].notna()]
    out = {}
    for service in services:
        mine = handlers[handlers["agent"] == service]
        if not mine.empty:
            out[service] = float((mine["outcome"] != "ok").mean())
    return out


def _calls(spans: pd.DataFrame, services: list[str]) -> dict[str, list[str]]:
    """The most common sequence of callees of each service's handlers."""
    handlers = spans[spans["kind"] == "server"]
    calls = spans[spans["kind"] == "client"].sort_values(["start", "span_id"])
    by_parent = calls.groupby("parent_id")["peer"].apply(tuple)
    out: dict[str, list[str]] = {}
    for service in services:
        ids = handlers.loc[handlers["agent"] == service, "span_id"]
        sequences = Counter(by_parent.get(i, ()) for i in ids)
        if sequences:
            best = sequences.most_common(1)[0][0]
            out[service] = [peer for peer in best if peer]
    return out


def _describe(dist: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in dist.items() if k != "dist") + f" ({dist['dist']})"
