"""Similar viewers with an audience cap: the search is bounded, the answer stays the same
where the cap cuts nothing and stays within the viewer's community where it does."""

from __future__ import annotations

import numpy as np

from recomind.recommenders.data import Catalog, History, TrainingData
from recomind.recommenders.user_knn import UserNeighbours


def _communities(n_viewers: int = 60) -> TrainingData:
    """Videos 0-4 for community a, 5-9 for community b, video 10 watched by everyone."""
    rng = np.random.default_rng(2)
    users, items = [], []
    for u in range(n_viewers):
        own = np.arange(5) if u % 2 == 0 else np.arange(5, 10)
        for item in [*rng.choice(own, 3, replace=False), 10]:
            users.append(u)
            items.append(int(item))
    n = len(users)
    catalog = Catalog(
        np.array([f"v{i}" for i in range(11)], dtype=object),
        [()] * 11,
        np.zeros(11),
        [None] * 11,
    )
    return TrainingData(
        catalog=catalog,
        user_ids=np.array([f"u{u}" for u in range(n_viewers)], dtype=object),
        users=np.array(users, np.int32),
        items=np.array(items, np.int32),
        actions=np.zeros(n, np.int8),
        weights=np.ones(n, np.float32),
        timestamps=np.arange(n, dtype=np.float64),
        now=float(n),
    )


def _viewer(*items: int) -> History:
    return History(
        np.array(items, np.int32),
        np.ones(len(items), np.float32),
        np.arange(len(items), dtype=float),
    )


def test_a_cap_above_every_audience_changes_nothing() -> None:
    data = _communities()
    viewers = [_viewer(0, 1, 10), _viewer(6, 10), _viewer(10)]
    exact = UserNeighbours(neighbours=5, max_audience=0).fit(data).score_many(viewers)
    capped = UserNeighbours(neighbours=5, max_audience=60).fit(data).score_many(viewers)
    np.testing.assert_array_equal(exact, capped)


def test_a_capped_search_still_finds_the_community() -> None:
    data = _communities()
    viewer = _viewer(0, 1, 10)
    model = UserNeighbours(neighbours=5, max_audience=8).fit(data)
    scores = model.score(viewer)
    exact = UserNeighbours(neighbours=5, max_audience=0).fit(data).score(viewer)
    assert not np.array_equal(scores, exact)  # the cap did cut this search
    unseen = [i for i in range(10) if i not in (0, 1)]
    best = max(unseen, key=lambda i: scores[i])
    assert best in range(5)
