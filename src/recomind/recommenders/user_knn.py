"""Similar viewers: items liked by the viewers whose histories are closest (cosine)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from recomind.recommenders.base import Recommender, csr_arrays, csr_from
from recomind.recommenders.data import History, TrainingData, positive_rows


def _row_normalised(m: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ m, dtype=np.float32)


class UserNeighbours(Recommender):
    name = "user_knn"

    def __init__(self, neighbours: int = 50) -> None:
        self.neighbours = neighbours
        self.matrix_ = sp.csr_matrix((0, 0), dtype=np.float32)
        self._by_item = sp.csr_matrix((0, 0), dtype=np.float32)  # matrix_ transposed

    def fit(self, data: TrainingData) -> UserNeighbours:
        self.matrix_ = _row_normalised(data.positive_matrix().log1p())
        self._by_item = self.matrix_.T.tocsr()
        return self

    @property
    def n_items(self) -> int:
        return int(self.matrix_.shape[1])

    def score(self, history: History) -> np.ndarray:
        return self.score_many([history])[0]

    def score_many(self, histories: Sequence[History]) -> np.ndarray:
        """Each viewer's cosine with every fitted viewer goes through the items they share
        (a sparse product), so the cost follows the histories, not the number of viewers."""
        viewers = positive_rows(histories, self.n_items)
        viewers.data = np.log1p(viewers.data)
        viewers = _row_normalised(viewers)
        sims = sp.csr_matrix(viewers @ self._by_item)  # histories x fitted viewers
        rows, cols, vals = [], [], []
        for r in range(sims.shape[0]):
            start, end = sims.indptr[r], sims.indptr[r + 1]
            found, cosine = sims.indices[start:end], sims.data[start:end]
            if len(cosine) > self.neighbours:
                keep = np.argpartition(-cosine, self.neighbours - 1)[: self.neighbours]
                found, cosine = found[keep], cosine[keep]
            positive = cosine > 0
            rows.append(np.full(int(positive.sum()), r))
            cols.append(found[positive])
            vals.append(cosine[positive])
        if not rows:
            return np.zeros((0, self.n_items))
        weights = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=sims.shape,
        )
        return (weights @ self.matrix_).toarray().astype(np.float64)

    def arrays(self) -> dict[str, np.ndarray]:
        return csr_arrays(self.matrix_)

    def params(self) -> dict[str, Any]:
        return {"neighbours": self.neighbours, "shape": list(self.matrix_.shape)}

    @classmethod
    def from_saved(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> UserNeighbours:
        model = cls(neighbours=params["neighbours"])
        model.matrix_ = csr_from(arrays, params["shape"])
        model._by_item = model.matrix_.T.tocsr()
        return model
