"""Delivery reports of the Kafka bus: only a report with an offset confirms a write."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError

from recomind.adapters.bus.kafka import _Deliveries


@dataclass
class _Report:
    """What a delivery callback reads of a message: its offset (None when unknown)."""

    at: int | None

    def offset(self) -> int | None:
        return self.at


def test_a_report_with_an_offset_confirms_the_write() -> None:
    deliveries = _Deliveries(2)
    deliveries.report(0)(None, _Report(0))  # type: ignore[arg-type]
    deliveries.report(1)(None, _Report(41))  # type: ignore[arg-type]
    assert deliveries.done.is_set()
    assert not deliveries.pending and not deliveries.failed


def test_an_ok_without_an_offset_is_not_a_confirmed_write() -> None:
    deliveries = _Deliveries(3)
    deliveries.report(0)(None, _Report(None))  # type: ignore[arg-type]
    deliveries.report(1)(None, _Report(-1001))  # type: ignore[arg-type]  # OFFSET_INVALID
    deliveries.report(2)(None, _Report(7))  # type: ignore[arg-type]
    assert deliveries.done.is_set()
    assert sorted(deliveries.failed) == [0, 1]
    for err in deliveries.failed.values():
        # counted among the messages that "may have been written all the same"
        assert err.code() == KafkaError._MSG_TIMED_OUT
        assert "not confirmed" in err.str()


def test_an_error_report_stays_the_brokers_error() -> None:
    deliveries = _Deliveries(1)
    deliveries.report(0)(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), _Report(None))  # type: ignore[arg-type]
    assert deliveries.failed[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
