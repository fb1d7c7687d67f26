"""The refresh policy's scheduling: coalescing per viewer, likes and skips first, the thread."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from recomind.adapters.cache.memory import MemoryCache
from recomind.config import RefreshPolicy
from recomind.domain.model import ActedColumns, ActionType, VideoAction, by_viewer
from recomind.services.freshness import FeedRefresher

NOW = datetime(2026, 11, 25, tzinfo=UTC)


class RecordingFeed:
    """Stands in for FeedService: records rebuilds and drops; a gate can hold rebuilds."""

    def __init__(self) -> None:
        self.rebuilt: list[str] = []
        self.dropped: list[tuple[str, set[str]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def refresh_user_feed(self, user_id: str) -> None:
        self.entered.set()
        assert self.gate.wait(10)
        self.rebuilt.append(user_id)

    def drop_from_cached_lists(self, acted_on: dict[str, set[str]]) -> None:
        self.dropped.extend(acted_on.items())


def act(user: str, video: str, kind: ActionType = ActionType.VIEW) -> VideoAction:
    return VideoAction(f"{user}-{video}-{kind}", user, video, kind, NOW, None)


def refresher(policy: RefreshPolicy, after_n: int = 3) -> tuple[FeedRefresher, RecordingFeed]:
    feed = RecordingFeed()
    fake: Any = feed
    return FeedRefresher(fake, MemoryCache(), policy, after_n, 60.0), feed


def test_before_start_rebuilds_happen_in_the_callers_thread_once_per_viewer() -> None:
    r, feed = refresher(RefreshPolicy.IMMEDIATE)
    r.on_new_actions([act("a", "v1"), act("a", "v2"), act("b", "v1")])
    assert sorted(feed.rebuilt) == ["a", "b"] and r.refreshed == 2 and r.pending == 0


def test_after_n_drops_acted_videos_until_due_then_rebuilds() -> None:
    r, feed = refresher(RefreshPolicy.AFTER_N, after_n=3)
    r.on_new_actions([act("a", "v1"), act("a", "v2")])
    assert feed.rebuilt == [] and feed.dropped == [("a", {"v1", "v2"})]
    r.on_new_actions([act("a", "v3")])
    assert feed.rebuilt == ["a"]


def test_ttl_never_rebuilds_on_actions() -> None:
    r, feed = refresher(RefreshPolicy.TTL)
    r.on_new_actions([act("a", "v1", ActionType.LIKE)])
    assert feed.rebuilt == [] and feed.dropped == [("a", {"v1"})]


def test_by_viewer_groups_columns_as_it_groups_actions() -> None:
    actions = [
        act("a", "v1"),
        act("b", "v1", ActionType.SKIP),
        act("a", "v2", ActionType.LIKE),
        act("a", "v1"),
    ]
    columns = ActedColumns(
        [a.user_id for a in actions],
        [a.video_id for a in actions],
        [a.action_type for a in actions],
    )
    expected = {
        "a": [("v1", ActionType.VIEW), ("v2", ActionType.LIKE), ("v1", ActionType.VIEW)],
        "b": [("v1", ActionType.SKIP)],
    }
    assert by_viewer(actions) == by_viewer(columns) == expected
    assert by_viewer([]) == by_viewer(ActedColumns([], [], [])) == {}


def test_a_batch_as_columns_is_applied_as_the_same_actions_are() -> None:
    """The store group hands the hooks `ActedColumns`; other callers hand actions."""
    batches = [
        [act("a", "v1"), act("b", "v2", ActionType.LIKE), act("a", "v3")],
        [act("a", "v4", ActionType.SKIP), act("c", "v1")],
    ]
    effects = []
    for as_columns in (False, True):
        r, feed = refresher(RefreshPolicy.AFTER_N, after_n=2)
        for batch in batches:
            r.on_new_actions(
                ActedColumns(
                    [a.user_id for a in batch],
                    [a.video_id for a in batch],
                    [a.action_type for a in batch],
                )
                if as_columns
                else batch
            )
        effects.append((sorted(feed.rebuilt), sorted(feed.dropped)))
    assert effects[0] == effects[1]
    assert effects[0] == (["a"], [("a", {"v4"}), ("b", {"v2"}), ("c", {"v1"})])


def test_acted_columns_refuse_columns_of_different_lengths() -> None:
    import pytest

    with pytest.raises(ValueError, match="differ in length"):
        ActedColumns(["a"], ["v1", "v2"], [ActionType.VIEW])


def test_started_refresher_coalesces_across_batches_and_puts_likes_first() -> None:
    r, feed = refresher(RefreshPolicy.IMMEDIATE)
    r.start()
    try:
        feed.gate.clear()
        r.on_new_actions([act("busy", "v0")])  # occupies the thread until the gate opens
        assert feed.entered.wait(5)
        r.on_new_actions([act("w1", "v1"), act("w2", "v1")])
        r.on_new_actions([act("w1", "v2"), act("s1", "v1", ActionType.LIKE)])
        r.on_new_actions([act("w2", "v3", ActionType.SKIP), act("s1", "v4")])
        assert r.pending == 4  # busy (running), w1, w2 and s1, each once
        feed.gate.set()
        assert r.flush(10)
    finally:
        r.stop()
    # strong signals first (s1, then w2 whose skip promoted it), then views in arrival order
    assert feed.rebuilt == ["busy", "s1", "w2", "w1"]
    # views-only viewers had what they watched hidden at once; likes and skips wait for the
    # rebuild, which comes first
    assert feed.dropped == [
        ("busy", {"v0"}),
        ("w1", {"v1"}),
        ("w2", {"v1"}),
        ("w1", {"v2"}),
        ("s1", {"v4"}),  # a later view of a viewer already queued for their like
    ]
    assert r.refreshed == 4 and r.pending == 0


def test_a_failing_rebuild_is_counted_and_the_thread_goes_on() -> None:
    r, feed = refresher(RefreshPolicy.IMMEDIATE)
    calls: list[str] = []

    def flaky(user_id: str) -> None:
        calls.append(user_id)
        if user_id == "bad":
            raise RuntimeError("store away")

    feed.refresh_user_feed = flaky  # type: ignore[method-assign]
    r.start()
    try:
        r.on_new_actions([act("bad", "v1"), act("good", "v1")])
        assert r.flush(10)
    finally:
        r.stop()
    assert calls == ["bad", "good"] and r.failed == 1 and r.refreshed == 1


def test_stop_runs_what_is_queued_and_later_rebuilds_are_synchronous() -> None:
    r, feed = refresher(RefreshPolicy.IMMEDIATE)
    r.start()
    r.on_new_actions([act("a", "v1")])
    r.stop()
    assert feed.rebuilt == ["a"]
    r.on_new_actions([act("b", "v1")])
    assert feed.rebuilt == ["a", "b"]
