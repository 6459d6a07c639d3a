"""Negotiation over a WebSocket: bids and counter-bids until agreement or a deadline.

Two agents hold positions on one number (a writer and a critic on a draft's length or
score, a buyer and a seller on a price). The one that starts bids its position; the
other, after thinking, agrees if the gap is within the threshold, or concedes a seeded
random fraction of the gap (never past its limit) and bids back; and so on. Both sides
stop at the deadline, which the first bid carries. Agents whose limits leave a gap wider
than the threshold never agree: the negotiation ends at its deadline.

    writer = Negotiator(writer_ws, Stance(position=80, limit=60))
    critic = Negotiator(critic_ws, Stance(position=40, limit=65))
    talk = writer.start("critic", deadline=60, threshold=2)
    outcome = yield talk.done            # or on_done=callback: an Outcome

Either side may start, over whatever connection joins them (`WebSocketEndpoint.channel`:
a session it opened, or one the peer opened to it). Each side has one span per
negotiation ("negotiate": client for the side that started, server for the other) whose
`attempts` is the number of bids exchanged.

A negotiation is part of the request it serves: its messages and spans carry that
request's correlation id (`start(..., correlation_id=...)`; the responder takes it from
the first bid), so one request stays one trace end to end. The negotiation's own id
travels in every bid's body (`id`) and in its Outcome. Without a correlation id the
negotiation's id stands in for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import simpy

from protocols.transport import Message
from protocols.websocket import PROTOCOL, Channel, WebSocketEndpoint

BID, AGREE = "negotiation.bid", "negotiation.agree"
BID_BYTES = 512


@dataclass(frozen=True)
class Stance:
    """One side's position, how far it will go, how fast it concedes, how long it thinks."""

    position: float
    limit: float
    concede: tuple[float, float] = (0.2, 0.5)
    think: float = 1.0


@dataclass(frozen=True)
class Outcome:
    """How a negotiation ended: `agreed` (with the value), `deadline`, or `failed`."""

    id: str
    outcome: str
    rounds: int
    value: float | None
    started: float
    ended: float
    peer: str
    initiator: bool
    # The request the negotiation belongs to (its messages' and spans' correlation id).
    correlation_id: str = ""


@dataclass
class Negotiation:
    """One negotiation on one side; `done` fires with its Outcome."""

    id: str
    correlation_id: str
    peer: str
    position: float
    deadline: float
    threshold: float
    initiator: bool
    started: float
    span: int
    done: simpy.Event
    channel: Channel | None = None
    rounds: int = 0
    on_done: Callable[[Outcome], None] | None = None
    outcome: Outcome | None = field(default=None)


