"""The cache on Redis (`redis://host:port/db`, `rediss://…` for TLS): shared by every process.

Timeouts are short (connect 1 s, each command 2 s) and nothing is retried, so a
Redis that is down or unreachable fails fast with an exception and the caller
decides how to degrade. Options in the URL's query (`?socket_timeout=5`) win
over these defaults.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 2.0


def _milliseconds(ttl_seconds: float) -> int:
    # PX needs a positive integer; round up so a short TTL never becomes "no expiry".
    return max(1, math.ceil(ttl_seconds * 1000))


class RedisCache:
    """The Cache port on one Redis client (its connection pool is thread-safe)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    @classmethod
    def from_url(cls, url: str) -> RedisCache:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=COMMAND_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client)

    def get(self, key: str) -> bytes | None:
        # redis-py types replies as "maybe awaitable"; the sync client returns bytes or None.
        return cast("bytes | None", self._client.get(key))

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:  # MGET with no key is an error in Redis
            return []
        return cast("list[bytes | None]", self._client.mget(keys))

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        self._client.set(key, value, px=_milliseconds(ttl_seconds))

    def delete(self, *keys: str) -> None:
        if keys:  # DEL with no key is an error in Redis
            self._client.delete(*keys)

    def incr(self, key: str, ttl_seconds: float, amount: int = 1) -> int:
        # MULTI/EXEC: create the counter at 0 with its TTL only if it is missing, then add.
        # INCRBY keeps an existing TTL, so the window set at creation is never extended.
        with self._client.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, px=_milliseconds(ttl_seconds), nx=True)
            pipe.incrby(key, amount)
            _, count = pipe.execute()
        return int(count)

    def ping(self) -> None:
        self._client.ping()

    def close(self) -> None:
        self._client.close()
