"""A connection's pieces read in order (protocols.inorder), as the A2A and MCP streams
read theirs: held behind a hole, each read once, a hole left open breaks the connection."""

from __future__ import annotations

from protocols.inorder import InOrder
from tests.harness import Harness


def reader(stall: float = 1.0) -> tuple[Harness, InOrder[str], list[str], list[tuple]]:
    h = Harness(["c"])
    node = h.node("c")
    read: list[str] = []
    stalls: list[tuple] = []
    r: InOrder[str] = InOrder(node, stall, read.append,
                              lambda conn, at: stalls.append((node.env.now, conn, at)))  # fmt: skip
    r.open("conn-1")
    return h, r, read, stalls


def test_pieces_ahead_of_a_hole_wait_for_it_and_duplicates_are_dropped() -> None:
    h, r, read, stalls = reader()
    for n, piece in [(0, "a"), (2, "c"), (3, "d"), (0, "a"), (1, "b"), (2, "c")]:
        r.arrive(n, piece)
    h.run(5)
    assert read == ["a", "b", "c", "d"]
    assert r.expected == 4 and not r.held
    assert stalls == []  # the hole filled before the stall timeout


def test_a_hole_left_open_is_reported_once_after_the_stall_timeout() -> None:
    h, r, read, stalls = reader(stall=1.0)
    r.arrive(0, "a")
    r.arrive(2, "c")
    h.run(5)
    assert read == ["a"]
    assert stalls == [(1.0, "conn-1", 1)]


def test_a_new_connection_forgets_the_old_one_and_its_hole() -> None:
    h, r, read, stalls = reader()
    r.arrive(1, "b")
    r.open("conn-2")
    r.arrive(0, "x")
    h.run(5)
    assert read == ["x"]
    assert stalls == []  # the old connection's hole no longer matters
