"""What happens when a viewer acts: the consumers of `video_actions_stream`, in one table.

Each consumer group reads the topic independently and commits its offsets only
after its side effects are committed, so a crash replays at most the last batch
and the idempotent effects make the replay harmless (ADR 0003, ADR 0008):

- `recomind-store` stores the actions whose event ids are new, in bulk: the batch is decoded
  into columns and appended by one `COPY` (PostgreSQL) or `LOAD DATA` (MariaDB/MySQL); after
  the commit it applies the feed refresh policy and nudges the retrainer;
- `recomind-profile` adds the new events' decayed weights to popularity and to the viewers'
  tag weights and refreshes their top tags, in one transaction with its ledger of counted
  event ids (`counted_events`), so each event id counts once (on PostgreSQL and MariaDB as
  set-based SQL over the batch);
- `recomind-lake` archives every event to the lake, named by partition and offset; it gets
  each flush as Arrow columns (`EventBatch`), decoded on the polling thread;
- `recomind-analytics` writes per-batch feature deltas (per video, per viewer, per
  viewer and tag) to the lake's feature tables, named the same way.

A message that can never be applied (not JSON, breaks the event rules, names an unknown
video) goes to `video_actions_stream.dlq` with the reason, from the store group; the profile
group skips it. A failing dependency is retried with back-off, never dead-lettered, so no
event is lost while a database is down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from recomind.domain import cache_keys
from recomind.domain.event_columns import EventBatch, acted_of, columns_of, decode_each
from recomind.domain.events import DEAD_LETTER_TOPIC, VIDEO_ACTIONS_TOPIC
from recomind.domain.model import Acted, ActedColumns, ActionWeights, Engagement, VideoAction
from recomind.domain.ports import (
    BulkActions,
    BusConsumer,
    BusRecord,
    Cache,
    EventBus,
    Lake,
    Store,
    StoreTransaction,
    joined,
)
from recomind.domain.scoring import weighted
from recomind.services.analytics import write_batch_features

log = logging.getLogger(__name__)


class KnownVideos:
    """The videos events name that the catalog holds, remembered for a minute: every batch
    needs to know, and a catalog changes far more slowly than events arrive. A video not in
    the catalog is asked about again."""

    def __init__(self, ttl_seconds: float = 60.0) -> None:
        self.ttl = ttl_seconds
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def warm(self, store: Store, video_ids: Iterable[str]) -> Future[None]:
        """Ask, on a daemon thread and in a transaction of its own, about the videos not
        remembered, so a later `of` finds them; the future is done once asked. The store
        group asks while it encodes the batch and the last batch is written, and its write
        waits for the answer before `of`. Best effort: if the store is away, `of` asks again in
        the write's transaction, which is retried."""
        asked: Future[None] = Future()
        found, missing = self._remembered(video_ids)
        if not missing:
            asked.set_result(None)
            return asked

        def ask() -> None:
            try:
                with store.transaction() as tx:
                    self._fetch(tx, missing, found)
            except Exception:  # the write's own lookup reports it, and is retried
                log.debug("the catalog could not be read ahead", exc_info=True)
            finally:
                asked.set_result(None)

        threading.Thread(target=ask, name="recomind-catalog", daemon=True).start()
        return asked

    def of(self, tx: StoreTransaction, video_ids: Iterable[str]) -> set[str]:
        """Those of the videos that the catalog holds."""
        found, missing = self._remembered(video_ids)
        if missing:
            self._fetch(tx, missing, found)
        return found

    def _remembered(self, video_ids: Iterable[str]) -> tuple[set[str], set[str]]:
        now = time.monotonic()
        wanted = set(video_ids)
        with self._lock:
            found = {v for v in wanted if self._until.get(v, 0.0) > now}
        return found, wanted - found

    def _fetch(self, tx: StoreTransaction, missing: set[str], found: set[str]) -> None:
        known = tx.known_videos(missing)
        until = time.monotonic() + self.ttl
        with self._lock:
            for v in known:
                self._until[v] = until
        found.update(known)


