"""Item-to-item neighbours: "viewers who watched this also watched" (cosine on co-views)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recomind.recommenders.base import Recommender, csr_arrays, csr_from, top_k
from recomind.recommenders.data import History, TrainingData


def keep_top_per_row(sim: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep each row's k largest entries (the neighbourhood), drop the rest."""
    sim = sp.csr_matrix(sim)
    rows, cols, vals = [], [], []
    for i in range(sim.shape[0]):
        start, end = sim.indptr[i], sim.indptr[i + 1]
        data, idx = sim.data[start:end], sim.indices[start:end]
        if len(data) > k:
            keep = np.argpartition(-data, k - 1)[:k]
            data, idx = data[keep], idx[keep]
        rows.extend([i] * len(data))
        cols.extend(idx.tolist())
        vals.extend(data.tolist())
    return sp.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=sim.shape)


class ItemNeighbours(Recommender):
    name = "item_knn"

    def __init__(self, neighbours: int = 50, shrink: float = 10.0) -> None:
        self.neighbours = neighbours
        self.shrink = shrink
        self.sim_ = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, data: TrainingData) -> ItemNeighbours:
        binary = (data.positive_matrix() > 0).astype(np.float32)
        co = sp.csr_matrix(binary.T @ binary)
        counts = np.asarray(binary.sum(axis=0)).ravel()
        co.setdiag(0)
        co.eliminate_zeros()
        co = co.tocoo()
        denom = np.sqrt(counts[co.row] * counts[co.col]) + self.shrink
        sim = sp.csr_matrix((co.data / denom, (co.row, co.col)), shape=co.shape)
        self.sim_ = keep_top_per_row(sim, self.neighbours)
        return self

    @property
    def n_items(self) -> int:
        return int(self.sim_.shape[0])

    def score(self, history: History) -> np.ndarray:
        vec = history.positive_vector(self.n_items)
        return np.asarray(self.sim_.T @ np.minimum(vec, 1.0)).ravel()

    def similar_items(self, item: int, k: int) -> list[tuple[int, float]]:
        row = self.sim_.getrow(item).toarray().ravel().astype(np.float64)
        row[row <= 0] = -np.inf
        return top_k(row, k)

    def arrays(self) -> dict[str, np.ndarray]:
        return csr_arrays(self.sim_)

    def params(self) -> dict[str, Any]:
        return {
            "neighbours": self.neighbours,
            "shrink": self.shrink,
            "shape": list(self.sim_.shape),
        }

    @classmethod
    def from_saved(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> ItemNeighbours:
        model = cls(neighbours=params["neighbours"], shrink=params["shrink"])
        model.sim_ = csr_from(arrays, params["shape"])
        return model
