"""Cache adapters. `open_cache(url)` picks one by URL scheme."""

from __future__ import annotations

from recomind.adapters.registry import SchemeRegistry
from recomind.domain.clock import Clock
from recomind.domain.ports import Cache

CACHES: SchemeRegistry[Cache] = SchemeRegistry("cache")


@CACHES.register("memory")
def _open_memory(url: str, clock: Clock | None = None) -> Cache:
    from recomind.adapters.cache.memory import MemoryCache

    return MemoryCache.from_url(url, clock)


@CACHES.register("redis", "rediss")
def _open_redis(url: str, clock: Clock | None = None) -> Cache:
    # Redis keeps TTLs on the server's own clock; a test clock cannot move them.
    from recomind.adapters.cache.redis_cache import RedisCache

    return RedisCache.from_url(url)


def open_cache(url: str, clock: Clock | None = None) -> Cache:
    """`clock` drives the TTLs of the in-process cache (`memory://`) only."""
    return CACHES.open(url, clock=clock)