@dataclass(frozen=True)
class Effects:
    """What the handlers need: the ports and the scoring settings."""

    store: Store
    cache: Cache
    lake: Lake
    weights: ActionWeights
    popularity_half_life_hours: float
    affinity_half_life_hours: float
    known_videos: KnownVideos = field(default_factory=KnownVideos)
    # Run after the store group commits new actions (the feed refresh policy, the retrainer).
    after_commit: list[Callable[[Sequence[Acted]], None]] = field(default_factory=list)


# Given the new actions and each one's weight (`weighted`, computed once per batch).
TxHandler = Callable[[StoreTransaction, list[VideoAction], list[Engagement], Effects], None]
RecordHandler = Callable[[list[tuple[BusRecord, VideoAction]], Effects], None]
# Writes a batch; returns the records it refuses, each with the reason.
Write = Callable[[], list[tuple[BusRecord, str]]]
# Takes a poll's events as columns, decoded on the polling thread, prepares them there and
# returns their write (run on the group's writer thread when it is `overlapped`).
EventHandler = Callable[[EventBatch, Effects], Write]


# -- handlers --------------------------------------------------------------------------


def update_popularity(
    tx: StoreTransaction, new: list[VideoAction], engaged: list[Engagement], fx: Effects
) -> None:
    tx.add_to_popularity(engaged, fx.popularity_half_life_hours)


def update_profiles(
    tx: StoreTransaction, new: list[VideoAction], engaged: list[Engagement], fx: Effects
) -> None:
    tx.add_to_tag_weights(engaged, fx.affinity_half_life_hours)
    users = {a.user_id for a in new}
    tx.refresh_top_tags(users, max(a.timestamp for a in new))
    fx.cache.delete(*(cache_keys.user_profile(u) for u in users))


def store_actions(batch: EventBatch, fx: Effects) -> Write:
    """The store group: the batch's columns (the events decoded one by one if any is not in
    the bus's own form) made ready for the store's bulk load here, on the polling thread; the
    write returned refuses events on unknown videos, stores the rest once per key (user_id,
    id; ADR 0011), and after the commit hands the new ones to the hooks."""
    decode_refused: list[tuple[BusRecord, str]] = []
    kept = batch.records
    columns = batch.columns
    if columns is None:
        taken, decode_refused = decode_each(batch.records)
        if not taken:
            return lambda: decode_refused
        kept = [record for record, _ in taken]
        columns = columns_of([action for _, action in taken])
    named = pc.unique(columns["video_id"]).to_pylist()
    # The catalog is asked while Arrow encodes the batch: the round trip (5-8 ms for a poll of
    # 7,500 events) overlaps the encoding (4-6 ms, in C++). Drains of 10,000 events ran 2-14 %
    # faster on MariaDB and 3-4 % on PostgreSQL in two sets of alternating pairs
    # (docs/benchmarks.md, "The catalog asked on a thread of its own").
    asked = fx.known_videos.warm(fx.store, named)
    bulk = fx.store.bulk_actions(columns)
    acted = acted_of(bulk.columns)

    def write() -> list[tuple[BusRecord, str]]:
        refused = list(decode_refused)
        ready: BulkActions = bulk
        ready_acted: ActedColumns | None = acted
        asked.result()
        with fx.store.transaction() as tx:
            # Ingest lets actions through unverified while the store is down; refuse them here.
            known = fx.known_videos.of(tx, named)
            if len(known) < len(named):
                ok = pc.is_in(columns["video_id"], pa.array(list(known), pa.string()))
                videos = columns["video_id"].to_pylist()
                refused += [
                    (r, f"unknown video {v!r}")
                    for r, v, good in zip(kept, videos, ok.to_pylist(), strict=True)
                    if not good
                ]
                ready = fx.store.bulk_actions(columns.filter(ok))
                ready_acted = None
            new = tx.insert_new_action_columns(ready) if ready.columns.num_rows else ready.columns
        if new.num_rows:
            # all of the batch is new unless a replay or another worker stored some before
            new_acted = ready_acted if new is ready.columns and ready_acted else acted_of(new)
            for hook in fx.after_commit:
                hook(new_acted)
        return refused

    return write


