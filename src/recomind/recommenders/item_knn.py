"""Item-to-item neighbours: "viewers who watched this also watched" (cosine on co-views)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from recomind.recommenders.base import Recommender, csr_arrays, csr_from, top_k
from recomind.recommenders.data import History, TrainingData, positive_rows
from recomind.recommenders.prior import positive_counts

# Items per block when forming co-views: a block's dense rows (block x catalog float32) are
# the largest temporary, ~100 MB for a 100k-video catalog.
_BLOCK = 256


def top_per_row(dense: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each row's k largest positive entries (the neighbourhood)."""
    k = min(k, dense.shape[1])
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cols = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(dense.shape[0]), k)
    cols = cols.ravel()
    keep = dense[rows, cols] > 0
    return rows[keep], cols[keep]


class ItemNeighbours(Recommender):
    name = "item_knn"

    def __init__(self, neighbours: int = 50, shrink: float = 10.0, max_items: int = 50_000) -> None:
        self.neighbours = neighbours
        self.shrink = shrink
        # Only the `max_items` most active items get (and are) neighbours: the co-view count
        # grows with the square of the catalog's active part, and a rarely seen video's
        # neighbours are noise anyway. Content and the other sources still score the rest.
        self.max_items = max_items
        self.sim_ = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, data: TrainingData) -> ItemNeighbours:
        """Cosine of co-views, shrunk, one block of items at a time, so the full item x item
        co-view matrix never exists: each block keeps its rows' `neighbours` best."""
        n = data.n_items
        counts = positive_counts(data)
        active = np.flatnonzero(counts > 0)
        order = np.lexsort((active, -counts[active]))  # most active first, ties by index
        kept = np.sort(active[order[: self.max_items]])
        binary = (data.positive_matrix()[:, kept] > 0).astype(np.float32).tocsr()
        by_item = binary.T.tocsr()  # kept items x viewers
        viewers = np.asarray(binary.sum(axis=0)).ravel()
        rows, cols, vals = [], [], []
        for start in range(0, len(kept), _BLOCK):
            block = slice(start, min(start + _BLOCK, len(kept)))
            co = (by_item[block] @ binary).toarray()  # block x kept items
            co[np.arange(co.shape[0]), np.arange(block.start, block.stop)] = 0.0
            co /= np.sqrt(viewers[block, None] * viewers[None, :]) + self.shrink
            r, c = top_per_row(co, self.neighbours)
            rows.append(kept[r + start])
            cols.append(kept[c])
            vals.append(co[r, c])
        if not rows:
            self.sim_ = sp.csr_matrix((n, n), dtype=np.float32)
            return self
        self.sim_ = sp.csr_matrix(
            (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n, n),
        )
        return self

    @property
    def n_items(self) -> int:
        return int(self.sim_.shape[0])

    def score(self, history: History) -> np.ndarray:
        return self.score_many([history])[0]

    def score_many(self, histories: Sequence[History]) -> np.ndarray:
        seen = positive_rows(histories, self.n_items)
        seen.data = np.minimum(seen.data, 1.0)
        return (seen @ self.sim_).toarray().astype(np.float64)

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
            "max_items": self.max_items,
            "shape": list(self.sim_.shape),
        }

    @classmethod
    def from_saved(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> ItemNeighbours:
        model = cls(
            neighbours=params["neighbours"],
            shrink=params["shrink"],
            max_items=params.get("max_items", 50_000),
        )
        model.sim_ = csr_from(arrays, params["shape"])
        return model
