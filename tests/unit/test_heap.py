"""The start-up heap is set aside from later garbage collections."""

from __future__ import annotations

import gc

from recomind.entrypoints.heap import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector could free it


def test_objects_alive_at_start_up_are_left_out_of_later_collections() -> None:
    alive = _Node()
    try:
        frozen = freeze_startup_heap()
        assert frozen == gc.get_freeze_count() > 0
        assert not any(o is alive for o in gc.get_objects())  # walked by no generation
        later = _Node()
        assert any(o is later for o in gc.get_objects())  # made since: collected as usual
    finally:
        gc.unfreeze()
    assert any(o is alive for o in gc.get_objects())
