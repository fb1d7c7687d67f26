"""Entities and value objects of the seed schema: users, videos, actions, recommendations."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, Protocol


class ActionType(StrEnum):
    VIEW = "view"
    LIKE = "like"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    name: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Video:
    video_id: str
    title: str
    url: str
    tags: tuple[str, ...]
    creator_id: str | None
    created_at: datetime
    duration_ms: int | None = None


@dataclass(frozen=True, slots=True)
class VideoAction:
    """One thing a viewer did; `id` is the event id made once at the API."""

    id: str
    user_id: str
    video_id: str
    action_type: ActionType
    timestamp: datetime
    watch_ms: int | None = None


class Acted(Protocol):
    """What the after-commit hooks read of a new action (a `VideoAction` or an `ActedOn`)."""

    @property
    def user_id(self) -> str: ...

    @property
    def video_id(self) -> str: ...

    @property
    def action_type(self) -> ActionType: ...


class ActedOn(NamedTuple):
    """A new action as the store group hands it to the after-commit hooks: built from the
    batch's columns, without the cost of a whole `VideoAction` per event."""

    user_id: str
    video_id: str
    action_type: ActionType


@dataclass(frozen=True, slots=True)
class ScoredVideo:
    video_id: str
    score: float
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PopularityScore:
    """Time-decayed engagement of a video, valid as of `last_updated`."""

    video_id: str
    score: float
    last_updated: datetime


@dataclass(frozen=True, slots=True)
class TagWeight:
    """A viewer's decayed affinity for one tag, valid as of `updated_at`."""

    user_id: str
    tag: str
    weight: float
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Engagement:
    """What one new action adds: `weight` (its action type's, from the settings) at `at`, to
    the video's popularity and to the viewer's affinity for each of the video's tags."""

    user_id: str
    video_id: str
    weight: float
    at: datetime


@dataclass(frozen=True, slots=True)
class UserProfile:
    user_id: str
    top_tags: tuple[str, ...]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredRecommendations:
    user_id: str
    items: tuple[ScoredVideo, ...]
    model_version: str
    generated_at: datetime


@dataclass(frozen=True, slots=True)
class ActionWeights:
    """How much each action type counts, for popularity and tag affinity alike.

    `watch_fraction` is the share of a view's weight that depends on how much of the
    video was watched, where that is known (`watch_ms` and the video's duration): 0
    ignores watch time, 1 scales a view by the fraction watched, 0.5 (the default)
    counts half a view for starting a video and the other half by the fraction watched.
    """

    view: float = 1.0
    like: float = 3.0
    skip: float = -1.0
    watch_fraction: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.watch_fraction <= 1.0:
            raise ValueError(f"watch_fraction must be between 0 and 1, not {self.watch_fraction}")

    def of(self, action: ActionType) -> float:
        return {ActionType.VIEW: self.view, ActionType.LIKE: self.like, ActionType.SKIP: self.skip}[
            action
        ]

    def of_view(self, watched: float) -> float:
        """The weight of a view of which `watched` (a fraction, capped to 0-1) was seen."""
        share = min(1.0, max(0.0, watched))
        return self.view * (1.0 - self.watch_fraction + self.watch_fraction * share)
