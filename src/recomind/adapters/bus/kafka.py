"""Apache Kafka behind the EventBus port: `kafka://host:port[,host2:port][?option=value&…]`.

The URL's options are read by `kafka_settings.KafkaSettings`.

Topics are created on first use, by `publish` or `subscribe`, with the bus's partition count;
nothing else creates them (automatic creation by metadata requests is turned off, because it
would use the broker's default partition count). The producer is idempotent with acks=all and
places keys with murmur2, the Java client's partitioner, so every client puts one viewer on the
same partition. `publish` returns only once the broker acknowledged every message and raises
`BusUnavailable`, naming the messages that were not acknowledged, otherwise: the API's 202 and
the spool rely on that. Not acknowledged is not "not written": a message that timed out while
its request was in flight (the broker stopping, a stalled machine) may be on the topic, and
the spool then sends it again, so consumers count event ids once (ADR 0003). A consumer never
commits on its own; `commit` stores offset + 1 per partition synchronously.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from recomind.adapters.bus.kafka_settings import KafkaSettings
from recomind.domain.errors import BusUnavailable, RecoMindError
from recomind.domain.ports import BusRecord, PolledRecords, latest_offsets

log = logging.getLogger(__name__)

# Waiting this long past publish_timeout covers librdkafka's once-a-second scan for timed-out
# messages, so every message has its delivery report by then.
_REPORT_GRACE_SECONDS = 2.0
# Retrying cannot help these messages: they are refused, not lost (kept out of the spool).
_PERMANENT = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.INVALID_REQUIRED_ACKS,
        KafkaError._INVALID_ARG,
    }
)
_NOT_ALLOWED = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.POLICY_VIOLATION,
    }
)
# A commit refused because the group rebalanced: the partition's next owner reads these
# records again, and idempotent effects make that harmless.
_REBALANCED = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.FENCED_INSTANCE_ID,
        KafkaError.STALE_MEMBER_EPOCH,
    }
)


# Answers of a cluster that is still settling (new topic, moved leader, loading coordinator).
_SETTLING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.REQUEST_TIMED_OUT,
    }
)


class KafkaRejected(RecoMindError):
    """Kafka refused a message or topic for good (too large, invalid name, …)."""


def _error_of(exc: KafkaException) -> KafkaError | None:
    err = exc.args[0] if exc.args else None
    return err if isinstance(err, KafkaError) else None


# A delivery report without an error but without the message's offset is not a confirmed
# write. With acks=all the broker answers a write with its offset; a bare "ok" means the
# producer assumed success (an idempotent producer takes a duplicate-sequence answer for one).
# On real Kafka, reports like this came for the first messages to a topic made a moment
# before, while its broker was then stopped (SIGSTOP) and resumed, and those messages were
# not on the topic afterwards. So the message is treated as unacknowledged: sent again from
# the spool, it is on the topic at least once, and every consumer counts an event id once.
_UNCONFIRMED = KafkaError(
    KafkaError._MSG_TIMED_OUT, "delivered without an offset: not confirmed by the broker"
)


def _has_offset(msg: Message) -> bool:
    offset = msg.offset()
    return offset is not None and offset >= 0


class _Deliveries:
    """The delivery reports of one publish, whichever thread's poll serves them."""

    def __init__(self, count: int) -> None:
        self.pending = set(range(count))
        self.failed: dict[int, KafkaError] = {}
        self.done = threading.Event()  # set when no report is pending any more
        self._lock = threading.Lock()

    def report(self, index: int) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is None and not _has_offset(msg):
                err = _UNCONFIRMED
            with self._lock:
                self.pending.discard(index)
                if err is not None:
                    self.failed[index] = err
                if not self.pending:
                    self.done.set()

        return on_delivery

    def never_sent(self, indexes: range, err: KafkaError) -> None:
        with self._lock:
            for i in indexes:
                self.pending.discard(i)
                self.failed[i] = err
            if not self.pending:
                self.done.set()


# librdkafka waits `linger.ms` (5 by default) for more messages before it sends a batch. Every
# publish here waits for its acknowledgements, and `GroupPublisher` already sends what arrived
# meanwhile together, so the wait was added to every `POST /video_action`: at 32 concurrent
# requests it held the API to about 3,700/s at 5 ms, 6,600/s at 1 ms and 7,700/s at 0 on this
# project's machine (docs/benchmarks.md). A backlog still goes in batches: what queues while a
# request is in flight is sent together. A URL option (`?linger.ms=5`) overrides it.
PRODUCER_DEFAULTS: dict[str, Any] = {"linger.ms": 0}


