"""The board's ranks (domain/rows.py's Board): any sequence of puts and moves
keeps the order a plain list would, with distinct ranks, renumbering only when
no rank is left between the new neighbours."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.domain import rows


@given(
    ops=st.lists(st.tuples(st.integers(0, 30), st.integers(-1, 30)), min_size=1, max_size=120),
    gap_exponent=st.integers(0, 4),
)
def test_ranks_keep_the_order_of_a_list(ops: list[tuple[int, int]], gap_exponent: int) -> None:
    # A crowded start (ranks 1-16 apart), so that renumbers happen.
    order = list(range(100, 110))
    ranks = {sid: n << gap_exponent for n, sid in enumerate(order)}
    for sid, before in ops:
        board = rows.Board(ranks, complete=True)
        if sid in order:
            order.remove(sid)
            board.remove(sid)
        target = before if before in order else None
        board.insert(sid, target)
        order.insert(len(order) if target is None else order.index(target), sid)
        ranks = board.ranks
        assert rows.board_order(ranks) == order


def test_a_crowded_place_is_renumbered_in_a_small_section() -> None:
    ranks = {n: n * rows.GAP for n in range(100)}
    moved = [200, 201]
    changed_most = 0
    for i in range(200):
        board = rows.Board(ranks, complete=False)
        sid = moved[i % 2]
        board.remove(sid)
        try:
            board.insert(sid, 50)
        except rows.NoRoom:
            board = rows.Board(ranks, complete=True)
            board.remove(sid)
            board.insert(sid, 50)
        changed_most = max(changed_most, len(board.changed()))
        ranks = board.ranks
        order = rows.board_order(ranks)
        assert order.index(sid) == order.index(50) - 1
    assert 1 < changed_most < 20


def test_a_partial_board_without_room_asks_for_every_rank() -> None:
    board = rows.Board({1: 0, 2: 1}, complete=False)
    with pytest.raises(rows.NoRoom):
        board.insert(3, 2)
