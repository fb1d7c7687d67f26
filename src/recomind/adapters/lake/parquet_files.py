"""The lake as Parquet files on a pyarrow filesystem: a local folder (`file:///path/lake`) or S3.

Actions land under `video_actions/dt=YYYY-MM-DD/hour=HH/`; feature tables (the
analytics consumer's per-batch deltas) under `features/<table>/`. A file written from
the bus is named by the bus partitions and offset ranges it holds
(`p003-000000000120-000000000245_p004-000000000098-000000000190.parquet`: one flush
writes one file per folder, with up to six partitions' ranges), so a restarted sink
finds the offsets already written by listing, and never writes an offset twice. The topic itself
may hold one event twice (a producer or the spool resent it, ADR 0003): both copies
carry the same event id and timestamp and have the same key, so they fall in the same
partition and dt/hour folder, and the sink leaves out an id that the partition's files
in that folder already hold. The feature tables keep the same memory in a ledger of
counted ids under `features/_counted/`. A reader
never sees half a file: a local file is written to a hidden temporary name and
renamed, and an S3 object appears whole when its PUT completes. The S3 opener
is in `s3.py`; this module is the one implementation for both.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from recomind.domain.event_columns import EventBatch, columns_of, decode_each
from recomind.domain.model import ActionType, VideoAction
from recomind.domain.ports import BusRecord, LakeRecord, positions_of

ACTIONS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("user_id", pa.string()),
        ("video_id", pa.string()),
        ("action_type", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("watch_ms", pa.int64()),
        ("bus_partition", pa.int32()),
        ("bus_offset", pa.int64()),
    ]
)
# A lake file, relative to `video_actions/`; names starting with "." or "_" are hidden.
_LAKE_FILE = re.compile(r"^dt=[^/]+/hour=[^/]+/(?P<name>[^._/][^/]*\.parquet)$")
# A file written from the bus: one or more ranges, each `p<partition>-<first>-<last>`, joined
# by "_" (a feature table's files and the ledger's hold one).
_RANGE = r"p(\d+)-(\d+)-(\d+)"
_RANGES_FILE = re.compile(rf"^{_RANGE}(?:_{_RANGE})*\.parquet$")
_MICROS_PER_HOUR = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Partitions' ranges per file name: six keep a name under the 255 bytes of a local file name.
MAX_RANGES_PER_FILE = 6
# How many event ids the sink remembers before it forgets the least recently used folders
# (about 120 MB of UUID ids, ADR 0003); a forgotten folder is read again from its files when
# an event needs it.
DEFAULT_MAX_REMEMBERED_IDS = 1_000_000
COUNTED_DIR = "features/_counted"
# Objects written at once by one flush (one per folder and six partitions at most).
MAX_PARALLEL_WRITES = 8


def _ranges(name: str) -> list[tuple[int, int, int]]:
    """(partition, first, last offset) of each range a file name holds; none if it is not an
    actions file of the bus (an import)."""
    if not _RANGES_FILE.match(name):
        return []
    return [
        (int(p), int(a), int(b)) for p, a, b in re.findall(_RANGE, name.removesuffix(".parquet"))
    ]


def actions_table(
    actions: Sequence[VideoAction], positions: Sequence[tuple[int, int]] | None
) -> pa.Table:
    table = columns_of(actions)
    for name, values in (
        ("bus_partition", [p for p, _ in positions] if positions else [None] * len(actions)),
        ("bus_offset", [o for _, o in positions] if positions else [None] * len(actions)),
    ):
        field = ACTIONS_SCHEMA.field(name)
        table = table.append_column(field, pa.array(values, field.type))
    return table


class _KnownIds:
    """The event ids held by one partition's files in one folder, per (folder, partition).

    Each file's `id` column is read once, the first time its folder is asked about after it
    appears in a listing, so ids written by another worker or before a restart are known too.
    Bounded: past `max_ids` ids, the least recently used folders are forgotten (and read again
    if they are needed again).
    """

    def __init__(self, filesystem: pafs.FileSystem, max_ids: int) -> None:
        self.filesystem = filesystem
        self.max_ids = max_ids
        self._entries: OrderedDict[tuple[str, int], tuple[set[str], set[str]]] = OrderedDict()
        self._size = 0

    def of(self, folder: str, partition: int, paths: Iterable[str]) -> set[str]:
        """The ids in these files (the partition's files in the folder, as listed now)."""
        key = (folder, partition)
        files, ids = self._entries.pop(key, (set(), set()))
        self._entries[key] = (files, ids)
        before = len(ids)
        for path in paths:
            if path not in files:
                ids.update(self._ids_in(path, partition))
                files.add(path)
        self._size += len(ids) - before
        self._forget_old(keep=key)
        return ids

    def _ids_in(self, path: str, partition: int) -> list[str]:
        """The partition's ids in a file (a file of several partitions tells them apart by
        its `bus_partition` column)."""
        if len(_ranges(path.rsplit("/", 1)[1])) < 2:
            return pq.read_table(path, columns=["id"], filesystem=self.filesystem)["id"].to_pylist()
        table = pq.read_table(path, columns=["id", "bus_partition"], filesystem=self.filesystem)
        return table.filter(pc.equal(table["bus_partition"], partition))["id"].to_pylist()

    def add(self, folder: str, partition: int, path: str, new: Iterable[str]) -> None:
        """Remember a file this process wrote (read lazily only when not remembered)."""
        key = (folder, partition)
        entry = self._entries.get(key)
        if entry is None:
            return  # its folder was forgotten: a later `of` reads the file
        files, ids = entry
        before = len(ids)
        ids.update(new)
        files.add(path)
        self._size += len(ids) - before
        self._forget_old(keep=key)

    def _forget_old(self, keep: tuple[str, int]) -> None:
        while self._size > self.max_ids and len(self._entries) > 1:
            key = next(iter(self._entries))
            if key == keep:
                self._entries.move_to_end(key)
                continue
            _, ids = self._entries.pop(key)
            self._size -= len(ids)


class Put(Protocol):
    """Writes a whole object at a path of the filesystem (`s3.S3Put`)."""

    def __call__(self, path: str, data: bytes) -> None: ...

    def connect(self) -> None:
        """Set up what the writes need, so the first write does not."""


class ParquetLake:
    """The Lake port on a folder of a pyarrow filesystem (local, or a bucket prefix on S3).

    `put`, when given, writes each object whole (the S3 lake's `S3Put`); without it, a local
    file is written under a hidden name and renamed, and any other filesystem is written
    through its output stream."""

    def __init__(
        self,
        filesystem: pafs.FileSystem,
        root: str,
        max_remembered_ids: int = DEFAULT_MAX_REMEMBERED_IDS,
        put: Put | None = None,
    ) -> None:
        self.filesystem = filesystem
        self._put = put
        self.root = root.rstrip("/")
        self.actions_dir = f"{self.root}/video_actions"
        self.counted_dir = f"{self.root}/{COUNTED_DIR}"
        self._archived = _KnownIds(filesystem, max_remembered_ids)
        self._counted = _KnownIds(filesystem, max_remembered_ids)
        # A local file needs a folder and a rename to appear whole; S3 has neither folders nor
        # renames, and an object appears whole when its PUT completes.
        self._local = isinstance(filesystem, pafs.LocalFileSystem)
        if self._local:
            filesystem.create_dir(self.actions_dir, recursive=True)
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> ParquetLake:
        parts = urlsplit(url)
        root = Path(parts.netloc + parts.path).absolute()
        return cls(pafs.LocalFileSystem(), root.as_posix())

    def connect(self) -> None:
        if self._put is not None:
            self._put.connect()

    def last_offsets(self) -> dict[int, int]:
        return _last_offsets(name for _, name in self._files())

    def _files(self) -> list[tuple[str, str]]:
        """(path, file name) of every lake file under `video_actions/`, found by listing."""
        selector = pafs.FileSelector(self.actions_dir, recursive=True, allow_not_found=True)
        start = len(self.actions_dir) + 1
        found = []
        for info in self.filesystem.get_file_info(selector):
            m = _LAKE_FILE.match(info.path[start:])
            if m and info.type == pafs.FileType.File:
                found.append((info.path, m.group("name")))
        return sorted(found)

    def _listed(self, folder: str) -> list[tuple[str, int, int, int]]:
        """(path, partition, first, last offset) of each range of the files in one folder
        (listed, never cached, so a partition that moved between workers is judged by what is
        really there)."""
        selector = pafs.FileSelector(folder, allow_not_found=True)
        found = []
        for info in self.filesystem.get_file_info(selector):
            if info.type == pafs.FileType.File:
                name = info.path.rsplit("/", 1)[1]
                found += [(info.path, p, a, b) for p, a, b in _ranges(name)]
        return found

    def write_actions(self, records: Sequence[LakeRecord]) -> int:
        return self._write_rows(
            actions_table([r.action for r in records], [(r.partition, r.offset) for r in records])
        )

    def write_events(self, batch: EventBatch) -> list[tuple[BusRecord, str]]:
        """A batch without columns (something in it is not in the bus's own form) is decoded
        event by event, and the events the rules refuse are returned."""
        records, table = batch.records, batch.columns
        if table is None:
            taken, refused = decode_each(records)
            self.write_actions([LakeRecord(r.partition, r.offset, a) for r, a in taken])
            return refused
        partitions, offsets = positions_of(records)
        positions = {
            "bus_partition": pa.array(partitions, pa.int32()),
            "bus_offset": pa.array(offsets, pa.int64()),
        }
        for name, column in positions.items():
            table = table.append_column(name, column)
        self._write_rows(table)
        return []

    def _write_rows(self, table: pa.Table) -> int:
        """An offset is in the lake iff a file in its own dt/hour folder has a range of its
        partition that covers it: a batch is a contiguous run of offsets per partition, so that
        file holds every event of the run that belongs to the folder. Offsets already covered
        are left out, and so is a second copy of an event id (in the batch, or in the
        partition's files of that folder).

        Each folder is listed once per call, and gets one file (one more per six partitions
        beyond the first six): each object is a request to the server, and those requests cost
        more than the rows. Files are written in parallel; a crash part-way leaves some folders
        without their file, and the replay of the uncommitted batch writes exactly those.
        The folders are listed while the rows are sorted into groups (a LIST is a round trip to
        the server, 5-20 ms on the test S3 server)."""
        if table.num_rows == 0:
            return 0
        table = table.combine_chunks()
        # The folder of each row by its hour since the epoch (a batch spans a few hours, so
        # only those are formatted, not every row's time).
        hours = pc.cast(table["timestamp"], pa.int64()).to_numpy() // _MICROS_PER_HOUR
        unique_hours, folder_codes = np.unique(hours, return_inverse=True)
        folder_names = [
            f"{_EPOCH + timedelta(hours=int(h)):dt=%Y-%m-%d/hour=%H}" for h in unique_hours
        ]
        with self._lock:
            with ThreadPoolExecutor(min(len(folder_names), MAX_PARALLEL_WRITES)) as lister:
                listing = {
                    f: lister.submit(self._listed, f"{self.actions_dir}/{f}") for f in folder_names
                }
                partitions = table["bus_partition"].to_numpy()
                offsets = table["bus_offset"].to_numpy()
                ids = table["id"].to_numpy(zero_copy_only=False)
                # (folder, partition) groups, each in order of offset
                keys = folder_codes.astype(np.int64) << 32 | partitions
                order = np.lexsort((offsets, keys))
                groups = np.split(order, np.flatnonzero(np.diff(keys[order])) + 1)
                listings = {folder: job.result() for folder, job in listing.items()}
            # per folder, each partition's fresh rows (in order of partition, then offset)
            plans: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)
            for rows in groups:
                folder = folder_names[folder_codes[rows[0]]]
                partition = int(partitions[rows[0]])
                files = [(path, a, b) for path, p, a, b in listings[folder] if p == partition]
                known = self._archived.of(folder, partition, {path for path, _, _ in files})
                uncovered = np.ones(len(rows), dtype=bool)
                for _, a, b in files:
                    uncovered &= (offsets[rows] < a) | (offsets[rows] > b)
                candidates = rows[uncovered]
                fresh = candidates[_first_copies(ids[candidates].tolist(), known)]
                if len(fresh):
                    plans[folder].append((partition, fresh))
            writes: list[tuple[str, str, list[tuple[int, np.ndarray]]]] = []
            for folder, parts in plans.items():
                for i in range(0, len(parts), MAX_RANGES_PER_FILE):
                    held = parts[i : i + MAX_RANGES_PER_FILE]
                    name = "_".join(
                        f"p{p:03d}-{offsets[kept[0]]:012d}-{offsets[kept[-1]]:012d}"
                        for p, kept in held
                    )
                    writes.append((folder, f"{self.actions_dir}/{folder}/{name}.parquet", held))
            done: list[tuple[str, str, list[tuple[int, np.ndarray]]]] = []

            def write(folder: str, path: str, held: list[tuple[int, np.ndarray]]) -> None:
                self._write(path, table.take(np.concatenate([kept for _, kept in held])))
                done.append((folder, path, held))

            try:
                if len(writes) == 1:
                    write(*writes[0])
                elif writes:
                    with ThreadPoolExecutor(min(len(writes), MAX_PARALLEL_WRITES)) as pool:
                        for future in [pool.submit(write, *w) for w in writes]:
                            future.result()
            finally:  # remember what was written, even when another write failed
                for folder, path, held in done:
                    for partition, kept in held:
                        self._archived.add(folder, partition, path, ids[kept].tolist())
            return sum(len(kept) for _, _, held in done for _, kept in held)

    def archive_actions(self, actions: Sequence[VideoAction]) -> int:
        groups: dict[str, list[VideoAction]] = defaultdict(list)
        for a in actions:
            groups[self._folder(a)].append(a)
        for folder, group in groups.items():
            name = f"import-{uuid.uuid4().hex}.parquet"
            self._write(f"{self.actions_dir}/{folder}/{name}", actions_table(group, None))
        return len(actions)

    @staticmethod
    def _folder(action: VideoAction) -> str:
        ts = action.timestamp.astimezone(UTC)
        return f"dt={ts:%Y-%m-%d}/hour={ts:%H}"

    def _write(self, path: str, table: pa.Table) -> None:
        # Encoded in memory first, so a failure while encoding never leaves an object behind.
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        data = sink.getvalue()
        if self._put is not None:
            self._put(path, data.to_pybytes())
            return
        if not self._local:
            with self.filesystem.open_output_stream(path) as out:
                out.write(data)
            return
        folder, name = path.rsplit("/", 1)
        self.filesystem.create_dir(folder, recursive=True)
        tmp = f"{folder}/.{name}.tmp"  # a leading dot hides it from readers
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def _dataset(self) -> ds.Dataset:
        paths = [path for path, _ in self._files()]
        return ds.dataset(
            paths, filesystem=self.filesystem, format="parquet", schema=ACTIONS_SCHEMA
        )

    def read_actions(self) -> list[VideoAction]:
        table = self._dataset().to_table(
            columns=["id", "user_id", "video_id", "action_type", "timestamp", "watch_ms"]
        )
        return [
            VideoAction(
                id=r["id"],
                user_id=r["user_id"],
                video_id=r["video_id"],
                action_type=ActionType(r["action_type"]),
                timestamp=r["timestamp"],
                watch_ms=r["watch_ms"],
            )
            for r in table.to_pylist()
        ]

    def count_actions(self) -> int:
        return int(self._dataset().count_rows())

    # -- feature tables ------------------------------------------------------------------

    def _feature_files(self, table: str) -> list[str]:
        folder = f"{self.root}/features/{table}"
        selector = pafs.FileSelector(folder, recursive=False, allow_not_found=True)
        return sorted(
            info.path
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File and _RANGES_FILE.match(info.path.rsplit("/", 1)[1])
        )

    def feature_offsets(self, table: str) -> dict[int, int]:
        return _last_offsets(p.rsplit("/", 1)[1] for p in self._feature_files(table))

    def write_features(
        self, table: str, partition: int, first: int, last: int, rows: Sequence[dict[str, object]]
    ) -> bool:
        with self._lock:
            if last <= self.feature_offsets(table).get(partition, -1):
                return False
            if rows:
                name = f"p{partition:03d}-{first:012d}-{last:012d}.parquet"
                self._write(
                    f"{self.root}/features/{table}/{name}", pa.Table.from_pylist(list(rows))
                )
            return True

    def uncounted(self, records: Sequence[LakeRecord]) -> list[LakeRecord]:
        """The records whose event ids the feature tables have not counted, first copies only
        (in offset order); judged by the ledger of the id's partition and dt/hour folder."""
        with self._lock:
            groups: dict[tuple[str, int], list[LakeRecord]] = defaultdict(list)
            for r in records:
                groups[(self._folder(r.action), r.partition)].append(r)
            fresh: list[LakeRecord] = []
            listings: dict[str, list[tuple[str, int, int, int]]] = {}
            for (folder, partition), group in groups.items():
                where = f"{self.counted_dir}/{folder}"
                if where not in listings:
                    listings[where] = self._listed(where)
                paths = [path for path, p, _, _ in listings[where] if p == partition]
                known = self._counted.of(folder, partition, paths)
                group.sort(key=lambda r: r.offset)
                fresh += [group[i] for i in _first_copies([r.action.id for r in group], known)]
            return sorted(fresh, key=lambda r: (r.partition, r.offset))

    def mark_counted(self, records: Sequence[LakeRecord]) -> None:
        """Add these records' event ids to the ledger (after their features are written)."""
        with self._lock:
            groups: dict[tuple[str, int], list[LakeRecord]] = defaultdict(list)
            for r in records:
                groups[(self._folder(r.action), r.partition)].append(r)
            for (folder, partition), group in sorted(groups.items()):
                first = min(r.offset for r in group)
                last = max(r.offset for r in group)
                name = f"p{partition:03d}-{first:012d}-{last:012d}.parquet"
                path = f"{self.counted_dir}/{folder}/{name}"
                ids = [r.action.id for r in group]
                self._write(path, pa.table({"id": ids, "bus_offset": [r.offset for r in group]}))
                self._counted.add(folder, partition, path, ids)

    def read_features(self, table: str) -> list[dict[str, object]]:
        paths = self._feature_files(table)
        if not paths:
            return []
        rows: list[dict[str, object]] = (
            ds.dataset(paths, filesystem=self.filesystem, format="parquet").to_table().to_pylist()
        )
        return rows


def _first_copies(ids: Sequence[str], known: set[str]) -> list[int]:
    """The positions of the ids (given in offset order) neither known nor seen earlier."""
    if known.isdisjoint(ids) and len(set(ids)) == len(ids):
        return list(range(len(ids)))  # the usual batch: all new, each once
    fresh: list[int] = []
    seen: set[str] = set()
    for i, event_id in enumerate(ids):
        if event_id not in known and event_id not in seen:
            seen.add(event_id)
            fresh.append(i)
    return fresh


def _last_offsets(names: Iterable[str]) -> dict[int, int]:
    """The highest offset written per bus partition, from the ranges in the file names."""
    last: dict[int, int] = {}
    for name in names:
        for p, _, end in _ranges(name):
            last[p] = max(last.get(p, -1), end)
    return last
