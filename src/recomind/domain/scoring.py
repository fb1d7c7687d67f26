"""Time-decayed scores: popularity of a video and a viewer's affinity for a tag.

A decayed score is stored with the instant it is valid at; moving it to another
instant multiplies by 2^(-dt / half_life), so one row per video (or per viewer
and tag) is enough, and events may arrive out of order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime

from recomind.domain.model import (
    ActionType,
    ActionWeights,
    Engagement,
    PopularityScore,
    TagWeight,
    VideoAction,
)


def decay_factor(from_time: datetime, to_time: datetime, half_life_hours: float) -> float:
    hours = (to_time - from_time).total_seconds() / 3600.0
    return math.pow(2.0, -hours / half_life_hours)


def add_decayed(
    score: float, at: datetime, delta: float, delta_at: datetime, half_life_hours: float
) -> tuple[float, datetime]:
    """Add `delta` (valid at `delta_at`) to `score` (valid at `at`); keep the later instant."""
    if delta_at >= at:
        return score * decay_factor(at, delta_at, half_life_hours) + delta, delta_at
    return score + delta * decay_factor(delta_at, at, half_life_hours), at


def action_weight(action: VideoAction, weights: ActionWeights, duration_ms: int | None) -> float:
    """The action's weight; a view counts by how much of the video was watched, when known
    (as much as `weights.watch_fraction` says)."""
    if action.action_type is ActionType.VIEW and action.watch_ms is not None and duration_ms:
        return weights.of_view(action.watch_ms / duration_ms)
    return weights.of(action.action_type)


def weighted(
    actions: Iterable[VideoAction],
    weights: ActionWeights,
    durations: Mapping[str, int | None] | None = None,
) -> list[Engagement]:
    """Each action as the weight it adds, a view counted by how much was watched when the
    video's duration is known (`action_weight`)."""
    known = durations or {}
    return [
        Engagement(
            a.user_id, a.video_id, action_weight(a, weights, known.get(a.video_id)), a.timestamp
        )
        for a in actions
    ]


def apply_popularity(
    current: Mapping[str, PopularityScore],
    actions: Iterable[VideoAction],
    weights: ActionWeights,
    half_life_hours: float,
    durations: Mapping[str, int | None] | None = None,
) -> dict[str, PopularityScore]:
    """New popularity rows for every video the actions touch (and only those)."""
    return add_to_popularity(current, weighted(actions, weights, durations), half_life_hours)


def apply_tag_weights(
    current: Mapping[tuple[str, str], TagWeight],
    actions: Iterable[VideoAction],
    video_tags: Mapping[str, tuple[str, ...]],
    weights: ActionWeights,
    half_life_hours: float,
    durations: Mapping[str, int | None] | None = None,
) -> dict[tuple[str, str], TagWeight]:
    """New (user, tag) affinity rows the actions touch; skips push a tag's weight down."""
    added = weighted(actions, weights, durations)
    return add_to_tag_weights(current, added, video_tags, half_life_hours)


def add_to_popularity(
    current: Mapping[str, PopularityScore], added: Iterable[Engagement], half_life_hours: float
) -> dict[str, PopularityScore]:
    """New popularity rows for every video `added` touches: the same sums as
    `apply_popularity`, from weights already chosen."""
    out: dict[str, PopularityScore] = {}
    for e in added:
        old = out.get(e.video_id) or current.get(e.video_id)
        if old is None:
            out[e.video_id] = PopularityScore(e.video_id, e.weight, e.at)
            continue
        score, at = add_decayed(old.score, old.last_updated, e.weight, e.at, half_life_hours)
        out[e.video_id] = PopularityScore(e.video_id, score, at)
    return out


def add_to_tag_weights(
    current: Mapping[tuple[str, str], TagWeight],
    added: Iterable[Engagement],
    video_tags: Mapping[str, tuple[str, ...]],
    half_life_hours: float,
) -> dict[tuple[str, str], TagWeight]:
    """New (user, tag) rows `added` touches, each video's weight going to each of its tags:
    the same sums as `apply_tag_weights`, from weights already chosen."""
    out: dict[tuple[str, str], TagWeight] = {}
    for e in added:
        for tag in video_tags.get(e.video_id, ()):
            key = (e.user_id, tag)
            old = out.get(key) or current.get(key)
            if old is None:
                out[key] = TagWeight(e.user_id, tag, e.weight, e.at)
                continue
            value, at = add_decayed(old.weight, old.updated_at, e.weight, e.at, half_life_hours)
            out[key] = TagWeight(e.user_id, tag, value, at)
    return out


def top_tags(weights: Iterable[TagWeight], n: int = 5) -> tuple[str, ...]:
    """The viewer's strongest positive tags, strongest first (ties by name, for stability)."""
    positive = [w for w in weights if w.weight > 0]
    positive.sort(key=lambda w: (-w.weight, w.tag))
    return tuple(w.tag for w in positive[:n])


def score_at(score: float, at: datetime, now: datetime, half_life_hours: float) -> float:
    return score * decay_factor(at, now, half_life_hours)
