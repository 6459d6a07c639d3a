"""Fan-out: one coordinator calls N workers in parallel and decides when it has enough.

Policies:
- `all`: every worker must answer OK; one failure fails the fan-out;
- `quorum`: k OK answers are enough; it fails once k can no longer be reached;
- `first`: the first OK answer is enough; it fails when every call failed;
- `partial_at_deadline`: it waits for every call until its deadline, then returns what
  came back: `ok` with all of them, `partial` with a subset, `timeout` with none.
The fan-out has its own span, parent of the calls, recording how many answered. Calls
still running when the policy is satisfied go on (their work shows in the trace).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import simpy
from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols.call import Call, CallResult
from protocols.node import Node


class FanOutSettings(BaseModel):
    """How many answers a fan-out needs, and how long it waits for them."""

    model_config = ConfigDict(extra="forbid")

    policy: Literal["all", "quorum", "first", "partial_at_deadline"] = "all"
    k: int | None = Field(None, ge=1, description="Answers a quorum needs.")
    deadline: float | None = Field(
        None, gt=0, description="Seconds the fan-out waits (partial_at_deadline needs it)."
    )

    @model_validator(mode="after")
    def _complete(self) -> FanOutSettings:
        if self.policy == "quorum" and self.k is None:
            raise ValueError("a quorum fan-out needs k")
        if self.policy == "partial_at_deadline" and self.deadline is None:
            raise ValueError("a partial_at_deadline fan-out needs a deadline")
        return self


# (outcome, answered, error)
FanOutResult = tuple[str, int, str]


class FanOut:
    """Starts N calls through `start(index, parent_span)` and ends once, by the policy."""

    def __init__(
        self,
        node: Node,
        name: str,
        correlation_id: str,
        n: int,
        start: Callable[[int, int], Call],
        settings: FanOutSettings,
        parent: int = -1,
        on_done: Callable[[FanOutResult], None] | None = None,
    ) -> None:
        self.node = node
        self.settings = settings
        self.n = n
        self.ok = 0
        self.failed = 0
        self.result: FanOutResult | None = None
        self.on_done = on_done
        self._event: simpy.Event | None = None
        now = node.env.now
        deadline = now + settings.deadline if settings.deadline is not None else math.nan
        self.span = node.journal.span_start(
            name, "internal", node.id, f"{n} workers", "fanout", now, parent, correlation_id,
            deadline,
        )  # fmt: skip
        self.need = {"all": n, "quorum": settings.k or n, "first": 1}.get(settings.policy, n)
        if self.need > n:
            self._end("error", f"a quorum of {self.need} cannot come from {n} workers")
            return
        if settings.deadline is not None:
            node.after(settings.deadline, self._deadline)
        self.calls = [start(i, self.span) for i in range(n)]
        for call in self.calls:
            if call.result is not None:
                self._answer(call.result)
            else:
                self._watch(call)

    def wait(self) -> simpy.Event:
        """An event that fires with the FanOutResult, for code in a process."""
        if self._event is None:
            self._event = self.node.env.event()
            if self.result is not None:
                self._event.succeed(self.result)
        return self._event

    def _watch(self, call: Call) -> None:
        previous = call.on_done

        def done(result: CallResult) -> None:
            if previous is not None:
                previous(result)
            self._answer(result)

        call.on_done = done

    def _answer(self, result: CallResult) -> None:
        if self.result is not None:
            return
        if result[0] == "ok":
            self.ok += 1
        else:
            self.failed += 1
        policy = self.settings.policy
        if policy == "partial_at_deadline":
            if self.ok + self.failed == self.n:
                self._settle()
            return
        if self.ok >= self.need:
            self._end("ok", "")
        elif self.n - self.failed < self.need:
            self._end("error", f"only {self.ok} of {self.need} needed answers came back")

    def _deadline(self) -> None:
        if self.result is not None:
            return
        if self.settings.policy == "partial_at_deadline":
            self._settle()
        else:
            self._end("timeout", f"{self.ok} of {self.need} needed answers by the deadline")

    def _settle(self) -> None:
        if self.ok == self.n:
            self._end("ok", "")
        elif self.ok:
            self._end("partial", f"{self.ok} of {self.n} answered")
        else:
            outcome = "timeout" if self.failed < self.n else "error"
            self._end(outcome, f"none of {self.n} answered")

    def _end(self, outcome: str, error: str) -> None:
        self.result = (outcome, self.ok, error)
        node = self.node
        node.journal.span_end(self.span, outcome, node.env.now, error, answered=self.ok)
        if self.on_done is not None:
            self.on_done(self.result)
        if self._event is not None:
            self._event.succeed(self.result)
