"""The configurations each baseline is tuned over: the same budget (six) for every model.

A grid holds constructor parameters, not model objects, so the winning parameters of a
baseline can also configure the hybrid's source of the same family. Tuning itself (fit on
a validation split carved from the training data, keep the best NDCG) is in `evaluation`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from recomind.recommenders.als import ALS
from recomind.recommenders.base import Recommender
from recomind.recommenders.content import TagContent
from recomind.recommenders.ease import EASE
from recomind.recommenders.hybrid import HybridRecommender
from recomind.recommenders.item_knn import ItemNeighbours
from recomind.recommenders.popularity import Popularity
from recomind.recommenders.user_knn import UserNeighbours

Params = dict[str, Any]
BUDGET = 6

BASELINES: dict[str, type[Recommender]] = {
    "popularity": Popularity,
    "tag_content": TagContent,
    "item_knn": ItemNeighbours,
    "user_knn": UserNeighbours,
    "ease": EASE,
    "als": ALS,
}
# the hybrid's source of the same family as each baseline
HYBRID_SOURCE = {
    "popularity": "popularity",
    "tag_content": "content",
    "item_knn": "item_knn",
    "user_knn": "user_knn",
    "ease": "ease",
    "als": "als",
}

GRIDS: dict[str, list[Params]] = {
    "popularity": [{"half_life_hours": h} for h in (6.0, 48.0, 168.0, 720.0, 2880.0, 1e9)],
    "tag_content": [{"half_life_hours": h} for h in (6.0, 48.0, 168.0, 336.0, 2880.0, 1e9)],
    "item_knn": [
        {"neighbours": n, "shrink": s}
        for n, s in ((20, 0.0), (50, 10.0), (100, 10.0), (200, 10.0), (50, 50.0), (200, 50.0))
    ],
    "user_knn": [{"neighbours": n} for n in (10, 25, 50, 100, 200, 400)],
    "ease": [{"l2": v} for v in (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0)],
    "als": [
        {"factors": f, "regularization": r, "alpha": a}
        for f, r, a in (
            (32, 10.0, 0.5),
            (64, 10.0, 0.5),
            (64, 1.0, 2.0),
            (64, 50.0, 2.0),
            (128, 10.0, 0.5),
            (128, 50.0, 10.0),
        )
    ],
}
assert all(len(grid) == BUDGET for grid in GRIDS.values())


def label(params: Params) -> str:
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def baseline(name: str, params: Params | None = None) -> Callable[[], Recommender]:
    return partial(BASELINES[name], **(params or {}))


def hybrid(tuned: dict[str, Params] | None = None) -> Callable[[], Recommender]:
    """The hybrid, its sources configured as the tuned baselines of the same family."""
    sources = {HYBRID_SOURCE[name]: params for name, params in (tuned or {}).items()}
    return partial(HybridRecommender, sources=sources)
