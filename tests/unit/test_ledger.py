"""`LedgerPruner`: the profile group's ledger forgets old ids on a schedule, on the worker that
runs the group, and a store that is away only delays it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from recomind.bootstrap import bootstrap
from recomind.config import Settings
from recomind.services.ledger import DAY_SECONDS, LedgerPruner


class FakeStore:
    """Holds `old` forgettable ids; each call forgets at most `limit` of them."""

    def __init__(self, fails: int = 0, old: int = 7) -> None:
        self.asked: list[tuple[float, int]] = []
        self.fails = fails
        self.old = old
        self.called = threading.Semaphore(0)
        self.on_call = lambda: None

    def forget_counted(self, older_than_seconds: float, limit: int) -> int:
        self.asked.append((older_than_seconds, limit))
        self.called.release()
        self.on_call()
        if self.fails:
            self.fails -= 1
            raise ConnectionError("store down")
        forgotten = min(self.old, limit)
        self.old -= forgotten
        return forgotten


def test_it_forgets_what_is_older_than_the_retention_chunk_by_chunk_and_counts_it() -> None:
    store = FakeStore(old=25)
    pruner = LedgerPruner(store, retention_seconds=30 * DAY_SECONDS, chunk=10)  # type: ignore[arg-type]
    assert pruner.prune_once() == 25
    assert store.asked == [(30 * DAY_SECONDS, 10)] * 3  # 10, 10, then 5: none left
    assert pruner.prune_once() == 0
    assert pruner.forgotten == 25


def test_a_stop_ends_a_round_between_chunks() -> None:
    store = FakeStore(old=1_000)
    pruner = LedgerPruner(store, retention_seconds=60, chunk=10)  # type: ignore[arg-type]
    store.on_call = lambda: pruner._stop.set() if len(store.asked) == 2 else None
    assert pruner.prune_once() == 20
    assert store.old == 980


def test_a_retention_of_zero_keeps_every_id() -> None:
    store = FakeStore()
    pruner = LedgerPruner(store, retention_seconds=0)  # type: ignore[arg-type]
    assert pruner.prune_once() == 0
    pruner.start()
    assert pruner._thread is None
    pruner.stop()
    assert store.asked == []


def test_it_runs_as_it_starts_then_every_interval_and_outlives_a_store_that_is_away() -> None:
    store = FakeStore(fails=1)
    pruner = LedgerPruner(store, retention_seconds=60, interval_seconds=0.05)  # type: ignore[arg-type]
    pruner.start()
    try:
        for _ in range(3):  # the first fails; the thread goes on
            assert store.called.acquire(timeout=5)
    finally:
        pruner.stop()
    assert pruner._thread is not None and not pruner._thread.is_alive()
    assert pruner.forgotten == 7


@pytest.mark.parametrize(
    ("groups", "pruning"), [(["recomind-profile"], True), (["recomind-store"], False)]
)
def test_the_worker_that_runs_the_profile_group_keeps_its_ledger(
    tmp_path: Path, groups: list[str], pruning: bool
) -> None:
    recomind = bootstrap(Settings(home=tmp_path, train_interval_seconds=0))
    try:
        recomind.start_workers(schedule_training=False, groups=groups)
        assert (recomind.ledger._thread is not None) is pruning
        assert recomind.ledger.retention_seconds == 30 * DAY_SECONDS
    finally:
        recomind.close()
