"""Event bus adapters. `open_bus(url, partitions=N, spool_path=…)` picks one by URL scheme.

`local://` is durable on its own. `kafka://` is wrapped in a `SpoolingBus` when a spool path is
given, so that publishing keeps working (into a local SQLite spool) while Kafka is unreachable.
Any bus URL may carry `?namespace=NAME`, which prefixes every topic and group name (several
installations or test runs on one broker).
"""

from __future__ import annotations

from pathlib import Path

from recomind.adapters.bus.namespace import NamespacedBus, split_namespace
from recomind.adapters.registry import SchemeRegistry
from recomind.domain.ports import EventBus

BUSES: SchemeRegistry[EventBus] = SchemeRegistry("event bus")


@BUSES.register("local")
def _open_local(url: str, partitions: int = 6, spool_path: Path | None = None) -> EventBus:
    from recomind.adapters.bus.local import LocalLog

    return LocalLog(url, partitions)  # already a durable log on this node: no spool needed


@BUSES.register("kafka")
def _open_kafka(url: str, partitions: int = 6, spool_path: Path | None = None) -> EventBus:
    from recomind.adapters.bus.kafka import KafkaBus

    kafka = KafkaBus.from_url(url, partitions)
    if spool_path is None:
        return kafka
    from recomind.adapters.bus.local import LocalLog
    from recomind.adapters.bus.spool import SpoolingBus

    return SpoolingBus(kafka, LocalLog(f"local://{Path(spool_path).resolve()}", partitions=1))


def open_bus(url: str, partitions: int = 6, spool_path: Path | None = None) -> EventBus:
    plain, namespace = split_namespace(url)
    bus = BUSES.open(plain, partitions=partitions, spool_path=spool_path)
    return NamespacedBus(bus, namespace) if namespace else bus
