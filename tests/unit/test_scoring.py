"""Time-decayed popularity and tag affinity (recomind.domain.scoring)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recomind.domain.model import (
    ActionType,
    ActionWeights,
    PopularityScore,
    TagWeight,
    Video,
    VideoAction,
)
from recomind.domain.scoring import (
    action_weight,
    add_decayed,
    apply_popularity,
    apply_tag_weights,
    decay_factor,
    score_at,
    top_tags,
)
from recomind.recommenders.data import training_data

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
HALF_LIFE = 24.0
WEIGHTS = ActionWeights()


def act(
    n: int,
    kind: ActionType = ActionType.VIEW,
    hours: float = 0.0,
    video: str = "v1",
    user: str = "u1",
    watch_ms: int | None = None,
) -> VideoAction:
    return VideoAction(f"e{n}", user, video, kind, T0 + timedelta(hours=hours), watch_ms)


# -- decay --------------------------------------------------------------------------


def test_decay_halves_at_one_half_life() -> None:
    assert decay_factor(T0, T0 + timedelta(hours=HALF_LIFE), HALF_LIFE) == pytest.approx(0.5)
    assert decay_factor(T0, T0 + timedelta(hours=2 * HALF_LIFE), HALF_LIFE) == pytest.approx(0.25)
    assert decay_factor(T0, T0, HALF_LIFE) == 1.0
    assert score_at(8.0, T0, T0 + timedelta(hours=6), 6.0) == pytest.approx(4.0)


def test_a_score_decays_over_time_and_never_goes_negative() -> None:
    values = [score_at(10.0, T0, T0 + timedelta(hours=h), HALF_LIFE) for h in range(0, 200, 10)]
    assert values == sorted(values, reverse=True)
    assert all(v > 0 for v in values)


def test_add_decayed_keeps_the_later_instant() -> None:
    later = T0 + timedelta(hours=HALF_LIFE)
    assert add_decayed(4.0, T0, 1.0, later, HALF_LIFE) == (pytest.approx(3.0), later)
    # an older delta is decayed to the score's instant instead
    assert add_decayed(4.0, later, 2.0, T0, HALF_LIFE) == (pytest.approx(5.0), later)


def test_a_popularity_score_halves_after_one_half_life() -> None:
    (row,) = apply_popularity({}, [act(1, ActionType.LIKE)], WEIGHTS, HALF_LIFE).values()
    later = T0 + timedelta(hours=HALF_LIFE)
    assert score_at(row.score, row.last_updated, later, HALF_LIFE) == pytest.approx(
        WEIGHTS.like / 2
    )


# -- popularity -----------------------------------------------------------------------


def test_popularity_touches_only_the_videos_acted_on() -> None:
    current = {"v9": PopularityScore("v9", 5.0, T0)}
    out = apply_popularity(current, [act(1, video="v1"), act(2, video="v2")], WEIGHTS, HALF_LIFE)
    assert set(out) == {"v1", "v2"}


def test_popularity_builds_on_the_current_score() -> None:
    current = {"v1": PopularityScore("v1", 4.0, T0)}
    later = T0 + timedelta(hours=HALF_LIFE)
    out = apply_popularity(current, [act(1, ActionType.LIKE, hours=HALF_LIFE)], WEIGHTS, HALF_LIFE)
    assert out["v1"].score == pytest.approx(4.0 / 2 + WEIGHTS.like)
    assert out["v1"].last_updated == later


def test_a_view_counts_by_the_share_watched_when_the_duration_is_known() -> None:
    proportional = ActionWeights(watch_fraction=1.0)
    half_watched = act(1, watch_ms=5_000)
    assert action_weight(half_watched, proportional, 10_000) == pytest.approx(proportional.view / 2)
    assert action_weight(act(2, watch_ms=50_000), proportional, 10_000) == proportional.view
    assert action_weight(half_watched, proportional, None) == proportional.view
    like = act(3, ActionType.LIKE, watch_ms=1_000)
    assert action_weight(like, proportional, 10_000) == proportional.like  # only views scale


def test_how_much_watch_time_counts_is_a_setting() -> None:
    tenth = act(1, watch_ms=1_000)
    ignored = ActionWeights(view=2.0, watch_fraction=0.0)
    assert action_weight(tenth, ignored, 10_000) == 2.0
    blended = ActionWeights(view=2.0, watch_fraction=0.5)  # half for starting, half by share
    assert action_weight(tenth, blended, 10_000) == pytest.approx(2.0 * (0.5 + 0.5 * 0.1))
    assert action_weight(act(2, watch_ms=10_000), blended, 10_000) == pytest.approx(2.0)
    assert ActionWeights().watch_fraction == 0.0  # every view counts in full unless set
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="watch_fraction"):
            ActionWeights(watch_fraction=bad)


def test_watch_time_moves_tag_affinity_too() -> None:
    tags = {"v1": ("funny",), "v2": ("cats",)}
    durations = {"v1": 10_000, "v2": 10_000}
    weights = ActionWeights(watch_fraction=1.0)
    actions = [
        act(1, video="v1", watch_ms=10_000),  # watched to the end
        act(2, video="v2", watch_ms=1_000),  # swiped away after a tenth
    ]
    out = apply_tag_weights({}, actions, tags, weights, HALF_LIFE, durations)
    assert out[("u1", "funny")].weight == pytest.approx(1.0)
    assert out[("u1", "cats")].weight == pytest.approx(0.1)
    # without durations every view counts in full, as before
    plain = apply_tag_weights({}, actions, tags, weights, HALF_LIFE)
    assert plain[("u1", "cats")].weight == pytest.approx(1.0)


actions_on_one_video = st.lists(
    st.tuples(
        st.sampled_from(list(ActionType)),
        st.floats(min_value=0, max_value=24 * 30, allow_nan=False),
        st.none() | st.integers(min_value=0, max_value=60_000),
    ),
    min_size=1,
    max_size=12,
)


def _actions(spec: list[tuple[ActionType, float, int | None]]) -> list[VideoAction]:
    return [
        act(i, kind, hours=hours, video=f"v{i % 3}", user=f"u{i % 2}", watch_ms=watch)
        for i, (kind, hours, watch) in enumerate(spec)
    ]


@settings(max_examples=150, deadline=None)
@given(actions_on_one_video, st.randoms(use_true_random=False))
def test_popularity_is_the_same_whatever_order_events_arrive_in(
    spec: list[tuple[ActionType, float, int | None]], rnd: object
) -> None:
    actions = _actions(spec)
    shuffled = list(actions)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    current = {"v0": PopularityScore("v0", 2.0, T0 + timedelta(hours=100))}
    durations = {"v0": 10_000, "v1": None, "v2": 30_000}

    in_order = apply_popularity(
        current, sorted(actions, key=lambda a: a.timestamp), WEIGHTS, HALF_LIFE, durations
    )
    any_order = apply_popularity(current, shuffled, WEIGHTS, HALF_LIFE, durations)

    assert in_order.keys() == any_order.keys()
    now = T0 + timedelta(days=60)
    for vid, row in in_order.items():
        other = any_order[vid]
        assert other.last_updated == row.last_updated
        assert score_at(other.score, other.last_updated, now, HALF_LIFE) == pytest.approx(
            score_at(row.score, row.last_updated, now, HALF_LIFE), rel=1e-9, abs=1e-12
        )


@settings(max_examples=150, deadline=None)
@given(actions_on_one_video, st.randoms(use_true_random=False))
def test_tag_affinity_is_the_same_whatever_order_events_arrive_in(
    spec: list[tuple[ActionType, float, int | None]], rnd: object
) -> None:
    actions = _actions(spec)
    shuffled = list(actions)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    tags = {"v0": ("cats", "cute"), "v1": ("cats",), "v2": ("cooking",)}

    in_order = apply_tag_weights(
        {}, sorted(actions, key=lambda a: a.timestamp), tags, WEIGHTS, HALF_LIFE
    )
    any_order = apply_tag_weights({}, shuffled, tags, WEIGHTS, HALF_LIFE)

    assert in_order.keys() == any_order.keys()
    for key, row in in_order.items():
        assert any_order[key].updated_at == row.updated_at
        assert any_order[key].weight == pytest.approx(row.weight, rel=1e-9, abs=1e-12)


@given(
    actions_on_one_video,
    st.floats(min_value=0, max_value=24 * 30, allow_nan=False),
    st.none() | st.integers(min_value=0, max_value=60_000),
)
def test_a_like_lifts_popularity_more_than_a_view_and_a_skip_lowers_it(
    history: list[tuple[ActionType, float, int | None]], hours: float, watch_ms: int | None
) -> None:
    base = [act(i, kind, hours=h, watch_ms=w) for i, (kind, h, w) in enumerate(history)]
    durations = {"v1": 20_000}
    now = T0 + timedelta(days=60)

    def popularity_after(kind: ActionType) -> float:
        extra = act(999, kind, hours=hours, watch_ms=watch_ms)
        row = apply_popularity({}, [*base, extra], WEIGHTS, HALF_LIFE, durations)["v1"]
        return score_at(row.score, row.last_updated, now, HALF_LIFE)

    like = popularity_after(ActionType.LIKE)
    view = popularity_after(ActionType.VIEW)
    skip = popularity_after(ActionType.SKIP)
    assert like > view > skip


# -- tag affinity and profiles -----------------------------------------------------------


def test_skips_push_a_tag_down_and_likes_up() -> None:
    tags = {"v1": ("cats", "cute"), "v2": ("cooking",)}
    out = apply_tag_weights(
        {},
        [act(1, ActionType.LIKE, video="v1"), act(2, ActionType.SKIP, video="v2")],
        tags,
        WEIGHTS,
        HALF_LIFE,
    )
    assert out[("u1", "cats")].weight == WEIGHTS.like
    assert out[("u1", "cute")].weight == WEIGHTS.like
    assert out[("u1", "cooking")].weight == WEIGHTS.skip
    assert ("u1", "other") not in out


def test_tag_weights_build_on_current_rows() -> None:
    current = {("u1", "cats"): TagWeight("u1", "cats", 2.0, T0)}
    out = apply_tag_weights(
        current,
        [act(1, ActionType.VIEW, hours=HALF_LIFE)],
        {"v1": ("cats",)},
        WEIGHTS,
        HALF_LIFE,
    )
    assert out[("u1", "cats")].weight == pytest.approx(1.0 + WEIGHTS.view)


def test_top_tags_are_the_strongest_positive_ones() -> None:
    weights = [
        TagWeight("u1", "cats", 3.0, T0),
        TagWeight("u1", "dogs", 5.0, T0),
        TagWeight("u1", "cooking", -2.0, T0),
        TagWeight("u1", "music", 0.0, T0),
        TagWeight("u1", "art", 3.0, T0),
    ]
    assert top_tags(weights) == ("dogs", "art", "cats")
    assert top_tags(weights, n=1) == ("dogs",)
    assert top_tags([]) == ()


def test_action_weights_order() -> None:
    assert WEIGHTS.of(ActionType.LIKE) > WEIGHTS.of(ActionType.VIEW) > WEIGHTS.of(ActionType.SKIP)
    assert math.isclose(WEIGHTS.of(ActionType.SKIP), -1.0)


def test_training_weighs_views_by_the_share_watched() -> None:
    videos = [
        Video(v, v, f"https://x/{v}", ("funny",), None, T0, duration_ms=10_000)
        for v in ("v1", "v2")
    ]
    actions = [act(1, video="v1", watch_ms=10_000), act(2, video="v2", watch_ms=2_000)]
    data = training_data(videos, actions, ActionWeights(watch_fraction=1.0), now=T0)
    assert data.weights.tolist() == pytest.approx([1.0, 0.2])
    data = training_data(videos, actions, ActionWeights(watch_fraction=0.0), now=T0)
    assert data.weights.tolist() == pytest.approx([1.0, 1.0])
