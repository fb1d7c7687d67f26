"""Trending: time-decayed engagement per video (likes > views, skips count against)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recomind.recommenders.base import Recommender
from recomind.recommenders.data import History, TrainingData


def decayed_engagement(data: TrainingData, half_life_hours: float) -> np.ndarray:
    age_hours = np.maximum(0.0, data.now - data.timestamps) / 3600.0
    decayed = data.weights * np.power(2.0, -age_hours / half_life_hours)
    return np.bincount(data.items, weights=decayed, minlength=data.n_items)


class Popularity(Recommender):
    """The same list for everyone: the most engaging videos lately."""

    name = "popularity"

    def __init__(self, half_life_hours: float = 48.0) -> None:
        self.half_life_hours = half_life_hours
        self.scores_ = np.zeros(0)

    def fit(self, data: TrainingData) -> Popularity:
        self.scores_ = decayed_engagement(data, self.half_life_hours)
        return self

    @property
    def n_items(self) -> int:
        return len(self.scores_)

    def score(self, history: History) -> np.ndarray:
        return self.scores_

    def score_many(self, histories: Sequence[History]) -> np.ndarray:
        return np.broadcast_to(self.scores_, (len(histories), len(self.scores_)))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores_}

    def params(self) -> dict[str, Any]:
        return {"half_life_hours": self.half_life_hours}

    @classmethod
    def from_saved(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Popularity:
        model = cls(**params)
        model.scores_ = arrays["scores"]
        return model
