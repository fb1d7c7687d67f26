"""The evaluation protocol: splits, the cold-start protocol, tuning blind to test, metrics."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from recomind.domain.model import ActionType, ActionWeights, VideoAction
from recomind.recommenders.data import is_engaged
from recomind.services import tuning
from recomind.services.evaluation import (
    COLD_MAX_ACTIONS,
    Evaluation,
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
    cut = cold_start_split(split, 0.25, seed=4, durations=durations)
    before: dict[str, list[VideoAction]] = {}
    for a in split.train:
        before.setdefault(a.user_id, []).append(a)
    after: dict[str, list[VideoAction]] = {}
    for a in cut.train:
        after.setdefault(a.user_id, []).append(a)
    assert len(cut.late) == round(0.25 * sum(len(before[u]) > COLD_MAX_ACTIONS for u in split.test))
    for user, acts in before.items():
        if user in cut.late:
            kept = after[user]
            assert 1 <= len(kept) <= COLD_MAX_ACTIONS
            ordered = sorted(acts, key=lambda a: (a.timestamp, a.id))
            assert {a.id for a in kept} == {a.id for a in ordered[: len(kept)]}  # first ones only
            assert cut.late[user] == split.test[user]  # "late": the same held-out items
            # "next": the action after the ones kept, as the temporal split holds out for a
            # viewer with that many actions; only when the viewer engaged with it
            following = ordered[len(kept)]
            if is_engaged(following, durations[following.video_id]) and following.video_id not in {
                a.video_id for a in kept
            }:
                assert cut.next[user] == {following.video_id}
            else:
                assert user not in cut.next
        else:
            assert {a.id for a in after[user]} == {a.id for a in acts}
            assert user not in cut.next
    assert 0 < len(cut.next) < len(cut.late), "most cut viewers are scored on their next action"
    assert cut.scored_on("next").test == cut.next and cut.scored_on("late").test == cut.late
    # the same seed gives the same viewers
    assert cold_start_split(split, 0.25, seed=4).late.keys() == cut.late.keys()


def test_a_cut_viewer_is_scored_as_the_temporal_split_scores_a_viewer_that_short() -> None:
    """Cut to k actions, a viewer's `next` target is what `temporal_split` holds out of their
    first k + 1 actions: the segment "cold" of a log where they had stopped there."""
    world = simulate(n_videos=80, n_users=60, actions_per_user=15, days=3.0, seed=8, now=NOW)
    durations = {v.video_id: v.duration_ms for v in world.videos}
    split = temporal_split(world.actions, 0.2, durations)
    cut = cold_start_split(split, 0.5, seed=1, durations=durations)
    assert cut.next
    for user, target in cut.next.items():
        kept = [a for a in cut.train if a.user_id == user]
        mine = sorted(
            (a for a in world.actions if a.user_id == user), key=lambda a: (a.timestamp, a.id)
        )
        short = temporal_split(mine[: len(kept) + 1], 0.2, durations)
        assert [a.id for a in short.train] == [
            a.id for a in sorted(kept, key=lambda a: (a.timestamp, a.id))
        ]
        assert short.test == {user: target}


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
        assert {
            (model, "all"),
            (model, "cold"),
            (model, "cold_start"),
            (model, "cold_start_late"),
        } <= segments
    cold_start = result.get("hybrid", "cold_start")
    assert cold_start is not None and cold_start.users > 0
    ratios = result.ratios()
    assert any(name.startswith("hybrid/best_baseline") for name in ratios)
    assert {"hybrid/popularity cold_start", "hybrid/popularity cold_start_late"} <= set(ratios)
    assert all(math.isfinite(v) for v in ratios.values())
    assert result.as_dict()["results"][0]["novelty"] > 0


def test_repeated_cold_start_runs_pool_every_viewer_of_every_run(world: SimulatedWorld) -> None:
    def run(seed: int, seeds: int = 1) -> Evaluation:
        return evaluate(
            world.videos,
            world.actions,
            WEIGHTS,
            models=("popularity",),
            cold_share=0.2,
            seed=seed,
            cold_seeds=seeds,
        )

    singles = [run(seed) for seed in range(3)]
    result = run(0, seeds=3)
    for segment in ("cold_start", "cold_start_late"):
        alone = [s.get("popularity", segment) for s in singles]
        pooled = result.get("popularity", segment)
        assert pooled is not None and all(a is not None and a.users for a in alone)
        users = [a.users for a in alone if a is not None]
        assert pooled.users == sum(users)  # every (run, viewer) pair once
        gains = [a.ndcg * a.users for a in alone if a is not None]
        assert pooled.ndcg == pytest.approx(sum(gains) / sum(users))
    late = [s.get("popularity", "cold_start_late") for s in singles]
    assert len({a.users for a in late if a is not None}) == 1  # the same share cut every run
    runs = result.as_dict()["cold_start_runs"]
    assert [r["popularity"] for r in runs] == pytest.approx(
        [s.get("popularity", "cold_start").ndcg for s in singles]  # type: ignore[union-attr]
    )
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
