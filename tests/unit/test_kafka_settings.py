"""What a kafka:// URL means, and the URLs it refuses (no broker needed)."""

from __future__ import annotations

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
