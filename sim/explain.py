"""Why a check failed, as text: the violating messages and the chain that led to each.

Each check's rows name the message that shows the violation (`msg_id`: the request of a
call whose deadline grew, the retry past a budget, the dead letter without a reason...).
`causal_chain(run, msg_id)` follows that message back to the request that started it
all: each message's `causation_id` (the message it answers, or was sent to serve), and
where a message has none, the span that sent it, up its parents to the nearest span
that sent a request. `describe_violations` is what `python -m sim run SCENARIO --check`
prints: for each failing check its first violations, each with its message and chain.

    >>> import sim
    >>> run = sim.run("timeout-cascade-inverted")
    >>> found = sim.check(run)["deadlines_shrink"]
    >>> chain = causal_chain(run, found["msg_id"].iloc[0])
    >>> chain["causation_id"].iloc[0], chain["msg_id"].iloc[-1] == found["msg_id"].iloc[0]
    ('', True)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from sim.checks import CHECKS, SENDS

if TYPE_CHECKING:
    from sim.trace.run import Run

# Violations shown per failing check, and messages shown per chain (the root, then the
# ones nearest the violation).
ROWS = 3
CHAIN = 12
# A chain longer than this is a cycle in a damaged trace, not a real request.
_DEPTH = 1000

_CHAIN_COLUMNS = [
    "msg_id", "sent_at", "src", "dst", "kind", "type", "attempt", "outcome", "reason",
    "causation_id", "span_id",
]  # fmt: skip


class _Trace:
    """The lookups a chain needs, built once per report."""

    def __init__(self, run: Run) -> None:
        m = run.messages
        # A message by its id: its first copy (the sender's; a queue delivery's publish).
        self.first = m.drop_duplicates("msg_id").set_index("msg_id")
        sends = m[m["kind"].isin(SENDS) & (m["span_id"] != "")]
        self.request_of_span = sends.drop_duplicates("span_id").set_index("span_id")["msg_id"]
        self.parent = run.spans.set_index("span_id")["parent_id"]

    def cause(self, msg_id: str) -> str:
        """The message `msg_id` was sent on behalf of ("" at a root)."""
        row = self.first.loc[msg_id]
        causation = str(row["causation_id"])
        if causation and causation in self.first.index:
            return causation
        return self.upstream_request(str(row["span_id"]), msg_id)

    def upstream_request(self, span_id: str, besides: str = "") -> str:
        """The request of the nearest span above `span_id` that sent one ("" if none)."""
        span = self.parent.get(span_id, "")
        for _ in range(_DEPTH):
            if not span:
                return ""
            request = self.request_of_span.get(span)
            if request is not None and request != besides:
                return str(request)
            span = self.parent.get(span, "")
        return ""

    def chain(self, msg_id: str) -> pd.DataFrame:
        """The messages from the root request to `msg_id`, in causal order."""
        if msg_id not in self.first.index:
            return pd.DataFrame(columns=_CHAIN_COLUMNS)
        ids = [msg_id]
        seen = {msg_id}
        for _ in range(_DEPTH):
            cause = self.cause(ids[-1])
            if not cause or cause in seen:
                break
            ids.append(cause)
            seen.add(cause)
        ids.reverse()
        return self.first.loc[ids].reset_index()[_CHAIN_COLUMNS]


def causal_chain(run: Run, msg_id: str) -> pd.DataFrame:
    """The messages that led to `msg_id`, from the root request to it (one row each).

    Each step goes from a message to the one it was sent for: its `causation_id`, or
    else the request of the nearest span above the span that sent it. An unknown id
    gives an empty table.
    """
    return _Trace(run).chain(msg_id)


def describe_violations(run: Run, failed: dict[str, pd.DataFrame], rows: int = ROWS) -> str:
    """Every failing check as text: what it asserts, and its first `rows` violations,
    each with its violating message (`msg_id`) and the chain from the root to it."""
    trace = _Trace(run)
    return "\n".join(_describe(trace, name, found, rows) for name, found in failed.items())


def describe_violation(run: Run, name: str, found: pd.DataFrame, rows: int = ROWS) -> str:
    """One failing check as text (see `describe_violations`)."""
    return _describe(_Trace(run), name, found, rows)


def _describe(trace: _Trace, name: str, found: pd.DataFrame, rows: int) -> str:
    rule = next((c for c in CHECKS if c.name == name), None)
    asserts = f": {rule.asserts}" if rule is not None else ""
    lines = [f"check '{name}' failed{asserts} ({len(found)} violation(s))"]
    for number, (_, row) in enumerate(found.head(rows).iterrows(), start=1):
        msg_id = str(row["msg_id"]) if "msg_id" in row.index else ""
        fields = ", ".join(f"{k}={_show(row[k])}" for k in found.columns if k != "msg_id")
        lines.append(f"  {number}. msg_id={msg_id or '-'}  {fields}")
        lines.extend(_chain_lines(trace, msg_id, str(row.get("span_id", "") or "")))
    if len(found) > rows:
        lines.append(f"  ... and {len(found) - rows} more")
    return "\n".join(lines)


def _chain_lines(trace: _Trace, msg_id: str, span_id: str) -> list[str]:
    """The chain of one violation, root first, the violating message marked."""
    pointer = "<- violating"
    if not msg_id:
        # Nothing went on the wire (a call refused before it sent): the chain of the
        # request it was made for, then the span itself.
        msg_id, pointer = trace.upstream_request(span_id), ""
        if not msg_id:
            return ["     (no message: the violating span sent none, and serves no request)"]
    chain = trace.chain(msg_id)
    if chain.empty:
        return [f"     ({msg_id} is not in the messages table)"]
    lines = ["     chain, root first:"]
    shown = chain
    if len(chain) > CHAIN:
        shown = pd.concat([chain.head(1), chain.tail(CHAIN - 1)])
    for i, message in enumerate(shown.itertuples(index=False)):
        if len(chain) > CHAIN and i == 1:
            lines.append(f"       ... {len(chain) - CHAIN} more")
        last = i == len(shown) - 1
        lines.append(
            "       " + _message_line(message) + (f"  {pointer}" if last and pointer else "")
        )
    if not pointer:
        lines.append(f"       span {span_id}: sent no message")
    return lines


def _message_line(m: Any) -> str:
    reason = f": {m.reason}" if m.reason else ""
    return (
        f"{m.msg_id:<8} {m.sent_at:10.4f}  {m.src} -> {m.dst}  {m.kind} {m.type}"
        f" (attempt {m.attempt}) {m.outcome}{reason}"
    )


def _show(value: Any) -> str:
    """A cell as text: floats to 4 decimals (times and deadlines), the rest as they are."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4f}"
    return str(value)
