"""An in-process LRU cache with per-key TTLs: the embedded default (`memory://?max_entries=N`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qs, urlsplit

from recomind.domain.clock import Clock, SystemClock


class MemoryCache:
    """Thread-safe; expired entries are dropped when read, the least recent when full.

    TTLs run on `clock` (the system's monotonic clock unless a test passes its own).
    """

    def __init__(self, max_entries: int = 100_000, clock: Clock | None = None) -> None:
        self.max_entries = max_entries
        self.clock = clock or SystemClock()
        self._items: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, clock: Clock | None = None) -> MemoryCache:
        query = parse_qs(urlsplit(url).query)
        return cls(max_entries=int(query.get("max_entries", ["100000"])[0]), clock=clock)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._get(key, self.clock.monotonic())

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        with self._lock:
            now = self.clock.monotonic()
            return [self._get(key, now) for key in keys]

    def _get(self, key: str, now: float) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        value, expires = item
        if expires <= now:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        with self._lock:
            self._items[key] = (value, self.clock.monotonic() + ttl_seconds)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._items.pop(key, None)

    def incr(self, amounts: Mapping[str, int], ttl_seconds: float) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            now = self.clock.monotonic()
            for key, amount in amounts.items():
                item = self._items.get(key)
                count = int(item[0]) if item is not None and item[1] > now else 0
                expires = item[1] if item is not None and item[1] > now else now + ttl_seconds
                self._items[key] = (str(count + amount).encode(), expires)
                counts[key] = count + amount
        return counts

    def append(self, values: Mapping[str, bytes], max_bytes: int, ttl_seconds: float) -> None:
        with self._lock:
            now = self.clock.monotonic()
            for key, value in values.items():
                old = self._get(key, now) or b""
                self._items[key] = ((old + value)[-max_bytes:], now + ttl_seconds)
                self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def get_quick(self, key: str) -> bytes | None:
        return self.get(key)  # in-process: nothing to wait for

    def near_reads(self) -> Mapping[str, int]:
        return {}  # the cache is in this process already

    def ping(self) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            self._items.clear()
