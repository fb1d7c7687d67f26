"""Content-based: a viewer's decayed tag affinities matched to TF-IDF-weighted video tags.

Skips count against a tag. Works for a viewer from their first action and for a
video from its first upload, which is why the hybrid leans on it for cold starts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recomind.recommenders.base import Recommender, csr_arrays, csr_from
from recomind.recommenders.data import Catalog, History, TrainingData


def tag_matrix(catalog: Catalog) -> tuple[sp.csr_matrix, np.ndarray]:
    """Items x tags, TF-IDF weighted and L2-normalised per item; plus the tag vocabulary."""
    vocab = sorted({tag for tags in catalog.tags for tag in tags})
    col = {tag: j for j, tag in enumerate(vocab)}
    rows, cols = [], []
    for i, tags in enumerate(catalog.tags):
        for tag in tags:
            rows.append(i)
            cols.append(col[tag])
    ones = np.ones(len(rows), dtype=np.float32)
    x = sp.csr_matrix((ones, (rows, cols)), shape=(len(catalog), len(vocab)))
    df = np.asarray((x > 0).sum(axis=0)).ravel()
    idf = np.log((1 + len(catalog)) / (1 + df)) + 1.0
    x = sp.csr_matrix(x.multiply(idf.astype(np.float32)[None, :]))
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    x = sp.csr_matrix(sp.diags(1.0 / norms) @ x, dtype=np.float32)
    return x, np.array(vocab, dtype=str)


class TagContent(Recommender):
    name = "tag_content"

    def __init__(self, half_life_hours: float = 24.0 * 14) -> None:
        self.half_life_hours = half_life_hours
        self.matrix_ = sp.csr_matrix((0, 0), dtype=np.float32)
        self.tags_ = np.zeros(0, dtype=str)

    def fit(self, data: TrainingData) -> TagContent:
        self.matrix_, self.tags_ = tag_matrix(data.catalog)
        return self

    @property
    def n_items(self) -> int:
        return int(self.matrix_.shape[0])

    def affinity(self, history: History) -> np.ndarray:
        """The viewer's weight per tag: signed action weights, decayed from their latest action."""
        if len(history) == 0:
            return np.zeros(self.matrix_.shape[1], dtype=np.float32)
        age_hours = (history.timestamps.max() - history.timestamps) / 3600.0
        w = history.weights * np.power(2.0, -age_hours / self.half_life_hours)
        per_item = sp.csr_matrix(
            (w.astype(np.float32), (np.zeros(len(history), int), history.items)),
            shape=(1, self.n_items),
        )
        return np.asarray((per_item @ self.matrix_).todense()).ravel()

    def score(self, history: History) -> np.ndarray:
        return np.asarray(self.matrix_ @ self.affinity(history)).ravel()

    def top_tag(self, item: int, affinity: np.ndarray) -> str | None:
        """The tag that most drew this item to the viewer, for explanations."""
        start, end = self.matrix_.indptr[item], self.matrix_.indptr[item + 1]
        if start == end:
            return None
        tags = self.matrix_.indices[start:end]
        contrib = self.matrix_.data[start:end] * affinity[tags]
        best = int(np.argmax(contrib))
        return str(self.tags_[tags[best]]) if contrib[best] > 0 else None

    def similar_items(self, item: int, k: int) -> list[tuple[int, float]]:
        from recomind.recommenders.base import top_k

        sims = np.asarray((self.matrix_ @ self.matrix_.getrow(item).T).todense()).ravel()
        sims[item] = -np.inf
        return [(i, s) for i, s in top_k(sims, k) if s > 0]

    def arrays(self) -> dict[str, np.ndarray]:
        return {**csr_arrays(self.matrix_), "tags": self.tags_}

    def params(self) -> dict[str, Any]:
        return {"half_life_hours": self.half_life_hours, "shape": list(self.matrix_.shape)}

    @classmethod
    def from_saved(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> TagContent:
        model = cls(half_life_hours=params["half_life_hours"])
        model.matrix_ = csr_from(arrays, params["shape"])
        model.tags_ = arrays["tags"]
        return model
