"""Plain-text reports of a run, for the terminal."""

from __future__ import annotations

from sim.run import Run


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
