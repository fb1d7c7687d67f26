"""A durable spool in front of the event bus, so ingest keeps answering while Kafka is down.

`SpoolingBus(primary, spool)` publishes to the primary (Kafka). When the primary cannot
acknowledge (it raises `BusUnavailable`), the messages it did not acknowledge go to the spool,
a `LocalLog` in one SQLite file that is fsynced before `publish` returns, so a 202 still means
"durably recorded". While the spool holds anything, new publishes go to the spool too, so one
viewer's events keep their order. A background thread forwards the spool to the primary, in
order, once the primary acknowledges again. It marks spool records done only after that
acknowledgement. A batch the primary acknowledges in part (Kafka acknowledges per partition)
is retried with only the records it did not acknowledge; the batch is marked done once all are.
A crash in between (or a record the primary wrote without acknowledging it, ADR 0003) forwards
a record twice at most, and every consumer counts an event id once. One process at a time
drains a spool file (a lock file beside it). `subscribe` and `lag` are the primary's; `ping` is
the spool's, because ingest works as long as the spool does (a node is ready to accept events
while Kafka is away).
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from recomind.adapters.bus.local import LocalLog
from recomind.domain.errors import BusUnavailable
from recomind.domain.ports import BusConsumer, BusRecord, EventBus

log = logging.getLogger(__name__)

DRAIN_GROUP = "recomind-spool"


def _acknowledged_prefix(records: Sequence[BusRecord], acked: set[int]) -> list[BusRecord]:
    """The leading records whose offsets are all acknowledged (what may be marked done)."""
    done = []
    for r in records:
        if r.offset not in acked:
            break
        done.append(r)
    return done


class _DrainLock:
    """An exclusive, non-blocking lock on a file beside the spool (flock: freed if we die)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> bool:
        self._file = self.path.open("a")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def __exit__(self, *exc: object) -> None:
        self._file.close()  # closing releases the lock


class SpoolingBus:
    """The EventBus port: the primary bus, with a local spool for when it is unreachable."""

    def __init__(
        self,
        primary: EventBus,
        spool: LocalLog,
        batch_size: int = 500,
        retry_seconds: float = 0.5,
        max_retry_seconds: float = 10.0,
    ) -> None:
        self.primary = primary  # read again on every attempt, so it can be replaced
        self.spool = spool
        self.batch_size = batch_size
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.forwarded = 0
        # Per topic: spool offsets of the head batch that the primary acknowledged while an
        # earlier record of the batch was not (kept out of the retry; lost on a restart).
        self._acked: dict[str, set[int]] = {}
        self._drain_lock = _DrainLock(spool.path.with_name(spool.path.name + ".lock"))
        self._lock = threading.Lock()  # orders spool appends with the end of spooling
        self._stop = threading.Event()
        self._drainer: threading.Thread | None = None
        left = self.pending()
        self._spooling = left > 0
        if left:
            log.warning("%d event(s) wait in the spool %s; forwarding them", left, spool.path)
            with self._lock:
                self._start_drainer()

    @property
    def spooling(self) -> bool:
        """True while new publishes go to the spool."""
        return self._spooling

    def pending(self) -> int:
        """How many messages the spool holds that the primary has not acknowledged."""
        return sum(self.spool.lag(DRAIN_GROUP, topic) for topic in self.spool.topics())

    def publish(self, topic: str, messages: Sequence[tuple[str, bytes]]) -> None:
        if not messages:
            return
        with self._lock:
            if self._spooling:
                self.spool.publish(topic, messages)
                return
        try:
            self.primary.publish(topic, messages)
            return
        except BusUnavailable as exc:
            failed = range(len(messages)) if exc.undelivered is None else exc.undelivered
            left = [messages[i] for i in failed]
            log.warning("spooling %d message(s) for %r: %s", len(left), topic, exc)
        with self._lock:
            self.spool.publish(topic, left)
            self._spooling = True
            self._start_drainer()

    def subscribe(self, group: str, topic: str) -> BusConsumer:
        return self.primary.subscribe(group, topic)

    def lag(self, group: str, topic: str) -> int:
        return self.primary.lag(group, topic)

    def spooled(self) -> int:
        return self.pending()

    def ping(self) -> None:
        self.spool.ping()

    def close(self) -> None:
        self._stop.set()
        drainer = self._drainer
        if drainer is not None:
            drainer.join(30)
        self.primary.close()
        self.spool.close()

    # -- forwarding -----------------------------------------------------------------------

    def _start_drainer(self) -> None:
        """Called under self._lock; the drainer clears self._drainer under it when it ends."""
        if self._drainer is None and not self._stop.is_set():
            self._drainer = threading.Thread(target=self._drain, name="spool-drainer", daemon=True)
            self._drainer.start()

    def _drain(self) -> None:
        delay = self.retry_seconds
        while not self._stop.is_set():
            try:
                moved = self.forward_once()
            except Exception as exc:
                log.warning("spool: forwarding failed, retry in %.1fs: %s", delay, exc)
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, self.max_retry_seconds)
                continue
            delay = self.retry_seconds
            if moved:
                continue
            with self._lock:
                if self.pending() == 0:
                    self._spooling = False
                    self._drainer = None
                    log.info("spool empty: %d event(s) forwarded so far", self.forwarded)
                    return
            if self._stop.wait(delay):  # another process holds the drain lock
                break
        with self._lock:
            self._drainer = None

    def forward_once(self) -> int:
        """Forward the next batch of every spooled topic; returns how many were acknowledged.

        Raises `BusUnavailable` when the primary still does not acknowledge; what it did
        acknowledge before the first failure is marked done.
        """
        with self._drain_lock as held:
            if not held:
                return 0
            moved = 0
            for topic in self.spool.topics():
                consumer = self.spool.subscribe(DRAIN_GROUP, topic)
                records = consumer.poll(self.batch_size, 0.0)
                if not records:
                    continue
                acked = self._acked.setdefault(topic, set())
                todo = [r for r in records if r.offset not in acked]
                try:
                    self.primary.publish(topic, [(r.key, r.value) for r in todo])
                except BusUnavailable as exc:
                    failed = set(range(len(todo)) if exc.undelivered is None else exc.undelivered)
                    acked.update(r.offset for i, r in enumerate(todo) if i not in failed)
                    done = _acknowledged_prefix(records, acked)
                    self._mark_done(consumer, topic, done)
                    acked.difference_update(r.offset for r in done)
                    raise
                self._mark_done(consumer, topic, records)
                acked.difference_update(r.offset for r in records)
                moved += len(records)
            return moved

    def _mark_done(self, consumer: BusConsumer, topic: str, records: Sequence[BusRecord]) -> None:
        if not records:
            return
        consumer.commit(records)
        self.spool.discard(topic, self.spool.committed(DRAIN_GROUP, topic))
        self.forwarded += len(records)