class KafkaBus:
    """The EventBus port on Apache Kafka; clients are created on first use."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._admin: AdminClient | None = None
        self._producer: Producer | None = None
        self._topics: set[str] = set()  # known to exist
        self._closed = threading.Event()
        # One thread serves every delivery report, so a publisher waits for exactly its own
        # acknowledgements (an Event), not for whichever poll happens to run the callbacks.
        self._poller = threading.Thread(
            target=self._serve_reports, name="kafka-reports", daemon=True
        )
        self._poller.start()
        # Connects in the background now: an idempotent producer's first send waits for its
        # producer id, which is better fetched before the first event arrives.
        self._producer_client()

    def _serve_reports(self) -> None:
        while not self._closed.is_set():
            producer = self._producer
            if producer is None:
                self._closed.wait(0.05)
                continue
            producer.poll(0.05)

    @classmethod
    def from_url(cls, url: str, partitions: int = 6) -> KafkaBus:
        return cls(KafkaSettings.from_url(url, partitions))

    def _config(
        self, defaults: dict[str, Any] | None = None, /, **overrides: Any
    ) -> dict[str, Any]:
        """The librdkafka config: `defaults`, then the URL's options, then `overrides`."""
        return {
            "bootstrap.servers": self.settings.bootstrap_servers,
            **(defaults or {}),
            **self.settings.client_config,
            **overrides,
        }

    def _admin_client(self) -> AdminClient:
        with self._lock:
            if self._admin is None:
                self._admin = AdminClient(self._config(**{"allow.auto.create.topics": False}))
            return self._admin

    def _producer_client(self) -> Producer:
        with self._lock:
            if self._producer is None:
                self._producer = Producer(
                    self._config(
                        PRODUCER_DEFAULTS,
                        **{
                            "enable.idempotence": True,
                            "acks": "all",
                            "partitioner": "murmur2_random",
                            "allow.auto.create.topics": False,
                            "message.timeout.ms": int(self.settings.publish_timeout * 1000),
                        },
                    )
                )
            return self._producer

    def _drop_producer(self, producer: Producer) -> None:
        """After a fatal error an idempotent producer is unusable: the next publish makes one."""
        with self._lock:
            if self._producer is producer:
                self._producer = None

    # -- topics ---------------------------------------------------------------------------

    def ensure_topic(self, topic: str, timeout: float) -> None:
        """Create the topic with this bus's partition count unless it exists."""
        if topic in self._topics:
            return
        new = NewTopic(topic, self.settings.partitions, self.settings.replication)
        future = self._admin_client().create_topics(
            [new], operation_timeout=timeout, request_timeout=timeout
        )[topic]
        try:
            future.result()
        except KafkaException as exc:
            err = _error_of(exc)
            code = err.code() if err is not None else None
            # Not allowed to create topics (ACLs) is fine when the topic is there.
            if code != KafkaError.TOPIC_ALREADY_EXISTS and not (
                code in _NOT_ALLOWED and self._partitions_of(topic) is not None
            ):
                self._raise(f"could not create topic {topic!r}", err, exc)
        self._topics.add(topic)

    def _partitions_of(self, topic: str) -> list[int] | None:
        """The topic's partitions, or None when it does not exist."""
        try:
            metadata = self._admin_client().list_topics(
                topic=topic, timeout=self.settings.ping_timeout
            )
        except KafkaException as exc:
            raise BusUnavailable(f"kafka is unreachable: {exc}") from exc
        found = metadata.topics.get(topic)
        if found is None or (
            found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            return None
        if found.error is not None:
            raise BusUnavailable(f"no metadata for topic {topic!r}: {found.error}")
        return sorted(found.partitions)

    @staticmethod
    def _raise(what: str, err: KafkaError | None, cause: Exception) -> None:
        if err is not None and err.code() in _PERMANENT:
            raise KafkaRejected(f"{what}: {err.str()}") from cause
        raise BusUnavailable(f"{what}: {err.str() if err else cause}") from cause

    # -- the port -------------------------------------------------------------------------

    def publish(self, topic: str, messages: Sequence[tuple[str, bytes]]) -> None:
        if not messages:
            return
        timeout = self.settings.publish_timeout
        deadline = time.monotonic() + timeout
        self.ensure_topic(topic, timeout)
        producer = self._producer_client()
        deliveries = _Deliveries(len(messages))
        for i, (key, value) in enumerate(messages):
            while True:
                try:
                    producer.produce(
                        topic, value=value, key=key.encode(), on_delivery=deliveries.report(i)
                    )
                    break
                except BufferError:  # the local queue is full: let it drain a little
                    if time.monotonic() >= deadline:
                        err = KafkaError(KafkaError._QUEUE_FULL)
                        deliveries.never_sent(range(i, len(messages)), err)
                        break
                    producer.poll(0.05)
                except KafkaException as exc:
                    err = _error_of(exc) or KafkaError(KafkaError._FAIL)
                    deliveries.never_sent(range(i, len(messages)), err)
                    break
            if i in deliveries.failed:
                break
        deliveries.done.wait(max(0.0, deadline + _REPORT_GRACE_SECONDS - time.monotonic()))
        if deliveries.pending or deliveries.failed:
            self._delivery_failed(producer, topic, len(messages), deliveries)

    def _delivery_failed(
        self, producer: Producer, topic: str, count: int, deliveries: _Deliveries
    ) -> None:
        errors = list(deliveries.failed.values())
        if any(e.fatal() or e.code() == KafkaError._FATAL for e in errors):
            self._drop_producer(producer)
        undelivered = sorted({*deliveries.pending, *deliveries.failed})
        first = errors[0].str() if errors else "no acknowledgement in time"
        message = f"{len(undelivered)} of {count} message(s) to {topic!r} not acknowledged: {first}"
        # A message without a report, or timed out after it was sent, may still have been
        # written: sent again from the spool it is on the topic twice (ADR 0003).
        maybe = len(deliveries.pending) + sum(
            e.code() == KafkaError._MSG_TIMED_OUT for e in deliveries.failed.values()
        )
        if maybe:
            message += f" ({maybe} may have been written all the same)"
        if errors and all(e.code() in _PERMANENT for e in errors) and not deliveries.pending:
            raise KafkaRejected(message)
        raise BusUnavailable(message, undelivered)

    def subscribe(self, group: str, topic: str) -> KafkaConsumer:
        consumer = Consumer(
            self._config(
                **{
                    "group.id": group,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": 6000,
                    "heartbeat.interval.ms": 500,
                    # A safety net: new or changed topics are noticed within 10 s, not 5 minutes.
                    "topic.metadata.refresh.interval.ms": 10_000,
                    "allow.auto.create.topics": False,
                }
            )
        )
        return KafkaConsumer(consumer, topic, self.ensure_topic)

    def lag(self, group: str, topic: str) -> int:
        partitions = self._partitions_of(topic)
        if not partitions:
            return 0
        # A topic created a moment ago may not have its leaders everywhere yet: a retriable
        # error (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE, …) is asked again, briefly.
        deadline = time.monotonic() + 2 * self.settings.ping_timeout
        while True:
            try:
                return self._lag(group, topic, partitions)
            except KafkaException as exc:
                err = _error_of(exc)
                settling = err is not None and (err.retriable() or err.code() in _SETTLING)
                if not settling or time.monotonic() >= deadline:
                    raise BusUnavailable(f"could not read the lag of {group!r}: {exc}") from exc
                time.sleep(0.1)

    def _lag(self, group: str, topic: str, partitions: list[int]) -> int:
        admin = self._admin_client()
        timeout = self.settings.ping_timeout
        tps = [TopicPartition(topic, p) for p in partitions]
        request = ConsumerGroupTopicPartitions(group, tps)
        done = admin.list_consumer_group_offsets([request], request_timeout=timeout)
        committed = {tp.partition: tp.offset for tp in done[group].result().topic_partitions}
        high = self._offsets(admin, tps, OffsetSpec.latest(), timeout)
        unread = [tp for tp in tps if committed.get(tp.partition, -1) < 0]
        low = self._offsets(admin, unread, OffsetSpec.earliest(), timeout) if unread else {}
        return sum(
            max(0, high[p] - (committed[p] if committed.get(p, -1) >= 0 else low[p]))
            for p in partitions
        )

    @staticmethod
    def _offsets(
        admin: AdminClient, tps: list[TopicPartition], spec: OffsetSpec, timeout: float
    ) -> dict[int, int]:
        futures = admin.list_offsets({tp: spec for tp in tps}, request_timeout=timeout)
        return {tp.partition: f.result().offset for tp, f in futures.items()}

    def spooled(self) -> int:
        return 0

    def ping(self) -> None:
        try:
            self._admin_client().list_topics(timeout=self.settings.ping_timeout)
        except KafkaException as exc:
            raise BusUnavailable(f"kafka is unreachable: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
            self._admin = None
        self._closed.set()
        self._poller.join(5)
        if producer is not None:
            left = producer.flush(self.settings.publish_timeout)
            if left:
                log.warning("closing the kafka producer with %d unacknowledged message(s)", left)


class KafkaConsumer:
    """One member of a consumer group. Subscribes once its topic exists (it creates it)."""

    def __init__(
        self, consumer: Consumer, topic: str, ensure_topic: Callable[[str, float], None]
    ) -> None:
        self._consumer = consumer
        self.topic = topic
        self.label = topic  # the topic name its records carry
        self._ensure_topic = ensure_topic
        self._subscribed = False
        self._next_try = 0.0
        self._closed = False
        self._last_error: int | None = None
        self._try_subscribe(timeout=2.0)

    def _try_subscribe(self, timeout: float) -> None:
        """While the broker is down a worker still starts; it subscribes when it can."""
        self._next_try = time.monotonic() + 1.0
        try:
            self._ensure_topic(self.topic, timeout)
        except BusUnavailable as exc:
            log.warning("not subscribed to %r yet: %s", self.topic, exc)
            return
        if not self._has_leaders(timeout):
            return  # a topic made a moment ago: try again shortly
        self._consumer.subscribe([self.topic])
        self._subscribed = True

    def _has_leaders(self, timeout: float) -> bool:
        """The consumer's own metadata shows the topic with a leader for every partition. A
        group assigns partitions from that metadata, and a topic it misses is only found at the
        next metadata refresh, which would leave this member idle until then."""
        try:
            found = self._consumer.list_topics(self.topic, timeout=timeout).topics.get(self.topic)
        except KafkaException:
            return False
        return bool(
            found is not None
            and found.error is None
            and found.partitions
            and all(p.leader >= 0 for p in found.partitions.values())
        )

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[BusRecord]:
        if not self._subscribed:
            start = time.monotonic()
            if start >= self._next_try:
                self._try_subscribe(timeout=max(timeout_seconds, 0.5))
            if not self._subscribed:
                time.sleep(max(0.0, timeout_seconds - (time.monotonic() - start)))
                return []
        if max_records < 1:
            return []
        # Wait for the first message only, then take what is already fetched: consume() alone
        # would wait out the whole timeout unless max_records messages come.
        messages = self._consumer.consume(num_messages=1, timeout=timeout_seconds)
        if messages and max_records > 1:
            messages += self._consumer.consume(num_messages=max_records - 1, timeout=0)
        failed = [err for msg in messages if (err := msg.error()) is not None]
        for err in failed:
            if err.fatal():
                raise KafkaException(err)
            # Said once per kind of error, not on every poll while a broker is down.
            level = logging.DEBUG if err.code() == self._last_error else logging.WARNING
            self._last_error = err.code()
            log.log(level, "kafka consumer of %r: %s", self.topic, err.str())
        if failed:
            messages = [msg for msg in messages if msg.error() is None]
        if not messages:
            return []
        # One subscribed topic: each record is labelled with `label` (the topic's name, or the
        # one a namespace shows), without asking each message; a poll takes thousands, kept as
        # columns (PolledRecords) rather than a tuple each.
        return PolledRecords(
            self.label,
            [msg.partition() or 0 for msg in messages],
            [msg.offset() or 0 for msg in messages],
            [msg.key() for msg in messages],
            [msg.value() or b"" for msg in messages],
        )

    def commit(self, records: Sequence[BusRecord]) -> None:
        latest = latest_offsets(records)
        if not latest:
            return
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in latest.items()]
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=False) or []
        except KafkaException as exc:
            self._commit_failed(_error_of(exc), exc)
            return
        for tp in result:
            if tp.error is not None:
                self._commit_failed(tp.error, None)

    def _commit_failed(self, err: KafkaError | None, cause: Exception | None) -> None:
        if err is not None and err.code() in _REBALANCED:
            log.warning("commit on %r refused after a rebalance: %s", self.topic, err.str())
            return
        message = f"could not commit offsets on {self.topic!r}: {err.str() if err else cause}"
        raise BusUnavailable(message) from cause

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._consumer.close()
