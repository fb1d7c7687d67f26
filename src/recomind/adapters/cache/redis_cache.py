"""The cache on Redis (`redis://host:port/db`, `rediss://…` for TLS): shared by every process.

Timeouts are short (connect 1 s, each command 2 s) and nothing is retried, so a
Redis that is down or unreachable fails fast with an exception and the caller
decides how to degrade. Options in the URL's query (`?socket_timeout=5`) win
over these defaults.

`get_quick` reads through a second client whose timeouts are short (100 ms to connect or
for a reply), for callers on an event loop: the API answers cached pages on its loop with
the blocking client, as fast as a bare endpoint, and a Redis that does not answer holds the
loop for 100 ms at most (the fail-soft wrapper then leaves it alone for a while). On this
project's machine the blocking client costs less per read than redis.asyncio (ADR 0004).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 2.0
QUICK_TIMEOUT_SECONDS = 0.1  # `get_quick`: connect and reply

# For each key: APPEND its value, then keep the tail (GETRANGE + SET, which clears the TTL),
# then the TTL; atomic. One call for every key of a flush (ARGV: cap, TTL, then one value per
# key): a pipeline of one call per key cost the client about 15 us a key to pack and parse.
_APPEND_CAPPED = """
local cap = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local n = redis.call('APPEND', key, ARGV[i + 2])
  if n > cap then
    redis.call('SET', key, redis.call('GETRANGE', key, n - cap, -1))
  end
  redis.call('PEXPIRE', key, ARGV[2])
end
return #KEYS
"""
APPEND_KEYS_PER_CALL = 500  # a script call blocks Redis while it runs: bounded


def _milliseconds(ttl_seconds: float) -> int:
    # PX needs a positive integer; round up so a short TTL never becomes "no expiry".
    return max(1, math.ceil(ttl_seconds * 1000))


class RedisCache:
    """The Cache port on one Redis client (its connection pool is thread-safe)."""

    def __init__(self, client: redis.Redis, quick: redis.Redis | None = None) -> None:
        self._client = client
        self._quick = QuickReads(quick if quick is not None else client)
        self._append = client.register_script(_APPEND_CAPPED)

    @classmethod
    def from_url(cls, url: str) -> RedisCache:
        client = redis.Redis.from_url(
            url, **_options(CONNECT_TIMEOUT_SECONDS, COMMAND_TIMEOUT_SECONDS)
        )
        quick = redis.Redis.from_url(url, **_options(QUICK_TIMEOUT_SECONDS, QUICK_TIMEOUT_SECONDS))
        return cls(client, quick)

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
        items = list(values.items())
        for start in range(0, len(items), APPEND_KEYS_PER_CALL):
            chunk = items[start : start + APPEND_KEYS_PER_CALL]
            self._append(keys=[k for k, _ in chunk], args=[max_bytes, ttl, *(v for _, v in chunk)])

    def get_quick(self, key: str) -> bytes | None:
        return self._quick.get(key)

    def ping(self) -> None:
        self._client.ping()

    def close(self) -> None:
        self._client.close()
        self._quick.close()


class QuickReads:
    """GETs on one kept connection of `client`'s pool, written as RESP by hand.

    A GET through `redis.Redis` checks a connection out of the pool and back in (a lock,
    the pool's fork check and a poll of the socket each way) and packs the command
    generically: about half of a cached page's read in a micro-benchmark on this project's
    machine (16 against 8 us of CPU a read). The feed's event loop is the one caller, so
    one connection serves it; a second thread arriving meanwhile (or a forked child) is
    served by the pool as before. A connection that failed is dropped; when the kept one was
    closed by the server (a restart, an idle timeout) the read is tried once more on a new
    connection, with the client's timeouts, as the pool would.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._connection: redis.Connection | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        if self._pid != os.getpid() or not self._lock.acquire(blocking=False):
            return cast("bytes | None", self._client.get(key))
        try:
            raw = key.encode()
            command = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(raw), raw)
            kept = self._connection is not None
            try:
                return self._send(command)
            except redis.ConnectionError:
                if not kept:
                    raise
                return self._send(command)  # the server closed the kept one: once more, anew
        finally:
            self._lock.release()

    def _send(self, command: bytes) -> bytes | None:
        connection = self._connection
        if connection is None:
            connection = cast("redis.Connection", self._client.connection_pool.make_connection())
            self._connection = connection
        try:
            connection.send_packed_command([command], check_health=False)
            return cast("bytes | None", connection.read_response())
        except BaseException:
            self._connection = None
            connection.disconnect()
            raise

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.disconnect()
                self._connection = None
        self._client.close()


def _options(connect: float, command: float) -> dict[str, Any]:
    return {
        "socket_connect_timeout": connect,
        "socket_timeout": command,
        "retry": Retry(NoBackoff(), 0),
    }
