"""A popularity prior too small to reorder real scores, for models that score many items alike.

Global models such as EASE and ALS give every item the same score (0) for a viewer with no
positive history, and items outside a restricted catalog score 0 too. Adding this prior puts
such ties in order of positive engagement instead of catalog order, and never changes the
order of items whose scores differ by more than `TIE_BREAK`.
"""

from __future__ import annotations

import numpy as np

from recomind.recommenders.data import TrainingData

TIE_BREAK = 1e-6


def positive_counts(data: TrainingData) -> np.ndarray:
    """Positive actions (views and likes) per item."""
    positive = data.weights > 0
    return np.bincount(data.items[positive], minlength=data.n_items).astype(np.float64)


def popularity_prior(data: TrainingData, scale: float = TIE_BREAK) -> np.ndarray:
    """`scale` times each item's positive count over the largest count (0 for a quiet catalog)."""
    counts = positive_counts(data)
    top = counts.max() if len(counts) else 0.0
    return scale * counts / top if top > 0 else np.zeros(data.n_items)
