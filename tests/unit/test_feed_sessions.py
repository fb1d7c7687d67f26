"""Feed sessions: signed cursors, paging state, expiry, impressions and demotion (no I/O)."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recomind.adapters.cache.memory import MemoryCache
from recomind.domain import cache_keys
from recomind.domain.errors import InvalidInput
from recomind.services.feed_sessions import (
    MAX_SERVED,
    Cursor,
    CursorCodec,
    FeedSessions,
    Position,
    SessionEvent,
    SessionSettings,
    cursor_key,
)
from recomind.services.impressions import (
    MAX_IMPRESSIONS,
    RECORD,
    ImpressionLog,
    Impressions,
    demote,
    records,
    short_hash,
    video_hash,
)
from recomind.services.packed_list import PackedList

SESSION = "00112233445566778899aabb"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sessions(clock: Clock, cache: MemoryCache | None = None) -> FeedSessions:
    log = ImpressionLog(cache or MemoryCache(), ttl_seconds=86400, clock=clock)
    return FeedSessions(
        log,
        SessionSettings(session_seconds=1800, impressions_seconds=86400),
        secret=b"test-secret",
        clock=clock,
    )


def served(position: Position, *video_ids: str) -> set[str]:
    """Which of these videos the position's session has served."""
    fresh = set(position.fresh(video_ids))
    return {v for n, v in enumerate(video_ids) if n not in fresh}


# -- cursors -------------------------------------------------------------------------------


def test_cursor_round_trips_and_is_url_safe() -> None:
    codec = CursorCodec(b"k")
    token = codec.encode("u1", Cursor(SESSION, 7))
    assert codec.decode("u1", token) == Cursor(SESSION, 7)
    full = Cursor(SESSION, 3, at=1_800_000_000, served=(0, 1, 2**32 - 1))
    token = codec.encode("u1", full)
    assert codec.decode("u1", token) == full
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_cursor_of_another_viewer_or_key_is_refused() -> None:
    token = CursorCodec(b"k").encode("u1", Cursor(SESSION, 1))
    with pytest.raises(InvalidInput) as err:
        CursorCodec(b"k").decode("u2", token)
    assert err.value.field == "cursor"
    with pytest.raises(InvalidInput):
        CursorCodec(b"another key").decode("u1", token)


def test_tampered_cursor_is_refused() -> None:
    codec = CursorCodec(b"k")
    raw = bytearray(base64.urlsafe_b64decode(codec.encode("u1", Cursor(SESSION, 1)) + "=="))
    for position in (0, 5, len(raw) - 13, len(raw) - 1):  # version, session, page, MAC
        forged = bytearray(raw)
        forged[position] ^= 0x01
        token = base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()
        with pytest.raises(InvalidInput):
            codec.decode("u1", token)


@pytest.mark.parametrize("token", ["!!", "", "abc", "MQ", "=" * 8, "a" * 36, "a" * 500])
def test_garbled_cursor_is_refused(token: str) -> None:
    with pytest.raises(InvalidInput):
        CursorCodec(b"k").decode("u1", token)


@given(st.text(max_size=80))
def test_no_string_but_a_given_out_cursor_decodes(token: str) -> None:
    with pytest.raises(InvalidInput):
        CursorCodec(b"k").decode("u1", token)


def test_a_genuine_cursor_of_the_older_format_restarts_the_session() -> None:
    feed = sessions(Clock())
    body = bytes([1]) + bytes.fromhex(SESSION) + (3).to_bytes(2, "big")
    old = base64.urlsafe_b64encode(body + feed.codec._mac("u1", body)).rstrip(b"=").decode()
    assert feed.open("u1", old).event is SessionEvent.RESTARTED
    with pytest.raises(InvalidInput):  # but only the viewer's own
        feed.open("u2", old)


# -- sessions ------------------------------------------------------------------------------


