"""Re-ranking, step by step, on hand-made lists where the right answer is clear."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from recomind.config import Settings
from recomind.domain.model import ActionType, ActionWeights, ScoredVideo, Video, VideoAction
from recomind.recommenders.data import training_data
from recomind.recommenders.hybrid import HybridRecommender
from recomind.recommenders.rerank import (
    HOT_REASON,
    NEW_VIDEO_REASON,
    PINNED_REASON,
    NewVideo,
    RerankContext,
    RerankSettings,
    VideoInfo,
    candidate_count,
    diversify,
    exploration_positions,
    promote_hot,
    rerank,
    rerank_picks,
    thompson_order,
)

NOW = 1_700_000_000.0
DAY = 86_400.0
# every step off, so each test turns on only the one it is about
OFF = RerankSettings(
    max_per_tag=0, max_per_creator=0, exploration_share=0, freshness_boost=0, hot_top=0
)


def info(*tags: str, creator: str | None = None, age_days: float = 30) -> VideoInfo:
    return VideoInfo(tags, creator, NOW - age_days * DAY)


def ranked(*ids: str) -> list[ScoredVideo]:
    """Candidates best first, scores 1.0, 0.9, 0.8, …"""
    return [ScoredVideo(v, 1.0 - 0.1 * i, "model") for i, v in enumerate(ids)]


def context(videos: dict[str, VideoInfo], k: int = 10, **kw: object) -> RerankContext:
    return RerankContext(k=k, now=NOW, describe=videos.get, **kw)  # type: ignore[arg-type]


def ids(items: list[ScoredVideo]) -> list[str]:
    return [i.video_id for i in items]


def test_filters_drop_seen_blocked_videos_blocked_tags_and_repeats() -> None:
    videos = {"a": info("cats"), "b": info("gambling"), "c": info("dogs"), "d": info("cats")}
    settings = RerankSettings(
        **{
            **OFF.__dict__,
            "blocked_videos": frozenset({"d"}),
            "blocked_tags": frozenset({"gambling"}),
        }
    )
    out = rerank(ranked("a", "b", "c", "a", "d", "e"), context(videos, seen={"c"}), settings)
    assert ids(out) == ["a", "e"]  # e has no known tags, so no tag can block it


def test_with_every_step_off_the_order_is_the_models_cut_to_k() -> None:
    videos = {v: info("x", creator="same") for v in "abcdef"}
    assert ids(rerank(ranked(*"abcdef"), context(videos, k=4), OFF)) == list("abcd")


def test_freshness_lifts_a_young_video_over_an_equal_old_one_but_not_over_a_much_better_one() -> (
    None
):
    videos = {"old": info(age_days=30), "young": info(age_days=0.1), "best": info(age_days=30)}
    settings = RerankSettings(**{**OFF.__dict__, "freshness_boost": 0.1})
    candidates = [
        ScoredVideo("best", 1.0),
        ScoredVideo("old", 0.5),
        ScoredVideo("young", 0.5),
    ]
    out = rerank(candidates, context(videos), settings)
    assert ids(out) == ["best", "young", "old"]
    assert out[1].score == pytest.approx(0.5 + 0.1 * 2 ** (-2.4 / 24))


def test_diversity_caps_a_tag_within_each_window() -> None:
    videos = {f"cat{i}": info("cats") for i in range(4)} | {
        "dog": info("dogs"),
        "fish": info("fish"),
    }
    settings = RerankSettings(**{**OFF.__dict__, "max_per_tag": 2, "diversity_window": 3})
    out = rerank(ranked("cat0", "cat1", "cat2", "cat3", "dog", "fish"), context(videos), settings)
    # any 3 in a row hold at most 2 cat videos
    assert ids(out) == ["cat0", "cat1", "dog", "cat2", "cat3", "fish"]


def test_todays_hit_moves_up_when_the_viewers_list_holds_it() -> None:
    settings = RerankSettings(**{**OFF.__dict__, "hot_top": 3, "hot_depth": 5})
    hot = ["h1", "h2", "h3", "h4"]  # the most popular now, the most popular first
    videos = {v: info("x") for v in "abcdefg"} | {h: info("x") for h in hot}
    # the hottest the list holds within its first 5 places: h2 (h1 is not in it)
    out = promote_hot(ranked("a", "b", "h3", "c", "h2", "d"), hot, settings)
    assert ids(out) == ["a", "h2", "b", "h3", "c", "d"]
    # it takes the score of the place it moves to (b's), so the scores still fall
    assert out[1].reason == HOT_REASON and out[1].score == out[2].score
    assert [c.score for c in out] == sorted((c.score for c in out), reverse=True)
    # h2 lower than the first 5 places, h4 beyond the 3 hottest: nothing moves
    for order in (("a", "b", "c", "d", "e", "h2"), ("a", "b", "c", "h4", "d")):
        assert ids(promote_hot(ranked(*order), hot, settings)) == list(order)
    # already at or above its place: unchanged
    assert ids(promote_hot(ranked("h3", "a", "b"), hot, settings)) == ["h3", "a", "b"]
    # off: unchanged
    off = RerankSettings(**{**OFF.__dict__, "hot_top": 0})
    assert ids(promote_hot(ranked("a", "b", "h1"), hot, off)) == ["a", "b", "h1"]
    # through `rerank`, before diversity: the hit takes its place and the caps still hold
    capped = RerankSettings(
        **{**settings.__dict__, "hot_position": 0, "max_per_tag": 2, "diversity_window": 3}
    )
    videos |= {"c1": info("cats"), "c2": info("cats"), "c3": info("cats"), "hc": info("cats")}
    out = rerank(ranked("c1", "c2", "a", "hc", "c3"), context(videos, hot=["hc"]), capped)
    assert ids(out) == ["hc", "c1", "a", "c2", "c3"]


def test_diversity_caps_a_creator_and_takes_the_best_when_nothing_fits() -> None:
    videos = {v: info(v, creator="alice") for v in ("a1", "a2", "a3")} | {
        "b1": info("b1", creator="bob")
    }
    settings = RerankSettings(**{**OFF.__dict__, "max_per_creator": 1, "diversity_window": 2})
    out = rerank(ranked("a1", "a2", "a3", "b1"), context(videos), settings)
    # a1, then bob, then only alice is left: her videos still come, best first
    assert ids(out) == ["a1", "b1", "a2", "a3"]


def test_exploration_slots() -> None:
    assert exploration_positions(10, 0.1) == [3]
    assert exploration_positions(30, 0.1) == [3, 13, 23]
    assert exploration_positions(100, 0.05) == [3, 23, 43, 63, 83]
    assert exploration_positions(3, 0.5) == []  # a list too short for the first slot
    assert exploration_positions(100, 0.0) == []


def test_thompson_sampling_prefers_the_video_viewers_like() -> None:
    liked, skipped = NewVideo("liked", likes=40, skips=2), NewVideo("skipped", likes=2, skips=40)
    firsts = [
        thompson_order([skipped, liked], RerankSettings(), np.random.default_rng(seed))[0].video_id
        for seed in range(200)
    ]
    assert firsts.count("liked") == 200


def test_thompson_sampling_still_tries_an_unknown_video() -> None:
    proven, unknown = NewVideo("proven", likes=5, skips=5), NewVideo("unknown", likes=0, skips=0)
    firsts = [
        thompson_order([proven, unknown], RerankSettings(), np.random.default_rng(seed))[0].video_id
        for seed in range(400)
    ]
    # Beta(6,6) against Beta(1,1): the unknown one wins about half the draws
    assert 120 < firsts.count("unknown") < 280


def test_exploration_puts_the_drawn_new_video_in_its_slot_and_never_a_seen_one() -> None:
    videos = {v: info() for v in "abcdefgh"} | {"new1": info(age_days=1), "new2": info(age_days=1)}
    settings = RerankSettings(**{**OFF.__dict__, "exploration_share": 0.2})
    pool = [NewVideo("new1", 30, 0), NewVideo("new2", 0, 30)]
    out = rerank(
        ranked(*"abcdefgh"), context(videos, k=8, new_videos=pool, seen={"new1"}), settings
    )
    assert ids(out) == ["a", "b", "c", "new2", "d", "e", "f", "g"]
    assert out[3].reason == NEW_VIDEO_REASON


def test_exploration_moves_a_new_video_already_in_the_list_instead_of_repeating_it() -> None:
    videos = {v: info() for v in "abcdef"}
    settings = RerankSettings(**{**OFF.__dict__, "exploration_share": 0.1})
    out = rerank(
        ranked(*"abcdef"), context(videos, k=6, new_videos=[NewVideo("f", 3, 0)]), settings
    )
    assert ids(out) == ["a", "b", "c", "f", "d", "e"]


def test_the_same_seed_gives_the_same_list() -> None:
    videos = {v: info(v[0]) for v in ("a1", "a2", "b1", "b2", "c1")}
    pool = [NewVideo(f"n{i}", i % 3, i % 2) for i in range(20)]
    videos |= {n.video_id: info("new", age_days=1) for n in pool}
    settings = RerankSettings(exploration_share=0.25)

    def run(seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        return ids(
            rerank(
                ranked("a1", "a2", "b1", "b2", "c1"),
                context(videos, k=8, new_videos=pool, rng=rng),
                settings,
            )
        )

    assert run(1) == run(1)
    assert {tuple(run(s)) for s in range(10)} != {tuple(run(1))}  # and other seeds explore others


def test_pins_go_to_their_positions_unless_seen_blocked_or_unknown() -> None:
    videos = {v: info() for v in "abcde"} | {
        "promo": info(),
        "seen-promo": info(),
        "bad": info("nsfw"),
    }
    pins = {"promo": 1, "e": 0, "seen-promo": 2, "bad": 3, "missing": 4}
    settings = RerankSettings(**{**OFF.__dict__, "pins": pins, "blocked_tags": frozenset({"nsfw"})})
    out = rerank(ranked(*"abcde"), context(videos, k=5, seen={"seen-promo"}), settings)
    assert ids(out) == ["e", "promo", "a", "b", "c"]
    assert [i.reason for i in out[:2]] == [PINNED_REASON, PINNED_REASON]


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOMIND_RERANK_PINS", '{"v7": 0, "v9": 4}')
    monkeypatch.setenv("RECOMIND_RERANK_BLOCKED_TAGS", '["#Gambling", " NSFW "]')
    monkeypatch.setenv("RECOMIND_RERANK_EXPLORATION_SHARE", "0.1")
    monkeypatch.setenv("RECOMIND_RERANK_HOT_TOP", "0")
    settings = RerankSettings.from_config(Settings())
    assert settings.pins == {"v7": 0, "v9": 4}
    assert settings.hot_top == 0 and RerankSettings().hot_top == 10
    assert settings.blocked_tags == {"gambling", "nsfw"}
    assert settings.exploration_share == 0.1
    monkeypatch.setenv("RECOMIND_RERANK_PINS", '{"v7": -1}')
    with pytest.raises(ValidationError, match="pin positions"):
        Settings()
    monkeypatch.setenv("RECOMIND_RERANK_PINS", "{}")
    monkeypatch.setenv("RECOMIND_RERANK_EXPLORATION_SHARE", "0.9")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("RECOMIND_RERANK_EXPLORATION_SHARE", "0.1")
    monkeypatch.setenv("RECOMIND_TEXT_MODEL", "/nonexistent/minilm")
    with pytest.raises(ValidationError, match=r"model\.safetensors"):
        Settings()


T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


def test_rerank_picks_on_a_trained_hybrid() -> None:
    """The wiring the trainer and the feed use: facts about each video come from the model."""
    catalog = (
        [
            Video(f"cat{i}", f"cat video {i}", "u", ("cats",), "alice", T0 - timedelta(days=20))
            for i in range(6)
        ]
        + [
            Video(f"dog{i}", f"dog video {i}", "u", ("dogs",), "bob", T0 - timedelta(days=20))
            for i in range(3)
        ]
        + [
            Video(
                "fresh", "a brand new cat video", "u", ("cats",), "carol", T0 - timedelta(hours=2)
            )
        ]
    )
    actions = [
        VideoAction(f"e{i}", f"u{i % 3}", f"cat{i % 6}", ActionType.LIKE, T0 - timedelta(days=1))
        for i in range(12)
    ]
    data = training_data(catalog, actions, ActionWeights(), now=T0)
    model = HybridRecommender().fit(data)
    history = data.user_histories()[0]
    seen = model.item_ids[history.items]
    picks = model.explain(history, candidate_count(8, 0))
    settings = RerankSettings(
        max_per_creator=2, diversity_window=4, exploration_share=0.2, pins={"dog2": 0}
    )
    out = rerank_picks(model, picks, seen, "u0", settings, 8, T0.timestamp())
    out_ids = ids(out)
    assert out_ids[0] == "dog2" and out[0].reason == PINNED_REASON
    # the only new video, in the slot at 3, pushed one down by the pin placed after it
    assert out_ids[4] == "fresh" and out[4].reason == NEW_VIDEO_REASON
    assert not set(out_ids) & set(seen)
    assert len(out_ids) == len(set(out_ids)) <= 8
    again = rerank_picks(model, picks, seen, "u0", settings, 8, T0.timestamp())
    assert out == again


def naive_diversify(
    items: list[tuple[str, tuple[str, ...], str]], cap: int, creator_cap: int, window: int, k: int
) -> list[str]:
    """The rule, written as plainly as possible: rescan the next 3 x window every time."""
    remaining, out = list(items), []
    while remaining and len(out) < k:
        recent = out[max(0, len(out) - window + 1) :] if window > 1 else []

        def fits(item: tuple[str, tuple[str, ...], str], recent: list = recent) -> bool:
            _, tags, creator = item
            if cap and any(sum(t in r[1] for r in recent) >= cap for t in tags):
                return False
            return not (creator_cap and sum(r[2] == creator for r in recent) >= creator_cap)

        ahead = remaining[: 3 * window]
        pick = next((i for i, item in enumerate(ahead) if fits(item)), 0)
        out.append(remaining.pop(pick))
    return [v for v, _, _ in out + remaining]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sets(st.sampled_from("abcde"), max_size=3), st.sampled_from("xyz")),
        max_size=60,
    ),
    st.integers(0, 3),
    st.integers(0, 2),
    st.integers(1, 6),
    st.integers(1, 60),
)
def test_diversify_keeps_the_plain_rule(
    videos: list[tuple[set[str], str]], cap: int, creator_cap: int, window: int, k: int
) -> None:
    items = [(f"v{i}", tuple(sorted(tags)), creator) for i, (tags, creator) in enumerate(videos)]
    known = {v: VideoInfo(tags, creator, NOW) for v, tags, creator in items}
    rule = RerankSettings(max_per_tag=cap, max_per_creator=creator_cap, diversity_window=window)
    got = diversify([ScoredVideo(v, 1.0) for v, _, _ in items], known.get, rule, k)
    assert ids(got) == naive_diversify(items, cap, creator_cap, window, k)
