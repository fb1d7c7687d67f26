"""The Clock port: the system clock, and the manual clock that tests move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recomind.adapters.cache.memory import MemoryCache
from recomind.domain.clock import ManualClock, SystemClock

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


def test_the_system_clock_tells_aware_utc_time_and_never_goes_back() -> None:
    clock = SystemClock()
    before = datetime.now(UTC)
    now = clock.now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert before <= now <= datetime.now(UTC)
    first = clock.monotonic()
    assert clock.monotonic() >= first


def test_a_manual_clock_stands_still_until_moved_and_moves_both_readings() -> None:
    clock = ManualClock(T0)
    start = clock.monotonic()
    assert clock.now() == T0 and clock.now() == T0
    assert clock.advance(timedelta(hours=24)) == T0 + timedelta(days=1)
    assert clock.advance(90) == T0 + timedelta(days=1, seconds=90)
    assert clock.now() == T0 + timedelta(days=1, seconds=90)
    assert clock.monotonic() - start == pytest.approx(86_400 + 90)


def test_a_manual_clock_refuses_to_go_back_or_to_run_on_naive_time() -> None:
    clock = ManualClock(T0)
    with pytest.raises(ValueError, match="never goes back"):
        clock.advance(-1)
    assert clock.now() == T0
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 3, 1))


def test_the_memory_cache_expires_entries_on_its_clock() -> None:
    clock = ManualClock(T0)
    cache = MemoryCache(clock=clock)
    cache.set("recommendations:u1", b"[1]", 600)
    clock.advance(599.9)
    assert cache.get("recommendations:u1") == b"[1]"
    clock.advance(0.1)
    assert cache.get("recommendations:u1") is None


def test_a_memory_cache_counter_keeps_the_window_set_when_it_was_created() -> None:
    clock = ManualClock(T0)
    cache = MemoryCache(clock=clock)
    assert cache.incr({"n": 1}, 60) == {"n": 1}
    clock.advance(50)
    assert cache.incr({"n": 2}, 60) == {"n": 3}  # counting again does not extend the window
    clock.advance(10)
    assert cache.incr({"n": 1}, 60) == {"n": 1}  # the window closed: a new count starts