def test_pages_of_a_session_exclude_what_it_served() -> None:
    clock = Clock()
    feed = sessions(clock)
    first = feed.open("u1", None)
    assert first.event is SessionEvent.STARTED and first.served == ()
    cursor = feed.record(first, ["a", "b"], more=True)
    assert cursor is not None

    clock.now += 60
    second = feed.open("u1", cursor)
    assert second.event is SessionEvent.CONTINUED
    assert served(second, "a", "b", "c", "d", "e") == {"a", "b"}
    assert second.fresh(["x", "a", "y", "b"]) == [0, 2]
    cursor2 = feed.record(second, ["c", "d"], more=True)
    assert cursor2 is not None and cursor2 != cursor

    third = feed.open("u1", cursor2)
    assert served(third, "a", "b", "c", "d", "e") == {"a", "b", "c", "d"}
    assert feed.record(third, ["e"], more=False) is None
    assert dict(feed.pages) == {"started": 1, "continued": 2}


def test_retried_cursor_gets_its_page_again() -> None:
    feed = sessions(Clock())
    cursor = feed.record(feed.open("u1", None), ["a", "b"], more=True)
    page_two = feed.open("u1", cursor)
    feed.record(page_two, ["c", "d"], more=True)  # the answer was lost; the client retries
    retry = feed.open("u1", cursor)
    assert served(retry, "a", "b", "c", "d") == {"a", "b"}  # c, d may come again; none skipped
    next_cursor = feed.record(retry, ["c", "x"], more=True)
    assert served(feed.open("u1", next_cursor), *"abcdx") == {"a", "b", "c", "x"}


def test_expired_session_restarts() -> None:
    clock = Clock()
    feed = sessions(clock)
    cursor = feed.record(feed.open("u1", None), ["a"], more=True)
    assert cursor is not None
    clock.now += 1800 + 1
    restarted = feed.open("u1", cursor)
    assert restarted.event is SessionEvent.RESTARTED
    assert restarted.served == () and restarted.page == 0
    assert restarted.session != feed.codec.decode("u1", cursor).session


def test_session_lives_while_it_is_used() -> None:
    clock = Clock()
    feed = sessions(clock)
    cursor = feed.record(feed.open("u1", None), ["a"], more=True)
    for _ in range(3):  # a page every 20 minutes keeps it open past 30 minutes
        clock.now += 1200
        position = feed.open("u1", cursor)
        assert position.event is SessionEvent.CONTINUED
        cursor = feed.record(position, [f"v{clock.now}"], more=True)


def test_paging_needs_no_cache_and_survives_losing_it() -> None:
    cache = MemoryCache()
    feed = sessions(Clock(), cache)
    cursor = feed.record(feed.open("u1", None), ["a"], more=True)
    cache.close()  # everything in the cache is gone
    position = feed.open("u1", cursor)
    assert position.event is SessionEvent.CONTINUED and served(position, "a", "b") == {"a"}


def test_another_process_with_the_key_continues_the_session() -> None:
    clock = Clock()
    cursor = sessions(clock).record(sessions(clock).open("u1", None), ["a", "b"], more=True)
    other = sessions(clock, MemoryCache())  # another replica: same key, a cache of its own
    assert served(other.open("u1", cursor), "a", "b", "c") == {"a", "b"}


def test_a_session_ends_when_its_cursor_would_grow_past_the_cap() -> None:
    feed = sessions(Clock())
    position = feed.open("u1", None)
    cursor = feed.record(position, [f"v{i}" for i in range(MAX_SERVED)], more=True)
    assert cursor is not None and len(cursor) < 5600
    position = feed.open("u1", cursor)
    assert feed.record(position, ["one more"], more=True) is None


def test_bad_cursor_is_counted_and_touches_nothing() -> None:
    cache = MemoryCache()
    feed = sessions(Clock(), cache)
    with pytest.raises(InvalidInput):
        feed.open("u1", "not-a-cursor")
    assert feed.bad_cursors == 1
    feed.impressions_log.flush()
    assert cache.get(cache_keys.impressions("u1")) is None


def test_concurrent_sessions_of_one_viewer_stay_apart() -> None:
    feed = sessions(Clock())
    phone = feed.record(feed.open("u1", None), ["a", "b"], more=True)
    tablet = feed.record(feed.open("u1", None), ["a", "c"], more=True)
    assert served(feed.open("u1", phone), "a", "b", "c") == {"a", "b"}
    assert served(feed.open("u1", tablet), "a", "b", "c") == {"a", "c"}


def test_short_hashes_are_32_bits_of_the_impression_hash() -> None:
    assert 0 <= short_hash("v1") < 2**32
    assert short_hash("v1") != short_hash("v2")


# -- impressions (written behind) -------------------------------------------------------------


