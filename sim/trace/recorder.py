"""The journal of a run: every send, delivery, drop, span, queue sample and fault.

Rows are kept column by column, because appending to a list is the cheapest thing the
hot path can do: times and span indexes in arrays of machine numbers (unboxed as they
come), strings in lists that are turned into Arrow arrays a chunk at a time while the run
goes on (`Recorder._freeze`). The pandas tables are built once, at the end (`tables()`),
from those arrays. Spans and messages are addressed by their integer index while the run
goes on, and get their string ids only when the tables are built.
"""

from __future__ import annotations

import gc
import itertools
import math
from array import array
from collections.abc import Iterator, MutableSequence, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.arrays import ArrowStringArray

from protocols._mypyc import mypyc_attr
from protocols.journal import Journal
from protocols.queue.wire import PROTOCOL as QUEUE
from protocols.queue.wire import Delivery, Publish
from protocols.transport import Message
from sim.loading import ScenarioError
from sim.trace.schema import (
    AGENT_COLUMNS,
    BREAKER_COLUMNS,
    EFFECT_COLUMNS,
    FAULT_COLUMNS,
    MESSAGE_COLUMNS,
    QUEUE_COLUMNS,
    SPAN_COLUMNS,
    TASK_COLUMNS,
    conform,
)

NAN = math.nan
# What a receiver may still say of a copy it was delivered (the only change an ended
# copy's outcome may undergo, once): it refused it, parked it, or found it expired.
VERDICTS = frozenset({"rejected", "dead_lettered", "expired"})
# How a copy ends that never reached its receiver (a dead letter may still follow it).
UNDELIVERED = frozenset({"dropped", "partitioned", "unavailable"})


def span_hex(index: int) -> str:
    """The 16-hex-digit span id of span number `index` (W3C Trace Context width)."""
    return f"{index + 1:016x}"


