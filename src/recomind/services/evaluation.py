"""`recomind evaluate`: offline quality on a temporal per-viewer hold-out.

For every viewer, the latest `holdout` share of their actions (at least one) is
held out; models fit on everything else. A held-out video counts as relevant
when the viewer engaged with it: liked it, or watched at least half of it
(views without a known watch time or duration count as engaged). Each model
ranks the catalog for each viewer (leaving out what the viewer saw in training)
and is scored on Recall@K, NDCG@K, HitRate@K and catalog coverage, side by
side, on all viewers and on the cold-start segment (at most 3 training actions).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from recomind.domain.model import ActionType, ActionWeights, Video, VideoAction
from recomind.recommenders.als import ALS
from recomind.recommenders.base import Recommender
from recomind.recommenders.content import TagContent
from recomind.recommenders.data import History, history_from_actions, training_data
from recomind.recommenders.ease import EASE
from recomind.recommenders.hybrid import HybridRecommender
from recomind.recommenders.item_knn import ItemNeighbours
from recomind.recommenders.popularity import Popularity
from recomind.recommenders.user_knn import UserNeighbours

MODELS: dict[str, Callable[[], Recommender]] = {
    "hybrid": HybridRecommender,
    "popularity": Popularity,
    "tag_content": TagContent,
    "item_knn": ItemNeighbours,
    "user_knn": UserNeighbours,
    "ease": EASE,
    "als": ALS,
}
COLD_MAX_ACTIONS = 3


@dataclass(frozen=True)
class Split:
    train: list[VideoAction]
    test: dict[str, set[str]]  # viewer -> relevant held-out videos


@dataclass(frozen=True)
class ModelScore:
    model: str
    segment: str
    users: int
    recall: float
    ndcg: float
    hit_rate: float
    coverage: float


ENGAGED_SHARE = 0.5


def engaged(action: VideoAction, durations: dict[str, int | None]) -> bool:
    if action.action_type is ActionType.LIKE:
        return True
    if action.action_type is ActionType.SKIP:
        return False
    duration = durations.get(action.video_id)
    if action.watch_ms is None or not duration:
        return True
    return action.watch_ms >= ENGAGED_SHARE * duration


def temporal_split(
    actions: Sequence[VideoAction],
    holdout: float = 0.2,
    durations: dict[str, int | None] | None = None,
) -> Split:
    by_user: dict[str, list[VideoAction]] = {}
    for a in actions:
        by_user.setdefault(a.user_id, []).append(a)
    train: list[VideoAction] = []
    test: dict[str, set[str]] = {}
    for user, acts in by_user.items():
        acts.sort(key=lambda a: (a.timestamp, a.id))
        if len(acts) < 2:
            train.extend(acts)
            continue
        cut = len(acts) - max(1, round(len(acts) * holdout))
        train.extend(acts[:cut])
        seen = {a.video_id for a in acts[:cut]}
        relevant = {a.video_id for a in acts[cut:] if engaged(a, durations or {})} - seen
        if relevant:
            test[user] = relevant
    return Split(train, test)


def ndcg(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, v in enumerate(ranked[:k]) if v in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def evaluate(
    videos: Sequence[Video],
    actions: Sequence[VideoAction],
    weights: ActionWeights,
    k: int = 10,
    holdout: float = 0.2,
    models: Sequence[str] = tuple(MODELS),
    factories: Mapping[str, Callable[[], Recommender]] | None = None,
) -> list[ModelScore]:
    """Scores per model and segment; `factories` (name -> model) replaces MODELS when given."""
    split = temporal_split(actions, holdout, {v.video_id: v.duration_ms for v in videos})
    # The models see the data as of its last training action, not the wall clock: time-decayed
    # scores of an old log would otherwise all decay to zero.
    latest = max((a.timestamp for a in split.train), default=None)
    data = training_data(videos, split.train, weights, now=latest)
    index = data.catalog.index()
    per_user: dict[str, list[VideoAction]] = {}
    for a in split.train:
        per_user.setdefault(a.user_id, []).append(a)
    histories: dict[str, History] = {
        u: history_from_actions(per_user.get(u, []), index, weights) for u in split.test
    }
    cold = {u for u in split.test if len(per_user.get(u, [])) <= COLD_MAX_ACTIONS}
    chosen = factories if factories is not None else {name: MODELS[name] for name in models}
    results = []
    for name, factory in chosen.items():
        model = factory().fit(data)
        ranked = {
            u: [str(data.catalog.item_ids[i]) for i, _ in model.recommend(h, k)]
            for u, h in histories.items()
        }
        for segment, users in (("all", set(split.test)), ("cold", cold)):
            results.append(_score(name, segment, users, ranked, split.test, k, data.n_items))
    return results


def _score(
    name: str,
    segment: str,
    users: set[str],
    ranked: dict[str, list[str]],
    test: dict[str, set[str]],
    k: int,
    n_items: int,
) -> ModelScore:
    if not users:
        return ModelScore(name, segment, 0, 0.0, 0.0, 0.0, 0.0)
    recall = [len(set(ranked[u][:k]) & test[u]) / len(test[u]) for u in users]
    hits = [1.0 if set(ranked[u][:k]) & test[u] else 0.0 for u in users]
    gains = [ndcg(ranked[u], test[u], k) for u in users]
    shown = {v for u in users for v in ranked[u][:k]}
    return ModelScore(
        model=name,
        segment=segment,
        users=len(users),
        recall=float(np.mean(recall)),
        ndcg=float(np.mean(gains)),
        hit_rate=float(np.mean(hits)),
        coverage=len(shown) / n_items if n_items else 0.0,
    )


def as_dicts(scores: Sequence[ModelScore]) -> list[dict[str, object]]:
    return [asdict(s) for s in scores]
