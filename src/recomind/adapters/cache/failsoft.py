"""A cache that never fails its caller: errors become misses, and are counted.

The cache only speeds things up. When Redis is unreachable, a read is a miss (the feed
falls back to the store), writes and deletes are skipped, and a counter reads as 0.
`failures` tells the operator how often that happened. After a quick read (`get_quick`, for
callers on an event loop) fails, quick reads are misses for `QUICK_PAUSE_SECONDS` without
asking the server: those callers then take their slower path (a worker thread), which
still tries the cache with the normal timeouts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from recomind.domain.ports import Cache

log = logging.getLogger(__name__)
_LOG_EVERY_SECONDS = 10.0
QUICK_PAUSE_SECONDS = 5.0


class FailSoftCache:
    def __init__(self, inner: Cache) -> None:
        self.inner = inner
        self.failures = 0
        self._last_logged = 0.0
        self._quick_paused_until = 0.0

    def _failed(self, op: str, exc: Exception) -> None:
        self.failures += 1
        now = time.monotonic()
        if now - self._last_logged >= _LOG_EVERY_SECONDS:
            self._last_logged = now
            log.warning("cache %s failed (%s); serving without the cache", op, exc)

    def get(self, key: str) -> bytes | None:
        try:
            return self.inner.get(key)
        except Exception as exc:
            self._failed("get", exc)
            return None

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        try:
            return self.inner.get_many(keys)
        except Exception as exc:
            self._failed("get_many", exc)
            return [None] * len(keys)

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        try:
            self.inner.set(key, value, ttl_seconds)
        except Exception as exc:
            self._failed("set", exc)

    def delete(self, *keys: str) -> None:
        try:
            self.inner.delete(*keys)
        except Exception as exc:
            self._failed("delete", exc)

    def incr(self, amounts: Mapping[str, int], ttl_seconds: float) -> dict[str, int]:
        try:
            return self.inner.incr(amounts, ttl_seconds)
        except Exception as exc:
            self._failed("incr", exc)
            return dict.fromkeys(amounts, 0)

    def append(self, values: Mapping[str, bytes], max_bytes: int, ttl_seconds: float) -> None:
        try:
            self.inner.append(values, max_bytes, ttl_seconds)
        except Exception as exc:
            self._failed("append", exc)

    def get_quick(self, key: str) -> bytes | None:
        """A miss while the last quick read failed less than `QUICK_PAUSE_SECONDS` ago:
        a caller on an event loop waits on a failing server once per pause at most."""
        if time.monotonic() < self._quick_paused_until:
            return None
        try:
            return self.inner.get_quick(key)
        except Exception as exc:
            self._quick_paused_until = time.monotonic() + QUICK_PAUSE_SECONDS
            self._failed("get_quick", exc)
            return None

    def near_reads(self) -> Mapping[str, int]:
        return self.inner.near_reads()

    def ping(self) -> None:
        self.inner.ping()  # readiness wants the truth

    def close(self) -> None:
        self.inner.close()
