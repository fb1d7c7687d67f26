"""`ConsumerRunner.pump`: an overlapped group prepares the next batch while the last one is
written, and every batch's offsets are committed only after its write, in order. And the
store group's catalog cache, read ahead on a thread of its own (`KnownVideos.warm`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from recomind.domain.event_columns import EventBatch
from recomind.domain.events import VIDEO_ACTIONS_TOPIC
from recomind.domain.ports import BusRecord, PolledRecords
from recomind.services import consume
from recomind.services.consume import ConsumerGroup, ConsumerRunner, KnownVideos, Write


class FakeConsumer:
    def __init__(self, polls: list[list[BusRecord]], log: list[str]) -> None:
        self.polls = polls
        self.log = log

    def poll(self, max_records: int, timeout_seconds: float) -> list[BusRecord]:
        return self.polls.pop(0) if self.polls else []

    def commit(self, records: Sequence[BusRecord]) -> None:
        self.log.append(f"commit {records[0].offset}-{records[-1].offset}")

    def close(self) -> None:
        pass


def polls(*sizes: int) -> list[list[BusRecord]]:
    out, offset = [], 0
    for size in sizes:
        out.append(
            [BusRecord(VIDEO_ACTIONS_TOPIC, 0, offset + i, "u1", b"{}") for i in range(size)]
        )
        offset += size
    return out


def runner(
    monkeypatch: pytest.MonkeyPatch, overlapped: bool, write: Any, log: list[str]
) -> ConsumerRunner:
    def prepare(batch: EventBatch, fx: object) -> Write:
        first = batch.records[0].offset
        log.append(f"prepared {first} on {threading.current_thread().name}")

        def apply() -> list[tuple[BusRecord, str]]:
            write(first)
            log.append(f"written {first} on {threading.current_thread().name}")
            return []

        return apply

    group = ConsumerGroup(on_events=prepare, overlapped=overlapped)
    monkeypatch.setitem(consume.EVENT_HANDLERS, "test-group", group)
    return ConsumerRunner("test-group", bus=None, fx=None, batch_size=100)  # type: ignore[arg-type]


def test_an_overlapped_group_prepares_the_next_batch_while_the_last_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[str] = []
    # Each write but the last lasts until the next batch is prepared: without the overlap, it
    # would wait out its 5 s and say so.
    next_prepared = {0: threading.Event(), 3: threading.Event()}

    def write(first: int) -> None:
        if first in next_prepared:
            log.append(f"overlap {next_prepared[first].wait(5)}")

    r = runner(monkeypatch, True, write, log)
    original = r.prepare

    def prepare(records: Sequence[BusRecord]) -> Any:
        apply = original(records)
        previous = {3: 0, 5: 3}.get(records[0].offset)
        if previous is not None:
            next_prepared[previous].set()
        return apply

    monkeypatch.setattr(r, "prepare", prepare)
    r.pump(FakeConsumer(polls(3, 2, 4), log), lambda taken: taken >= 9)

    steps = [entry.split(" on ")[0] for entry in log]
    polling = [e for e in steps if e.startswith(("prepared", "commit"))]
    writing = [e for e in steps if e.startswith(("overlap", "written"))]
    assert polling == [
        "prepared 0",
        "prepared 3",
        "commit 0-2",
        "prepared 5",
        "commit 3-4",
        "commit 5-8",
    ]
    assert writing == ["overlap True", "written 0", "overlap True", "written 3", "written 5"]
    for first, commit in (("0", "0-2"), ("3", "3-4"), ("5", "5-8")):
        assert steps.index(f"written {first}") < steps.index(f"commit {commit}")
    main = threading.current_thread().name
    assert all(e.endswith(main) for e in log if e.startswith("prepared"))
    assert not any(e.endswith(main) for e in log if e.startswith("written"))
    assert r.processed == 9


def test_a_batch_in_flight_is_committed_once_written_though_nothing_more_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[str] = []
    r = runner(monkeypatch, True, lambda first: None, log)
    deadline = time.monotonic() + 5
    r.pump(
        FakeConsumer(polls(3), log),
        lambda taken: "commit 0-2" in log or time.monotonic() > deadline,
    )
    assert time.monotonic() < deadline, "the batch was committed only when the loop ended"
    assert log[-1] == "commit 0-2"


def test_a_group_that_does_not_overlap_writes_each_batch_before_it_polls_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[str] = []
    r = runner(monkeypatch, False, lambda first: None, log)
    r.pump(FakeConsumer(polls(3, 2), log), lambda taken: taken >= 5)
    assert [entry.split(" on ")[0] for entry in log] == [
        "prepared 0",
        "written 0",
        "commit 0-2",
        "prepared 3",
        "written 3",
        "commit 3-4",
    ]


def test_a_batch_whose_write_never_succeeds_is_never_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[str] = []
    attempts = threading.Semaphore(0)

    def write(first: int) -> None:
        if first == 3:
            attempts.release()
            raise ConnectionError("the store is down")

    r = runner(monkeypatch, True, write, log)

    def stop_after_two_attempts() -> None:
        attempts.acquire(timeout=5)
        attempts.acquire(timeout=5)
        r._stop.set()

    stopper = threading.Thread(target=stop_after_two_attempts)
    stopper.start()
    with pytest.raises(ConnectionError):
        r.pump(FakeConsumer(polls(3, 2, 4), log), lambda taken: False)
    stopper.join()
    assert "commit 0-2" in log
    assert not [e for e in log if e.startswith("commit") and e != "commit 0-2"]
    assert r.errors >= 2


def test_a_buffered_group_applies_its_polls_joined_once_even_when_a_try_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two polls of columns are gathered into one batch, still columns. Its first preparation
    fails: nothing is committed, and the retry takes both polls again, exactly once."""
    log: list[str] = []
    failures = [ConnectionError("decoding failed once")]
    seen: list[Sequence[BusRecord]] = []

    def prepare(batch: EventBatch, fx: object) -> Write:
        seen.append(batch.records)
        if failures:
            raise failures.pop()
        log.append("prepared")

        def write() -> list[tuple[BusRecord, str]]:
            log.append("written")
            return []

        return write

    monkeypatch.setitem(
        consume.EVENT_HANDLERS, "test-group", ConsumerGroup(on_events=prepare, buffered=True)
    )
    r = ConsumerRunner("test-group", None, None, 100, flush_rows=5, flush_seconds=60)  # type: ignore[arg-type]
    columns = [
        PolledRecords(
            VIDEO_ACTIONS_TOPIC,
            [0] * len(p),
            [x.offset for x in p],
            [b"u1"] * len(p),
            [b"{}"] * len(p),
        )
        for p in polls(3, 2)
    ]
    r.pump(FakeConsumer(columns, log), lambda taken: taken >= 5)  # type: ignore[arg-type]

    assert log == ["prepared", "written", "commit 0-4"]
    assert len(seen) == 2 and seen[0] == seen[1] == [r for p in polls(3, 2) for r in p]
    assert all(isinstance(batch, PolledRecords) for batch in seen)
    assert r.errors == 1 and r.processed == 5