# Subclassed by sim.trace.spill's SpillingRecorder, which is not compiled.
@mypyc_attr(allow_interpreted_subclasses=True)
class Recorder(Journal):
    """Collects the rows of the tables while a run goes on (the run's `Journal`)."""

    def __init__(self) -> None:
        # messages, column by column (after `_flush_messages`: the sent messages wait
        # in `_m_msgs` until then)
        self._m_msgs: list[Message] = []
        self._m_id: list[str] = []
        self._m_type: list[str] = []
        self._m_version: list[int] = []
        self._m_protocol: list[str] = []
        self._m_kind: list[str] = []
        self._m_src: list[str] = []
        self._m_dst: list[str] = []
        self._m_corr: list[str] = []
        self._m_cause: list[str] = []
        # Span indexes, unboxed as they come (their int objects would be scattered).
        self._m_span = array("q")
        # Sequences, not lists: SpillingRecorder keeps these four in arrays of machine
        # ints, and a compiled Recorder checks what its attributes are given.
        self._m_attempt: MutableSequence[int] = []
        self._m_sent = array("d")
        # The send times since the last flush (moved into `_m_sent` in one go then: an
        # array's append parses its argument, a list's does not).
        self._m_sent_new: list[float] = []
        # These two are grown ahead (`_grow_messages`), NaN a block at a time: a row's
        # defaults are not appended one by one. A delivered copy's end is its delivery
        # unless a verdict ended it later: only the delivery is written (see `_ended`).
        self._m_delivered = array("d")
        self._m_ended = array("d")
        # Rows the columns grown ahead have room for.
        self._m_room = 0
        # A sequence, not a list: a finished SpillingRecorder puts one in its place that
        # reads every row as ended (see spill.py's `_release`).
        self._m_outcome: MutableSequence[str] = []
        self._m_size: list[int] = []
        self._m_dup: MutableSequence[int] = []  # bools, or 0 and 1
        self._m_reason: dict[int, str] = {}
        # Queue copies' sparse attributes (see schema.SPARSE_COLUMNS), by seq: the
        # subscription of a topic's copy, the ordering key of a publish or delivery.
        self._m_sub: dict[int, str] = {}
        self._m_key: dict[int, str] = {}
        # The subscription whose copy of a msg_id the next dead letter of it is about
        # (`dead_letter_copy`), taken by `mark_last`.
        self._dead_copy: dict[str, str] = {}
        # Verdicts on copies still on the wire, by seq: (outcome, time, reason). A broker
        # may give up on a message whose latest delivery has not arrived yet (its
        # consumer's connection was declared lost, its visibility timeout ran out first);
        # the copy's row takes the verdict when it arrives or is lost, or at the run's end.
        self._verdicts: dict[int, tuple[str, float, str]] = {}
        # spans: parent .. deadline wait in `_s_fixed` until a flush (see span_start)
        self._s_fixed: list[tuple[Any, ...]] = []
        self._s_parent = array("q")
        self._s_corr: list[str] = []
        self._s_name: list[str] = []
        self._s_kind: list[str] = []
        self._s_agent: list[str] = []
        self._s_peer: list[str] = []
        self._s_protocol: list[str] = []
        self._s_start = array("d")
        self._s_end = array("d")
        self._s_deadline = array("d")
        self._s_wait = array("d")
        self._s_outcome: MutableSequence[str] = []  # as `_m_outcome`
        self._s_attempts: MutableSequence[int] = []
        # A span's error, by span: most spans have none (the empty string, in the table),
        # so a row's is kept only when there is one (made a column as `_m_reason` is).
        self._s_error: dict[int, str] = {}
        self._s_status: MutableSequence[int] = []
        # Rows that `_s_end`, `_s_wait`, `_s_attempts` and `_s_status` have room for:
        # grown ahead with each one's default, a block at a time (`_grow_spans`).
        self._s_room = 0
        # How many of a fan-out's calls answered; other spans have none (-1).
        self._s_answered: dict[int, int] = {}
        # Events an SSE stream never received (they had left the server's replay buffer
        # when it reconnected); spans that are not streams have none (-1).
        self._s_lost: dict[int, int] = {}
        # A model call's (input tokens, output tokens, cost in $); other spans have none
        # (-1, -1, NaN).
        self._s_usage: dict[int, tuple[int, int, float]] = {}
        # When a model call's first output token was generated (its server span) or
        # reached its caller (a token stream's span); NaN on other spans.
        self._s_first_token: dict[int, float] = {}
        self.breakers: list[dict[str, Any]] = []
        # Task state changes: (time, task_id, agent, from, to, reason, span, correlation).
        self.tasks: list[tuple[Any, ...]] = []
        self.queues: list[tuple[Any, ...]] = []
        self.faults: list[dict[str, Any]] = []
        self.agents: list[dict[str, Any]] = []
        # effects, column by column (a run has one per request handled)
        self._e_time = array("d")
        self._e_agent: list[str] = []
        self._e_key: list[str] = []
        self._e_msg: list[str] = []
        self._e_corr: list[str] = []
        # The string columns that never change once written are turned into Arrow
        # arrays every CHUNK_ROWS messages, and their lists emptied: converted while
        # their strings are fresh in the CPU's cache, at the end they would be fetched
        # from all over memory (and they would hold it until then).
        self._chunks: dict[str, list[pa.Array]] = {name: [] for name in _CHUNKED}
        self._chunk_rows = CHUNK_ROWS if _ARROW_STR else math.inf
        # CHUNK_ROWS, read per message: an attribute (compiled, a field) rather than the
        # module's global (a dict lookup), read when made (a test makes it smaller).
        self._flush_rows: int = CHUNK_ROWS
        # Chunks of messages flushed since simulated time last moved (see _stalled).
        self._still = 0
        self._still_at = NAN

    # -- messages ---------------------------------------------------------------------

    def message_sent(self, msg: Message, now: float) -> int:
        """Record a copy put on the wire, still in flight; returns its seq."""
        # The message itself is kept (its fields never change once it is sent) and split
        # into columns every CHUNK_ROWS copies: one append here instead of thirteen.
        pending = self._m_msgs
        pending.append(msg)
        self._m_sent_new.append(now)
        outcomes = self._m_outcome
        outcomes.append("in_flight")
        if len(outcomes) > self._m_room:
            self._grow_messages()
        if len(pending) >= self._flush_rows:
            self._stalled(now)
            self._flush_messages()
            if self._chunk_rows <= self._flush_rows:
                self._freeze()
        return len(outcomes) - 1

    def _grow_messages(self) -> None:
        """Room for _BLOCK more messages in the columns grown ahead."""
        self._m_delivered.extend(_NANS)
        self._m_ended.extend(_NANS)
        self._m_room += _BLOCK

    def _grow_spans(self) -> None:
        """Room for _BLOCK more spans in the columns grown ahead (each one's default)."""
        self._s_end.extend(_NANS)
        self._s_wait.extend(_ZEROS)
        _grow(self._s_attempts, 1)
        _grow(self._s_status, 0)
        self._s_room += _BLOCK

    def _stalled(self, now: float) -> None:
        """Stop a run that sends without end at one instant (checked once per chunk).

        A loop with no delay in it (a poison message requeued for ever at zero latency,
        calls that answer each other instantly) never lets simulated time move, so the
        run would never end and its trace would fill memory.
        """
        if now != self._still_at:
            self._still, self._still_at = 0, now
            return
        self._still += 1
        if self._still * CHUNK_ROWS >= STALLED_MESSAGES:
            raise ScenarioError(
                [
                    f"the run sent over {STALLED_MESSAGES:,} messages at t={now:g} s without "
                    "simulated time moving: something loops with no delay in it (such as a "
                    "message requeued for ever at zero latency); give its links some latency "
                    "or its queue a delivery limit"
                ]
            )

    def _flush_messages(self) -> None:
        """Split the messages (and spans) kept since the last flush into their columns."""
        self._flush_spans()
        msgs = self._m_msgs
        if not msgs:
            return
        _append_numbers(self._m_sent, self._m_sent_new)
        self._m_sent_new.clear()
        self._queue_attributes(msgs, len(self._m_outcome) - len(msgs))
        # One pass over the messages, each field appended to its column: compiled, a
        # field is read off the Message's struct and appended to a list in C (a map of
        # an attrgetter per column looked each one up by name). The columns that are
        # arrays (or may be: a SpillingRecorder's) take theirs in one extend.
        ids, types, versions, protocols = (
            self._m_id,
            self._m_type,
            self._m_version,
            self._m_protocol,
        )
        kinds, srcs, dsts, corrs = self._m_kind, self._m_src, self._m_dst, self._m_corr
        causes, sizes = self._m_cause, self._m_size
        spans: list[int] = []
        attempts: list[int] = []
        dups: list[bool] = []
        for msg in msgs:
            ids.append(msg.msg_id)
            types.append(msg.type)
            versions.append(msg.version)
            protocols.append(msg.protocol)
            kinds.append(msg.kind)
            srcs.append(msg.src)
            dsts.append(msg.dst)
            corrs.append(msg.correlation_id)
            causes.append(msg.causation_id)
            spans.append(msg.span)
            attempts.append(msg.attempt)
            sizes.append(msg.size_bytes)
            dups.append(msg.duplicate)
        _append_numbers(self._m_span, spans)
        self._m_attempt.extend(attempts)
        self._m_dup.extend(dups)
        msgs.clear()

    def _queue_attributes(self, msgs: list[Message], base: int) -> None:
        """Note the subscription and ordering key of the queue copies among `msgs`
        (seqs from `base`): read off their bodies, so a network duplicate has them too."""
        subs, keys = self._m_sub, self._m_key
        for seq, msg in enumerate(msgs, base):
            if msg.protocol != QUEUE:
                continue
            body = msg.body
            kind = type(body)
            if kind is Delivery:
                if body.topic:
                    subs[seq] = body.queue
                if body.ordering_key:
                    keys[seq] = body.ordering_key
            elif kind is Publish and body.ordering_key:
                keys[seq] = body.ordering_key

    def _flush_spans(self) -> None:
        """Split the fixed fields of the spans opened since the last flush into columns."""
        fixed = self._s_fixed
        if not fixed:
            return
        parents, corrs, names, kinds, agents, peers, protocols, starts, deadlines = zip(
            *fixed, strict=True
        )
        _append_numbers(self._s_parent, parents)
        self._s_corr.extend(corrs)
        self._s_name.extend(names)
        self._s_kind.extend(kinds)
        self._s_agent.extend(agents)
        self._s_peer.extend(peers)
        self._s_protocol.extend(protocols)
        _append_numbers(self._s_start, starts)
        _append_numbers(self._s_deadline, deadlines)
        fixed.clear()

    def message_delivered(self, seq: int, now: float) -> None:
        """The copy `seq` reached its destination (ignored if it has already ended)."""
        if self._m_outcome[seq] != "in_flight":
            return  # a copy ends once: a later delivery must not undo its outcome
        # Its end is its delivery (`_ended`), until a verdict ends it later.
        self._m_delivered[seq] = now
        self._m_outcome[seq] = "delivered"
        if self._verdicts:
            self._verdict_due(seq, now)

    def message_ended(self, seq: int, outcome: str, now: float, reason: str = "") -> None:
        """The copy `seq` ended (`dropped`, `partitioned`, `rejected`, ...) at `now`.

        A copy ends once. The one change allowed after that is a receiver's verdict on a
        delivered copy (`VERDICTS`: rejected, dead-lettered, expired); anything else
        asked of an ended copy is ignored, so its outcome never changes again. (A dead
        letter of a message none of whose deliveries arrived is `mark_last`'s.)
        """
        current = self._m_outcome[seq]
        if current != "in_flight" and (current != "delivered" or outcome not in VERDICTS):
            return
        self._m_ended[seq] = now
        self._m_outcome[seq] = outcome
        if reason:
            self._m_reason[seq] = reason
        if self._verdicts:
            self._verdict_due(seq, now)

    def mark_last(
        self,
        msg_id: str,
        outcome: str,
        now: float,
        reason: str = "",
        attempt: int = 0,
        delivery: int = -1,
    ) -> bool:
        """Give the last delivered copy of `msg_id` a receiver's verdict (a dead letter).

        The copy is the last one that reached its receiver and has no verdict yet. With
        `attempt` (the broker's delivery count), a delivered copy of that attempt comes
        first; an original before its network duplicate. When that attempt's copy is
        still on the wire (`delivery`, its seq: the broker gave up before it arrived),
        the verdict waits for it (`_verdicts`): it takes it when it arrives or is lost,
        or at the run's end, so its own arrival or loss is still recorded. Otherwise
        any earlier delivered copy is marked. When no delivery ever arrived (each was
        lost, or refused by a receiver that was down), the last broker delivery that
        ended so is marked instead, its reason saying how it ended. Returns whether a
        copy was (or will be) marked.

        It scans back from the end: it is for rare events, not the hot path.
        """
        self._flush_messages()
        # A topic's copies share the msg_id: only the named subscription's are this one's.
        subscription = self._dead_copy.pop(msg_id, None)
        found = self._last_delivered(msg_id, attempt, subscription) if attempt else -1
        if (
            found < 0
            and 0 <= delivery < len(self._m_outcome)
            and self._m_outcome[delivery] == "in_flight"
            and delivery not in self._verdicts
        ):
            self._verdicts[delivery] = (outcome, now, reason)
            return True
        if found < 0:
            found = self._last_delivered(msg_id, 0, subscription)
        if found >= 0:
            self.message_ended(found, outcome, now, reason)
            return True
        # No copy reached its receiver: every delivery the broker counted was lost or
        # refused (a push endpoint, or a consumer, down). The broker gave up on the last
        # of them, so that copy ends as its dead letter, and says why it never arrived.
        found = self._last_undelivered(msg_id, attempt, subscription)
        if found < 0:
            return False
        lost = self._m_outcome[found]
        why = self._m_reason.get(found, "")
        self._m_ended[found] = now
        self._m_outcome[found] = outcome
        self._m_reason[found] = (
            f"{reason}; this delivery never arrived ({lost}{': ' + why if why else ''})"
        )
        return True

    def _verdict_due(self, seq: int, now: float) -> None:
        """Give copy `seq`, which just ended at `now`, the verdict waiting for it, if any.

        Its end is when the verdict was given (the broker gave up then), before it
        arrived; its reason says how it ended meanwhile.
        """
        verdict = self._verdicts.pop(seq, None)
        if verdict is None:
            return
        how = self._m_outcome[seq]
        if how == "delivered":
            note = f"this delivery arrived at {now:.6f} s, after that"
        else:
            why = self._m_reason.get(seq, "")
            note = f"this delivery never arrived ({how}{': ' + why if why else ''})"
        self._give_verdict(seq, verdict, note)

    def settle_verdicts(self) -> None:
        """The run ended: each copy a verdict still waits for takes it (still on the wire)."""
        for seq, verdict in sorted(self._verdicts.items()):
            self._give_verdict(seq, verdict, "this delivery was still on the wire at the run's end")
        self._verdicts.clear()

    def _give_verdict(self, seq: int, verdict: tuple[str, float, str], note: str) -> None:
        """Copy `seq` ends with the broker's verdict, when it was given; `note` says what
        became of the copy itself."""
        outcome, at, reason = verdict
        self._m_ended[seq] = at
        self._m_outcome[seq] = outcome
        self._m_reason[seq] = f"{reason}; {note}" if reason else note

    def dead_letter_copy(self, msg_id: str, subscription: str) -> None:
        """The next `mark_last` of `msg_id` is of its copy in `subscription`."""
        self._dead_copy[msg_id] = subscription

    def _last_delivered(self, msg_id: str, attempt: int, subscription: str | None = None) -> int:
        """The seq of the last delivered copy of `msg_id` the broker sent (of `attempt`,
        unless 0; in `subscription`, unless None), or -1.

        When that copy is a network duplicate whose original was delivered too, the
        original: the duplicate is the network's extra copy, the original the sender's.
        """
        outcomes, attempts, dup = self._m_outcome, self._m_attempt, self._m_dup
        subs = self._m_sub
        duplicate = -1
        for seq in self._deliveries_of(msg_id):
            if subscription is not None and subs.get(seq, "") != subscription:
                continue
            if duplicate >= 0:
                # Looking back for the duplicate's original: the same attempt, not a copy.
                if not dup[seq] and attempts[seq] == attempts[duplicate]:
                    return seq if outcomes[seq] == "delivered" else duplicate
                continue
            if outcomes[seq] != "delivered" or (attempt and attempts[seq] != attempt):
                continue
            if not dup[seq]:
                return seq
            duplicate = seq
        return duplicate

    def _last_undelivered(self, msg_id: str, attempt: int, subscription: str | None) -> int:
        """The seq of the last broker delivery of `msg_id` that ended without arriving
        (of `attempt` first, unless 0; in `subscription`, unless None), or -1.

        Copies still on the wire are left alone: their arrival is still to come.
        """
        subs, outcomes, attempts = self._m_sub, self._m_outcome, self._m_attempt
        fallback = -1
        for seq in self._deliveries_of(msg_id):
            if subscription is not None and subs.get(seq, "") != subscription:
                continue
            if outcomes[seq] not in UNDELIVERED:
                continue
            if not attempt or attempts[seq] == attempt:
                return seq
            if fallback < 0:
                fallback = seq
        return fallback

    def _deliveries_of(self, msg_id: str) -> Iterator[int]:
        """The seqs of the broker's deliveries of `msg_id`, newest first.

        Only `deliver` copies: the publish that stored the message shares its msg_id,
        but a dead letter is of a delivery.
        """
        # The rows not yet frozen, then each frozen chunk, newest first.
        parts = itertools.chain(
            [(self._m_id, self._m_kind)],
            (
                (ids.to_pylist(), kinds.to_pylist())
                for ids, kinds in zip(
                    reversed(self._chunks["_m_id"]),
                    reversed(self._chunks["_m_kind"]),
                    strict=True,
                )
            ),
        )
        end = len(self._m_outcome)
        for ids, kinds in parts:
            start = end - len(ids)
            for index in range(len(ids) - 1, -1, -1):
                if ids[index] == msg_id and kinds[index] == "deliver":
                    yield start + index
            end = start

    @property
    def message_count(self) -> int:
        """Copies put on the wire so far."""
        return len(self._m_outcome)

    def _freeze(self) -> None:
        """Turn the rows of the unchanging string columns so far into Arrow chunks."""
        for name, chunks in self._chunks.items():
            values = getattr(self, name)
            chunks.append(_arrow(values))
            values.clear()

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
        # What never changes goes in as one tuple, split into columns with the messages.
        self._s_fixed.append(
            (parent, correlation_id, name, kind, agent, peer, protocol, start, deadline)
        )
        outcomes = self._s_outcome
        outcomes.append("open")
        # end, wait, attempts and status: their defaults are there already.
        if len(outcomes) > self._s_room:
            self._grow_spans()
        return len(outcomes) - 1

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
        """Close a span with its outcome; a span is closed once, later calls are ignored."""
        if self._s_outcome[span] != "open":
            return
        self._s_outcome[span] = outcome
        self._s_end[span] = end
        if error:
            self._s_error[span] = error
        if wait is not None:
            self._s_wait[span] = wait
        if attempts is not None:
            self._s_attempts[span] = attempts
        if status is not None:
            self._s_status[span] = status
        if answered is not None:
            self._s_answered[span] = answered
        if lost_events is not None:
            self._s_lost[span] = lost_events

    def span_usage(self, span: int, input_tokens: int, output_tokens: int, cost: float) -> None:
        """Record the tokens a model call took and what they cost (its server span)."""
        self._s_usage[span] = (input_tokens, output_tokens, cost)

    def span_first_token(self, span: int, at: float) -> None:
        """Record when a model call's first output token came (the span's `ttft` column
        is `at` minus the span's start); the first record wins."""
        self._s_first_token.setdefault(span, at)

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
        """Record an agent-protocol task's state change (columns: TASK_COLUMNS)."""
        self.tasks.append(
            (time, task_id, agent, from_state, to_state, reason, span, correlation_id)
        )

    def effect(self, time: float, agent: str, key: str, msg_id: str, correlation_id: str) -> None:
        """Record an effect applied by a receiver (a handler that really ran) for `key`."""
        self._e_time.append(time)
        self._e_agent.append(agent)
        self._e_key.append(key)
        self._e_msg.append(msg_id)
        self._e_corr.append(correlation_id)

    def fault(self, **row: Any) -> None:
        """Record a fault window (columns: FAULT_COLUMNS)."""
        self.faults.append(row)

    def agent(self, **row: Any) -> None:
        """Record an agent (columns: AGENT_COLUMNS and any more)."""
        self.agents.append(row)

    # -- the tables -------------------------------------------------------------------

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables of the trace contract (`sim.trace.schema`), by name."""
        # Building the columns allocates objects that all survive, after a run that left
        # many behind: the cyclic collector would only rescan them, again and again.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._tables()
        finally:
            if was_enabled:
                gc.enable()

    def _tables(self) -> dict[str, pd.DataFrame]:
        self._flush_messages()
        n = len(self._m_outcome)
        k = len(self._s_outcome)
        frozen = self._frozen
        # Every span id is formatted once; messages and parents index into them, and
        # index -1 (no span) picks the empty string at the end.
        ids = _span_ids(k)
        # Every column is a new array of its own: the frames take them as they are
        # (copy=False), without copying the numbers into one block per dtype.
        messages = pd.DataFrame(
            {
                "seq": pd.RangeIndex(n),
                "msg_id": frozen("_m_id"),
                "type": frozen("_m_type"),
                "version": _numbers(self._m_version, np.int64),
                "protocol": frozen("_m_protocol"),
                "kind": frozen("_m_kind"),
                "src": frozen("_m_src"),
                "dst": frozen("_m_dst"),
                "correlation_id": frozen("_m_corr"),
                "causation_id": frozen("_m_cause"),
                "span_id": _ids(ids, self._m_span),
                "attempt": _numbers(self._m_attempt, np.int64),
                "sent_at": _floats(self._m_sent),
                "delivered_at": _floats(self._m_delivered, n),
                "ended_at": pd.Series(_ended(self._m_delivered, self._m_ended, 0, n), copy=False),
                "outcome": _strings(self._m_outcome),
                "size_bytes": _numbers(self._m_size, np.int64),
                "duplicate": _numbers(self._m_dup, np.bool_),
                "reason": _sparse(self._m_reason, n),
                "subscription": _sparse(self._m_sub, n),
                "ordering_key": _sparse(self._m_key, n),
            },
            columns=MESSAGE_COLUMNS,
            copy=False,
        )
        spans = pd.DataFrame(
            {
                "span_id": _id_range(ids, k),
                "parent_id": _ids(ids, self._s_parent),
                "correlation_id": frozen("_s_corr"),
                "name": frozen("_s_name"),
                "kind": frozen("_s_kind"),
                "agent": frozen("_s_agent"),
                "peer": frozen("_s_peer"),
                "protocol": frozen("_s_protocol"),
                "start": _floats(self._s_start),
                "end": _floats(self._s_end, k),
                "deadline": _floats(self._s_deadline),
                "wait": _floats(self._s_wait, k),
                "outcome": _strings(self._s_outcome),
                "attempts": _numbers(self._s_attempts[:k], np.int64),
                "error": _sparse(self._s_error, k),
                "status": _numbers(self._s_status[:k], np.int64),
                "answered": _sparse_int(self._s_answered, k),
                "lost_events": _sparse_int(self._s_lost, k),
                **_usage_columns(self._s_usage, k),
                "ttft": _ttft_column(self._s_first_token, self._s_start, k),
            },
            columns=SPAN_COLUMNS,
            copy=False,
        )
        effects = pd.DataFrame(
            {
                "time": _floats(self._e_time),
                "agent": frozen("_e_agent"),
                "key": frozen("_e_key"),
                "msg_id": frozen("_e_msg"),
                "correlation_id": frozen("_e_corr"),
            },
            columns=EFFECT_COLUMNS,
            copy=False,
        )
        tables = {
            "messages": messages,
            "spans": spans,
            "breakers": pd.DataFrame(self.breakers, columns=BREAKER_COLUMNS),
            "queues": pd.DataFrame(self.queues, columns=QUEUE_COLUMNS),
            "faults": pd.DataFrame(self.faults, columns=FAULT_COLUMNS),
            "agents": pd.DataFrame(self.agents, columns=_agent_columns(self.agents)),
            "effects": effects,
            "tasks": self._task_table(ids),
        }
        return {name: conform(name, table) for name, table in tables.items()}

    def _task_table(self, ids: pa.Array | np.ndarray) -> pd.DataFrame:
        rows = self.tasks
        spans = array("q", (row[6] for row in rows))
        return pd.DataFrame(
            {
                "time": _floats(array("d", (row[0] for row in rows))),
                "task_id": _strings([row[1] for row in rows]),
                "agent": _strings([row[2] for row in rows]),
                "from_state": _strings([row[3] for row in rows]),
                "to_state": _strings([row[4] for row in rows]),
                "reason": _strings([row[5] for row in rows]),
                "span_id": _ids(ids, spans),
                "correlation_id": _strings([row[7] for row in rows]),
            },
            columns=TASK_COLUMNS,
        )

    def _frozen(self, name: str) -> pd.Series:
        """A column of unchanging strings: its frozen chunks and the rows since."""
        chunks = self._chunks[name]
        if not chunks:
            return _strings(getattr(self, name))
        # Left in chunks: joining them is a copy of the column into new memory, which
        # costs more than all the rest of its making.
        arrays = [*chunks, _arrow(getattr(self, name))]
        return _arrow_strings(pa.chunked_array(arrays, type=pa.large_string()))


# Messages between two freezes of the unchanging string columns (see Recorder._freeze).
CHUNK_ROWS = 16384
# Messages at one simulated instant that can only be a loop (a burst of a workload is
# capped far below it by sim.limits' checks of arrival counts).
STALLED_MESSAGES = 2_000_000
_CHUNKED = (
    "_m_id", "_m_type", "_m_protocol", "_m_kind", "_m_src", "_m_dst", "_m_corr", "_m_cause",
    "_s_corr", "_s_name", "_s_kind", "_s_agent", "_s_peer", "_s_protocol",
    "_e_agent", "_e_key", "_e_msg", "_e_corr",
)  # fmt: skip

# The dtype "str" columns get: Arrow-backed strings on pandas 3, where a column can be
# built from an Arrow array directly instead of through pandas' per-element checks.
_STR = pd.api.types.pandas_dtype("str")
_ARROW_STR = isinstance(_STR, pd.StringDtype) and _STR.storage == "pyarrow"


def _strings(values: Sequence[str]) -> pd.Series:
    """A "str" column from a list of strings (what pandas would make of it, faster)."""
    if _ARROW_STR:
        try:
            arrow = pa.array(values, type=pa.large_string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass  # not all strings: pandas converts them as it always has
        else:
            return _arrow_strings(arrow)
    return pd.Series(values, dtype="str")


def _arrow(values: list[str]) -> pa.Array:
    """The Arrow array of the "str" column of `values` (only on Arrow-backed pandas)."""
    try:
        return pa.array(values, type=pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Not all strings: what pandas makes of them, as the column would have had.
        arrow = pa.array(pd.array(values, dtype=_STR))
        return arrow.combine_chunks() if isinstance(arrow, pa.ChunkedArray) else arrow


def _arrow_strings(arrow: pa.Array | pa.ChunkedArray) -> pd.Series:
    return pd.Series(ArrowStringArray(arrow, dtype=_STR), copy=False)


def _floats(values: array, n: int = -1) -> pd.Series:
    """A float column from an array of doubles (its first `n`, when given)."""
    column = np.frombuffer(values, dtype=np.float64)
    return pd.Series((column if n < 0 else column[:n]).copy(), copy=False)


def _ended(delivered: array, ended: array, lo: int, hi: int) -> np.ndarray:
    """The `ended_at` of messages lo..hi: a delivered copy that no verdict ended later
    ended when it was delivered (`message_delivered` writes only the delivery)."""
    at = np.frombuffer(ended, dtype=np.float64)[lo:hi].copy()
    unset = np.isnan(at)
    at[unset] = np.frombuffer(delivered, dtype=np.float64)[lo:hi][unset]
    return at


# A block of the defaults of the columns grown ahead (Recorder._grow_messages, _grow_spans).
_BLOCK: Final = 16384
_NANS: Final = array("d", [NAN]) * _BLOCK
_ZEROS: Final = array("d", [0.0]) * _BLOCK


def _grow(values: MutableSequence[int], default: int) -> None:
    """_BLOCK more rows of `default` at the end of `values` (a list, or an array)."""
    if isinstance(values, array):
        values.extend(array(values.typecode, [default]) * _BLOCK)
    else:
        values.extend([default] * _BLOCK)


def _append_numbers(values: array, new: Sequence[Any]) -> None:
    """Append the numbers `new` to the array `values`: converted by numpy in one pass
    when there are many (an array's extend parses them one by one)."""
    if len(new) < 64:
        values.extend(new)
        return
    dtype = np.float64 if values.typecode == "d" else np.int64
    values.frombytes(np.array(new, dtype=dtype).tobytes())


def _numbers(values: Sequence[Any], dtype: type) -> pd.Series:
    """A numeric or bool column from a list of Python numbers."""
    return pd.Series(np.array(values, dtype=dtype), copy=False)


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _span_ids(k: int) -> pa.Array | np.ndarray:
    """`span_hex(i)` for i in range(k), then "" (index -1, no span).

    Written as Arrow buffers (16 hex digits per id), without a Python string per span.
    """
    if not _ARROW_STR:
        return np.array([span_hex(i) for i in range(k)] + [""], dtype=object)
    number = np.arange(1, k + 1, dtype=np.uint64)
    digits = np.empty((k, 16), dtype=np.uint8)
    for place in range(16):
        digits[:, place] = _HEX[(number >> np.uint64(4 * (15 - place))) & np.uint64(15)]
    offsets = np.arange(0, 16 * (k + 1), 16, dtype=np.int64)
    offsets = np.append(offsets, 16 * k)
    return pa.LargeStringArray.from_buffers(
        k + 1, pa.py_buffer(offsets), pa.py_buffer(digits.reshape(-1))
    )


def _id_range(ids: pa.Array | np.ndarray, k: int) -> pd.Series:
    """The ids of spans 0..k-1."""
    if isinstance(ids, np.ndarray):
        return pd.Series(ids[:k], dtype="str")
    return _arrow_strings(ids.slice(0, k))


def _ids(ids: pa.Array | np.ndarray, index: array) -> pd.Series:
    """Span ids for an array of span indexes (-1, no span, gives the empty string)."""
    positions = np.frombuffer(index, dtype=np.int64)
    if isinstance(ids, np.ndarray):
        return pd.Series(ids[positions], dtype="str")
    # Arrow's take has no negative indexes: count them from the end, as numpy does.
    positions = np.where(positions < 0, positions + len(ids), positions)
    return _arrow_strings(ids.take(pa.array(positions)))


def _sparse(values: dict[int, str], n: int) -> pd.Series:
    """A string column that is empty but for a few rows."""
    if _ARROW_STR:
        try:
            return _arrow_strings(_sparse_arrow(values, n))
        except UnicodeEncodeError:
            pass  # not UTF-8 (a lone surrogate): pandas converts it as it always has
    column = [""] * n
    for index, value in values.items():
        column[index] = value
    return _strings(column)


def _sparse_arrow(values: dict[int, str], n: int) -> pa.Array:
    """The Arrow array of `_sparse`'s column, written as its buffers: the empty rows
    cost an offset each, not a Python string converted each (three columns of every
    message are such, and most runs leave them empty)."""
    rows = sorted(values.items())
    encoded = [value.encode("utf-8") for _, value in rows]
    lengths = np.zeros(n, dtype=np.int64)
    if rows:
        lengths[[index for index, _ in rows]] = [len(value) for value in encoded]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))
    )


