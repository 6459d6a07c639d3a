"""A connection's pieces read in order, as TCP delivers them to the application.

A piece carries its position `n` on its connection. One that arrives ahead of a hole is
held until the hole fills; a duplicate copy is dropped; a hole still open after the
stall timeout (TCP's minimum retransmission timeout, RFC 6298) is the connection's
failure, which the reader is told of. The streams of A2A and MCP read through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from protocols.node import Node

T = TypeVar("T")


class InOrder(Generic[T]):
    """The reading side of one connection at a time.

    `read(piece)` takes each piece once, in order; `stalled(conn, at)` is told that
    piece `at` of connection `conn` never arrived within `stall_timeout` (the reader
    decides whether that still matters). `conn` is the connection being read ("": none);
    reading stops as soon as `read` moves to another connection.
    """

    __slots__ = ("conn", "expected", "held", "node", "read", "stall_timeout", "stalled")

    def __init__(
        self,
        node: Node,
        stall_timeout: float,
        read: Callable[[T], None],
        stalled: Callable[[str, int], None],
    ) -> None:
        self.node = node
        self.stall_timeout = stall_timeout
        self.read = read
        self.stalled = stalled
        self.conn = ""
        self.expected = 0  # the next position on the connection
        self.held: dict[int, T] = {}  # pieces that arrived ahead of a hole

    def open(self, conn: str) -> None:
        """Read connection `conn` from its first piece."""
        self.conn = conn
        self.expected = 0
        self.held.clear()

    def arrive(self, n: int, piece: T) -> None:
        """Piece `n` of the current connection arrived."""
        if n < self.expected or n in self.held:
            return  # a duplicate copy
        if n > self.expected:
            if not self.held:
                self._watch_hole(self.conn, self.expected)
            self.held[n] = piece
            return
        conn = self.conn
        self.take(piece)
        while self.conn == conn and self.expected in self.held:
            self.take(self.held.pop(self.expected))
        if self.held and self.conn == conn:
            self._watch_hole(conn, self.expected)

    def take(self, piece: T) -> None:
        """Read `piece` as the next in order."""
        self.expected += 1
        self.read(piece)

    def _watch_hole(self, conn: str, at: int) -> None:
        def check() -> None:
            if self.conn == conn and self.expected == at:
                self.stalled(conn, at)

        self.node.after(self.stall_timeout, check)


class ReadsInOrder(Generic[T]):
    """A base for what reads one connection at a time through its `reader`: the
    connection it reads is its `conn`."""

    reader: InOrder[T]

    @property
    def conn(self) -> str:
        """The connection being read ("" for none)."""
        return self.reader.conn

    @conn.setter
    def conn(self, conn: str) -> None:
        self.reader.conn = conn
