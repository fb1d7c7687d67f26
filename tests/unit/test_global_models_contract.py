"""EASE and ALS run through the same contract as every other recommender.

They join the shared `RecommenderContract` here rather than in its own MODELS table; the
fixtures (`data`, `histories`) are the contract module's, so both run on the same platform.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from recomind.recommenders.als import ALS
from recomind.recommenders.base import Recommender
from recomind.recommenders.data import TrainingData
from recomind.recommenders.ease import EASE
from tests.unit.test_recommender_contract import (  # noqa: F401  (fixtures used by name)
    RecommenderContract,
    data,
    histories,
)

GLOBAL_MODELS: dict[str, Callable[[], Recommender]] = {
    "ease": lambda: EASE(l2=50.0),
    "ease_restricted": lambda: EASE(l2=50.0, max_items=30),
    "als": lambda: ALS(factors=8, iterations=6, seed=3),
}


@pytest.fixture(scope="module", params=list(GLOBAL_MODELS))
def fitted(request: pytest.FixtureRequest, data: TrainingData) -> Recommender:  # noqa: F811
    return GLOBAL_MODELS[request.param]().fit(data)


class TestGlobalModels(RecommenderContract):
    pass
