"""Ports: what the services need from the outside world, as Protocols.

Adapters in `recomind.adapters` implement them and open from a URL by scheme;
every adapter of a port passes the same shared test suite.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, Protocol, overload

from recomind.domain.model import (
    Engagement,
    PopularityScore,
    ScoredVideo,
    StoredRecommendations,
    TagWeight,
    User,
    UserProfile,
    Video,
    VideoAction,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from recomind.domain.event_columns import EventBatch


@dataclass(frozen=True)
class BulkActions:
    """Action columns (each key, user_id and id, once) and, when the store loads rows in bulk,
    the bytes its load takes for them (`Store.bulk_actions`)."""

    columns: pa.Table
    data: bytes | None = None


class StoreTransaction(Protocol):
    """One atomic unit of work on the store: everything in it commits, or nothing."""

    def insert_new_actions(self, actions: Sequence[VideoAction]) -> list[VideoAction]:
        """Insert the actions whose keys (user_id, id; ADR 0011) are not stored yet; return
        exactly those."""
        ...

    def insert_new_action_columns(self, columns: pa.Table | BulkActions) -> pa.Table:
        """Insert the rows of a table of `event_columns.COLUMNS` (checked, as `decode_columns`
        makes it) whose keys (user_id, id) are not stored yet, a key the table repeats once;
        return those rows.
        The `recomind-store` group's write: actions only, in bulk. Given `Store.bulk_actions`
        of the table, the rows go as encoded there."""
        ...

    def count_new_events(self, actions: Sequence[VideoAction]) -> list[VideoAction]:
        """Add to the ledger of counted events the ids of these actions that it lacks; return
        exactly those actions (an id repeated, once). The `recomind-profile` group applies its
        effects to them alone, in the same transaction, so each event id counts once."""
        ...

    def ensure_users(self, user_ids: Iterable[str], at: datetime) -> None: ...

    def popularity_of(self, video_ids: Iterable[str]) -> dict[str, PopularityScore]: ...

    def upsert_popularity(self, rows: Iterable[PopularityScore]) -> None: ...

    def tag_weights_of(self, user_ids: Iterable[str]) -> dict[tuple[str, str], TagWeight]: ...

    def upsert_tag_weights(self, rows: Iterable[TagWeight]) -> None: ...

    def upsert_profiles(self, rows: Iterable[UserProfile]) -> None: ...

    def add_to_popularity(self, added: Sequence[Engagement], half_life_hours: float) -> None:
        """Add each weight, decayed, to its video's popularity (as `scoring.add_to_popularity`)."""
        ...

    def add_to_tag_weights(self, added: Sequence[Engagement], half_life_hours: float) -> None:
        """Add each weight, decayed, to its viewer's affinity for every tag of its video, the
        tags as stored (as `scoring.add_to_tag_weights`)."""
        ...

    def refresh_top_tags(self, user_ids: Iterable[str], at: datetime) -> None:
        """Set these viewers' profiles to their strongest positive tags (`scoring.top_tags`)
        as of `at`."""
        ...

    def video_tags(self, video_ids: Iterable[str]) -> dict[str, tuple[str, ...]]: ...

    def known_videos(self, video_ids: Iterable[str]) -> set[str]:
        """Those of the videos that are in the catalog."""
        ...


class Store(Protocol):
    """The source of truth: users, videos, actions, profiles, popularity, stored lists."""

    def transaction(self) -> AbstractContextManager[StoreTransaction]: ...

    def bulk_actions(self, columns: pa.Table) -> BulkActions:
        """A table of `event_columns.COLUMNS` made ready for `insert_new_action_columns`
        ahead of its transaction: a key (user_id, id) it repeats once, encoded as this store's
        bulk load takes rows. CPU work only, so the store group does it while the last batch is
        written."""
        ...

    def add_users(self, users: Sequence[User]) -> int: ...

    def get_user(self, user_id: str) -> User | None: ...

    def add_videos(self, videos: Sequence[Video]) -> int: ...

    def get_video(self, video_id: str) -> Video | None: ...

    def get_videos(self, video_ids: Iterable[str]) -> dict[str, Video]: ...

    def existing_video_ids(self, video_ids: Iterable[str]) -> set[str]: ...

    def existing_user_ids(self, user_ids: Iterable[str]) -> set[str]: ...

    def all_video_ids(self) -> set[str]: ...

    def all_videos(self) -> list[Video]: ...

    def bulk_insert_actions(self, actions: Sequence[VideoAction]) -> list[VideoAction]:
        """Insert actions not stored yet (by key: user_id, id) in one transaction; return those."""
        ...

    def user_actions(self, user_id: str) -> list[VideoAction]: ...

    def iter_actions(self, batch_size: int = 50_000) -> Iterator[list[VideoAction]]: ...

    def count_actions(self) -> int: ...

    def top_popularity(self, limit: int) -> list[PopularityScore]: ...

    def tag_weights(self, user_id: str) -> list[TagWeight]: ...

    def get_profile(self, user_id: str) -> UserProfile | None: ...

    def save_recommendations(self, rows: Sequence[StoredRecommendations]) -> None: ...

    def get_recommendations(self, user_id: str) -> StoredRecommendations | None: ...

    def delete_recommendations(self, user_id: str) -> None: ...

    def counts(self) -> dict[str, int]: ...

    def ping(self) -> None: ...

    def forget_counted(self, older_than_seconds: float, limit: int) -> int:
        """Forget at most `limit` of the ids of the `recomind-profile` group's ledger counted
        more than that long ago (by the store's clock), in one transaction; returns how many.
        A copy of one of those events that comes after this is counted again."""
        ...

    def open_connections(self, count: int) -> None:
        """Have `count` connections open and pooled now (a consumer's threads each hold one),
        so a worker's first batches do not wait for the server to take new sessions."""
        ...

    def close(self) -> None: ...


