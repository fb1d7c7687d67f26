"""Batch recomputation of popularity, tag weights and top tags from every stored action.

The consumers keep these up to date event by event; this rebuilds them from the
source of truth after a bulk import (which bypasses the bus). It replaces the
tables wholesale, so run it while no consumer is applying live events.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from recomind.domain.model import ActionWeights, PopularityScore, TagWeight, UserProfile
from recomind.domain.ports import Store
from recomind.domain.scoring import apply_popularity, apply_tag_weights, top_tags


def rebuild_aggregates(
    store: Store, weights: ActionWeights, popularity_half_life: float, affinity_half_life: float
) -> tuple[int, int]:
    """Returns (videos with a popularity score, viewers with a profile)."""
    video_tags = {v.video_id: v.tags for v in store.all_videos()}
    popularity: dict[str, PopularityScore] = {}
    tag_weights: dict[tuple[str, str], TagWeight] = {}
    for batch in store.iter_actions():
        popularity.update(apply_popularity(popularity, batch, weights, popularity_half_life))
        tag_weights.update(
            apply_tag_weights(tag_weights, batch, video_tags, weights, affinity_half_life)
        )
    per_user: dict[str, list[TagWeight]] = defaultdict(list)
    for w in tag_weights.values():
        per_user[w.user_id].append(w)
    now = datetime.now(UTC)
    profiles = [UserProfile(u, top_tags(ws), now) for u, ws in per_user.items()]
    store.replace_popularity(list(popularity.values()))
    store.replace_tag_weights(list(tag_weights.values()), profiles)
    return len(popularity), len(profiles)
