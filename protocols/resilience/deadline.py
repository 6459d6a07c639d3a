"""Deadlines that shrink at every hop, as gRPC propagates them.

A request carries an absolute deadline. Each hop's timeout is the smaller of its own
timeout and what remains of the deadline, less a margin for the answer's way back; a
call that cannot finish in time fails fast with `deadline_exceeded` and puts nothing on
the wire. Without propagation each hop waits its own timeout, whatever its caller does:
the classic cascade where deeper hops work for callers that gave up long ago.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field


class DeadlineSettings(BaseModel):
    """Whether a channel propagates its caller's deadline, and the margin it keeps."""

    model_config = ConfigDict(extra="forbid")

    propagate: bool = Field(
        True, description="Cap each call's timeout by what remains of the incoming deadline."
    )
    margin: float = Field(
        0.0, ge=0, description="Seconds kept back from the remaining time for the way back."
    )
    cancel_on_timeout: bool = Field(
        False, description="When a call times out, tell the callee to stop working on it."
    )


class HopBudget:
    """The timeout and absolute deadline of one hop, or why it must not start."""

    __slots__ = ("deadline", "exceeded", "timeout")

    def __init__(self, timeout: float | None, deadline: float, exceeded: bool) -> None:
        self.timeout = timeout
        self.deadline = deadline
        self.exceeded = exceeded


def hop_budget(
    now: float,
    own_timeout: float | None,
    incoming_deadline: float,
    settings: DeadlineSettings | None,
) -> HopBudget:
    """This hop's timeout: its own, capped by the incoming deadline less the margin.

    `incoming_deadline` is absolute (math.inf when the caller set none).
    """
    own_deadline = now + own_timeout if own_timeout is not None else math.inf
    if settings is None or not settings.propagate or math.isinf(incoming_deadline):
        return HopBudget(own_timeout, own_deadline, False)
    remaining = incoming_deadline - settings.margin - now
    if remaining <= 0:
        return HopBudget(0.0, incoming_deadline - settings.margin, True)
    if own_timeout is None or remaining < own_timeout:
        return HopBudget(remaining, now + remaining, False)
    return HopBudget(own_timeout, own_deadline, False)
