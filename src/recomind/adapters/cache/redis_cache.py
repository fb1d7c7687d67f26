"""The cache on Redis (`redis://host:port/db`, `rediss://…` for TLS): shared by every process.

Timeouts are short (connect 1 s, each command 2 s) and nothing is retried, so a
Redis that is down or unreachable fails fast with an exception and the caller
decides how to degrade. Options in the URL's query (`?socket_timeout=5`) win
over these defaults; `?near_cache=false` turns off `get_quick`'s near cache (below).

`get_quick` reads through a second client whose timeouts are short (100 ms to connect or
for a reply), for callers on an event loop: the API answers cached pages on its loop with
the blocking client, as fast as a bare endpoint, and a Redis that does not answer holds the
loop for 100 ms at most (the fail-soft wrapper then leaves it alone for a while). On this
project's machine the blocking client costs less per read than redis.asyncio (ADR 0004).
Those reads keep what they read in a near cache that Redis itself invalidates
(`QuickReads`).
"""

from __future__ import annotations

import math
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from recomind.domain.errors import InvalidInput

CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 2.0
QUICK_TIMEOUT_SECONDS = 0.1  # `get_quick`: connect and reply
NEAR_ENTRIES = 4096  # `get_quick`'s near cache: values kept at most,
NEAR_BYTES = 64 << 20  # bytes in all,
NEAR_SECONDS = 1.0  # and how long each answers without asking Redis

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
INCR_KEYS_PER_CALL = 1000  # so does a transaction


def _milliseconds(ttl_seconds: float) -> int:
    # PX needs a positive integer; round up so a short TTL never becomes "no expiry".
    return max(1, math.ceil(ttl_seconds * 1000))


class RedisCache:
    """The Cache port on one Redis client (its connection pool is thread-safe)."""

    def __init__(
        self, client: redis.Redis, quick: redis.Redis | None = None, near_cache: bool = True
    ) -> None:
        self._client = client
        self._quick = QuickReads(
            quick if quick is not None else client,
            near_entries=NEAR_ENTRIES if near_cache else 0,
        )
        self._append = client.register_script(_APPEND_CAPPED)

    @classmethod
    def from_url(cls, url: str) -> RedisCache:
        """`?near_cache=false` in the URL turns `get_quick`'s near cache off."""
        url, near_cache = _near_cache_option(url)
        client = redis.Redis.from_url(
            url, **_options(CONNECT_TIMEOUT_SECONDS, COMMAND_TIMEOUT_SECONDS)
        )
        quick = redis.Redis.from_url(url, **_options(QUICK_TIMEOUT_SECONDS, QUICK_TIMEOUT_SECONDS))
        return cls(client, quick, near_cache)

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

    def incr(self, amounts: Mapping[str, int], ttl_seconds: float) -> dict[str, int]:
        # MULTI/EXEC per INCR_KEYS_PER_CALL keys: each counter is created at 0 with its TTL
        # only if it is missing, then added to. INCRBY keeps an existing TTL, so the window set
        # at creation is never extended. One round trip for a batch's viewers: 250 counters
        # took 3.8 ms (median of 7), against 39-49 ms in a round trip each.
        ttl = _milliseconds(ttl_seconds)
        items = list(amounts.items())
        counts: dict[str, int] = {}
        for start in range(0, len(items), INCR_KEYS_PER_CALL):
            chunk = items[start : start + INCR_KEYS_PER_CALL]
            with self._client.pipeline(transaction=True) as pipe:
                for key, amount in chunk:
                    pipe.set(key, 0, px=ttl, nx=True)
                    pipe.incrby(key, amount)
                replies = pipe.execute()
            counts.update((key, int(n)) for (key, _), n in zip(chunk, replies[1::2], strict=True))
        return counts

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

    def near_reads(self) -> Mapping[str, int]:
        quick = self._quick
        if quick.near_entries <= 0:
            return {}
        return {"hit": quick.near_hits, "miss": quick.near_misses}

    def ping(self) -> None:
        self._client.ping()

    def close(self) -> None:
        self._client.close()
        self._quick.close()


