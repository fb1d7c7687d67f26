"""`RedisCache.get_quick` on a real Redis: one kept connection, the same answers as the
pooled client, and a kept connection the server closed is replaced within the same read."""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any, cast

import pytest
import redis

from recomind.adapters.cache.redis_cache import RedisCache

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


def test_a_connection_the_server_closed_is_replaced_in_the_same_read(cache: RedisCache) -> None:
    k = key("kill")
    cache.set(k, b"still here", 30)
    assert cache.get_quick(k) == b"still here"
    quick = cache._quick
    assert quick._connection is not None
    name = f"quick-{uuid.uuid4().hex}"
    quick._connection.send_command("CLIENT", "SETNAME", name)
    assert quick._connection.read_response() == b"OK"
    killed = 0
    for line in cast("list[dict[str, Any]]", cache._client.client_list()):
        if line.get("name") == name:
            cache._client.client_kill_filter(_id=line["id"])
            killed += 1
    assert killed == 1
    assert cache.get_quick(k) == b"still here"  # no error, no miss: a new connection
    assert quick._connection is not None
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
