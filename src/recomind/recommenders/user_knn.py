"""Similar viewers: items liked by the viewers whose histories are closest (cosine)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recomind.recommenders.base import Recommender, csr_arrays, csr_from
from recomind.recommenders.data import History, TrainingData


def _row_normalised(m: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ m, dtype=np.float32)


class UserNeighbours(Recommender):
    name = "user_knn"

    def __init__(self, neighbours: int = 50) -> None:
        self.neighbours = neighbours
        self.matrix_ = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, data: TrainingData) -> UserNeighbours:
        self.matrix_ = _row_normalised(data.positive_matrix().log1p())
        return self

    @property
    def n_items(self) -> int:
        return int(self.matrix_.shape[1])

    def score(self, history: History) -> np.ndarray:
        vec = np.log1p(history.positive_vector(self.n_items))
        norm = float(np.linalg.norm(vec))
        if norm == 0 or self.matrix_.shape[0] == 0:
            return np.zeros(self.n_items)
        sims = np.asarray(self.matrix_ @ (vec / norm)).ravel()
        k = min(self.neighbours, len(sims))
        nearest = np.argpartition(-sims, k - 1)[:k]
        weights = np.maximum(sims[nearest], 0.0)
        return np.asarray(self.matrix_[nearest].T @ weights).ravel()

    def arrays(self) -> dict[str, np.ndarray]:
        return csr_arrays(self.matrix_)

    def params(self) -> dict[str, Any]:
        return {"neighbours": self.neighbours, "shape": list(self.matrix_.shape)}

    @classmethod
    def from_saved(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> UserNeighbours:
        model = cls(neighbours=params["neighbours"])
        model.matrix_ = csr_from(arrays, params["shape"])
        return model
