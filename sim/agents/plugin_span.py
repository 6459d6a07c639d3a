"""Spans of a plugin role's own: `ctx.span(name, ...)` marks a step of its work on the
record, as the built-in roles mark theirs (the collaboration's `progress`, `review`,
`task.complete`).

    with ctx.span("review", peer="critic", protocol="websocket") as review:
        ws = yield ctx.connect("critic")      # its span hangs under "review"
        ...
        review.end("ok", attempts=rounds)     # else "ok" when the block ends

While the `with` block runs, the calls, fan-outs, streams, sessions, publishes and
spans the code starts are children of this span (not of the request's), in the
request's trace. A block left by an exception ends the span `error` with the
exception's text (`crashed` when the agent crashed; `cancelled` when the caller
cancelled the request); `end()` called first decides instead. A span opened without `with`
is ended by `end()` only (an open span reads `open` in the trace).
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

import simpy

from protocols.journal import Journal


class SpanOwner(Protocol):
    """What a span needs from the code's context: the clock, and its parents' stack."""

    _parents: list[Span]

    @property
    def now(self) -> float:
        """Simulated seconds since the run began."""
        ...


class Span:
    """One span of the code's own (see the module); `id` is its handle in the journal."""

    __slots__ = ("_journal", "_owner", "correlation_id", "ended", "id")

    def __init__(self, owner: SpanOwner, journal: Journal, span: int, correlation_id: str) -> None:
        self._owner = owner
        self._journal = journal
        self.id = span
        # Its trace: the request's, or in `main` a new one that what it starts shares.
        self.correlation_id = correlation_id
        self.ended = False

    def end(
        self,
        outcome: str = "ok",
        error: str = "",
        attempts: int | None = None,
        status: int | None = None,
        answered: int | None = None,
    ) -> None:
        """Close the span now with its `outcome` (`ok`, `error`, `partial`, `timeout`,
        ...), an `error` (or a note, on an `ok` span), and optionally the `attempts`,
        `status` and `answered` columns. A second `end` changes nothing."""
        if self.ended:
            return
        self.ended = True
        self._journal.span_end(self.id, outcome, self._owner.now, error, attempts=attempts,
                               status=status, answered=answered)  # fmt: skip

    def __enter__(self) -> Span:
        self._owner._parents.append(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        parents = self._owner._parents
        if parents and parents[-1] is self:
            parents.pop()
        if exc is None:
            self.end("ok")
        elif isinstance(exc, simpy.Interrupt):
            # The agent crashed, or the caller cancelled the request the code serves.
            cause = str(exc.cause)
            self.end("cancelled" if cause == "cancelled" else "error", cause)
        elif kind is not None:
            text = str(exc)
            self.end("error", f"{kind.__name__}{': ' + text if text else ''}")


__all__ = ["Span"]
