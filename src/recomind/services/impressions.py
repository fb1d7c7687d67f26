"""Impressions: which videos a viewer was served lately and how often, and demotion.

A viewer's impressions are packed records (video id hash, served at, times served) under
`impressions:{user_id}`, appended to on every page and never parsed then. Reading them (when
a list is rebuilt) groups the records by video. The cache keeps the last `MAX_IMPRESSIONS`
records of a viewer (appends trim the oldest) for `impressions_seconds` after the last one.
Video ids are hashed to 64 bits (BLAKE2b); a collision would demote an unlucky video, never
hide one.

`ImpressionLog` writes them behind the answer: a page adds its records to a buffer in the
process, and a thread appends every viewer's buffered records to the cache in one round trip
at most `flush_seconds` (50 ms by default) later. A list rebuilt in the same process sees
the buffered records too; one rebuilt by another process (a `recomind worker`) sees them
once flushed, so a page served within the last `flush_seconds` may not be demoted yet. Records
still buffered when the process is killed (not stopped) are lost, as are those of a flush
that fails while the cache is down (counted in the cache's failures): an impression only
demotes, so losing one can at worst show a video again.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
import time
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from recomind.domain import cache_keys
from recomind.domain.ports import Cache

log = logging.getLogger(__name__)

RECORD = np.dtype([("hash", "<u8"), ("at", "<f8"), ("times", "<u4")])
_PACK = struct.Struct("<QdI")  # the same layout, for appending without numpy
MAX_IMPRESSIONS = 1000  # records kept per viewer (the most recent)
FLUSH_SECONDS = 0.05


@lru_cache(maxsize=65_536)  # the hot part of the catalog
def video_hash(video_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(video_id.encode(), digest_size=8).digest(), "little")


SHORT_MASK = 0xFFFFFFFF


def short_hash(video_id: str) -> int:
    """32 bits of `video_hash`: what a feed cursor keeps per served video."""
    return video_hash(video_id) & SHORT_MASK


_SERVED_ONCE = struct.Struct("<dI")  # a record's tail: served at, times


def records(video_ids: Sequence[str], now: float, hashes: Sequence[int] | None = None) -> bytes:
    """One record per distinct video: served once, now. `hashes` are the ids' `video_hash`
    when the caller has them already (a cached list's are made once, `PackedList.hashes`)."""
    tail = _SERVED_ONCE.pack(now, 1)
    if hashes is None:
        hashes = [video_hash(v) for v in video_ids]
    return b"".join(h.to_bytes(8, "little") + tail for h in dict.fromkeys(hashes))


class Impressions:
    def __init__(self, raw: bytes = b"") -> None:
        self.raw = raw

    @classmethod
    def from_bytes(cls, raw: bytes) -> Impressions:
        """Records as `to_bytes` wrote them; ValueError when the bytes cannot be that."""
        if len(raw) % RECORD.itemsize:
            raise ValueError("not a whole number of impression records")
        return cls(bytes(raw))

    def to_bytes(self) -> bytes:
        return self.raw

    def __len__(self) -> int:
        return len(self.raw) // RECORD.itemsize

    def record(self, video_ids: Sequence[str], now: float) -> None:
        """These videos were served now (once each)."""
        self.raw += records(video_ids, now)

    def times_served(
        self, video_ids: Sequence[str], now: float, ttl_seconds: float
    ) -> dict[str, int]:
        """How often each of these videos was served within the last `ttl_seconds` (each
        serving counts while its own record is that young, whatever the key's TTL says)."""
        if not self.raw or not video_ids:
            return {}
        wanted = {video_hash(v): v for v in video_ids}
        records = np.frombuffer(self.raw, dtype=RECORD)
        keys = np.fromiter(wanted, dtype=np.uint64, count=len(wanted))
        records = records[np.isin(records["hash"], keys)]
        live = self._merged(records[now - records["at"] <= ttl_seconds])
        return {
            wanted[h]: int(n)
            for h, n in zip(live["hash"].tolist(), live["times"].tolist(), strict=True)
        }

    @staticmethod
    def _merged(records: np.ndarray) -> np.ndarray:
        """One record per video: its latest serving and how many there were."""
        hashes, inverse = np.unique(records["hash"], return_inverse=True)
        merged = np.zeros(len(hashes), RECORD)
        merged["hash"] = hashes
        merged["at"] = -np.inf
        np.maximum.at(merged["at"], inverse, records["at"])
        merged["times"] = np.bincount(inverse, weights=records["times"], minlength=len(hashes))
        return merged


class ImpressionLog:
    """Impressions written behind the answer (see the module docstring)."""

    def __init__(
        self,
        cache: Cache,
        ttl_seconds: float,
        flush_seconds: float = FLUSH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self.ttl_seconds = ttl_seconds
        self.flush_seconds = flush_seconds
        self.clock = clock
        self.reads: dict[str, int] = {"hit": 0, "miss": 0}  # of `impressions:{user_id}`
        self.flushes = 0
        self._pending: dict[str, bytearray] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._flushing = threading.Lock()  # one flush at a time, in record order
        self._thread: threading.Thread | None = None
        self._closed = False

    def record(
        self,
        user_id: str,
        video_ids: Sequence[str],
        now: float,
        hashes: Sequence[int] | None = None,
    ) -> None:
        """These videos were served to the viewer now; written to the cache shortly.
        `hashes`: their `video_hash`, when the caller has them (see `records`)."""
        if not video_ids:
            return
        packed = records(video_ids, now, hashes)
        with self._lock:
            buffered = self._pending.get(user_id)
            if buffered is None:
                self._pending[user_id] = bytearray(packed)
            else:
                buffered += packed
            if self._thread is None and not self._closed:  # made on first use, not at start-up
                self._thread = threading.Thread(target=self._run, name="impressions", daemon=True)
                self._thread.start()
            self._wake.notify()

    def flush(self) -> int:
        """Write every buffered record now; returns how many viewers had some."""
        with self._flushing:
            with self._lock:
                pending, self._pending = self._pending, {}
            if not pending:
                return 0
            size = MAX_IMPRESSIONS * RECORD.itemsize
            keyed = {cache_keys.impressions(u): bytes(b[-size:]) for u, b in pending.items()}
            self.cache.append(keyed, size, self.ttl_seconds)
            self.flushes += 1
            return len(pending)

    def times_served(
        self, user_id: str, video_ids: Sequence[str], now: float | None = None
    ) -> dict[str, int]:
        """How often the viewer was served these videos within the TTL (buffered ones too).

        Read while no flush is writing: a flush takes the buffer before its write lands, and
        a read between the two would see those records in neither place."""
        with self._flushing:
            raw = self.cache.get(cache_keys.impressions(user_id))
            with self._lock:
                buffered = bytes(self._pending.get(user_id, b""))
        self.reads["miss" if raw is None else "hit"] += 1
        raw = raw or b""
        raw = raw[len(raw) % RECORD.itemsize :] + buffered  # whole records, counted from the end
        now = self.clock() if now is None else now
        return Impressions(raw).times_served(video_ids, now, self.ttl_seconds)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
            time.sleep(self.flush_seconds)  # let other pages' records join this write
            try:
                self.flush()
            except Exception:  # the cache is fail-soft; anything else must not end the thread
                log.exception("writing impressions failed")

    def close(self) -> None:
        """Stop the thread and write what is buffered."""
        with self._lock:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(5)
        self.flush()


def demote(video_ids: list[str], times_served: dict[str, int], places: int) -> list[int]:
    """The order (indices into `video_ids`) with each served video `places` further down per
    serving (it lands behind the video that was `places` below it). With a large `places`,
    every served video goes behind every unseen one, the least served first."""
    if places <= 0 or not times_served:
        return list(range(len(video_ids)))

    def key(i: int) -> tuple[int, int, int]:
        times = times_served.get(video_ids[i], 0)
        return (i + places * times, times, i)

    return sorted(range(len(video_ids)), key=key)
