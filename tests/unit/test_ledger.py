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
    def __init__(self, fails: int = 0) -> None:
        self.asked: list[float] = []
        self.fails = fails
        self.called = threading.Semaphore(0)

    def forget_counted(self, older_than_seconds: float) -> int:
        self.asked.append(older_than_seconds)
        self.called.release()
        if self.fails:
            self.fails -= 1
            raise ConnectionError("store down")
        return 7


def test_it_forgets_what_is_older_than_the_retention_and_counts_it() -> None:
    store = FakeStore()
    pruner = LedgerPruner(store, retention_seconds=30 * DAY_SECONDS)  # type: ignore[arg-type]
    assert pruner.prune_once() == 7
    assert pruner.prune_once() == 7
    assert store.asked == [30 * DAY_SECONDS] * 2
    assert pruner.forgotten == 14


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
    assert pruner.forgotten >= 14


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
