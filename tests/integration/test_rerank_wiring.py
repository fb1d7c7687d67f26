"""Re-ranking and text vectors through the real trainer and feed (SQLite, embedded defaults).

Settings come in the way an operator gives them (RECOMIND_RERANK_* as Settings fields);
the lists checked are the ones the trainer stores and the feed computes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recomind.bootstrap import RecoMind
from recomind.domain.model import ActionType, Video, VideoAction
from recomind.recommenders.rerank import NEW_VIDEO_REASON, PINNED_REASON
from tests.integration.conftest import seeded


@pytest.fixture(scope="module")
def recomind(tmp_path_factory: pytest.TempPathFactory) -> RecoMind:
    home: Path = tmp_path_factory.mktemp("rerank")
    app = seeded(
        home,
        rerank_pins={"fresh-pin": 0},
        rerank_blocked_tags=["#Cats"],
        rerank_exploration_share=0.1,
        top_n=20,
    )
    now = datetime.now(UTC)
    app.catalog.add_videos(
        [
            Video("fresh-new", "my first prank video", "u", ("prank",), "newbie", now),
            Video("fresh-pin", "sponsored skate clip", "u", ("skate",), "brand", now),
        ]
    )
    app.trainer.train()
    return app


def assert_reranked(
    items: list[tuple[str, str | None]], seen: set[str], recomind: RecoMind
) -> None:
    ids = [v for v, _ in items]
    videos = recomind.store.get_videos(ids)
    assert ids[0] == "fresh-pin" and items[0][1] == PINNED_REASON
    # the only other new video, in the first exploration slot (3), one down after the pin
    assert ids[4] == "fresh-new" and items[4][1] == NEW_VIDEO_REASON
    assert not any("cats" in videos[v].tags for v in ids)
    assert not set(ids) & seen
    assert len(ids) == len(set(ids)) == 20


def test_the_trainer_stores_reranked_lists(recomind: RecoMind) -> None:
    for user in ("u1", "u2", "u3"):
        stored = recomind.store.get_recommendations(user)
        assert stored is not None
        seen = {a.video_id for a in recomind.store.user_actions(user)}
        assert_reranked([(i.video_id, i.reason) for i in stored.items], seen, recomind)


def test_the_feed_reranks_what_it_computes(recomind: RecoMind) -> None:
    like = VideoAction(
        "rr-1", "u1", "v2", ActionType.LIKE, datetime.now(UTC) - timedelta(seconds=1)
    )
    recomind.importer.write_actions([like])
    computed = recomind.feed.compute("u1")
    assert computed is not None
    seen = {a.video_id for a in recomind.store.user_actions("u1")}
    assert "v2" in seen
    assert_reranked([(i.video_id, i.reason) for i in computed.items], seen, recomind)


def test_new_videos_get_text_vectors_from_minilm(recomind: RecoMind) -> None:
    loaded = recomind.feed.models.get()
    assert loaded is not None
    content = loaded.model.content
    assert content.text_model_ == "all-MiniLM-L6-v2"
    new = [loaded.index["fresh-new"], loaded.index["fresh-pin"]]
    assert content.cold_[new].all()
    assert content.text_.shape == (loaded.model.n_items, 384)
