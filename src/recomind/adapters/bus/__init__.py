"""Event bus adapters. `open_bus(url, partitions=N)` picks one by URL scheme."""

from __future__ import annotations

from recomind.adapters.registry import SchemeRegistry
from recomind.domain.ports import EventBus

BUSES: SchemeRegistry[EventBus] = SchemeRegistry("event bus")


@BUSES.register("local")
def _open_local(url: str, partitions: int = 6) -> EventBus:
    from recomind.adapters.bus.local import LocalLog

    return LocalLog(url, partitions)


def open_bus(url: str, partitions: int = 6) -> EventBus:
    return BUSES.open(url, partitions=partitions)
