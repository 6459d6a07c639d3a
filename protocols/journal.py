"""What protocols tell the trace: the journal interface they write to.

Protocols know nothing of how the simulator stores its trace; they open and close spans
and report queue samples through this interface, which `sim.trace.recorder.Recorder`
implements. Span handles are plain integers, so the hot path allocates nothing.

A class to derive from rather than a Protocol: compiled with the hot path (see
`protocols.compiled`), a call to a journal's method from compiled code is then a direct
call through the class's table of methods, with its numbers unboxed, instead of a
generic call that looks the method up and parses its arguments (four per request).
Each method here only says what the recorder does.
"""

from __future__ import annotations

import math
from typing import Any

from protocols._mypyc import mypyc_attr


# Derived from by the recorder, and by the spilling recorder (not compiled) in turn.
@mypyc_attr(allow_interpreted_subclasses=True)
class Journal:
    """The sink of spans, queue samples, breaker and task transitions."""

    def span_start(
        self,
        name: str,
        kind: str,
        agent: str,
        peer: str,
        protocol: str,
        start: float,
        parent: int = -1,
        correlation_id: str = "",
        deadline: float = math.nan,
    ) -> int:
        """Open a span; returns its handle."""
        raise NotImplementedError

    def span_end(
        self,
        span: int,
        outcome: str,
        end: float,
        error: str = "",
        wait: float | None = None,
        attempts: int | None = None,
        status: int | None = None,
        answered: int | None = None,
        lost_events: int | None = None,
    ) -> None:
        """Close a span with its outcome (a second close is ignored); `answered` is how
        many of a fan-out's calls answered, `lost_events` how many events a stream never
        received."""
        raise NotImplementedError

    def span_usage(self, span: int, input_tokens: int, output_tokens: int, cost: float) -> None:
        """Record the tokens a model call took and what they cost (its server span)."""
        raise NotImplementedError

    def span_first_token(self, span: int, at: float) -> None:
        """Record when a model call's first output token came: generated (its server
        span) or received (the span of the stream that carried it)."""
        raise NotImplementedError

    def dead_letter_copy(self, msg_id: str, subscription: str) -> None:
        """The dead letter of `msg_id` reported next is of its copy in `subscription`
        (a topic's copies share their msg_id; this says which one is dead)."""
        raise NotImplementedError

    def queue_sample(
        self,
        time: float,
        queue: str,
        depth: int,
        in_flight: int,
        dlq_depth: int = 0,
        enqueued: int = 0,
        acked: int = 0,
        redelivered: int = 0,
        dead_lettered: int = 0,
    ) -> None:
        """Record one sample of a queue."""
        raise NotImplementedError

    def breaker_transition(self, **row: Any) -> None:
        """Record a circuit breaker's state change."""
        raise NotImplementedError

    def task_transition(
        self,
        time: float,
        task_id: str,
        agent: str,
        from_state: str,
        to_state: str,
        reason: str,
        span: int = -1,
        correlation_id: str = "",
    ) -> None:
        """Record an agent-protocol task's state change (A2A), on the span serving it."""
        raise NotImplementedError

    def effect(self, time: float, agent: str, key: str, msg_id: str, correlation_id: str) -> None:
        """Record an effect applied by a receiver whose handler really ran, for `key`."""
        raise NotImplementedError