class Cache(Protocol):
    """A key-value cache of bytes with per-key TTLs (in-process, or Redis)."""

    def get(self, key: str) -> bytes | None: ...

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of `keys` in their order (None where missing), in one round trip."""
        ...

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None: ...

    def delete(self, *keys: str) -> None: ...

    def incr(self, amounts: Mapping[str, int], ttl_seconds: float) -> dict[str, int]:
        """Add each amount to its key's counter (created at 0 with this TTL, which adding does
        not extend), all keys in one round trip; return each counter's new value."""
        ...

    def append(self, values: Mapping[str, bytes], max_bytes: int, ttl_seconds: float) -> None:
        """Append each value to its key's bytes (created empty if missing), keep only the last
        `max_bytes` of each, and give each this TTL; all keys in one round trip."""
        ...

    def get_quick(self, key: str) -> bytes | None:
        """`get` for a caller on an event loop: answers within a short timeout or raises,
        so a slow or unreachable server holds the loop for that long at most."""
        ...

    def near_reads(self) -> Mapping[str, int]:
        """`get_quick`'s reads answered by a near cache in this process ("hit") or by the
        server ("miss"); empty when there is no near cache."""
        ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


class BusRecord(NamedTuple):
    """One message as a consumer polled it (a tuple: a poll makes thousands of them at once)."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes


class PolledRecords(Sequence[BusRecord]):
    """The records of one topic that a poll took, kept as columns: a poll takes thousands, and
    the bulk sinks read only their values, partitions and offsets, so a `BusRecord` is made
    only for a record asked for by position or in a loop (a poison message, the profile group).
    A key is decoded from its bytes then (undecodable bytes replaced)."""

    __slots__ = ("keys", "offsets", "partitions", "topic", "values")

    def __init__(
        self,
        topic: str,
        partitions: list[int],
        offsets: list[int],
        keys: list[bytes | str | None],
        values: list[bytes],
    ) -> None:
        self.topic = topic
        self.partitions = partitions
        self.offsets = offsets
        self.keys = keys
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> BusRecord: ...

    @overload
    def __getitem__(self, index: slice) -> PolledRecords: ...

    def __getitem__(self, index: int | slice) -> BusRecord | PolledRecords:
        if isinstance(index, slice):
            return PolledRecords(
                self.topic,
                self.partitions[index],
                self.offsets[index],
                self.keys[index],
                self.values[index],
            )
        key = self.keys[index]
        return BusRecord(
            self.topic, self.partitions[index], self.offsets[index], _key(key), self.values[index]
        )

    def __iter__(self) -> Iterator[BusRecord]:
        topic = self.topic
        for partition, offset, key, value in zip(
            self.partitions, self.offsets, self.keys, self.values, strict=True
        ):
            yield BusRecord(topic, partition, offset, _key(key), value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PolledRecords({list(self)!r})"


def _key(key: bytes | str | None) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else (key or "")


def joined(parts: Sequence[Sequence[BusRecord]]) -> Sequence[BusRecord]:
    """Several polls' records as one batch, in order: still columns when every part is the
    same topic's `PolledRecords`."""
    if len(parts) == 1:
        return parts[0]
    if parts and all(isinstance(p, PolledRecords) for p in parts):
        polled = [p for p in parts if isinstance(p, PolledRecords)]
        if len({p.topic for p in polled}) == 1:
            return PolledRecords(
                polled[0].topic,
                [x for p in polled for x in p.partitions],
                [x for p in polled for x in p.offsets],
                [x for p in polled for x in p.keys],
                [x for p in polled for x in p.values],
            )
    return [r for p in parts for r in p]


