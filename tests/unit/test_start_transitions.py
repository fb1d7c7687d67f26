"""Start transitions: a new viewer's first videos point to where viewers who began alike went."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recomind.domain.model import ActionType
from recomind.recommenders.base import load_model
from recomind.recommenders.cold_start import StartTransitions
from recomind.recommenders.data import History, TrainingData
from tests.unit.test_recommender_behaviour import Log

LIKE, SKIP = ActionType.LIKE, ActionType.SKIP


def _viewer(log: Log, user: str, videos: list[str], last: ActionType = LIKE) -> None:
    """One viewer's actions an hour apart, in order; the last one of kind `last`."""
    for n, video in enumerate(videos):
        log.add(user, video, last if n == len(videos) - 1 else ActionType.VIEW, hours=n)


@pytest.fixture()
def data() -> TrainingData:
    log = Log()
    # two viewers start with cat-1 (and cat-2, food-1) and end liking tech-1
    _viewer(log, "s1", ["cat-1", "cat-2", "food-1", "food-2", "travel-1", "tech-1"])
    _viewer(log, "s2", ["cat-1", "cat-2", "food-1", "food-2", "cat-3", "tech-1"])
    # one starts with tech-2 and ends liking travel-1
    _viewer(log, "s3", ["tech-2", "food-1", "food-2", "cat-2", "cat-3", "travel-1"])
    # one starts with tech-2 but skips what it ends on: no transition to it
    _viewer(log, "s4", ["tech-2", "food-2", "food-1", "cat-2", "cat-3", "cat-1"], last=SKIP)
    # too short to have a start and an end apart (at most early_actions + 1 actions)
    _viewer(log, "short", ["cat-1", "food-2", "cat-3", "travel-1"], last=ActionType.VIEW)
    # viewers with a single start and nothing after it: popularity only
    for n, user in enumerate(["p1", "p2"]):
        log.add(user, "travel-1", hours=10 + n).add(user, "tech-1", hours=10 + n)
    return log.data()


def _index(data: TrainingData, video: str) -> int:
    return data.catalog.index()[video]


def _history(data: TrainingData, *videos: str) -> History:
    items = np.array([_index(data, v) for v in videos], np.int32)
    return History(items, np.ones(len(items), np.float32), np.arange(len(items), dtype=float))


def test_transitions_count_who_started_with_a_video_and_engaged_with_another_last(
    data: TrainingData,
) -> None:
    model = StartTransitions(early_actions=3, late_share=0.2).fit(data)
    cat1, tech1, tech2, travel = (
        _index(data, v) for v in ("cat-1", "tech-1", "tech-2", "travel-1")
    )
    cat3, food2 = _index(data, "cat-3"), _index(data, "food-2")
    t = model.transitions_.toarray()
    assert model.starts_[cat1] == 2  # s1, s2 ("short" has no end apart from its start)
    assert model.starts_[tech2] == 2  # s3, s4
    assert model.starts_[cat3] == 0  # never among a (long enough) viewer's first three
    assert t[cat1, tech1] == 2 and t[cat1, travel] == 0
    assert t[tech2, travel] == 1 and t[tech2, tech1] == 0
    assert t[:, food2].sum() == 0  # nobody ended on it
    assert t[:, _index(data, "cat-1")].sum() == 0  # s4 ended on cat-1 with a skip
    # late popularity: the share of the three viewers with an engaged end who ended there
    assert model.late_[tech1] == pytest.approx(2 / 3)
    assert model.late_[travel] == pytest.approx(1 / 3)


def test_a_start_lifts_where_its_viewers_went_above_an_equally_popular_video(
    data: TrainingData,
) -> None:
    model = StartTransitions(shrink=1.0, weight=0.5, half_life_hours=1e9).fit(data)
    tech1, travel = _index(data, "tech-1"), _index(data, "travel-1")
    assert model.starters(_history(data, "cat-1")) == 2
    cat_start = model.score(_history(data, "cat-1"))
    tech_start = model.score(_history(data, "tech-2"))
    assert cat_start[tech1] > cat_start[travel]
    assert tech_start[travel] > tech_start[tech1]
    # a video nobody started with says nothing: late popularity (tech-1 ended two viewers)
    unknown = model.score(_history(data, "cat-3"))
    assert model.starters(_history(data, "cat-3")) == 0
    assert unknown[tech1] > unknown[travel]
    # popularity counts a like as three views: tech-1 2 likes + 2 views (8), travel-1 1 like
    # + 4 views (7), so the transitions above overturned popularity; no history: popularity
    empty = model.score(History.empty())
    np.testing.assert_allclose(empty, model.log_popularity_)
    assert empty[tech1] > empty[travel] > empty[_index(data, "cat-3")]


def test_weight_zero_is_popularity_and_the_order_survives_a_reload(
    data: TrainingData, tmp_path: Path
) -> None:
    flat = StartTransitions(weight=0.0, half_life_hours=1e9).fit(data)
    for start in ("cat-1", "tech-2"):
        np.testing.assert_allclose(flat.score(_history(data, start)), flat.log_popularity_)
    model = StartTransitions(shrink=3.0).fit(data)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, StartTransitions)
    assert loaded.params() == model.params()
    for start in ("cat-1", "tech-2", "food-2"):
        history = _history(data, start)
        np.testing.assert_array_equal(loaded.score(history), model.score(history))
