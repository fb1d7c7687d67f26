"""The learned hybrid: leakage-free ranker windows, the LambdaRank model, `rank`, artifacts."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from recomind.domain.model import ActionType, ActionWeights, VideoAction
from recomind.recommenders.base import top_k
from recomind.recommenders.data import History, TrainingData, history_from_actions, training_data
from recomind.recommenders.ease import EASE
from recomind.recommenders.features import DAY, ItemStats, feature_names
from recomind.recommenders.hybrid import (
    _SCORE_BATCH,
    COLD_MIXES,
    REUSABLE,
    SOURCES,
    HybridRecommender,
    rank,
)
from recomind.recommenders.popularity import Popularity
from recomind.recommenders.user_knn import UserNeighbours
from recomind.services.simulator import SimulatedWorld, simulate

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)
WEIGHTS = ActionWeights()


@pytest.fixture(scope="module")
def world() -> SimulatedWorld:
    return simulate(n_videos=300, n_users=250, actions_per_user=30, days=6.0, seed=5, now=NOW)


@pytest.fixture(scope="module")
def data(world: SimulatedWorld) -> TrainingData:
    return training_data(world.videos, world.actions, WEIGHTS, now=NOW)


@pytest.fixture(scope="module")
def model(data: TrainingData) -> HybridRecommender:
    # a small world: the ranker's mechanics are tested with the data-size gate and the check
    # against the blend off
    return HybridRecommender(
        candidates_per_source=60, min_ranker_groups=0, min_cold_groups=0, min_ranker_gain=None
    ).fit(data)


def test_too_few_viewers_to_learn_from_leave_the_ranking_to_the_blend(data: TrainingData) -> None:
    gated = HybridRecommender(candidates_per_source=60).fit(data)  # default: 300 groups at least
    assert 0 < gated.training_["ranker_groups"] < 300
    assert not gated.ranker.trained and not gated.cold_ranker.trained
    assert gated.training_["ranker_trained"] is False
    for history in data.user_histories()[:20]:
        blend = gated._blend({s: m.score(history) for s, m in gated.sources.items()}, history)
        blend[history.items] = -np.inf
        expected = [i for i, _ in top_k(blend, 10)]
        assert [r.item for r in gated.explain(history, 10)] == expected


@pytest.mark.parametrize("cold_labels", ["next", "late"])
def test_the_ranker_never_fits_on_the_window_it_is_labelled_from(
    data: TrainingData, cold_labels: str
) -> None:
    hybrid = HybridRecommender(cold_share=0.3, seed=2, cold_labels=cold_labels)
    early, histories, labels = hybrid._ranker_windows(data)
    assert labels, "a simulated platform has viewers to learn from"
    early_pairs = set(zip(early.users.tolist(), early.timestamps.tolist(), strict=True))
    engaged = data.engagement()
    cut_short = 0
    for u, liked in labels.items():
        mine = np.flatnonzero(data.users == u)
        mine = mine[np.lexsort((data.timestamps[mine],))]
        n = len(mine)
        cut = n - max(1, round(n * hybrid.label_share))
        later = mine[cut:]
        # nothing of the next window is in the data the sources are fitted on
        assert not {(u, t) for t in data.timestamps[later].tolist()} & early_pairs
        # the history the ranker rows are built from is the earlier window, or its first
        # 1-3 actions for a viewer cut to a cold start (whose other actions are dropped)
        history = histories[u]
        np.testing.assert_array_equal(history.items, data.items[mine[: len(history)]])
        if len(history) < cut:
            cut_short += 1
            assert 1 <= len(history) <= 3
            assert np.count_nonzero(early.users == u) == len(history)
        else:
            assert len(history) == cut
        if len(history) < cut and cold_labels == "next":
            # a cut viewer's label is their next action, engaged with and not a video kept
            following = mine[len(history)]
            assert engaged[following] and data.items[following] not in history.items
            assert liked.tolist() == [data.items[following]]
        else:
            # labels are exactly the videos engaged with in the next window and unseen before
            expected = set(data.items[later][engaged[later]].tolist()) - set(
                data.items[mine[:cut]].tolist()
            )
            assert set(liked.tolist()) == expected
    assert cut_short, "some viewers are cut to a cold start"


def test_a_sliver_held_out_keeps_the_costly_sources_earlier_fit(data: TrainingData) -> None:
    early, _, _ = HybridRecommender(max_ranker_viewers=15)._ranker_windows(data)
    share = 1 - len(early.users) / len(data.users)
    assert 0 < share < 0.05
    fresh_ease = EASE(max_items=10_000).fit(data)
    fresh_user_knn = UserNeighbours().fit(data)
    before = EASE(max_items=10_000).fit(early)

    reusing = HybridRecommender(max_ranker_viewers=15, reuse_share=0.05).fit(data)
    assert reusing.training_["reused_sources"] == list(REUSABLE)
    assert reusing.training_["held_out_share"] == pytest.approx(share, abs=1e-4)
    ease = reusing.sources["ease"]
    assert isinstance(ease, EASE)
    np.testing.assert_array_equal(ease.prior_, before.prior_)  # fitted on the earlier window
    assert not np.array_equal(ease.prior_, fresh_ease.prior_)
    user_knn = reusing.sources["user_knn"]
    assert isinstance(user_knn, UserNeighbours)  # cheap sources are refitted on everything
    assert (user_knn.matrix_ != fresh_user_knn.matrix_).nnz == 0

    refitting = HybridRecommender(max_ranker_viewers=15, reuse_share=0.0).fit(data)
    assert refitting.training_["reused_sources"] == []
    ease = refitting.sources["ease"]
    assert isinstance(ease, EASE)
    np.testing.assert_array_equal(ease.prior_, fresh_ease.prior_)


def test_pools_built_in_batches_equal_each_viewers_own_pool(data: TrainingData) -> None:
    """The ranker's groups and the hourly Top-N build pools `_SCORE_BATCH` viewers at a time
    (each source's `score_many`); a viewer's candidates, source ranks and feature row must be
    what the viewer's own pool gives, or training and serving would depend on who is batched
    with whom. Cold cuts and warm viewers, over several batches and a short last one."""
    hybrid = HybridRecommender(candidates_per_source=40, cold_share=0.3)
    hybrid.item_ids = np.array([str(v) for v in data.catalog.item_ids], dtype=str)
    early, histories, labels = hybrid._ranker_windows(data)
    users = sorted(labels)
    assert len(users) > 2 * _SCORE_BATCH
    assert any(len(histories[u]) <= 3 for u in users) and any(len(histories[u]) > 3 for u in users)
    pools, sources = hybrid._window_pools(early, histories, users)
    stats = ItemStats.fit(early)
    excluded = np.array([0, 1, 2])
    together = hybrid._pools(
        sources, stats, [histories[u] for u in users[:70]], early.now, [excluded] * 70
    )
    for i, u in enumerate(users):
        alone = hybrid._pool(sources, stats, histories[u], early.now, None)
        np.testing.assert_array_equal(pools[i].items, alone.items)
        np.testing.assert_array_equal(pools[i].ranks, alone.ranks)
        np.testing.assert_allclose(pools[i].features, alone.features, rtol=1e-9, atol=1e-12)
        assert len(pools[i].blend) == 0  # training pools are never scored: no fallback blend
        assert pools[i].cold == alone.cold
        if i < 70:
            own = hybrid._pool(sources, stats, histories[u], early.now, excluded)
            np.testing.assert_array_equal(together[i].items, own.items)
            np.testing.assert_array_equal(together[i].ranks, own.ranks)
            np.testing.assert_allclose(together[i].features, own.features, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(together[i].blend, own.blend, rtol=1e-9, atol=1e-12)
            assert not np.isin(excluded, own.items).any()


def test_a_ranker_that_does_not_beat_the_blend_on_its_held_out_groups_is_dropped(
    data: TrainingData, model: HybridRecommender
) -> None:
    checked = {
        gain: HybridRecommender(
            candidates_per_source=60, min_ranker_groups=0, min_cold_groups=0, min_ranker_gain=gain
        ).fit(data)
        for gain in (-0.5, 0.0, 10.0)
    }
    check = checked[0.0].training_["ranker_check"]
    assert check["groups"] == min(int(model.ranker.held_.sum()), 300) > 10
    assert 0 < check["ranker"] <= 1 and 0 < check["blend"] <= 1
    for model_ in checked.values():  # the same ranker and the same check, whatever the gain
        assert model_.training_["ranker_check"] == check
    # kept when it beats the blend by the gain asked for, else dropped: the blend ranks
    kept = {gain: m.ranker.trained for gain, m in checked.items()}
    assert kept == {gain: check["ranker"] >= (1 + gain) * check["blend"] for gain in checked}
    assert kept[-0.5] and not kept[10.0]
    dropped = checked[10.0]
    assert dropped.training_["ranker_trained"] is False
    for history in data.user_histories()[:10]:
        blend = dropped._blend({s: m.score(history) for s, m in dropped.sources.items()}, history)
        blend[history.items] = -np.inf
        assert [r.item for r in dropped.explain(history, 10)] == [i for i, _ in top_k(blend, 10)]
    # the same ranker as the unchecked model's, which is kept
    assert checked[-0.5].ranker.to_text() == model.ranker.to_text()
    assert model.training_["ranker_check"] == {}


def test_the_ranker_is_trained_and_uses_collaborative_and_cold_signals(
    model: HybridRecommender,
) -> None:
    assert model.ranker.trained
    assert model.training_["ranker_groups"] > 50
    assert 0 < model.training_["candidate_recall"] <= 1
    importance = model.ranker.importance()
    assert set(importance) >= {f"{s}_z" for s in SOURCES} | {"log_history"}
    assert sum(importance.values()) > 0


def test_after_one_like_the_list_fits_hidden_tastes_better_than_trending(
    world: SimulatedWorld, data: TrainingData, model: HybridRecommender
) -> None:
    """Use case 1: a viewer who liked one video gets a list closer to their hidden tastes."""
    popularity = Popularity().fit(data)
    index = data.catalog.index()
    ours, trending = [], []
    for u, user in enumerate(world.users[:80]):
        likes = [
            a
            for a in world.actions
            if a.user_id == user.user_id and a.action_type is ActionType.LIKE
        ]
        if not likes:
            continue
        first = min(likes, key=lambda a: a.timestamp)
        history = history_from_actions([first], index, WEIGHTS)
        taste = world.affinity(u)
        ours.append(taste[[i for i, _ in model.recommend(history, 10)]].mean())
        trending.append(taste[[i for i, _ in popularity.recommend(history, 10)]].mean())
    assert len(ours) > 40
    assert np.mean(ours) > np.mean(trending) + 0.05


def test_rank_orders_given_candidates_and_never_returns_the_history(
    model: HybridRecommender, world: SimulatedWorld
) -> None:
    history = [a for a in world.actions if a.user_id == world.users[3].user_id]
    seen = {a.video_id for a in history}
    candidates = [v.video_id for v in world.videos[:40]] + ["no-such-video"]
    ranked = rank(model, history, candidates, k=15)
    ids = [r.video_id for r in ranked]
    assert len(ids) == len(set(ids)) == min(15, len(set(candidates[:40]) - seen))
    assert set(ids) <= set(candidates) - seen - {"no-such-video"}
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    assert all(r.reason for r in ranked)
    # without candidates it is the model's own list, the same as explain
    everything = rank(model, history, None, k=10)
    index = {str(v): i for i, v in enumerate(model.item_ids)}
    assert not seen & {r.video_id for r in everything}
    viewer = history_from_actions(sorted(history, key=lambda a: a.timestamp), index, WEIGHTS)
    assert [r.video_id for r in everything] == [
        str(model.item_ids[i]) for i, _ in model.recommend(viewer, 10)
    ]
    # candidates in the model's own pool are ordered as the model's own list orders them
    pool = model._pool(model.sources, model.stats, viewer, model.now_, None).items
    own = [str(model.item_ids[i]) for i, _ in model.recommend(viewer, model.n_items)]
    in_pool = {str(model.item_ids[i]) for i in pool}
    full = [r.video_id for r in rank(model, history, candidates, k=len(candidates))]
    assert [v for v in full if v in in_pool] == [v for v in own if v in in_pool and v in full]


def test_rank_for_a_viewer_with_no_history_is_not_empty(model: HybridRecommender) -> None:
    ranked = rank(model, [], None, k=5)
    assert len(ranked) == 5


def test_saved_artifact_is_lightgbm_text_and_loads_back(
    model: HybridRecommender, data: TrainingData, tmp_path: Path
) -> None:
    model.save(tmp_path / "m")
    text = (tmp_path / "m" / "ranker.txt").read_text()
    assert text.startswith("tree")
    assert (tmp_path / "m" / "ranker_cold.txt").read_text().startswith("tree")
    loaded = HybridRecommender.load(tmp_path / "m")
    assert loaded.ranker.trained and loaded.cold_ranker.trained
    warm = data.user_histories()[:20]
    cold = [History(h.items[:2], h.weights[:2], h.timestamps[:2]) for h in warm]
    for history in warm + cold:
        np.testing.assert_array_equal(loaded.score(history), model.score(history))


def test_cold_viewers_are_ranked_by_the_cold_ranker(
    model: HybridRecommender, data: TrainingData
) -> None:
    assert model.training_["cold_ranker_groups"] > 10
    h = data.user_histories()[0]
    cold = History(h.items[:2], h.weights[:2], h.timestamps[:2])
    pool = model._pool(model.sources, model.stats, cold, model.now_, None)
    assert pool.cold
    (predicted,) = model._predict([pool])
    expected = model.cold_ranker.predict(pool.features.astype(np.float32))
    np.testing.assert_array_equal(predicted, expected)
    warm = model._pool(model.sources, model.stats, h, model.now_, None)
    assert not warm.cold
    (predicted,) = model._predict([warm])
    np.testing.assert_array_equal(predicted, model.ranker.predict(warm.features.astype(np.float32)))


def test_a_cold_viewer_whose_start_enough_viewers_shared_is_ordered_by_the_transitions(
    data: TrainingData, tmp_path: Path
) -> None:
    model = HybridRecommender(
        candidates_per_source=60, min_ranker_groups=0, min_cold_groups=0, cold_order="transitions"
    ).fit(data)
    assert model.transitions.n_items == model.n_items
    # this small world is below the default gate (100 viewers who started with the history's
    # videos), so its cold viewers keep the cold ranker: use case 1 above is measured on it
    histories = data.user_histories()
    colds = [History(h.items[:2], h.weights[:2], h.timestamps[:2]) for h in histories[:30]]
    assert max(model.transitions.starters(c) for c in colds) < model.cold_min_starters
    by_ranker = [[r.item for r in model.explain(c, 10)] for c in colds]
    warm = histories[4]
    warm_before = [r.item for r in model.explain(warm, 10)]
    model.cold_min_starters = 0.0
    by_transitions = [[r.item for r in model.explain(c, 10)] for c in colds]
    for cold, got in zip(colds, by_transitions, strict=True):
        scores = model.transitions.score(cold).copy()
        scores[cold.items] = -np.inf
        assert got == [i for i, _ in top_k(scores, 10)]
        # given candidates are ordered the same way
        candidates = np.array([*got[::-1], int(cold.items[0])], dtype=np.int64)
        assert [r.item for r in model.rank_candidates(cold, candidates)] == got
    assert by_transitions != by_ranker
    assert [r.item for r in model.explain(warm, 10)] == warm_before  # warm: the ranker
    model.save(tmp_path / "m")
    loaded = HybridRecommender.load(tmp_path / "m")
    assert loaded.cold_order == "transitions" and loaded.cold_min_starters == 0.0
    assert [[r.item for r in loaded.explain(c, 10)] for c in colds] == by_transitions
    # an artifact from before the transitions orders cold viewers by its cold ranker
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    del meta["params"]["cold_order"], meta["params"]["cold_min_starters"]
    (tmp_path / "m" / "meta.json").write_text(json.dumps(meta))
    old = HybridRecommender.load(tmp_path / "m")
    assert old.cold_order == "ranker"
    assert [[r.item for r in old.explain(c, 10)] for c in colds] == by_ranker


def test_cold_order_must_be_known() -> None:
    with pytest.raises(ValueError, match="cold_order"):
        HybridRecommender(cold_order="popularity")


def test_an_artifact_from_before_the_ranker_still_loads_and_serves(
    model: HybridRecommender, data: TrainingData, tmp_path: Path
) -> None:
    model.save(tmp_path / "m")
    (tmp_path / "m" / "ranker.txt").unlink()
    for name in ("ease", "als"):
        for f in (tmp_path / "m" / name).iterdir():
            f.unlink()
        (tmp_path / "m" / name).rmdir()
    old = HybridRecommender.load(tmp_path / "m")
    assert not old.ranker.trained
    history = data.user_histories()[0]
    got = old.recommend(history, 10)
    assert len(got) == 10 and not {i for i, _ in got} & set(history.items.tolist())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.floats(0, 20), st.sampled_from(list(ActionType))),
        min_size=1,
        max_size=40,
    ),
    st.floats(-2, 25),
    st.sampled_from([0.5, 1.0, 7.0]),
)
def test_recent_counts_match_a_plain_count(
    events: list[tuple[int, float, ActionType]], at_days: float, window: float
) -> None:
    from tests.unit.test_recommender_behaviour import videos

    catalog = videos()[:5]
    t0 = NOW - timedelta(days=30)
    actions = [
        VideoAction(f"e{n}", "u", catalog[item].video_id, kind, t0 + timedelta(days=day))
        for n, (item, day, kind) in enumerate(events)
    ]
    data = training_data(catalog, actions, WEIGHTS, now=NOW)
    stats = ItemStats.fit(data)
    at = t0.timestamp() + at_days * DAY
    got = stats.recent(np.arange(5), at, window)
    first = data.timestamps.min()
    for item in range(5):
        mask = (data.items == item) & (data.weights > 0)
        # the timeline keeps whole seconds since the first action
        offsets = np.floor(data.timestamps[mask] - first)
        lo = np.floor(at - window * DAY - first)
        hi = np.floor(at - first)
        expected = np.count_nonzero((offsets > lo) & (offsets <= hi))
        assert got[item] == expected


def test_extra_cold_passes_cut_other_viewers_and_add_cold_groups(data: TrainingData) -> None:
    # labelled by their next windows, every pass labels the same viewers the same way
    hybrid = HybridRecommender(cold_share=0.3, seed=2, cold_labels="late")
    cut: list[set[int]] = []
    for cold_pass in range(3):
        early, histories, labels = hybrid._ranker_windows(data, cold_pass)
        first = hybrid._ranker_windows(data, 0)[2]
        assert labels.keys() == first.keys()  # the same next windows
        assert all(np.array_equal(labels[u], first[u]) for u in labels)
        earlier = {u: _earlier(data, u, hybrid.label_share) for u in histories}
        short = {u for u, h in histories.items() if len(h) < earlier[u]}
        for u in short:  # a cut viewer's dropped actions are in no source's data
            assert np.count_nonzero(early.users == u) == len(histories[u])
        cut.append(short)
    assert all(cut) and cut[0] != cut[1] and cut[1] != cut[2] and cut[0] != cut[2]

    one = HybridRecommender(candidates_per_source=60, min_ranker_groups=0, min_cold_groups=0)
    three = HybridRecommender(
        candidates_per_source=60, min_ranker_groups=0, min_cold_groups=0, cold_passes=3
    )
    one.fit(data)
    three.fit(data)
    assert one.training_["cold_passes"] == 1 and three.training_["cold_passes"] == 3
    assert three.training_["cold_ranker_groups"] > 2 * one.training_["cold_ranker_groups"]
    # the warm ranker is trained on the same groups either way
    assert three.training_["ranker_groups"] == one.training_["ranker_groups"]
    enough = HybridRecommender(
        candidates_per_source=60, min_ranker_groups=0, cold_passes=3, cold_groups_target=1
    ).fit(data)
    assert enough.training_["cold_passes"] == 1  # the first pass already gave enough


def _earlier(data: TrainingData, user: int, label_share: float) -> int:
    n = int(np.count_nonzero(data.users == user))
    return n - max(1, round(n * label_share))


def _cold_rows(
    signal: str, n_groups: int = 240, size: int = 40, seed: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Cold groups whose labels follow either the popularity column or another feature."""
    names = feature_names(SOURCES)
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_groups * size, len(names)))
    truth = features[:, names.index("popularity_z" if signal == "popularity" else "ease_z")]
    target = np.zeros(n_groups * size, np.float32)
    for g in range(n_groups):
        rows = slice(g * size, (g + 1) * size)
        target[rows][np.argsort(-truth[rows] + rng.normal(0, 0.3, size))[:3]] = 1.0
    return features, target, np.full(n_groups, size, np.int64), names


