"""What particular models are for, on small hand-made catalogs where the answer is clear."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from recomind.domain.model import ActionType, ActionWeights, Video, VideoAction
from recomind.recommenders.content import TagContent
from recomind.recommenders.data import TrainingData, history_from_actions, training_data
from recomind.recommenders.hybrid import HybridRecommender
from recomind.recommenders.item_knn import ItemNeighbours
from recomind.recommenders.popularity import Popularity

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
WEIGHTS = ActionWeights()

CATALOG = {
    "cat-1": ("cats", "cute"),
    "cat-2": ("cats",),
    "cat-3": ("cats", "funny"),
    "food-1": ("cooking",),
    "food-2": ("cooking", "baking"),
    "tech-1": ("coding",),
    "tech-2": ("gadgets", "coding"),
    "travel-1": ("beach",),
}


def videos() -> list[Video]:
    return [
        Video(vid, vid, f"https://cdn.example/{vid}.mp4", tags, "c1", T0 - timedelta(days=1))
        for vid, tags in CATALOG.items()
    ]


class Log:
    """A little action log with unique event ids."""

    def __init__(self) -> None:
        self.actions: list[VideoAction] = []

    def add(self, user: str, video: str, kind: ActionType = ActionType.VIEW, hours: float = 0):
        n = len(self.actions)
        self.actions.append(VideoAction(f"e{n}", user, video, kind, T0 + timedelta(hours=hours)))
        return self

    def data(self) -> TrainingData:
        return training_data(videos(), self.actions, WEIGHTS, now=T0 + timedelta(days=1))


def ids(data: TrainingData, ranked: list[tuple[int, float]]) -> list[str]:
    return [str(data.catalog.item_ids[i]) for i, _ in ranked]


def test_tag_content_ranks_videos_sharing_a_liked_tag_first() -> None:
    log = Log().add("u1", "cat-1", ActionType.LIKE)
    data = log.data()
    model = TagContent().fit(data)
    history = history_from_actions(log.actions, data.catalog.index(), WEIGHTS)

    ranked = ids(data, model.recommend(history, len(CATALOG)))
    assert set(ranked[:2]) == {"cat-2", "cat-3"}
    scores = dict(zip(ranked, (s for _, s in model.recommend(history, len(CATALOG))), strict=True))
    for unrelated in ("food-1", "food-2", "tech-1", "tech-2", "travel-1"):
        assert scores["cat-2"] > scores[unrelated]
        assert scores["cat-3"] > scores[unrelated]


def test_tag_content_pushes_skipped_tags_down() -> None:
    log = Log().add("u1", "cat-1", ActionType.LIKE).add("u1", "food-1", ActionType.SKIP, hours=1)
    data = log.data()
    model = TagContent().fit(data)
    history = history_from_actions(log.actions, data.catalog.index(), WEIGHTS)

    ranked = ids(data, model.recommend(history, len(CATALOG)))
    assert ranked[-1] == "food-2"  # shares the skipped tag: last, below unrelated videos
    assert ranked.index("tech-1") < ranked.index("food-2")


def test_item_neighbours_similar_items_are_the_co_watched_ones() -> None:
    log = Log()
    for u in range(6):  # cat-1 and cat-2 are watched together
        log.add(f"a{u}", "cat-1").add(f"a{u}", "cat-2", ActionType.LIKE, hours=1)
    for u in range(6):  # food-1 and tech-1 are watched together, never with cat-1
        log.add(f"b{u}", "food-1").add(f"b{u}", "tech-1", hours=1)
    log.add("c0", "cat-1").add("c0", "travel-1", hours=1)  # one viewer links cat-1 and travel-1
    data = log.data()
    model = ItemNeighbours(neighbours=10, shrink=0.0).fit(data)
    index = data.catalog.index()

    similar = ids(data, model.similar_items(index["cat-1"], 5))
    assert similar[0] == "cat-2"
    assert "travel-1" in similar
    assert not {"food-1", "tech-1", "cat-1"} & set(similar)
    assert ids(data, model.similar_items(index["food-1"], 5)) == ["tech-1"]
    assert model.similar_items(index["food-2"], 5) == []  # never watched: no neighbours

    # and a viewer who just watched cat-1 is offered cat-2 first
    history = history_from_actions([log.actions[0]], index, WEIGHTS)
    assert ids(data, model.recommend(history, 1)) == ["cat-2"]


def test_item_neighbours_keep_only_the_most_active_items() -> None:
    log = Log()
    for u in range(6):  # cat-1 and cat-2: watched by six viewers each
        log.add(f"a{u}", "cat-1").add(f"a{u}", "cat-2", hours=1)
    for u in range(2):  # food-1 and tech-1: by two
        log.add(f"b{u}", "food-1").add(f"b{u}", "tech-1", hours=1)
    data = log.data()
    index = data.catalog.index()
    capped = ItemNeighbours(shrink=0.0, max_items=2).fit(data)
    assert ids(data, capped.similar_items(index["cat-1"], 5)) == ["cat-2"]
    assert capped.similar_items(index["food-1"], 5) == []  # outside the cap: no neighbours
    full = ItemNeighbours(shrink=0.0).fit(data)
    assert ids(data, full.similar_items(index["food-1"], 5)) == ["tech-1"]
    assert capped.sim_.shape == full.sim_.shape == (data.n_items, data.n_items)


def test_item_neighbours_ignore_skips() -> None:
    log = Log()
    for u in range(5):
        log.add(f"a{u}", "cat-1").add(f"a{u}", "food-1", ActionType.SKIP, hours=1)
    data = log.data()
    model = ItemNeighbours(shrink=0.0).fit(data)
    assert model.similar_items(data.catalog.index()["cat-1"], 5) == []


def test_popularity_prefers_liked_and_recent_videos() -> None:
    log = Log()
    for u in range(3):
        log.add(f"u{u}", "cat-1", ActionType.LIKE, hours=20)  # liked, recent
        log.add(f"u{u}", "food-1", ActionType.VIEW, hours=20)  # viewed, recent
        log.add(f"u{u}", "tech-1", ActionType.LIKE, hours=-24 * 20)  # liked, weeks ago
        log.add(f"u{u}", "travel-1", ActionType.SKIP, hours=20)  # skipped
    data = log.data()
    model = Popularity(half_life_hours=48.0).fit(data)

    ranked = ids(data, model.recommend(history_from_actions([], {}, WEIGHTS), len(CATALOG)))
    assert ranked.index("cat-1") < ranked.index("food-1") < ranked.index("tech-1")
    assert ranked[-1] == "travel-1"


def test_hybrid_explains_and_agrees_with_recommend() -> None:
    log = Log()
    for u in range(4):
        log.add(f"a{u}", "cat-1", ActionType.LIKE).add(f"a{u}", "cat-2", hours=1)
    log.add("new", "cat-3", ActionType.LIKE)
    data = log.data()
    model = HybridRecommender().fit(data)
    history = history_from_actions(log.actions[-1:], data.catalog.index(), WEIGHTS)

    explained = model.explain(history, 4)
    assert [(r.item, r.score) for r in explained] == model.recommend(history, 4)
    assert all(r.reason for r in explained)
    assert {ids(data, [(r.item, r.score)])[0] for r in explained[:2]} == {"cat-1", "cat-2"}
    assert np.isfinite([r.score for r in explained]).all()
