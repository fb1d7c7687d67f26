"""Cache adapters. `open_cache(url)` picks one by URL scheme."""

from __future__ import annotations

from recomind.adapters.registry import SchemeRegistry
from recomind.domain.ports import Cache

CACHES: SchemeRegistry[Cache] = SchemeRegistry("cache")


@CACHES.register("memory")
def _open_memory(url: str) -> Cache:
    from recomind.adapters.cache.memory import MemoryCache

    return MemoryCache.from_url(url)


@CACHES.register("redis", "rediss")
def _open_redis(url: str) -> Cache:
    from recomind.adapters.cache.redis_cache import RedisCache

    return RedisCache.from_url(url)


def open_cache(url: str) -> Cache:
    return CACHES.open(url)
