"""What a kafka:// URL means, and the URLs it refuses (no broker needed)."""

from __future__ import annotations

import time

import pytest

from recomind.adapters.bus.kafka_settings import KafkaSettings
from recomind.domain.errors import InvalidInput


def test_defaults() -> None:
    s = KafkaSettings.from_url("kafka://127.0.0.1:9092")
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert (s.partitions, s.replication, s.publish_timeout, s.ping_timeout) == (6, 1, 5.0, 2.0)
    assert s.client_config == {}


def test_options_and_several_brokers() -> None:
    s = KafkaSettings.from_url(
        "kafka://k1:9092,k2:9092?replication=3&publish_timeout=2.5&security.protocol=SSL",
        partitions=12,
    )
    assert s.bootstrap_servers == "k1:9092,k2:9092"
    assert (s.partitions, s.replication, s.publish_timeout) == (12, 3, 2.5)
    assert s.client_config == {"security.protocol": "SSL"}


@pytest.mark.parametrize(
    "url",
    [
        "kafka://",
        "kafka://k1:9092?replication=0",
        "kafka://k1:9092?replication=two",
        "kafka://k1:9092?publish_timeout=0",
        "kafka://k1:9092?partitions=3",  # the partition count comes from settings, not the URL
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str) -> None:
    with pytest.raises(InvalidInput):
        KafkaSettings.from_url(url)


class _Producer:
    """Stands in for librdkafka's producer: keeps the config it was made with."""

    def __init__(self, config: dict[str, object]) -> None:
        self.config = config

    def poll(self, timeout: float) -> int:
        time.sleep(timeout)
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def test_the_producer_sends_without_lingering_unless_the_url_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from recomind.adapters.bus import kafka

    monkeypatch.setattr(kafka, "Producer", _Producer)
    for url, linger in (("kafka://127.0.0.1:1", 0), ("kafka://127.0.0.1:1?linger.ms=5", "5")):
        bus = kafka.KafkaBus.from_url(url)
        try:
            producer = bus._producer_client()
            assert isinstance(producer, _Producer)
            assert producer.config["linger.ms"] == linger
            assert producer.config["acks"] == "all" and producer.config["enable.idempotence"]
        finally:
            bus.close()
