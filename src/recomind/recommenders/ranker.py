"""A gradient-boosted LambdaRank model (LightGBM) over candidate feature rows.

Trained on groups (one per viewer) of candidate rows labelled 1 when the viewer went on to
engage with the video, 0 otherwise; the number of trees is chosen by early stopping on
NDCG over a share of the training viewers held aside. Saved as LightGBM's own text model
(no pickle) and loaded from that text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10],
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "lambdarank_truncation_level": 30,
    "num_threads": 2,
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}


@dataclass
class RankerSettings:
    max_trees: int = 400
    early_stopping: int = 40
    validation_share: float = 0.15
    params: dict[str, Any] = field(default_factory=dict)


class LambdaRanker:
    def __init__(self, settings: RankerSettings | None = None) -> None:
        self.settings = settings or RankerSettings()
        self.booster: lgb.Booster | None = None
        self.held_ = np.zeros(0, dtype=bool)

    @property
    def trained(self) -> bool:
        return self.booster is not None

    def fit(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        groups: np.ndarray,
        names: list[str],
        weights: np.ndarray | None = None,
    ) -> LambdaRanker:
        """`groups` holds each viewer's number of consecutive rows; `weights` one per row."""
        self.booster = None
        self.held_ = np.zeros(len(groups), dtype=bool)
        if len(groups) < 2 or not labels.any():
            return self  # nothing to learn from; the hybrid falls back to its blend
        params = {**DEFAULT_PARAMS, **self.settings.params}
        params["min_data_in_leaf"] = min(int(params["min_data_in_leaf"]), max(2, len(labels) // 20))
        rng = np.random.default_rng(int(params["seed"]))
        starts = np.concatenate([[0], np.cumsum(groups)[:-1]])
        held = rng.random(len(groups)) < self.settings.validation_share
        if held.all() or not held.any() or not labels[_rows(starts, groups, held)].any():
            held[:] = False
        self.held_ = held  # the groups early stopping scores on, which training never sees
        train_rows = _rows(starts, groups, ~held)
        train = lgb.Dataset(
            features[train_rows],
            labels[train_rows],
            group=groups[~held],
            weight=None if weights is None else weights[train_rows],
            feature_name=names,
            free_raw_data=True,
        )
        valid_sets: list[lgb.Dataset] = []
        callbacks: list[Callable[..., Any]] = []
        if held.any():
            rows = _rows(starts, groups, held)
            valid_sets.append(
                lgb.Dataset(
                    features[rows],
                    labels[rows],
                    group=groups[held],
                    weight=None if weights is None else weights[rows],
                    reference=train,
                )
            )
            callbacks.append(lgb.early_stopping(self.settings.early_stopping, verbose=False))
        self.booster = lgb.train(
            params,
            train,
            num_boost_round=self.settings.max_trees,
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        if held.any() and self.booster.best_iteration > 0:
            # keep only the trees early stopping chose, so saving and predicting agree
            self.booster = lgb.Booster(
                model_str=self.booster.model_to_string(num_iteration=self.booster.best_iteration)
            )
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("the ranker is not trained")
        if len(features) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.predict(features, num_threads=1), dtype=np.float64)

    def to_text(self) -> str:
        return self.booster.model_to_string() if self.booster is not None else ""

    @classmethod
    def from_text(cls, text: str, settings: RankerSettings | None = None) -> LambdaRanker:
        ranker = cls(settings)
        ranker.booster = lgb.Booster(model_str=text) if text.strip() else None
        return ranker

    def importance(self) -> dict[str, float]:
        """Total gain per feature, for reports."""
        if self.booster is None:
            return {}
        gains = self.booster.feature_importance(importance_type="gain")
        return dict(zip(self.booster.feature_name(), (float(g) for g in gains), strict=True))


def _rows(starts: np.ndarray, groups: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    parts = [np.arange(s, s + g) for s, g in zip(starts[chosen], groups[chosen], strict=True)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
