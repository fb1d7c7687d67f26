"""The EventBus port's shared suite: the local SQLite log and Kafka pass the same tests.

`local://` runs always, on a fresh file per test; Kafka runs when
RECOMIND_TEST_KAFKA_URL is set. Every test uses its own topic and group names,
so tests never see each other's messages or offsets.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from recomind.adapters.bus import open_bus
from recomind.domain.ports import BusConsumer, BusRecord, EventBus

PARTITIONS = 4
WAIT = 15.0  # the longest a test waits for messages it knows are there (Kafka group joins)


class BusTarget:
    """Where one test's bus lives: a URL it can open again, and names no other test uses."""

    def __init__(self, url: str) -> None:
        self.url = url
        run = uuid.uuid4().hex[:12]
        self.topic = f"recomind-test-{run}"
        self._prefix = f"recomind-test-{run}"
        self._open: list[EventBus] = []

    def open(self) -> EventBus:
        bus = open_bus(self.url, partitions=PARTITIONS)
        self._open.append(bus)
        return bus

    def reopen(self, bus: EventBus) -> EventBus:
        """Close this bus object and open a new one on the same URL (a restarted process)."""
        self._open.remove(bus)
        bus.close()
        return self.open()

    def group(self, name: str) -> str:
        return f"{self._prefix}-{name}"

    def close_all(self) -> None:
        while self._open:
            self._open.pop().close()


@pytest.fixture(
    params=[
        pytest.param(None, id="local"),
        pytest.param(
            "RECOMIND_TEST_KAFKA_URL",
            id="kafka",
            marks=pytest.mark.skipif(
                not os.environ.get("RECOMIND_TEST_KAFKA_URL"),
                reason="RECOMIND_TEST_KAFKA_URL is not set",
            ),
        ),
    ]
)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BusTarget]:
    url = (
        f"local://{tmp_path / 'events.db'}" if request.param is None else os.environ[request.param]
    )
    t = BusTarget(url)
    yield t
    t.close_all()


def messages(
    n: int, keys: tuple[str, ...] = ("u1", "u2", "u3", "u4", "u5")
) -> list[tuple[str, bytes]]:
    return [(keys[i % len(keys)], f"message-{i}".encode()) for i in range(n)]


def drain(consumer: BusConsumer, expected: int, timeout: float = WAIT) -> list[BusRecord]:
    """Poll until `expected` records have arrived (or time is up)."""
    records: list[BusRecord] = []
    deadline = time.monotonic() + timeout
    while len(records) < expected and time.monotonic() < deadline:
        records += consumer.poll(max_records=100, timeout_seconds=0.5)
    return records


def assert_nothing_more(consumer: BusConsumer) -> None:
    assert consumer.poll(max_records=100, timeout_seconds=0.5) == []


def pairs(records: list[BusRecord]) -> list[tuple[str, bytes]]:
    return [(r.key, r.value) for r in records]


def test_a_group_reads_every_message_once(target: BusTarget) -> None:
    bus = target.open()
    sent = messages(20)
    bus.publish(target.topic, sent)

    consumer = bus.subscribe(target.group("a"), target.topic)
    got = drain(consumer, len(sent))
    assert sorted(pairs(got)) == sorted(sent)
    assert all(r.topic == target.topic for r in got)
    assert_nothing_more(consumer)
    consumer.close()


def test_records_come_in_order_within_each_partition(target: BusTarget) -> None:
    bus = target.open()
    sent = messages(30)
    bus.publish(target.topic, sent[:10])
    bus.publish(target.topic, sent[10:])

    consumer = bus.subscribe(target.group("a"), target.topic)
    got = drain(consumer, len(sent))
    assert len(got) == len(sent)

    offsets: dict[int, list[int]] = defaultdict(list)
    values_by_key: dict[str, list[bytes]] = defaultdict(list)
    for r in got:
        offsets[r.partition].append(r.offset)
        values_by_key[r.key].append(r.value)
    for partition_offsets in offsets.values():
        assert partition_offsets == sorted(set(partition_offsets))  # increasing, no repeats
    for k, values in values_by_key.items():
        assert values == [v for key, v in sent if key == k]  # one viewer's actions stay ordered
    consumer.close()


def test_the_same_key_always_goes_to_the_same_partition(target: BusTarget) -> None:
    keys = tuple(f"user-{i}" for i in range(24))
    bus = target.open()
    bus.publish(target.topic, messages(48, keys))
    consumer = bus.subscribe(target.group("a"), target.topic)
    got = drain(consumer, 48)
    consumer.close()

    partition_of: dict[str, set[int]] = defaultdict(set)
    for r in got:
        partition_of[r.key].add(r.partition)
    assert all(len(ps) == 1 for ps in partition_of.values())
    assert {p for ps in partition_of.values() for p in ps} <= set(range(PARTITIONS))
    assert len({p for ps in partition_of.values() for p in ps}) > 1  # keys are spread

    # and still the same partition after a restart
    bus = target.reopen(bus)
    bus.publish(target.topic, [(keys[0], b"after restart")])
    consumer = bus.subscribe(target.group("b"), target.topic)
    (late,) = [r for r in drain(consumer, 49) if r.value == b"after restart"]
    assert {late.partition} == partition_of[keys[0]]
    consumer.close()


def test_committed_offsets_survive_a_restart(target: BusTarget) -> None:
    bus = target.open()
    group = target.group("store")
    bus.publish(target.topic, messages(8))
    consumer = bus.subscribe(group, target.topic)
    consumer.commit(drain(consumer, 8))
    consumer.close()

    bus = target.reopen(bus)
    fresh = [("u1", b"fresh-1"), ("u2", b"fresh-2")]
    bus.publish(target.topic, fresh)
    consumer = bus.subscribe(group, target.topic)
    assert sorted(pairs(drain(consumer, 2))) == sorted(fresh)
    assert_nothing_more(consumer)
    consumer.close()