def _sparse_int(values: dict[int, int], n: int) -> pd.Series:
    """An int column that is -1 but for a few rows."""
    column = np.full(n, -1, dtype=np.int64)
    for index, value in values.items():
        column[index] = value
    return pd.Series(column, dtype="int64")


def _usage_columns(usage: dict[int, tuple[int, int, float]], n: int) -> dict[str, pd.Series]:
    """The spans' token and cost columns: -1, -1 and NaN but for model calls."""
    tokens_in = np.full(n, -1, dtype=np.int64)
    tokens_out = np.full(n, -1, dtype=np.int64)
    cost = np.full(n, NAN, dtype=np.float64)
    for index, (i, o, c) in usage.items():
        tokens_in[index], tokens_out[index], cost[index] = i, o, c
    return {
        "input_tokens": pd.Series(tokens_in, dtype="int64"),
        "output_tokens": pd.Series(tokens_out, dtype="int64"),
        "cost": pd.Series(cost, dtype="float64"),
    }


def _ttft_column(first: dict[int, float], start: Any, n: int) -> pd.Series:
    """The spans' time to first token: NaN but for model calls that had one."""
    column = np.full(n, NAN, dtype=np.float64)
    for index, at in first.items():
        column[index] = at - start[index]
    return pd.Series(column, dtype="float64")


def _agent_columns(rows: list[dict[str, Any]]) -> list[str]:
    columns = list(AGENT_COLUMNS)
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    return columns
