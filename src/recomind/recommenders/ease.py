"""EASE: a closed-form linear autoencoder over items (Steck, WWW 2019), a strong global baseline.

On the binary viewer x item matrix X of positive actions (views and likes),
P = (XᵀX + λI)⁻¹ and B = I - P / diag(P) (column-wise), so diag(B) = 0. A viewer's
scores are x·B for their positive items x; B also says which items each item votes for
(`similar_items`). The inverse costs N² floats of memory and about N³ operations, so a
large catalog keeps only its `max_items` most active items (20k: ~1.6 GB in float32, a
minute or two on two cores); the others score 0. A popularity prior far below any real
score difference orders ties (see `prior`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from recomind.recommenders.base import Recommender, top_k
from recomind.recommenders.data import History, TrainingData, positive_rows
from recomind.recommenders.prior import popularity_prior, positive_counts

# Above this many kept items the Gram matrix is inverted in float32 (half the memory).
FLOAT64_MAX_ITEMS = 8_000
# Viewers per block when summing XᵀX, so no sparse intermediate grows past a block.
_GRAM_BLOCK = 50_000


def gram(binary: sp.csr_matrix, dtype: type[np.floating[Any]] = np.float64) -> np.ndarray:
    """XᵀX as a dense array, summed over blocks of viewers."""
    n = binary.shape[1]
    out = np.zeros((n, n), dtype=dtype)
    for start in range(0, binary.shape[0], _GRAM_BLOCK):
        block = binary[start : start + _GRAM_BLOCK]
        co = sp.coo_matrix(block.T @ block)
        out[co.row, co.col] += co.data  # (row, col) pairs are unique within one product
    return out


def spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive-definite matrix, computed in its own memory.

    LAPACK works in place only on Fortran-ordered arrays; a symmetric C-ordered matrix is its
    own transpose, so its transposed view is that array, and no N x N copy is made.
    """
    if matrix.shape[0] == 0:
        return matrix
    work = matrix.T if matrix.flags.c_contiguous else matrix
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (work,))
    factor, info = potrf(work, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise np.linalg.LinAlgError(f"Gram matrix is not positive definite (potrf info={info})")
    inverse, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky inverse failed (potri info={info})")
    # potri fills the upper triangle only: mirror it, one block of rows at a time.
    n = inverse.shape[0]
    step = 2048
    for start in range(step, n, step):
        stop = min(start + step, n)
        inverse[start:stop, :start] = inverse[:start, start:stop].T
    for start in range(0, n, step):
        stop = min(start + step, n)
        block = inverse[start:stop, start:stop]
        block[:] = np.triu(block) + np.triu(block, 1).T
    return np.asarray(inverse.T if inverse.flags.f_contiguous else inverse)  # symmetric


class EASE(Recommender):
    name = "ease"

    def __init__(self, l2: float = 500.0, max_items: int = 20_000) -> None:
        self.l2 = l2
        self.max_items = max_items
        self.kept_ = np.zeros(0, np.int64)  # catalog index of each kept item
        self.weights_ = np.zeros((0, 0), np.float32)  # B over the kept items
        self.prior_ = np.zeros(0)  # tie-breaking popularity over the whole catalog
        self._position = np.zeros(0, np.int64)  # catalog index -> row of B, or -1

    def fit(self, data: TrainingData) -> EASE:
        counts = positive_counts(data)
        active = np.flatnonzero(counts > 0)
        order = np.lexsort((active, -counts[active]))  # most active first, ties by index
        self.kept_ = np.sort(active[order[: self.max_items]]).astype(np.int64)
        binary = (data.positive_matrix()[:, self.kept_] > 0).astype(np.float64).tocsr()
        g = gram(binary, np.float64 if len(self.kept_) <= FLOAT64_MAX_ITEMS else np.float32)
        g[np.diag_indices_from(g)] += self.l2
        p = spd_inverse(g)
        diagonal = np.diag(p).copy()
        p /= -diagonal[None, :]
        np.fill_diagonal(p, 0.0)
        self.weights_ = p.astype(np.float32, copy=False)
        self.prior_ = popularity_prior(data)
        self._index_positions()
        return self

    def _index_positions(self) -> None:
        self._position = np.full(len(self.prior_), -1, dtype=np.int64)
        self._position[self.kept_] = np.arange(len(self.kept_))

    @property
    def n_items(self) -> int:
        return len(self.prior_)

    def score(self, history: History) -> np.ndarray:
        return self.score_many([history])[0]

    def score_many(self, histories: Sequence[History]) -> np.ndarray:
        scores = np.tile(self.prior_, (len(histories), 1))
        seen = positive_rows(histories, self.n_items).tocoo()
        rows = self._position[seen.col] if seen.nnz else seen.col
        kept = rows >= 0
        binary = sp.csr_matrix(
            (np.ones(int(kept.sum()), np.float32), (seen.row[kept], rows[kept])),
            shape=(len(histories), len(self.kept_)),
        )
        if binary.nnz:
            scores[:, self.kept_] += binary @ self.weights_
        return scores

    def similar_items(self, item: int, k: int) -> list[tuple[int, float]]:
        row = int(self._position[item]) if 0 <= item < self.n_items else -1
        if row < 0:
            return []
        votes = np.full(self.n_items, -np.inf)
        weights = self.weights_[row].astype(np.float64)
        positive = weights > 0
        votes[self.kept_[positive]] = weights[positive]
        votes[item] = -np.inf
        return top_k(votes, k)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"kept": self.kept_, "weights": self.weights_, "prior": self.prior_}

    def params(self) -> dict[str, Any]:
        return {"l2": self.l2, "max_items": self.max_items}

    @classmethod
    def from_saved(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> EASE:
        model = cls(l2=params["l2"], max_items=params["max_items"])
        model.kept_ = arrays["kept"].astype(np.int64)
        model.weights_ = arrays["weights"]
        model.prior_ = arrays["prior"]
        model._index_positions()
        return model
