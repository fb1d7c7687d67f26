"""Entities and value objects of the seed schema: users, videos, actions, recommendations."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, Protocol, overload


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


class ActedColumns(Sequence[ActedOn]):
    """New actions as the store group hands a batch of them to the after-commit hooks: three
    lists, one value per action. An `ActedOn` is made only for an action asked for by position
    or in a loop; `by_viewer` reads the lists as they are (a named tuple per action cost 2.3 ms
    of the 3.6 ms it took to make the hooks' input of 8,500 events)."""

    __slots__ = ("action_types", "user_ids", "video_ids")

    def __init__(
        self, user_ids: list[str], video_ids: list[str], action_types: list[ActionType]
    ) -> None:
        if not len(user_ids) == len(video_ids) == len(action_types):
            raise ValueError("the columns of the new actions differ in length")
        self.user_ids = user_ids
        self.video_ids = video_ids
        self.action_types = action_types

    def __len__(self) -> int:
        return len(self.user_ids)

    @overload
    def __getitem__(self, index: int) -> ActedOn: ...

    @overload
    def __getitem__(self, index: slice) -> ActedColumns: ...

    def __getitem__(self, index: int | slice) -> ActedOn | ActedColumns:
        if isinstance(index, slice):
            return ActedColumns(
                self.user_ids[index], self.video_ids[index], self.action_types[index]
            )
        return ActedOn(self.user_ids[index], self.video_ids[index], self.action_types[index])

    def __iter__(self) -> Iterator[ActedOn]:
        return map(ActedOn, self.user_ids, self.video_ids, self.action_types)


def by_viewer(new: Sequence[Acted]) -> dict[str, list[tuple[str, ActionType]]]:
    """Each viewer's new actions, in order, as (video id, action type) pairs."""
    if isinstance(new, ActedColumns):
        acts: Iterator[tuple[str, str, ActionType]] = zip(
            new.user_ids, new.video_ids, new.action_types, strict=True
        )
    else:
        acts = ((a.user_id, a.video_id, a.action_type) for a in new)
    per_user: dict[str, list[tuple[str, ActionType]]] = defaultdict(list)
    for user_id, video_id, action_type in acts:
        per_user[user_id].append((video_id, action_type))
    return per_user


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