@pytest.mark.parametrize("signal", ["popularity", "ease"])
def test_the_cold_mix_follows_what_predicts_cold_viewers(signal: str) -> None:
    """The hybrid picks the popularity share of a cold viewer's ordering on cold groups held
    out from the rankers it compares: all popularity when only popularity predicts the labels
    (a ranker fitted on a few groups only adds noise to it), none when popularity is noise."""
    features, target, groups, names = _cold_rows(signal)
    hybrid = HybridRecommender()
    mix, gains = hybrid._choose_cold_mix(features, target, groups, names)
    assert mix in COLD_MIXES and set(gains) == {str(w) for w in COLD_MIXES}
    if signal == "popularity":
        assert mix >= 0.75
        assert gains["1.0"] > gains["0.0"]
    else:
        assert mix == 0.0
        assert gains["0.0"] > gains["1.0"] + 0.2


def test_a_cold_viewer_is_ordered_by_the_chosen_mix_and_it_survives_a_reload(
    model: HybridRecommender, data: TrainingData, tmp_path: Path
) -> None:
    assert model.cold_ranker.trained
    chosen = model.cold_mix_
    assert model.training_["cold_popularity_mix"] == chosen in COLD_MIXES
    h = data.user_histories()[3]
    cold = History(h.items[:2], h.weights[:2], h.timestamps[:2])
    pool = model._pool(model.sources, model.stats, cold, model.now_, None)
    (predicted,) = model._predict([pool])
    for w in (0.0, 0.5, 1.0):
        model.cold_mix_ = w
        got = [r.item for r in model.explain(cold, 10)]
        ranks = (rankdata(predicted) - 1) / (len(predicted) - 1)
        popularity = (
            rankdata(pool.features[:, feature_names(SOURCES).index("popularity_z")]) - 1
        ) / (len(predicted) - 1)
        mixed = (1 - w) * ranks + w * popularity + 1e-6 * pool.blend[pool.items]
        expected = pool.items[np.lexsort((pool.items, -mixed))][:10].tolist()
        assert got == expected
    # a warm viewer is the ranker's alone, whatever the mix
    warm_before = [r.item for r in model.explain(h, 10)]
    model.cold_mix_ = 0.0
    assert [r.item for r in model.explain(h, 10)] == warm_before
    model.cold_mix_ = 0.5
    model.save(tmp_path / "m")
    loaded = HybridRecommender.load(tmp_path / "m")
    assert loaded.cold_mix_ == 0.5
    assert [r.item for r in loaded.explain(cold, 10)] == [r.item for r in model.explain(cold, 10)]
    model.cold_mix_ = chosen  # the fixture is shared


