"""`RedisCache.get_quick` on a real Redis: one kept connection, the same answers as the
pooled client, a kept connection the server closed is replaced within the same read, and
the near cache that Redis invalidates (tracking) never answers with what another client
has changed since."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from unittest.mock import patch

import pytest
import redis

from recomind.adapters.cache.redis_cache import RedisCache, _Wire
from recomind.domain.errors import InvalidInput

URL = os.environ.get("RECOMIND_TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(not URL, reason="RECOMIND_TEST_REDIS_URL is not set")


@pytest.fixture
def cache() -> RedisCache:
    assert URL is not None
    return RedisCache.from_url(URL)


def key(name: str) -> str:
    return f"test-quick:{uuid.uuid4().hex}:{name}"


def test_quick_reads_answer_as_the_pooled_client(cache: RedisCache) -> None:
    keys = [key("plain"), key("é ünïcode"), key("x" * 300), key("empty")]
    values = [b"\x00bytes\r\n\xff", b"caf\xc3\xa9", b"v" * 100_000, b""]
    for k, v in zip(keys, values, strict=True):
        cache.set(k, v, 30)
    for k, v in zip(keys, values, strict=True):
        assert cache.get_quick(k) == v == cache.get(k)
    assert cache.get_quick(key("missing")) is None
    with pytest.raises(redis.ResponseError):  # a list is no string: Redis's error, raised
        cache._client.rpush(keys[0] + ":list", b"a")
        cache.get_quick(keys[0] + ":list")
    assert cache.get_quick(keys[0]) == values[0]  # and the connection still serves
    cache.delete(*keys, keys[0] + ":list")


def kill_quick_connection(cache: RedisCache) -> _Wire:
    """The server closes `get_quick`'s kept connection (as a restart would); returns it."""
    wire = cache._quick._wire
    assert wire is not None
    connection_id = wire.call(b"*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n", lambda keys: None)
    cache._client.client_kill_filter(_id=connection_id)
    return wire


def test_a_connection_the_server_closed_is_replaced_in_the_same_read(cache: RedisCache) -> None:
    k = key("kill")
    cache.set(k, b"still here", 30)
    assert cache.get_quick(k) == b"still here"
    wire = kill_quick_connection(cache)
    assert cache.get_quick(k) == b"still here"  # no error, no miss: a new connection
    assert cache._quick._wire is not None and cache._quick._wire is not wire
    cache.delete(k)


def test_another_thread_reads_through_the_pool_meanwhile(cache: RedisCache) -> None:
    k = key("threads")
    cache.set(k, b"shared", 30)
    quick = cache._quick
    results: list[bytes | None] = []
    with quick._lock:  # the loop's read in progress: another thread must not wait or share
        reader = threading.Thread(target=lambda: results.append(cache.get_quick(k)))
        reader.start()
        reader.join(5)
    assert results == [b"shared"]
    cache.delete(k)


def other_client() -> redis.Redis:
    assert URL is not None
    return redis.Redis.from_url(URL)


def wait_for(read: Callable[[], object], wanted: object) -> object:
    """`read()` until it gives `wanted` (an invalidation is on its way), for at most 2 s."""
    deadline = time.monotonic() + 2
    got = read()
    while got != wanted and time.monotonic() < deadline:
        time.sleep(0.001)
        got = read()
    return got


def test_a_near_cached_value_answers_without_asking_redis(cache: RedisCache) -> None:
    k = key("near")
    cache.set(k, b"v1", 30)
    quick = cache._quick
    assert cache.get_quick(k) == b"v1"
    assert quick._wire is not None and quick._wire.tracking
    hits = quick.near_hits
    with patch.object(quick._wire, "call", side_effect=AssertionError("asked Redis")):
        assert cache.get_quick(k) == b"v1"
    assert quick.near_hits == hits + 1
    cache.delete(k)


@pytest.mark.parametrize("change", ["set", "append", "delete", "expire"])
def test_another_clients_write_reaches_the_next_quick_read(cache: RedisCache, change: str) -> None:
    k = key(change)
    writer = other_client()
    writer.set(k, b"old", px=30_000)
    assert cache.get_quick(k) == b"old"
    assert cache.get_quick(k) == b"old"  # near-cached now
    if change == "set":
        writer.set(k, b"new", px=30_000)
        wanted: bytes | None = b"new"
    elif change == "append":
        writer.append(k, b"+")
        wanted = b"old+"
    elif change == "delete":
        writer.delete(k)
        wanted = None
    else:
        writer.pexpire(k, 50)
        wanted = None
    # within 2 s; the near cache alone would keep "old" for a second more than that allows
    cache._quick.near_seconds = 60
    cache._quick._near[k] = (b"old", time.monotonic() + 60)
    assert wait_for(lambda: cache.get_quick(k), wanted) == wanted
    writer.delete(k)


def test_without_the_near_cache_every_read_asks_redis() -> None:
    assert URL is not None
    cache = RedisCache.from_url(URL + ("&" if "?" in URL else "?") + "near_cache=false")
    k = key("far")
    cache.set(k, b"v", 30)
    assert cache.get_quick(k) == b"v" == cache.get_quick(k)
    quick = cache._quick
    assert quick._wire is not None and not quick._wire.tracking and quick.near_hits == 0
    other_client().set(k, b"w", px=30_000)
    assert cache.get_quick(k) == b"w"  # at once: nothing was kept
    cache.delete(k)
    with pytest.raises(InvalidInput):
        RedisCache.from_url(URL + ("&" if "?" in URL else "?") + "near_cache=maybe")


def test_a_failed_connection_takes_its_near_cache_with_it(cache: RedisCache) -> None:
    k = key("lost")
    cache.set(k, b"before", 30)
    assert cache.get_quick(k) == b"before"
    assert k in cache._quick._near
    kill_quick_connection(cache)  # invalidations sent from now on are lost
    other_client().set(k, b"after", px=30_000)
    assert cache.get_quick(k) == b"after"
    cache.delete(k)


def test_an_invalidation_of_every_key_empties_the_near_cache(cache: RedisCache) -> None:
    keys = [key("a"), key("b")]
    for k in keys:
        cache.set(k, b"v", 30)
        assert cache.get_quick(k) == b"v"
    quick = cache._quick
    assert all(k in quick._near for k in keys) and quick._near_size == 2
    quick._invalidate(None)  # what Redis sends after FLUSHDB / FLUSHALL
    assert quick._near == {} and quick._near_size == 0
    cache.delete(*keys)
