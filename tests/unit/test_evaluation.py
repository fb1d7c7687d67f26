"""The evaluation protocol: splits, the cold-start protocol, tuning blind to test, metrics."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from recomind.domain.model import ActionType, ActionWeights, VideoAction
from recomind.services import tuning
from recomind.services.evaluation import (
    COLD_MAX_ACTIONS,
    ModelScore,
    cold_start_split,
    evaluate,
    pool_runs,
    score_models,
    temporal_split,
    tune,
)
from recomind.services.simulator import SimulatedWorld, simulate

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)
WEIGHTS = ActionWeights()


@pytest.fixture(scope="module")
def world() -> SimulatedWorld:
    return simulate(n_videos=150, n_users=120, actions_per_user=20, days=5.0, seed=3, now=NOW)


def test_every_baseline_gets_the_same_tuning_budget() -> None:
    assert set(tuning.GRIDS) == set(tuning.BASELINES)
    assert {len(g) for g in tuning.GRIDS.values()} == {tuning.BUDGET}


def test_cold_start_protocol_cuts_chosen_viewers_and_keeps_everyone_else(
    world: SimulatedWorld,
) -> None:
    durations = {v.video_id: v.duration_ms for v in world.videos}
    split = temporal_split(world.actions, 0.2, durations)
    train, cold = cold_start_split(split, 0.25, seed=4)
    before: dict[str, list[VideoAction]] = {}
    for a in split.train:
        before.setdefault(a.user_id, []).append(a)
    after: dict[str, list[VideoAction]] = {}
    for a in train:
        after.setdefault(a.user_id, []).append(a)
    assert len(cold.test) == round(
        0.25 * sum(len(before[u]) > COLD_MAX_ACTIONS for u in split.test)
    )
    for user, acts in before.items():
        if user in cold.test:
            kept = after[user]
            assert 1 <= len(kept) <= COLD_MAX_ACTIONS
            first = sorted(acts, key=lambda a: (a.timestamp, a.id))[: len(kept)]
            assert {a.id for a in kept} == {a.id for a in first}  # their first actions only
            assert cold.test[user] == split.test[user]  # scored on the same held-out items
        else:
            assert {a.id for a in after[user]} == {a.id for a in acts}
    # the same seed gives the same viewers
    assert cold_start_split(split, 0.25, seed=4)[1].test.keys() == cold.test.keys()


def test_tuning_never_looks_at_the_test_split(world: SimulatedWorld) -> None:
    """Changing every held-out action changes nothing that tuning reports."""
    durations = {v.video_id: v.duration_ms for v in world.videos}
    split = temporal_split(world.actions, 0.2, durations)
    train_ids = {a.id for a in split.train}
    flipped = [
        a
        if a.id in train_ids
        else replace(a, action_type=ActionType.SKIP, video_id=world.videos[0].video_id)
        for a in world.actions
    ]
    assert temporal_split(flipped, 0.2, durations).train == split.train
    models = ("popularity", "item_knn")
    a = evaluate(world.videos, world.actions, WEIGHTS, models=models, tune_baselines=True)
    b = evaluate(world.videos, flipped, WEIGHTS, models=models, tune_baselines=True)
    assert a.tuned == b.tuned
    assert [t.tried for t in a.tuned] == [tuning.BUDGET] * 2
    assert a.scores != b.scores  # while the test scores do change


def test_tune_picks_the_best_validation_score(world: SimulatedWorld) -> None:
    durations = {v.video_id: v.duration_ms for v in world.videos}
    split = temporal_split(world.actions, 0.2, durations)
    (best,) = tune(world.videos, split.train, WEIGHTS, models=("user_knn",))
    validation = temporal_split(split.train, 0.2, durations)
    scores = [
        score_models(
            world.videos,
            validation.train,
            {"all": validation.test},
            WEIGHTS,
            10,
            {"m": tuning.baseline("user_knn", p)},
        )[0].ndcg
        for p in tuning.GRIDS["user_knn"]
    ]
    assert best.validation_ndcg == max(scores)
    assert best.params == tuning.GRIDS["user_knn"][scores.index(max(scores))]


def test_metrics_and_novelty_on_a_hand_made_case() -> None:
    from tests.unit.test_recommender_behaviour import Log, videos

    log = Log()
    for u in range(4):
        log.add(f"a{u}", "cat-1", ActionType.LIKE, hours=u)
    log.add("a0", "food-1", hours=5)
    (score,) = score_models(
        videos(),
        log.actions,
        {"all": {"a1": {"food-1"}}},
        WEIGHTS,
        2,
        {"popularity": tuning.baseline("popularity")},
    )
    # a1 saw cat-1; popularity shows food-1 (1 viewer of 4) first, then another video
    assert score.recall == 1.0 and score.hit_rate == 1.0 and score.ndcg == 1.0
    # food-1: -log2(1/4) = 2 bits; an untouched video counts as one viewer: 2 bits as well
    assert score.novelty == pytest.approx(2.0)
    assert score.coverage == pytest.approx(2 / len(videos()))


def test_evaluate_reports_every_segment_and_the_ratios(world: SimulatedWorld) -> None:
    result = evaluate(
        world.videos,
        world.actions,
        WEIGHTS,
        models=("hybrid", "popularity", "ease"),
        cold_share=0.2,
    )
    segments = {(s.model, s.segment) for s in result.scores}
    for model in ("hybrid", "popularity", "ease"):
        assert {(model, "all"), (model, "cold"), (model, "cold_start")} <= segments
    cold_start = result.get("hybrid", "cold_start")
    assert cold_start is not None and cold_start.users > 0
    ratios = result.ratios()
    assert any(name.startswith("hybrid/best_baseline") for name in ratios)
    assert "hybrid/popularity cold_start" in ratios
    assert all(math.isfinite(v) for v in ratios.values())
    assert result.as_dict()["results"][0]["novelty"] > 0


def test_repeated_cold_start_runs_pool_every_viewer_of_every_run(world: SimulatedWorld) -> None:
    once = evaluate(world.videos, world.actions, WEIGHTS, models=("popularity",), cold_share=0.2)
    result = evaluate(
        world.videos,
        world.actions,
        WEIGHTS,
        models=("popularity",),
        cold_share=0.2,
        cold_seeds=3,
    )
    single, pooled = once.get("popularity", "cold_start"), result.get("popularity", "cold_start")
    assert single is not None and pooled is not None
    assert pooled.users == 3 * single.users  # the same share of viewers cut in every run
    runs = result.as_dict()["cold_start_runs"]
    assert len(runs) == 3 and runs[0]["popularity"] == pytest.approx(single.ndcg)
    assert pooled.ndcg == pytest.approx(np.mean([r["popularity"] for r in runs]))
    assert len({r["popularity"] for r in runs}) > 1, "each run cuts other viewers"


def test_pooled_scores_weigh_each_viewer_once() -> None:
    a = ModelScore("m", "cold_start", 1, 1.0, 1.0, 1.0, 0.2, 3.0)
    b = ModelScore("m", "cold_start", 3, 0.0, 0.0, 0.0, 0.4, 1.0)
    (pooled,) = pool_runs([[a], [b]])
    assert pooled.users == 4
    assert pooled.ndcg == pytest.approx(0.25) and pooled.recall == pytest.approx(0.25)
    assert pooled.novelty == pytest.approx(1.5)
    assert pooled.coverage == pytest.approx(0.3)
    assert pool_runs([]) == []