def test_fit_picks_the_cold_mix_itself_when_asked(data: TrainingData) -> None:
    auto = HybridRecommender(
        candidates_per_source=60, min_ranker_groups=0, min_cold_groups=0, cold_popularity_mix=None
    ).fit(data)
    assert auto.cold_ranker.trained
    gains = auto.training_["cold_mix_ndcg"]
    assert set(gains) == {str(w) for w in COLD_MIXES}
    assert auto.cold_mix_ in COLD_MIXES
    assert gains[str(auto.cold_mix_)] == max(gains.values())
    assert auto.training_["cold_popularity_mix"] == auto.cold_mix_


def test_count_features_are_shares_of_the_log_so_a_larger_log_means_the_same(
    data: TrainingData,
) -> None:
    """The ranker learns on a window with less of the log than it serves from: a video's
    count feature must not move just because the log holds more of the same."""
    from recomind.recommenders.features import ITEM_FEATURES, RECENT_WINDOWS, item_block

    stats = ItemStats.fit(data)
    items = np.arange(data.n_items)
    at = float(data.timestamps.max())
    doubled = replace(
        stats,
        positives=stats.positives * 2,
        keys=np.sort(np.concatenate([stats.keys, stats.keys])),
    )
    shares = ("log_positive_share", *(n for n in ITEM_FEATURES if n.startswith("log_recent")))
    columns = [ITEM_FEATURES.index(n) for n in shares]
    once, twice = item_block(stats, items, at), item_block(doubled, items, at)
    busy = stats.positives >= 10  # the +0.5 smoothing matters only for rare videos
    assert busy.sum() > 20
    np.testing.assert_allclose(twice[busy][:, columns[:1]], once[busy][:, columns[:1]], atol=0.05)
    np.testing.assert_array_less(once[:, 0], 0.0)  # a share of the whole log
    # an artifact saved before the shares keeps the counts its ranker was trained on
    params = stats.params()
    del params["shares"]
    legacy = ItemStats.from_saved(params, stats.arrays())
    assert not legacy.shares
    np.testing.assert_allclose(
        item_block(legacy, items, at)[:, columns],
        np.log1p(
            np.column_stack(
                [stats.positives, *(stats.recent(items, at, w) for w in RECENT_WINDOWS)]
            )
        ),
    )
    assert ItemStats.from_saved(stats.params(), stats.arrays()).shares