def values_of(records: Sequence[BusRecord]) -> list[bytes]:
    """The records' values (a `PolledRecords`' own list: read it, do not change it)."""
    return records.values if isinstance(records, PolledRecords) else [r.value for r in records]


def positions_of(records: Sequence[BusRecord]) -> tuple[list[int], list[int]]:
    """The records' partitions and offsets (a `PolledRecords`' own lists: read only)."""
    if isinstance(records, PolledRecords):
        return records.partitions, records.offsets
    return [r.partition for r in records], [r.offset for r in records]


def latest_offsets(records: Iterable[BusRecord]) -> dict[tuple[str, int], int]:
    """The highest offset of the records per (topic, partition): what a commit stores."""
    if isinstance(records, PolledRecords):
        highest: dict[int, int] = {}
        for partition, offset in zip(records.partitions, records.offsets, strict=True):
            if offset > highest.get(partition, -1):
                highest[partition] = offset
        return {(records.topic, p): o for p, o in highest.items()}
    latest: dict[tuple[str, int], int] = {}
    for r in records:
        where = (r.topic, r.partition)
        if r.offset > latest.get(where, -1):
            latest[where] = r.offset
    return latest


class BusConsumer(Protocol):
    """One member of a consumer group; offsets are committed only when told."""

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[BusRecord]: ...

    def commit(self, records: Sequence[BusRecord]) -> None: ...

    def close(self) -> None: ...


class EventBus(Protocol):
    """A partitioned, durable log of events (the local SQLite log, or Kafka)."""

    def publish(self, topic: str, messages: Sequence[tuple[str, bytes]]) -> None:
        """Durably append (key, value) messages; returns only once they are recorded.

        Raises `BusUnavailable` (naming the messages not recorded) when the bus cannot
        acknowledge in time, e.g. while a broker is down.
        """
        ...

    def subscribe(self, group: str, topic: str) -> BusConsumer: ...

    def lag(self, group: str, topic: str) -> int: ...

    def spooled(self) -> int:
        """Events accepted on this node but not yet on the bus itself (0 without a spool)."""
        ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LakeRecord:
    partition: int
    offset: int
    action: VideoAction


class Lake(Protocol):
    """The full history as Parquet, partitioned by dt/hour, objects named by offset range."""

    def connect(self) -> None:
        """Set up the client that writes need (a sink calls it before its first poll; a write
        without it sets it up itself)."""
        ...

    def write_actions(self, records: Sequence[LakeRecord]) -> int:
        """Write records not yet in the lake (by partition and offset), leaving out a second
        copy of an event id in the same partition and dt/hour; return how many were written."""
        ...

    def write_events(self, batch: EventBatch) -> list[tuple[BusRecord, str]]:
        """Write bus events (`VideoActionRecorded`, decoded into columns, or one by one when
        the batch has no columns) as `write_actions` does; return the records that can never
        be written, each with the reason."""
        ...

    def archive_actions(self, actions: Sequence[VideoAction]) -> int:
        """Write actions that did not come through the bus (imports)."""
        ...

    def last_offsets(self) -> dict[int, int]: ...

    def read_actions(self) -> list[VideoAction]: ...

    def count_actions(self) -> int: ...

    def feature_offsets(self, table: str) -> dict[int, int]:
        """The last bus offset per partition whose features are in `table` (listed)."""
        ...

    def write_features(
        self, table: str, partition: int, first: int, last: int, rows: Sequence[dict[str, object]]
    ) -> bool:
        """Write the feature rows of offsets first..last of one partition; False (and nothing
        written) when `last` is not past what the table already holds."""
        ...

    def uncounted(self, records: Sequence[LakeRecord]) -> list[LakeRecord]:
        """The records whose event ids the feature tables have not counted yet (first copies
        only), judged per partition and dt/hour by the ledger `mark_counted` writes."""
        ...

    def mark_counted(self, records: Sequence[LakeRecord]) -> None:
        """Record these event ids as counted, once their feature rows are written."""
        ...

    def read_features(self, table: str) -> list[dict[str, object]]: ...


@dataclass(frozen=True, slots=True)
class RankRequest:
    """What a ranker needs to order videos for one viewer.

    `history` is what the viewer did (oldest first; empty for a new viewer). `candidates`
    limits the ranking to those videos; None means every video the model knows.
    """

    history: tuple[VideoAction, ...]
    k: int
    user_id: str | None = None
    candidates: tuple[str, ...] | None = None
    exclude: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Ranking:
    """A viewer's ranked videos, best first, and the model version that ranked them."""

    items: tuple[ScoredVideo, ...]
    model_version: str


class Ranker(Protocol):
    """Orders videos for a viewer: the current model in this process, or a model server."""

    def rank(self, request: RankRequest) -> Ranking | None:
        """At most k videos, best first, none in the viewer's history or `exclude`;
        None when there is no model to rank with."""
        ...

    def close(self) -> None: ...
