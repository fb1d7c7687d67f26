"""The fast path: a viewer's list scored over a few hundred candidates, not the catalogue.

Serving a viewer whose list is in neither the cache nor the table (or rebuilding it
right after they act) must not cost a pass over every video and every viewer. The
candidates are:

- the neighbours of the viewer's latest positive items (rows of the item-neighbour matrix),
- the videos that best match the viewer's favourite tags (only those tags' videos are
  scored, through a tag -> videos index built once per model),
- the most popular videos.

Only the candidates are scored, with the hybrid's own blend weights and unit scaling;
the similar-viewers source is left out because it needs a pass over every viewer. The
hourly precompute keeps the full pass (`HybridRecommender.explain`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recomind.recommenders.base import top_k
from recomind.recommenders.data import History
from recomind.recommenders.hybrid import HybridRecommender, Recommendation

QUICK_SOURCES = ("content", "item_knn", "popularity")


@dataclass(frozen=True)
class QuickSettings:
    recent_items: int = 20  # latest positive items whose neighbours are candidates
    top_tags: int = 5  # the viewer's favourite tags, whose videos are scored…
    by_tags: int = 300  # …and the best this many of them are candidates
    trending: int = 200  # most popular videos always in the pool


class QuickRecommender:
    """Built once per loaded model (a few milliseconds); `explain` is then per viewer."""

    def __init__(self, model: HybridRecommender, settings: QuickSettings | None = None) -> None:
        self.model = model
        self.settings = settings or QuickSettings()
        self.popularity = np.asarray(model.popularity.scores_, dtype=np.float64)
        top = float(self.popularity.max()) if len(self.popularity) else 0.0
        self.popularity_unit = self.popularity / top if top > 0 else np.zeros_like(self.popularity)
        ranked = top_k(
            np.where(self.popularity > 0, self.popularity, -np.inf), self.settings.trending
        )
        self.trending = np.array([i for i, _ in ranked], dtype=np.int64)
        self.by_tag = sp.csc_matrix(model.content.matrix_)  # tag -> its videos (inverted index)

    def explain(
        self, history: History, k: int, exclude: np.ndarray | None = None
    ) -> list[Recommendation]:
        """The viewer's k best candidates with reasons, leaving out their history and `exclude`."""
        model = self.model
        tags = model.content.matrix_
        affinity = self.affinity(history)
        weights = model.blend.at(history.positive_count)
        near_items, near_scores = self._neighbours(history)
        pool = [near_items, self.trending, self._by_tags(affinity, weights), history.items]
        candidates = np.unique(np.concatenate(pool).astype(np.int64))
        if len(candidates) == 0 or k <= 0:
            return []

        rows, cols, values = gather_rows(tags, candidates)
        content = np.bincount(rows, weights=values * affinity[cols], minlength=len(candidates))
        near = np.zeros(len(candidates))
        near[np.searchsorted(candidates, near_items)] = near_scores
        # Scaled like the hybrid's sources, whose best item is often one the viewer already
        # has (hence the history among the candidates until now): then they are left out.
        scores = {
            "content": _unit(content),
            "item_knn": _unit(near),
            "popularity": self.popularity_unit[candidates],
        }
        banned = history.items if exclude is None else np.concatenate([history.items, exclude])
        keep = ~np.isin(candidates, banned)
        candidates = candidates[keep]
        scores = {s: v[keep] for s, v in scores.items()}
        if len(candidates) == 0:
            return []
        total = sum((weights[s] * scores[s] for s in QUICK_SOURCES), np.zeros(len(candidates)))
        chosen = _best(total, k)
        contributions = np.stack([weights[s] * scores[s][chosen] for s in QUICK_SOURCES])
        strongest = contributions.argmax(axis=0).tolist()
        rows, cols, values = gather_rows(tags, candidates[chosen])
        top_tags = _row_argmax(rows, cols, values * affinity[cols], len(chosen))
        items = candidates[chosen].tolist()
        picks = []
        for n, (item, value, src) in enumerate(
            zip(items, total[chosen].tolist(), strongest, strict=True)
        ):
            source = QUICK_SOURCES[src]
            if source == "content":
                tag = int(top_tags[n])
                reason = content_reason(str(model.content.tags_[tag]) if tag >= 0 else None)
            elif source == "item_knn":
                reason = "viewers who watched what you watched also watched this"
            else:
                reason = "trending now"
            picks.append(Recommendation(item, value, reason))
        return picks

    def _by_tags(self, affinity: np.ndarray, weights: dict[str, float]) -> np.ndarray:
        """The videos that best match the viewer's favourite tags, popularity blended in as
        the hybrid would; only those tags' videos are looked at (their posting lists)."""
        favourite = np.argsort(-affinity, kind="stable")[: self.settings.top_tags]
        favourite = favourite[affinity[favourite] > 0]
        if len(favourite) == 0:
            return np.zeros(0, np.int64)
        position, items, values = gather_rows(self.by_tag, favourite.astype(np.int64))
        videos, inverse = np.unique(items, return_inverse=True)
        content = np.bincount(inverse, weights=values * affinity[favourite][position])
        score = weights["content"] * _unit(content)
        score += weights["popularity"] * self.popularity_unit[videos]
        return videos[_best(score, self.settings.by_tags)]

    def affinity(self, history: History) -> np.ndarray:
        """`TagContent.affinity` without building a sparse matrix per viewer."""
        content = self.model.content
        n_tags = content.matrix_.shape[1]
        if len(history) == 0:
            return np.zeros(n_tags)
        age_hours = (history.timestamps.max() - history.timestamps) / 3600.0
        decayed = history.weights * np.power(2.0, -age_hours / content.half_life_hours)
        rows, cols, values = gather_rows(content.matrix_, history.items.astype(np.int64))
        return np.bincount(cols, weights=values * decayed[rows], minlength=n_tags)

    def _neighbours(self, history: History) -> tuple[np.ndarray, np.ndarray]:
        """Items near the latest positive ones, with the item-neighbour source's score.

        The hybrid scores item j as the sum over the viewer's positive items i of
        min(weight_i, 1) * sim(i, j); here i runs over the latest `recent_items` only.
        """
        positive = history.weights > 0
        items, weights = history.items[positive], history.weights[positive]
        if len(items) == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        totals: dict[int, float] = {}
        for item, weight in zip(items[::-1].tolist(), weights[::-1].tolist(), strict=True):
            if item in totals or len(totals) < self.settings.recent_items:
                totals[item] = totals.get(item, 0.0) + weight
        recent = np.fromiter(totals.keys(), dtype=np.int64, count=len(totals))
        capped = np.minimum(np.fromiter(totals.values(), np.float64, len(totals)), 1.0)
        rows, cols, values = gather_rows(self.model.item_knn.sim_, recent)
        near, inverse = np.unique(cols, return_inverse=True)
        return near, np.bincount(inverse, weights=values * capped[rows], minlength=len(near))


