"""The journal of a run: every send, delivery, drop, span, queue sample and fault.

Rows are kept as Python lists, one per column, because appending to a list is the
cheapest thing the hot path can do; the pandas tables are built once, at the end
(`tables()`). Spans and messages are addressed by their integer index while the run
goes on, and get their string ids only when the tables are built.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from protocols.transport import Message

NAN = math.nan

MESSAGE_COLUMNS = [
    "seq",
    "msg_id",
    "type",
    "version",
    "protocol",
    "kind",
    "src",
    "dst",
    "correlation_id",
    "causation_id",
    "span_id",
    "attempt",
    "sent_at",
    "delivered_at",
    "ended_at",
    "outcome",
    "size_bytes",
    "duplicate",
    "reason",
]
SPAN_COLUMNS = [
    "span_id",
    "parent_id",
    "correlation_id",
    "name",
    "kind",
    "agent",
    "peer",
    "protocol",
    "start",
    "end",
    "deadline",
    "wait",
    "outcome",
    "attempts",
    "error",
    "status",
    "answered",
]
BREAKER_COLUMNS = [
    "time",
    "agent",
    "target",
    "from_state",
    "to_state",
    "reason",
    "failure_rate",
    "slow_rate",
    "calls",
]
QUEUE_COLUMNS = [
    "time",
    "queue",
    "depth",
    "in_flight",
    "dlq_depth",
    "enqueued",
    "acked",
    "redelivered",
    "dead_lettered",
]
FAULT_COLUMNS = ["fault_id", "kind", "start", "end", "targets", "params"]
AGENT_COLUMNS = ["agent", "role", "version", "workers", "calls"]
EFFECT_COLUMNS = ["time", "agent", "key", "msg_id", "correlation_id"]


# Column types of every table: applied when tables are built and when they are loaded,
# so an empty table and a reloaded one have the same dtypes as a full, fresh one.
DTYPES: dict[str, dict[str, str]] = {
    "messages": {
        "seq": "int64", "msg_id": "str", "type": "str", "version": "int64", "protocol": "str",
        "kind": "str", "src": "str", "dst": "str", "correlation_id": "str",
        "causation_id": "str", "span_id": "str", "attempt": "int64", "sent_at": "float64",
        "delivered_at": "float64", "ended_at": "float64", "outcome": "str",
        "size_bytes": "int64", "duplicate": "bool", "reason": "str",
    },
    "spans": {
        "span_id": "str", "parent_id": "str", "correlation_id": "str", "name": "str",
        "kind": "str", "agent": "str", "peer": "str", "protocol": "str", "start": "float64",
        "end": "float64", "deadline": "float64", "wait": "float64", "outcome": "str",
        "attempts": "int64", "error": "str", "status": "int64",
        "answered": "int64",
    },
    "breakers": {
        "time": "float64", "agent": "str", "target": "str", "from_state": "str",
        "to_state": "str", "reason": "str", "failure_rate": "float64", "slow_rate": "float64",
        "calls": "int64",
    },
    "queues": {
        "time": "float64", "queue": "str", "depth": "int64", "in_flight": "int64",
        "dlq_depth": "int64", "enqueued": "int64", "acked": "int64", "redelivered": "int64",
        "dead_lettered": "int64",
    },
    "faults": {
        "fault_id": "str", "kind": "str", "start": "float64", "end": "float64",
        "targets": "str", "params": "str",
    },
    "agents": {"agent": "str", "role": "str", "version": "int64", "workers": "int64", "calls": "str"},
    "effects": {"time": "float64", "agent": "str", "key": "str", "msg_id": "str", "correlation_id": "str"},
}  # fmt: skip


def conform(name: str, table: pd.DataFrame) -> pd.DataFrame:
    """Give a table its contract's dtypes (extra columns keep theirs)."""
    types = {c: t for c, t in DTYPES[name].items() if c in table.columns}
    return table.astype(types)


def span_hex(index: int) -> str:
    """The 16-hex-digit span id of span number `index` (W3C Trace Context width)."""
    return f"{index + 1:016x}"


