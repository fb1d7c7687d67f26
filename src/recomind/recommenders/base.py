"""The contract every recommender keeps, and how models are saved without pickle.

A model scores every catalog item for a viewer's history; `recommend` turns the
scores into a ranked list that leaves out what the viewer has already seen.
Models save to a folder as `arrays.npz` (numpy, allow_pickle=False) plus
`meta.json`, and load by the class name recorded there.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recomind.recommenders.data import History, TrainingData

MODEL_CLASSES: dict[str, type[Recommender]] = {}


class Recommender(ABC):
    """fit / score / recommend / similar_items / save / load."""

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            MODEL_CLASSES[cls.name] = cls

    @abstractmethod
    def fit(self, data: TrainingData) -> Recommender: ...

    @abstractmethod
    def score(self, history: History) -> np.ndarray:
        """A score for every item (higher is better) for a viewer with this history."""

    def score_many(self, histories: Sequence[History]) -> np.ndarray:
        """`score` for several viewers at once: one row per history (viewers x items).

        Models whose scoring is a matrix product override this with one product per batch,
        which is what makes scoring many viewers (the ranker's groups, the hourly Top-N)
        fast; the result equals scoring each history on its own.
        """
        rows = [np.asarray(self.score(h), np.float64) for h in histories]
        return np.vstack(rows) if rows else np.zeros((0, self.n_items))

    @property
    @abstractmethod
    def n_items(self) -> int: ...

    def recommend(
        self, history: History, k: int, exclude: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The k best items as (index, score), leaving out `exclude` and the history."""
        scores = np.asarray(self.score(history), dtype=np.float64).copy()
        scores[history.items] = -np.inf
        if exclude is not None and len(exclude):
            scores[exclude] = -np.inf
        return top_k(scores, k)

    def similar_items(self, item: int, k: int) -> list[tuple[int, float]]:
        """Items most like `item`; a model without a notion of similarity returns []."""
        return []

    # -- persistence ---------------------------------------------------------------

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def params(self) -> dict[str, Any]: ...

    @classmethod
    @abstractmethod
    def from_saved(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Recommender: ...

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        np.savez(path / "arrays.npz", **self.arrays())  # type: ignore[arg-type]
        meta = {"class": self.name, "params": self.params()}
        (path / "meta.json").write_text(json.dumps(meta, indent=2))


def load_model(path: Path) -> Recommender:
    meta = json.loads((path / "meta.json").read_text())
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return MODEL_CLASSES[meta["class"]].from_saved(meta["params"], arrays)


def csr_arrays(m: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A sparse matrix as the plain arrays `save` writes (its shape goes in the params)."""
    return {"data": m.data, "indices": m.indices, "indptr": m.indptr}


def csr_from(arrays: dict[str, np.ndarray], shape: list[int]) -> sp.csr_matrix:
    return sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=tuple(shape))


def top_k(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Indices of the k highest finite scores, best first (ties by index, for stability)."""
    finite = np.flatnonzero(np.isfinite(scores))
    if len(finite) == 0 or k <= 0:
        return []
    if len(finite) > k:
        part = np.argpartition(-scores[finite], k - 1)[:k]
        finite = finite[part]
    order = np.lexsort((finite, -scores[finite]))
    return [(int(finite[i]), float(scores[finite[i]])) for i in order]


def unit_max(scores: np.ndarray) -> np.ndarray:
    """Scale scores so the best is 1 (leaves all-zero or negative-only scores at <= 0)."""
    top = float(np.max(scores)) if len(scores) else 0.0
    return scores / top if top > 0 else np.zeros_like(scores)
