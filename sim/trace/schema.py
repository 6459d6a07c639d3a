"""The trace contract: the tables of a Run, their columns and dtypes, and its format.

A run is eight tables (`TABLES`), each with the columns its list below names, in that
order, and the dtypes of `DTYPES`. Columns may be added; the meaning of one never
changes. `conform` gives a table its contract's dtypes, so that a fresh table, an empty
one and one read back from disk compare equal. `FORMAT_VERSION` is written into every
run's manifest.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pandas as pd

# The tables of a run, in the order they are saved and shown.
TABLES = ("messages", "spans", "breakers", "queues", "faults", "agents", "effects", "tasks")
# The version of the on-disk format (run.json and one Parquet file per table).
FORMAT_VERSION = 1

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
    "subscription",
    "ordering_key",
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
    "lost_events",
    "input_tokens",
    "output_tokens",
    "cost",
    "ttft",
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
# One row per state change of an agent-protocol task (A2A): `from_state` is "" for the
# row that creates it; `span_id` is the span serving the task on `agent`.
TASK_COLUMNS = [
    "time",
    "task_id",
    "agent",
    "from_state",
    "to_state",
    "reason",
    "span_id",
    "correlation_id",
]


# Columns added to the contract after format 1, with the value a run saved before each
# was added reads back for it (what the recorder writes where it has nothing to say).
ADDED_COLUMNS: dict[str, dict[str, object]] = {
    "messages": {"subscription": "", "ordering_key": ""},
    "spans": {
        "lost_events": -1,
        "input_tokens": -1,
        "output_tokens": -1,
        "cost": float("nan"),
        "ttft": float("nan"),
    },
}
# Tables added to the contract after format 1: a run saved before one was added reads
# back with it empty, and a run that leaves one empty is digested without it, so its
# digests stay what they were before the table existed (`sim.trace.digest`).
ADDED_TABLES = ("tasks",)
# Columns that only some runs use (a model call's tokens, cost and time to first token; a
# topic's subscription and an ordering key on queue messages): a run whose column holds
# nothing but the "nothing here" value is digested without it, so adding the column left
# every earlier run's digest as it was (`sim.trace.digest`).
#
# messages.subscription: on a `deliver` copy of a message published to a topic, the
# subscription (queue) it was copied into. A topic's copies keep the message's msg_id in
# every subscription (as Pub/Sub's messageId does), so a copy is (msg_id, subscription).
# messages.ordering_key: on a `publish`, the ordering key (FIFO message group) its
# publisher gave; on a `deliver`, the key its queue delivers it in order of (given, or
# derived from `order_by` in an ordered queue). "" elsewhere.
SPARSE_COLUMNS: dict[str, dict[str, object]] = {
    "messages": {"subscription": "", "ordering_key": ""},
    "spans": {"input_tokens": -1, "output_tokens": -1, "cost": float("nan"), "ttft": float("nan")},
}

# Column types of every table: applied when tables are built and when they are loaded,
# so an empty table and a reloaded one have the same dtypes as a full, fresh one.
DTYPES: dict[str, dict[str, str]] = {
    "messages": {
        "seq": "int64", "msg_id": "str", "type": "str", "version": "int64", "protocol": "str",
        "kind": "str", "src": "str", "dst": "str", "correlation_id": "str",
        "causation_id": "str", "span_id": "str", "attempt": "int64", "sent_at": "float64",
        "delivered_at": "float64", "ended_at": "float64", "outcome": "str",
        "size_bytes": "int64", "duplicate": "bool", "reason": "str", "subscription": "str",
        "ordering_key": "str",
    },
    "spans": {
        "span_id": "str", "parent_id": "str", "correlation_id": "str", "name": "str",
        "kind": "str", "agent": "str", "peer": "str", "protocol": "str", "start": "float64",
        "end": "float64", "deadline": "float64", "wait": "float64", "outcome": "str",
        "attempts": "int64", "error": "str", "status": "int64",
        "answered": "int64", "lost_events": "int64", "input_tokens": "int64",
        "output_tokens": "int64", "cost": "float64", "ttft": "float64",
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
    "tasks": {
        "time": "float64", "task_id": "str", "agent": "str", "from_state": "str",
        "to_state": "str", "reason": "str", "span_id": "str", "correlation_id": "str",
    },
}  # fmt: skip


def conform(name: str, table: pd.DataFrame) -> pd.DataFrame:
    """Give a table its contract's dtypes (extra columns keep theirs)."""
    # Only the columns that lack theirs: `astype` of a column to the dtype it has still
    # costs (a string column is checked again), and the recorder's tables come typed.
    dtypes = DTYPES[name]
    if not len(table) and list(table.columns) == list(dtypes):
        # An empty table of the contract's columns (a run without breakers, faults...):
        # converting its no rows costs as much as thousands, every run.
        return _empty(name).copy()
    types = {c: t for c, t in dtypes.items() if c in table.columns}
    if not table.columns.is_unique:
        return table.astype(types)
    have = table.dtypes
    types = {c: t for c, t in types.items() if have[c] != _pandas_dtype(t)}
    return table.astype(types) if types else table


@cache
def _empty(name: str) -> pd.DataFrame:
    return pd.DataFrame(columns=list(DTYPES[name])).astype(DTYPES[name])


@cache
def _pandas_dtype(name: str) -> Any:
    return pd.api.types.pandas_dtype(name)


# The columns of each table, in order.
COLUMNS: dict[str, list[str]] = {
    "messages": MESSAGE_COLUMNS,
    "spans": SPAN_COLUMNS,
    "breakers": BREAKER_COLUMNS,
    "queues": QUEUE_COLUMNS,
    "faults": FAULT_COLUMNS,
    "agents": AGENT_COLUMNS,
    "effects": EFFECT_COLUMNS,
    "tasks": TASK_COLUMNS,
}


def empty_table(name: str) -> pd.DataFrame:
    """A table of the trace contract with its columns and no rows."""
    return conform(name, pd.DataFrame(columns=list(DTYPES[name])))
