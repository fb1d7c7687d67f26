"""The in-process ranker: the model this process has loaded orders the videos.

`rank_with` is the one ranking rule; the model server answers `/invocations` with
it too, so a list ranked over HTTP is the list this process would have ranked.
It builds on the model's `explain` (scores plus the reason for each video), so
any model with that method can take the hybrid's place.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from recomind.domain.model import ActionWeights, ScoredVideo
from recomind.domain.ports import Ranking, RankRequest
from recomind.recommenders.data import history_from_actions
from recomind.services.model_registry import LoadedModel


class ModelSource(Protocol):
    """Whatever holds the model in use (the registry's `ModelHolder`, the server's watcher)."""

    def get(self) -> LoadedModel | None: ...


class ModelRanker:
    """The Ranker port on the model loaded in this process."""

    def __init__(self, models: ModelSource, weights: ActionWeights) -> None:
        self.models = models
        self.weights = weights

    def rank(self, request: RankRequest) -> Ranking | None:
        loaded = self.models.get()
        return None if loaded is None else rank_with(loaded, request, self.weights)

    def close(self) -> None:
        pass


def rank_with(loaded: LoadedModel, request: RankRequest, weights: ActionWeights) -> Ranking:
    """The request's k best videos by this model, leaving out history, `exclude` and, when
    candidates are given, every video that is not one of them. Videos the model does not
    know are ignored (in the history) or cannot be ranked (as candidates)."""
    model, index = loaded.model, loaded.index
    history = history_from_actions(request.history, index, weights)
    blocked = np.zeros(model.n_items, dtype=bool)
    blocked[[index[v] for v in request.exclude if v in index]] = True
    if request.candidates is not None:
        allowed = np.zeros(model.n_items, dtype=bool)
        allowed[[index[v] for v in request.candidates if v in index]] = True
        blocked |= ~allowed
    picks = model.explain(history, request.k, exclude=np.flatnonzero(blocked))
    items = tuple(ScoredVideo(str(model.item_ids[p.item]), p.score, p.reason) for p in picks)
    return Ranking(items, loaded.version)