def archive_to_lake(batch: EventBatch, fx: Effects) -> Write:
    return lambda: fx.lake.write_events(batch)


def write_features(batch: list[tuple[BusRecord, VideoAction]], fx: Effects) -> None:
    videos = fx.store.get_videos({a.video_id for _, a in batch})
    write_batch_features(fx.lake, batch, videos)


@dataclass(frozen=True)
class ConsumerGroup:
    """One consumer group: handlers run in the store transaction (the profile group's), or per
    record batch, or one handler takes the batch as Arrow columns (`on_events`: the store's and
    the lake's, given an `EventBatch` and returning the write to run).

    A `buffered` group (the lake's sinks) gathers records over several polls and applies them
    by size or age, as Kafka Connect's S3 sink does, so the lake gets fewer, larger files.

    An `overlapped` group writes a batch on a thread of its own while the next one is polled
    and decoded (ADR 0009): the bulk sinks, whose write mostly waits on a server, so the client's
    work and the server's run at the same time instead of in turn.

    `connections`: the store connections its loop holds at once, opened before the first poll.
    """

    in_transaction: tuple[TxHandler, ...] = ()
    on_records: tuple[RecordHandler, ...] = ()
    on_events: EventHandler | None = None
    buffered: bool = False
    overlapped: bool = False
    connections: int = 1


EVENT_HANDLERS: dict[str, ConsumerGroup] = {
    # The store group's polling thread reads the catalog while its writer loads the last batch.
    "recomind-store": ConsumerGroup(on_events=store_actions, overlapped=True, connections=2),
    "recomind-profile": ConsumerGroup(in_transaction=(update_popularity, update_profiles)),
    "recomind-lake": ConsumerGroup(
        on_events=archive_to_lake, buffered=True, overlapped=True, connections=0
    ),
    "recomind-analytics": ConsumerGroup(on_records=(write_features,), buffered=True),
}


def count_new_actions(
    tx: StoreTransaction, actions: Sequence[VideoAction], group: ConsumerGroup, fx: Effects
) -> list[VideoAction]:
    """Count the actions whose ids the ledger lacks and run the group's handlers on exactly
    those."""
    new = tx.count_new_events(actions)
    if new:
        tx.ensure_users({a.user_id for a in new}, min(a.timestamp for a in new))
        engaged = weighted(new, fx.weights)
        for handler in group.in_transaction:
            handler(tx, new, engaged, fx)
    return new


def store_new_actions(
    tx: StoreTransaction, actions: Sequence[VideoAction], group: ConsumerGroup, fx: Effects
) -> list[VideoAction]:
    """Both groups' effects in one transaction (`recomind import`): insert the actions not
    stored yet and count those of them the ledger lacks (`group` is the profile group);
    returns the actions inserted."""
    new = tx.insert_new_actions(actions)
    count_new_actions(tx, new, group, fx)
    return new


def apply_batch(
    group: ConsumerGroup, batch: list[tuple[BusRecord, VideoAction]], fx: Effects
) -> list[tuple[BusRecord, str]]:
    """Apply one batch of decoded events for a group; returns the records it must refuse."""
    if not group.in_transaction:
        for record_handler in group.on_records:
            record_handler(batch, fx)
        return []
    with fx.store.transaction() as tx:
        # The store group dead-letters events on unknown videos; they count nowhere.
        known = fx.known_videos.of(tx, {a.video_id for _, a in batch})
        actions = [a for _, a in batch if a.video_id in known]
        if actions:
            count_new_actions(tx, actions, group, fx)
    return []


