"""Similar viewers: items liked by the viewers whose histories are closest (cosine).

Neighbours are found through the items a viewer shares with others, so a viewer costs the sum
of their items' audiences. On a large log a popular video's audience grows with the log
(hundreds of thousands of viewers at 20M actions), so each item reaches at most
`max_audience` of its viewers for the search: those whose normalised weight on it is largest,
i.e. the largest terms of the cosine sums it adds to (viewers for whom the video is a large
share of what they watched).
The scores still come from every viewer's full row. ML-100K's largest audience is 583, so
nothing is cut there; 0 searches every viewer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from recomind.recommenders.base import Recommender, csr_arrays, csr_from
from recomind.recommenders.data import History, TrainingData, positive_rows


def _audiences(by_item: sp.csr_matrix, max_audience: int) -> sp.csr_matrix:
    """`by_item` (items x viewers) with each row cut to its `max_audience` largest entries
    (ties by viewer index); 0 keeps every entry."""
    sizes = np.diff(by_item.indptr)
    if max_audience <= 0 or by_item.nnz == 0 or sizes.max() <= max_audience:
        return by_item
    rows = np.repeat(np.arange(by_item.shape[0]), sizes)
    order = np.lexsort((by_item.indices, -by_item.data, rows))
    rank = np.arange(by_item.nnz) - by_item.indptr[rows[order]]
    kept = np.sort(order[rank < max_audience])
    return sp.csr_matrix(
        (by_item.data[kept], (rows[kept], by_item.indices[kept])), shape=by_item.shape
    )


def _row_normalised(m: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ m, dtype=np.float32)


class UserNeighbours(Recommender):
    name = "user_knn"

    def __init__(self, neighbours: int = 50, max_audience: int = 2_000) -> None:
        self.neighbours = neighbours
        self.max_audience = max_audience
        self.matrix_ = sp.csr_matrix((0, 0), dtype=np.float32)
        self._by_item = sp.csr_matrix((0, 0), dtype=np.float32)  # matrix_ transposed

    def fit(self, data: TrainingData) -> UserNeighbours:
        self.matrix_ = _row_normalised(data.positive_matrix().log1p())
        self._by_item = _audiences(self.matrix_.T.tocsr(), self.max_audience)
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
        return {
            "neighbours": self.neighbours,
            "max_audience": self.max_audience,
            "shape": list(self.matrix_.shape),
        }

    @classmethod
    def from_saved(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> UserNeighbours:
        # an artifact from before the audience cap searched every viewer
        model = cls(neighbours=params["neighbours"], max_audience=params.get("max_audience", 0))
        model.matrix_ = csr_from(arrays, params["shape"])
        model._by_item = _audiences(model.matrix_.T.tocsr(), model.max_audience)
        return model