class QuickReads:
    """GETs on one kept connection, written and read by hand, with a near cache.

    A GET through `redis.Redis` checks a connection out of the pool and back in (a lock, the
    pool's fork check and a poll of the socket each way) and parses the reply generically.
    Here the feed's event loop, the one caller, keeps one connection: the command is written
    by hand and the reply read straight from the socket, whose timeouts are the kernel's
    (`SO_RCVTIMEO`), so a read makes no extra system call to wait.

    **Near cache.** The connection speaks RESP3 with `CLIENT TRACKING ON`: Redis remembers
    the keys it read, and when one of them changes, is deleted or expires, it pushes an
    invalidation on this same connection (server-assisted client-side caching). So a value
    read here is kept (`near_entries` values, `near_bytes` in all) and answers the next reads
    of its key without asking Redis, until its invalidation arrives or `near_seconds` pass;
    every read first takes whatever invalidations have arrived (one non-blocking `recv`). A
    write is seen here as soon as its invalidation arrives, which Redis sends as it applies
    the write; a connection that fails loses its near cache with it (it may have missed
    invalidations). A server that refuses RESP3 or tracking (Redis before 6, some proxies),
    or one reached over TLS (`rediss://`), is read without a near cache; `near_entries=0`
    turns it off.

    A second thread arriving while the loop reads (or a forked child) is served by the pool
    as before. A connection that failed is dropped; when the kept one was closed by the
    server (a restart, an idle timeout) the read is tried once more on a new connection.
    """

    def __init__(
        self,
        client: redis.Redis,
        near_entries: int = NEAR_ENTRIES,
        near_bytes: int = NEAR_BYTES,
        near_seconds: float = NEAR_SECONDS,
    ) -> None:
        self._client = client
        self._wire: _Wire | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self.near_entries = near_entries
        self.near_bytes = near_bytes
        self.near_seconds = near_seconds
        self._near: dict[str, tuple[bytes, float]] = {}  # key -> (value, kept until)
        self._near_size = 0
        self.near_hits = 0
        self.near_misses = 0

    def get(self, key: str) -> bytes | None:
        if self._pid != os.getpid() or not self._lock.acquire(blocking=False):
            return cast("bytes | None", self._client.get(key))
        try:
            kept = self._wire is not None
            try:
                return self._get(key)
            except (OSError, redis.ConnectionError, redis.TimeoutError):
                self._drop()
                if not kept:
                    raise
                return self._get(key)  # the server closed the kept one: once more, anew
        finally:
            self._lock.release()

    def _get(self, key: str) -> bytes | None:
        wire = self._wire
        if wire is None:
            wire = self._wire = _Wire.open(self._client, tracking=self.near_entries > 0)
        elif wire.tracking:
            wire.take_pushes(self._invalidate)
        if wire.tracking:
            near = self._near.get(key)
            if near is not None and near[1] > time.monotonic():
                self.near_hits += 1
                return near[0]
            self.near_misses += 1
        raw = key.encode()
        value = wire.call(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(raw), raw), self._invalidate)
        if value is not None and not isinstance(value, bytes):
            raise redis.ResponseError(f"unexpected reply to GET: {value!r}")
        if wire.tracking and value is not None:
            self._keep(key, value)
        return value

    def _keep(self, key: str, value: bytes) -> None:
        if len(value) > self.near_bytes:
            return
        self._forget(key)
        while self._near and (
            len(self._near) >= self.near_entries or self._near_size + len(value) > self.near_bytes
        ):
            self._forget(next(iter(self._near)))  # the oldest kept
        self._near[key] = (value, time.monotonic() + self.near_seconds)
        self._near_size += len(value)

    def _forget(self, key: str) -> None:
        near = self._near.pop(key, None)
        if near is not None:
            self._near_size -= len(near[0])

    def _invalidate(self, keys: list[bytes] | None) -> None:
        """Redis's invalidation: these keys changed (None: every key, after a flush)."""
        if keys is None:
            self._near.clear()
            self._near_size = 0
            return
        for k in keys:
            self._forget(k.decode())

    def _drop(self) -> None:
        wire, self._wire = self._wire, None
        self._near.clear()  # invalidations may have been missed
        self._near_size = 0
        if wire is not None:
            wire.close()

    def close(self) -> None:
        with self._lock:
            self._drop()
        self._client.close()