def content_reason(tag: str | None) -> str:
    """The hybrid's wording for a video chosen for its tags."""
    return f"because you liked #{tag}" if tag else "matches your interests"


def gather_rows(
    matrix: sp.csr_matrix | sp.csc_matrix, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored entries of some rows of a CSR matrix (columns of a CSC one) as (position
    in `rows`, column, value), without building a new sparse matrix (scipy's fancy
    indexing costs more than the work itself at these sizes)."""
    starts = matrix.indptr[rows]
    lengths = matrix.indptr[rows + 1] - starts
    total = int(lengths.sum())
    position = np.repeat(np.arange(len(rows)), lengths)
    offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    flat = np.repeat(starts, lengths) + offsets
    return position, matrix.indices[flat].astype(np.int64), matrix.data[flat].astype(np.float64)


def _row_argmax(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int) -> np.ndarray:
    """Per row, the column of its largest positive value (-1 when it has none)."""
    best = np.full(n_rows, -1, dtype=np.int64)
    positive = values > 0
    rows, cols, values = rows[positive], cols[positive], values[positive]
    order = np.lexsort((-values, rows))
    first = np.ones(len(order), dtype=bool)
    first[1:] = rows[order][1:] != rows[order][:-1]
    best[rows[order][first]] = cols[order][first]
    return best


def _best(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first, ties by index (as `top_k`, as an array)."""
    part = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]


def _unit(scores: np.ndarray) -> np.ndarray:
    top = float(scores.max()) if len(scores) else 0.0
    return scores / top if top > 0 else np.zeros_like(scores)
