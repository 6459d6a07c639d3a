"""The opening handshake of a connection: TCP, then TLS 1.3, then whatever the protocol adds.

Whatever the protocol, a client opens a connection the same way: it sends its steps in
order (TCP's SYN, TLS 1.3's ClientHello unless TLS is off, an HTTP upgrade for a
WebSocket), the server answers each, and the connection is open once the last step is
answered. Each step and each answer is a real `control` message, so loss, a partition or
a crashed server hit the handshake as they hit a real one. An answer the client is not
waiting for (to a step it sent again, say) changes nothing.

Each protocol names its messages (`Handshake`) and times its retransmissions itself:
HTTP as Linux retransmits a SYN (1 s, doubling), a WebSocket by its stream's
retransmission timeout.
"""

from __future__ import annotations


class Handshake:
    """A protocol's handshake: the client's step and the server's answer, TCP's pair first,
    TLS's second, then any the protocol adds."""

    def __init__(self, tcp: tuple[str, str], tls: tuple[str, str], *more: tuple[str, str]) -> None:
        self.tcp = tcp
        self.tls = tls
        self.more = more
        self._answers = dict([tcp, tls, *more])

    def steps(self, tls: bool) -> tuple[str, ...]:
        """The client's steps in order, with TLS's or without."""
        pairs = (self.tcp, self.tls, *self.more) if tls else (self.tcp, *self.more)
        return tuple(step for step, _ in pairs)

    def answer(self, step: str) -> str | None:
        """The server's answer to a client's step (None: not a step)."""
        return self._answers.get(step)


class Opening:
    """A client's way through a handshake: the step it is at and the answer it awaits."""

    __slots__ = ("_answers", "_index", "_steps")

    def __init__(self, handshake: Handshake, tls: bool) -> None:
        self._steps = handshake.steps(tls)
        self._answers = tuple(handshake.answer(step) for step in self._steps)
        self._index = 0

    @property
    def step(self) -> str:
        """The step to send (again, if its answer does not come)."""
        return self._steps[self._index]

    @property
    def expected(self) -> str | None:
        """The answer the client waits for (None once every step is answered)."""
        return self._answers[self._index] if self._index < len(self._steps) else None

    def advance(self, answer: str) -> bool | None:
        """An answer arrived: None if it is not the one awaited; else the next step is due
        (False), or the connection is open (True)."""
        if answer != self.expected:
            return None
        self._index += 1
        return self._index == len(self._steps)