def test_impressions_count_servings_and_expire() -> None:
    clock = Clock()
    feed = sessions(clock)
    feed.record(feed.open("u1", None), ["a", "b"], more=False)
    clock.now += 3600
    feed.record(feed.open("u1", None), ["a"], more=False)
    assert feed.times_served("u1", ["a", "b", "c"]) == {"a": 2, "b": 1}
    assert feed.times_served("u2", ["a", "b"]) == {}
    clock.now += 86400 - 1800  # now b was served 24.5 h ago, a 24.5 h and 23.5 h ago
    # each serving counts while it is younger than the TTL (ADR 0005), not all of a
    # video's servings as long as its latest is
    assert feed.times_served("u1", ["a", "b", "c"]) == {"a": 1}


def test_impressions_are_written_to_the_cache_within_the_flush_interval() -> None:
    cache = MemoryCache()
    log = ImpressionLog(cache, ttl_seconds=60, flush_seconds=0.01)
    try:
        log.record("u1", ["a", "b"], now=1.0)
        log.record("u2", ["a"], now=1.0)
        log.record("u1", ["c"], now=2.0)
        deadline = time.monotonic() + 5
        while cache.get(cache_keys.impressions("u2")) is None and time.monotonic() < deadline:
            time.sleep(0.005)
        raw = cache.get(cache_keys.impressions("u1"))
        assert raw is not None and len(raw) == 3 * RECORD.itemsize
        # a process that only reads the cache (a worker rebuilding lists) sees them
        reader = ImpressionLog(cache, ttl_seconds=60)
        assert reader.times_served("u1", ["a", "b", "c", "d"], now=3.0) == {"a": 1, "b": 1, "c": 1}
        assert reader.reads == {"hit": 1, "miss": 0}
    finally:
        log.close()


def test_buffered_impressions_count_in_their_own_process_and_are_written_on_close() -> None:
    cache = MemoryCache()
    log = ImpressionLog(cache, ttl_seconds=60, flush_seconds=60)  # no flush while the test runs
    log.record("u1", ["a"], now=1.0)
    assert cache.get(cache_keys.impressions("u1")) is None
    assert log.times_served("u1", ["a", "b"], now=2.0) == {"a": 1}
    log.close()
    assert ImpressionLog(cache, 60).times_served("u1", ["a"], now=2.0) == {"a": 1}


