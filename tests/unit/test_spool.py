"""The spool in front of the bus: nothing is refused while the primary is down, nothing is lost
or reordered while it drains, and each spooled message reaches the primary once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from recomind.adapters.bus.local import LocalLog
from recomind.adapters.bus.spool import SpoolingBus
from recomind.domain.errors import BusUnavailable, RecoMindError
from recomind.domain.ports import BusConsumer

TOPIC = "video_actions_stream"


class FakePrimary:
    """An EventBus that records what it acknowledged; it can be down, or acknowledge a part."""

    def __init__(self) -> None:
        self.acked: list[tuple[str, str, bytes]] = []
        self.arrived: list[tuple[str, bytes]] = []  # what reached it while up, acknowledged or not
        self.down = False
        self.down_after: int | None = None  # acknowledge this many publishes, then go down
        self.ack_only: int | None = None  # acknowledge this many of the next publish, then fail
        self.ack_except: set[int] | None = None  # the next publish: acknowledge all but these
        self.gate: threading.Event | None = None  # when set up, publish waits for it
        self.waiting = threading.Event()
        self.refuse_for_good = False

    def publish(self, topic: str, messages: Sequence[tuple[str, bytes]]) -> None:
        if self.refuse_for_good:
            raise RecoMindError("message refused for good")
        if self.down_after == 0:
            self.down, self.down_after = True, None
        if self.down:
            raise BusUnavailable("broker down", range(len(messages)))
        self.arrived += messages
        if self.gate is not None:
            self.waiting.set()
            assert self.gate.wait(5), "the test never opened the gate"
        if self.ack_only is not None:
            n, self.ack_only = self.ack_only, None
            self.acked += [(topic, k, v) for k, v in messages[:n]]
            raise BusUnavailable("connection lost", range(n, len(messages)))
        if self.ack_except is not None:  # as Kafka does when one partition's leader is away
            missed, self.ack_except = self.ack_except, None
            self.acked += [(topic, k, v) for i, (k, v) in enumerate(messages) if i not in missed]
            raise BusUnavailable("leader not available", sorted(missed))
        self.acked += [(topic, k, v) for k, v in messages]
        if self.down_after is not None:
            self.down_after -= 1

    def subscribe(self, group: str, topic: str) -> BusConsumer:
        raise NotImplementedError

    def lag(self, group: str, topic: str) -> int:
        return 0

    def ping(self) -> None:
        if self.down:
            raise BusUnavailable("broker down")

    def close(self) -> None:
        return None


@pytest.fixture
def primary() -> FakePrimary:
    return FakePrimary()


@pytest.fixture
def open_spooled(tmp_path: Path, primary: FakePrimary) -> Iterator[Callable[[], SpoolingBus]]:
    """Opens SpoolingBus objects on one spool file (several in turn: restarts)."""
    opened: list[SpoolingBus] = []

    def open_bus() -> SpoolingBus:
        spool = LocalLog(f"local://{tmp_path / 'spool.db'}", partitions=1)
        bus = SpoolingBus(primary, spool, batch_size=3, retry_seconds=0.01, max_retry_seconds=0.05)
        opened.append(bus)
        return bus

    yield open_bus
    for bus in opened:
        bus.close()


def events(
    prefix: str, n: int, keys: tuple[str, ...] = ("u1", "u2", "u3")
) -> list[tuple[str, bytes]]:
    return [(keys[i % len(keys)], f"{prefix}-{i}".encode()) for i in range(n)]


def wait_drained(bus: SpoolingBus, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while bus.spooling or bus.pending():
        assert time.monotonic() < deadline, f"{bus.pending()} message(s) still in the spool"
        time.sleep(0.01)


def acked_values(primary: FakePrimary) -> list[bytes]:
    return [v for _, _, v in primary.acked]


def test_with_the_primary_up_messages_go_straight_to_it(
    open_spooled: Callable[[], SpoolingBus], primary: FakePrimary
) -> None:
    bus = open_spooled()
    sent = events("e", 5)
    bus.publish(TOPIC, sent)
    assert primary.acked == [(TOPIC, k, v) for k, v in sent]
    assert bus.pending() == 0
    assert not bus.spooling


def test_while_the_primary_is_down_publish_succeeds_and_the_spool_keeps_the_messages(
    open_spooled: Callable[[], SpoolingBus], primary: FakePrimary
) -> None:
    primary.down = True
    bus = open_spooled()
    bus.publish(TOPIC, events("a", 4))
    bus.publish(TOPIC, events("b", 3))
    assert bus.pending() == 7
    assert bus.spooling
    assert primary.acked == []
    bus.close()

    # durable: a restarted process finds them, and forwards them once the primary is back
    primary.down = False
    bus = open_spooled()
    wait_drained(bus)
    assert acked_values(primary) == [v for _, v in events("a", 4) + events("b", 3)]


def test_the_spool_drains_in_order_once_the_primary_is_back(
    open_spooled: Callable[[], SpoolingBus], primary: FakePrimary
) -> None:
    primary.down = True
    bus = open_spooled()
    sent = events("e", 20)
    for k, v in sent:
        bus.publish(TOPIC, [(k, v)])
    bus.publish(f"{TOPIC}.dlq", [("u9", b"dead letter")])
    primary.down = False
    wait_drained(bus)

    assert [(k, v) for t, k, v in primary.acked if t == TOPIC] == sent  # in order, once each
    assert [(k, v) for t, k, v in primary.acked if t != TOPIC] == [("u9", b"dead letter")]

    bus.publish(TOPIC, [("u1", b"after")])  # straight through again
    assert primary.acked[-1] == (TOPIC, "u1", b"after")
    assert bus.pending() == 0


def test_while_the_spool_holds_anything_new_messages_queue_behind_it(
    open_spooled: Callable[[], SpoolingBus], primary: FakePrimary
) -> None:
    primary.down = True
    bus = open_spooled()
    bus.publish(TOPIC, [("u1", b"first")])
    primary.gate = threading.Event()
    primary.down = False
    assert primary.waiting.wait(5)  # the drainer is forwarding "first" and not yet acknowledged

    bus.publish(TOPIC, [("u1", b"second")])  # the primary is up, but "first" is still spooled
    assert [v for _, v in primary.arrived] == [b"first"]
    primary.gate.set()
    wait_drained(bus)
    assert acked_values(primary) == [b"first", b"second"]


def test_a_failure_in_the_middle_of_a_drain_loses_and_repeats_nothing(
    open_spooled: Callable[[], SpoolingBus], primary: FakePrimary
) -> None:
    primary.down = True
    bus = open_spooled()
    sent = events("e", 10)
    bus.publish(TOPIC, sent)
    primary.ack_only = 2  # the drainer's first batch (of 3) is acknowledged in part
    primary.down = False
    wait_drained(bus)
    assert acked_values(primary) == [v for _, v in sent]


def test_a_drain_batch_acknowledged_out_of_order_forwards_each_record_once(
    open_spooled: Callable[[], SpoolingBus], primary: FakePrimary
) -> None:
    """Kafka acknowledges per partition: the first record of a batch can fail while the later
    ones are written. Only the unacknowledged record is sent again (the topic would otherwise
    hold the later ones twice, the duplicates of issue 4)."""
    primary.down = True
    bus = open_spooled()
    sent = events("e", 9)
    bus.publish(TOPIC, sent)
    primary.ack_except = {0}  # the drainer's first batch (of 3): e-1 and e-2 written, e-0 not
    primary.down = False
    wait_drained(bus)
    assert sorted(acked_values(primary)) == sorted(v for _, v in sent)  # once each
    for key in ("u1", "u2", "u3"):  # and each viewer's events in order
        assert [v for _, k, v in primary.acked if k == key] == [v for k, v in sent if k == key]


def test_a_publish_acknowledged_in_part_spools_only_the_rest(
    open_spooled: Callable[[], SpoolingBus], primary: FakePrimary
) -> None:
    bus = open_spooled()
    sent = events("e", 5)
    primary.ack_only = 3
    bus.publish(TOPIC, sent)
    wait_drained(bus)
    assert acked_values(primary) == [v for _, v in sent]


def test_a_restart_in_the_middle_of_a_drain_resumes_where_the_primary_stopped_acknowledging(
    open_spooled: Callable[[], SpoolingBus], primary: FakePrimary
) -> None:
    primary.down = True
    bus = open_spooled()
    sent = events("e", 9)
    bus.publish(TOPIC, sent)
    primary.down_after = 1  # the drainer's first batch (of 3) goes through, then it is down
    primary.down = False
    deadline = time.monotonic() + 5
    while len(primary.acked) < 3 or not primary.down:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    bus.close()  # the process stops with 6 messages still spooled
    assert bus.pending() == 6

    primary.down = False
    bus = open_spooled()
    wait_drained(bus)
    assert acked_values(primary) == [v for _, v in sent]


def test_errors_that_retrying_cannot_fix_are_raised_not_spooled(
    open_spooled: Callable[[], SpoolingBus], primary: FakePrimary
) -> None:
    bus = open_spooled()
    primary.refuse_for_good = True
    with pytest.raises(RecoMindError, match="refused for good"):
        bus.publish(TOPIC, events("e", 2))
    assert bus.pending() == 0
    assert not bus.spooling


def test_a_node_stays_ready_while_the_primary_is_down(
    open_spooled: Callable[[], SpoolingBus], primary: FakePrimary
) -> None:
    bus = open_spooled()
    bus.ping()
    primary.down = True
    bus.ping()  # ingest still works: events go to the spool
    bus.publish("t", [("k", b"v")])
    assert bus.spooled() == 1
