"""Cold starts: what viewers who began like this one engaged with at the end of their history.

For a viewer with at most a few actions, the hybrid's learned rankers have little to go on
(ML-100K gives them about 200 cold groups) and popularity is hard to beat. This scorer
counts, over every viewer with a longer history, *transitions* from each video among their
first `early_actions` actions to each video they engaged with in their latest `late_share`
of actions, and scores a video j for a new viewer with history items i as

    (1 - w) x log popularity(j) + w x log mean_i (T(i, j) + a x q(j)) / (e(i) + a)

T(i, j) is the number of those viewers who started with i and engaged with j late, e(i) the
number who started with i, q(j) the share of them who engaged with j late (the "late
popularity", what a start predicts when nobody started with i), a = `shrink`; popularity is
the time-decayed engagement of `popularity.decayed_engagement`. Both halves are estimates
of how likely a video is in the window a cold viewer's next actions fall in: popularity is
steady, the transitions are specific but sparse, and the weighted product (w = `weight`)
keeps a video that either makes unlikely low. A viewer with no history gets popularity.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recomind.recommenders.base import Recommender, csr_arrays, csr_from
from recomind.recommenders.data import History, TrainingData
from recomind.recommenders.popularity import decayed_engagement

# relative floors that keep the logarithms finite (a video with no engagement, no transition)
_POPULARITY_FLOOR = 1e-6
_CHANCE_FLOOR = 1e-9


class StartTransitions(Recommender):
    """Popularity re-weighted by where viewers with the same first videos went later."""

    name = "start_transitions"

    def __init__(
        self,
        early_actions: int = 3,
        late_share: float = 0.2,
        shrink: float = 100.0,
        weight: float = 0.5,
        half_life_hours: float = 48.0,
    ) -> None:
        self.early_actions = early_actions
        self.late_share = late_share
        self.shrink = shrink
        self.weight = weight
        self.half_life_hours = half_life_hours
        self.transitions_ = sp.csr_matrix((0, 0), dtype=np.float64)
        self.starts_ = np.zeros(0)  # e(i): viewers who started with i
        self.late_ = np.zeros(0)  # q(j): share of those viewers who engaged with j late
        self.log_popularity_ = np.zeros(0)

    @property
    def n_items(self) -> int:
        return len(self.log_popularity_)

    def fit(self, data: TrainingData) -> StartTransitions:
        n = data.n_items
        order = np.lexsort((data.timestamps, data.users))
        users = data.users[order]
        bounds = np.searchsorted(users, np.arange(data.n_users + 1))
        counts = np.diff(bounds)[users]  # each action's viewer's number of actions
        position = np.arange(len(order)) - bounds[users]  # 0 = the viewer's first action
        late_count = np.maximum(1, np.round(counts * self.late_share))
        # only viewers with a start and at least two more actions to end on
        long = counts > self.early_actions + 1
        early = long & (position < self.early_actions)
        late = long & (position >= counts - late_count) & data.engagement()[order]
        items = data.items[order]
        starts = _binary(users[early], items[early], data.n_users, n)
        ends = _binary(users[late], items[late], data.n_users, n)
        self.transitions_ = (starts.T @ ends).tocsr()
        self.starts_ = np.asarray(starts.sum(axis=0)).ravel()
        ending = max(int(np.count_nonzero(np.diff(ends.indptr))), 1)
        self.late_ = np.asarray(ends.sum(axis=0)).ravel() / ending
        popularity = decayed_engagement(data, self.half_life_hours)
        self.log_popularity_ = _log_floor(popularity, _POPULARITY_FLOOR)
        return self

    def starters(self, history: History) -> float:
        """How many viewers' starts the history's videos draw on: sum of e(i) over them."""
        items = np.unique(history.items)
        return float(self.starts_[items[items < len(self.starts_)]].sum())

    def score(self, history: History) -> np.ndarray:
        items = np.unique(history.items)
        items = items[items < self.n_items]
        if len(items) == 0:
            return self.log_popularity_.copy()
        a = self.shrink
        shares = 1.0 / (self.starts_[items] + a)
        chance = np.asarray(self.transitions_[items].multiply(shares[:, None]).sum(axis=0))
        chance = (chance.ravel() + self.late_ * a * float(shares.sum())) / len(items)
        w = self.weight
        return (1.0 - w) * self.log_popularity_ + w * _log_floor(chance, _CHANCE_FLOOR)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            **{f"transitions_{k}": v for k, v in csr_arrays(self.transitions_).items()},
            "starts": self.starts_,
            "late": self.late_,
            "log_popularity": self.log_popularity_,
        }

    def params(self) -> dict[str, Any]:
        return {
            "early_actions": self.early_actions,
            "late_share": self.late_share,
            "shrink": self.shrink,
            "weight": self.weight,
            "half_life_hours": self.half_life_hours,
        }

    @classmethod
    def from_saved(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> StartTransitions:
        model = cls(**params)
        n = len(arrays["log_popularity"])
        model.transitions_ = csr_from(
            {
                k[len("transitions_") :]: v
                for k, v in arrays.items()
                if k.startswith("transitions_")
            },
            [n, n],
        )
        model.starts_ = arrays["starts"]
        model.late_ = arrays["late"]
        model.log_popularity_ = arrays["log_popularity"]
        return model


def _binary(rows: np.ndarray, columns: np.ndarray, n_rows: int, n_columns: int) -> sp.csr_matrix:
    """A 0/1 matrix with a one at each (row, column) pair, however often it repeats."""
    matrix = sp.csr_matrix(
        (np.ones(len(rows)), (rows, columns)), shape=(n_rows, n_columns), dtype=np.float64
    )
    matrix.data[:] = 1.0
    return matrix


def _log_floor(values: np.ndarray, floor: float) -> np.ndarray:
    """log of `values`, everything below `floor` x the largest held at that floor (all zeros
    when nothing is positive: no information, no order)."""
    top = float(values.max()) if len(values) else 0.0
    if top <= 0:
        return np.zeros(len(values))
    return np.log(np.maximum(values, floor * top))
