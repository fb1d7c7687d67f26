"""Several RecoMind installations (or test runs) on one event bus: `?namespace=NAME` in the URL.

Every topic and consumer group name gets the prefix `NAME.`, so `video_actions_stream`
becomes `NAME.video_actions_stream` and `recomind-store` becomes `NAME.recomind-store`.
The services keep using the plain names; only the wire names change.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from recomind.domain.ports import BusConsumer, BusRecord, EventBus, PolledRecords, latest_offsets
from recomind.domain.validation import validate_id


def split_namespace(url: str) -> tuple[str, str | None]:
    """The URL without its `namespace` option, and the namespace (None when absent)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = [v for k, v in query if k == "namespace"]
    if not names:
        return url, None
    rest = urlencode([(k, v) for k, v in query if k != "namespace"])
    return urlunsplit(parts._replace(query=rest)), validate_id(names[-1], "namespace")


class NamespacedConsumer:
    def __init__(self, inner: BusConsumer, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix
        if hasattr(inner, "label"):  # a Kafka consumer labels its records as told
            inner.label = inner.label.removeprefix(prefix)

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[BusRecord]:
        records = self.inner.poll(max_records, timeout_seconds)
        if not records or not records[0].topic.startswith(self.prefix):
            return records
        cut = len(self.prefix)
        if isinstance(records, PolledRecords):
            return PolledRecords(
                records.topic[cut:],
                records.partitions,
                records.offsets,
                records.keys,
                records.values,
            )
        return [BusRecord(r.topic[cut:], r.partition, r.offset, r.key, r.value) for r in records]

    def commit(self, records: Sequence[BusRecord]) -> None:
        # A commit stores the highest offset per partition: one record each says it all.
        self.inner.commit(
            [
                BusRecord(self.prefix + topic, partition, offset, "", b"")
                for (topic, partition), offset in latest_offsets(records).items()
            ]
        )

    def close(self) -> None:
        self.inner.close()


class NamespacedBus:
    def __init__(self, inner: EventBus, namespace: str) -> None:
        self.inner = inner
        self.prefix = f"{namespace}."

    def publish(self, topic: str, messages: Sequence[tuple[str, bytes]]) -> None:
        self.inner.publish(self.prefix + topic, messages)

    def subscribe(self, group: str, topic: str) -> BusConsumer:
        return NamespacedConsumer(
            self.inner.subscribe(self.prefix + group, self.prefix + topic), self.prefix
        )

    def lag(self, group: str, topic: str) -> int:
        return self.inner.lag(self.prefix + group, self.prefix + topic)

    def spooled(self) -> int:
        return self.inner.spooled()

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()