class Negotiator:
    """The negotiation pattern on one agent's WebSocket endpoint."""

    def __init__(
        self,
        endpoint: WebSocketEndpoint,
        stance: Stance,
        on_result: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.ep = endpoint
        self.node = endpoint.node
        self.stance = stance
        self.on_result = on_result
        self.active: dict[str, Negotiation] = {}
        self.results: list[Outcome] = []
        self.rng = self.node.stream(f"negotiation:{self.node.id}")
        endpoint.handle(BID, self._on_bid)
        endpoint.handle(AGREE, self._on_agree)
        endpoint.on_reset.append(self._reset)

    def start(
        self,
        peer: str,
        deadline: float,
        threshold: float = 1.0,
        on_done: Callable[[Outcome], None] | None = None,
        parent: int = -1,
        correlation_id: str = "",
    ) -> Negotiation:
        """Start negotiating with `peer`; it must end within `deadline` seconds.

        `correlation_id` is the request's the negotiation serves (its spans and messages
        carry it, under `parent`); without one, the negotiation's own id.
        """
        node = self.node
        now = node.env.now
        nid = f"neg-{node.new_id()}"
        cid = correlation_id or nid
        talk = self._begin(nid, cid, peer, now + deadline, threshold, True, parent, on_done)
        talk.channel = self.ep.channel(peer)
        self._bid(talk)
        return talk

    # -- internals --------------------------------------------------------------------

    def _begin(
        self,
        nid: str,
        cid: str,
        peer: str,
        deadline: float,
        threshold: float,
        initiator: bool,
        parent: int,
        on_done: Callable[[Outcome], None] | None = None,
    ) -> Negotiation:
        node = self.node
        now = node.env.now
        span = node.journal.span_start(
            "negotiate",
            "client" if initiator else "server",
            node.id,
            peer,
            PROTOCOL,
            now,
            parent,
            cid,
            deadline,
        )
        talk = Negotiation(
            nid,
            cid,
            peer,
            self.stance.position,
            deadline,
            threshold,
            initiator,
            now,
            span,
            node.env.event(),
            on_done=on_done,
        )
        self.active[nid] = talk
        node.after(max(0.0, deadline - now), lambda: self._expire(nid))
        return talk

    def _bid(self, talk: Negotiation) -> None:
        talk.rounds += 1
        body = {
            "id": talk.id,
            "value": talk.position,
            "round": talk.rounds,
            "deadline": talk.deadline,
            "threshold": talk.threshold,
        }
        self._send(talk, BID, body)

    def _send(self, talk: Negotiation, type_: str, body: dict) -> None:
        assert talk.channel is not None
        talk.channel.send(
            type_, body, BID_BYTES, correlation_id=talk.correlation_id, span=talk.span
        )

    def _on_bid(self, channel: Channel, msg: Message) -> None:
        bid = msg.body
        talk = self.active.get(bid["id"])
        if talk is None:
            if bid["round"] != 1 or self.node.env.now >= bid["deadline"]:
                return  # a bid of a negotiation that has ended here
            cid = msg.correlation_id or bid["id"]
            talk = self._begin(
                bid["id"], cid, msg.src, bid["deadline"], bid["threshold"], False, msg.span
            )
        talk.channel = channel  # answer on the connection the bid came on
        talk.rounds = bid["round"]
        value = bid["value"]
        if abs(value - talk.position) <= talk.threshold:
            self._send(talk, AGREE, {"id": talk.id, "value": value, "round": talk.rounds})
            self._end(talk, "agreed", value)
            return
        self.node.after_work(self.stance.think, lambda: self._counter(talk, value))

    def _counter(self, talk: Negotiation, theirs: float) -> None:
        if talk.outcome is not None:
            return
        low, high = self.stance.concede
        moved = talk.position + (theirs - talk.position) * self.rng.uniform(low, high)
        limit = self.stance.limit
        # Concede toward their bid, never past the limit (a side already past it holds).
        if theirs > talk.position:
            moved = min(moved, max(limit, talk.position))
        else:
            moved = max(moved, min(limit, talk.position))
        talk.position = moved
        self._bid(talk)

    def _on_agree(self, _channel: Channel, msg: Message) -> None:
        talk = self.active.get(msg.body["id"])
        if talk is not None:
            talk.rounds = msg.body["round"]
            self._end(talk, "agreed", msg.body["value"])

    def _expire(self, nid: str) -> None:
        talk = self.active.get(nid)
        if talk is not None:
            self._end(talk, "deadline", None)

    def _end(self, talk: Negotiation, outcome: str, value: float | None) -> None:
        node = self.node
        now = node.env.now
        self.active.pop(talk.id, None)
        result = Outcome(
            talk.id, outcome, talk.rounds, value, talk.started, now, talk.peer, talk.initiator,
            talk.correlation_id,
        )  # fmt: skip
        talk.outcome = result
        span_outcome = {"agreed": "ok", "deadline": "deadline_exceeded"}.get(outcome, "error")
        error = "" if outcome == "agreed" else f"no agreement after {talk.rounds} bids"
        node.journal.span_end(talk.span, span_outcome, now, error=error, attempts=talk.rounds)
        self.results.append(result)
        if talk.on_done is not None:
            talk.on_done(result)
        if self.on_result is not None:
            self.on_result(result)
        talk.done.succeed(result)

    def _reset(self) -> None:
        """The node crashed: every negotiation in progress fails, and nobody is told."""
        node = self.node
        for talk in self.active.values():
            node.journal.span_end(talk.span, "error", node.env.now, error="crashed")
            talk.outcome = Outcome(
                talk.id,
                "failed",
                talk.rounds,
                None,
                talk.started,
                node.env.now,
                talk.peer,
                talk.initiator,
                talk.correlation_id,
            )
        self.active.clear()


__all__ = ["AGREE", "BID", "Negotiation", "Negotiator", "Outcome", "Stance"]