def test_uncommitted_records_are_redelivered_after_a_restart(target: BusTarget) -> None:
    bus = target.open()
    group = target.group("store")
    sent = [("u1", f"in-order-{i}".encode()) for i in range(6)]  # one key: one partition
    bus.publish(target.topic, sent)
    consumer = bus.subscribe(group, target.topic)
    first = drain(consumer, 6)
    assert pairs(first) == sent
    consumer.commit(first[:3])  # crashed after the side effects of the first three only
    consumer.close()

    bus = target.reopen(bus)
    consumer = bus.subscribe(group, target.topic)
    again = drain(consumer, 3)
    assert pairs(again) == sent[3:]
    assert [(r.partition, r.offset) for r in again] == [(r.partition, r.offset) for r in first[3:]]
    assert_nothing_more(consumer)
    consumer.close()


def test_nothing_committed_means_everything_is_redelivered(target: BusTarget) -> None:
    bus = target.open()
    group = target.group("lake")
    sent = messages(10)
    bus.publish(target.topic, sent)
    consumer = bus.subscribe(group, target.topic)
    assert len(drain(consumer, 10)) == 10
    consumer.close()

    bus = target.reopen(bus)
    consumer = bus.subscribe(group, target.topic)
    assert sorted(pairs(drain(consumer, 10))) == sorted(sent)
    consumer.close()


def test_two_groups_read_independently(target: BusTarget) -> None:
    bus = target.open()
    sent = messages(12)
    bus.publish(target.topic, sent)

    store_consumer = bus.subscribe(target.group("store"), target.topic)
    store_consumer.commit(drain(store_consumer, 12))
    store_consumer.close()

    lake_consumer = bus.subscribe(target.group("lake"), target.topic)
    assert sorted(pairs(drain(lake_consumer, 12))) == sorted(sent)
    lake_consumer.close()

    assert bus.lag(target.group("store"), target.topic) == 0
    assert bus.lag(target.group("lake"), target.topic) == 12


def test_lag_counts_uncommitted_records(target: BusTarget) -> None:
    bus = target.open()
    group = target.group("store")
    assert bus.lag(group, target.topic) == 0

    bus.publish(target.topic, [("u1", f"m{i}".encode()) for i in range(5)])
    bus.publish(target.topic, [("u2", b"other viewer")])
    assert bus.lag(group, target.topic) == 6

    consumer = bus.subscribe(group, target.topic)
    got = drain(consumer, 6)
    assert bus.lag(group, target.topic) == 6  # reading is not committing

    by_u1 = [r for r in got if r.key == "u1"]
    consumer.commit(by_u1[:2])
    assert bus.lag(group, target.topic) == 4
    consumer.commit(got)
    assert bus.lag(group, target.topic) == 0
    consumer.close()


def test_topics_are_separate(target: BusTarget) -> None:
    bus = target.open()
    other_topic = f"{target.topic}-other"
    bus.publish(target.topic, [("u1", b"here")])
    bus.publish(other_topic, [("u1", b"there")])

    consumer = bus.subscribe(target.group("a"), other_topic)
    got = drain(consumer, 1)
    assert pairs(got) == [("u1", b"there")]
    assert all(r.topic == other_topic for r in got)
    assert_nothing_more(consumer)
    consumer.close()


def test_poll_returns_at_most_max_records(target: BusTarget) -> None:
    bus = target.open()
    sent = messages(12, keys=tuple(f"user-{i}" for i in range(12)))
    bus.publish(target.topic, sent)
    consumer = bus.subscribe(target.group("a"), target.topic)

    got: list[BusRecord] = []
    deadline = time.monotonic() + WAIT
    while len(got) < len(sent) and time.monotonic() < deadline:
        batch = consumer.poll(max_records=2, timeout_seconds=0.5)
        assert len(batch) <= 2
        got += batch
    assert sorted(pairs(got)) == sorted(sent)
    consumer.close()


def test_values_are_bytes_kept_exactly(target: BusTarget) -> None:
    bus = target.open()
    payload = bytes(range(256))
    bus.publish(target.topic, [("u1", payload), ("u1", b"")])
    consumer = bus.subscribe(target.group("a"), target.topic)
    assert [r.value for r in drain(consumer, 2)] == [payload, b""]
    consumer.close()


def test_ping(target: BusTarget) -> None:
    target.open().ping()


def test_a_local_log_opens_while_another_connection_writes_its_new_file(tmp_path: Path) -> None:
    """Switching a SQLite file to WAL needs it to itself, and SQLite refuses the switch at once,
    without its busy timeout, while another connection writes (as the API and a worker that
    open a new log together do while one of them makes its tables). The log waits for that
    writer instead of failing to open: here one holds its write lock for 0.5 s."""
    import sqlite3
    import threading

    from recomind.adapters.bus.local import LocalLog

    path = tmp_path / "events.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other_work (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other_work VALUES (1)")
    done = threading.Timer(0.5, lambda: writer.execute("COMMIT"))
    done.start()
    started = time.monotonic()
    try:
        log = LocalLog(f"local://{path}", partitions=1)
    finally:
        done.join()
        writer.close()
    try:
        assert time.monotonic() - started >= 0.5
        log.publish("t", [("u1", b"one")])
        consumer = log.subscribe("g", "t")
        assert pairs(drain(consumer, 1)) == [("u1", b"one")]
        consumer.close()
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        log.close()
