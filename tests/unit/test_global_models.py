"""What EASE and ALS are for, on small hand-made platforms where the answer is clear."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import scipy.sparse as sp

from recomind.domain.model import ActionType, ActionWeights, Video, VideoAction
from recomind.recommenders.als import ALS, conjugate_gradient_step
from recomind.recommenders.base import Recommender
from recomind.recommenders.data import History, TrainingData, training_data
from recomind.recommenders.ease import EASE, spd_inverse

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
WEIGHTS = ActionWeights()
# Two communities: cat lovers watch cat videos, cooks watch cooking videos.
CATS = [f"cat-{i}" for i in range(6)]
FOOD = [f"food-{i}" for i in range(6)]


def _videos() -> list[Video]:
    return [
        Video(v, v, f"https://cdn.example/{v}.mp4", (), None, T0 - timedelta(days=9))
        for v in CATS + FOOD
    ]


def _platform(rng_seed: int = 5) -> TrainingData:
    """40 viewers per community; each watched (and often liked) each of its videos at 60%."""
    rng = np.random.default_rng(rng_seed)
    actions: list[VideoAction] = []
    for community, items in (("c", CATS), ("f", FOOD)):
        for u in range(40):
            watched = [v for v in items if rng.random() < 0.6] or items[:1]
            for n, video in enumerate(watched):
                kind = ActionType.LIKE if rng.random() < 0.5 else ActionType.VIEW
                when = T0 + timedelta(minutes=len(actions))
                actions.append(
                    VideoAction(f"e{len(actions)}", f"{community}{u}", str(video), kind, when)
                )
                if n == 0 and u % 5 == 0:  # a few skips across the aisle
                    other = FOOD[u % 6] if community == "c" else CATS[u % 6]
                    actions.append(
                        VideoAction(
                            f"e{len(actions)}", f"{community}{u}", other, ActionType.SKIP, when
                        )
                    )
    return training_data(_videos(), actions, WEIGHTS, now=T0 + timedelta(days=1))


@pytest.fixture(scope="module")
def platform() -> TrainingData:
    return _platform()


def _history(data: TrainingData, *videos: str, kind: ActionType = ActionType.LIKE) -> History:
    index = data.catalog.index()
    items = np.array([index[v] for v in videos], np.int32)
    weights = np.full(len(items), WEIGHTS.of(kind), np.float32)
    return History(items, weights, np.arange(len(items), dtype=np.float64))


def _names(data: TrainingData, ranked: list[tuple[int, float]]) -> list[str]:
    return [str(data.catalog.item_ids[i]) for i, _ in ranked]


@pytest.mark.parametrize(
    "model",
    [EASE(l2=5.0), ALS(factors=2, regularization=1.0, alpha=2.0, iterations=10)],
    ids=["ease", "als"],
)
def test_a_new_viewer_gets_their_community_after_one_like(
    model: Recommender, platform: TrainingData
) -> None:
    model.fit(platform)
    for first, community in (("cat-0", CATS), ("food-3", FOOD)):
        got = _names(platform, model.recommend(_history(platform, first), 3))
        assert set(got) <= set(community) - {first}


@pytest.mark.parametrize("model", [EASE(), ALS(factors=4)], ids=["ease", "als"])
def test_without_positive_history_the_list_follows_popularity(
    model: Recommender, platform: TrainingData
) -> None:
    model.fit(platform)
    positives = np.bincount(
        platform.items[platform.weights > 0], minlength=platform.n_items
    ).astype(float)
    best = float(positives.max())
    for history in (History.empty(), _history(platform, "cat-1", kind=ActionType.SKIP)):
        got = model.recommend(history, 3)
        counts = [positives[i] for i, _ in got]
        assert counts[0] == best
        assert counts == sorted(counts, reverse=True)


def test_ease_is_the_closed_form(platform: TrainingData) -> None:
    l2 = 7.0
    model = EASE(l2=l2).fit(platform)
    x = (platform.positive_matrix() > 0).astype(np.float64).toarray()[:, model.kept_]
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    expected = np.eye(len(p)) - p / np.diag(p)[None, :]
    np.testing.assert_allclose(model.weights_, expected, atol=1e-6)
    assert np.all(np.diag(model.weights_) == 0)


def test_spd_inverse_matches_numpy_across_mirror_blocks() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2600, 40))
    matrix = a @ a.T + 50 * np.eye(2600)  # larger than one mirroring block
    np.testing.assert_allclose(spd_inverse(matrix.copy()), np.linalg.inv(matrix), atol=1e-10)


def test_ease_keeps_only_the_most_active_items(platform: TrainingData) -> None:
    model = EASE(max_items=4).fit(platform)
    positives = np.bincount(platform.items[platform.weights > 0], minlength=platform.n_items)
    assert len(model.kept_) == 4
    assert positives[model.kept_].min() >= np.sort(positives)[-4]
    scores = model.score(_history(platform, str(platform.catalog.item_ids[model.kept_[0]])))
    outside = np.setdiff1d(np.arange(platform.n_items), model.kept_)
    np.testing.assert_array_equal(scores[outside], model.prior_[outside])  # 0 + tie-break
    assert model.similar_items(int(outside[0]), 3) == []


def test_ease_similar_items_stay_in_the_community(platform: TrainingData) -> None:
    model = EASE(l2=5.0).fit(platform)
    index = platform.catalog.index()
    similar = _names(platform, model.similar_items(index["cat-2"], 3))
    assert similar and set(similar) <= set(CATS) - {"cat-2"}


def test_als_similar_items_stay_in_the_community(platform: TrainingData) -> None:
    model = ALS(factors=2, regularization=1.0, alpha=2.0, iterations=10).fit(platform)
    index = platform.catalog.index()
    similar = _names(platform, model.similar_items(index["food-1"], 5))
    assert set(similar) == set(FOOD) - {"food-1"}


def test_als_on_a_pair_budget_fits_a_sample_of_viewers_and_still_serves_everyone(
    platform: TrainingData,
) -> None:
    """Capped below the log's positive pairs, ALS fits item factors on a sample of viewers
    that holds at most the budget, and a viewer left out is served by fold-in all the same."""
    pairs = platform.positive_matrix()
    pairs.sum_duplicates()
    budget = pairs.nnz // 2
    model = ALS(factors=2, regularization=1.0, alpha=2.0, iterations=10, max_pairs=budget)
    model.fit(platform)
    assert 0 < model.fitted_viewers_ < platform.n_users
    assert 2 * model.fitted_viewers_ <= budget  # each sampled viewer has two pairs or more
    index = platform.catalog.index()
    similar = _names(platform, model.similar_items(index["food-1"], 5))
    assert set(similar) == set(FOOD) - {"food-1"}
    history = _history(platform, "cat-0", "cat-1")
    assert set(_names(platform, model.recommend(history, 3))) <= set(CATS)


def test_als_within_its_pair_budget_fits_every_viewer_as_without_one(
    platform: TrainingData,
) -> None:
    pairs = platform.positive_matrix()
    pairs.sum_duplicates()
    capped = ALS(factors=2, iterations=4, max_pairs=pairs.nnz).fit(platform)
    uncapped = ALS(factors=2, iterations=4, max_pairs=10**12).fit(platform)
    assert capped.fitted_viewers_ == platform.n_users
    np.testing.assert_array_equal(capped.item_factors_, uncapped.item_factors_)


def test_conjugate_gradient_reaches_the_exact_least_squares_solution() -> None:
    rng = np.random.default_rng(1)
    n_rows, n_cols, f, reg = 30, 25, 6, 0.3
    extra = sp.random(n_rows, n_cols, density=0.2, random_state=2, format="csr", dtype=np.float32)
    extra.data = (extra.data * 5).astype(np.float32)
    fixed = rng.standard_normal((n_cols, f)).astype(np.float32)
    start = rng.standard_normal((n_rows, f)).astype(np.float32)
    got = conjugate_gradient_step(extra, fixed, start, reg, steps=3 * f)
    dense = extra.toarray().astype(np.float64)
    y = fixed.astype(np.float64)
    for u in range(n_rows):
        c = dense[u]
        lhs = y.T @ y + (y.T * c) @ y + reg * np.eye(f)
        rhs = y.T @ ((1 + c) * (c > 0))
        np.testing.assert_allclose(got[u], np.linalg.solve(lhs, rhs), rtol=1e-3, atol=1e-4)


def test_als_fold_in_agrees_with_the_scores_of_a_trained_viewer(platform: TrainingData) -> None:
    """Folding a training viewer's history back in ranks their community's unseen videos first."""
    model = ALS(factors=2, regularization=1.0, alpha=2.0, iterations=10).fit(platform)
    history = next(h for h in platform.user_histories() if h.positive_count == 4)
    seen = {str(platform.catalog.item_ids[i]) for i in history.items}
    got = _names(platform, model.recommend(history, 2))
    assert set(got) <= set(CATS) - seen


@pytest.mark.parametrize("model", [EASE(), ALS(factors=4)], ids=["ease", "als"])
def test_a_platform_without_actions_still_fits(model: Recommender) -> None:
    empty = training_data(_videos(), [], WEIGHTS, now=T0)
    got = model.fit(empty).recommend(History.empty(), 3)
    assert [item for item, _ in got] == [0, 1, 2]
    assert model.similar_items(0, 3) == []
