"""Implicit ALS: matrix factorisation for implicit feedback (Hu, Koren & Volinsky, ICDM 2008).

Each positive (viewer, item) pair has preference 1 and confidence c = 1 + alpha·r, where r is
the summed weight of the viewer's views and likes of the item; every other pair has
preference 0 and confidence 1. Viewer and item factors are fitted in turn, each half-step
solving every row's regularised weighted least squares with a few conjugate-gradient steps
from the previous solution (Takács, Pilászy & Tikk, RecSys 2011), batched over all rows
with numpy and scipy.sparse, so cost grows with the number of actions, not viewers x items.

On a large log the item factors are fitted on a seeded sample of the viewers whose positive
pairs add up to at most `max_pairs` (viewers with at least two positive videos; each viewer's
cost is their number of pairs, so the fit's time and memory follow the budget, not the log).
Items are what is kept, and an item's factor needs its co-viewers, not every viewer: a
sample of them estimates it (Hu et al. fitted every viewer because their logs were small).

Only the item factors are kept. A viewer is scored by solving their factor exactly from
their history ("fold-in"), so a viewer the model never saw, or one whose history grew after
training, is served without refitting. A popularity prior far below any real score
difference orders ties, such as every item for a viewer with no positive history.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from recomind.recommenders.base import Recommender, top_k
from recomind.recommenders.blas import blas_threads
from recomind.recommenders.data import History, TrainingData
from recomind.recommenders.prior import popularity_prior

# Nonzeros per chunk when forming per-pair dot products: small enough that the gathered rows
# stay in cache (measured ~10x faster than 256k-row chunks), and bounds temporary memory.
_CHUNK = 1 << 14


def _pair_dots(
    matrix: sp.csr_matrix, rows: np.ndarray, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """For every stored (u, i) of `matrix`: left[u] · right[i]."""
    out = np.empty(matrix.nnz, dtype=np.float32)
    cols = matrix.indices
    for start in range(0, matrix.nnz, _CHUNK):
        stop = min(start + _CHUNK, matrix.nnz)
        out[start:stop] = np.einsum(
            "ij,ij->i", left[rows[start:stop]], right[cols[start:stop]], optimize=False
        )
    return out


def conjugate_gradient_step(
    extra: sp.csr_matrix,
    fixed: np.ndarray,
    current: np.ndarray,
    regularization: float,
    steps: int,
) -> np.ndarray:
    """Improve every row x_u of `current` towards (FᵀC_uF + λI) x_u = FᵀC_u p_u.

    `extra` holds c - 1 = alpha·r for each positive pair (rows: the side being solved,
    columns: the fixed side). Runs `steps` conjugate-gradient iterations for all rows at once.
    """
    gram = (fixed.T @ fixed).astype(np.float32)
    gram[np.diag_indices_from(gram)] += regularization
    rows = np.repeat(np.arange(extra.shape[0], dtype=np.int32), np.diff(extra.indptr))

    def apply(x: np.ndarray) -> np.ndarray:
        # (FᵀF + λI) x + Σ_i (c_ui - 1) (f_i · x) f_i, for every row at once
        weighted = sp.csr_matrix(
            (extra.data * _pair_dots(extra, rows, x, fixed), extra.indices, extra.indptr),
            shape=extra.shape,
        )
        return np.asarray(x @ gram + weighted @ fixed, dtype=np.float32)

    confidence = sp.csr_matrix((extra.data + 1.0, extra.indices, extra.indptr), shape=extra.shape)
    x = current.copy()
    residual = np.asarray(confidence @ fixed, dtype=np.float32) - apply(x)
    direction = residual.copy()
    rs_old = np.einsum("ij,ij->i", residual, residual)
    for _ in range(steps):
        active = rs_old > 1e-20
        if not active.any():
            break
        a_dir = apply(direction)
        denominator = np.einsum("ij,ij->i", direction, a_dir)
        step = np.divide(rs_old, denominator, out=np.zeros_like(rs_old), where=active)
        x += step[:, None] * direction
        residual -= step[:, None] * a_dir
        rs_new = np.einsum("ij,ij->i", residual, residual)
        ratio = np.divide(rs_new, rs_old, out=np.zeros_like(rs_new), where=active)
        direction = residual + ratio[:, None] * direction
        rs_old = rs_new
    return x


def _sampled_viewers(
    matrix: sp.csr_matrix, max_pairs: int, rng: np.random.Generator
) -> sp.csr_matrix:
    """`matrix` (viewers x items) itself when it holds at most `max_pairs` pairs; otherwise the
    rows of a seeded random order of the viewers with at least two pairs, taken while their
    pairs add up to at most `max_pairs`."""
    if matrix.nnz <= max_pairs:
        return matrix
    pairs = np.diff(matrix.indptr)
    eligible = np.flatnonzero(pairs >= 2)
    order = rng.permutation(eligible)
    taken = order[np.cumsum(pairs[order]) <= max_pairs]
    return matrix[np.sort(taken)]


class ALS(Recommender):
    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 10.0,
        alpha: float = 0.5,
        iterations: int = 15,
        cg_steps: int = 3,
        seed: int = 0,
        max_pairs: int = 1_000_000,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.cg_steps = cg_steps
        self.seed = seed
        self.max_pairs = max_pairs
        self.fitted_viewers_ = 0
        self.item_factors_ = np.zeros((0, factors), np.float32)
        self._wide = np.zeros((0, factors))  # float64 copy of the item factors, for scoring
        self.gram_ = np.zeros((factors, factors))  # YᵀY + λI, for fold-in
        self.prior_ = np.zeros(0)

    def fit(self, data: TrainingData) -> ALS:
        # Every product here is thin (k = 64 columns): with BLAS threads on a busy machine the
        # Gram FᵀF of 100k x 64 factors took 2-5 s instead of 0.02-0.05 s on one thread
        # (2 cores at load 5), 30 times per fit. These products are memory-bound, so a second
        # thread has little to give even on an idle machine.
        with blas_threads(1):
            return self._fit(data)

    def _fit(self, data: TrainingData) -> ALS:
        extra = data.positive_matrix().tocsr()
        extra.sum_duplicates()
        rng = np.random.default_rng(self.seed)
        extra = _sampled_viewers(extra, self.max_pairs, rng)
        self.fitted_viewers_ = int(extra.shape[0])
        extra.data = (self.alpha * extra.data).astype(np.float32)
        extra_t = extra.T.tocsr()
        scale = 0.01
        users = (rng.standard_normal((extra.shape[0], self.factors)) * scale).astype(np.float32)
        items = (rng.standard_normal((data.n_items, self.factors)) * scale).astype(np.float32)
        for _ in range(self.iterations):
            users = conjugate_gradient_step(extra, items, users, self.regularization, self.cg_steps)
            items = conjugate_gradient_step(
                extra_t, users, items, self.regularization, self.cg_steps
            )
        self.item_factors_ = items
        self._wide = items.astype(np.float64)
        self.gram_ = self._gram(items)
        self.prior_ = popularity_prior(data)
        return self

    def _gram(self, items: np.ndarray) -> np.ndarray:
        wide = items.astype(np.float64)
        gram = wide.T @ wide
        gram[np.diag_indices_from(gram)] += self.regularization
        return gram

    @property
    def n_items(self) -> int:
        return len(self.prior_)

    def user_factor(self, history: History) -> np.ndarray:
        """The viewer's factor solved exactly from their history (zero without positives)."""
        strength = history.positive_vector(self.n_items)
        seen = np.flatnonzero(strength > 0)
        if len(seen) == 0:
            return np.zeros(self.factors)
        f = self._wide[seen]
        extra = self.alpha * strength[seen].astype(np.float64)
        lhs = self.gram_ + (f.T * extra) @ f
        rhs = f.T @ (1.0 + extra)
        return np.linalg.solve(lhs, rhs)

    def score(self, history: History) -> np.ndarray:
        return self.score_many([history])[0]

    def score_many(self, histories: Sequence[History]) -> np.ndarray:
        factors = np.array([self.user_factor(h) for h in histories]).reshape(-1, self.factors)
        return factors @ self._wide.T + self.prior_

    def similar_items(self, item: int, k: int) -> list[tuple[int, float]]:
        if not 0 <= item < self.n_items:
            return []
        f = self._wide
        norms = np.linalg.norm(f, axis=1)
        if norms[item] == 0:
            return []
        cosine = (f @ f[item]) / np.maximum(norms * norms[item], 1e-12)
        cosine[(norms == 0) | (cosine <= 0)] = -np.inf
        cosine[item] = -np.inf
        return top_k(cosine, k)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"item_factors": self.item_factors_, "gram": self.gram_, "prior": self.prior_}

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "cg_steps": self.cg_steps,
            "seed": self.seed,
            "max_pairs": self.max_pairs,
        }

    @classmethod
    def from_saved(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> ALS:
        model = cls(**params)
        model.item_factors_ = arrays["item_factors"]
        model._wide = model.item_factors_.astype(np.float64)
        model.gram_ = arrays["gram"]
        model.prior_ = arrays["prior"]
        return model
