"""What each page reads of a Run, asked through the Run's queries (`Run.select`,
`select_batches`, `count_where`, `group_counts`), never as a whole table.

An in-memory Run answers from its frames; a saved run read lazily (`LazyRun`) reads only
the matching row groups and columns of its Parquet files, so the dashboard opens a run of
millions of messages without holding them. Each function gives what the pure builder it
feeds would compute from the whole tables (tests/test_reads.py compares both).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from sim import Run
from sim.metrics import CALLERS
from sim.trace import query as q
from ui.figures import cascade, overview, replay
from ui.figures import failures as found

# What the window's thinning reads of each message: the rest is read for drawn rows only.
WINDOW_COLUMNS = ["seq", "sent_at", "delivered_at", "ended_at", "kind", "outcome"]


def filter_cond(filters: replay.Filters) -> q.Cond | None:
    """`replay.filter_messages` as a condition."""
    agents = list(filters.agents)
    return q.all_of(
        q.eq("correlation_id", filters.correlation_id) if filters.correlation_id else None,
        q.any_of(q.isin("src", agents), q.isin("dst", agents)) if agents else None,
        q.isin("protocol", filters.protocols) if filters.protocols else None,
        q.isin("kind", filters.kinds) if filters.kinds else None,
        q.isin("type", filters.types) if filters.types else None,
    )


def on_wire(start: float, end: float, duration: float) -> q.Cond:
    """Messages on the wire at some point in [start, end]: sent by `end`, and stopped
    (`replay.end_times`: delivered, else ended, else the run's end) at `start` or later."""
    never_ended = q.missing("ended_at") if duration >= start else None
    return q.AllOf(
        (
            q.le("sent_at", end),
            q.any_of(
                q.ge("delivered_at", start),
                q.AllOf(
                    (
                        q.missing("delivered_at"),
                        q.any_of(q.ge("ended_at", start), never_ended)
                        if never_ended is not None
                        else q.ge("ended_at", start),
                    )
                ),
            ),
        )
    )


def window(
    run: Run,
    start: float,
    end: float,
    filters: replay.Filters,
    limit: int = replay.MAX_ARROWS,
) -> replay.Window:
    """`replay.window(replay.filter_messages(run.messages, filters), ...)`, reading the
    window's thinning columns, then every column of the rows drawn only."""
    where = q.all_of(filter_cond(filters), on_wire(start, end, run.duration))
    if run.count_where("messages", where) <= limit:
        rows = run.select("messages", None, where)
        return replay.window(rows, start, end, run.duration, limit)
    # Thinned: choose the rows from the columns thinning reads (text as categories: the
    # whole run as a window stays small), then read every column of those rows only.
    narrow = run.select("messages", WINDOW_COLUMNS, where, compact=True)
    events = q.AllOf((q.eq("kind", "event"), q.eq("outcome", "delivered")))
    streams = run.select("messages", ["seq", "span_id"], q.all_of(where, events), compact=True)
    # Only a stream's events are folded by their span: the others need no span id.
    narrow["span_id"] = narrow["seq"].map(pd.Series(streams["span_id"].to_numpy(), streams["seq"]))
    win = replay.window(narrow, start, end, run.duration, limit)
    drawn = win.rows["seq"].to_numpy()
    rows = run.select("messages", None, q.isin("seq", drawn.tolist()))
    # In the order the thinning left them (by seq), as from the whole table.
    win.rows = rows.iloc[pd.Index(rows["seq"].to_numpy()).get_indexer(drawn)]
    return win


def event_times(run: Run) -> np.ndarray:
    """`replay.event_times` of the run's messages, read a batch at a time."""
    parts = [
        replay.event_times(batch, run.duration)
        for batch in run.select_batches("messages", ["sent_at", "delivered_at", "ended_at"])
    ]
    times = np.concatenate(parts) if parts else np.array([], dtype=float)
    times.sort(kind="stable")
    return times


def trace_extent_rows(run: Run, trace: str) -> pd.DataFrame:
    """A trace's messages' send and stop times."""
    return run.select(
        "messages", ["sent_at", "delivered_at", "ended_at"], q.eq("correlation_id", trace)
    )


def traces_sent(run: Run, lo: float, hi: float, most: int = 300) -> list[str]:
    """The first `most` distinct correlation ids (the empty one included) of messages
    sent in [lo, hi], in table order: reading stops once it has them."""
    seen: dict[str, None] = {}
    where = q.all_of(q.ge("sent_at", lo), q.le("sent_at", hi))
    for batch in run.select_batches("messages", ["correlation_id"], where):
        for value in batch["correlation_id"].unique():
            seen.setdefault(str(value), None)
            if len(seen) >= most:
                return list(seen)
    return list(seen)


def values(run: Run, table: str, column: str) -> list[str]:
    """The distinct values of a table's column, sorted (filter options)."""
    if column not in run.column_names(table) or not run.row_count(table):
        return []
    counted = run.group_counts(table, [column])
    return sorted(str(v) for v in counted[column].dropna().unique())


def message_detail(run: Run, seq: int) -> pd.DataFrame:
    """`replay.message_detail` of one message, reading its row and its span's."""
    row = run.select("messages", None, q.eq("seq", int(seq)))
    span_id = str(row["span_id"].iloc[0]) if len(row) else ""
    spans = run.select("spans", None, q.eq("span_id", span_id)) if span_id else row.iloc[:0]
    return replay.message_detail(row, spans, int(seq))


# --- failures ---------------------------------------------------------------------------


def failure_events(run: Run) -> pd.DataFrame:
    """`failures.failure_events` of the run, reading only the spans and messages that
    can be failures or explain one (small next to a run's tables)."""
    gave_up = run.select("spans", ["span_id"], q.isin("outcome", found.GAVE_UP))["span_id"]
    served = run.select("spans", ["span_id"], q.isin("parent_id", gave_up.tolist()))["span_id"]
    served_ids = served.tolist()
    spans = run.select(
        "spans",
        None,
        q.any_of(
            q.ne("outcome", "ok"),
            q.ge("status", 500),
            q.gt("lost_events", 0),
            q.isin("span_id", served_ids),
        ),
    )
    messages = run.select(
        "messages",
        None,
        q.any_of(
            q.AllOf((q.eq("kind", "request"), q.gt("attempt", 1))),
            q.isin("outcome", ("dropped", "partitioned", "unavailable")),
            q.AllOf(
                (
                    q.eq("kind", "response"),
                    q.Not(q.missing("delivered_at")),
                    q.isin("span_id", served_ids),
                )
            ),
        ),
    )
    return found.failure_events(messages, spans, run.breakers, run.faults)


# --- the overview -----------------------------------------------------------------------


def overview_by_agent(run: Run, failures: pd.DataFrame) -> overview.Bins:
    """`overview.by_agent`, the messages read a batch at a time."""
    agents = run.agents["agent"].tolist()
    batches = run.select_batches("messages", ["src", "sent_at"])
    return overview.by_agent_batches(batches, failures, agents, run.duration)


def _ended_calls() -> q.Cond:
    """The client calls the link overview counts (`overview.by_link`'s `calls`)."""
    return q.AllOf(
        (
            q.eq("kind", "client"),
            q.Not(q.isin("outcome", overview.UNFINISHED)),
            q.ne("peer", ""),
        )
    )


def overview_by_link(run: Run) -> overview.Bins:
    """`overview.by_link`, both tables read a batch at a time."""
    agents = run.agents["agent"].tolist()
    calls = _ended_calls()
    links = pd.concat(
        [
            run.group_counts("messages", ["src", "dst"])[["src", "dst"]],
            run.group_counts("spans", ["agent", "peer"], calls)[["agent", "peer"]].rename(
                columns={"agent": "src", "peer": "dst"}
            ),
        ]
    )

    def messages() -> Iterator[pd.DataFrame]:
        return run.select_batches("messages", overview.LINK_MESSAGE_COLUMNS)

    parts = run.select_batches("spans", overview.LINK_CALL_COLUMNS, calls)
    return overview.by_link_batches(links, messages, parts, agents, run.duration)


# --- Cascades -------------------------------------------------------------------------

TRACE_COLUMNS = ["correlation_id", "parent_id", "start", "end", "outcome"]


def trace_index(run: Run) -> pd.DataFrame:
    """`cascade.trace_index` of the run's spans, from the columns it reads."""
    return cascade.trace_index_of(
        cascade.trace_part(batch) for batch in run.select_batches("spans", TRACE_COLUMNS)
    )


def trace_spans(run: Run, trace: str) -> pd.DataFrame:
    """One trace's spans, in the table's order."""
    return run.select("spans", None, q.eq("correlation_id", trace))


# --- Topology ---------------------------------------------------------------------------


def graph_counts(run: Run) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """What `topology.graph` counts: calls per (agent, peer, protocol), forward messages
    per (src, dst, protocol) and all messages per (src, dst), with `n`, each in the
    order of its first row."""
    from ui.figures.topology import FORWARD_KINDS

    calls = run.group_counts(
        "spans",
        ["agent", "peer", "protocol"],
        q.AllOf((q.isin("kind", ("client", "producer")), q.ne("peer", ""))),
    )
    forward = run.group_counts(
        "messages", ["src", "dst", "protocol"], q.isin("kind", FORWARD_KINDS)
    )
    pairs = run.group_counts("messages", ["src", "dst"])
    return calls, forward, pairs


# --- the Run page, Queues, Breakers, Compare ------------------------------------------------


def spans_by_outcome_kind(run: Run) -> pd.DataFrame:
    """Spans counted per (outcome, kind)."""
    return run.group_counts("spans", ["outcome", "kind"])


def dead_letter_rows(run: Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What `queues.dead_letters` reads: the dead-lettered messages and the consumer
    spans that failed."""
    messages = run.select("messages", None, q.eq("outcome", "dead_lettered"))
    spans = run.select("spans", None, q.AllOf((q.eq("kind", "consumer"), q.ne("outcome", "ok"))))
    return messages, spans


def has_protocol(run: Run, protocol: str) -> bool:
    """Whether some message went over `protocol`."""
    return run.count_where("messages", q.eq("protocol", protocol)) > 0


def breaker_calls(run: Run, pairs: Iterable[tuple[str, str]]) -> pd.DataFrame:
    """The client spans over the (caller, callee) `pairs` (a breaker's rolling rates)."""
    over = [q.AllOf((q.eq("agent", a), q.eq("peer", b))) for a, b in pairs]
    if not over:
        return run.select("spans", None, q.isin("span_id", []))
    return run.select("spans", None, q.AllOf((q.eq("kind", "client"), q.any_of(*over))))


def request_spans(run: Run) -> pd.DataFrame:
    """What the Compare page reads of the spans: the requests (root caller spans) and
    the client calls that did not end ok (where a request's failure began)."""
    return run.select(
        "spans",
        None,
        q.any_of(
            q.AllOf((q.isin("kind", CALLERS), q.eq("parent_id", ""))),
            q.AllOf((q.eq("kind", "client"), q.ne("outcome", "ok"))),
        ),
    )


__all__ = [
    "TRACE_COLUMNS",
    "WINDOW_COLUMNS",
    "breaker_calls",
    "dead_letter_rows",
    "event_times",
    "failure_events",
    "filter_cond",
    "graph_counts",
    "has_protocol",
    "message_detail",
    "on_wire",
    "overview_by_agent",
    "overview_by_link",
    "request_spans",
    "spans_by_outcome_kind",
    "trace_extent_rows",
    "trace_index",
    "trace_spans",
    "traces_sent",
    "values",
    "window",
]