class Recorder:
    """Collects the rows of the six tables while a run goes on."""

    def __init__(self) -> None:
        # messages, column by column
        self._m_id: list[str] = []
        self._m_type: list[str] = []
        self._m_version: list[int] = []
        self._m_protocol: list[str] = []
        self._m_kind: list[str] = []
        self._m_src: list[str] = []
        self._m_dst: list[str] = []
        self._m_corr: list[str] = []
        self._m_cause: list[str] = []
        self._m_span: list[int] = []
        self._m_attempt: list[int] = []
        self._m_sent: list[float] = []
        self._m_delivered: list[float] = []
        self._m_ended: list[float] = []
        self._m_outcome: list[str] = []
        self._m_size: list[int] = []
        self._m_dup: list[bool] = []
        self._m_reason: dict[int, str] = {}
        # spans
        self._s_parent: list[int] = []
        self._s_corr: list[str] = []
        self._s_name: list[str] = []
        self._s_kind: list[str] = []
        self._s_agent: list[str] = []
        self._s_peer: list[str] = []
        self._s_protocol: list[str] = []
        self._s_start: list[float] = []
        self._s_end: list[float] = []
        self._s_deadline: list[float] = []
        self._s_wait: list[float] = []
        self._s_outcome: list[str] = []
        self._s_attempts: list[int] = []
        self._s_error: list[str] = []
        self._s_status: list[int] = []
        # How many of a fan-out's calls answered; other spans have none (-1).
        self._s_answered: dict[int, int] = {}
        self.breakers: list[dict[str, Any]] = []
        self.queues: list[tuple[Any, ...]] = []
        self.faults: list[dict[str, Any]] = []
        self.agents: list[dict[str, Any]] = []
        self.effects: list[tuple[float, str, str, str, str]] = []

    # -- messages ---------------------------------------------------------------------

    def message_sent(self, msg: Message, now: float) -> int:
        """Record a copy put on the wire, still in flight; returns its seq."""
        self._m_id.append(msg.msg_id)
        self._m_type.append(msg.type)
        self._m_version.append(msg.version)
        self._m_protocol.append(msg.protocol)
        self._m_kind.append(msg.kind)
        self._m_src.append(msg.src)
        self._m_dst.append(msg.dst)
        self._m_corr.append(msg.correlation_id)
        self._m_cause.append(msg.causation_id)
        self._m_span.append(msg.span)
        self._m_attempt.append(msg.attempt)
        self._m_sent.append(now)
        self._m_delivered.append(NAN)
        self._m_ended.append(NAN)
        self._m_outcome.append("in_flight")
        self._m_size.append(msg.size_bytes)
        self._m_dup.append(msg.duplicate)
        return len(self._m_id) - 1

    def message_delivered(self, seq: int, now: float) -> None:
        """The copy `seq` reached its destination."""
        self._m_delivered[seq] = now
        self._m_ended[seq] = now
        self._m_outcome[seq] = "delivered"

    def message_ended(self, seq: int, outcome: str, now: float, reason: str = "") -> None:
        """The copy `seq` ended (`dropped`, `partitioned`, `rejected`, ...) at `now`."""
        self._m_ended[seq] = now
        self._m_outcome[seq] = outcome
        if reason:
            self._m_reason[seq] = reason

    def mark_last(self, msg_id: str, outcome: str, now: float, reason: str = "") -> None:
        """End the last copy of `msg_id` on the wire with `outcome` (a dead letter, say).

        It scans back from the end: it is for rare events, not the hot path.
        """
        ids = self._m_id
        for seq in range(len(ids) - 1, -1, -1):
            if ids[seq] == msg_id:
                self.message_ended(seq, outcome, now, reason)
                return

    @property
    def message_count(self) -> int:
        """Copies put on the wire so far."""
        return len(self._m_id)

    # -- spans ------------------------------------------------------------------------

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
        deadline: float = NAN,
    ) -> int:
        """Open a span; returns its index (its id is `span_hex(index)`)."""
        self._s_parent.append(parent)
        self._s_corr.append(correlation_id)
        self._s_name.append(name)
        self._s_kind.append(kind)
        self._s_agent.append(agent)
        self._s_peer.append(peer)
        self._s_protocol.append(protocol)
        self._s_start.append(start)
        self._s_end.append(NAN)
        self._s_deadline.append(deadline)
        self._s_wait.append(0.0)
        self._s_outcome.append("open")
        self._s_attempts.append(1)
        self._s_error.append("")
        self._s_status.append(0)
        return len(self._s_name) - 1

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
    ) -> None:
        """Close a span with its outcome; a span is closed once, later calls are ignored."""
        if self._s_outcome[span] != "open":
            return
        self._s_outcome[span] = outcome
        self._s_end[span] = end
        self._s_error[span] = error
        if wait is not None:
            self._s_wait[span] = wait
        if attempts is not None:
            self._s_attempts[span] = attempts
        if status is not None:
            self._s_status[span] = status
        if answered is not None:
            self._s_answered[span] = answered

    def span_is_open(self, span: int) -> bool:
        """Whether the span has no outcome yet."""
        return self._s_outcome[span] == "open"

    # -- other tables -----------------------------------------------------------------

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
        """Record one sample of a queue's state and its running totals."""
        self.queues.append(
            (time, queue, depth, in_flight, dlq_depth, enqueued, acked, redelivered, dead_lettered)
        )

    def breaker_transition(self, **row: Any) -> None:
        """Record a circuit breaker's state change (columns: BREAKER_COLUMNS)."""
        self.breakers.append(row)

    def effect(self, time: float, agent: str, key: str, msg_id: str, correlation_id: str) -> None:
        """Record an effect applied by a receiver (a handler that really ran) for `key`."""
        self.effects.append((time, agent, key, msg_id, correlation_id))

    def fault(self, **row: Any) -> None:
        """Record a fault window (columns: FAULT_COLUMNS)."""
        self.faults.append(row)

    def agent(self, **row: Any) -> None:
        """Record an agent (columns: AGENT_COLUMNS and any more)."""
        self.agents.append(row)

    # -- the tables -------------------------------------------------------------------

    def tables(self) -> dict[str, pd.DataFrame]:
        """The six tables of the trace contract (DESIGN.md section 3)."""
        n = len(self._m_id)
        k = len(self._s_name)
        # Every span id is formatted once; messages and parents index into them, and
        # index -1 (no span) picks the empty string at the end.
        ids = np.array([span_hex(i) for i in range(k)] + [""], dtype=object)
        messages = pd.DataFrame(
            {
                "seq": pd.RangeIndex(n),
                "msg_id": self._m_id,
                "type": self._m_type,
                "version": pd.Series(self._m_version, dtype="int64"),
                "protocol": self._m_protocol,
                "kind": self._m_kind,
                "src": self._m_src,
                "dst": self._m_dst,
                "correlation_id": self._m_corr,
                "causation_id": self._m_cause,
                "span_id": _ids(ids, self._m_span),
                "attempt": pd.Series(self._m_attempt, dtype="int64"),
                "sent_at": pd.Series(self._m_sent, dtype="float64"),
                "delivered_at": pd.Series(self._m_delivered, dtype="float64"),
                "ended_at": pd.Series(self._m_ended, dtype="float64"),
                "outcome": self._m_outcome,
                "size_bytes": pd.Series(self._m_size, dtype="int64"),
                "duplicate": pd.Series(self._m_dup, dtype="bool"),
                "reason": _sparse(self._m_reason, n),
            },
            columns=MESSAGE_COLUMNS,
        )
        spans = pd.DataFrame(
            {
                "span_id": pd.Series(ids[:k], dtype="str"),
                "parent_id": _ids(ids, self._s_parent),
                "correlation_id": self._s_corr,
                "name": self._s_name,
                "kind": self._s_kind,
                "agent": self._s_agent,
                "peer": self._s_peer,
                "protocol": self._s_protocol,
                "start": pd.Series(self._s_start, dtype="float64"),
                "end": pd.Series(self._s_end, dtype="float64"),
                "deadline": pd.Series(self._s_deadline, dtype="float64"),
                "wait": pd.Series(self._s_wait, dtype="float64"),
                "outcome": self._s_outcome,
                "attempts": pd.Series(self._s_attempts, dtype="int64"),
                "error": self._s_error,
                "status": pd.Series(self._s_status, dtype="int64"),
                "answered": _sparse_int(self._s_answered, k),
            },
            columns=SPAN_COLUMNS,
        )
        tables = {
            "messages": messages,
            "spans": spans,
            "breakers": pd.DataFrame(self.breakers, columns=BREAKER_COLUMNS),
            "queues": pd.DataFrame(self.queues, columns=QUEUE_COLUMNS),
            "faults": pd.DataFrame(self.faults, columns=FAULT_COLUMNS),
            "agents": pd.DataFrame(self.agents, columns=_agent_columns(self.agents)),
            "effects": pd.DataFrame(self.effects, columns=EFFECT_COLUMNS),
        }
        return {name: conform(name, table) for name, table in tables.items()}


def _ids(ids: np.ndarray, index: list[int]) -> pd.Series:
    """Span ids for a list of span indexes (-1, no span, gives the empty string)."""
    return pd.Series(ids[np.asarray(index, dtype=np.int64)], dtype="str")


def _sparse(values: dict[int, str], n: int) -> pd.Series:
    """A string column that is empty but for a few rows."""
    column = np.full(n, "", dtype=object)
    for index, value in values.items():
        column[index] = value
    return pd.Series(column, dtype="str")


def _sparse_int(values: dict[int, int], n: int) -> pd.Series:
    """An int column that is -1 but for a few rows."""
    column = np.full(n, -1, dtype=np.int64)
    for index, value in values.items():
        column[index] = value
    return pd.Series(column, dtype="int64")


def _agent_columns(rows: list[dict[str, Any]]) -> list[str]:
    columns = list(AGENT_COLUMNS)
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    return columns
