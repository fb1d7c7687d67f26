"""The refresh policy (services/freshness.py) on a memory cache driven by a manual clock."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from recomind.adapters.cache.failsoft import FailSoftCache
from recomind.adapters.cache.memory import MemoryCache
from recomind.config import RefreshPolicy, Settings
from recomind.domain.clock import ManualClock
from recomind.domain.model import ActionType, VideoAction
from recomind.services.feed import FeedService
from recomind.services.freshness import FeedRefresher

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
TTL = 600.0


class RecordingFeed:
    """Stands in for FeedService: remembers which lists were rebuilt or trimmed."""

    def __init__(self, fail_for: set[str] | None = None) -> None:
        self.rebuilt: list[str] = []
        self.dropped: list[tuple[str, set[str]]] = []
        self.fail_for = fail_for or set()

    def refresh_user_feed(self, user_id: str) -> None:
        if user_id in self.fail_for:
            raise ConnectionError("store is down")
        self.rebuilt.append(user_id)

    def drop_from_cached_lists(self, acted_on: dict[str, set[str]]) -> None:
        self.dropped.extend(acted_on.items())


class Viewers:
    """Makes actions stamped with the clock's time."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.n = 0

    def act(self, user: str, *videos: str) -> list[VideoAction]:
        out = []
        for video in videos:
            self.n += 1
            out.append(VideoAction(f"e{self.n}", user, video, ActionType.LIKE, self.clock.now()))
        return out


def refresher(
    policy: RefreshPolicy, after_n: int = 3, feed: RecordingFeed | None = None
) -> tuple[FeedRefresher, RecordingFeed, ManualClock, Viewers]:
    clock = ManualClock(T0)
    fake = feed or RecordingFeed()
    r = FeedRefresher(cast(FeedService, fake), MemoryCache(clock=clock), policy, after_n, TTL)
    return r, fake, clock, Viewers(clock)


def test_immediate_rebuilds_after_every_batch_once_per_viewer() -> None:
    r, feed, _, viewers = refresher(RefreshPolicy.IMMEDIATE)
    r.on_new_actions(viewers.act("u1", "v1"))
    assert feed.rebuilt == ["u1"]
    r.on_new_actions(viewers.act("u1", "v2", "v3") + viewers.act("u2", "v1"))
    assert sorted(feed.rebuilt) == ["u1", "u1", "u2"]
    assert feed.dropped == []
    assert r.refreshed == 3


def test_ttl_never_rebuilds_on_actions_but_drops_what_the_viewer_acted_on() -> None:
    r, feed, clock, viewers = refresher(RefreshPolicy.TTL)
    for day in range(3):
        r.on_new_actions(viewers.act("u1", f"v{day}a", f"v{day}b"))
        clock.advance(timedelta(hours=8))
    assert feed.rebuilt == []
    assert feed.dropped == [("u1", {f"v{d}a", f"v{d}b"}) for d in range(3)]


def test_after_n_rebuilds_on_the_nth_action_and_not_before() -> None:
    r, feed, clock, viewers = refresher(RefreshPolicy.AFTER_N, after_n=3)
    seen = []
    for i in range(1, 8):
        r.on_new_actions(viewers.act("u1", f"v{i}"))
        seen.append(len(feed.rebuilt))
        clock.advance(10)
    assert seen == [0, 0, 1, 1, 1, 2, 2]
    assert [u for u, _ in feed.dropped] == ["u1"] * 5  # every action that did not rebuild
    assert feed.dropped[0] == ("u1", {"v1"})


def test_after_n_counts_each_viewer_separately() -> None:
    r, feed, _, viewers = refresher(RefreshPolicy.AFTER_N, after_n=2)
    r.on_new_actions(viewers.act("u1", "v1") + viewers.act("u2", "v1"))
    assert feed.rebuilt == []
    r.on_new_actions(viewers.act("u2", "v2"))
    assert feed.rebuilt == ["u2"]
    r.on_new_actions(viewers.act("u1", "v2"))
    assert feed.rebuilt == ["u2", "u1"]


class CountingCache(MemoryCache):
    """A memory cache that records each `incr` call's keys, or fails them."""

    def __init__(self, clock: ManualClock, down: bool = False) -> None:
        super().__init__(clock=clock)
        self.calls: list[set[str]] = []
        self.down = down

    def incr(self, amounts: Mapping[str, int], ttl_seconds: float) -> dict[str, int]:
        self.calls.append(set(amounts))
        if self.down:
            raise ConnectionError("the cache is down")
        return super().incr(amounts, ttl_seconds)


def test_after_n_counts_a_batchs_viewers_in_one_call_to_the_cache() -> None:
    """One round trip per batch, however many viewers it holds (one each took 39-49 ms for 250
    viewers on Redis)."""
    clock = ManualClock(T0)
    feed, cache, viewers = RecordingFeed(), CountingCache(clock), Viewers(clock)
    r = FeedRefresher(cast(FeedService, feed), cache, RefreshPolicy.AFTER_N, 2, TTL)
    r.on_new_actions(viewers.act("u1", "v1", "v2") + viewers.act("u2", "v1") + viewers.act("u3"))
    assert len(cache.calls) == 1 and len(cache.calls[0]) == 2  # u3 did nothing
    assert feed.rebuilt == ["u1"]
    assert feed.dropped == [("u2", {"v1"})]


