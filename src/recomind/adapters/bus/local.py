"""A durable, partitioned event log in one SQLite file: the embedded stand-in for Kafka.

`local:///path/events.db`. Messages are partitioned by key (stable hash), each
gets a monotonically increasing offset, and every consumer group keeps its own
committed offset per partition, so a restarted consumer resumes after the last
record it committed. Appends are fsynced (synchronous=FULL) before `publish`
returns, which is what lets the API answer 202. One consumer per group at a time.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from recomind.adapters.sqlite_wal import BUSY_SECONDS, to_wal
from recomind.domain.ports import BusRecord, latest_offsets

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_log_topic_partition ON log (topic, partition, seq);
CREATE TABLE IF NOT EXISTS committed (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
);
"""


def partition_for(key: str, partitions: int) -> int:
    """Stable across processes and restarts (Python's hash() is salted per process)."""
    return zlib.crc32(key.encode()) % partitions


def _path_of(url: str) -> Path:
    parts = urlsplit(url)
    return Path(parts.netloc + parts.path)


class LocalLog:
    """The EventBus port on a SQLite file."""

    def __init__(self, url: str, partitions: int = 6) -> None:
        self.path = _path_of(url)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partitions = partitions
        self._local = threading.local()
        self._appended = threading.Condition()
        with self._conn() as conn:
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)
            to_wal(conn)
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def publish(self, topic: str, messages: Sequence[tuple[str, bytes]]) -> None:
        rows = [(topic, partition_for(k, self.partitions), k, v) for k, v in messages]
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO log (topic, partition, key, value) VALUES (?, ?, ?, ?)", rows
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        with self._appended:
            self._appended.notify_all()

    def subscribe(self, group: str, topic: str) -> LocalConsumer:
        return LocalConsumer(self, group, topic)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        rows = self._conn().execute(
            "SELECT partition, seq FROM committed WHERE grp = ? AND topic = ?", (group, topic)
        )
        return dict(rows.fetchall())

    def lag(self, group: str, topic: str) -> int:
        done = self.committed(group, topic)
        total = 0
        for p in range(self.partitions):
            row = (
                self._conn()
                .execute(
                    "SELECT COUNT(*) FROM log WHERE topic = ? AND partition = ? AND seq > ?",
                    (topic, p, done.get(p, 0)),
                )
                .fetchone()
            )
            total += int(row[0])
        return total

    def topics(self) -> list[str]:
        rows = self._conn().execute("SELECT DISTINCT topic FROM log ORDER BY topic")
        return [str(r[0]) for r in rows.fetchall()]

    def discard(self, topic: str, upto: dict[int, int]) -> None:
        """Delete a topic's records at or below these offsets, per partition (retention)."""
        self._conn().executemany(
            "DELETE FROM log WHERE topic = ? AND partition = ? AND seq <= ?",
            [(topic, p, seq) for p, seq in upto.items()],
        )

    def wait_for_append(self, timeout: float) -> None:
        with self._appended:
            self._appended.wait(timeout)

    def spooled(self) -> int:
        return 0

    def ping(self) -> None:
        self._conn().execute("SELECT 1")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class LocalConsumer:
    """Reads every partition of a topic for one group, from its committed offsets."""

    def __init__(self, log: LocalLog, group: str, topic: str) -> None:
        self.log = log
        self.group = group
        self.topic = topic
        committed = log.committed(group, topic)
        self._position = {p: committed.get(p, 0) for p in range(log.partitions)}
        self._start = 0

    def poll(self, max_records: int, timeout_seconds: float) -> list[BusRecord]:
        deadline = time.monotonic() + timeout_seconds
        while True:
            records = self._read(max_records)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return records
            # Woken at once by appends in this process; other processes are seen within 50 ms.
            self.log.wait_for_append(min(remaining, 0.05))

    def _read(self, max_records: int) -> list[BusRecord]:
        records: list[BusRecord] = []
        per_partition = max(1, max_records // self.log.partitions)
        conn = self.log._conn()
        # Never more than max_records; start one partition later each time so none starves.
        order = sorted(self._position)
        self._start = (self._start + 1) % len(order)
        for p in order[self._start :] + order[: self._start]:
            room = max_records - len(records)
            if room <= 0:
                break
            rows = conn.execute(
                "SELECT seq, key, value FROM log WHERE topic = ? AND partition = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (self.topic, p, self._position[p], min(per_partition, room)),
            ).fetchall()
            for offset, key, value in rows:
                records.append(BusRecord(self.topic, p, offset, key, bytes(value)))
            if rows:
                self._position[p] = rows[-1][0]
        return records

    def commit(self, records: Sequence[BusRecord]) -> None:
        latest = latest_offsets(records)
        if not latest:
            return
        self.log._conn().executemany(
            "INSERT INTO committed (grp, topic, partition, seq) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (grp, topic, partition) DO UPDATE SET seq = excluded.seq",
            [(self.group, self.topic, p, o) for (_, p), o in latest.items()],
        )

    def close(self) -> None:
        return None
