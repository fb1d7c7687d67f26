"""The Cache port's shared suite: the in-process cache and Redis pass the same tests.

`memory://` runs always; Redis runs when RECOMIND_TEST_REDIS_URL is set. Every
test works under its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest

from recomind.adapters.cache import open_cache
from recomind.domain.ports import Cache

LONG = 60.0  # a TTL no test outlives
SHORT = 0.2


class Keys:
    """Unique key names for one test, remembered so they can be deleted afterwards."""

    def __init__(self) -> None:
        self.prefix = f"recomind-test:{uuid.uuid4().hex}:"
        self.made: list[str] = []

    def __call__(self, name: str) -> str:
        key = self.prefix + name
        self.made.append(key)
        return key


@pytest.fixture(
    params=[
        pytest.param("memory://", id="memory"),
        pytest.param(
            "RECOMIND_TEST_REDIS_URL",
            id="redis",
            marks=pytest.mark.skipif(
                not os.environ.get("RECOMIND_TEST_REDIS_URL"),
                reason="RECOMIND_TEST_REDIS_URL is not set",
            ),
        ),
    ]
)
def cache(request: pytest.FixtureRequest) -> Iterator[Cache]:
    url = request.param if request.param == "memory://" else os.environ[request.param]
    opened = open_cache(url)
    yield opened
    opened.close()


@pytest.fixture
def key(cache: Cache) -> Iterator[Keys]:
    keys = Keys()
    yield keys
    if keys.made:
        cache.delete(*keys.made)


def test_get_of_a_missing_key_is_none(cache: Cache, key: Keys) -> None:
    assert cache.get(key("nothing")) is None


def test_set_then_get_and_overwrite(cache: Cache, key: Keys) -> None:
    k = key("feed")
    cache.set(k, b"first", LONG)
    assert cache.get(k) == b"first"
    cache.set(k, b"second", LONG)
    assert cache.get(k) == b"second"


def test_bytes_round_trip_exactly(cache: Cache, key: Keys) -> None:
    every_byte = bytes(range(256)) * 4
    cache.set(key("binary"), every_byte, LONG)
    cache.set(key("empty"), b"", LONG)
    assert cache.get(key("binary")) == every_byte
    assert cache.get(key("empty")) == b""  # stored-but-empty is not the same as missing


def test_keys_are_independent(cache: Cache, key: Keys) -> None:
    cache.set(key("a"), b"1", LONG)
    cache.set(key("b"), b"2", LONG)
    assert (cache.get(key("a")), cache.get(key("b"))) == (b"1", b"2")


def test_delete_one_or_many_and_missing_keys(cache: Cache, key: Keys) -> None:
    for name in ("a", "b", "c"):
        cache.set(key(name), name.encode(), LONG)
    cache.delete(key("a"))
    assert cache.get(key("a")) is None
    assert cache.get(key("b")) == b"b"

    cache.delete(key("b"), key("c"), key("never-set"))
    assert cache.get(key("b")) is None
    assert cache.get(key("c")) is None


def test_a_value_expires_after_its_ttl(cache: Cache, key: Keys) -> None:
    short, long = key("short"), key("long")
    cache.set(short, b"soon gone", SHORT)
    cache.set(long, b"stays", LONG)
    assert cache.get(short) == b"soon gone"
    time.sleep(SHORT + 0.15)
    assert cache.get(short) is None
    assert cache.get(long) == b"stays"


def test_setting_again_renews_the_ttl(cache: Cache, key: Keys) -> None:
    k = key("renewed")
    cache.set(k, b"old", SHORT)
    cache.set(k, b"new", LONG)
    time.sleep(SHORT + 0.15)
    assert cache.get(k) == b"new"


def test_incr_counts_from_zero_by_amount(cache: Cache, key: Keys) -> None:
    k = key("counter")
    assert cache.incr({k: 1}, LONG) == {k: 1}
    assert cache.incr({k: 1}, LONG) == {k: 2}
    assert cache.incr({k: 5}, LONG) == {k: 7}
    assert cache.get(k) == b"7"
    assert cache.incr({key("other"): 3}, LONG) == {key("other"): 3}
    assert cache.incr({}, LONG) == {}


def test_incr_adds_to_many_counters_at_once(cache: Cache, key: Keys) -> None:
    """A batch's viewers in one call: more keys than one Redis transaction takes (1,000),
    some new and some counted before, each with its own amount."""
    keys = [key(f"many-{i}") for i in range(1_203)]
    cache.incr({k: 2 for k in keys[::2]}, LONG)
    got = cache.incr({k: i + 1 for i, k in enumerate(keys)}, LONG)
    assert got == {k: i + 1 + (2 if i % 2 == 0 else 0) for i, k in enumerate(keys)}
    assert cache.get_many([keys[0], keys[1], keys[-1]]) == [b"3", b"2", b"1205"]


def test_incr_counter_expires_with_its_ttl(cache: Cache, key: Keys) -> None:
    k = key("expiring-counter")
    assert cache.incr({k: 2}, SHORT) == {k: 2}
    time.sleep(SHORT + 0.15)
    assert cache.get(k) is None
    assert cache.incr({k: 1}, SHORT) == {k: 1}  # a fresh counter, not 3


def test_incr_keeps_the_ttl_it_was_created_with(cache: Cache, key: Keys) -> None:
    k = key("window")
    cache.incr({k: 1}, 0.4)
    time.sleep(0.25)
    assert cache.incr({k: 1}, 0.4) == {k: 2}
    time.sleep(0.3)  # 0.55 s after creation: gone, though only 0.3 s after the last incr
    assert cache.get(k) is None


def test_deleted_counter_starts_again(cache: Cache, key: Keys) -> None:
    k = key("reset")
    cache.incr({k: 4}, LONG)
    cache.delete(k)
    assert cache.incr({k: 1}, LONG) == {k: 1}


def test_get_many_answers_in_key_order_with_none_for_misses(cache: Cache, key: Keys) -> None:
    cache.set(key("a"), b"first", LONG)
    cache.set(key("c"), b"", LONG)
    cache.set(key("gone"), b"soon", SHORT)
    time.sleep(SHORT + 0.1)
    got = cache.get_many([key("c"), key("missing"), key("a"), key("gone"), key("a")])
    assert got == [b"", None, b"first", None, b"first"]
    assert cache.get_many([]) == []


def test_get_many_sees_what_get_sees(cache: Cache, key: Keys) -> None:
    keys = [key(f"k{n}") for n in range(5)]
    for n, k in enumerate(keys[:3]):
        cache.set(k, bytes([n]) * 100, LONG)
    assert cache.get_many(keys) == [cache.get(k) for k in keys]


def test_ping(cache: Cache) -> None:
    cache.ping()


def test_append_creates_appends_and_keeps_the_tail(cache: Cache, key: Keys) -> None:
    a, b = key("a"), key("b")
    cache.append({a: b"123", b: b"x"}, 8, LONG)
    cache.append({a: b"4567"}, 8, LONG)
    assert cache.get_many([a, b]) == [b"1234567", b"x"]
    cache.append({a: b"89"}, 8, LONG)  # 9 bytes: the first is dropped
    assert cache.get(a) == b"23456789"
    cache.append({}, 8, LONG)  # nothing to do, and no error
    assert cache.get(a) == b"23456789"


def test_append_writes_every_key_of_a_large_flush(cache: Cache, key: Keys) -> None:
    """More keys than one Redis script call takes (`APPEND_KEYS_PER_CALL`), each its own
    value, some appended to, some trimmed to the cap."""
    keys = [key(f"many{n}") for n in range(1_203)]
    cache.append({k: b"ab" for k in keys[:600]}, 6, LONG)
    cache.append({k: f"-{n}".encode() for n, k in enumerate(keys)}, 6, LONG)
    got = cache.get_many(keys)
    want = [(b"ab" + f"-{n}".encode())[-6:] if n < 600 else f"-{n}".encode() for n in range(1_203)]
    assert got == want


def test_append_sets_the_ttl_of_what_it_writes(cache: Cache, key: Keys) -> None:
    kept, trimmed = key("kept"), key("trimmed")
    cache.set(kept, b"old", LONG)
    cache.append({kept: b"+", trimmed: b"abc"}, 2, SHORT)
    assert cache.get_many([kept, trimmed]) == [b"d+", b"bc"]
    time.sleep(SHORT + 0.1)
    assert cache.get_many([kept, trimmed]) == [None, None]


def test_get_quick_sees_what_get_sees(cache: Cache, key: Keys) -> None:
    k = key("feed")
    cache.set(k, b"\x00bytes\xff", LONG)
    assert cache.get_quick(k) == b"\x00bytes\xff"
    assert cache.get_quick(key("missing")) is None
