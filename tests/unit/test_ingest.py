"""Ingest validates before it publishes, and does not depend on the store being up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from recomind.domain.clock import ManualClock
from recomind.domain.errors import InvalidInput, UnknownVideo
from recomind.domain.events import VideoActionRecorded
from recomind.services.ingest import ActionIngest, ActionRequest, KnownVideos


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def publish(self, topic: str, messages: Sequence[tuple[str, bytes]]) -> None:
        self.published.extend(messages)


class CatalogStore:
    def __init__(self, videos: set[str], up: bool = True) -> None:
        self.videos = videos
        self.up = up
        self.asked = 0

    def existing_video_ids(self, ids: Any) -> set[str]:
        self.asked += 1
        if not self.up:
            raise ConnectionError("database is down")
        return set(ids) & self.videos


def ingest(store: CatalogStore) -> tuple[ActionIngest, RecordingBus]:
    bus = RecordingBus()
    return ActionIngest(bus, KnownVideos(store)), bus  # type: ignore[arg-type]


def test_known_videos_are_asked_for_once() -> None:
    store = CatalogStore({"v1"})
    service, bus = ingest(store)
    for _ in range(3):
        service.record([ActionRequest("u1", "v1", "like")])
    assert store.asked == 1 and len(bus.published) == 3


def test_unknown_video_rejects_the_whole_batch() -> None:
    service, bus = ingest(CatalogStore({"v1"}))
    with pytest.raises(UnknownVideo) as err:
        service.record([ActionRequest("u1", "v1", "like"), ActionRequest("u1", "v9", "like")])
    assert err.value.row == 1 and bus.published == []


def test_invalid_action_publishes_nothing() -> None:
    service, bus = ingest(CatalogStore({"v1"}))
    with pytest.raises(InvalidInput):
        service.record([ActionRequest("u1", "v1", "like"), ActionRequest("u1", "v1", "meh")])
    assert bus.published == []


def test_store_down_lets_actions_through_unverified() -> None:
    store = CatalogStore({"v1"}, up=False)
    service, bus = ingest(store)
    ids = service.record([ActionRequest("u1", "v2", "view")])
    assert len(ids) == 1 and len(bus.published) == 1
    assert service.known_videos.unverified == 1


def test_actions_without_a_timestamp_are_stamped_by_the_clock() -> None:
    clock = ManualClock(datetime(2026, 3, 1, 9, tzinfo=UTC))
    bus = RecordingBus()
    service = ActionIngest(bus, KnownVideos(CatalogStore({"v1"})), clock)  # type: ignore[arg-type]
    clock.advance(timedelta(days=1))
    service.record(
        [
            ActionRequest("u1", "v1", "like"),
            ActionRequest("u1", "v1", "view", timestamp="2026-01-05T10:00:00Z"),
        ]
    )
    stamped = [VideoActionRecorded.from_json(value).action.timestamp for _, value in bus.published]
    assert stamped == [clock.now(), datetime(2026, 1, 5, 10, tzinfo=UTC)]