# -- the loop --------------------------------------------------------------------------


class ConsumerRunner:
    """Polls one group's consumer in a thread and applies batches until stopped."""

    def __init__(
        self,
        name: str,
        bus: EventBus,
        fx: Effects,
        batch_size: int = 500,
        flush_rows: int = 50_000,
        flush_seconds: float = 5.0,
    ) -> None:
        self.name = name
        self.group = EVENT_HANDLERS[name]
        self.bus = bus
        self.fx = fx
        self.batch_size = batch_size
        # An unbuffered group applies every poll at once.
        self.flush_rows = flush_rows if self.group.buffered else 1
        self.flush_seconds = flush_seconds if self.group.buffered else 0.0
        self.processed = 0
        self.dead_lettered = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        self.ready()
        consumer = self.bus.subscribe(self.name, VIDEO_ACTIONS_TOPIC)
        try:
            self.pump(consumer, lambda _: self._stop.is_set())
        finally:
            consumer.close()

    def ready(self) -> None:
        """Open the store connections the loop will hold (`ConsumerGroup.connections`), so
        the first batches do not wait for new sessions: on a drain of 10,000 events, opening
        the second one cost 20-30 ms in the middle of it. A lake's sink (a `buffered` group)
        sets up the lake's client, which takes 0.2-0.3 s on S3. Best effort: if the store is
        away, the batches connect when it is back."""
        setups: list[tuple[str, Callable[[], None]]] = []
        if self.group.buffered:
            setups.append(("lake", self.fx.lake.connect))
        if self.group.connections:
            setups.append(
                ("store", partial(self.fx.store.open_connections, self.group.connections))
            )
        for what, setup in setups:
            try:
                setup()
            except Exception:  # the writes retry until it is back
                log.warning(
                    "consumer %s: the %s is not reachable yet", self.name, what, exc_info=True
                )

    def pump(self, consumer: BusConsumer, finished: Callable[[int], bool]) -> None:
        """Poll, gather and decode batches until `finished(records taken so far)`, applying
        each and committing its offsets once it is applied. An `overlapped` group applies a
        batch on its writer thread while this one polls and decodes the next (one batch in
        flight at most); offsets are committed here, in order. On a stop the records held are
        applied; after a crash they are not committed, so they come again."""
        held: list[Sequence[BusRecord]] = []  # the polls not applied yet
        count = 0  # their records
        oldest = 0.0
        taken = 0
        delay = 0.1
        in_flight: tuple[Future[None], Sequence[BusRecord]] | None = None

        def settle() -> None:  # wait for the batch in flight, then commit it
            nonlocal in_flight
            if in_flight is not None:
                future, records = in_flight
                future.result()  # a write that failed stays in flight, never committed past
                in_flight = None
                consumer.commit(records)

        try:
            while not finished(taken):
                try:
                    records = consumer.poll(self.batch_size, 0.2)
                    if in_flight is not None and (not records or in_flight[0].done()):
                        settle()  # written meanwhile, or nothing else comes: commit it now
                    if records:
                        if not held:
                            oldest = time.monotonic()
                        held.append(records)
                        count += len(records)
                    if held and (
                        count >= self.flush_rows or time.monotonic() - oldest >= self.flush_seconds
                    ):
                        pending = joined(held)
                        held = [pending]  # kept until applied, as one
                        apply = self.prepare(pending)
                        written = in_flight
                        if written is not None:
                            written[0].result()  # raises with it still in flight
                        in_flight = None
                        if not self.group.overlapped:
                            apply()
                            consumer.commit(pending)
                        else:  # the writer goes on at once; the last batch is committed after
                            in_flight = (self._in_background(apply), pending)
                        if written is not None:
                            consumer.commit(written[1])
                        taken += len(pending)
                        held, count = [], 0
                    delay = 0.1
                except Exception:  # the bus is away: uncommitted records come again later
                    if self._stop.is_set():
                        raise
                    self.errors += 1
                    log.exception("consumer %s: bus error; retrying in %.1fs", self.name, delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, 10.0)
            settle()
            if held:  # a clean stop applies what it holds; a crash leaves it uncommitted
                pending = joined(held)
                self.handle(pending)
                consumer.commit(pending)
        finally:
            if in_flight is not None:  # leaving on an error: let the write end, commit nothing
                in_flight[0].exception()

    def _in_background(self, apply: Callable[[], None]) -> Future[None]:
        """Run one batch's write on a daemon thread (never more than one at a time: the pump
        waits for it before the next), so a worker that exits is never held by a write that
        keeps retrying against a store that is down."""
        future: Future[None] = Future()

        def write() -> None:
            try:
                apply()
            except BaseException as exc:  # handed to the pump, which re-raises it
                future.set_exception(exc)
            else:
                future.set_result(None)

        threading.Thread(target=write, name=f"{self.name}-write", daemon=True).start()
        return future

    def drain(self, timeout: float = 60.0) -> int:
        """Apply everything on the topic now, in this thread (for tests and the CLI): reads until
        the group has no lag left (a Kafka consumer first has to join its group)."""
        consumer = self.bus.subscribe(self.name, VIDEO_ACTIONS_TOPIC)
        total = 0
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                records = consumer.poll(self.batch_size, 0.2)
                if records:
                    self.handle(records)
                    consumer.commit(records)
                    total += len(records)
                elif self.bus.lag(self.name, VIDEO_ACTIONS_TOPIC) == 0:
                    return total
        finally:
            consumer.close()
        raise TimeoutError(f"consumer {self.name} did not catch up within {timeout}s")

    def handle(self, records: Sequence[BusRecord]) -> None:
        """Apply one polled batch: decode, dead-letter poison, retry the rest until applied."""
        self.prepare(records)()

    def prepare(self, records: Sequence[BusRecord]) -> Callable[[], None]:
        """Decode a batch (on the polling thread); the call returned applies it: dead-letters
        the poison and retries the rest until applied."""
        on_events = self.group.on_events
        if on_events is not None:
            write = on_events(EventBatch.decode(records), self.fx)
            return lambda: self._until_applied(len(records), write)
        decoded, poison = decode_each(records)

        def apply() -> None:
            if poison:
                self._dead_letter(poison)
            if decoded:
                self._until_applied(len(decoded), lambda: apply_batch(self.group, decoded, self.fx))

        return apply

    def _until_applied(self, size: int, apply: Callable[[], list[tuple[BusRecord, str]]]) -> None:
        """Run `apply` (it returns the records it refuses) until it succeeds: a failure is a
        dependency down, so the batch is retried with back-off, never dropped."""
        delay = 0.1
        while True:
            try:
                refused = apply()
                self.processed += size - len(refused)
                if refused:
                    self._dead_letter(refused)
                return
            except Exception:  # a dependency is down: retry, never drop
                self.errors += 1
                log.exception("consumer %s failed on a batch; retrying in %.1fs", self.name, delay)
                if self._stop.wait(delay):
                    raise
                delay = min(delay * 2, 10.0)

    def _dead_letter(self, poison: list[tuple[BusRecord, str]]) -> None:
        messages = [
            (
                r.key,
                orjson.dumps(
                    {
                        "reason": reason,
                        "group": self.name,
                        "partition": r.partition,
                        "offset": r.offset,
                        "value": r.value.decode("utf-8", "replace"),
                        "at": datetime.now(UTC).isoformat(),
                    }
                ),
            )
            for r, reason in poison
        ]
        self.bus.publish(DEAD_LETTER_TOPIC, messages)
        self.dead_lettered += len(poison)
        log.warning("consumer %s dead-lettered %d message(s)", self.name, len(poison))