class _Wire:
    """One Redis connection's socket, written and read by hand: replies and pushes (RESP2 or
    RESP3). Its timeouts are the socket's own, so reads and writes make no extra system
    call to wait; a timeout or a closed connection raises `redis.ConnectionError`."""

    def __init__(self, connection: redis.Connection, tracking: bool, timeout: float) -> None:
        self.connection = connection
        self.tracking = tracking
        sock = cast("socket.socket", connection._sock)
        sock.settimeout(None)  # blocking, bounded by the kernel's timeouts below
        seconds = int(timeout)
        limit = struct.pack("ll", seconds, int((timeout - seconds) * 1_000_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
        self.sock = sock
        self._buffer = b""
        self._at = 0

    @classmethod
    def open(cls, client: redis.Redis, tracking: bool) -> _Wire:
        pool = client.connection_pool
        timeout = float(pool.connection_kwargs.get("socket_timeout") or QUICK_TIMEOUT_SECONDS)
        if tracking:
            connection = cast("redis.Connection", pool.make_connection())
            connection.protocol = 3
            try:
                connection.connect()
                # TLS: an SSL socket cannot peek without blocking (`take_pushes`), so no near cache
                if not isinstance(connection._sock, ssl.SSLSocket):
                    connection.send_command("CLIENT", "TRACKING", "ON")
                    if connection.read_response() in (b"OK", "OK"):
                        return cls(connection, True, timeout)
            except redis.ResponseError:  # no RESP3 or no tracking here: no near cache
                pass
            connection.disconnect()
        connection = cast("redis.Connection", pool.make_connection())
        connection.connect()
        return cls(connection, False, timeout)

    def call(self, command: bytes, on_push: Callable[[list[bytes] | None], None]) -> Any:
        """Send one command and return its reply, handing pushes met first to `on_push`."""
        self.sock.sendall(command)
        while True:
            value = self._value()
            if isinstance(value, _Push):
                value.handle(on_push)
                continue
            if isinstance(value, redis.ResponseError):
                raise value
            return value

    def take_pushes(self, on_push: Callable[[list[bytes] | None], None]) -> None:
        """Hand every push that has arrived to `on_push`, without waiting for more."""
        while self._receive(wait=False):
            pass
        while self._at < len(self._buffer):  # a push has arrived (its end is on its way)
            value = self._value()
            if not isinstance(value, _Push):
                raise redis.ConnectionError(f"unexpected data between replies: {value!r}")
            value.handle(on_push)

    def close(self) -> None:
        self.connection.disconnect()

    def _receive(self, wait: bool) -> bool:
        try:
            data = (
                self.sock.recv(_RECEIVE) if wait else self.sock.recv(_RECEIVE, socket.MSG_DONTWAIT)
            )
        except BlockingIOError:
            if wait:  # SO_RCVTIMEO ran out
                raise redis.TimeoutError("Timeout reading from Redis") from None
            return False
        except TimeoutError:
            raise redis.TimeoutError("Timeout reading from Redis") from None
        if not data:
            raise redis.ConnectionError("Connection closed by server.")
        rest = self._buffer[self._at :]
        self._buffer, self._at = rest + data if rest else data, 0
        return True

    def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n", self._at)) < 0:
            self._receive(wait=True)
        line = self._buffer[self._at : end]
        self._at = end + 2
        return line

    def _value(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self._buffer) - self._at < size + 2:
                self._receive(wait=True)
            value = self._buffer[self._at : self._at + size]
            self._at += size + 2
            return value
        if kind == b"_":
            return None
        if kind in (b"*", b">"):
            size = int(rest)
            items = None if size < 0 else [self._value() for _ in range(size)]
            return _Push(items) if kind == b">" else items
        if kind == b"+":
            return rest
        if kind == b"-":
            return redis.ResponseError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        raise redis.ConnectionError(f"unexpected reply from Redis: {line[:40]!r}")


_RECEIVE = 1 << 16  # bytes a recv may take at once (a larger buffer is an mmap per call)


class _Push:
    """A RESP3 push; tracking sends `invalidate` with the changed keys (null: all of them)."""

    def __init__(self, items: list[Any] | None) -> None:
        self.items = items or []

    def handle(self, on_push: Callable[[list[bytes] | None], None]) -> None:
        if len(self.items) == 2 and self.items[0] == b"invalidate":
            on_push(self.items[1])


def _near_cache_option(url: str) -> tuple[str, bool]:
    """The URL without RecoMind's own `near_cache` option, and that option (default on)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = [value for name, value in query if name == "near_cache"]
    if not given:
        return url, True
    if given[-1].lower() not in _SWITCH:
        raise InvalidInput(f"near_cache must be true or false, got {given[-1]!r}")
    rest = urlencode([(name, value) for name, value in query if name != "near_cache"])
    return urlunsplit(parts._replace(query=rest)), _SWITCH[given[-1].lower()]


_SWITCH = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _options(connect: float, command: float) -> dict[str, Any]:
    return {
        "socket_connect_timeout": connect,
        "socket_timeout": command,
        "retry": Retry(NoBackoff(), 0),
    }
