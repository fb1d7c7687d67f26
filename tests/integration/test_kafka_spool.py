"""Ingest keeps working while Kafka is unreachable, and nothing is lost or reordered after.

Uses the broker at RECOMIND_TEST_KAFKA_URL (scripts/services/start.sh kafka). "Down" is a
kafka:// URL on a port where nothing listens; the SpoolingBus's primary is then replaced by a
bus on the real broker, which is what a broker coming back looks like from the API node.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from recomind.adapters.bus import open_bus
from recomind.adapters.bus.kafka import KafkaBus
from recomind.adapters.bus.local import LocalLog
from recomind.adapters.bus.spool import SpoolingBus
from recomind.domain.errors import BusUnavailable
from recomind.domain.ports import BusRecord
from tests.support.servers import free_port

KAFKA_URL = os.environ.get("RECOMIND_TEST_KAFKA_URL", "")
pytestmark = pytest.mark.skipif(not KAFKA_URL, reason="RECOMIND_TEST_KAFKA_URL is not set")

KEYS = ("u1", "u2", "u3", "u4")


def down_bus() -> KafkaBus:
    return KafkaBus.from_url(f"kafka://127.0.0.1:{free_port()}?publish_timeout=1", partitions=4)


def read_all(bus: KafkaBus, topic: str, expected: int, timeout: float = 20.0) -> list[BusRecord]:
    consumer = bus.subscribe(f"check-{uuid.uuid4().hex[:8]}", topic)
    records: list[BusRecord] = []
    deadline = time.monotonic() + timeout
    while len(records) < expected and time.monotonic() < deadline:
        records += consumer.poll(100, 0.5)
    records += consumer.poll(100, 1.0)  # and nothing more
    consumer.close()
    return records


def test_a_down_broker_is_reported_quickly() -> None:
    bus = down_bus()
    start = time.monotonic()
    with pytest.raises(BusUnavailable):
        bus.ping()
    assert time.monotonic() - start < 3.5
    start = time.monotonic()
    with pytest.raises(BusUnavailable) as refused:
        bus.publish("video_actions_stream", [("u1", b"x"), ("u2", b"y")])
    assert time.monotonic() - start < 5.0  # publish_timeout=1, plus the report grace
    assert refused.value.undelivered in (None, [0, 1])
    bus.close()


def test_events_published_while_kafka_is_down_reach_it_once_in_order(tmp_path: Path) -> None:
    topic = f"recomind-spool-test-{uuid.uuid4().hex[:12]}"
    spool = LocalLog(f"local://{tmp_path / 'spool.db'}", partitions=1)
    unreachable = down_bus()
    bus = SpoolingBus(unreachable, spool, batch_size=7, retry_seconds=0.1, max_retry_seconds=0.5)

    while_down = [(KEYS[i % 4], f"down-{i}".encode()) for i in range(30)]
    start = time.monotonic()
    for i in range(0, len(while_down), 5):
        bus.publish(topic, while_down[i : i + 5])  # returns normally: the API still says 202
    assert time.monotonic() - start < 10
    assert bus.spooling
    assert bus.pending() == len(while_down)

    up = KafkaBus.from_url(KAFKA_URL, partitions=4)
    bus.primary = up  # the broker is back
    after = [(KEYS[i % 4], f"after-{i}".encode()) for i in range(10)]
    for k, v in after:
        bus.publish(topic, [(k, v)])  # behind the spooled ones while any remain

    deadline = time.monotonic() + 30
    while bus.spooling or bus.pending():
        assert time.monotonic() < deadline, f"{bus.pending()} event(s) still spooled"
        time.sleep(0.1)

    sent = while_down + after
    got = read_all(up, topic, len(sent))
    assert Counter(r.value for r in got) == Counter(v for _, v in sent)  # each exactly once
    by_key: dict[str, list[bytes]] = defaultdict(list)
    for r in sorted(got, key=lambda r: (r.partition, r.offset)):
        by_key[r.key].append(r.value)
    for key in KEYS:
        assert by_key[key] == [v for k, v in sent if k == key]  # one viewer's order kept
    assert spool.topics() == []  # forwarded records are removed from the spool file
    bus.close()
    unreachable.close()


def test_the_opener_puts_kafka_behind_a_spool(tmp_path: Path) -> None:
    bus = open_bus(KAFKA_URL, partitions=4, spool_path=tmp_path / "spool.db")
    assert isinstance(bus, SpoolingBus)
    topic = f"recomind-spool-test-{uuid.uuid4().hex[:12]}"
    bus.publish(topic, [("u1", b"straight through")])
    assert bus.pending() == 0
    bus.ping()
    assert bus.lag("nobody", topic) == 1
    bus.close()
