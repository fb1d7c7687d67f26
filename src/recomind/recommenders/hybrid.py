"""The hybrid: every source's scores blended with weights that follow the viewer's history.

Cold viewers lean on content and popularity; as positive actions accumulate the
collaborative sources (item neighbours, similar viewers) take over. Each source
is scaled so its best item scores 1 before blending, so no source dominates by
units alone. The blend also says why an item was chosen (its biggest contributor).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from recomind.recommenders.base import Recommender, load_model, top_k, unit_max
from recomind.recommenders.content import TagContent
from recomind.recommenders.data import History, TrainingData
from recomind.recommenders.item_knn import ItemNeighbours
from recomind.recommenders.popularity import Popularity
from recomind.recommenders.user_knn import UserNeighbours

M = TypeVar("M", bound=Recommender)
SOURCES = ("content", "item_knn", "user_knn", "popularity")


@dataclass(frozen=True)
class BlendWeights:
    """Source weights as a function of the viewer's number of positive actions n.

    warmth = n / (n + half_warm) goes from 0 (new viewer) towards 1 (long history).
    """

    half_warm: float = 5.0
    content_cold: float = 0.55
    content_warm: float = 0.25
    item_warm: float = 0.35
    user_warm: float = 0.3
    popularity_cold: float = 0.3
    popularity_warm: float = 0.1

    def at(self, positives: int) -> dict[str, float]:
        warmth = positives / (positives + self.half_warm)
        return {
            "content": self.content_cold + (self.content_warm - self.content_cold) * warmth,
            "item_knn": self.item_warm * warmth,
            "user_knn": self.user_warm * warmth,
            "popularity": self.popularity_cold
            + (self.popularity_warm - self.popularity_cold) * warmth,
        }


@dataclass(frozen=True)
class Recommendation:
    item: int
    score: float
    reason: str


class HybridRecommender(Recommender):
    name = "hybrid"

    def __init__(
        self,
        blend: BlendWeights | None = None,
        popularity_half_life_hours: float = 48.0,
        affinity_half_life_hours: float = 24.0 * 14,
    ) -> None:
        self.blend = blend or BlendWeights()
        self.popularity = Popularity(popularity_half_life_hours)
        self.content = TagContent(affinity_half_life_hours)
        self.item_knn = ItemNeighbours()
        self.user_knn = UserNeighbours()
        self.item_ids = np.zeros(0, dtype=str)

    def fit(self, data: TrainingData) -> HybridRecommender:
        self.item_ids = np.array([str(v) for v in data.catalog.item_ids], dtype=str)
        for model in self._models().values():
            model.fit(data)
        return self

    def _models(self) -> dict[str, Recommender]:
        return {
            "popularity": self.popularity,
            "content": self.content,
            "item_knn": self.item_knn,
            "user_knn": self.user_knn,
        }

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def source_scores(self, history: History) -> dict[str, np.ndarray]:
        return {
            name: unit_max(np.asarray(m.score(history), np.float64))
            for name, m in self._models().items()
        }

    def score(self, history: History) -> np.ndarray:
        weights = self.blend.at(history.positive_count)
        scores = self.source_scores(history)
        return sum((weights[s] * scores[s] for s in SOURCES), np.zeros(self.n_items))

    def explain(
        self, history: History, k: int, exclude: np.ndarray | None = None
    ) -> list[Recommendation]:
        """Like `recommend`, with the reason each item is there."""
        weights = self.blend.at(history.positive_count)
        scores = self.source_scores(history)
        total = sum((weights[s] * scores[s] for s in SOURCES), np.zeros(self.n_items))
        total[history.items] = -np.inf
        if exclude is not None and len(exclude):
            total[exclude] = -np.inf
        affinity = self.content.affinity(history)
        picks = top_k(total, k)
        items = np.array([i for i, _ in picks], dtype=np.int64)
        # the reason is the source that contributed most to each item's blended score
        contributions = np.stack([weights[s] * scores[s][items] for s in SOURCES])
        strongest = contributions.argmax(axis=0) if len(items) else []
        return [
            Recommendation(item, value, self._reason(SOURCES[int(src)], item, affinity))
            for (item, value), src in zip(picks, strongest, strict=True)
        ]

    def _reason(self, source: str, item: int, affinity: np.ndarray) -> str:
        if source == "content":
            tag = self.content.top_tag(item, affinity)
            return f"because you liked #{tag}" if tag else "matches your interests"
        if source == "item_knn":
            return "viewers who watched what you watched also watched this"
        if source == "user_knn":
            return "viewers like you liked it"
        return "trending now"

    def similar_items(self, item: int, k: int) -> list[tuple[int, float]]:
        return self.item_knn.similar_items(item, k) or self.content.similar_items(item, k)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"item_ids": self.item_ids}

    def params(self) -> dict[str, Any]:
        return {"blend": self.blend.__dict__}

    def save(self, path: Path) -> None:
        super().save(path)
        for name, model in self._models().items():
            model.save(path / name)

    @classmethod
    def from_saved(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> HybridRecommender:
        model = cls(blend=BlendWeights(**params["blend"]))
        model.item_ids = arrays["item_ids"]
        return model

    @classmethod
    def load(cls, path: Path) -> HybridRecommender:
        model = load_model(path)
        assert isinstance(model, HybridRecommender)
        model.popularity = _load_as(path / "popularity", Popularity)
        model.content = _load_as(path / "content", TagContent)
        model.item_knn = _load_as(path / "item_knn", ItemNeighbours)
        model.user_knn = _load_as(path / "user_knn", UserNeighbours)
        return model


def _load_as(path: Path, kind: type[M]) -> M:
    model = load_model(path)
    if not isinstance(model, kind):
        raise TypeError(f"{path} holds a {type(model).__name__}, expected {kind.__name__}")
    return model