def test_impressions_kept_per_viewer_are_bounded_to_the_most_recent() -> None:
    cache = MemoryCache()
    log = ImpressionLog(cache, ttl_seconds=1e9)
    for n in range(MAX_IMPRESSIONS // 100 + 5):
        log.record("u1", [f"v{n}-{i}" for i in range(100)], now=float(n))
        log.flush()
    raw = cache.get(cache_keys.impressions("u1"))
    assert raw is not None and len(raw) == MAX_IMPRESSIONS * RECORD.itemsize
    newest, oldest = f"v{MAX_IMPRESSIONS // 100 + 4}-0", "v0-0"
    assert log.times_served("u1", [newest, oldest], 100.0) == {newest: 1}


def test_a_value_of_an_older_format_leaves_the_newer_records_readable() -> None:
    cache = MemoryCache()
    cache.set(cache_keys.impressions("u1"), b"\x02\x00\x00\x00\x02{}", 60)  # not whole records
    log = ImpressionLog(cache, ttl_seconds=60)
    log.record("u1", ["a"], now=1.0)
    log.flush()
    assert log.times_served("u1", ["a", "b"], now=2.0) == {"a": 1}


# -- impressions ------------------------------------------------------------------------------


def test_impressions_count_and_survive_bytes() -> None:
    impressions = Impressions()
    impressions.record(["a", "b"], now=1.0)
    impressions.record(["b", "c", "c"], now=2.0)  # one serving of c, however often listed
    again = Impressions.from_bytes(impressions.to_bytes())
    assert again.times_served(["c", "b", "a", "z"], 3.0, 60) == {"c": 1, "b": 2, "a": 1}
    again.record(["a"], now=3.0)  # records loaded from bytes can be updated
    assert again.times_served(["a"], 3.0, 60) == {"a": 2}


@given(st.lists(st.lists(st.sampled_from("abcdefghij"), max_size=5), max_size=12))
def test_impressions_match_a_plain_count(pages: list[list[str]]) -> None:
    impressions = Impressions()
    for n, page in enumerate(pages):
        impressions = Impressions.from_bytes(impressions.to_bytes())
        impressions.record(page, now=float(n))
    expected: dict[str, int] = {}
    for page in pages:
        for v in set(page):
            expected[v] = expected.get(v, 0) + 1
    assert impressions.times_served(list("abcdefghij"), float(len(pages)), 1e9) == expected


# -- demotion -------------------------------------------------------------------------------


def test_demotion_puts_served_videos_behind_unseen_ones_least_served_first() -> None:
    ids = ["a", "b", "c", "d", "e"]
    order = demote(ids, {"a": 2, "c": 1}, places=1000)
    assert [ids[i] for i in order] == ["b", "d", "e", "c", "a"]


def test_demotion_by_a_few_places() -> None:
    ids = ["a", "b", "c", "d", "e"]
    assert [ids[i] for i in demote(ids, {"a": 1}, places=2)] == ["b", "c", "a", "d", "e"]
    assert [ids[i] for i in demote(ids, {"a": 2}, places=2)] == ["b", "c", "d", "e", "a"]


def test_no_demotion_when_off_or_nothing_served() -> None:
    ids = ["a", "b", "c"]
    assert demote(ids, {"a": 3}, places=0) == [0, 1, 2]
    assert demote(ids, {}, places=1000) == [0, 1, 2]


def test_cursor_key_is_made_once_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "cursor.key"
    first = cursor_key(path)
    assert len(first) == 32 and cursor_key(path) == first
    assert path.stat().st_mode & 0o777 == 0o600
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    # cursors signed by one process are good in another that reads the same key
    token = CursorCodec(first).encode("u1", Cursor(SESSION, 1))
    assert CursorCodec(cursor_key(path)).decode("u1", token) == Cursor(SESSION, 1)


def test_an_unusable_cursor_key_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "cursor.key"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="cursor key"):
        cursor_key(path)


def test_records_being_flushed_are_counted_by_a_read_meanwhile() -> None:
    """A flush takes the buffer, then writes: a read in between must still count those
    records (it waits for the write), or a rebuild would not demote what was just served."""
    import threading

    class SlowAppend(MemoryCache):
        def __init__(self) -> None:
            super().__init__()
            self.writing = threading.Event()
            self.release = threading.Event()

        def append(self, values: Any, max_bytes: int, ttl_seconds: float) -> None:
            self.writing.set()
            assert self.release.wait(5)
            super().append(values, max_bytes, ttl_seconds)

    cache = SlowAppend()
    log = ImpressionLog(cache, ttl_seconds=60, flush_seconds=3600)  # flushed by hand
    log.record("u1", ["a", "b"], now=1.0)
    flusher = threading.Thread(target=log.flush)
    flusher.start()
    assert cache.writing.wait(5)  # the buffer is taken, the write not done
    counted: list[dict[str, int]] = []
    reader = threading.Thread(
        target=lambda: counted.append(log.times_served("u1", ["a", "b"], 2.0))
    )
    reader.start()
    time.sleep(0.05)
    cache.release.set()
    flusher.join(5)
    reader.join(5)
    assert counted == [{"a": 1, "b": 1}]
    log.close()


def test_a_lists_hashes_made_once_page_as_its_video_ids_do() -> None:
    ids = [f"v{i}" for i in range(12)]
    packed = PackedList.pack([{"video_id": v, "title": v, "url": "", "tags": []} for v in ids])
    assert packed.hashes == tuple(video_hash(v) for v in ids)
    assert packed.hashes is packed.hashes  # made once per list
    clock = Clock()
    by_ids, by_hashes = sessions(clock), sessions(clock)
    first = by_ids.open("u1", None)
    cursor = by_ids.record(first, ids[:4] + ids[:1], more=True)  # a repeat counts once
    same = by_hashes.record(first, ids[:4] + ids[:1], True, packed.hashes[:4] + packed.hashes[:1])
    assert cursor == same
    second = by_ids.open("u1", cursor)
    assert second.fresh(ids) == second.fresh(ids, packed.hashes) == list(range(4, 12))
    assert records(ids[:3], 5.0) == records(ids[:3], 5.0, packed.hashes[:3])