def test_after_n_with_the_cache_down_rebuilds_nothing_but_hides_what_was_acted_on() -> None:
    clock = ManualClock(T0)
    feed, cache, viewers = RecordingFeed(), CountingCache(clock, down=True), Viewers(clock)
    r = FeedRefresher(cast(FeedService, feed), cache, RefreshPolicy.AFTER_N, 1, TTL)
    r.on_new_actions(viewers.act("u1", "v1") + viewers.act("u2", "v2"))
    assert len(cache.calls) == 1
    assert feed.rebuilt == []
    assert sorted(feed.dropped) == [("u1", {"v1"}), ("u2", {"v2"})]


def test_after_n_behind_a_fail_soft_cache_that_is_down_rebuilds_nobody() -> None:
    """A cache that is down answers every counter with 0, which is no count: nobody is due
    (not everybody), and the acted-on videos are still dropped as far as the cache lets."""
    clock = ManualClock(T0)
    feed, viewers = RecordingFeed(), Viewers(clock)
    cache = FailSoftCache(CountingCache(clock, down=True))
    r = FeedRefresher(cast(FeedService, feed), cache, RefreshPolicy.AFTER_N, 1, TTL)
    r.on_new_actions(viewers.act("u1", "v1") + viewers.act("u2", "v2", "v3"))
    assert feed.rebuilt == []
    assert sorted(feed.dropped) == [("u1", {"v1"}), ("u2", {"v2", "v3"})]
    assert cache.failures == 1


def test_after_n_rebuilds_once_for_a_batch_that_carries_the_count_past_n() -> None:
    r, feed, _, viewers = refresher(RefreshPolicy.AFTER_N, after_n=3)
    r.on_new_actions(viewers.act("u1", "v1", "v2"))
    assert feed.rebuilt == []
    r.on_new_actions(viewers.act("u1", "v3", "v4", "v5"))  # 5 in all: past 3 once
    assert feed.rebuilt == ["u1"]
    r.on_new_actions(viewers.act("u1", "v6"))  # 6: the next multiple
    assert feed.rebuilt == ["u1", "u1"]


def test_after_n_starts_counting_again_once_the_window_has_passed() -> None:
    r, feed, clock, viewers = refresher(RefreshPolicy.AFTER_N, after_n=3)
    r.on_new_actions(viewers.act("u1", "v1", "v2"))
    clock.advance(TTL)  # the list these two were counted against has expired meanwhile
    r.on_new_actions(viewers.act("u1", "v3"))
    assert feed.rebuilt == []
    r.on_new_actions(viewers.act("u1", "v4", "v5"))
    assert feed.rebuilt == ["u1"]


@given(st.integers(min_value=1, max_value=5), st.lists(st.integers(1, 7), max_size=12))
def test_after_n_never_leaves_n_actions_unreflected_nor_rebuilds_more_often(
    after_n: int, batches: list[int]
) -> None:
    r, feed, _, viewers = refresher(RefreshPolicy.AFTER_N, after_n=after_n)
    total = since_rebuild = 0
    for size in batches:
        before = len(feed.rebuilt)
        r.on_new_actions(viewers.act("u1", *(f"v{viewers.n + i}" for i in range(size))))
        total += size
        since_rebuild = 0 if len(feed.rebuilt) > before else since_rebuild + size
        assert len(feed.rebuilt) - before <= 1  # one rebuild covers the whole batch
        assert since_rebuild < after_n  # N actions always bring a rebuild
        assert len(feed.rebuilt) <= total // after_n  # and never before N have come


def test_after_one_action_behaves_like_immediate() -> None:
    r, feed, _, viewers = refresher(RefreshPolicy.AFTER_N, after_n=1)
    for i in range(3):
        r.on_new_actions(viewers.act("u1", f"v{i}"))
    assert feed.rebuilt == ["u1"] * 3


def test_a_failed_rebuild_is_logged_and_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r, feed, _, viewers = refresher(RefreshPolicy.IMMEDIATE, feed=RecordingFeed(fail_for={"u1"}))
    r.on_new_actions(viewers.act("u1", "v1") + viewers.act("u2", "v1"))
    assert feed.rebuilt == ["u2"]
    assert "could not refresh the feed of u1" in caplog.text


def test_refresh_settings_are_validated() -> None:
    assert Settings(refresh_policy="immediate").refresh_policy is RefreshPolicy.IMMEDIATE
    with pytest.raises(ValidationError, match="refresh_policy"):
        Settings(refresh_policy="sometimes")
    with pytest.raises(ValidationError, match="refresh_after_actions"):
        Settings(refresh_after_actions=0)
    with pytest.raises(ValidationError, match="recommendations_ttl_seconds"):
        Settings(recommendations_ttl_seconds=0)


def test_refresh_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOMIND_REFRESH_POLICY", "ttl")
    monkeypatch.setenv("RECOMIND_REFRESH_AFTER_ACTIONS", "5")
    monkeypatch.setenv("RECOMIND_RECOMMENDATIONS_TTL_SECONDS", "120")
    s = Settings()
    assert (s.refresh_policy, s.refresh_after_actions, s.recommendations_ttl_seconds) == (
        RefreshPolicy.TTL,
        5,
        120.0,
    )


def test_action_weights_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOMIND_WEIGHT_LIKE", "5")
    monkeypatch.setenv("RECOMIND_WEIGHT_WATCH_FRACTION", "1")
    weights = Settings().action_weights
    assert (weights.view, weights.like, weights.skip, weights.watch_fraction) == (1, 5, -1, 1)
    assert Settings(weight_watch_fraction=0).action_weights.watch_fraction == 0
    with pytest.raises(ValidationError, match="weight_watch_fraction"):
        Settings(weight_watch_fraction=1.2)


def test_after_n_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="after_n"):
        FeedRefresher(
            cast(FeedService, RecordingFeed()), MemoryCache(), RefreshPolicy.AFTER_N, 0, TTL
        )
