"""A failing cache degrades to misses and skipped writes, never to an error for the caller."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from recomind.adapters.cache import failsoft
from recomind.adapters.cache.failsoft import QUICK_PAUSE_SECONDS, FailSoftCache
from recomind.adapters.cache.memory import MemoryCache


class DownCache(MemoryCache):
    """A cache whose server is unreachable."""

    def get(self, key: str) -> bytes | None:
        raise ConnectionError("connection refused")

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        raise ConnectionError("connection refused")

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        raise ConnectionError("connection refused")

    def delete(self, *keys: str) -> None:
        raise ConnectionError("connection refused")

    def incr(self, amounts: Mapping[str, int], ttl_seconds: float) -> dict[str, int]:
        raise ConnectionError("connection refused")

    def append(self, values: Mapping[str, bytes], max_bytes: int, ttl_seconds: float) -> None:
        raise ConnectionError("connection refused")

    def get_quick(self, key: str) -> bytes | None:
        self.quick_reads = getattr(self, "quick_reads", 0) + 1
        raise ConnectionError("connection refused")

    def ping(self) -> None:
        raise ConnectionError("connection refused")


def test_a_down_cache_reads_as_misses_and_counts_failures() -> None:
    cache = FailSoftCache(DownCache())
    assert cache.get("k") is None
    assert cache.get_many(["k", "j"]) == [None, None]
    cache.set("k", b"v", 10)
    cache.delete("k")
    assert cache.incr({"c": 1, "d": 2}, 10) == {"c": 0, "d": 0}
    cache.append({"k": b"v"}, 10, 10)
    assert cache.get_quick("k") is None
    assert cache.failures == 7
    with pytest.raises(ConnectionError):  # readiness must see the truth
        cache.ping()


def test_a_working_cache_is_passed_through() -> None:
    cache = FailSoftCache(MemoryCache())
    cache.set("k", b"v", 10)
    assert cache.get("k") == b"v"
    assert cache.get_many(["k", "missing"]) == [b"v", None]
    assert cache.incr({"c": 2}, 10) == {"c": 2}
    cache.append({"k": b"w"}, 10, 10)
    assert cache.get_quick("k") == b"vw"
    assert cache.failures == 0


def test_after_a_failed_quick_read_quick_reads_leave_the_server_alone_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    down = DownCache()
    cache = FailSoftCache(down)
    now = [1000.0]
    monkeypatch.setattr(failsoft.time, "monotonic", lambda: now[0])
    assert cache.get_quick("k") is None and down.quick_reads == 1
    now[0] += QUICK_PAUSE_SECONDS - 0.1
    assert cache.get_quick("k") is None and down.quick_reads == 1  # not asked: a miss at once
    assert cache.get("k") is None  # the normal reads still try
    now[0] += 0.2
    assert cache.get_quick("k") is None and down.quick_reads == 2
    assert cache.failures == 3
