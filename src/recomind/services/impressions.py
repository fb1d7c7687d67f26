"""Impressions: which videos a viewer was served lately and how often, and demotion.

A viewer's impressions are rewritten on every page they are served, so they are kept as
packed records (video id hash, served at, times served) that a page only appends to: no
parsing, no lookups. Reading them (when a list is rebuilt) groups the records by video;
past `MAX_IMPRESSIONS` records they are compacted the same way, the most recent kept.
Video ids are hashed to 64 bits (BLAKE2b); a collision would demote an unlucky video,
never hide one.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

RECORD = np.dtype([("hash", "<u8"), ("at", "<f8"), ("times", "<u4")])
_PACK = struct.Struct("<QdI")  # the same layout, for appending without numpy
MAX_IMPRESSIONS = 1000  # records kept per viewer, at most…
PRUNED_IMPRESSIONS = 600  # …compacted to at most this many videos when passed


@lru_cache(maxsize=65_536)  # the hot part of the catalog
def video_hash(video_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(video_id.encode(), digest_size=8).digest(), "little")


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
        unique = dict.fromkeys(video_ids)
        self.raw += b"".join(_PACK.pack(video_hash(v), now, 1) for v in unique)

    def prune(self, now: float, ttl_seconds: float) -> None:
        """Past the cap, compact: one record per video, expired and the oldest dropped."""
        if len(self) <= MAX_IMPRESSIONS:
            return
        merged = self._merged(np.frombuffer(self.raw, dtype=RECORD))
        merged = merged[now - merged["at"] <= ttl_seconds]
        merged = merged[np.argsort(-merged["at"], kind="stable")[:PRUNED_IMPRESSIONS]]
        self.raw = merged[::-1].tobytes()  # oldest first, as appended

    def times_served(
        self, video_ids: Sequence[str], now: float, ttl_seconds: float
    ) -> dict[str, int]:
        """How often each of these videos was served, if last served within `ttl_seconds`."""
        if not self.raw or not video_ids:
            return {}
        wanted = {video_hash(v): v for v in video_ids}
        records = np.frombuffer(self.raw, dtype=RECORD)
        keys = np.fromiter(wanted, dtype=np.uint64, count=len(wanted))
        merged = self._merged(records[np.isin(records["hash"], keys)])
        live = merged[now - merged["at"] <= ttl_seconds]
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