class CatalogStore:
    """A store whose transactions only answer `known_videos`, counting what they were asked,
    on any thread."""

    def __init__(self, videos: set[str], down: bool = False) -> None:
        self.videos = videos
        self.down = down
        self.asked: list[set[str]] = []
        self.transactions = 0
        self.threads: set[str] = set()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        if self.down:
            raise ConnectionError("the store is down")
        self.transactions += 1
        yield self

    def known_videos(self, video_ids: set[str]) -> set[str]:
        self.asked.append(set(video_ids))
        self.threads.add(threading.current_thread().name)
        return set(video_ids) & self.videos


def test_the_catalog_is_read_ahead_once_and_only_for_what_is_not_remembered() -> None:
    """The read-ahead runs on a thread of its own; its future is done once the store has
    answered, and at once when every video is remembered."""
    store = CatalogStore({"v1", "v2"})
    known = KnownVideos()
    asked = known.warm(store, ["v1", "v404"])  # type: ignore[arg-type]
    asked.result(timeout=10)
    assert (store.transactions, store.asked) == (1, [{"v1", "v404"}])
    assert store.threads == {"recomind-catalog"}
    assert known.warm(store, ["v1"]).done()  # type: ignore[arg-type]
    assert (store.transactions, store.asked) == (1, [{"v1", "v404"}])
    assert known.of(store, ["v1", "v2", "v404"]) == {"v1", "v2"}  # type: ignore[arg-type]
    assert store.asked[1:] == [{"v2", "v404"}]  # an unknown video is asked again


def test_reading_the_catalog_ahead_with_the_store_down_leaves_it_to_the_write() -> None:
    store = CatalogStore({"v1"}, down=True)
    known = KnownVideos()
    assert known.warm(store, ["v1"]).result(timeout=10) is None  # type: ignore[arg-type]
    store.down = False
    with store.transaction() as tx:
        assert known.of(tx, ["v1"]) == {"v1"}
    assert store.asked == [{"v1"}]


class FakeBus:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def subscribe(self, group: str, topic: str) -> FakeConsumer:
        self.log.append(f"subscribe {group}")
        return FakeConsumer([], self.log)


class FakeStore:
    def __init__(self, log: list[str], fails: bool = False) -> None:
        self.log = log
        self.fails = fails

    def open_connections(self, count: int) -> None:
        self.log.append(f"open {count}")
        if self.fails:
            raise ConnectionError("store down")


class FakeLake:
    def __init__(self, log: list[str], fails: bool = False) -> None:
        self.log = log
        self.fails = fails

    def connect(self) -> None:
        self.log.append("connect lake")
        if self.fails:
            raise ValueError("no such endpoint")


@pytest.mark.parametrize(
    ("name", "opened"),
    [
        ("recomind-store", ["open 2"]),
        ("recomind-profile", ["open 1"]),
        ("recomind-lake", ["connect lake"]),
        ("recomind-analytics", ["connect lake", "open 1"]),
    ],
)
@pytest.mark.parametrize("down", [False, True])
def test_a_runner_opens_its_groups_connections_and_lake_client_before_it_subscribes(
    name: str, opened: list[str], down: bool
) -> None:
    log: list[str] = []
    fx = SimpleNamespace(store=FakeStore(log, down), lake=FakeLake(log, down))
    r = ConsumerRunner(name, bus=FakeBus(log), fx=fx)  # type: ignore[arg-type]
    r._stop.set()  # the loop ends at once; a store or lake that is down does not stop it starting
    r.run()
    assert log == [*opened, f"subscribe {name}"]
