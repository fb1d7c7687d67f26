"""The fast path: candidates only, the hybrid's blend, the hybrid's reasons."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from recomind.domain.model import ActionWeights
from recomind.recommenders.base import top_k, unit_max
from recomind.recommenders.data import History, TrainingData, training_data
from recomind.recommenders.hybrid import HybridRecommender
from recomind.recommenders.quick import QuickRecommender, QuickSettings, gather_rows
from recomind.services.simulator import simulate

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def fitted() -> tuple[TrainingData, HybridRecommender]:
    world = simulate(n_videos=600, n_users=200, actions_per_user=30, seed=11, now=NOW)
    data = training_data(world.videos, world.actions, ActionWeights(), now=NOW)
    return data, HybridRecommender().fit(data)


def test_leaves_out_history_and_exclusions_and_ranks_best_first(
    fitted: tuple[TrainingData, HybridRecommender],
) -> None:
    data, model = fitted
    quick = QuickRecommender(model)
    for history in data.user_histories()[:50]:
        exclude = np.array([0, 1, 2])
        picks = quick.explain(history, 40, exclude)
        items = [p.item for p in picks]
        assert len(items) == len(set(items)) == 40
        assert not set(items) & (set(history.items.tolist()) | {0, 1, 2})
        scores = [p.score for p in picks]
        assert scores == sorted(scores, reverse=True)


def test_affinity_is_the_content_models(fitted: tuple[TrainingData, HybridRecommender]) -> None:
    data, model = fitted
    quick = QuickRecommender(model)
    for history in data.user_histories()[:30]:
        np.testing.assert_allclose(
            quick.affinity(history), model.content.affinity(history), rtol=1e-4, atol=1e-6
        )


def test_reasons_are_the_hybrids(fitted: tuple[TrainingData, HybridRecommender]) -> None:
    data, model = fitted
    quick = QuickRecommender(model)
    reasons: set[str] = set()
    for history in data.user_histories()[:30]:
        affinity = model.content.affinity(history)
        for pick in quick.explain(history, 30):
            tag = model.content.top_tag(pick.item, affinity)
            assert pick.reason in {
                f"because you liked #{tag}" if tag else "matches your interests",
                "viewers who watched what you watched also watched this",
                "trending now",
            }
            reasons.add(pick.reason)
    assert any(r.startswith("because you liked #") for r in reasons)
    assert "viewers who watched what you watched also watched this" in reasons


def test_a_new_viewer_gets_the_most_popular_videos(
    fitted: tuple[TrainingData, HybridRecommender],
) -> None:
    _, model = fitted
    picks = QuickRecommender(model).explain(History.empty(), 10)
    expected = np.argsort(-model.popularity.scores_, kind="stable")[:10]
    assert [p.item for p in picks] == expected.tolist()
    assert {p.reason for p in picks} == {"trending now"}


def test_neighbours_of_what_the_viewer_just_liked_come_up(
    fitted: tuple[TrainingData, HybridRecommender],
) -> None:
    _, model = fitted
    sim = model.item_knn.sim_
    liked = int(np.argmax(np.diff(sim.indptr)))  # the item with the most neighbours
    history = History(np.array([liked], np.int32), np.array([3.0], np.float32), np.array([0.0]))
    picks = QuickRecommender(model).explain(history, 20)
    neighbours = set(sim.indices[sim.indptr[liked] : sim.indptr[liked + 1]].tolist())
    assert len({p.item for p in picks} & neighbours) >= 5


def test_agrees_with_the_full_pass_on_most_of_the_top(
    fitted: tuple[TrainingData, HybridRecommender],
) -> None:
    data, model = fitted
    quick = QuickRecommender(model)
    overlaps = []
    for history in data.user_histories()[:100]:
        # the full pass of the hybrid's hand-set blend (every blended source), which the fast
        # path approximates; the learned ranker's own order is checked by its own tests
        total = model._blend({s: m.score(history) for s, m in model.sources.items()}, history)
        total[history.items] = -np.inf
        full = {i for i, _ in top_k(total, 10)}
        fast = {r.item for r in quick.explain(history, 10)}
        overlaps.append(len(full & fast) / 10)
    assert float(np.mean(overlaps)) >= 0.6


def test_ranks_like_the_hybrid_without_similar_viewers(
    fitted: tuple[TrainingData, HybridRecommender],
) -> None:
    """The one source the fast path leaves out; the rest should rank alike."""
    data, model = fitted
    quick = QuickRecommender(model)
    overlaps = []
    for history in data.user_histories()[:100]:
        weights = model.blend.at(history.positive_count)
        scores = {s: unit_max(model.sources[s].score(history)) for s in weights}
        total = sum(weights[s] * scores[s] for s in ("content", "item_knn", "popularity"))
        total[history.items] = -np.inf
        reference = {i for i, _ in top_k(total, 10)}
        overlaps.append(len(reference & {r.item for r in quick.explain(history, 10)}) / 10)
    assert float(np.mean(overlaps)) >= 0.8


def test_scores_only_its_candidates(fitted: tuple[TrainingData, HybridRecommender]) -> None:
    data, model = fitted
    small = QuickRecommender(
        model, QuickSettings(recent_items=2, top_tags=1, by_tags=5, trending=5)
    )
    for history in data.user_histories()[:20]:
        picks = small.explain(history, 1000)
        # at most: 2 items' neighbours (50 each) + 5 by tags + 5 trending
        assert 0 < len(picks) <= 2 * model.item_knn.neighbours + 10 < data.n_items


@given(
    st.lists(st.lists(st.floats(0.1, 5), max_size=6), min_size=1, max_size=8),
    st.data(),
)
def test_gather_rows_matches_scipy_row_indexing(
    rows: list[list[float]], data: st.DataObject
) -> None:
    width = 6
    dense = np.array([r + [0.0] * (width - len(r)) for r in rows])
    matrix = sp.csr_matrix(dense)
    wanted = np.array(
        data.draw(st.lists(st.integers(0, len(rows) - 1), max_size=10)), dtype=np.int64
    )
    position, cols, values = gather_rows(matrix, wanted)
    rebuilt = np.zeros((len(wanted), width))
    np.add.at(rebuilt, (position, cols), values)
    np.testing.assert_allclose(rebuilt, dense[wanted] if len(wanted) else rebuilt)
