"""The cache on Redis (`redis://host:port/db`, `rediss://…` for TLS): shared by every process.

Timeouts are short (connect 1 s, each command 2 s) and nothing is retried, so a
Redis that is down or unreachable fails fast with an exception and the caller
decides how to degrade. Options in the URL's query (`?socket_timeout=5`) win
over these defaults.

`get_async` reads through a second client, redis.asyncio's, made on the event loop that
first calls it (with the same URL and timeouts): an API process answers cached pages on
its loop without a thread hop, and a slow Redis keeps only those requests waiting.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 2.0

# APPEND, then keep the tail (GETRANGE + SET, which clears the TTL), then the TTL: atomic.
_APPEND_CAPPED = """
local n = redis.call('APPEND', KEYS[1], ARGV[1])
local cap = tonumber(ARGV[2])
if n > cap then
  redis.call('SET', KEYS[1], redis.call('GETRANGE', KEYS[1], n - cap, -1))
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return n
"""


def _milliseconds(ttl_seconds: float) -> int:
    # PX needs a positive integer; round up so a short TTL never becomes "no expiry".
    return max(1, math.ceil(ttl_seconds * 1000))


class RedisCache:
    """The Cache port on one Redis client (its connection pool is thread-safe)."""

    def __init__(self, client: redis.Redis, url: str | None = None) -> None:
        self._client = client
        self._url = url  # for the asyncio client; None: `get_async` uses the sync client
        self._append = client.register_script(_APPEND_CAPPED)
        self._async: tuple[asyncio.AbstractEventLoop, Any] | None = None

    @classmethod
    def from_url(cls, url: str) -> RedisCache:
        client = redis.Redis.from_url(url, **_options())
        return cls(client, url)

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

    def append(self, values: Mapping[str, bytes], max_bytes: int, ttl_seconds: float) -> None:
        if not values:
            return
        ttl = _milliseconds(ttl_seconds)
        with self._client.pipeline(transaction=False) as pipe:
            for key, value in values.items():
                self._append(keys=[key], args=[value, max_bytes, ttl], client=pipe)
            pipe.execute()

    async def get_async(self, key: str) -> bytes | None:
        if self._url is None:
            return self.get(key)
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            # a client belongs to the loop it was made on; a new loop (tests) gets its own
            self._async = (loop, aioredis.Redis.from_url(self._url, **_options(True)))
        return cast("bytes | None", await self._async[1].get(key))

    async def close_async(self) -> None:
        opened, self._async = self._async, None
        if opened is not None and opened[0] is asyncio.get_running_loop():
            await opened[1].aclose()

    def ping(self) -> None:
        self._client.ping()

    def close(self) -> None:
        self._client.close()


def _options(asynchronous: bool = False) -> dict[str, Any]:
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": COMMAND_TIMEOUT_SECONDS,
        "retry": (AsyncRetry if asynchronous else Retry)(NoBackoff(), 0),
    }
