"""Sliding windows: the history a breaker judges and a budget or a throttle counts.

One time window, `SlidingWindow`, serves both: sums over the last `span` seconds kept in
slices (Finagle's WindowedAdder), a value forgotten once its slice has slid out. A
breaker's time window (Resilience4j's SlidingTimeWindow) is one of them with one-second
slices and three sums (calls, failed, slow); a retry budget's and an adaptive throttle's
counts are others. A breaker's count window (the last N calls) is `CountWindow`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple


class SlidingWindow:
    """Sums over the last `span` seconds kept in `slices` slices (Finagle's WindowedAdder).

    A value added at `t` lives in the slice `floor(t / (span / slices))` and is forgotten
    once that slice is `slices` slices old: after between `span * (1 - 1/slices)` and
    `span` seconds. Holds `width` sums side by side.
    """

    def __init__(self, span: float, slices: int = 10, width: int = 1) -> None:
        self.slice = span / slices
        self.slices = slices
        self.width = width
        # [slice index, sum 0, sum 1, ...], oldest first.
        self._buckets: deque[list[int]] = deque()
        self._totals = [0] * width

    def _current(self, now: float) -> int:
        """Forget the slices that aged out; returns the index of the current slice."""
        index = math.floor(now / self.slice)
        while self._buckets and self._buckets[0][0] <= index - self.slices:
            old = self._buckets.popleft()
            for i in range(self.width):
                self._totals[i] -= old[i + 1]
        return index

    def _bucket(self, now: float) -> list[int]:
        """The current slice's bucket, made if it is new."""
        index = self._current(now)
        if not self._buckets or self._buckets[-1][0] != index:
            self._buckets.append([index] + [0] * self.width)
        return self._buckets[-1]

    def add(self, now: float, amount: int, column: int = 0) -> None:
        """Add `amount` (may be negative) to sum `column` at time `now`."""
        self._bucket(now)[column + 1] += amount
        self._totals[column] += amount

    def add_row(self, now: float, amounts: Sequence[int]) -> None:
        """Add `amounts[i]` to sum `i`, for every sum, at time `now`."""
        bucket = self._bucket(now)
        totals = self._totals
        for i, amount in enumerate(amounts):
            bucket[i + 1] += amount
            totals[i] += amount

    def sum(self, now: float, column: int = 0) -> int:
        """Sum `column` over the window ending at `now`."""
        self._current(now)
        return self._totals[column]

    def sums(self, now: float) -> tuple[int, ...]:
        """Every sum over the window ending at `now`."""
        self._current(now)
        return tuple(self._totals)


class Snapshot(NamedTuple):
    """What a breaker's window holds now: its calls, failed and slow ones."""

    calls: int
    failed: int
    slow: int

    @property
    def failure_rate(self) -> float:
        """Failed share of the calls (NaN when there are none)."""
        return self.failed / self.calls if self.calls else math.nan

    @property
    def slow_rate(self) -> float:
        """Slow share of the calls (NaN when there are none)."""
        return self.slow / self.calls if self.calls else math.nan


class CountWindow:
    """The last `size` calls, totals kept by subtract-on-evict (FixedSizeSlidingWindow)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._calls: deque[tuple[bool, bool]] = deque()
        self._failed = 0
        self._slow = 0

    def record(self, now: float, failed: bool, slow: bool) -> Snapshot:
        """Add a call; the oldest falls out once the window is full."""
        if len(self._calls) == self.size:
            old_failed, old_slow = self._calls.popleft()
            self._failed -= old_failed
            self._slow -= old_slow
        self._calls.append((failed, slow))
        self._failed += failed
        self._slow += slow
        return self.snapshot(now)

    def snapshot(self, now: float) -> Snapshot:
        """The window's totals."""
        return Snapshot(len(self._calls), self._failed, self._slow)

    def describe(self) -> str:
        """The window's extent, for reasons."""
        return f"the last {self.size} calls"


class TimeWindow:
    """Calls of the last `seconds` whole seconds, one bucket per second (SlidingTimeWindow).

    As in Resilience4j, the bucket of second `s` covers `[s, s+1)`, and at time `now` the
    window holds the buckets of seconds `floor(now) - seconds + 1` to `floor(now)`: a
    `SlidingWindow` of `seconds` one-second slices, summing calls, failed and slow ones.
    """

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self._sums = SlidingWindow(seconds, seconds, width=3)

    def record(self, now: float, failed: bool, slow: bool) -> Snapshot:
        """Add a call to the bucket of the current second."""
        self._sums.add_row(now, (1, failed, slow))
        return self.snapshot(now)

    def snapshot(self, now: float) -> Snapshot:
        """The window's totals at `now`."""
        calls, failed, slow = self._sums.sums(now)
        return Snapshot(calls, failed, slow)

    def describe(self) -> str:
        """The window's extent, for reasons."""
        return f"the last {self.seconds} s"


Window = CountWindow | TimeWindow
