"""The contract every recommender keeps, run over every model class (RecBole-style mixin).

Each model is fitted once on a small simulated platform; the tests then check
what a feed needs from any model: never re-show the history or an excluded
item, at most k distinct items best first, and a saved model that loads back
(without pickle) scoring exactly as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from recomind.domain.model import ActionWeights
from recomind.recommenders.base import Recommender, load_model
from recomind.recommenders.cold_start import StartTransitions
from recomind.recommenders.content import TagContent
from recomind.recommenders.data import History, TrainingData, training_data
from recomind.recommenders.hybrid import HybridRecommender
from recomind.recommenders.item_knn import ItemNeighbours
from recomind.recommenders.popularity import Popularity
from recomind.recommenders.user_knn import UserNeighbours
from recomind.services.simulator import simulate

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)
K = 10

MODELS: dict[str, Callable[[], Recommender]] = {
    "popularity": lambda: Popularity(half_life_hours=48.0),
    "tag_content": lambda: TagContent(),
    "item_knn": lambda: ItemNeighbours(neighbours=20),
    "item_knn_restricted": lambda: ItemNeighbours(neighbours=20, max_items=30),
    "user_knn": lambda: UserNeighbours(neighbours=10),
    "hybrid": lambda: HybridRecommender(),
    "start_transitions": lambda: StartTransitions(shrink=5.0),
}


def reload(model: Recommender, path: Path) -> Recommender:
    model.save(path)
    if isinstance(model, HybridRecommender):
        return HybridRecommender.load(path)
    return load_model(path)


@pytest.fixture(scope="module")
def data() -> TrainingData:
    world = simulate(n_videos=80, n_users=40, actions_per_user=15, days=5.0, seed=11, now=NOW)
    return training_data(world.videos, world.actions, ActionWeights(), now=NOW)


@pytest.fixture(scope="module")
def histories(data: TrainingData) -> list[History]:
    """A spread of viewers: none, a single action, and several real histories."""
    real = [h for h in data.user_histories() if len(h) > 0]
    single = History(real[0].items[:1], real[0].weights[:1], real[0].timestamps[:1])
    return [History.empty(), single, *real[:8]]


@pytest.fixture(scope="module", params=list(MODELS))
def fitted(request: pytest.FixtureRequest, data: TrainingData) -> Recommender:
    return MODELS[request.param]().fit(data)


class RecommenderContract:
    """Every model passes these; a new model joins by adding itself to MODELS."""

    def test_scores_cover_the_whole_catalog(
        self, fitted: Recommender, data: TrainingData, histories: list[History]
    ) -> None:
        assert fitted.n_items == data.n_items
        for history in histories:
            scores = np.asarray(fitted.score(history))
            assert scores.shape == (data.n_items,)
            assert np.all(np.isfinite(scores))

    def test_never_recommends_the_history(
        self, fitted: Recommender, histories: list[History]
    ) -> None:
        for history in histories:
            got = {item for item, _ in fitted.recommend(history, K)}
            assert not got & set(history.items.tolist())

    def test_never_recommends_excluded_items(
        self, fitted: Recommender, data: TrainingData, histories: list[History]
    ) -> None:
        for history in histories:
            # exclude exactly what the model would have put first
            first = [item for item, _ in fitted.recommend(history, 5)]
            exclude = np.array([*first, 0, data.n_items - 1], dtype=np.int64)
            got = {item for item, _ in fitted.recommend(history, K, exclude=exclude)}
            assert not got & set(exclude.tolist())
            assert not got & set(history.items.tolist())
            assert len(got) == K

    def test_at_most_k_distinct_items_best_first(
        self, fitted: Recommender, data: TrainingData, histories: list[History]
    ) -> None:
        for history in histories:
            scores = np.asarray(fitted.score(history))
            for k in (1, 3, K):
                got = fitted.recommend(history, k)
                items = [item for item, _ in got]
                values = [value for _, value in got]
                assert len(items) == len(set(items)) == k  # the catalog has plenty left
                assert values == sorted(values, reverse=True)
                assert values == pytest.approx(scores[items].tolist())
                assert all(0 <= item < data.n_items for item in items)

    def test_the_list_holds_the_best_scored_items(
        self, fitted: Recommender, data: TrainingData, histories: list[History]
    ) -> None:
        for history in histories:
            scores = np.asarray(fitted.score(history), dtype=np.float64)
            got = fitted.recommend(history, K)
            left_out = np.ones(data.n_items, bool)
            left_out[[item for item, _ in got]] = False
            left_out[history.items] = False
            assert scores[left_out].max() <= min(value for _, value in got) + 1e-12

    def test_scoring_a_batch_equals_scoring_each_viewer(
        self, fitted: Recommender, data: TrainingData, histories: list[History]
    ) -> None:
        together = np.asarray(fitted.score_many(histories))
        assert together.shape == (len(histories), data.n_items)
        for row, history in zip(together, histories, strict=True):
            np.testing.assert_allclose(row, fitted.score(history), rtol=1e-5, atol=1e-6)
        # a batch in another order gives each viewer the same scores
        reverse = np.asarray(fitted.score_many(histories[::-1]))[::-1]
        np.testing.assert_allclose(reverse, together, rtol=1e-5, atol=1e-6)
        assert np.asarray(fitted.score_many([])).shape[0] == 0

    def test_k_beyond_the_catalog_and_zero(
        self, fitted: Recommender, data: TrainingData, histories: list[History]
    ) -> None:
        history = histories[2]
        everything = fitted.recommend(history, data.n_items + 50)
        assert len(everything) == data.n_items - len(set(history.items.tolist()))
        assert fitted.recommend(history, 0) == []

    def test_save_then_load_scores_identically(
        self, fitted: Recommender, histories: list[History], tmp_path: Path
    ) -> None:
        loaded = reload(fitted, tmp_path / "model")
        assert type(loaded) is type(fitted)
        assert loaded.n_items == fitted.n_items
        for history in histories:
            np.testing.assert_array_equal(loaded.score(history), fitted.score(history))
            assert loaded.recommend(history, K) == fitted.recommend(history, K)
        for item in (0, 5, 17):
            assert loaded.similar_items(item, 5) == fitted.similar_items(item, 5)

    def test_saved_without_pickle(self, fitted: Recommender, tmp_path: Path) -> None:
        fitted.save(tmp_path / "model")
        arrays = list((tmp_path / "model").rglob("*.npz"))
        assert arrays
        for path in arrays:
            with np.load(path, allow_pickle=False) as npz:
                for name in npz.files:
                    assert npz[name].dtype != object
        for meta in (tmp_path / "model").rglob("meta.json"):
            assert isinstance(json.loads(meta.read_text()), dict)
        assert not [p for p in (tmp_path / "model").rglob("*") if p.suffix in (".pkl", ".pickle")]

    def test_similar_items_never_include_the_item_itself(
        self, fitted: Recommender, data: TrainingData
    ) -> None:
        for item in range(0, data.n_items, 7):
            similar = fitted.similar_items(item, 5)
            ids = [i for i, _ in similar]
            assert item not in ids
            assert len(ids) == len(set(ids)) <= 5
            values = [v for _, v in similar]
            assert values == sorted(values, reverse=True)


class TestEveryRecommender(RecommenderContract):
    pass
